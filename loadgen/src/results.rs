//! The results of a run: what `results.json` holds (described by
//! `docs/results.schema.json`). Every name carries its unit.

use pushlab_protocol::Transport;
use serde::{Deserialize, Serialize};

use crate::complexity::ClientSize;
pub use crate::network::link::DirectionCount;

/// Version of this document's shape; bumped when a field changes meaning.
pub const SCHEMA_VERSION: u32 = 1;

/// A whole run: its setup and one result per transport.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// How the run was made.
    pub setup: Setup,
    /// One entry per transport, in run order.
    pub transports: Vec<TransportResult>,
    /// Anything that makes a figure less trustworthy (e.g. the load generator saturated).
    pub warnings: Vec<String>,
}

/// The run's setup, enough to repeat it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Setup {
    /// `pushlab` version.
    pub pushlab_version: String,
    /// The command line.
    pub command: String,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
    /// The commit the `pushlab` binary was built from (embedded by `build.rs`), with
    /// `+uncommitted` when its code differed from that commit; `unknown` for a build
    /// without git.
    pub git_commit: Option<String>,
    /// The machine.
    pub machine: Machine,
    /// The server: "spawned" (a fresh `pushlab serve` per transport) or a URL.
    pub target: String,
    /// The workload, as validated.
    pub workload: serde_json::Value,
}

/// The machine the run was made on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// From /proc/cpuinfo.
    pub cpu_model: String,
    /// Logical CPUs.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// Total memory, bytes.
    pub memory_bytes: u64,
    /// Open-files limit of the load generator.
    pub fd_limit: u64,
}

impl Machine {
    /// This machine, read from `/proc`, with the open-files limit in force.
    pub fn here(fd_limit: u64) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cpu_model,
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            memory_bytes: procfs::Current::current().map(|m: procfs::Meminfo| m.mem_total).unwrap_or(0),
            fd_limit,
        }
    }
}

/// Everything measured for one transport.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransportResult {
    /// `short_poll`, `long_poll`, `sse` or `ws`.
    pub transport: Transport,
    /// Publish → delivery latency over the measured window.
    pub latency: Latency,
    /// Completeness of delivery over the whole run.
    pub delivery: Delivery,
    /// Requests and bytes over the measured window.
    pub traffic: Traffic,
    /// Requests and bytes while no message flows.
    pub idle: Idle,
    /// The server process's cost (absent when the server is not a local process).
    pub server: Option<ServerCost>,
    /// The load generator's own cost.
    pub loadgen: LoadgenCost,
    /// Sending from client to server.
    pub upstream: Upstream,
    /// Packets and IP bytes on the wire: counted by the packet link, or estimated from
    /// the kernel's segment counters on the relay; absent in runs made before either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire: Option<Wire>,
    /// The size of this transport's reference browser client (`docs/clients/`), as the
    /// binary that ran had it; absent in runs made before it was saved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_client: Option<ClientSize>,
    /// What the subscribers' connections spoke, as negotiated (the HTTP version, TLS);
    /// absent in runs made before either could be chosen (all cleartext HTTP/1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<ProtocolUsed>,
    /// The subscribers' TLS handshakes over the whole run (the ramp and every
    /// reconnect), with `--tls`; absent without TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFigures>,
}

/// What carried a transport's connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolUsed {
    /// `1.1` or `2`: what the connections spoke (over TLS as ALPN chose it; a different
    /// answer than `--http` asked for stops the run).
    pub http_version: String,
    /// Whether the connections were TLS.
    pub tls: bool,
    /// The ALPN protocol the server chose (`h2`, `http/1.1`); absent in cleartext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
    /// `TLSv1_3` or `TLSv1_2`; absent in cleartext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
}

