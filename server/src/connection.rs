//! Accepting connections, and what happens before any HTTP parsing:
//!
//! - past `--max-sockets` open connections, a new one is answered with a JSON 503 and
//!   closed at once, so the process never runs out of file descriptors (when it does,
//!   the kernel's accept queue fills and new clients hang with no answer at all);
//! - a connection must start its request within `--request-timeout`;
//! - a fresh connection whose first request is a `GET /sse` is handed to the SSE
//!   transport, which writes the stream onto the socket itself (the take-over hook,
//!   `transport::take_over`);
//!   every other connection is served by hyper and the router, through [`Guarded`].
//!
//! This is what `axum::serve` does (HTTP/1 with upgrades for WebSocket, Nagle off,
//! graceful shutdown, a pause after accept errors) plus those steps.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tokio_util::task::TaskTracker;

use crate::config::RETRY_AFTER_SECONDS;
use crate::error::ApiError;
use pushlab_protocol::Transport;

use crate::socket::SocketUse;
use crate::state::AppState;
use crate::transport;

/// Accepts until the server shuts down; each connection runs in a task of `connections`.
pub(crate) async fn accept(
    listener: TcpListener,
    app: Arc<AppState>,
    router: Router,
    connections: TaskTracker,
) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            _ = app.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, _)) => {
                if open.load(Ordering::Relaxed) >= app.config.max_sockets {
                    app.metrics.sockets_refused.inc();
                    refuse(tcp, app.config.max_sockets);
                    continue;
                }
                // Nagle's algorithm would hold small frames back waiting for an ACK: the
                // exact opposite of what a push server wants.
                let _ = tcp.set_nodelay(true);
                let place = OpenSocket::take(&open, &app);
                connections.spawn(serve(tcp, app.clone(), router.clone(), place));
            }
            Err(error) => pause_after(error).await,
        }
    }
}

/// One open connection, counted until its task ends.
struct OpenSocket {
    open: Arc<AtomicUsize>,
    gauge: prometheus_client::metrics::gauge::Gauge,
}

impl OpenSocket {
    fn take(open: &Arc<AtomicUsize>, app: &AppState) -> OpenSocket {
        open.fetch_add(1, Ordering::Relaxed);
        app.metrics.open_sockets.inc();
        OpenSocket { open: open.clone(), gauge: app.metrics.open_sockets.clone() }
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.gauge.dec();
    }
}

/// Answers a connection over the limit with a 503 without reading its request, and
/// closes it. Everything here is non-blocking: a flood of connections past the limit
/// must not hold descriptors while we wait on them.
fn refuse(tcp: TcpStream, limit: usize) {
    let error = ApiError::unavailable(
        "too_many_sockets",
        format!("the server holds its limit of {limit} open connections (--max-sockets); retry later"),
    );
    let body = error.body().to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: {RETRY_AFTER_SECONDS}\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // A fresh socket's send buffer is empty, so this small write goes through whole.
    let _ = tcp.try_write(response.as_bytes());
    // Reading what already arrived avoids a reset that could destroy the answer.
    let mut scrap = [0; 4096];
    while let Ok(n) = tcp.try_read(&mut scrap) {
        if n == 0 {
            break;
        }
    }
}

