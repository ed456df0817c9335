//! Counters for `/status` and `/metrics`.
//!
//! Metrics are registered once with `prometheus-client` and each transport gets its own
//! pre-resolved handles, so the hot path is one atomic add, never a label lookup.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

use pushlab_protocol::Transport;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabel {
    /// `http/1.1` or `h2`, as ALPN names them.
    protocol: &'static str,
    tls: &'static str,
}

/// What a connection speaks, once the accept loop knows (after the TLS handshake's ALPN,
/// or the first bytes of a cleartext one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionKind {
    /// HTTP/2 rather than HTTP/1.1.
    pub http2: bool,
    /// Inside TLS.
    pub tls: bool,
}

/// The handles one transport updates.
#[derive(Clone, Debug, Default)]
pub struct TransportMetrics {
    /// Requests (polls) or connections (SSE, WS) accepted.
    pub requests: Counter,
    /// Subscribers being served right now.
    pub subscribers: Gauge,
    /// Body bytes written: poll bodies, SSE events, WS frame payloads (HTTP headers and
    /// framing are not visible to a handler; the load generator counts those at its
    /// sockets).
    pub bytes_sent: Counter,
    /// Gap notices sent to clients that fell behind retention.
    pub gaps: Counter,
    /// Subscribers closed because they stopped reading (a write made no progress for
    /// `--write-timeout`, or a WebSocket's write buffer filled).
    pub slow_closed: Counter,
}

