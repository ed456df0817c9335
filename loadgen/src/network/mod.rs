//! The network between the subscribers and the server: round-trip time, jitter,
//! bandwidth, a queue, and packet loss.
//!
//! Two ways to make it, chosen by `--link`:
//!
//! - [`netns`] + [`link`]: **the packet link** (the design of mahimahi, Netravali et al.,
//!   USENIX ATC 2015). The run moves itself and its server into a network namespace of
//!   its own, puts the clients in a second one, and joins the two with a TUN device in
//!   each. Every IP packet between a client and the server is read by pushlab's link
//!   threads, which delay, pace, drop and count it. Both ends keep the kernel's real TCP
//!   (retransmissions, congestion control, delayed ACKs), so a lost packet costs what it
//!   costs. Needs root and `/dev/net/tun`.
//! - [`relay`]: an in-process TCP relay that delays and paces *bytes*. No root needed;
//!   it cannot drop packets, and what TCP/IP adds on the wire is estimated from the
//!   kernel's segment counters, not counted.
//!
//! [`loss`] holds the loss models (independent and Gilbert–Elliott bursts) and
//! [`packet`] reads what the link needs from each IPv4/TCP header.
//!
//! The publisher never crosses the link: it stands for the event source beside the
//! server, so one-way delivery latency is one transit.

pub mod check;
pub mod link;
pub mod loss;
pub mod netns;
pub mod packet;
pub mod relay;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use loss::{Loss, LossSpec};

/// The emulated link between each subscriber and the server.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// Round-trip time, split evenly between the two directions.
    #[serde(rename = "rtt_ms", serialize_with = "as_ms", deserialize_with = "from_ms")]
    pub rtt: Duration,
    /// Extra random delay per packet (relay: per chunk) and direction, uniform in
    /// `[0, jitter]`.
    #[serde(rename = "jitter_ms", serialize_with = "as_ms", deserialize_with = "from_ms")]
    pub jitter: Duration,
    /// Whether jittered packets may overtake each other (packet link only; a relay keeps
    /// byte order, as a TCP stream must).
    #[serde(default)]
    pub reorder: bool,
    /// Link rate, each direction, bytes per second (`None`: unlimited). Packet link: one
    /// link shared by all subscribers, as a home router's uplink is; relay: each
    /// subscriber's own.
    #[serde(default)]
    pub bandwidth_bytes_per_second: Option<u64>,
    /// Packets the link's drop-tail queue holds while waiting for the bandwidth (packet
    /// link only): a deeper queue drops less and delays more (bufferbloat).
    #[serde(default = "default_queue_packets")]
    pub queue_packets: usize,
    /// Packet loss, per direction (packet link only).
    #[serde(default)]
    pub loss: LossSpec,
    /// Which link carried the run (recorded: `relay` for results made before the packet
    /// link existed, which is what they used).
    #[serde(default)]
    pub link: LinkKind,
}

impl Default for Network {
    /// Loopback as it is: no delay, no limit, no loss, on the relay.
    fn default() -> Self {
        Network {
            rtt: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder: false,
            bandwidth_bytes_per_second: None,
            queue_packets: DEFAULT_QUEUE_PACKETS,
            loss: LossSpec::default(),
            link: LinkKind::default(),
        }
    }
}

/// The default queue: 1,000 packets, Linux's default `txqueuelen`.
pub const DEFAULT_QUEUE_PACKETS: usize = 1000;

fn default_queue_packets() -> usize {
    DEFAULT_QUEUE_PACKETS
}

/// What carries the subscribers' traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// The in-process relay (or loopback itself when there is nothing to emulate).
    #[default]
    Relay,
    /// The packet link between two network namespaces.
    Netns,
}

/// What `--link` asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LinkChoice {
    /// The packet link when this process can make one (root, `/dev/net/tun`), else the
    /// relay, said in the output.
    #[default]
    Auto,
    /// The packet link, or an error saying why not.
    Netns,
    /// The relay, even where the packet link could run.
    Relay,
}

fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e3)
}

fn from_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let ms = f64::deserialize(d)?;
    Duration::try_from_secs_f64(ms / 1e3).map_err(serde::de::Error::custom)
}

impl Network {
    /// Nothing to emulate: on the relay, clients connect to the server directly.
    pub fn is_direct(&self) -> bool {
        self.rtt.is_zero() && self.jitter.is_zero() && self.bandwidth_bytes_per_second.is_none()
    }

    /// One line for the run's output: which link, and what it emulates.
    pub fn describe(&self) -> String {
        let mut conditions = vec![format!("RTT {} ms", self.rtt.as_secs_f64() * 1e3)];
        if !self.jitter.is_zero() {
            let order = if self.reorder { ", may reorder" } else { "" };
            conditions.push(format!("jitter ≤ {} ms{order}", self.jitter.as_secs_f64() * 1e3));
        }
        if let Some(rate) = self.bandwidth_bytes_per_second {
            conditions.push(format!("{} kbit/s", rate * 8 / 1000));
        }
        let conditions = conditions.join(", ");
        match self.link {
            LinkKind::Netns => format!(
                "link: packet link between two network namespaces (every IP packet counted); {conditions}, \
                 loss {}{}",
                self.loss,
                match self.bandwidth_bytes_per_second {
                    Some(_) => format!(", queue {} packets", self.queue_packets),
                    None => String::new(),
                }
            ),
            LinkKind::Relay => {
                let why =
                    netns::failure().map_or(String::new(), |reason| format!(" (no packet link: {reason})"));
                let how = match self.is_direct() {
                    true => "clients connect to the server over loopback",
                    false => "in-process relay",
                };
                format!("link: {how}, wire bytes estimated from TCP segment counts{why}; {conditions}")
            }
        }
    }

    /// Half the round trip.
    pub fn one_way(&self) -> Duration {
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
