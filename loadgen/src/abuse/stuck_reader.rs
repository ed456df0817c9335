//! Stuck readers: subscribe from the start of a big history, then never read a byte.
//!
//! Each opens a socket with a tiny receive buffer, sends `GET /sse?since=0` or a
//! WebSocket upgrade for `/ws?since=0`, and stops. The server starts sending the whole
//! pre-filled history (megabytes); the client's buffer fills, then the server's socket
//! send buffer, and then the server's writes make no progress. What matters is what the
//! server does next: hold the connection — and whatever it prepared to send — for ever,
//! or notice and let go.
//!
//! The client cannot see the server let go: it never reads, and the server's FIN waits
//! in line behind the unread bytes, in a window that stays at zero. But on the same
//! machine the *server's* end of the connection is visible in `/proc/net/tcp`: when the
//! server process closes its socket, that end leaves `ESTABLISHED` at once (to
//! `FIN_WAIT1`, the FIN queued behind the unsent bytes), and an end no process holds any
//! more has inode 0 (an orphan the kernel keeps only to deliver what is queued). That
//! moment is when the server let go, and it is what this module reports.

use std::net::SocketAddr;
use std::time::Duration;

use pushlab_protocol::Transport;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::raw;

/// The receive buffer asked for. Linux doubles it and applies its floor, so the client
/// takes at most a few KiB before its window closes.
const RECV_BUFFER: u32 = 2048;

/// How often the server's end of each connection is looked up in `/proc/net/tcp`.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// What happened to one stuck reader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StuckReaderOutcome {
    /// `sse` or `ws`.
    pub transport: Transport,
    /// Whether the connection was made and the request sent.
    pub connected: bool,
    /// Why not, when it was not.
    pub error: Option<String>,
    /// Seconds from sending the request to the server letting go of the connection
    /// (resolution 0.5 s); absent when it still held it at the end.
    pub closed_by_server_after_seconds: Option<f64>,
    /// How the server's end looked then, e.g. `FinWait1, no process (orphan)`.
    pub closed_how: Option<String>,
    /// Most bytes seen queued unsent in the server's socket (kernel memory the server
    /// pinned for this reader; what the server process holds itself is on top).
    pub server_unsent_bytes_max: u64,
}

struct Reader {
    // Held, never read: dropping it ends the attack on this connection.
    stream: Option<TcpStream>,
    local: Option<SocketAddr>,
    sent_at: Instant,
    outcome: StuckReaderOutcome,
}

/// Runs `sse` + `ws` stuck readers against `addr` until `stop`, and reports each.
pub async fn run(
    addr: SocketAddr,
    sse: usize,
    ws: usize,
    stop: CancellationToken,
) -> Vec<StuckReaderOutcome> {
    let host = addr.to_string();
    let kinds = std::iter::repeat_n(Transport::Sse, sse).chain(std::iter::repeat_n(Transport::Ws, ws));
    let mut readers = Vec::new();
    for transport in kinds {
        let mut reader = Reader {
            stream: None,
            local: None,
            sent_at: Instant::now(),
            outcome: StuckReaderOutcome {
                transport,
                connected: false,
                error: None,
                closed_by_server_after_seconds: None,
                closed_how: None,
                server_unsent_bytes_max: 0,
            },
        };
        let request = match transport {
            Transport::Ws => raw::ws_upgrade(&host, "/ws?since=0"),
            _ => raw::get(&host, "/sse?since=0", "text/event-stream"),
        };
        match send_request(addr, &request).await {
            Ok(stream) => {
                reader.local = stream.local_addr().ok();
                reader.stream = Some(stream);
                reader.sent_at = Instant::now();
                reader.outcome.connected = true;
            }
            Err(error) => reader.outcome.error = Some(format!("{error:#}")),
        }
        readers.push(reader);
    }

    let mut tick = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        if readers.iter().all(|r| r.stream.is_none()) {
            // Nothing left to watch; wait for the end of the phase.
            stop.cancelled().await;
            break;
        }
        // One read of the table for all readers: with thousands of idle sockets it has
        // thousands of lines.
        let Ok(table) = procfs::net::tcp() else { continue };
        for reader in readers.iter_mut().filter(|r| r.stream.is_some()) {
            let Some(local) = reader.local else { continue };
            // The server's end: its local address is the server's, its remote is ours.
            let server_end = table.iter().find(|e| e.local_address == addr && e.remote_address == local);
            let closed_how = match server_end {
                None => Some("gone from the socket table (reset, or closed and all delivered)".to_string()),
                Some(end) => {
                    reader.outcome.server_unsent_bytes_max =
                        reader.outcome.server_unsent_bytes_max.max(u64::from(end.tx_queue));
                    match (&end.state, end.inode) {
                        // Still open. (With inode 0 it is still in the accept queue:
                        // the kernel completed the handshake, the server has not
                        // accepted it yet.)
                        (procfs::net::TcpState::Established, _) => None,
                        (state, 0) => Some(format!(
                            "{state:?}, no process holds it (an orphan: the server closed it \
                             with {} bytes still queued)",
                            end.tx_queue
                        )),
                        (state, _) => Some(format!("{state:?}: the server shut down its side")),
                    }
                }
            };
            if let Some(how) = closed_how {
                reader.outcome.closed_by_server_after_seconds = Some(reader.sent_at.elapsed().as_secs_f64());
                reader.outcome.closed_how = Some(how);
                // Drop our end too: the attack on this connection is over.
                reader.stream = None;
            }
        }
    }
    readers.into_iter().map(|r| r.outcome).collect()
}

async fn send_request(addr: SocketAddr, request: &str) -> anyhow::Result<TcpStream> {
    let mut stream = raw::connect(addr, Some(RECV_BUFFER)).await?;
    stream.write_all(request.as_bytes()).await?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that sends until the reader's window closes, then lets go: its end turns
    /// into an orphan, and the reader sees that without reading.
    #[tokio::test]
    async fn a_server_letting_go_is_seen_in_the_socket_table() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut request).await;
            let chunk = vec![b'x'; 64 * 1024];
            // Until the writes stall (the reader never reads), then drop the socket.
            while tokio::time::timeout(Duration::from_millis(200), socket.write_all(&chunk)).await.is_ok() {}
        });
        let stop = CancellationToken::new();
        let readers = tokio::spawn(run(addr, 1, 0, stop.clone()));
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.cancel();
        let outcome = readers.await.unwrap().remove(0);
        assert!(outcome.connected, "{outcome:?}");
        assert!(outcome.closed_by_server_after_seconds.is_some_and(|s| s < 2.0), "{outcome:?}");
        assert!(outcome.server_unsent_bytes_max > 0, "{outcome:?}");
    }
}
