//! The workload: what every transport is driven with, identically.
//!
//! Raw command-line flags ([`WorkloadArgs`]) are validated into a [`Workload`] before
//! anything runs, so a bad value is an error message, not a strange measurement.

use std::time::Duration;

use anyhow::bail;
use clap::Args;
use pushlab_protocol::Transport;
use serde::{Deserialize, Serialize};

use crate::client::tls::{parse_http_version, HttpVersion};
use crate::network::loss::LossList;
use crate::network::{LinkChoice, LinkKind, LossSpec, Network};

/// Flags shared by `pushlab lab` and `pushlab load`. The defaults reproduce the chat
/// scenario of the seed documents: clients that poll every 500 ms, small messages.
#[derive(Debug, Clone, Args)]
pub struct WorkloadArgs {
    /// Subscriber clients per transport.
    #[arg(long, default_value_t = 100, value_parser = parse_clients, allow_hyphen_values = true)]
    pub clients: usize,
    /// Messages per second published on the stream (each is delivered to every client).
    #[arg(long, default_value_t = 10.0, value_parser = parse_rate, allow_negative_numbers = true)]
    pub rate: f64,
    /// Size of each message's `data`, in bytes of JSON.
    #[arg(long, default_value_t = 128)]
    pub payload: usize,
    /// Measured phase [--quick: 2s].
    #[arg(long, default_value = "15s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub duration: Duration,
    /// Messages flow but nothing is counted (connections settle, caches warm) [--quick: 500ms].
    #[arg(long, default_value = "3s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub warmup: Duration,
    /// Phase with no messages, to measure what each transport costs when nothing happens
    /// [--quick: 2s].
    #[arg(long, default_value = "20s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub idle: Duration,
    /// Short-poll interval (the seed's chat polls every 500 ms); a list
    /// (`100ms,500ms,2s`) runs the whole comparison once per value and plots the sweep.
    #[arg(long, value_delimiter = ',', default_value = "500ms", value_parser = parse_duration, allow_hyphen_values = true)]
    pub poll_interval: Vec<Duration>,
    /// How long the server holds a long poll when nothing happens [--quick: 1s].
    #[arg(long, default_value = "10s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub long_poll_timeout: Duration,
    /// Server heartbeat (SSE keep-alive comment, WebSocket ping) for spawned servers
    /// [--quick: 1s].
    #[arg(long, default_value = "5s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub heartbeat: Duration,
    /// Clients connected per second while ramping up.
    #[arg(long, default_value_t = 1000.0, allow_negative_numbers = true)]
    pub connect_rate: f64,
    /// Round-trip time between each subscriber and the server, half each way; a list
    /// (`0ms,50ms,150ms`) runs the whole comparison once per value.
    #[arg(long, value_delimiter = ',', default_value = "0ms", value_parser = parse_duration, allow_hyphen_values = true)]
    pub rtt: Vec<Duration>,
    /// Extra random delay per packet and direction (uniform in [0, JITTER]); packets keep
    /// their order unless --reorder.
    #[arg(long, default_value = "0ms", value_parser = parse_duration, allow_hyphen_values = true)]
    pub jitter: Duration,
    /// Let jittered packets overtake each other (packet link only).
    #[arg(long)]
    pub reorder: bool,
    /// Link rate, each direction, with a unit: e.g. 10mbit, 512kbit, 1MB/s. Packet link:
    /// one link shared by all subscribers; relay: each subscriber's own.
    #[arg(long, value_parser = crate::network::parse_bandwidth)]
    pub bandwidth: Option<u64>,
    /// Packets the link's drop-tail queue holds while waiting for --bandwidth (packet
    /// link only) [default: 1000, Linux's txqueuelen].
    #[arg(long, value_parser = parse_queue)]
    pub queue: Option<usize>,
    /// Packet loss (packet link only): `1%` both ways, `0%/2%` to the server / to the
    /// clients, `1%,burst=4` in Gilbert–Elliott bursts of 4 packets on average; a list
    /// (`0%,1%,3%`) runs the whole comparison once per value.
    #[arg(long, value_parser = crate::network::loss::parse_loss_flag, allow_hyphen_values = true)]
    pub loss: Option<LossList>,
    /// What carries the subscribers' packets: `netns` (a packet link between two network
    /// namespaces: loss, every IP byte counted; needs root and /dev/net/tun), `relay`
    /// (in process, no root: delay and bandwidth only, wire bytes estimated), or `auto`
    /// (netns when `pushlab lab` can make it, else relay, said in the output).
    #[arg(long, value_enum, default_value_t = LinkChoice::Auto)]
    pub link: LinkChoice,
    /// Pollers open a new TCP connection for every request (no HTTP keep-alive), so the
    /// handshake's round trip shows under --rtt.
    #[arg(long)]
    pub no_keepalive: bool,
    /// Each client closes its connection this often (first after a random fraction of
    /// it) and resumes from its cursor: checks that reconnecting loses nothing.
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    pub drop_every: Option<Duration>,
    /// Transports to run, comma separated: short_poll,long_poll,sse,ws.
    #[arg(long, value_delimiter = ',', default_value = "short_poll,long_poll,sse,ws")]
    pub transports: Vec<Transport>,
    /// Clients speak TLS (rustls) to the server. `lab` starts its servers with a
    /// certificate it makes for the run and trusts exactly that one; `load` trusts the
    /// server's --ca, or without it accepts the certificate the server presents (like
    /// `curl -k`) but still verifies the handshake's signatures.
    #[arg(long)]
    pub tls: bool,
    /// HTTP version of every client connection: 1.1 or 2 (over TLS by ALPN, in cleartext
    /// with prior knowledge); a list (`1.1,2`) runs the whole comparison once per value. A
    /// server that answers with another version stops the run.
    #[arg(long, value_delimiter = ',', default_value = "1.1", value_parser = parse_http_version)]
    pub http: Vec<HttpVersion>,
    /// `load` only: trust the server's certificate only if it chains to one in this PEM
    /// file (implies --tls). Without it, a `load --tls` accepts whatever certificate the
    /// server presents, like `curl -k`, but still verifies the handshake's signatures.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
    /// A few seconds per transport (for CI and for trying things out): shortens warm-up,
    /// duration, idle, long-poll timeout and heartbeat to the values in their help;
    /// keeps clients, rate and payload. A phase flag given explicitly wins over --quick.
    #[arg(long)]
    pub quick: bool,
}

