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
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use crate::config::RETRY_AFTER_SECONDS;
use crate::error::ApiError;
use crate::metrics::ConnectionKind;
use pushlab_protocol::Transport;

use crate::socket::{OpenStream, SocketUse};
use crate::state::AppState;
use crate::transport;

/// Accepts until the server shuts down; each connection runs in a task of `connections`.
pub(crate) async fn accept(
    listener: TcpListener,
    app: Arc<AppState>,
    router: Router,
    connections: TaskTracker,
    tls: Option<TlsAcceptor>,
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
                    // A TLS client could read a refusal only after a handshake, whose
                    // CPU is what a flood past the limit must not cost: it is closed.
                    if tls.is_none() {
                        refuse(tcp, app.config.max_sockets);
                    }
                    continue;
                }
                // Nagle's algorithm would hold small frames back waiting for an ACK: the
                // exact opposite of what a push server wants.
                let _ = tcp.set_nodelay(true);
                let place = OpenSocket::take(&open, &app);
                connections.spawn(serve(tcp, app.clone(), router.clone(), place, tls.clone()));
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

async fn serve(
    tcp: TcpStream,
    app: Arc<AppState>,
    router: Router,
    place: OpenSocket,
    tls: Option<TlsAcceptor>,
) {
    let accepted_at = tokio::time::Instant::now();
    // A silent connection is closed between 1 and 1.25 request timeouts, at random:
    // thousands of idle sockets opened together (a reconnect storm, or an attack that
    // reopens each socket the moment it is closed) then close spread over a few seconds
    // instead of all in the same millisecond, so they never come back as one burst of
    // accepts that delays every other client (the abuse run, results/*-abuse).
    let first_request = app.config.request_timeout.mul_f64(1.0 + 0.25 * fastrand::f64());
    let deadline = accepted_at + first_request;
    let shutdown = app.shutdown.clone();
    // Everything before the first request (the TLS handshake included) must finish by
    // `deadline`: a client that connects and stalls holds nothing for longer.
    let opened = tokio::select! {
        _ = shutdown.cancelled() => return,
        opened = tokio::time::timeout_at(deadline, open(tcp, &app, tls, deadline)) => match opened {
            Err(_) | Ok(None) => return,
            Ok(Some(opened)) => opened,
        },
    };
    match opened {
        Opened::Direct(subscriber, io) => {
            let _place = place;
            let kind = ConnectionKind { http2: false, tls: matches!(io, Io::Tls(_)) };
            let _counted = Counted::open(app.metrics.connections(kind));
            subscriber.serve(io).await
        }
        Opened::Http(io, kind) => {
            // Counted with the socket, which a WebSocket upgrade takes beyond hyper's
            // connection (and so beyond this task).
            let held = (place, Counted::open(app.metrics.connections(kind)));
            serve_http(io, kind, app, router, deadline, held).await
        }
    }
}

/// A connection ready for its first request: either taken over by the SSE transport, or
/// for hyper, with what it speaks.
enum Opened {
    Direct(transport::TakenOver, Io),
    Http(Io, ConnectionKind),
}

/// The stream under HTTP: the socket itself, or TLS over it (boxed: a TLS connection's
/// state is a few kilobytes, which a cleartext connection's future should not carry).
pub(crate) enum Io {
    Plain(TcpStream),
    Tls(Box<Rewind<TlsStream<TcpStream>>>),
}

