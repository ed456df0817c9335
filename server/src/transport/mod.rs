//! The four transports. Each is a cursor over the same [`Log`](crate::log::Log); they
//! differ only in where the cursor lives and how bytes reach the client:
//!
//! | transport | file | cursor lives in | resume with |
//! | --- | --- | --- | --- |
//! | short polling | `short_poll.rs` | the client, between requests | `GET /poll?since=ID` |
//! | long polling | `long_poll.rs` | the client, between requests | `GET /long-poll?since=ID` |
//! | Server-Sent Events | `sse.rs` | a server task per connection | `Last-Event-ID` or `?since=ID` |
//! | WebSocket | `ws.rs` | a server task per connection | `?since=ID` |

pub mod long_poll;
pub mod short_poll;
pub mod sse;
pub mod ws;

use std::convert::Infallible;
use std::fmt::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::config::{STREAM_BATCH, STREAM_BATCH_BYTES};
use crate::log::{Budget, Read};
use crate::metrics::{Admitted, TransportMetrics};

/// A transport, named as everywhere in pushlab: server, load generator, JSON and docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// A request every interval, answered at once.
    ShortPoll = 0,
    /// A request held open until a message exists or a timeout passes.
    LongPoll = 1,
    /// One HTTP response that never ends, `text/event-stream`.
    Sse = 2,
    /// An upgraded connection carrying frames both ways.
    Ws = 3,
}

impl Transport {
    /// All four, in the order the lab runs and reports them.
    pub const ALL: [Transport; 4] =
        [Transport::ShortPoll, Transport::LongPoll, Transport::Sse, Transport::Ws];

    /// The snake_case name used in JSON, CSV, metrics labels and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Transport::ShortPoll => "short_poll",
            Transport::LongPoll => "long_poll",
            Transport::Sse => "sse",
            Transport::Ws => "ws",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Transport {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Transport::ALL
            .into_iter()
            .find(|t| t.name() == s || t.name().replace('_', "-") == s)
            .ok_or_else(|| format!("unknown transport {s:?}: expected short_poll, long_poll, sse or ws"))
    }
}

/// The body both polling transports answer with:
/// `{"messages":[...],"last_id":M,"epoch":"E"}` plus `"missed":K`, `"reset":true` and
/// `"more":true` when they apply. The client's next cursor is `E-` and the id of the
/// last message it got (or its old cursor when it got none); `more` says the response
/// stopped at its size limit and the client should ask again at once.
///
/// The messages are the log's pre-encoded JSON, joined with commas: building a response
/// copies bytes but never serializes a message again.
pub fn poll_body(read: &Read) -> Bytes {
    let size: usize = read.entries.iter().map(|e| e.json.len() + 1).sum();
    let mut body = BytesMut::with_capacity(size + 96);
    body.put_slice(b"{\"messages\":[");
    for (i, entry) in read.entries.iter().enumerate() {
        if i > 0 {
            body.put_u8(b',');
        }
        body.put_slice(entry.json.as_bytes());
    }
    // Written straight into the body: `format!` would allocate a String per poll.
    let _ = write!(body, "],\"last_id\":{}", read.last_id);
    if let Some(epoch) = read.epoch {
        let _ = write!(body, ",\"epoch\":\"{epoch}\"");
    }
    if read.missed > 0 {
        let _ = write!(body, ",\"missed\":{}", read.missed);
    }
    if read.reset {
        body.put_slice(b",\"reset\":true");
    }
    if read.more {
        body.put_slice(b",\"more\":true");
    }
    body.put_u8(b'}');
    body.freeze()
}

/// What a streaming cursor (SSE, WebSocket) drains from the log into one write.
pub(crate) const STREAM_BUDGET: Budget = Budget { count: STREAM_BATCH, bytes: STREAM_BATCH_BYTES };

