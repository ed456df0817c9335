//! Server-Sent Events: `GET /sse` answers with one `text/event-stream` response that
//! never ends; each message is an event `id: N` / `event: <type>` / `data: <json>`.
//!
//! The cursor lives in a server task (this stream). The browser's `EventSource`
//! reconnects by itself after the `retry:` delay and sends `Last-Event-ID`, so resume
//! costs the client no code at all.
//!
//! On the wire an SSE response is a fixed head and then chunks (HTTP/1.1 chunked
//! encoding: the size in hex, the bytes, `\r\n`). A subscriber arrives by one of two
//! doors, which send the same bytes (a test compares them):
//!
//! - **direct** ([`take_over`]): a fresh connection whose first request is a valid
//!   `GET /sse` is written by [`Direct::serve`] straight onto the socket. hyper would keep
//!   about 16 KiB of buffers and its state machine for the whole life of the response;
//!   here an idle subscriber costs its session and the socket (docs/performance.md);
//! - **through the router** ([`sse`]): everything else — a request on a connection that
//!   already served another, a request split over several packets, and every error, so
//!   refusals have one code path.
//!
//! Backpressure comes free either way: the next chunk is built only when the previous
//! one is written, so a slow reader makes the cursor lag, never a queue grow.

use std::convert::Infallible;
use std::io::{self, IoSlice};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

use super::Transport;
use super::STREAM_BUDGET;
use crate::app::AppState;
use crate::config::SSE_RETRY_MS;
use crate::error::ApiError;
use crate::log::{sse_event, Cursor};
use crate::metrics::Admitted;
use crate::params::Params;

/// The response headers of a stream, in the order hyper writes them.
const STREAM_HEADERS: [(&str, &str); 3] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    // Tell reverse proxies such as nginx not to buffer the stream.
    ("x-accel-buffering", "no"),
];

/// `GET /sse?since=ID&event_names=false`; a `Last-Event-ID` header wins over `since`.
pub async fn sse(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let last_event_id = headers.get("last-event-id").map(HeaderValue::as_bytes);
    let session = SseSession::open(app, last_event_id, params)?;
    let stream = futures_util::stream::unfold(session, |mut session| async move {
        let chunk = session.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), session))
    });
    let headers =
        STREAM_HEADERS.map(|(name, value)| (HeaderName::from_static(name), HeaderValue::from_static(value)));
    Ok((headers, Body::from_stream(stream)).into_response())
}

/// The most request bytes [`take_over`] looks at; a longer head goes to the router.
const PEEK_LIMIT: usize = 4096;

/// A subscriber whose connection the SSE transport writes itself.
pub(crate) struct Direct {
    session: SseSession,
    /// The request head, peeked but not yet consumed.
    head: Vec<u8>,
    /// The request carried `Origin`: answer with `access-control-allow-origin: *`, as the
    /// router's CORS middleware does.
    cross_origin: bool,
}

/// Looks at a fresh connection's first bytes without consuming them. If they are a
/// whole `GET /sse` request that opens a session, returns it; otherwise `None`, and
/// hyper serves the connection from its first byte as if nothing had happened.
pub(crate) async fn take_over(tcp: &TcpStream, app: &Arc<AppState>) -> Option<Direct> {
    // Wait before allocating: a connection that never speaks holds no buffer. The caller
    // bounds this wait by --request-timeout.
    tcp.readable().await.ok()?;
    let mut head = vec![0; PEEK_LIMIT];
    let peeked = tcp.peek(&mut head).await.ok()?;
    let request = DirectRequest::parse(&head[..peeked])?;
    // A host the router would refuse is left to it, so the refusal is the same.
    if app.loopback && !request.host.is_some_and(crate::edge::is_loopback_host) {
        return None;
    }
    let params = Params::from_query(request.query).ok()?;
    let session = SseSession::open(app.clone(), request.last_event_id, params).ok()?;
    let cross_origin = request.cross_origin;
    head.truncate(request.head_len);
    Some(Direct { session, head, cross_origin })
}

/// What [`take_over`] needs from a request head.
#[derive(Debug, PartialEq)]
struct DirectRequest<'a> {
    head_len: usize,
    query: &'a str,
    last_event_id: Option<&'a [u8]>,
    host: Option<&'a [u8]>,
    cross_origin: bool,
}

impl<'a> DirectRequest<'a> {
    /// A complete HTTP/1.1 `GET /sse[?query]` without a body, or `None`.
    fn parse(bytes: &'a [u8]) -> Option<DirectRequest<'a>> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        let httparse::Status::Complete(head_len) = request.parse(bytes).ok()? else {
            return None;
        };
        // HTTP/1.0 has no chunked encoding; leave it to hyper.
        if request.method != Some("GET") || request.version != Some(1) {
            return None;
        }
        let query = match request.path?.strip_prefix("/sse")? {
            "" => "",
            rest => rest.strip_prefix('?')?,
        };
        let mut direct =
            DirectRequest { head_len, query, last_event_id: None, host: None, cross_origin: false };
        for header in request.headers.iter() {
            let name = header.name;
            if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding") {
                return None; // a GET with a body: unusual enough for the general path
            } else if name.eq_ignore_ascii_case("last-event-id") {
                direct.last_event_id = Some(header.value);
            } else if name.eq_ignore_ascii_case("host") {
                direct.host = Some(header.value);
            } else if name.eq_ignore_ascii_case("origin") {
                direct.cross_origin = true;
            }
        }
        Some(direct)
    }
}