/// Handshakes (with TLS), learns the protocol, and offers a fresh HTTP/1.1 connection to
/// the SSE transport's direct door. `None`: the connection failed or is refused.
async fn open(
    tcp: TcpStream,
    app: &Arc<AppState>,
    tls: Option<TlsAcceptor>,
    deadline: Instant,
) -> Option<Opened> {
    let Some(acceptor) = tls else {
        if let Some(direct) = transport::take_over(&tcp, app).await {
            return Some(Opened::Direct(direct, Io::Plain(tcp)));
        }
        // HTTP/2 with prior knowledge (RFC 9113 §3.3) opens with its preface.
        let http2 = speaks_http2(&tcp).await;
        return Some(Opened::Http(Io::Plain(tcp), ConnectionKind { http2, tls: false }));
    };
    // Its own deadline (the caller's is the same instant), so that a handshake that never
    // finishes is counted with those that fail.
    let mut stream = match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(_)) | Err(_) => {
            app.metrics.tls_handshakes_failed.inc();
            return None;
        }
    };
    let http2 = stream.get_ref().1.alpn_protocol() == Some(crate::tls::ALPN_H2);
    let kind = ConnectionKind { http2, tls: true };
    if http2 {
        return Some(Opened::Http(Io::Tls(Box::new(Rewind::new(stream, Vec::new()))), kind));
    }
    // Inside TLS nothing can be peeked: the first request is read, offered to the direct
    // door, and replayed to hyper if the door does not take it.
    let first = transport::read_first_request(&mut stream).await.ok()?;
    if let Some(direct) = transport::offer(&first, app) {
        return Some(Opened::Direct(direct, Io::Tls(Box::new(Rewind::new(stream, Vec::new())))));
    }
    Some(Opened::Http(Io::Tls(Box::new(Rewind::new(stream, first))), kind))
}

/// Serves HTTP/1.1 or HTTP/2 with hyper and the router until the client leaves, the
/// connection idles out, or the server shuts down.
async fn serve_http(
    io: Io,
    kind: ConnectionKind,
    app: Arc<AppState>,
    router: Router,
    first_head: Instant,
    held: (OpenSocket, Counted),
) {
    let request_timeout = app.config.request_timeout;
    let socket_use = Arc::new(SocketUse::default());
    let io = Guarded::new(io, app.clone(), socket_use.clone(), held);
    let service = Marked { inner: router, socket_use: socket_use.clone(), http2: kind.http2 };
    let io = TokioIo::new(io);
    let service = TowerToHyperService::new(service);
    // Each version's own builder, not hyper-util's protocol-detecting one: the version is
    // already known (ALPN, or the preface peeked), and the short poll's requests/s
    // measured 3 % better without the detecting wrapper (docs/performance.md).
    if kind.http2 {
        let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            // RFC 8441: lets a WebSocket open as an extended CONNECT stream.
            .enable_connect_protocol()
            // A client may open many streams on one connection; each subscriber among
            // them still passes the admission limit (--max-connections).
            .max_concurrent_streams(HTTP2_MAX_STREAMS)
            // A client that stopped answering (a dead peer behind a NAT) is found by PING
            // and closed, as a stalled HTTP/1.1 write is by the write deadline.
            .keep_alive_interval(Some(request_timeout))
            // A PING waits behind whatever the socket still holds: give the answer as
            // long as a write may take, so a slow reader is the write deadline's to judge.
            .keep_alive_timeout(request_timeout.max(app.config.write_timeout))
            // What h2 buffers per stream beyond the peer's window: one stream batch
            // (64 KiB), not its default 400 KB, times up to 256 streams.
            .max_send_buf_size(HTTP2_STREAM_BUFFER)
            .serve_connection(io, service);
        drive(connection, kind, &app, &socket_use, first_head).await
    } else {
        let connection = hyper::server::conn::http1::Builder::new()
            // hyper's header timeout runs from the moment it starts reading a head: on a
            // new connection, and again after each response on a keep-alive one. So it
            // is both the slow-headers (slowloris) and the keep-alive idle timeout.
            .timer(TokioTimer::new())
            .header_read_timeout(request_timeout)
            .serve_connection(io, service)
            .with_upgrades();
        drive(connection, kind, &app, &socket_use, first_head).await
    }
}

/// A connection hyper serves, which can be asked to finish what it is doing and close.
trait Graceful: Future {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S> Graceful for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    Self: Future,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S::ResBody: 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http1::UpgradeableConnection::graceful_shutdown(self)
    }
}

impl<I, S, E> Graceful for hyper::server::conn::http2::Connection<I, S, E>
where
    Self: Future,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http2::Connection::graceful_shutdown(self)
    }
}

