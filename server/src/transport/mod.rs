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

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::fmt::Write;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::log::Read;
use crate::metrics::TransportMetrics;

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
/// `{"messages":[...],"last_id":M}` plus `"missed":K` and `"reset":true` when they apply.
///
/// The messages are the log's pre-encoded JSON, joined with commas: building a response
/// copies bytes but never serializes a message again.
pub fn poll_body(read: &Read) -> Bytes {
    let size: usize = read.entries.iter().map(|e| e.json.len() + 1).sum();
    let mut body = BytesMut::with_capacity(size + 64);
    body.put_slice(b"{\"messages\":[");
    for (i, entry) in read.entries.iter().enumerate() {
        if i > 0 {
            body.put_u8(b',');
        }
        body.put_slice(entry.json.as_bytes());
    }
    // Written straight into the body: `format!` would allocate a String per poll.
    let _ = write!(body, "],\"last_id\":{}", read.last_id);
    if read.missed > 0 {
        let _ = write!(body, ",\"missed\":{}", read.missed);
    }
    if read.reset {
        body.put_slice(b",\"reset\":true");
    }
    body.put_u8(b'}');
    body.freeze()
}

/// [`poll_body`] as a response, counted.
pub(crate) fn poll_response(read: &Read, metrics: &TransportMetrics) -> Response {
    let body = poll_body(read);
    if read.missed > 0 {
        metrics.gaps.inc();
    }
    metrics.bytes_sent.inc_by(body.len() as u64);
    json_response(body)
}

fn json_response(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}