impl Direct {
    /// Consumes the request, writes the response head with the first chunk, then one
    /// chunk per batch until the client leaves or the server shuts down.
    pub(crate) async fn serve(self, mut tcp: TcpStream) {
        let Direct { mut session, mut head, cross_origin } = self;
        if tcp.read_exact(&mut head).await.is_err() {
            return;
        }
        drop(head);
        let write_timeout = session.app.config.write_timeout;
        let mut response_head = response_head(cross_origin);
        let mut next = session.next_chunk().await;
        loop {
            // `None` ends the stream with the last chunk, of size 0.
            let chunk = next.as_deref().unwrap_or_default();
            let head = std::mem::take(&mut response_head);
            let write = write_chunk(&mut tcp, &head, chunk);
            // A client that stopped reading (or vanished without a FIN) fills its socket
            // buffer and the write waits; past --write-timeout it is dropped and counted.
            let Ok(written) = tokio::time::timeout(write_timeout, write).await else {
                session.app.metrics.transport(Transport::Sse).slow_closed.inc();
                return;
            };
            if written.is_err() || next.is_none() {
                return;
            }
            next = tokio::select! {
                chunk = session.next_chunk() => chunk,
                () = peer_gone(&tcp) => return,
            };
        }
    }
}

/// The status line and headers of a stream, as hyper writes them (with `date`).
fn response_head(cross_origin: bool) -> Vec<u8> {
    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    let cors = cross_origin.then_some(("access-control-allow-origin", "*"));
    for (name, value) in STREAM_HEADERS.into_iter().chain(cors) {
        head.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    head.extend_from_slice(format!("transfer-encoding: chunked\r\ndate: {date}\r\n\r\n").as_bytes());
    head
}

/// Writes `before` (the response head, once), then `chunk` in chunked encoding, in one
/// `writev` when the socket takes it all.
async fn write_chunk(tcp: &mut TcpStream, before: &[u8], chunk: &[u8]) -> io::Result<()> {
    let size_line = format!("{:X}\r\n", chunk.len());
    let mut parts = [
        IoSlice::new(before),
        IoSlice::new(size_line.as_bytes()),
        IoSlice::new(chunk),
        IoSlice::new(b"\r\n"),
    ];
    let mut parts = &mut parts[..];
    while !parts.is_empty() {
        let written = tcp.write_vectored(parts).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut parts, written);
    }
    Ok(())
}

/// Resolves when the client closes its end. A subscriber sends nothing after its
/// request, so whatever it does send is read and dropped.
async fn peer_gone(tcp: &TcpStream) {
    let mut scrap = [0; 64];
    loop {
        if tcp.readable().await.is_err() {
            return;
        }
        match tcp.try_read(&mut scrap) {
            Ok(0) => return,
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// One SSE subscriber: its cursor and what it waits on.
struct SseSession {
    app: Arc<AppState>,
    appended: watch::Receiver<u64>,
    /// Last position delivered (or the resume point).
    cursor: Cursor,
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
    fn open(
        app: Arc<AppState>,
        last_event_id: Option<&[u8]>,
        params: Params,
    ) -> Result<SseSession, ApiError> {
        let metrics = app.metrics.transport(Transport::Sse);
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
        let admitted = app.admission.admit(metrics)?;
        let appended = app.log.subscribe();
        let cursor = last_event_id.or(params.since).unwrap_or_else(|| app.log.now());
        let mut heartbeat = tokio::time::interval_at(
            tokio::time::Instant::now() + app.config.heartbeat,
            app.config.heartbeat,
        );
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ok(SseSession {
            app,
            appended,
            cursor,
            heartbeat,
            event_names: params.event_names,
            started: false,
            finished: false,
            _admitted: admitted,
        })
    }

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
            let read = self.app.log.read_after(self.cursor, STREAM_BUDGET);
            if read.reset {
                // The cursor is from another run of the stream (the server restarted):
                // say so, and give the notice this run's start as its id, so the
                // browser's Last-Event-ID moves to this run even before a message comes.
                self.cursor = Cursor { epoch: read.epoch, id: 0 };
                let notice = super::reset_notice(&read);
                out.put(sse_event(Some(self.cursor), "reset", notice.as_bytes()));
            }
            if read.missed > 0 {
                let notice = super::gap_notice(read.missed);
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
                self.cursor = Cursor { epoch: read.epoch, id: last.id };
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

#[cfg(test)]
mod tests {
    use super::DirectRequest;

    fn parse(head: &str) -> Option<DirectRequest<'_>> {
        DirectRequest::parse(head.as_bytes())
    }

    #[test]
    fn a_whole_get_sse_request_is_served_directly() {
        let head = "GET /sse?since=4&event_names=false HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 7\r\nOrigin: http://a\r\n\r\n";
        let request = parse(head).unwrap();
        assert_eq!(request.head_len, head.len());
        assert_eq!(request.query, "since=4&event_names=false");
        assert_eq!(request.last_event_id, Some(&b"7"[..]));
        assert!(request.cross_origin);
        let plain = parse("GET /sse HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!((plain.query, plain.last_event_id, plain.cross_origin), ("", None, false));
    }

    #[test]
    fn anything_else_is_left_to_the_router() {
        for head in [
            "GET /sse HTTP/1.1\r\nHost: x\r\n",              // not complete yet
            "GET /sse HTTP/1.0\r\nHost: x\r\n\r\n",          // no chunked encoding
            "POST /sse HTTP/1.1\r\nHost: x\r\n\r\n",         // wrong method: a 405
            "GET /sse2 HTTP/1.1\r\nHost: x\r\n\r\n",         // another path
            "GET /poll?since=1 HTTP/1.1\r\nHost: x\r\n\r\n", // another transport
            "GET /sse HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", // a body
        ] {
            assert_eq!(parse(head), None, "{head:?}");
        }
    }
}