/// Runs a connection until the client leaves, it idles out, or the server shuts down.
async fn drive(
    connection: impl Graceful,
    kind: ConnectionKind,
    app: &AppState,
    socket_use: &SocketUse,
    first_head: Instant,
) {
    let request_timeout = app.config.request_timeout;
    let mut connection = std::pin::pin!(connection);
    // hyper's timer starts when it starts reading, after the wait for the first byte:
    // without this deadline a client silent until just before it, then trickling,
    // would have nearly two timeouts for its first head.
    let mut first_head = Some(first_head);
    // HTTP/2 has no header timeout between requests: the connection is closed after a
    // whole --request-timeout with no stream open, counted from the last stream's start
    // or end
    // (checked a few times per timeout, so it closes within 1.25 of them).
    let every = (request_timeout / 4).max(Duration::from_millis(10));
    let mut idle_check = kind.http2.then(|| tokio::time::interval_at(Instant::now() + every, every));
    // A stream the client stopped by withholding flow-control window (StreamProgress).
    let write_timeout = app.config.write_timeout;
    let mut stall_check = kind.http2.then(|| {
        let every = (write_timeout / 4).max(Duration::from_millis(10));
        tokio::time::interval_at(Instant::now() + every, every)
    });
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = app.shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(first_head.unwrap_or_else(Instant::now)), if first_head.is_some() => {
                if !socket_use.has_requested() {
                    return;
                }
                first_head = None;
            }
            _ = async { stall_check.as_mut()?.tick().await; Some(()) }, if stall_check.is_some() => {
                if socket_use.a_stream_stalled_for(write_timeout) {
                    app.metrics.write_timeouts.inc();
                    if let Some(transport) = socket_use.subscriber() {
                        app.metrics.transport(transport).slow_closed.inc();
                    }
                    // Closed at once: a graceful close would wait for the stalled stream.
                    return;
                }
            }
            _ = async { idle_check.as_mut()?.tick().await; Some(()) }, if idle_check.is_some() => {
                if socket_use.open_streams() == 0 && socket_use.idle_for() >= request_timeout {
                    break;
                }
            }
        }
    }
    // Finish the response in progress (a long poll's answer, an SSE stream's `shutdown`
    // event), then close: HTTP/2 says GOAWAY first.
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(app.config.shutdown_grace + Duration::from_secs(1), connection).await;
}

/// Streams one HTTP/2 connection may have open at once (RFC 9113 §5.1.2 advises at least
/// 100): enough for the seven tabs of a browser lab and a page's polls, few enough that
/// one connection cannot hold the server's every subscriber place by itself.
const HTTP2_MAX_STREAMS: u32 = 256;

/// Bytes h2 may hold for one stream that its peer's window does not let out yet.
const HTTP2_STREAM_BUFFER: usize = 64 * 1024;

/// A connection counted in the `connections` gauge of its kind while it lives.
struct Counted(prometheus_client::metrics::gauge::Gauge);