async fn serve(tcp: TcpStream, app: Arc<AppState>, router: Router, place: OpenSocket) {
    let _place = place;
    let accepted_at = tokio::time::Instant::now();
    let request_timeout = app.config.request_timeout;
    // A silent connection is closed between 1 and 1.25 request timeouts, at random:
    // thousands of idle sockets opened together (a reconnect storm, or an attack that
    // reopens each socket the moment it is closed) then close spread over a few seconds
    // instead of all in the same millisecond, so they never come back as one burst of
    // accepts that delays every other client (the abuse run, results/*-abuse).
    let first_request = request_timeout.mul_f64(1.0 + 0.25 * fastrand::f64());
    let direct = tokio::select! {
        _ = app.shutdown.cancelled() => return,
        direct = tokio::time::timeout(first_request, transport::take_over(&tcp, &app)) => match direct {
            // A connection that sends nothing is closed, as hyper closes one whose head
            // does not arrive in time.
            Err(_) => return,
            Ok(direct) => direct,
        },
    };
    if let Some(subscriber) = direct {
        return subscriber.serve(tcp).await;
    }
    if speaks_http2(&tcp).await {
        return refuse_http2(tcp).await;
    }
    let socket_use = Arc::new(SocketUse::default());
    let io = Guarded::new(tcp, app.clone(), socket_use.clone());
    let service = Marked { inner: router, socket_use: socket_use.clone() };
    let connection = hyper::server::conn::http1::Builder::new()
        // hyper's header timeout runs from the moment it starts reading a head: on a new
        // connection, and again after each response on a keep-alive one. So it is both
        // the slow-headers (slowloris) and the keep-alive idle timeout.
        .timer(TokioTimer::new())
        .header_read_timeout(request_timeout)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    // hyper's timer starts when it starts reading, after the wait for the first byte
    // above: without this deadline a client silent until just before it, then trickling,
    // would have nearly two timeouts for its first head.
    let mut first_head = Some(accepted_at + first_request);
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = app.shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(first_head.unwrap_or_else(tokio::time::Instant::now)), if first_head.is_some() => {
                if !socket_use.has_requested() {
                    return;
                }
                first_head = None;
            }
        }
    }
    // Finish the response in progress (a long poll's answer, an SSE stream's `shutdown`
    // event), then close.
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// The client preface of HTTP/2 with prior knowledge (RFC 9113 §3.4).
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether the connection opens with HTTP/2's preface (hyper would close it silently).
async fn speaks_http2(tcp: &TcpStream) -> bool {
    let mut start = [0; HTTP2_PREFACE.len()];
    matches!(tcp.peek(&mut start).await, Ok(n) if n > 3 && HTTP2_PREFACE.starts_with(&start[..n]))
}

/// Answers an HTTP/2 client in its own protocol: an empty SETTINGS frame (the server's
/// preface) and a GOAWAY with `HTTP_1_1_REQUIRED` (RFC 9113 §6.8, §7), whose debug
/// data is the same JSON refusal every other client gets. Then closes.
async fn refuse_http2(mut tcp: TcpStream) {
    use tokio::io::AsyncWriteExt;
    const SETTINGS: u8 = 0x4;
    const GOAWAY: u8 = 0x7;
    const HTTP_1_1_REQUIRED: u32 = 0xd;
    let debug = serde_json::json!({
        "error": "http2_not_supported",
        "message": "this server speaks HTTP/1.1 only; connect without HTTP/2 prior knowledge",
    })
    .to_string();
    let frame = |kind: u8, payload: &[u8]| {
        let length = (payload.len() as u32).to_be_bytes();
        // Length (24 bits), type, flags, stream 0, payload.
        let mut frame = vec![length[1], length[2], length[3], kind, 0, 0, 0, 0, 0];
        frame.extend_from_slice(payload);
        frame
    };
    let mut goaway = 0u32.to_be_bytes().to_vec(); // last stream id: none was processed
    goaway.extend_from_slice(&HTTP_1_1_REQUIRED.to_be_bytes());
    goaway.extend_from_slice(debug.as_bytes());
    let mut out = frame(SETTINGS, &[]);
    out.extend(frame(GOAWAY, &goaway));
    let _ = tokio::time::timeout(Duration::from_secs(1), tcp.write_all(&out)).await;
}

/// A failed accept that is about one client (it reset before we took it) is skipped.
/// Anything else, typically the process's open-files limit, is logged and waited out
/// for a second rather than retried in a busy loop; closing connections free descriptors.
async fn pause_after(error: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(error.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    tracing::error!("accept failed: {error}; pausing 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The socket under hyper (and, after an upgrade, under the WebSocket), with two things
/// hyper does not do:
///
/// - **a write deadline**: a write that makes no progress for `write_timeout` fails
///   with `TimedOut`, which ends the connection. Without it a client that stops reading
///   holds its connection, its response and its subscriber place forever;
/// - **JSON for hyper's own refusals**: hyper answers a request it cannot parse (a bad
///   request line or header, a head over its size limit) itself, with an empty 400,
///   414 or 431, and offers no hook to change that. Every other refusal of this server
///   is JSON with a stable code, so those exact responses are recognised on their way
///   out and replaced by the same statuses with a JSON body.
pub(crate) struct Guarded {
    tcp: TcpStream,
    deadline: WriteDeadline,
    /// A replacement for hyper's refusal, while it is being written.
    replacement: Option<Replacement>,
}

struct Replacement {
    bytes: Vec<u8>,
    written: usize,
    /// The length of hyper's response, reported to hyper as written.
    original: usize,
}

/// Fails a write that has been blocked for `timeout`.
struct WriteDeadline {
    timeout: Duration,
    /// Armed while a write is blocked.
    stalled: Option<Pin<Box<Sleep>>>,
    app: Arc<AppState>,
    socket_use: Arc<SocketUse>,
}

impl WriteDeadline {
    /// After a write returned `Pending`: `Pending` still, or an error once the deadline
    /// has passed.
    fn blocked<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.timeout;
        let sleep = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if sleep.as_mut().poll(cx).is_ready() {
            self.app.metrics.write_timeouts.inc();
            // An SSE stream through the router; a WebSocket counts itself (ws.rs).
            if let Some(transport) = self.socket_use.subscriber() {
                self.app.metrics.transport(transport).slow_closed.inc();
            }
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading")));
        }
        Poll::Pending
    }

    /// Passes a write's result through, disarming the deadline when it made progress.
    fn after<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.blocked(cx),
        }
    }
}