/// A validated workload. Saved into `results.json` as the run's setup and read back
/// typed (see `Setup::typed_workload`): a field added after a run was saved takes its
/// `serde(default)`, so old results still load, and a misspelt name is a compile error,
/// not a silent 0.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Workload {
    /// Subscribers per transport.
    pub clients: usize,
    /// Messages per second on the stream.
    pub rate_per_second: f64,
    /// Bytes of `data` per message.
    pub payload_bytes: usize,
    /// Measured phase.
    #[serde(serialize_with = "seconds", deserialize_with = "from_seconds")]
    pub duration_seconds: Duration,
    /// Unmeasured warm-up.
    #[serde(serialize_with = "seconds", deserialize_with = "from_seconds")]
    pub warmup_seconds: Duration,
    /// Idle phase.
    #[serde(serialize_with = "seconds", deserialize_with = "from_seconds")]
    pub idle_seconds: Duration,
    /// Short-poll interval.
    #[serde(serialize_with = "seconds", deserialize_with = "from_seconds")]
    pub poll_interval_seconds: Duration,
    /// Long-poll hold time.
    #[serde(serialize_with = "seconds", deserialize_with = "from_seconds")]
    pub long_poll_timeout_seconds: Duration,
    /// Server heartbeat. Saved as `null` for a target (its heartbeat is its own), read
    /// back as zero: not recorded.
    #[serde(serialize_with = "seconds", deserialize_with = "from_optional_seconds_or_zero")]
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
    #[serde(default, serialize_with = "optional_seconds", deserialize_with = "from_optional_seconds")]
    pub drop_every_seconds: Option<Duration>,
    /// Whether `--quick` shortened the phases.
    pub quick: bool,
    /// What varies between the runs of a sweep (absent for a single run).
    pub sweep: Option<Sweep>,
    /// This run's place in the sweep, e.g. `rtt-50ms` or `poll-500ms` (its folder name).
    pub condition: Option<String>,
    /// Whether the clients spoke TLS (absent in runs made before: cleartext).
    #[serde(default)]
    pub tls: bool,
    /// The certificate file the clients trusted (`load --ca`); absent: the lab's own
    /// certificate, or (`load`) whatever the server presented, or no TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
    /// The HTTP version of the clients' connections (absent in runs made before: 1.1).
    #[serde(default)]
    pub http_version: HttpVersion,
}

