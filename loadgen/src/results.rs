//! The results of a run: what `results.json` holds (described by
//! `docs/results.schema.json`). Every name carries its unit.

use pushlab_server::Transport;
use serde::{Deserialize, Serialize};

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
    /// `git rev-parse HEAD` of the working directory, when available; `+uncommitted`
    /// follows it when the code there differs from that commit.
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
}

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

impl Results {
    /// The result for one transport, if it was run.
    pub fn transport(&self, transport: Transport) -> Option<&TransportResult> {
        self.transports.iter().find(|t| t.transport == transport)
    }
}