impl Guarded {
    fn new(tcp: TcpStream, app: Arc<AppState>, socket_use: Arc<SocketUse>) -> Self {
        let timeout = app.config.write_timeout;
        Guarded {
            tcp,
            deadline: WriteDeadline { timeout, stalled: None, app, socket_use },
            replacement: None,
        }
    }
}

/// The router, telling the connection's [`SocketUse`] that a request head arrived, and
/// handing it to the handlers in the request's extensions.
#[derive(Clone)]
struct Marked {
    inner: Router,
    socket_use: Arc<SocketUse>,
}

impl<B> tower_service::Service<axum::http::Request<B>> for Marked
where
    Router: tower_service::Service<axum::http::Request<B>>,
{
    type Response = <Router as tower_service::Service<axum::http::Request<B>>>::Response;
    type Error = <Router as tower_service::Service<axum::http::Request<B>>>::Error;
    type Future = <Router as tower_service::Service<axum::http::Request<B>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower_service::Service::<axum::http::Request<B>>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut request: axum::http::Request<B>) -> Self::Future {
        self.socket_use.request_started();
        // Only a stream needs it; inserting allocates the extensions map, which every
        // short poll would otherwise pay for.
        if request.uri().path() == Transport::Sse.path() {
            request.extensions_mut().insert(self.socket_use.clone());
        }
        self.inner.call(request)
    }
}

/// hyper's automatic answer to a request it could not parse, if `buf` is one: its
/// status. Only hyper writes these: every response of the router has a body.
fn hyper_refusal(buf: &[u8]) -> Option<(u16, &'static str, &'static str)> {
    // The status line first: every other write (responses, WebSocket frames after an
    // upgrade) fails this in a few byte comparisons.
    let refusal = |prefix: &[u8], answer| buf.starts_with(prefix).then_some(answer);
    let answer = refusal(b"HTTP/1.1 400 ", (400, "Bad Request", "bad_request"))
        .or_else(|| refusal(b"HTTP/1.1 414 ", (414, "URI Too Long", "uri_too_long")))
        .or_else(|| {
            refusal(b"HTTP/1.1 431 ", (431, "Request Header Fields Too Large", "headers_too_large"))
        })?;
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let empty = buf.windows(19).any(|w| w.eq_ignore_ascii_case(b"content-length: 0\r\n"));
    (head_end == buf.len() && empty).then_some(answer)
}

fn json_refusal(status: u16, reason: &str, code: &str) -> Vec<u8> {
    let message = match status {
        414 => "the request target is too long",
        431 => "the request head is too large",
        _ => "the request is not valid HTTP/1.1",
    };
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacement.is_none() {
            if let Some((status, reason, code)) = hyper_refusal(buf) {
                let bytes = json_refusal(status, reason, code);
                this.replacement = Some(Replacement { bytes, written: 0, original: buf.len() });
            }
        }
        let Some(replacement) = this.replacement.as_mut() else {
            let polled = Pin::new(&mut this.tcp).poll_write(cx, buf);
            return this.deadline.after(cx, polled);
        };
        while replacement.written < replacement.bytes.len() {
            let polled = Pin::new(&mut this.tcp).poll_write(cx, &replacement.bytes[replacement.written..]);
            replacement.written += ready!(this.deadline.after(cx, polled))?;
        }
        let original = replacement.original;
        this.replacement = None;
        Poll::Ready(Ok(original))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // A response without a body (hyper's refusals among them) comes as one buffer.
        if let [single] = bufs {
            return self.poll_write(cx, single);
        }
        let this = &mut *self;
        let polled = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        this.deadline.after(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