/// The one setting a sweep varies, run by run: given as a list on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sweep {
    /// `--rtt 0ms,50ms,150ms`: the emulated round-trip time.
    Rtt,
    /// `--poll-interval 100ms,500ms,2s`: the short-poll interval.
    PollInterval,
    /// `--loss 0%,1%,3%`: packet loss on the link.
    Loss,
    /// `--http 1.1,2`: the HTTP version; under `lab --tls`, each in cleartext and over
    /// TLS ([`with_cleartext_references`]).
    Http,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn from_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Duration::try_from_secs_f64(f64::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn from_optional_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match Option::<f64>::deserialize(d)? {
        Some(s) => Duration::try_from_secs_f64(s).map(Some).map_err(serde::de::Error::custom),
        None => Ok(None),
    }
}

fn from_optional_seconds_or_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Ok(from_optional_seconds(d)?.unwrap_or(Duration::ZERO))
}

fn optional_seconds<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// A duration with its unit, e.g. `50ms`, `1.5s`, `2m`; the error says so with an example
/// (humantime alone answers "expected number at 0").
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.trim_start().starts_with('-') {
        return Err(format!("{text:?} is negative: a duration is zero or more, e.g. 0ms, 50ms, 1.5s"));
    }
    if let Ok(seconds) = text.trim().parse::<f64>() {
        return Err(format!("{text:?} has no unit: write e.g. {seconds}s or {seconds}ms"));
    }
    humantime::parse_duration(text.trim())
        .map_err(|_| format!("expected a duration with a unit, e.g. 50ms, 1.5s or 2m, not {text:?}"))
}

/// The queue, in packets: at least 1.
fn parse_queue(text: &str) -> Result<usize, String> {
    match text.trim().trim_end_matches("packets").trim().parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(format!("expected a number of packets from 1 to 1000000, e.g. --queue 100, not {text:?}")),
    }
}

/// A whole number of clients, at least 1.
fn parse_clients(text: &str) -> Result<usize, String> {
    match text.trim().parse::<i64>() {
        Ok(n) if n >= 1 => usize::try_from(n).map_err(|e| e.to_string()),
        Ok(n) => Err(format!("{n} clients: must be at least 1, e.g. --clients 100")),
        Err(_) => Err(format!("expected a whole number of clients, e.g. --clients 100, not {text:?}")),
    }
}

/// A rate in messages per second, in (0, 1000000].
fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text.trim().parse().map_err(|_| {
        format!("expected messages per second as a number, e.g. --rate 10 or --rate 0.5, not {text:?}")
    })?;
    if !(rate.is_finite() && rate > 0.0 && rate <= 1_000_000.0) {
        return Err(format!(
            "{text}: must be a number of messages per second in (0, 1000000], e.g. --rate 10"
        ));
    }
    Ok(rate)
}

/// The flags whose value `--quick` would replace. Given on the command line, they win.
pub const QUICK_FLAGS: [&str; 5] = ["duration", "warmup", "idle", "long_poll_timeout", "heartbeat"];

/// Which of [`QUICK_FLAGS`] the user gave, from clap's record of where each value came
/// from (a default looks the same as a typed value once parsed).
pub fn explicit_flags(matches: &clap::ArgMatches) -> Vec<&'static str> {
    QUICK_FLAGS
        .into_iter()
        .filter(|id| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        .collect()
}