/// The TLS handshakes of one transport's run, all clients, from the ramp to the end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TlsFigures {
    /// Handshakes made.
    pub handshakes: u64,
    /// Of them, resumptions of an earlier session (a ticket; rustls' `HandshakeKind`).
    pub resumed_handshakes: u64,
    /// Socket bytes client → server per handshake, mean: from the TCP connect until the
    /// handshake completed (TCP's own SYNs carry no socket bytes). The server's session
    /// tickets, sent after, are in the traffic, not here.
    pub handshake_bytes_sent: f64,
    /// Socket bytes server → client per handshake, mean, over the same span.
    pub handshake_bytes_received: f64,
    /// Both ways per full handshake (certificate and key exchange), mean; absent when
    /// none was full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_handshake_bytes: Option<f64>,
    /// Both ways per resumed handshake, mean; absent when none resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_handshake_bytes: Option<f64>,
    /// TLS handshake time, median, ms: from the ClientHello (TCP already connected) to
    /// the handshake's end, one round trip for TLS 1.3.
    pub handshake_p50_ms: f64,
    /// The same, the slowest.
    pub handshake_max_ms: f64,
}

/// Latency percentiles, from the intended publish time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    /// Messages measured (deliveries in the window).
    pub samples: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// The merged HdrHistogram (µs), V2 + deflate, base64: re-analyse or merge runs.
    pub histogram: String,
}

/// Whether every client got every message exactly once, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    /// Messages the publisher published.
    pub published: u64,
    /// `published × clients`.
    pub expected: u64,
    /// Distinct messages received, summed over clients.
    pub delivered: u64,
    /// Expected but never received.
    pub lost: u64,
    /// Lost without the server saying so (a gap notice): must be 0.
    pub lost_untold: u64,
    /// Received more than once.
    pub duplicated: u64,
    /// Received after a later message.
    pub reordered: u64,
    /// Gap notices received.
    pub gap_notices: u64,
    /// Reset notices received.
    pub resets: u64,
}

/// Requests and bytes in the measured window, at the clients' sockets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Traffic {
    /// Length of the window.
    pub seconds: f64,
    /// Messages delivered in the window (all clients).
    pub messages: u64,
    /// HTTP requests (polls, SSE GETs, WebSocket handshakes).
    pub requests: u64,
    /// Poll responses with no message.
    pub empty_responses: u64,
    /// TCP connections opened.
    pub connections: u64,
    /// Server → client bytes.
    pub bytes_received: u64,
    /// Client → server bytes.
    pub bytes_sent: u64,
    /// Requests per delivered message.
    pub requests_per_message: f64,
    /// Bytes both ways per delivered message.
    pub bytes_per_message: f64,
    /// The message JSON as delivered (what an application needs), bytes.
    pub message_bytes: f64,
    /// `message_bytes / bytes_per_message`.
    pub payload_efficiency: f64,
    /// Server → client bytes at the HTTP layer: above TLS, the plaintext; without TLS the
    /// same as `bytes_received`. Absent in runs made before it was counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_bytes_received: Option<u64>,
    /// Client → server bytes at the HTTP layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_bytes_sent: Option<u64>,
    /// HTTP-layer bytes both ways per delivered message: `bytes_per_message` without
    /// what TLS adds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_bytes_per_message: Option<f64>,
}

/// What crossed the network at the IP layer between the clients and the server, over
/// the measured window (and per client while idle): TCP/IP headers, handshakes, pure
/// ACKs and retransmissions included, which the socket counts of [`Traffic`] cannot see.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Wire {
    /// How these figures were obtained.
    pub source: WireSource,
    /// Client → server packets.
    pub to_server: DirectionCount,
    /// Server → client packets.
    pub to_clients: DirectionCount,
    /// IP bytes both ways per delivered message.
    pub ip_bytes_per_message: f64,
    /// Packets both ways per delivered message.
    pub packets_per_message: f64,
    /// IP and TCP headers both ways per delivered message: `ip_bytes − payload`.
    pub header_bytes_per_message: f64,
    /// Packets carrying data sent before, both ways.
    pub retransmitted_packets: u64,
    /// Packets the link dropped (loss model and full queue), both ways.
    pub dropped_packets: u64,
    /// IP bytes both ways per client per second while no message flows.
    pub idle_ip_bytes_per_client_per_second: f64,
    /// The same over a day (×86,400): the "86 MB/day" figure, on the wire.
    pub idle_ip_bytes_per_client_per_day: f64,
    /// Packets both ways per client per second while idle.
    pub idle_packets_per_client_per_second: f64,
    /// CPU of the link's own threads per packet it moved, µs (packet link only): the
    /// link must never be what is measured.
    pub link_cpu_us_per_packet: Option<f64>,
    /// Of it, in the kernel, µs: mostly the receiving end's TCP/IP work, which a write
    /// into a TUN device does on the writer's thread. Absent in runs made before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_system_cpu_us_per_packet: Option<f64>,
}

