//! The ping flooder: a valid WebSocket, then nothing but pings, as fast as the socket
//! takes them, and never a read.
//!
//! A WebSocket server must answer every ping with a pong (RFC 6455 §5.5.2). A client
//! that sends pings and never reads makes the server queue pongs it cannot deliver: a
//! 125-byte ping costs the client 131 bytes of writing and the server 127 bytes of pong
//! it has to keep somewhere. Unless the server bounds that queue, stops reading (TCP
//! backpressure then stalls the flooder's writes), or closes the connection, its memory
//! grows as fast as loopback carries pings.
//!
//! The upgrade response is read (to know it was accepted); after that, nothing is. The
//! connection is subscribed from "now" (no `since`), so the only thing the server owes
//! it besides pongs is the live stream. When the server closes it, a write fails; the
//! flooder counts the close, reconnects and starts again.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::raw::{self, StatusCounts};

/// Pings written per `write_all` (one syscall for many frames).
const FRAMES_PER_WRITE: usize = 64;
/// Bytes of one ping frame: 2 header, 4 mask key, 125 payload (the largest a control
/// frame may carry).
const FRAME_BYTES: usize = 2 + 4 + 125;

/// What the ping flooders did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PingFloodOutcome {
    /// Flooders (one connection each at a time).
    pub flooders: usize,
    /// How long they flooded, s (the phase, or less with `--ping-flood-for`).
    pub flood_seconds: f64,
    /// Upgrade requests sent.
    pub upgrades_sent: u64,
    /// Upgrades answered 101.
    pub upgrades_accepted: u64,
    /// Upgrades answered with something else, by status (503 = refused for load).
    pub upgrades_refused: StatusCounts,
    /// Ping frames written (accepted by the kernel).
    pub pings_sent: u64,
    /// Bytes of pings written.
    pub bytes_sent: u64,
    /// Connections the server closed (a write failed).
    pub closed_by_server: u64,
    /// For each connection the server closed: seconds from its upgrade to the close.
    pub closed_after_seconds: Vec<f64>,
    /// Longest single write, s: long when the server stopped reading and TCP
    /// backpressure held the flooder back.
    pub longest_write_seconds: f64,
    /// Connections that could not be made, or upgrades that failed before an answer.
    pub errors: u64,
}

/// Runs `flooders` ping flooders against `addr` for `flood_for` or until `stop`.
pub async fn run(
    addr: SocketAddr,
    flooders: usize,
    flood_for: Option<Duration>,
    stop: CancellationToken,
) -> PingFloodOutcome {
    let started = Instant::now();
    let end = flood_for.map(|d| started + d);
    let mut tasks = JoinSet::new();
    for _ in 0..flooders {
        tasks.spawn(flood(addr, end, stop.clone()));
    }
    let mut total = PingFloodOutcome { flooders, ..PingFloodOutcome::default() };
    while let Some(outcome) = tasks.join_next().await {
        let Ok(one) = outcome else { continue };
        total.upgrades_sent += one.upgrades_sent;
        total.upgrades_accepted += one.upgrades_accepted;
        raw::add_statuses(&mut total.upgrades_refused, &one.upgrades_refused);
        total.pings_sent += one.pings_sent;
        total.bytes_sent += one.bytes_sent;
        total.closed_by_server += one.closed_by_server;
        total.closed_after_seconds.extend(one.closed_after_seconds);
        total.longest_write_seconds = total.longest_write_seconds.max(one.longest_write_seconds);
        total.errors += one.errors;
    }
    total.flood_seconds = started.elapsed().as_secs_f64();
    total
}