/// What `lab --tls` runs: each HTTP version in cleartext first, then over TLS, so that
/// what TLS adds is read against the same version without it, in the same run (and what
/// HTTP/2 changes against HTTP/1.1). Conditions `http-1.1`, `https-1.1`, `http-2`,
/// `https-2`. Workloads without TLS, or sweeping another setting (all under TLS), are
/// returned as they are.
pub fn with_cleartext_references(workloads: Vec<Workload>) -> Vec<Workload> {
    let protocol_only = workloads.iter().all(|w| w.tls && matches!(w.sweep, None | Some(Sweep::Http)));
    if !protocol_only {
        return workloads;
    }
    workloads
        .into_iter()
        .flat_map(|tls| {
            let version = tls.http_version;
            let cleartext = Workload {
                tls: false,
                sweep: Some(Sweep::Http),
                condition: Some(format!("http-{version}")),
                ..tls.clone()
            };
            let tls =
                Workload { sweep: Some(Sweep::Http), condition: Some(format!("https-{version}")), ..tls };
            [cleartext, tls]
        })
        .collect()
}

impl WorkloadArgs {
    /// Checks every value and applies `--quick`: one workload. A list of `--rtt` or
    /// `--poll-interval` values is for [`WorkloadArgs::validate_all`].
    pub fn validate(&self) -> anyhow::Result<Workload> {
        self.validate_with(&[])
    }

    /// [`WorkloadArgs::validate`], keeping the `explicit` flags (see [`explicit_flags`])
    /// as given under `--quick`.
    pub fn validate_with(&self, explicit: &[&str]) -> anyhow::Result<Workload> {
        let mut all = self.validate_all_with(explicit)?;
        if all.len() > 1 {
            bail!("this command takes one --rtt, --poll-interval, --loss and --http value, not a list");
        }
        Ok(all.remove(0))
    }

    /// One validated workload per value of the swept setting (`--rtt` or
    /// `--poll-interval`), in the order given.
    pub fn validate_all(&self) -> anyhow::Result<Vec<Workload>> {
        self.validate_all_with(&[])
    }

    /// [`WorkloadArgs::validate_all`], keeping the `explicit` flags as given under
    /// `--quick`.
    pub fn validate_all_with(&self, explicit: &[&str]) -> anyhow::Result<Vec<Workload>> {
        if self.rtt.is_empty() || self.poll_interval.is_empty() || self.http.is_empty() {
            bail!("--rtt, --poll-interval and --http need at least one value, e.g. 0ms or 1.1");
        }
        let losses = self.loss.clone().map_or_else(|| vec![LossSpec::default()], |l| l.0);
        let lists = [self.rtt.len(), self.poll_interval.len(), losses.len(), self.http.len()]
            .iter()
            .filter(|&&n| n > 1)
            .count();
        if lists > 1 {
            bail!(
                "sweep one setting at a time: give a list to --rtt, --poll-interval, --loss or --http, not to two of them"
            );
        }
        let one = self.validate_one(explicit)?;
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
        } else if losses.len() > 1 {
            Ok(losses
                .iter()
                .map(|&loss| Workload {
                    network: Network { loss, ..one.network },
                    sweep: Some(Sweep::Loss),
                    condition: Some(loss_condition(&loss)),
                    ..one.clone()
                })
                .collect())
        } else if self.http.len() > 1 {
            let mut versions = self.http.clone();
            versions.dedup();
            Ok(versions
                .iter()
                .map(|&http_version| Workload {
                    http_version,
                    sweep: Some(Sweep::Http),
                    condition: Some(format!("http-{http_version}")),
                    ..one.clone()
                })
                .collect())
        } else {
            Ok(vec![one])
        }
    }

    /// The link this run uses, from `--link` and what this process could make: a
    /// setting only the packet link has, on the relay, is an error that says so.
    fn link(&self) -> anyhow::Result<LinkKind> {
        let netns = crate::network::netns::get().is_some();
        let why_not = || {
            crate::network::netns::failure().map_or_else(
                || "only `pushlab lab` makes the packet link (it starts the server inside it)".to_string(),
                |reason| format!("the packet link could not be made: {reason}"),
            )
        };
        let kind = match self.link {
            LinkChoice::Relay => LinkKind::Relay,
            LinkChoice::Netns if netns => LinkKind::Netns,
            LinkChoice::Netns => bail!("--link netns: {}", why_not()),
            LinkChoice::Auto if netns => LinkKind::Netns,
            LinkChoice::Auto => LinkKind::Relay,
        };
        if kind == LinkKind::Relay {
            let needs_packets = [
                (self.loss.iter().flat_map(|l| &l.0).any(|l| !l.is_none()), "--loss"),
                (self.reorder, "--reorder"),
                (self.queue.is_some(), "--queue"),
            ];
            if let Some((_, flag)) = needs_packets.iter().find(|(given, _)| *given) {
                bail!(
                    "{flag} needs the packet link (--link netns), and this run uses the in-process relay, which \
                     moves bytes, not packets: {}. Run `pushlab lab` as root on Linux with /dev/net/tun",
                    match self.link {
                        LinkChoice::Relay => "--link relay was asked for".to_string(),
                        _ => why_not(),
                    }
                );
            }
        }
        Ok(kind)
    }

    fn validate_one(&self, explicit: &[&str]) -> anyhow::Result<Workload> {
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
        // --quick shortens the phases, except those the user set: an explicit flag says
        // what they want, and silently replacing it would measure something else.
        let quick = |flag: &str, given: Duration, short: f64| match self.quick && !explicit.contains(&flag) {
            true => Duration::from_secs_f64(short),
            false => given,
        };
        let warmup = quick("warmup", self.warmup, 0.5);
        let duration = quick("duration", self.duration, 2.0);
        let idle = quick("idle", self.idle, 2.0);
        let long_poll_timeout = quick("long_poll_timeout", self.long_poll_timeout, 1.0);
        let heartbeat = quick("heartbeat", self.heartbeat, 1.0);
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
                reorder: self.reorder,
                bandwidth_bytes_per_second: self.bandwidth,
                queue_packets: self.queue.unwrap_or(crate::network::DEFAULT_QUEUE_PACKETS),
                loss: self.loss.as_ref().map_or_else(LossSpec::default, |l| l.0[0]),
                link: self.link()?,
            },
            keepalive: !self.no_keepalive,
            drop_every_seconds: self.drop_every,
            quick: self.quick,
            sweep: None,
            condition: None,
            // A CA to trust is a TLS setting: given, it means TLS.
            tls: self.tls || self.ca.is_some(),
            ca_file: self.ca.clone(),
            http_version: self.http[0],
        })
    }
}

