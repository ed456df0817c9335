//! Poll hogs: ask for as much as the server will give, then take it slowly.
//!
//! Each hog loops `GET /poll?since=0&limit=10000` on a keep-alive connection: the whole
//! pre-filled history (by default 1,000 messages of 60 KB, 60 MB) in one response, the
//! most the API allows. Then it reads the answer at a trickle — 4 KiB every 100 ms, about
//! 40 KiB/s — so the server has to hold whatever it built for the response for as long as
//! the hog likes. A server that builds the whole body up front pins it all; one that caps
//! a response (`"more": true`) or streams it from the shared log pins little.
//!
//! The receive buffer is kept small (16 KiB) so the slowness reaches the server: with
//! Linux's default autotuning the kernel would take megabytes off the server's hands and
//! hide what the server itself holds.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::raw::{self, StatusCounts};

/// The receive buffer asked for (see the module's doc).
const RECV_BUFFER: u32 = 16 * 1024;

/// How slowly a hog reads.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Pace {
    /// Bytes per read.
    pub bytes: usize,
    /// Pause between reads, s.
    pub every_seconds: f64,
}

impl Default for Pace {
    fn default() -> Self {
        Pace { bytes: 4096, every_seconds: 0.1 }
    }
}

/// What the poll hogs did, summed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PollHogOutcome {
    /// Hogs (one connection each at a time).
    pub hogs: usize,
    /// How they read.
    pub pace: Pace,
    /// TCP connections opened.
    pub connections: u64,
    /// Requests sent.
    pub requests: u64,
    /// Responses whose head arrived (the server answered).
    pub responses: u64,
    /// Responses by status (200; 503 = refused for load).
    pub statuses: StatusCounts,
    /// Responses read to their last byte.
    pub completed: u64,
    /// Bytes read, heads and bodies.
    pub bytes_read: u64,
    /// Largest body a response announced (`content-length`), bytes: what the server
    /// committed to sending one hog.
    pub largest_body_bytes: u64,
    /// Mean body of the completed responses, bytes.
    pub completed_body_bytes_mean: Option<f64>,
    /// Responses the server cut off (closed the connection before the last byte).
    pub cut_off: u64,
    /// Connections that failed (could not connect, or an error before an answer).
    pub errors: u64,
}

/// One hog's counts, summed into [`PollHogOutcome`].
#[derive(Default)]
struct Counts {
    outcome: PollHogOutcome,
    completed_body_bytes: u64,
}

/// Runs `hogs` poll hogs against `addr` until `stop`.
pub async fn run(addr: SocketAddr, hogs: usize, pace: Pace, stop: CancellationToken) -> PollHogOutcome {
    let mut tasks = JoinSet::new();
    for _ in 0..hogs {
        let stop = stop.clone();
        tasks.spawn(async move {
            let mut counts = Counts::default();
            loop {
                let connection = tokio::select! {
                    _ = stop.cancelled() => break,
                    connection = hog(addr, pace, &mut counts) => connection,
                };
                if connection.is_err() {
                    counts.outcome.errors += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            counts
        });
    }
    let mut total = PollHogOutcome { hogs, pace, ..PollHogOutcome::default() };
    let mut completed_body_bytes = 0;
    while let Some(counts) = tasks.join_next().await {
        let Ok(Counts { outcome: one, completed_body_bytes: bytes }) = counts else { continue };
        total.connections += one.connections;
        total.requests += one.requests;
        total.responses += one.responses;
        raw::add_statuses(&mut total.statuses, &one.statuses);
        total.completed += one.completed;
        total.bytes_read += one.bytes_read;
        total.largest_body_bytes = total.largest_body_bytes.max(one.largest_body_bytes);
        total.cut_off += one.cut_off;
        total.errors += one.errors;
        completed_body_bytes += bytes;
    }
    total.completed_body_bytes_mean =
        (total.completed > 0).then(|| completed_body_bytes as f64 / total.completed as f64);
    total
}

/// One keep-alive connection, request after request, until the server closes it or a
/// read fails.
async fn hog(addr: SocketAddr, pace: Pace, counts: &mut Counts) -> anyhow::Result<()> {
    let mut stream = raw::connect(addr, Some(RECV_BUFFER)).await?;
    counts.outcome.connections += 1;
    let request = raw::get(&addr.to_string(), "/poll?since=0&limit=10000", "application/json");
    let pause = Duration::from_secs_f64(pace.every_seconds);
    let mut buf = vec![0; pace.bytes];
    loop {
        stream.write_all(request.as_bytes()).await?;
        counts.outcome.requests += 1;
        let mut received = Vec::new();
        let head = raw::read_head(&mut stream, &mut received, pace.bytes).await?;
        let o = &mut counts.outcome;
        o.responses += 1;
        o.bytes_read += received.len() as u64;
        *o.statuses.entry(head.status).or_default() += 1;
        let Some(body) = head.content_length else {
            bail!("a poll response ({}) without content-length", head.status);
        };
        o.largest_body_bytes = o.largest_body_bytes.max(body);
        let mut left = body.saturating_sub((received.len() - head.len) as u64);
        while left > 0 {
            tokio::time::sleep(pause).await;
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = stream.read(&mut buf[..want]).await.unwrap_or(0);
            if n == 0 {
                counts.outcome.cut_off += 1;
                return Ok(());
            }
            counts.outcome.bytes_read += n as u64;
            left -= n as u64;
        }
        counts.outcome.completed += 1;
        counts.completed_body_bytes += body;
    }
}