/// Where the [`Wire`] figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireSource {
    /// Every packet counted by the packet link (`--link netns`).
    Counted,
    /// The relay: from the client sockets' `TCP_INFO` segment counts, each priced at
    /// [`ESTIMATED_HEADER_BYTES`] and data split at [`ESTIMATED_MSS`] as on Ethernet.
    /// Pure ACKs include handshake and teardown segments; the server's retransmissions
    /// and the kinds of packet are not known.
    Estimated,
}

/// IPv4 (20) + TCP (20) + the timestamp option Linux sends on every segment (12).
pub const ESTIMATED_HEADER_BYTES: u64 = 52;
/// The payload of a full segment on a 1,500-byte MTU: 1,500 − 52.
pub const ESTIMATED_MSS: u64 = 1448;

/// The cost of staying subscribed while nothing happens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Idle {
    /// Length of the idle window.
    pub seconds: f64,
    /// Requests per client per second.
    pub requests_per_client_per_second: f64,
    /// Bytes both ways per client per second.
    pub bytes_per_client_per_second: f64,
    /// The same rate over a day (×86,400): the "86 MB/day" figure.
    pub bytes_per_client_per_day: f64,
    /// HTTP-layer bytes both ways per client per second (above TLS). Absent in runs made
    /// before it was counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_bytes_per_client_per_second: Option<f64>,
    /// The same over a day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_bytes_per_client_per_day: Option<f64>,
    /// Socket bytes both ways per poll while idle (every idle poll is an empty one:
    /// request and answer; with `--no-keepalive` or `--drop-every` also the reconnects'
    /// handshakes); absent for SSE and WebSocket, which do not poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_empty_poll: Option<f64>,
    /// The same at the HTTP layer: what HPACK changes, without what TLS adds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_bytes_per_empty_poll: Option<f64>,
}

/// The server process, from /proc.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerCost {
    /// CPU seconds (user + system) in the measured window.
    pub cpu_seconds: f64,
    /// CPU per delivered message, µs.
    pub cpu_us_per_message: f64,
    /// CPU seconds in the idle window.
    pub idle_cpu_seconds: f64,
    /// Resident memory before any client connected.
    pub rss_before_clients_bytes: u64,
    /// Resident memory with every client connected, before publishing.
    pub rss_with_clients_bytes: u64,
    /// `(rss_with_clients − rss_before_clients) / clients`.
    pub memory_per_client_bytes: f64,
    /// Highest resident memory (VmHWM) over the run.
    pub peak_rss_bytes: u64,
}

/// The load generator's own cost, to show it was not the bottleneck.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadgenCost {
    /// CPU seconds in the measured window (whole process: clients and publisher).
    pub cpu_seconds: f64,
    /// CPU per received message, µs.
    pub cpu_us_per_message: f64,
    /// Worst lateness of the publisher behind its schedule.
    pub publisher_max_lag_ms: f64,
    /// `POST /publish` requests made.
    pub publish_requests: u64,
}

/// Client → server messages: over the same connection (WebSocket) or a separate HTTP
/// request (the others).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upstream {
    /// How a client of this transport sends.
    pub method: String,
    /// Sends timed.
    pub samples: u64,
    /// Send → acknowledgement, median.
    pub p50_ms: f64,
    /// Send → acknowledgement, 99th percentile.
    pub p99_ms: f64,
    /// Client → server bytes on the wire per send (request or frame, headers included).
    pub bytes_per_send: f64,
}

impl Setup {
    /// The workload, typed. Every `results.json` written since sweeps existed reads; a
    /// field added later takes its default. An error names the field that does not read.
    pub fn typed_workload(&self) -> Result<crate::workload::Workload, serde_json::Error> {
        serde_json::from_value(self.workload.clone())
    }
}

impl Results {
    /// The result for one transport, if it was run.
    pub fn transport(&self, transport: Transport) -> Option<&TransportResult> {
        self.transports.iter().find(|t| t.transport == transport)
    }
}

