//! The workload: what every transport is driven with, identically.
//!
//! Raw command-line flags ([`WorkloadArgs`]) are validated into a [`Workload`] before
//! anything runs, so a bad value is an error message, not a strange measurement.

use std::time::Duration;

use anyhow::bail;
use clap::Args;
use pushlab_server::Transport;
use serde::Serialize;

use crate::network::Network;

/// Flags shared by `pushlab lab` and `pushlab load`. The defaults reproduce the chat
/// scenario of the seed documents: clients that poll every 500 ms, small messages.
#[derive(Debug, Clone, Args)]
pub struct WorkloadArgs {
    /// Subscriber clients per transport.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// Messages per second published on the stream (each is delivered to every client).
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Size of each message's `data`, in bytes of JSON.
    #[arg(long, default_value_t = 128)]
    pub payload: usize,
    /// Measured phase.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Messages flow but nothing is counted (connections settle, caches warm).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Phase with no messages, to measure what each transport costs when nothing happens.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub idle: Duration,
    /// Short-poll interval (the seed's chat polls every 500 ms); a list
    /// (`100ms,500ms,2s`) runs the whole comparison once per value and plots the sweep.
    #[arg(long, value_delimiter = ',', default_value = "500ms", value_parser = humantime::parse_duration)]
    pub poll_interval: Vec<Duration>,
    /// How long the server holds a long poll when nothing happens.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub long_poll_timeout: Duration,
    /// Server heartbeat (SSE keep-alive comment, WebSocket ping) for spawned servers.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub heartbeat: Duration,
    /// Clients connected per second while ramping up.
    #[arg(long, default_value_t = 1000.0)]
    pub connect_rate: f64,
    /// Round-trip time between each subscriber and the server, emulated in process;
    /// a list (`0ms,50ms,150ms`) runs the whole comparison once per value.
    #[arg(long, value_delimiter = ',', default_value = "0ms", value_parser = humantime::parse_duration)]
    pub rtt: Vec<Duration>,
    /// Extra random delay per direction (uniform in [0, JITTER]); never reorders bytes.
    #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
    pub jitter: Duration,
    /// Link rate per subscriber, each direction: e.g. 10mbit, 512kbit, 1MB/s.
    #[arg(long, value_parser = crate::network::parse_bandwidth)]
    pub bandwidth: Option<u64>,
    /// Packet loss in percent. Needs Linux `tc netem` in a network namespace (root);
    /// pushlab says so when it cannot run.
    #[arg(long)]
    pub loss: Option<f64>,
    /// Pollers open a new TCP connection for every request (no HTTP keep-alive), so the
    /// handshake's round trip shows under --rtt.
    #[arg(long)]
    pub no_keepalive: bool,
    /// Each client closes its connection this often (first after a random fraction of
    /// it) and resumes from its cursor: checks that reconnecting loses nothing.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub drop_every: Option<Duration>,
    /// Transports to run, comma separated: short_poll,long_poll,sse,ws.
    #[arg(long, value_delimiter = ',', default_value = "short_poll,long_poll,sse,ws")]
    pub transports: Vec<Transport>,
    /// A few seconds per transport (for CI and for trying things out): shortens warm-up,
    /// duration, idle, long-poll timeout and heartbeat; keeps clients, rate and payload.
    #[arg(long)]
    pub quick: bool,
}