/// A loss condition's folder name: `loss-1%`, `loss-1%-burst4`, `loss-0%-2%`.
fn loss_condition(loss: &LossSpec) -> String {
    let one = |l: &crate::network::Loss| {
        let burst = l.mean_burst_packets.map_or(String::new(), |b| format!("-burst{b}"));
        format!("{}%{burst}", l.rate * 100.0)
    };
    match loss.to_server == loss.to_clients {
        true => format!("loss-{}", one(&loss.to_server)),
        false => format!("loss-{}-{}", one(&loss.to_server), one(&loss.to_clients)),
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

    fn parse_explicit(args: &[&str]) -> anyhow::Result<Workload> {
        use clap::{CommandFactory, FromArgMatches};
        let matches =
            Args::command().try_get_matches_from(std::iter::once("pushlab").chain(args.iter().copied()))?;
        let parsed = Args::from_arg_matches(&matches)?;
        parsed.workload.validate_with(&explicit_flags(&matches))
    }

    #[test]
    fn explicit_phase_flags_win_over_quick() {
        let w = parse_explicit(&["--quick", "--duration", "7s", "--heartbeat", "3s"]).unwrap();
        assert_eq!(w.duration_seconds, Duration::from_secs(7));
        assert_eq!(w.heartbeat_seconds, Duration::from_secs(3));
        // The others are still shortened.
        assert_eq!(w.warmup_seconds, Duration::from_millis(500));
        assert_eq!(w.idle_seconds, Duration::from_secs(2));
    }

    #[test]
    fn bad_numbers_get_an_example_not_a_parser_error() {
        let message = |args: &[&str]| parse(args).unwrap_err().to_string();
        assert!(message(&["--rate", "-1"]).contains("e.g. --rate 10"), "{}", message(&["--rate", "-1"]));
        assert!(message(&["--clients", "-5"]).contains("e.g. --clients 100"));
        assert!(message(&["--rtt", "abc"]).contains("e.g. 50ms"));
        assert!(message(&["--rtt", "50"]).contains("no unit"));
        assert!(message(&["--bandwidth", "10"]).contains("10mbit"));
    }

    #[test]
    fn bad_values_are_refused_before_anything_runs() {
        assert!(parse(&["--clients", "0"]).is_err());
        assert!(parse(&["--rate", "0"]).is_err());
        assert!(parse(&["--payload", "10"]).is_err());
        assert!(parse(&["--long-poll-timeout", "121s"]).is_err());
        assert!(parse(&["--loss", "1"]).is_err());
        // Loss needs the packet link, which a unit test never makes: refused, saying why.
        let relay = parse(&["--loss", "1%"]).unwrap_err().to_string();
        assert!(relay.contains("packet link"), "{relay}");
        assert!(parse(&["--link", "netns"]).is_err());
        assert!(parse(&["--loss", "0%,1%", "--rtt", "0ms,50ms"]).is_err());
        assert!(parse(&["--rtt", "0ms,50ms", "--poll-interval", "1s,2s"]).is_err());
    }

    #[test]
    fn a_list_of_http_versions_is_a_sweep_and_others_are_refused_by_name() {
        let all = parse(&["--http", "1.1,2", "--tls"]).unwrap();
        let names: Vec<_> = all.iter().map(|w| w.condition.clone().unwrap()).collect();
        assert_eq!(names, ["http-1.1", "http-2"]);
        assert!(all.iter().all(|w| w.tls && w.sweep == Some(Sweep::Http)));
        assert_eq!(all[1].http_version, HttpVersion::Http2);
        let one = parse(&[]).unwrap().remove(0);
        assert_eq!((one.tls, one.http_version, one.sweep), (false, HttpVersion::Http1, None));
        let three = parse(&["--http", "3"]).unwrap_err().to_string();
        assert!(three.contains("--http") && three.contains("HTTP/3 is not supported"), "{three}");
        let garbage = parse(&["--http", "fast"]).unwrap_err().to_string();
        assert!(garbage.contains("--http") && garbage.contains("1.1 or 2"), "{garbage}");
        let two = parse(&["--http", "1.1,2", "--rtt", "0ms,50ms"]).unwrap_err().to_string();
        assert!(two.contains("one setting at a time") && two.contains("--http"), "{two}");
        assert!(parse(&["--ca", "ca.pem"]).unwrap()[0].tls, "--ca implies TLS");
    }

    #[test]
    fn lab_tls_compares_each_version_with_itself_in_cleartext() {
        let all = super::with_cleartext_references(parse(&["--http", "1.1,2", "--tls"]).unwrap());
        let names: Vec<_> = all.iter().map(|w| w.condition.clone().unwrap()).collect();
        assert_eq!(names, ["http-1.1", "https-1.1", "http-2", "https-2"]);
        assert_eq!(all.iter().map(|w| w.tls).collect::<Vec<_>>(), [false, true, false, true]);
        let one = super::with_cleartext_references(parse(&["--tls"]).unwrap());
        assert_eq!(one.iter().map(|w| w.tls).collect::<Vec<_>>(), [false, true]);
        // Sweeping another setting: every run under TLS, as asked.
        let rtt = super::with_cleartext_references(parse(&["--tls", "--rtt", "0ms,50ms"]).unwrap());
        assert!(rtt.len() == 2 && rtt.iter().all(|w| w.tls));
        let plain = super::with_cleartext_references(parse(&["--http", "1.1,2"]).unwrap());
        assert!(plain.len() == 2 && plain.iter().all(|w| !w.tls));
    }

    #[test]
    fn a_workload_saved_before_tls_reads_as_cleartext_http_1_1() {
        let mut saved = serde_json::to_value(parse(&[]).unwrap().remove(0)).unwrap();
        for key in ["tls", "http_version", "ca_file"] {
            saved.as_object_mut().unwrap().remove(key);
        }
        let w: Workload = serde_json::from_value(saved).unwrap();
        assert_eq!((w.tls, w.http_version, w.ca_file), (false, HttpVersion::Http1, None));
    }
}