/// One step of a `pushlab lab --find-max` search (`saturation.json`, a list of
/// [`Curve`]s; made by `saturation.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// Messages per second on the stream.
    pub rate_per_second: f64,
    /// Deliveries per second offered: rate × clients.
    pub offered_deliveries_per_second: f64,
    /// Deliveries per second received in the measured window.
    pub delivered_per_second: f64,
    /// Latency.
    pub p50_ms: f64,
    /// Latency.
    pub p99_ms: f64,
    /// Messages lost.
    pub lost: u64,
    /// Server CPU per delivery, µs.
    pub server_cpu_us_per_delivery: Option<f64>,
    /// Server CPU, cores.
    pub server_cores: Option<f64>,
    /// Load generator CPU, cores.
    pub loadgen_cores: f64,
    /// Why the step failed, if it did.
    pub failed: Option<String>,
}

/// One transport's curve.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Curve {
    /// The transport.
    pub transport: String,
    /// Subscribers.
    pub clients: usize,
    /// Every step, the failing one last.
    pub steps: Vec<Step>,
    /// The highest delivery rate of a step that passed, deliveries/s.
    pub max_sustained_deliveries_per_second: f64,
}

/// The unit a figure is stored in: what the gate accepts after a number in `--fail-if`
/// and how reports print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count of things (messages, requests): printed whole.
    Count,
    /// Milliseconds.
    Ms,
    /// Microseconds.
    Us,
    /// Bytes (also per message, per client per second or per day).
    Bytes,
    /// Seconds (a window, CPU time).
    Seconds,
    /// A plain number: a ratio or a rate without a unit of its own.
    Number,
}

/// One numeric figure of a transport's result: its path in `results.json` (below the
/// transport, e.g. `latency.p99_ms`), its unit, and how to read it. The one list of the
/// figures, read by the gate (`ws.latency.p99_ms`), the CSV and the gate's report.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Path in `results.json` below the transport.
    pub path: &'static str,
    /// Its column in `summary.csv`, for the figures the CSV has.
    pub csv: Option<&'static str>,
    /// Unit of the stored value.
    pub unit: Unit,
    /// Whether the stored value is a whole number (`u64`), printed without decimals.
    pub integer: bool,
    /// Reads it (`None`: not measured, e.g. no server process to read).
    pub get: fn(&TransportResult) -> Option<f64>,
}

macro_rules! metric {
    ($path:literal, $csv:expr, $unit:ident, int, |$t:ident| $get:expr) => {
        Metric { path: $path, csv: $csv, unit: Unit::$unit, integer: true, get: |$t| Some($get as f64) }
    };
    ($path:literal, $csv:expr, $unit:ident, |$t:ident| $get:expr) => {
        Metric { path: $path, csv: $csv, unit: Unit::$unit, integer: false, get: |$t| Some($get) }
    };
    ($path:literal, $csv:expr, $unit:ident, server int, |$s:ident| $get:expr) => {
        Metric {
            path: $path,
            csv: $csv,
            unit: Unit::$unit,
            integer: true,
            get: |t| t.server.as_ref().map(|$s| $get as f64),
        }
    };
    ($path:literal, $csv:expr, $unit:ident, wire int, |$s:ident| $get:expr) => {
        Metric {
            path: $path,
            csv: $csv,
            unit: Unit::$unit,
            integer: true,
            get: |t| t.wire.as_ref().map(|$s| $get as f64),
        }
    };
    ($path:literal, $csv:expr, $unit:ident, wire, |$s:ident| $get:expr) => {
        Metric {
            path: $path,
            csv: $csv,
            unit: Unit::$unit,
            integer: false,
            get: |t| t.wire.as_ref().and_then(|$s| $get),
        }
    };
    ($path:literal, $csv:expr, $unit:ident, optional, |$t:ident| $get:expr) => {
        Metric { path: $path, csv: $csv, unit: Unit::$unit, integer: false, get: |$t| $get }
    };
    ($path:literal, $csv:expr, $unit:ident, optional int, |$t:ident| $get:expr) => {
        Metric { path: $path, csv: $csv, unit: Unit::$unit, integer: true, get: |$t| $get.map(|v| v as f64) }
    };
    ($path:literal, $csv:expr, $unit:ident, tls int, |$s:ident| $get:expr) => {
        Metric {
            path: $path,
            csv: $csv,
            unit: Unit::$unit,
            integer: true,
            get: |t| t.tls.as_ref().map(|$s| $get as f64),
        }
    };
    ($path:literal, $csv:expr, $unit:ident, tls, |$s:ident| $get:expr) => {
        Metric {
            path: $path,
            csv: $csv,
            unit: Unit::$unit,
            integer: false,
            get: |t| t.tls.as_ref().and_then(|$s| $get),
        }
    };
    ($path:literal, $csv:expr, $unit:ident, server, |$s:ident| $get:expr) => {
        Metric {
            path: $path,
            csv: $csv,
            unit: Unit::$unit,
            integer: false,
            get: |t| t.server.as_ref().map(|$s| $get),
        }
    };
}

