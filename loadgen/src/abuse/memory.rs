//! The server's memory through a phase: its resident set sampled from `/proc` every
//! 500 ms, and the kernel's own high-water mark (`VmHWM`), which also catches a peak
//! between two samples.
//!
//! It is also the run's safety valve. A server that queues without bound under attack
//! (today's server under a ping flood grew by about 100 MB/s) would take the machine
//! down with it; when the resident set passes the safety limit, the attackers are told
//! to stop, and the report says when. The normal clients go on being measured.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::process::ProcSample;

/// How often the resident set is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// One sample.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct RssPoint {
    /// Seconds since the phase's server started.
    pub t_seconds: f64,
    /// Resident memory, bytes.
    pub rss_bytes: u64,
}

/// The server's memory over one phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MemoryTrack {
    /// Every sample, in order.
    pub samples: Vec<RssPoint>,
    /// Highest sample, bytes.
    pub peak_sampled_bytes: u64,
    /// The kernel's high-water mark (VmHWM) at the last sample: the true peak since the
    /// server started, bytes. The verdict uses this one.
    pub peak_bytes: u64,
    /// When the server could no longer be read (it exited or was killed), s.
    pub server_gone_at_seconds: Option<f64>,
    /// When the resident set passed the safety limit and the attackers were stopped, s.
    pub safety_stop_at_seconds: Option<f64>,
}

/// Samples `pid` until `stop`. When the resident set passes `safety_limit_bytes`,
/// cancels `attack` (once). Times are seconds since `epoch`.
pub async fn track(
    pid: u32,
    epoch: Instant,
    safety_limit_bytes: u64,
    attack: Option<CancellationToken>,
    stop: CancellationToken,
) -> MemoryTrack {
    let mut track = MemoryTrack::default();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let t_seconds = epoch.elapsed().as_secs_f64();
        // A process that exited but was not reaped yet (a zombie) has no resident set.
        let Some(sample) = ProcSample::read(pid).ok().filter(|s| s.rss_bytes > 0) else {
            track.server_gone_at_seconds.get_or_insert(t_seconds);
            continue;
        };
        track.samples.push(RssPoint { t_seconds, rss_bytes: sample.rss_bytes });
        track.peak_sampled_bytes = track.peak_sampled_bytes.max(sample.rss_bytes);
        track.peak_bytes = track.peak_bytes.max(sample.peak_rss_bytes).max(sample.rss_bytes);
        if sample.rss_bytes > safety_limit_bytes && track.safety_stop_at_seconds.is_none() {
            if let Some(attack) = &attack {
                attack.cancel();
                track.safety_stop_at_seconds = Some(t_seconds);
            }
        }
    }
    // One last reading, so the high-water mark covers the very end of the phase.
    if let Ok(sample) = ProcSample::read(pid) {
        track.peak_bytes = track.peak_bytes.max(sample.peak_rss_bytes);
    }
    track
}
