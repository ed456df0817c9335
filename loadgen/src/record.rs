//! What each client records, and how the records of all clients are merged.
//!
//! Each client owns its [`Recorder`] outright — no lock, no atomic on the per-message
//! path — and hands it back when it stops; the run merges them. Counters that the run
//! must read *while* clients work (to cut the measured window out of a longer run) live
//! in [`Live`], as relaxed atomics each written by one client only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use hdrhistogram::Histogram;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::wire::{ByteCounts, Segments, WireCounters};

/// Counters the run samples at phase boundaries.
#[derive(Debug, Default)]
pub struct Live {
    /// Socket bytes and TCP segments.
    pub wire: Arc<WireCounters>,
    /// Bytes at the HTTP layer: above TLS, the plaintext; without TLS, the socket's.
    pub http: Arc<ByteCounts>,
    /// Messages delivered (any, including foreign and duplicates).
    pub messages: AtomicU64,
    /// Bytes of message JSON delivered: what the application needed.
    pub message_bytes: AtomicU64,
    /// HTTP requests made (polls, SSE GETs, WebSocket handshakes).
    pub requests: AtomicU64,
    /// Poll responses that carried no message.
    pub empty_responses: AtomicU64,
    /// TCP connections opened.
    pub connections: AtomicU64,
    /// Latency while the run goes, for its progress line; shared by all clients.
    pub latency: Option<Arc<LiveLatency>>,
}

/// A coarse latency histogram that many clients fill at once and the progress line
/// reads while they do: four buckets per doubling (each about 19 % wide), one relaxed
/// atomic add per message. The results come from each client's own HdrHistogram; this
/// only says, while a run goes, roughly where p99 is.
#[derive(Debug)]
pub struct LiveLatency {
    buckets: [AtomicU64; LIVE_BUCKETS],
}

const LIVE_BUCKETS: usize = 4 * 40;

impl Default for LiveLatency {
    fn default() -> Self {
        LiveLatency { buckets: std::array::from_fn(|_| AtomicU64::new(0)) }
    }
}

impl LiveLatency {
    fn bucket(us: u64) -> usize {
        ((4.0 * (us.max(1) as f64).log2()) as usize).min(LIVE_BUCKETS - 1)
    }