/// One counter of one direction of [`Wire`]: `wire.to_server.packets`.
macro_rules! direction {
    ($direction:literal, $field:ident, $unit:ident) => {
        Metric {
            path: concat!("wire.", $direction, ".", stringify!($field)),
            csv: None,
            unit: Unit::$unit,
            integer: true,
            get: |t| {
                t.wire.as_ref().map(|w| match $direction {
                    "to_server" => w.to_server.$field as f64,
                    _ => w.to_clients.$field as f64,
                })
            },
        }
    };
}

/// Every numeric figure of a [`TransportResult`], in the order of `summary.csv` first,
/// then those the CSV leaves out.
pub const METRICS: &[Metric] = &[
    metric!("latency.samples", Some("latency_samples"), Count, int, |t| t.latency.samples),
    metric!("latency.mean_ms", Some("latency_mean_ms"), Ms, |t| t.latency.mean_ms),
    metric!("latency.p50_ms", Some("latency_p50_ms"), Ms, |t| t.latency.p50_ms),
    metric!("latency.p90_ms", Some("latency_p90_ms"), Ms, |t| t.latency.p90_ms),
    metric!("latency.p99_ms", Some("latency_p99_ms"), Ms, |t| t.latency.p99_ms),
    metric!("latency.p999_ms", Some("latency_p999_ms"), Ms, |t| t.latency.p999_ms),
    metric!("latency.max_ms", Some("latency_max_ms"), Ms, |t| t.latency.max_ms),
    metric!("delivery.published", Some("published"), Count, int, |t| t.delivery.published),
    metric!("delivery.expected", Some("expected"), Count, int, |t| t.delivery.expected),
    metric!("delivery.delivered", Some("delivered"), Count, int, |t| t.delivery.delivered),
    metric!("delivery.lost", Some("lost"), Count, int, |t| t.delivery.lost),
    metric!("delivery.lost_untold", Some("lost_untold"), Count, int, |t| t.delivery.lost_untold),
    metric!("delivery.duplicated", Some("duplicated"), Count, int, |t| t.delivery.duplicated),
    metric!("delivery.reordered", Some("reordered"), Count, int, |t| t.delivery.reordered),
    metric!("delivery.gap_notices", Some("gap_notices"), Count, int, |t| t.delivery.gap_notices),
    metric!("traffic.requests", Some("requests"), Count, int, |t| t.traffic.requests),
    metric!("traffic.empty_responses", Some("empty_responses"), Count, int, |t| t.traffic.empty_responses),
    metric!("traffic.connections", Some("connections"), Count, int, |t| t.traffic.connections),
    metric!("traffic.bytes_received", Some("bytes_received"), Bytes, int, |t| t.traffic.bytes_received),
    metric!("traffic.bytes_sent", Some("bytes_sent"), Bytes, int, |t| t.traffic.bytes_sent),
    metric!("traffic.requests_per_message", Some("requests_per_message"), Number, |t| t
        .traffic
        .requests_per_message),
    metric!("traffic.bytes_per_message", Some("bytes_per_message"), Bytes, |t| t.traffic.bytes_per_message),
    metric!("traffic.message_bytes", Some("message_bytes"), Bytes, |t| t.traffic.message_bytes),
    metric!("traffic.payload_efficiency", Some("payload_efficiency"), Number, |t| t
        .traffic
        .payload_efficiency),
    metric!(
        "idle.requests_per_client_per_second",
        Some("idle_requests_per_client_per_second"),
        Number,
        |t| t.idle.requests_per_client_per_second
    ),
    metric!("idle.bytes_per_client_per_second", Some("idle_bytes_per_client_per_second"), Bytes, |t| t
        .idle
        .bytes_per_client_per_second),
    metric!("idle.bytes_per_client_per_day", Some("idle_bytes_per_client_per_day"), Bytes, |t| t
        .idle
        .bytes_per_client_per_day),
    metric!("server.cpu_seconds", Some("server_cpu_seconds"), Seconds, server, |s| s.cpu_seconds),
    metric!("server.cpu_us_per_message", Some("server_cpu_us_per_message"), Us, server, |s| s
        .cpu_us_per_message),
    metric!("server.memory_per_client_bytes", Some("server_memory_per_client_bytes"), Bytes, server, |s| s
        .memory_per_client_bytes),
    metric!("server.peak_rss_bytes", Some("server_peak_rss_bytes"), Bytes, server int, |s| s.peak_rss_bytes),
    metric!("loadgen.cpu_seconds", Some("loadgen_cpu_seconds"), Seconds, |t| t.loadgen.cpu_seconds),
    metric!("loadgen.cpu_us_per_message", Some("loadgen_cpu_us_per_message"), Us, |t| t
        .loadgen
        .cpu_us_per_message),
    metric!("loadgen.publisher_max_lag_ms", Some("publisher_max_lag_ms"), Ms, |t| t
        .loadgen
        .publisher_max_lag_ms),
    metric!("upstream.p50_ms", Some("upstream_p50_ms"), Ms, |t| t.upstream.p50_ms),
    metric!("upstream.bytes_per_send", Some("upstream_bytes_per_send"), Bytes, |t| t.upstream.bytes_per_send),
    metric!("wire.ip_bytes_per_message", Some("wire_ip_bytes_per_message"), Bytes, wire, |w| Some(
        w.ip_bytes_per_message
    )),
    metric!("wire.packets_per_message", Some("wire_packets_per_message"), Number, wire, |w| Some(
        w.packets_per_message
    )),
    metric!("wire.header_bytes_per_message", Some("wire_header_bytes_per_message"), Bytes, wire, |w| Some(
        w.header_bytes_per_message
    )),
    metric!("wire.retransmitted_packets", Some("wire_retransmitted_packets"), Count, wire int, |w| w
        .retransmitted_packets),
    metric!("wire.dropped_packets", Some("wire_dropped_packets"), Count, wire int, |w| w.dropped_packets),
    metric!(
        "wire.idle_ip_bytes_per_client_per_day",
        Some("wire_idle_ip_bytes_per_client_per_day"),
        Bytes,
        wire,
        |w| Some(w.idle_ip_bytes_per_client_per_day)
    ),
    metric!("wire.link_cpu_us_per_packet", Some("wire_link_cpu_us_per_packet"), Us, wire, |w| w
        .link_cpu_us_per_packet),
    metric!("traffic.http_bytes_per_message", Some("http_bytes_per_message"), Bytes, optional, |t| t
        .traffic
        .http_bytes_per_message),
    metric!(
        "idle.http_bytes_per_client_per_day",
        Some("idle_http_bytes_per_client_per_day"),
        Bytes,
        optional,
        |t| t.idle.http_bytes_per_client_per_day
    ),
    metric!("idle.bytes_per_empty_poll", Some("idle_bytes_per_empty_poll"), Bytes, optional, |t| t
        .idle
        .bytes_per_empty_poll),
    metric!("idle.http_bytes_per_empty_poll", Some("idle_http_bytes_per_empty_poll"), Bytes, optional, |t| t
        .idle
        .http_bytes_per_empty_poll),
    metric!("tls.handshakes", Some("tls_handshakes"), Count, tls int, |s| s.handshakes),
    metric!("tls.resumed_handshakes", Some("tls_resumed_handshakes"), Count, tls int, |s| s
        .resumed_handshakes),
    metric!("tls.handshake_bytes_sent", Some("tls_handshake_bytes_sent"), Bytes, tls, |s| Some(
        s.handshake_bytes_sent
    )),
    metric!("tls.handshake_bytes_received", Some("tls_handshake_bytes_received"), Bytes, tls, |s| Some(
        s.handshake_bytes_received
    )),
    metric!("tls.handshake_p50_ms", Some("tls_handshake_p50_ms"), Ms, tls, |s| Some(s.handshake_p50_ms)),
    metric!("tls.handshake_max_ms", Some("tls_handshake_max_ms"), Ms, tls, |s| Some(s.handshake_max_ms)),
    // Not in the CSV.
    metric!("delivery.resets", None, Count, int, |t| t.delivery.resets),
    metric!("traffic.seconds", None, Seconds, |t| t.traffic.seconds),
    metric!("traffic.messages", None, Count, int, |t| t.traffic.messages),
    metric!("idle.seconds", None, Seconds, |t| t.idle.seconds),
    metric!("server.idle_cpu_seconds", None, Seconds, server, |s| s.idle_cpu_seconds),
    metric!("server.rss_before_clients_bytes", None, Bytes, server int, |s| s.rss_before_clients_bytes),
    metric!("server.rss_with_clients_bytes", None, Bytes, server int, |s| s.rss_with_clients_bytes),
    metric!("loadgen.publish_requests", None, Count, int, |t| t.loadgen.publish_requests),
    metric!("upstream.samples", None, Count, int, |t| t.upstream.samples),
    metric!("upstream.p99_ms", None, Ms, |t| t.upstream.p99_ms),
    metric!("wire.idle_ip_bytes_per_client_per_second", None, Bytes, wire, |w| Some(
        w.idle_ip_bytes_per_client_per_second
    )),
    metric!("wire.idle_packets_per_client_per_second", None, Number, wire, |w| Some(
        w.idle_packets_per_client_per_second
    )),
    metric!("wire.link_system_cpu_us_per_packet", None, Us, wire, |w| w.link_system_cpu_us_per_packet),
    metric!("traffic.http_bytes_received", None, Bytes, optional int, |t| t.traffic.http_bytes_received),
    metric!("traffic.http_bytes_sent", None, Bytes, optional int, |t| t.traffic.http_bytes_sent),
    metric!("idle.http_bytes_per_client_per_second", None, Bytes, optional, |t| t
        .idle
        .http_bytes_per_client_per_second),
    metric!("tls.full_handshake_bytes", None, Bytes, tls, |s| s.full_handshake_bytes),
    metric!("tls.resumed_handshake_bytes", None, Bytes, tls, |s| s.resumed_handshake_bytes),
    Metric {
        path: "reference_client.lines",
        csv: None,
        unit: Unit::Count,
        integer: true,
        get: |t| t.reference_client.map(|c| c.lines as f64),
    },
    Metric {
        path: "reference_client.tokens",
        csv: None,
        unit: Unit::Count,
        integer: true,
        get: |t| t.reference_client.map(|c| c.tokens as f64),
    },
    direction!("to_server", packets, Count),
    direction!("to_server", ip_bytes, Bytes),
    direction!("to_server", payload_bytes, Bytes),
    direction!("to_server", pure_acks, Count),
    direction!("to_server", handshake_packets, Count),
    direction!("to_server", teardown_packets, Count),
    direction!("to_server", retransmitted_packets, Count),
    direction!("to_server", dropped_by_loss, Count),
    direction!("to_server", dropped_by_queue, Count),
    direction!("to_clients", packets, Count),
    direction!("to_clients", ip_bytes, Bytes),
    direction!("to_clients", payload_bytes, Bytes),
    direction!("to_clients", pure_acks, Count),
    direction!("to_clients", handshake_packets, Count),
    direction!("to_clients", teardown_packets, Count),
    direction!("to_clients", retransmitted_packets, Count),
    direction!("to_clients", dropped_by_loss, Count),
    direction!("to_clients", dropped_by_queue, Count),
];