/// One flooder: connect, upgrade, flood until the server closes; again, until the end.
async fn flood(addr: SocketAddr, end: Option<Instant>, stop: CancellationToken) -> PingFloodOutcome {
    let mut outcome = PingFloodOutcome::default();
    let over = async {
        match end {
            Some(end) => tokio::time::sleep_until(end).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(over);
    let host = addr.to_string();
    loop {
        let connected = tokio::select! {
            _ = stop.cancelled() => break,
            _ = &mut over => break,
            connected = connection(addr, &host, &mut outcome) => connected,
        };
        // After a close by the server: start again at once (that is the attack). After
        // a failure: back off a little, so a dead server is not spun on.
        if connected.is_err() {
            outcome.errors += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    outcome
}

/// One flooded connection, until a write fails (returns `Ok`) or it cannot be made.
async fn connection(addr: SocketAddr, host: &str, outcome: &mut PingFloodOutcome) -> anyhow::Result<()> {
    let mut stream = raw::connect(addr, None).await?;
    stream.write_all(raw::ws_upgrade(host, "/ws").as_bytes()).await?;
    outcome.upgrades_sent += 1;
    let head = raw::read_head(&mut stream, &mut Vec::new(), 1024).await?;
    if head.status != 101 {
        *outcome.upgrades_refused.entry(head.status).or_default() += 1;
        // A refused client is told to wait (Retry-After); a hostile one waits little.
        tokio::time::sleep(Duration::from_millis(500)).await;
        return Ok(());
    }
    outcome.upgrades_accepted += 1;
    let upgraded = Instant::now();
    let frames = ping_frames(FRAMES_PER_WRITE);
    loop {
        let write_started = Instant::now();
        let written = stream.write_all(&frames).await;
        outcome.longest_write_seconds =
            outcome.longest_write_seconds.max(write_started.elapsed().as_secs_f64());
        if written.is_err() {
            outcome.closed_by_server += 1;
            outcome.closed_after_seconds.push(upgraded.elapsed().as_secs_f64());
            return Ok(());
        }
        outcome.pings_sent += FRAMES_PER_WRITE as u64;
        outcome.bytes_sent += frames.len() as u64;
    }
}

/// `count` masked ping frames with 125-byte payloads, back to back. A client must mask
/// every frame (RFC 6455 §5.3); the server closes on an unmasked one.
fn ping_frames(count: usize) -> Vec<u8> {
    let mask: [u8; 4] = std::array::from_fn(|_| fastrand::u8(..));
    let mut frame = Vec::with_capacity(FRAME_BYTES);
    // FIN + opcode 0x9 (ping); MASK bit + payload length 125.
    frame.extend_from_slice(&[0x89, 0x80 | 125]);
    frame.extend_from_slice(&mask);
    frame.extend((0..125).map(|i| b'p' ^ mask[i % 4]));
    frame.repeat(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ping_frame_is_masked_and_125_bytes_long() {
        let frames = ping_frames(2);
        assert_eq!(frames.len(), 2 * FRAME_BYTES);
        assert_eq!(frames[0], 0x89);
        assert_eq!(frames[1], 0x80 | 125);
        let mask = &frames[2..6];
        let payload: Vec<u8> =
            frames[6..FRAME_BYTES].iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect();
        assert_eq!(payload, vec![b'p'; 125]);
        assert_eq!(frames[FRAME_BYTES], 0x89);
    }

    /// A server that accepts the upgrade and closes soon after: each close is counted
    /// and the flooder comes back.
    #[tokio::test]
    async fn a_closed_flooder_reconnects_and_counts_the_close() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut head = Vec::new();
                let _ = raw::read_head(&mut socket, &mut head, 1024).await;
                socket.write_all(b"HTTP/1.1 101 Switching Protocols\r\n\r\n").await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let outcome = run(addr, 1, Some(Duration::from_millis(800)), CancellationToken::new()).await;
        assert!(outcome.closed_by_server >= 2, "{outcome:?}");
        assert!(outcome.upgrades_accepted > outcome.closed_by_server.saturating_sub(1), "{outcome:?}");
        assert!(outcome.pings_sent > 0, "{outcome:?}");
    }
}