    /// Counts one latency, in µs.
    pub fn record(&self, us: u64) {
        self.buckets[Self::bucket(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// The upper edge, in ms, of the bucket that holds the 99th percentile so far
    /// (`None` before any message).
    pub fn p99_ms(&self) -> Option<f64> {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (total as f64 * 0.99).ceil() as u64;
        let mut seen = 0;
        let index = counts.iter().position(|&count| {
            seen += count;
            seen >= rank
        })?;
        Some(2f64.powf((index + 1) as f64 / 4.0) / 1e3)
    }
}

/// A sum of [`Live`] counters at one instant.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LiveSnapshot {
    /// Bytes server → client.
    pub bytes_read: u64,
    /// Bytes client → server.
    pub bytes_written: u64,
    /// HTTP-layer bytes server → client (above TLS).
    pub http_bytes_read: u64,
    /// HTTP-layer bytes client → server.
    pub http_bytes_written: u64,
    /// Messages delivered.
    pub messages: u64,
    /// Message JSON bytes delivered.
    pub message_bytes: u64,
    /// HTTP requests.
    pub requests: u64,
    /// Empty poll responses.
    pub empty_responses: u64,
    /// Connections opened.
    pub connections: u64,
    /// TCP segments sent, of any kind (data, ACKs, SYN, FIN, retransmissions), as the
    /// kernel counts them per socket.
    pub segments_out: u64,
    /// TCP segments received, of any kind.
    pub segments_in: u64,
    /// Of `segments_out`, those carrying data.
    pub data_segments_out: u64,
    /// Of `segments_in`, those carrying data.
    pub data_segments_in: u64,
    /// Segments the clients' kernels sent again.
    pub retransmitted_segments: u64,
}

impl LiveSnapshot {
    /// Sums the counters of many clients. Costs one `getsockopt` per open socket.
    pub fn sum<'a>(clients: impl IntoIterator<Item = &'a Arc<Live>>) -> LiveSnapshot {
        let mut total = LiveSnapshot::default();
        let mut segments = Segments::default();
        for live in clients {
            segments += live.wire.segments();
            let (read, written) = live.wire.snapshot();
            total.bytes_read += read;
            total.bytes_written += written;
            let (http_read, http_written) = live.http.snapshot();
            total.http_bytes_read += http_read;
            total.http_bytes_written += http_written;
            total.messages += live.messages.load(Ordering::Relaxed);
            total.message_bytes += live.message_bytes.load(Ordering::Relaxed);
            total.requests += live.requests.load(Ordering::Relaxed);
            total.empty_responses += live.empty_responses.load(Ordering::Relaxed);
            total.connections += live.connections.load(Ordering::Relaxed);
        }
        total.segments_out = segments.segs_out;
        total.segments_in = segments.segs_in;
        total.data_segments_out = segments.data_segs_out;
        total.data_segments_in = segments.data_segs_in;
        total.retransmitted_segments = segments.total_retrans;
        total
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &LiveSnapshot) -> LiveSnapshot {
        LiveSnapshot {
            bytes_read: self.bytes_read - earlier.bytes_read,
            bytes_written: self.bytes_written - earlier.bytes_written,
            http_bytes_read: self.http_bytes_read - earlier.http_bytes_read,
            http_bytes_written: self.http_bytes_written - earlier.http_bytes_written,
            messages: self.messages - earlier.messages,
            message_bytes: self.message_bytes - earlier.message_bytes,
            requests: self.requests - earlier.requests,
            empty_responses: self.empty_responses - earlier.empty_responses,
            connections: self.connections - earlier.connections,
            // Saturating: each socket's kernel counters are 32 bits and may wrap.
            segments_out: self.segments_out.saturating_sub(earlier.segments_out),
            segments_in: self.segments_in.saturating_sub(earlier.segments_in),
            data_segments_out: self.data_segments_out.saturating_sub(earlier.data_segments_out),
            data_segments_in: self.data_segments_in.saturating_sub(earlier.data_segments_in),
            retransmitted_segments: self
                .retransmitted_segments
                .saturating_sub(earlier.retransmitted_segments),
        }
    }
}

/// The measured window in microseconds of intended publish time since the run's epoch:
/// a message's latency counts when it was *meant* to be published inside it. Set once,
/// before the first message is published.
pub type Window = Arc<OnceLock<std::ops::Range<u64>>>;

/// One client's record of what it received.
#[derive(Debug)]
pub struct Recorder {
    /// Delivery latency in µs (receive time − intended publish time) of messages whose
    /// intended time lies in the measured window.
    pub latency: Histogram<u64>,
    window: Window,
    /// Bit `seq` is set once message `seq` has been received.
    seen: Vec<u64>,
    max_seq: Option<u64>,
    /// Messages received more than once.
    pub duplicated: u64,
    /// Messages received after a later one.
    pub reordered: u64,
    /// Gap notices received.
    pub gap_notices: u64,
    /// Messages the server said were missed (sum over gap notices).
    pub missed_told: u64,
    /// Reset notices received.
    pub resets: u64,
    /// Every TLS handshake this client made, in order (none without TLS).
    pub handshakes: Vec<Handshake>,
    /// What this client's connections spoke, once one was open.
    pub negotiated: Option<Negotiated>,
}

/// One TLS handshake: what it cost and whether it resumed an earlier session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// An abbreviated handshake with a session ticket (`HandshakeKind::Resumed`).
    pub resumed: bool,
    /// Socket bytes client → server from the TCP connect until the handshake completed.
    pub bytes_sent: u64,
    /// Socket bytes server → client over the same span.
    pub bytes_received: u64,
    /// From the first byte of the ClientHello (TCP is connected) to the handshake's end, µs.
    pub micros: u64,
}

/// The protocols a connection actually spoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// `1.1` or `2`.
    pub http_version: String,
    /// The ALPN protocol the server chose (`h2`, `http/1.1`); `None` without TLS.
    pub alpn: Option<String>,
    /// `TLSv1_3` or `TLSv1_2`; `None` without TLS.
    pub tls_version: Option<String>,
}

impl Recorder {
    /// A recorder for a run whose measured window is (or will be) in `window`.
    pub fn new(window: Window) -> Self {
        Recorder {
            latency: new_histogram(),
            window,
            seen: Vec::new(),
            max_seq: None,
            duplicated: 0,
            reordered: 0,
            gap_notices: 0,
            missed_told: 0,
            resets: 0,
            handshakes: Vec::new(),
            negotiated: None,
        }
    }

    /// Records message `seq`, meant to be published at `intended_us`, received at
    /// `received_us` (both µs since the run's epoch, same clock).
    pub fn message(&mut self, seq: u64, intended_us: u64, received_us: u64) {
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & bit != 0 {
            self.duplicated += 1;
            return;
        }
        self.seen[word] |= bit;
        match self.max_seq {
            Some(max) if seq < max => self.reordered += 1,
            _ => self.max_seq = Some(seq),
        }
        if self.window.get().is_some_and(|w| w.contains(&intended_us)) {
            self.latency.saturating_record(received_us.saturating_sub(intended_us));
        }
    }

    /// Records a gap notice: the server says `missed` messages are gone for good.
    pub fn gap(&mut self, missed: u64) {
        self.gap_notices += 1;
        self.missed_told += missed;
    }

    /// How many of messages `0..published` were never received.
    pub fn lost(&self, published: u64) -> u64 {
        let received: u64 = (0..published)
            .filter(|&seq| self.seen.get((seq / 64) as usize).is_some_and(|w| w & (1 << (seq % 64)) != 0))
            .count() as u64;
        published - received
    }
}

/// A latency histogram: 1 µs to 1 hour, 3 significant digits (0.1 % resolution).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds are valid")
}