/// The figure at `path` (below the transport: `latency.p99_ms`).
pub fn metric(path: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every numeric field of a transport's JSON is in the registry, and every entry
    /// reads the field its path names: a field added to the data model must be added
    /// there too, or the gate cannot name it.
    #[test]
    fn the_registry_covers_every_numeric_figure_and_reads_it_right() {
        fn walk(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, f64)>) {
            match value {
                serde_json::Value::Number(n) => out.push((prefix.to_string(), n.as_f64().unwrap())),
                serde_json::Value::Object(map) => {
                    for (key, value) in map {
                        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                        walk(&path, value, out);
                    }
                }
                _ => {}
            }
        }
        let text = include_str!("../../results/2026-12-01-lab/results.json");
        let results: Results = serde_json::from_str(text).unwrap();
        // The committed run predates TLS and the HTTP-layer counter; the same results
        // with every optional figure filled in cover those.
        let mut all = results.transports.clone();
        all.extend(results.transports.iter().cloned().map(with_every_optional_figure));
        for t in &all {
            let mut fields = Vec::new();
            walk("", &serde_json::to_value(t).unwrap(), &mut fields);
            for (path, value) in &fields {
                let m = metric(path).unwrap_or_else(|| panic!("{path} is not in METRICS"));
                assert_eq!((m.get)(t), Some(*value), "{path}");
            }
            // A path of METRICS missing from the JSON is a figure not measured: the
            // registry must read it as such, not as a number.
            for m in METRICS {
                if !fields.iter().any(|(path, _)| path == m.path) {
                    assert_eq!((m.get)(t), None, "{} is not in results.json but reads as a figure", m.path);
                }
            }
        }
        let full = with_every_optional_figure(results.transports[0].clone());
        let mut fields = Vec::new();
        walk("", &serde_json::to_value(&full).unwrap(), &mut fields);
        assert_eq!(fields.len(), METRICS.len(), "METRICS lists a path that no results.json can have");
    }

    /// `t` as a TLS run with every optional figure measured.
    fn with_every_optional_figure(mut t: TransportResult) -> TransportResult {
        t.traffic.http_bytes_received = Some(11);
        t.traffic.http_bytes_sent = Some(12);
        t.traffic.http_bytes_per_message = Some(13.5);
        t.idle.http_bytes_per_client_per_second = Some(14.5);
        t.idle.http_bytes_per_client_per_day = Some(15.5);
        t.idle.bytes_per_empty_poll = Some(16.5);
        t.idle.http_bytes_per_empty_poll = Some(17.5);
        t.protocol = Some(ProtocolUsed {
            http_version: "2".into(),
            tls: true,
            alpn: Some("h2".into()),
            tls_version: Some("TLSv1_3".into()),
        });
        t.tls = Some(TlsFigures {
            handshakes: 21,
            resumed_handshakes: 22,
            handshake_bytes_sent: 23.5,
            handshake_bytes_received: 24.5,
            full_handshake_bytes: Some(25.5),
            resumed_handshake_bytes: Some(26.5),
            handshake_p50_ms: 27.5,
            handshake_max_ms: 28.5,
        });
        t
    }

    /// Every key of `saved` is in `again` with the same value; objects are compared key
    /// by key, so `again` may have keys `saved` had not.
    fn assert_saved_in(saved: &serde_json::Value, again: &serde_json::Value, at: &str) {
        match (saved, again) {
            (serde_json::Value::Object(saved), serde_json::Value::Object(again)) => {
                for (key, value) in saved {
                    let there = again.get(key).unwrap_or_else(|| panic!("{at}.{key} is gone"));
                    assert_saved_in(value, there, &format!("{at}.{key}"));
                }
            }
            _ => assert_eq!(saved, again, "{at}"),
        }
    }

    /// Every run committed under `results/` (some older than later fields) still loads,
    /// workload included, and writes back the same workload.
    #[test]
    fn every_committed_results_json_loads_typed() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../results");
        let mut stack = vec![root];
        let mut loaded = 0;
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.file_name().is_none_or(|n| n != "results.json") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let results: Results = serde_json::from_str(&text).unwrap();
                let workload = results
                    .setup
                    .typed_workload()
                    .unwrap_or_else(|e| panic!("{}: workload: {e}", path.display()));
                assert!(workload.clients > 0, "{}", path.display());
                // Written back, it is the same workload: every field saved then is there
                // with the same value, at any depth (fields added since are new keys).
                let again = serde_json::to_value(&workload).unwrap();
                assert_saved_in(&results.setup.workload, &again, &path.display().to_string());
                loaded += 1;
            }
        }
        assert!(loaded >= 30, "{loaded} results.json found");
    }
}
