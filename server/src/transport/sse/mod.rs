//! Server-Sent Events: `GET /sse` answers with one `text/event-stream` response that
//! never ends; each message is an event `id: EPOCH-N` / `event: <type>` / `data: <json>`.
//!
//! The cursor lives in a server task (this stream). The browser's `EventSource`
//! reconnects by itself after the `retry:` delay and sends `Last-Event-ID` (the last
//! `id:` it saw, a cursor), so resume costs the client no code at all.
//!
//! On the wire an SSE response is a fixed head and then chunks (HTTP/1.1 chunked
//! encoding: the size in hex, the bytes, `\r\n`). A subscriber arrives by one of two
//! doors, which send the same bytes (a test compares them):
//!
//! - **through the router** ([`sse`], this file): the handler a student reads first;
//!   it serves a request on a connection that already served another, a request split
//!   over several packets, and every error, so refusals have one code path;
//! - **direct** (`direct.rs`): a fresh connection whose first request is a valid
//!   `GET /sse` is written straight onto the socket. hyper would keep about 16 KiB of
//!   buffers and its state machine for the whole life of the response; there an idle
//!   subscriber costs its session and the socket (docs/performance.md).
//!
//! Backpressure comes free either way: the next chunk is built only when the previous
//! one is written, so a slow reader makes the cursor lag, never a queue grow.

mod direct;

pub(crate) use direct::{offer, read_first_request, take_over, Direct};

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::{BufMut, Bytes, BytesMut};
use pushlab_protocol::{sse as event, Cursor, Notice};
use tokio::time::{Interval, MissedTickBehavior};

use super::follower::{Follower, STREAM_BUDGET};
use crate::admission::Admitted;
use crate::config::SSE_RETRY_MS;
use crate::error::ApiError;
use crate::params::Params;
use crate::socket::SocketUse;
use crate::state::AppState;
use pushlab_protocol::Transport;

/// The response headers of a stream, in the order hyper writes them.
pub(crate) const STREAM_HEADERS: [(&str, &str); 3] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    // Tell reverse proxies such as nginx not to buffer the stream.
    ("x-accel-buffering", "no"),
];

/// `GET /sse?since=ID&event_names=false`; a `Last-Event-ID` header wins over `since`.
pub async fn sse(
    State(app): State<Arc<AppState>>,
    socket_use: Option<Extension<Arc<SocketUse>>>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let mut last_event_ids = headers.get_all("last-event-id").iter();
    let last_event_id = last_event_ids.next().map(HeaderValue::as_bytes);
    if last_event_ids.next().is_some() {
        return Err(ApiError::bad_request(
            "invalid_last_event_id",
            "`Last-Event-ID` is given more than once",
        ));
    }
    let session = SseSession::open(app, last_event_id, params)?;
    // A write this stream stalls on is counted against an SSE subscriber.
    if let Some(Extension(socket_use)) = socket_use {
        socket_use.serves(Transport::Sse);
    }
    let stream = futures_util::stream::unfold(session, |mut session| async move {
        let chunk = session.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), session))
    });
    let headers =
        STREAM_HEADERS.map(|(name, value)| (HeaderName::from_static(name), HeaderValue::from_static(value)));
    Ok((headers, Body::from_stream(stream)).into_response())
}

/// One SSE subscriber: its cursor, its heartbeat and its place.
pub(crate) struct SseSession {
    pub(crate) app: Arc<AppState>,
    follower: Follower,
    heartbeat: Interval,
    /// Name each event by the message's type (`event: chat`), or leave every message
    /// unnamed so `EventSource.onmessage` receives all types.
    event_names: bool,
    started: bool,
    finished: bool,
    /// Holds this subscriber's place until the client goes away and the body is dropped.
    _admitted: Admitted,
}

impl SseSession {
    /// Validates the resume point, takes a subscriber place and starts the heartbeat.
    pub(crate) fn open(
        app: Arc<AppState>,
        last_event_id: Option<&[u8]>,
        params: Params,
    ) -> Result<SseSession, ApiError> {
        let last_event_id = match last_event_id {
            None => None,
            Some(value) => {
                Some(std::str::from_utf8(value).ok().and_then(Cursor::parse).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_last_event_id",
                        "`Last-Event-ID` must be an SSE id this server sent (EPOCH-ID, e.g. 3f9a1c07-42) \
                     or a whole number ≥ 0",
                    )
                })?)
            }
        };
        let admitted = app.admission.admit(app.metrics.transport(Transport::Sse))?;
        let follower = Follower::new(app.clone(), Transport::Sse, last_event_id.or(params.since));
        let mut heartbeat = tokio::time::interval_at(
            tokio::time::Instant::now() + app.config.heartbeat,
            app.config.heartbeat,
        );
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ok(SseSession {
            app,
            follower,
            heartbeat,
            event_names: params.event_names,
            started: false,
            finished: false,
            _admitted: admitted,
        })
    }

    /// The next chunk to write: every pending event in one buffer (one write, one flush),
    /// a keep-alive comment, or `None` when the stream is over.
    pub(crate) async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        let metrics = self.app.metrics.transport(Transport::Sse);
        let mut out = BytesMut::new();
        if !self.started {
            self.started = true;
            out.put_slice(format!("retry: {SSE_RETRY_MS}\n\n").as_bytes());
        }
        loop {
            let batch = self.follower.read(STREAM_BUDGET);
            if let Some(reset) = &batch.reset {
                // The cursor is from another run of the stream (the server restarted):
                // say so, and give the notice this run's start as its id, so the
                // browser's Last-Event-ID moves to this run even before a message comes.
                let start = Cursor { epoch: Some(batch.read.epoch), id: 0 };
                out.put(event::notice(Some(start), reset));
            }
            if let Some(gap) = &batch.gap {
                out.put(event::notice(None, gap));
            }
            for entry in &batch.entries {
                if self.event_names {
                    out.put_slice(&entry.sse);
                } else {
                    entry.sse_unnamed().for_each(|part| out.put_slice(part));
                }
            }
            if !out.is_empty() {
                metrics.bytes_sent.inc_by(out.len() as u64);
                return Some(out.freeze());
            }
            tokio::select! {
                biased;
                _ = self.app.shutdown.cancelled() => {
                    self.finished = true;
                    let bye = event::notice(None, &Notice::Shutdown { reason: "server shutting down".into() });
                    return Some(bye);
                }
                alive = self.follower.appended() => if !alive {
                    return None;
                },
                _ = self.heartbeat.tick() => {
                    // A comment line: ignored by EventSource, but it keeps proxies from
                    // closing an idle connection and lets both ends notice a dead one.
                    let keep_alive = Bytes::from_static(event::KEEP_ALIVE);
                    metrics.bytes_sent.inc_by(keep_alive.len() as u64);
                    return Some(keep_alive);
                }
            }
        }
    }
}