/// The fields of a delivered message the load generator needs. `data` is kept raw so a
/// message from someone else (no probe inside) costs nothing to skip.
#[derive(Debug, Deserialize)]
pub struct Delivered<'a> {
    /// Stream id.
    pub id: u64,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

/// What the publisher puts in every message's `data`: a sequence number and the
/// intended publish time (µs since the run's epoch), plus padding to the payload size.
#[derive(Debug, Deserialize, PartialEq)]
pub struct Probe {
    /// 0, 1, 2 … in publishing order.
    pub seq: u64,
    /// Intended publish time.
    pub t_us: u64,
}

impl Delivered<'_> {
    /// The probe, if this message came from our publisher.
    pub fn probe(&self) -> Option<Probe> {
        serde_json::from_str(self.data?.get()).ok()
    }
}

/// Builds the `data` of message `seq`: exactly `payload` bytes of JSON.
pub fn probe_data(seq: u64, t_us: u64, payload: usize) -> String {
    let head = format!(r#"{{"seq":{seq},"t_us":{t_us},"pad":""#);
    let pad = payload.saturating_sub(head.len() + 2);
    let mut data = String::with_capacity(payload);
    data.push_str(&head);
    data.extend(std::iter::repeat_n('x', pad));
    data.push_str("\"}");
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_without_sockets_sum_to_zero() {
        let clients = [Arc::new(Live::default()), Arc::new(Live::default())];
        assert_eq!(LiveSnapshot::sum(&clients), LiveSnapshot::default());
    }

    #[tokio::test]
    async fn the_sum_holds_the_segments_of_every_client_and_since_subtracts_them() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let clients = [Arc::new(Live::default()), Arc::new(Live::default())];
        let mut streams = Vec::new();
        for live in &clients {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            streams.push(crate::wire::CountingStream::new(tcp, live.wire.clone()));
        }
        let each: Vec<Segments> = clients.iter().map(|live| live.wire.segments()).collect();
        let total = LiveSnapshot::sum(&clients);
        // The handshakes are done (connect returned), so at least a SYN went out and a
        // SYN-ACK came in per client; later reads only grow.
        assert!(total.segments_out >= each[0].segs_out + each[1].segs_out && total.segments_out >= 2);
        assert!(total.segments_in >= each[0].segs_in + each[1].segs_in && total.segments_in >= 2);
        assert_eq!((total.data_segments_out, total.data_segments_in), (0, 0));
        assert_eq!(total.since(&total), LiveSnapshot::default());
        let earlier = LiveSnapshot { segments_out: 1, retransmitted_segments: 5, ..total };
        let delta = total.since(&earlier);
        assert_eq!((delta.segments_out, delta.retransmitted_segments), (total.segments_out - 1, 0));
        drop(streams);
    }

    #[test]
    fn the_live_p99_is_the_bucket_of_the_99th_percentile() {
        let live = LiveLatency::default();
        assert_eq!(live.p99_ms(), None);
        for _ in 0..990 {
            live.record(1_000); // 1 ms
        }
        for _ in 0..10 {
            live.record(100_000); // 100 ms
        }
        let p99 = live.p99_ms().unwrap();
        assert!((1.0..1.2).contains(&p99), "p99 {p99} ms: the 990th of 1000 is 1 ms");
        live.record(100_000);
        let p99 = live.p99_ms().unwrap();
        assert!((100.0..120.0).contains(&p99), "p99 {p99} ms");
    }

    fn recorder() -> Recorder {
        let window: Window = Arc::new(OnceLock::new());
        window.set(1_000..2_000).unwrap();
        Recorder::new(window)
    }

    #[test]
    fn counts_loss_duplicates_and_reordering_exactly() {
        let mut r = recorder();
        for seq in [0, 1, 3, 2, 2, 5] {
            r.message(seq, 0, 0);
        }
        assert_eq!((r.duplicated, r.reordered), (1, 1));
        assert_eq!(r.lost(6), 1); // seq 4
        assert_eq!(r.lost(4), 0);
    }

    #[test]
    fn only_messages_meant_for_the_window_count_towards_latency() {
        let mut r = recorder();
        r.message(0, 500, 900); // warm-up
        r.message(1, 1_000, 1_250);
        r.message(2, 1_999, 2_499);
        r.message(3, 2_000, 2_001); // after the window
        assert_eq!(r.latency.len(), 2);
        assert_eq!(r.latency.max(), 500);
    }

    #[test]
    fn probe_data_has_the_exact_payload_size_and_parses_back() {
        let data = probe_data(42, 123_456, 128);
        assert_eq!(data.len(), 128);
        let message = format!(r#"{{"id":7,"type":"update","data":{data},"timestamp":1}}"#);
        let delivered: Delivered = serde_json::from_str(&message).unwrap();
        assert_eq!(delivered.id, 7);
        assert_eq!(delivered.probe(), Some(Probe { seq: 42, t_us: 123_456 }));
        let foreign: Delivered = serde_json::from_str(r#"{"id":8,"data":"hello"}"#).unwrap();
        assert_eq!(foreign.probe(), None);
    }
}