/// Everything the server counts.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    /// Messages appended to the stream.
    pub published: Counter,
    /// Requests refused (4xx/5xx), by nothing finer: the logs have the details.
    pub rejected: Counter,
    /// TCP connections open now, of any kind.
    pub open_sockets: Gauge,
    /// Connections answered 503 and closed because `--max-sockets` were open.
    pub sockets_refused: Counter,
    /// Connections closed because a write made no progress for `--write-timeout`.
    pub write_timeouts: Counter,
    /// TLS handshakes that failed or did not finish within `--request-timeout`.
    pub tls_handshakes_failed: Counter,
    /// Connections open now, indexed `[tls][http2]`.
    connections: [[Gauge; 2]; 2],
    per_transport: [TransportMetrics; 4],
    registry: Registry,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pushlab");
        let published = Counter::default();
        let rejected = Counter::default();
        registry.register("messages_published", "Messages appended to the stream", published.clone());
        registry.register("rejected_requests", "Requests answered with an error status", rejected.clone());
        let open_sockets = Gauge::default();
        let sockets_refused = Counter::default();
        let write_timeouts = Counter::default();
        registry.register("open_sockets", "TCP connections open now", open_sockets.clone());
        registry.register(
            "sockets_refused",
            "Connections refused with 503 because --max-sockets were open",
            sockets_refused.clone(),
        );
        registry.register(
            "write_timeouts",
            "Connections closed because a write made no progress for --write-timeout",
            write_timeouts.clone(),
        );
        let tls_handshakes_failed = Counter::default();
        registry.register(
            "tls_handshakes_failed",
            "TLS handshakes that failed or did not finish within --request-timeout",
            tls_handshakes_failed.clone(),
        );
        let by_protocol = Family::<ConnectionLabel, Gauge>::default();
        registry.register(
            "connections",
            "Connections open now, by HTTP version and TLS",
            by_protocol.clone(),
        );
        let connections = [false, true].map(|tls| {
            [false, true].map(|http2| {
                let protocol = if http2 { "h2" } else { "http/1.1" };
                by_protocol
                    .get_or_create_owned(&ConnectionLabel { protocol, tls: if tls { "yes" } else { "no" } })
            })
        });
        let requests = Family::<TransportLabel, Counter>::default();
        let subscribers = Family::<TransportLabel, Gauge>::default();
        let bytes_sent = Family::<TransportLabel, Counter>::default();
        let gaps = Family::<TransportLabel, Counter>::default();
        let slow_closed = Family::<TransportLabel, Counter>::default();
        registry.register("requests", "Poll requests or stream connections accepted", requests.clone());
        registry.register("subscribers", "Subscribers being served now", subscribers.clone());
        registry.register("sent_bytes", "Body bytes written to subscribers", bytes_sent.clone());
        registry.register("gap_notices", "Gap notices sent to subscribers behind retention", gaps.clone());
        registry.register(
            "slow_subscribers_closed",
            "Subscribers closed because they stopped reading",
            slow_closed.clone(),
        );
        let per_transport = Transport::ALL.map(|t| {
            let label = TransportLabel { transport: t.name() };
            TransportMetrics {
                requests: requests.get_or_create_owned(&label),
                subscribers: subscribers.get_or_create_owned(&label),
                bytes_sent: bytes_sent.get_or_create_owned(&label),
                gaps: gaps.get_or_create_owned(&label),
                slow_closed: slow_closed.get_or_create_owned(&label),
            }
        });
        Metrics {
            started: Instant::now(),
            published,
            rejected,
            open_sockets,
            sockets_refused,
            write_timeouts,
            tls_handshakes_failed,
            connections,
            per_transport,
            registry,
        }
    }

    /// The handles of one transport.
    pub fn transport(&self, transport: Transport) -> &TransportMetrics {
        &self.per_transport[transport as usize]
    }

    /// The gauge of connections of this kind open now.
    pub fn connections(&self, kind: ConnectionKind) -> &Gauge {
        &self.connections[kind.tls as usize][kind.http2 as usize]
    }

    /// Prometheus text exposition format, with uptime and last id as of now.
    pub fn encode(&self, last_id: u64) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        out.push_str(&format!(
            "# HELP pushlab_last_id Newest message id in the stream.\n# TYPE pushlab_last_id gauge\npushlab_last_id {last_id}\n\
             # HELP pushlab_uptime_seconds Seconds since the server started.\n# TYPE pushlab_uptime_seconds gauge\npushlab_uptime_seconds {:.3}\n",
            self.started.elapsed().as_secs_f64()
        ));
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }

    /// The `/status` document.
    pub fn status(&self, last_id: u64) -> Status {
        let per = |f: fn(&TransportMetrics) -> u64| PerTransport {
            short_poll: f(self.transport(Transport::ShortPoll)),
            long_poll: f(self.transport(Transport::LongPoll)),
            sse: f(self.transport(Transport::Sse)),
            ws: f(self.transport(Transport::Ws)),
        };
        Status {
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            last_id,
            messages_published: self.published.get(),
            subscribers: per(|m| m.subscribers.get().max(0) as u64),
            requests: per(|m| m.requests.get()),
            sent_bytes: per(|m| m.bytes_sent.get()),
            connections: [false, true].map(|tls| {
                let open = |http2| self.connections(ConnectionKind { http2, tls }).get().max(0) as u64;
                ByProtocol { http1: open(false), http2: open(true) }
            }),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `GET /status`.
#[derive(Debug, Serialize)]
pub struct Status {
    uptime_seconds: f64,
    last_id: u64,
    messages_published: u64,
    subscribers: PerTransport,
    requests: PerTransport,
    sent_bytes: PerTransport,
    /// Connections open now: `[cleartext, tls]`, each by HTTP version.
    #[serde(serialize_with = "cleartext_and_tls")]
    connections: [ByProtocol; 2],
}

/// Connections of one kind (cleartext or TLS) by HTTP version.
#[derive(Debug, Serialize)]
pub struct ByProtocol {
    http1: u64,
    http2: u64,
}

/// `{"cleartext": {...}, "tls": {...}}`: named, so the JSON reads without this file.
fn cleartext_and_tls<S: serde::Serializer>(both: &[ByProtocol; 2], serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(2))?;
    map.serialize_entry("cleartext", &both[0])?;
    map.serialize_entry("tls", &both[1])?;
    map.end()
}

/// One figure for each transport, named as everywhere in pushlab.
#[derive(Debug, Serialize)]
pub struct PerTransport {
    short_poll: u64,
    long_poll: u64,
    sse: u64,
    ws: u64,
}
