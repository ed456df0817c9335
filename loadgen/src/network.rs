//! An emulated network between the subscribers and the server: round-trip time, jitter
//! and bandwidth, in process, with no root and no kernel support.
//!
//! Each subscriber connection goes through a TCP relay that holds every chunk of bytes
//! for the link's one-way delay (half the RTT, plus random jitter) and paces it at the
//! link's bandwidth before passing it on. A chunk is never released before the one ahead
//! of it, so TCP's byte order is kept, as a real link keeps it. The relay also charges
//! each new connection the round trip of the TCP handshake: the client's first bytes
//! reach the server one RTT plus one transit after it connected, as they would.
//!
//! The publisher does not cross this network: it stands for the event source beside the
//! server, so one-way delivery latency is one transit.
//!
//! What it cannot do: lose packets. Above TCP a lost packet is a retransmission delay
//! whose size depends on the kernel's timers; faking it would be a guess. Loss needs a
//! packet-level link, which this build does not have yet (see `--loss`).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The emulated link between each subscriber and the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// Round-trip time, split evenly between the two directions.
    #[serde(rename = "rtt_ms", serialize_with = "as_ms", deserialize_with = "from_ms")]
    pub rtt: Duration,
    /// Extra random delay per chunk and direction, uniform in `[0, jitter]`.
    #[serde(rename = "jitter_ms", serialize_with = "as_ms", deserialize_with = "from_ms")]
    pub jitter: Duration,
    /// Link rate per subscriber, each direction, bytes per second (`None`: unlimited).
    #[serde(default)]
    pub bandwidth_bytes_per_second: Option<u64>,
}

fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e3)
}

fn from_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let ms = f64::deserialize(d)?;
    Duration::try_from_secs_f64(ms / 1e3).map_err(serde::de::Error::custom)
}

impl Network {
    /// Loopback as it is: nothing to emulate.
    pub fn is_direct(&self) -> bool {
        self.rtt.is_zero() && self.jitter.is_zero() && self.bandwidth_bytes_per_second.is_none()
    }

    fn one_way(&self) -> Duration {
        self.rtt / 2
    }
}

/// Parses a link rate: `10mbit`, `512kbit`, `1gbit`, `100KB/s`, `2MB/s`, `500B/s`.
/// Decimal units (1 kbit = 1,000 bit/s), as network links are rated. The unit is
/// required: a bare `10` could mean 10 bytes or 10 megabits per second, and guessing
/// wrong makes a link a million times slower than meant.
pub fn parse_bandwidth(text: &str) -> Result<u64, String> {
    const EXAMPLE: &str = "e.g. 10mbit, 512kbit or 1MB/s";
    let t = text.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("expected a rate with a unit, {EXAMPLE}"))?;
    let bytes_per_second = match unit.trim() {
        "" => return Err(format!("{text:?} has no unit: write the rate with one, {EXAMPLE}")),
        "b/s" => number,
        "kbit" | "kbit/s" => number * 1e3 / 8.0,
        "mbit" | "mbit/s" => number * 1e6 / 8.0,
        "gbit" | "gbit/s" => number * 1e9 / 8.0,
        "kb/s" => number * 1e3,
        "mb/s" => number * 1e6,
        "gb/s" => number * 1e9,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use kbit, mbit, gbit, B/s, KB/s, MB/s, GB/s), {EXAMPLE}"
            ))
        }
    };
    if bytes_per_second < 1.0 {
        return Err(format!("bandwidth {text:?} is below 1 byte per second"));
    }
    Ok(bytes_per_second as u64)
}

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

/// Why `--loss` cannot run on this machine, in words a user can act on.
///
/// Packet loss can only be emulated honestly below TCP, with Linux `tc netem` on a veth
/// pair between two network namespaces. The kernels this project was developed on have
/// no `sch_netem` module (`tc` answers "Specified qdisc kind is unknown"), so that mode
/// could not be built and tested here, and pushlab does not pretend to have it.
pub fn loss_unavailable(loss: f64) -> String {
    let probe = std::process::Command::new("tc").args(["qdisc", "show"]).output();
    let tc = match probe {
        Ok(output) if output.status.success() => "tc is installed",
        _ => "tc (iproute2) is not installed",
    };
    format!(
        "--loss {loss}: packet loss needs a packet-level link (Linux `tc netem` inside a network \
         namespace), which this build does not have yet: the in-process emulator relays TCP \
         streams and cannot drop packets ({tc}). Emulate delay and bandwidth \
         with --rtt, --jitter and --bandwidth instead, or apply netem yourself, e.g. \
         `tc qdisc add dev lo root netem loss {loss}%` on a test machine, and run pushlab there."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidths_parse_in_decimal_units() {
        assert_eq!(parse_bandwidth("8mbit"), Ok(1_000_000));
        assert_eq!(parse_bandwidth("512kbit"), Ok(64_000));
        assert_eq!(parse_bandwidth("2MB/s"), Ok(2_000_000));
        assert_eq!(parse_bandwidth("1500B/s"), Ok(1500));
        // A bare number is refused, with an example, rather than read as bytes/s.
        let bare = parse_bandwidth("10").unwrap_err();
        assert!(bare.contains("no unit") && bare.contains("10mbit"), "{bare}");
        assert!(parse_bandwidth("fast").is_err());
        assert!(parse_bandwidth("10 furlongs").is_err());
    }
}