impl Counted {
    fn open(gauge: &prometheus_client::metrics::gauge::Gauge) -> Counted {
        gauge.inc();
        Counted(gauge.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The client preface of HTTP/2 with prior knowledge (RFC 9113 §3.4).
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether the connection opens with HTTP/2's preface.
async fn speaks_http2(tcp: &TcpStream) -> bool {
    let mut start = [0; HTTP2_PREFACE.len()];
    matches!(tcp.peek(&mut start).await, Ok(n) if n > 3 && HTTP2_PREFACE.starts_with(&start[..n]))
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
    io: Io,
    /// The socket's place under --max-sockets and in the `connections` gauge, released
    /// when the socket closes.
    _held: (OpenSocket, Counted),
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
    fn new(io: Io, app: Arc<AppState>, socket_use: Arc<SocketUse>, held: (OpenSocket, Counted)) -> Self {
        let timeout = app.config.write_timeout;
        Guarded {
            io,
            _held: held,
            deadline: WriteDeadline { timeout, stalled: None, app, socket_use },
            replacement: None,
        }
    }
}

/// The router, telling the connection's [`SocketUse`] that a request head arrived, and
/// handing it to the handlers in the request's extensions. On HTTP/2 it also counts the
/// streams open, for the idle timeout: a stream is open until its response body ends.
#[derive(Clone)]
struct Marked {
    inner: Router,
    socket_use: Arc<SocketUse>,
    http2: bool,
}

impl tower_service::Service<axum::http::Request<hyper::body::Incoming>> for Marked {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future =
        MarkedFuture<<Router as tower_service::Service<axum::http::Request<hyper::body::Incoming>>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower_service::Service::<axum::http::Request<hyper::body::Incoming>>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut request: axum::http::Request<hyper::body::Incoming>) -> Self::Future {
        self.socket_use.request_started();
        // Only a stream needs it; inserting allocates the extensions map, which every
        // short poll would otherwise pay for.
        let path = request.uri().path();
        if path == Transport::Sse.path() || path == Transport::Ws.path() {
            request.extensions_mut().insert(self.socket_use.clone());
        }
        let stream = self.http2.then(|| OpenStream::new(self.socket_use.clone()));
        MarkedFuture { inner: self.inner.call(request), stream }
    }
}

pin_project_lite::pin_project! {
    /// The router's future; on HTTP/2 its response body carries the stream's count.
    struct MarkedFuture<F> {
        #[pin]
        inner: F,
        stream: Option<OpenStream>,
    }
}

impl<F> Future for MarkedFuture<F>
where
    F: Future<Output = Result<axum::response::Response, std::convert::Infallible>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        Poll::Ready(Ok(match this.stream.take() {
            None => response,
            Some(stream) => response.map(|body| axum::body::Body::new(Counting { body, stream })),
        }))
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its stream counted as open while hyper still sends it.
    struct Counting {
        #[pin]
        body: axum::body::Body,
        stream: OpenStream,
    }
}

impl http_body::Body for Counting {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.body.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) => this.stream.handed(),
            _ => this.stream.asked(),
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
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
        Pin::new(&mut self.io).poll_read(cx, buf)
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
            let polled = Pin::new(&mut this.io).poll_write(cx, buf);
            return this.deadline.after(cx, polled);
        };
        while replacement.written < replacement.bytes.len() {
            let polled = Pin::new(&mut this.io).poll_write(cx, &replacement.bytes[replacement.written..]);
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
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.deadline.after(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    // Under the deadline too: a socket has nothing to flush, but TLS takes a write into
    // its own buffer at once and waits for the socket only here (and when closing).
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.io).poll_flush(cx);
        this.deadline.after(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.io).poll_shutdown(cx);
        this.deadline.after(cx, polled)
    }
}

/// Every read and write of [`Io`] goes to the socket or through TLS.
macro_rules! either {
    ($io:expr, $stream:ident => $body:expr) => {
        match $io {
            Io::Plain($stream) => $body,
            Io::Tls($stream) => $body,
        }
    };
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        either!(self.get_mut(), stream => Pin::new(stream).poll_read(cx, buf))
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        either!(self.get_mut(), stream => Pin::new(stream).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        either!(self.get_mut(), stream => Pin::new(stream).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        either!(self, stream => stream.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self.get_mut(), stream => Pin::new(stream).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self.get_mut(), stream => Pin::new(stream).poll_shutdown(cx))
    }
}

/// A stream that first yields bytes already read from it: the first request of a TLS
/// connection, read to offer it to the SSE transport and replayed to hyper.
pub(crate) struct Rewind<S> {
    replay: Vec<u8>,
    replayed: usize,
    inner: S,
}

impl<S> Rewind<S> {
    fn new(inner: S, replay: Vec<u8>) -> Self {
        Rewind { replay, replayed: 0, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.replayed < this.replay.len() {
            let rest = &this.replay[this.replayed..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.replayed += n;
            if this.replayed == this.replay.len() {
                this.replay = Vec::new();
                this.replayed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