/// A validated workload. Serialized into `results.json` as the run's setup.
#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    /// Subscribers per transport.
    pub clients: usize,
    /// Messages per second on the stream.
    pub rate_per_second: f64,
    /// Bytes of `data` per message.
    pub payload_bytes: usize,
    /// Measured phase.
    #[serde(serialize_with = "seconds")]
    pub duration_seconds: Duration,
    /// Unmeasured warm-up.
    #[serde(serialize_with = "seconds")]
    pub warmup_seconds: Duration,
    /// Idle phase.
    #[serde(serialize_with = "seconds")]
    pub idle_seconds: Duration,
    /// Short-poll interval.
    #[serde(serialize_with = "seconds")]
    pub poll_interval_seconds: Duration,
    /// Long-poll hold time.
    #[serde(serialize_with = "seconds")]
    pub long_poll_timeout_seconds: Duration,
    /// Server heartbeat.
    #[serde(serialize_with = "seconds")]
    pub heartbeat_seconds: Duration,
    /// Connection ramp.
    pub connect_rate_per_second: f64,
    /// Transports, in run order.
    pub transports: Vec<Transport>,
    /// The emulated network between subscribers and server.
    pub network: Network,
    /// Whether pollers keep their connection alive between requests.
    pub keepalive: bool,
    /// Each client drops its connection this often and resumes (absent: never).
    #[serde(serialize_with = "optional_seconds")]
    pub drop_every_seconds: Option<Duration>,
    /// Whether `--quick` shortened the phases.
    pub quick: bool,
    /// What varies between the runs of a sweep (absent for a single run).
    pub sweep: Option<Sweep>,
    /// This run's place in the sweep, e.g. `rtt-50ms` or `poll-500ms` (its folder name).
    pub condition: Option<String>,
}

/// The one setting a sweep varies, run by run: given as a list on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sweep {
    /// `--rtt 0ms,50ms,150ms`: the emulated round-trip time.
    Rtt,
    /// `--poll-interval 100ms,500ms,2s`: the short-poll interval.
    PollInterval,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn optional_seconds<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

impl WorkloadArgs {
    /// Checks every value and applies `--quick`: one workload. A list of `--rtt` or
    /// `--poll-interval` values is for [`WorkloadArgs::validate_all`].
    pub fn validate(&self) -> anyhow::Result<Workload> {
        let mut all = self.validate_all()?;
        if all.len() > 1 {
            bail!("this command takes one --rtt and one --poll-interval value, not a list");
        }
        Ok(all.remove(0))
    }

    /// One validated workload per value of the swept setting (`--rtt` or
    /// `--poll-interval`), in the order given.
    pub fn validate_all(&self) -> anyhow::Result<Vec<Workload>> {
        if let Some(loss) = self.loss {
            bail!("{}", crate::network::loss_unavailable(loss));
        }
        if self.rtt.is_empty() || self.poll_interval.is_empty() {
            bail!("--rtt and --poll-interval need at least one value, e.g. 0ms");
        }
        if self.rtt.len() > 1 && self.poll_interval.len() > 1 {
            bail!("sweep one setting at a time: give a list to --rtt or to --poll-interval, not both");
        }
        let one = self.validate_one()?;
        if self.rtt.len() > 1 {
            Ok(self
                .rtt
                .iter()
                .map(|&rtt| Workload {
                    network: Network { rtt, ..one.network },
                    sweep: Some(Sweep::Rtt),
                    condition: Some(format!("rtt-{}ms", rtt.as_secs_f64() * 1e3)),
                    ..one.clone()
                })
                .collect())
        } else if self.poll_interval.len() > 1 {
            Ok(self
                .poll_interval
                .iter()
                .map(|&interval| Workload {
                    poll_interval_seconds: interval,
                    sweep: Some(Sweep::PollInterval),
                    condition: Some(format!("poll-{}ms", interval.as_secs_f64() * 1e3)),
                    ..one.clone()
                })
                .collect())
        } else {
            Ok(vec![one])
        }
    }