/// The notice a cursor of another run (or ahead of the stream) gets before this run's
/// history: `{"type":"reset","epoch":"E","last_id":M}`.
pub(crate) fn reset_notice(read: &Read) -> String {
    let epoch = read.epoch.map(|e| e.to_string()).unwrap_or_default();
    format!(r#"{{"type":"reset","epoch":"{epoch}","last_id":{}}}"#, read.last_id)
}

/// The first frame of a WebSocket: the stream's epoch, which the client's resume
/// cursor must name, and where the stream is: `{"type":"hello","epoch":"E","last_id":M}`.
pub(crate) fn hello_notice(epoch: crate::log::Epoch, last_id: u64) -> String {
    format!(r#"{{"type":"hello","epoch":"{epoch}","last_id":{last_id}}}"#)
}

/// The notice a cursor behind retention gets: `{"type":"gap","missed":K}`.
pub(crate) fn gap_notice(missed: u64) -> String {
    format!(r#"{{"type":"gap","missed":{missed}}}"#)
}

/// How much one poll response may carry: the client's `limit`, `--max-response-bytes`,
/// and what is left of the bytes all poll responses in flight may hold together.
pub(crate) fn poll_budget(app: &AppState, limit: usize) -> Budget {
    Budget { count: limit, bytes: app.config.max_response_bytes.min(app.poll_bytes.available()) }
}

/// [`poll_body`] as a response, counted. The response body holds the client's
/// subscriber place and its share of the poll-bytes budget until hyper has taken the
/// last of it for writing, not just until the handler returns: a client that reads
/// slowly keeps its place, so a few slow readers cannot make the server build
/// response after response for them.
pub(crate) fn poll_response(
    app: &AppState,
    read: &Read,
    metrics: &TransportMetrics,
    slot: Admitted,
) -> Response {
    let body = poll_body(read);
    if read.missed > 0 {
        metrics.gaps.inc();
    }
    metrics.bytes_sent.inc_by(body.len() as u64);
    let reservation = app.poll_bytes.reserve(body.len());
    let body = HeldBody { rest: body, _slot: slot, _reservation: reservation };
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], Body::new(body)).into_response()
}

/// The bytes every poll response in flight holds, together.
#[derive(Debug)]
pub struct PollBytes {
    limit: usize,
    in_flight: Arc<AtomicUsize>,
}

impl PollBytes {
    /// A budget of `limit` bytes for all poll responses in flight.
    pub fn new(limit: usize) -> Self {
        PollBytes { limit, in_flight: Arc::new(AtomicUsize::new(0)) }
    }

    /// Bytes a new response may still take (a response always gets one message).
    pub fn available(&self) -> usize {
        self.limit.saturating_sub(self.in_flight.load(Ordering::Relaxed))
    }

    /// Bytes held by responses now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn reserve(&self, bytes: usize) -> Reservation {
        self.in_flight.fetch_add(bytes, Ordering::Relaxed);
        Reservation { bytes, in_flight: self.in_flight.clone() }
    }
}

/// One response's share of [`PollBytes`], given back when the body is dropped.
#[derive(Debug)]
struct Reservation {
    bytes: usize,
    in_flight: Arc<AtomicUsize>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// A poll body handed to hyper a piece at a time. hyper asks for the next piece only
/// when its write buffer has room, so the last piece (and with it the slot) is taken
/// when the client has read nearly everything.
struct HeldBody {
    rest: Bytes,
    _slot: Admitted,
    _reservation: Reservation,
}

/// Size of one piece of a poll body: small enough that hyper's write buffer (about
/// 400 KiB) fills with pieces of a large response, rather than taking all of it at once.
const BODY_PIECE: usize = 64 * 1024;

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.rest.is_empty() {
            return Poll::Ready(None);
        }
        let piece = this.rest.split_to(this.rest.len().min(BODY_PIECE));
        Poll::Ready(Some(Ok(http_body::Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.rest.len() as u64)
    }
}
