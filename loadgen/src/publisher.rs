//! The open-loop publisher.
//!
//! Message `seq` is *meant* to be published at `start + seq / rate`, whatever happened to
//! the messages before it, and carries that intended time. Latency is measured from it.
//! If the publisher or the server stalls, the messages due meanwhile go out late, in one
//! batch, still carrying their intended times, so the stall shows up in the latency
//! percentiles instead of being hidden: no coordinated omission (see wrk2).
//!
//! The publisher talks to the server directly; it stands for the event source beside
//! the server, and its bytes are not counted as any transport's cost. It speaks what the
//! subscribers speak (TLS, the HTTP version) on a connection of its own (`client::http`),
//! its bytes counted into counters nobody reads.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::http::HttpConnection;
use crate::client::Target;
use crate::record::{probe_data, Live};
use crate::workload::Workload;

/// What the publisher did.
#[derive(Debug, Default, Clone, Copy)]
pub struct PublishReport {
    /// Messages accepted by the server.
    pub published: u64,
    /// `POST /publish` requests.
    pub batches: u64,
    /// Worst lateness of a publish behind its intended time, in µs.
    pub max_lag_us: u64,
}

/// Most messages in one `POST /publish`.
const MAX_BATCH: usize = 1_000;

/// Publishes `workload.messages()` messages on schedule from `start_us` (µs after `epoch`).
/// `stall` (for tests of the measurement itself) pauses the publisher once, after
/// message `.0`, for `.1`.
pub async fn publish(
    target: &Target,
    workload: &Workload,
    epoch: Instant,
    start_us: u64,
    stall: Option<(u64, Duration)>,
    stop: CancellationToken,
) -> anyhow::Result<PublishReport> {
    let target = target.for_the_load_generator();
    let uncounted = Live::default();
    let mut connection: Option<HttpConnection> = None;
    let total = workload.messages();
    let intended_us = |seq: u64| start_us + workload.intended_offset(seq).as_micros() as u64;
    // The schedule is kept by a thread of its own. tokio's timer wheel has a resolution
    // of 1 ms and rounds up, so a task sleeping until each intended time would publish
    // every message up to a millisecond late: our lateness, counted against the
    // transport. `std::thread::sleep` wakes within about 0.1 ms on Linux.
    let (due, mut due_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let schedule: Vec<Duration> = (0..total).map(|seq| Duration::from_micros(intended_us(seq))).collect();
    let epoch_std = epoch.into_std();
    // Not joined: it ends by itself after the last message, or at its next wake-up once
    // this function has returned and `due_rx` is gone.
    std::thread::Builder::new().name("pushlab-schedule".into()).spawn(move || {
        for (seq, at) in schedule.into_iter().enumerate() {
            if let Some(wait) = (epoch_std + at).checked_duration_since(std::time::Instant::now()) {
                std::thread::sleep(wait);
            }
            if due.send(seq as u64).is_err() {
                return;
            }
        }
    })?;

    let mut report = PublishReport::default();
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => break,
            seq = due_rx.recv() => match seq {
                Some(seq) => seq,
                None => break,
            },
        };
        let now_us = epoch.elapsed().as_micros() as u64;
        report.max_lag_us = report.max_lag_us.max(now_us.saturating_sub(intended_us(first)));
        // Everything that is due by now goes in one request.
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match due_rx.try_recv() {
                Ok(seq) => batch.push(seq),
                Err(_) => break,
            }
        }
        let items: Vec<String> = batch
            .iter()
            .map(|&seq| {
                format!(r#"{{"data":{}}}"#, probe_data(seq, intended_us(seq), workload.payload_bytes))
            })
            .collect();
        let body = Bytes::from(format!("[{}]", items.join(",")));
        // A failed request is retried with the same messages and intended times: the
        // retry delay becomes latency, as it would for a real event source.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let sent = async {
                if connection.is_none() {
                    connection = Some(HttpConnection::open(&target, &uncounted).await?);
                }
                let open = connection.as_mut().expect("opened above");
                open.post_json(&uncounted, "/publish", body.clone(), target.publish_token.as_deref()).await
            }
            .await;
            let why = match sent {
                Ok((status, _)) if status.is_success() => break,
                Ok((status, reply)) => format!("{status} {}", String::from_utf8_lossy(&reply)),
                Err(error) => {
                    // The connection may be gone: the next attempt opens another.
                    connection = None;
                    format!("{error:#}")
                }
            };
            if attempts >= 5 {
                anyhow::bail!("publishing failed: {why}");
            }
            // The delay shows in the latency figures; the log says where it came from.
            tracing::warn!("publishing {} messages failed ({why}); retrying", batch.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        report.batches += 1;
        report.published += batch.len() as u64;
        let last = batch[batch.len() - 1];
        if let Some((after, pause)) = stall {
            if first <= after && last >= after {
                tokio::time::sleep(pause).await;
            }
        }
    }
    Ok(report)
}