    fn validate_one(&self) -> anyhow::Result<Workload> {
        if self.clients == 0 {
            bail!("--clients must be at least 1");
        }
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1_000_000.0) {
            bail!("--rate must be a number of messages per second in (0, 1000000], got {}", self.rate);
        }
        if !(self.connect_rate.is_finite() && self.connect_rate > 0.0) {
            bail!("--connect-rate must be a positive number of connections per second");
        }
        if self.payload < MIN_PAYLOAD || self.payload > 60 * 1024 {
            bail!("--payload must be between {MIN_PAYLOAD} and 61440 bytes (the sequence number and intended time take {MIN_PAYLOAD})");
        }
        if self.duration.is_zero() {
            bail!("--duration must be longer than zero");
        }
        if self.poll_interval.iter().any(|&i| i < Duration::from_millis(1)) {
            bail!("--poll-interval must be at least 1ms");
        }
        if self.long_poll_timeout > Duration::from_secs(120) {
            bail!("--long-poll-timeout may be at most 120s (the server's maximum)");
        }
        if self.drop_every.is_some_and(|d| d < Duration::from_millis(100)) {
            bail!("--drop-every must be at least 100ms (a client must get to read something)");
        }
        if self.heartbeat < Duration::from_millis(100) {
            bail!("--heartbeat must be at least 100ms");
        }
        // Each transport once, in the order first given.
        let mut transports: Vec<Transport> = Vec::new();
        for &t in &self.transports {
            if !transports.contains(&t) {
                transports.push(t);
            }
        }
        if transports.is_empty() {
            bail!("--transports needs at least one of short_poll,long_poll,sse,ws");
        }
        let (warmup, duration, idle, long_poll_timeout, heartbeat) = if self.quick {
            let s = Duration::from_secs_f64;
            (s(0.5), s(2.0), s(2.0), s(1.0), s(1.0))
        } else {
            (self.warmup, self.duration, self.idle, self.long_poll_timeout, self.heartbeat)
        };
        Ok(Workload {
            clients: self.clients,
            rate_per_second: self.rate,
            payload_bytes: self.payload,
            duration_seconds: duration,
            warmup_seconds: warmup,
            idle_seconds: idle,
            poll_interval_seconds: self.poll_interval[0],
            long_poll_timeout_seconds: long_poll_timeout,
            heartbeat_seconds: heartbeat,
            connect_rate_per_second: self.connect_rate,
            transports,
            network: Network {
                rtt: self.rtt[0],
                jitter: self.jitter,
                bandwidth_bytes_per_second: self.bandwidth,
            },
            keepalive: !self.no_keepalive,
            drop_every_seconds: self.drop_every,
            quick: self.quick,
            sweep: None,
            condition: None,
        })
    }
}

/// Smallest payload: `{"seq":…,"t_us":…,"pad":""}` with room for large numbers.
pub const MIN_PAYLOAD: usize = 48;

impl Workload {
    /// Messages the publisher sends: warm-up plus measured phase, at the rate.
    pub fn messages(&self) -> u64 {
        ((self.warmup_seconds + self.duration_seconds).as_secs_f64() * self.rate_per_second).floor() as u64
    }

    /// When message `seq` is meant to be published, from the start of publishing.
    pub fn intended_offset(&self, seq: u64) -> Duration {
        Duration::from_secs_f64(seq as f64 / self.rate_per_second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        workload: WorkloadArgs,
    }

    fn parse(args: &[&str]) -> anyhow::Result<Vec<Workload>> {
        let mut all = vec!["pushlab"];
        all.extend(args);
        Args::try_parse_from(all)?.workload.validate_all()
    }

    #[test]
    fn each_transport_runs_once_in_the_order_given() {
        let w = parse(&["--transports", "ws,sse,ws"]).unwrap().remove(0);
        assert_eq!(w.transports, vec![Transport::Ws, Transport::Sse]);
    }

    #[test]
    fn a_list_of_round_trip_times_is_one_workload_each() {
        let all = parse(&["--rtt", "0ms,50ms"]).unwrap();
        assert_eq!(all.iter().map(|w| w.network.rtt.as_millis()).collect::<Vec<_>>(), vec![0, 50]);
    }

    #[test]
    fn a_list_of_poll_intervals_is_a_sweep() {
        let all = parse(&["--poll-interval", "100ms,2s", "--rtt", "20ms"]).unwrap();
        let names: Vec<_> = all.iter().map(|w| w.condition.clone().unwrap()).collect();
        assert_eq!(names, ["poll-100ms", "poll-2000ms"]);
        assert!(all.iter().all(|w| w.network.rtt.as_millis() == 20 && w.sweep == Some(Sweep::PollInterval)));
    }

    #[test]
    fn bad_values_are_refused_before_anything_runs() {
        assert!(parse(&["--clients", "0"]).is_err());
        assert!(parse(&["--rate", "0"]).is_err());
        assert!(parse(&["--payload", "10"]).is_err());
        assert!(parse(&["--long-poll-timeout", "121s"]).is_err());
        assert!(parse(&["--loss", "1"]).is_err());
        assert!(parse(&["--rtt", "0ms,50ms", "--poll-interval", "1s,2s"]).is_err());
    }
}
