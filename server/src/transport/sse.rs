//! Server-Sent Events: `GET /sse` answers with one `text/event-stream` response that
//! never ends; each message is an event `id: N` / `event: <type>` / `data: <json>`.
//!
//! The cursor lives in a server task (this stream). The browser's `EventSource`
//! reconnects by itself after the `retry:` delay and sends `Last-Event-ID`, so resume
//! costs the client no code at all.
//!
//! Backpressure comes free: hyper polls this stream for the next chunk only when it has
//! written the previous one, so a slow reader makes the cursor lag, never a queue grow.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

use super::Transport;
use crate::app::AppState;
use crate::config::{SSE_RETRY_MS, STREAM_BATCH};
use crate::error::ApiError;
use crate::log::sse_event;
use crate::metrics::Admitted;
use crate::params::Params;

/// `GET /sse?since=ID&event_names=false`; a `Last-Event-ID` header wins over `since`.
pub async fn sse(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let metrics = app.metrics.transport(Transport::Sse);
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(value) => {
            Some(value.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).ok_or_else(|| {
                ApiError::bad_request("invalid_last_event_id", "`Last-Event-ID` must be a whole number ≥ 0")
            })?)
        }
    };
    let admitted = app.admission.admit(metrics)?;
    let appended = app.log.subscribe();
    let cursor = last_event_id.or(params.since).unwrap_or_else(|| app.log.last_id());
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + app.config.heartbeat, app.config.heartbeat);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let session = SseSession {
        app,
        appended,
        cursor,
        heartbeat,
        event_names: params.event_names,
        started: false,
        finished: false,
        _admitted: admitted,
    };
    let stream = futures_util::stream::unfold(session, |mut session| async move {
        let chunk = session.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), session))
    });
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        // Tell reverse proxies such as nginx not to buffer the stream.
        (header::HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no")),
    ];
    Ok((headers, Body::from_stream(stream)).into_response())
}

/// One SSE subscriber: its cursor and what it waits on.
struct SseSession {
    app: Arc<AppState>,
    appended: watch::Receiver<u64>,
    /// Last id delivered (or the resume point).
    cursor: u64,
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
    /// The next chunk to write: every pending event in one buffer (one write, one flush),
    /// a keep-alive comment, or `None` when the stream is over.
    async fn next_chunk(&mut self) -> Option<Bytes> {
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
            let read = self.app.log.read_after(self.cursor, STREAM_BATCH);
            if read.reset {
                // The client is ahead of the stream: tell it where the stream is, and
                // give the notice that id so the browser's Last-Event-ID moves too.
                let notice = format!(r#"{{"type":"reset","last_id":{}}}"#, read.last_id);
                out.put(sse_event(Some(read.last_id), "reset", notice.as_bytes()));
                self.cursor = read.last_id;
            }
            if read.missed > 0 {
                let notice = format!(r#"{{"type":"gap","missed":{}}}"#, read.missed);
                out.put(sse_event(None, "gap", notice.as_bytes()));
                metrics.gaps.inc();
            }
            for entry in &read.entries {
                if self.event_names {
                    out.put_slice(&entry.sse);
                } else {
                    entry.sse_unnamed().for_each(|part| out.put_slice(part));
                }
            }
            if let Some(last) = read.entries.last() {
                self.cursor = last.id;
            }
            if !out.is_empty() {
                metrics.bytes_sent.inc_by(out.len() as u64);
                return Some(out.freeze());
            }
            tokio::select! {
                biased;
                _ = self.app.shutdown.cancelled() => {
                    self.finished = true;
                    let bye = sse_event(None, "shutdown", br#"{"type":"shutdown","reason":"server shutting down"}"#);
                    return Some(bye);
                }
                changed = self.appended.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = self.heartbeat.tick() => {
                    // A comment line: ignored by EventSource, but it keeps proxies from
                    // closing an idle connection and lets both ends notice a dead one.
                    let keep_alive = Bytes::from_static(b": keep-alive\n\n");
                    metrics.bytes_sent.inc_by(keep_alive.len() as u64);
                    return Some(keep_alive);
                }
            }
        }
    }
}
