//! The in-process relay: round-trip time, jitter and bandwidth with no root and no
//! kernel support, for machines where the packet link ([`super::netns`]) cannot run.
//!
//! Each subscriber connection goes through a TCP relay that holds every chunk of bytes
//! for the link's one-way delay (half the RTT, plus random jitter) and paces it at the
//! link's bandwidth before passing it on. A chunk is never released before the one ahead
//! of it, so TCP's byte order is kept, as a real link keeps it. The relay also charges
//! each new connection the round trip of the TCP handshake: the client's first bytes
//! reach the server one RTT plus one transit after it connected, as they would.
//!
//! What it cannot do: lose packets, or show what TCP/IP adds. Two TCP connections
//! (client → relay → server) carry the bytes, each with its own segments,
//! acknowledgements and retransmissions on loopback; a lost packet would be a
//! retransmission delay whose size depends on the kernel's timers, and faking it would be
//! a guess. That is what the packet link is for.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Network;

/// A running emulator: subscribers connect to [`Emulator::addr`] instead of the server.
/// Dropping it closes every relayed connection.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    /// Accepts connections and owns their relays (a `JoinSet`, aborted with it).
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Largest chunk read at once: one chunk is one unit of delay and pacing.
const CHUNK: usize = 16 * 1024;
/// Chunks in flight per direction: the link's buffer. When it is full the relay stops
/// reading and TCP's own flow control pushes back on the sender, as on a real link.
const IN_FLIGHT: usize = 64;

impl Emulator {
    /// Listens on 127.0.0.1 and relays every connection to `server` through `network`.
    pub async fn start(server: SocketAddr, network: Network) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut relays = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((client, _)) => { relays.spawn(relay(client, server, network)); }
                        Err(_) => return,
                    },
                    Some(_) = relays.join_next(), if !relays.is_empty() => {}
                }
            }
        });
        Ok(Emulator { addr, task })
    }

    /// Where subscribers connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// One subscriber connection: two directions, each delayed and paced.
async fn relay(client: TcpStream, server: SocketAddr, network: Network) {
    let accepted = Instant::now();
    let Ok(upstream) = TcpStream::connect(server).await else { return };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = upstream.into_split();
    // The handshake: a real client's connect() returns after one RTT, and only then can
    // its first bytes leave.
    let handshake_done = accepted + network.rtt;
    tokio::join!(
        direction(client_read, server_write, network, handshake_done),
        direction(server_read, client_write, network, accepted),
    );
}

/// Moves bytes from `from` to `to` through the link: a reader that timestamps chunks
/// and a writer that releases each at its delivery time.
async fn direction(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    network: Network,
    earliest_send: Instant,
) {
    let (chunks, mut pending) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0 || chunks.send((Instant::now(), buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
    };
    let writer = async move {
        let mut link_free = earliest_send;
        let mut last_delivery = earliest_send;
        while let Some((arrived, chunk)) = pending.recv().await {
            // Serialisation: the chunk leaves when the link is free, taking len / rate.
            let start = arrived.max(link_free);
            link_free = match network.bandwidth_bytes_per_second {
                Some(rate) => start + Duration::from_secs_f64(chunk.len() as f64 / rate as f64),
                None => start,
            };
            // Propagation plus jitter; never before the chunk ahead (no reordering).
            let jitter = network.jitter.mul_f64(fastrand::f64());
            let delivery = (link_free + network.one_way() + jitter).max(last_delivery);
            last_delivery = delivery;
            tokio::time::sleep_until(delivery).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
