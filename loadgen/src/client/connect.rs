//! Every client connection is built here, one per client at a time, layer by layer:
//!
//! ```text
//! TCP, made by the session's Dialer (here, or across the packet link)
//!  └─ CountingStream         socket bytes and TCP segments: TLS records included (wire.rs)
//!      └─ TLS (--tls)         tokio-rustls with the run's one shared ClientConfig (tls.rs)
//!          └─ LayerCountingStream   HTTP-layer bytes: the plaintext above TLS
//!              └─ HTTP/1.1    lean_http.rs for polls and SSE; tungstenite's upgrade for ws
//!                 HTTP/2      hyper: each request a stream; SSE one stream; ws by
//!                             extended CONNECT (RFC 8441)
//! ```
//!
//! The transports ask a [`Connection`] to "GET this path", "open the stream" or "open the
//! WebSocket" and never see which HTTP version or whether TLS carries it, so no
//! transport file holds an HTTP/2 copy of itself. A connection that speaks another
//! protocol than the one asked for (ALPN's answer) is an error, never a fallback.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use anyhow::{anyhow, bail, ensure, Context as _};
use bytes::Bytes;
use futures_util::Stream;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::client::conn::http2::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use super::lean_http::LeanConnection;
use super::tls::{HttpVersion, TlsClient};
use super::{Session, Target};
use crate::record::{Handshake, Live, Negotiated};
use crate::wire::{CountingStream, LayerCountingStream};

/// Small WebSocket buffers: thousands of clients run in one process.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(16 * 1024).write_buffer_size(0)
}

/// What a client sends as `user-agent`, on every version.
pub const USER_AGENT: &str = concat!("pushlab/", env!("CARGO_PKG_VERSION"));

/// A TCP connection to the target with Nagle off (small requests must not wait for an
/// ACK), counted as one connection opened.
pub async fn connect_tcp(target: &Target, live: &Live) -> anyhow::Result<TcpStream> {
    let tcp =
        target.dialer.connect(target.addr).await.with_context(|| format!("connecting to {}", target.addr))?;
    tcp.set_nodelay(true)?;
    live.connections.fetch_add(1, Ordering::Relaxed);
    Ok(tcp)
}

/// The counted socket, in cleartext or under TLS.
#[derive(Debug)]
pub enum Socket {
    /// No TLS: HTTP straight on the socket.
    Plain(CountingStream<TcpStream>),
    /// TLS records on the socket.
    Tls(Box<tokio_rustls::client::TlsStream<CountingStream<TcpStream>>>),
}

/// What HTTP reads and writes: the socket (or TLS above it) with the HTTP-layer counter.
pub type HttpIo = LayerCountingStream<Socket>;

/// A connection just opened, before any HTTP.
#[derive(Debug)]
pub struct Opened {
    /// Where HTTP goes.
    pub io: HttpIo,
    /// The TLS handshake, with `--tls`.
    pub handshake: Option<Handshake>,
    /// What it speaks.
    pub negotiated: Negotiated,
}

/// Opens TCP, and TLS when the target has it; checks that ALPN chose the HTTP version
/// asked for. Socket bytes go to `live.wire`, HTTP-layer bytes to `live.http`.
pub async fn open_io(target: &Target, live: &Live) -> anyhow::Result<Opened> {
    let tcp = CountingStream::new(connect_tcp(target, live).await?, live.wire.clone());
    let http = target.http;
    let Some(tls) = &target.tls else {
        let negotiated = Negotiated { http_version: http.name().into(), alpn: None, tls_version: None };
        let io = LayerCountingStream::new(Socket::Plain(tcp), live.http.clone());
        return Ok(Opened { io, handshake: None, negotiated });
    };
    let started = Instant::now();
    let stream = tokio_rustls::TlsConnector::from(tls.config.clone())
        .connect(tls.server_name.clone(), tcp)
        .await
        .map_err(|error| handshake_error(error, tls, http))?;
    let micros = started.elapsed().as_micros() as u64;
    let (socket, connection) = stream.get_ref();
    let (bytes_received, bytes_sent) = socket.own_counts();
    let resumed = connection.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    let alpn = connection.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned());
    match alpn.as_deref() {
        Some(chosen) if chosen.as_bytes() == http.alpn() => {}
        // No ALPN answer: the server speaks its default, HTTP/1.1 (RFC 7301 §3.2).
        None if http == HttpVersion::Http1 => {}
        chosen => bail!(
            "asked for HTTP/{http} (ALPN {:?}) and the server chose {}: refusing to measure another protocol",
            String::from_utf8_lossy(http.alpn()),
            chosen.map_or("no protocol".to_string(), |c| format!("{c:?}")),
        ),
    }
    let negotiated = Negotiated {
        http_version: http.name().into(),
        alpn,
        tls_version: connection.protocol_version().map(|v| format!("{v:?}")),
    };
    let handshake = Handshake { resumed, bytes_sent, bytes_received, micros };
    let io = LayerCountingStream::new(Socket::Tls(Box::new(stream)), live.http.clone());
    Ok(Opened { io, handshake: Some(handshake), negotiated })
}

/// A failed TLS handshake in words; an untrusted certificate says so and what was
/// trusted, a server without the HTTP version asked for says that.
fn handshake_error(error: io::Error, tls: &TlsClient, http: HttpVersion) -> anyhow::Error {
    match error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(why)) => {
            anyhow!("TLS handshake: the server's certificate was not trusted ({}): {why:?}", tls.trust)
        }
        Some(rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol)) => anyhow!(
            "TLS handshake: the server does not speak HTTP/{http} (it refused ALPN {:?}): refusing to measure \
             another protocol",
            String::from_utf8_lossy(http.alpn())
        ),
        Some(other) => anyhow!("TLS handshake failed: {other}"),
        None => anyhow::Error::new(error).context("TLS handshake"),
    }
}

/// The tasks of one HTTP/2 connection: hyper runs the connection, and each request's
/// body and each upgraded stream, in tasks of their own, spawned here. They run as the
/// client the connection is for (its TLS session tickets arrive in them, see
/// `tls::as_client`), and all end when the connection is dropped: a dropped connection
/// is a cut one (`--drop-every`), not a graceful shutdown that lingers behind the client.
#[derive(Debug, Clone)]
struct ConnectionTasks {
    client: Option<u64>,
    running: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl ConnectionTasks {
    fn new() -> ConnectionTasks {
        ConnectionTasks { client: super::tls::current_client(), running: Arc::default() }
    }

    fn spawn<F>(&self, future: F)
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = match self.client {
            Some(id) => tokio::spawn(super::tls::as_client(id, future)),
            None => tokio::spawn(future),
        };
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.retain(|t| !t.is_finished());
        running.push(task.abort_handle());
    }

    fn abort_all(&self) {
        for task in self.running.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
            task.abort();
        }
    }
}

impl<F> hyper::rt::Executor<F> for ConnectionTasks
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        self.spawn(future);
    }
}

/// An HTTP/2 connection (hyper): requests become streams on it.
#[derive(Debug)]
pub struct H2Connection {
    sender: SendRequest<Full<Bytes>>,
    /// `https://host` or `http://host`: HTTP/2 requests name their scheme and authority.
    origin: String,
    tasks: ConnectionTasks,
}

impl Drop for H2Connection {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

impl H2Connection {
    /// The HTTP/2 preface and SETTINGS over `io` (prior knowledge in cleartext).
    pub async fn handshake(io: HttpIo, target: &Target) -> anyhow::Result<H2Connection> {
        let scheme = if target.tls.is_some() { "https" } else { "http" };
        let tasks = ConnectionTasks::new();
        let (sender, connection) = hyper::client::conn::http2::Builder::new(tasks.clone())
            .handshake(TokioIo::new(io))
            .await
            .context("HTTP/2 handshake")?;
        tasks.spawn(async move {
            let _ = connection.await;
        });
        Ok(H2Connection { sender, origin: format!("{scheme}://{}", target.host), tasks })
    }

    /// A request for `path` with the headers every client request carries.
    pub fn request(&self, method: hyper::Method, path: &str, accept: &str) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.origin))
            .header(hyper::header::ACCEPT, accept)
            .header(hyper::header::USER_AGENT, USER_AGENT)
    }

    /// Sends one request as a new stream and waits for the response head.
    pub async fn send(
        &mut self,
        live: &Live,
        request: Request<Full<Bytes>>,
    ) -> anyhow::Result<Response<Incoming>> {
        let what = format!("{} {}", request.method(), request.uri().path());
        self.sender.ready().await.with_context(|| format!("{what}: the HTTP/2 connection closed"))?;
        live.requests.fetch_add(1, Ordering::Relaxed);
        self.sender.send_request(request).await.with_context(|| format!("{what} over HTTP/2"))
    }
}

/// A response's body, as it arrives: an event stream's chunks or DATA frames.
pub type BodyStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// One client's connection to the server, in the HTTP version of the run.
#[derive(Debug)]
pub enum Connection {
    /// HTTP/1.1: one request at a time.
    Http1(LeanConnection<HttpIo>),
    /// HTTP/2: each request a stream.
    Http2(H2Connection),
}

impl Connection {
    /// Opens a connection to the session's target and records its handshake.
    pub async fn open(session: &mut Session) -> anyhow::Result<Connection> {
        let opened = open_io(&session.target, &session.live).await?;
        if let Some(handshake) = opened.handshake {
            session.recorder.handshakes.push(handshake);
        }
        session.recorder.negotiated.get_or_insert(opened.negotiated);
        Ok(match session.target.http {
            HttpVersion::Http1 => {
                Connection::Http1(LeanConnection::new(opened.io, session.target.host.clone()))
            }
            HttpVersion::Http2 => {
                Connection::Http2(H2Connection::handshake(opened.io, &session.target).await?)
            }
        })
    }

    /// `GET path` and the whole body; a status other than 2xx is an error.
    pub async fn get_body(&mut self, session: &Session, path: &str) -> anyhow::Result<Bytes> {
        match self {
            Connection::Http1(lean) => lean.get_body(session, path).await,
            Connection::Http2(h2) => {
                let request =
                    h2.request(hyper::Method::GET, path, "application/json").body(Full::default())?;
                let response = h2.send(&session.live, request).await?;
                let status = response.status();
                let body =
                    response.into_body().collect().await.with_context(|| format!("GET {path}"))?.to_bytes();
                ensure!(status.is_success(), "GET {path}: {status}: {}", String::from_utf8_lossy(&body));
                Ok(body)
            }
        }
    }

    /// `GET path` answered by a stream that does not end (SSE): its data as it arrives.
    pub async fn get_stream(self, session: &Session, path: &str, accept: &str) -> anyhow::Result<BodyStream> {
        match self {
            Connection::Http1(lean) => Ok(Box::pin(lean.get_stream(session, path, accept).await?)),
            Connection::Http2(mut h2) => {
                let request = h2.request(hyper::Method::GET, path, accept).body(Full::default())?;
                let response = h2.send(&session.live, request).await?;
                let status = response.status();
                if !status.is_success() {
                    let body =
                        tokio::time::timeout(std::time::Duration::from_millis(100), response.collect())
                            .await
                            .ok()
                            .and_then(Result::ok)
                            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned());
                    bail!("GET {path}: {status}: {}", body.unwrap_or_default());
                }
                Ok(Box::pin(DataFrames { body: response.into_body(), _connection: h2 }))
            }
        }
    }

    /// Opens a WebSocket at `path` (`/ws?since=…`): an HTTP/1.1 upgrade (101), or over
    /// HTTP/2 an extended CONNECT with `:protocol websocket` (200, RFC 8441).
    pub async fn websocket(self, session: &Session, path: &str) -> anyhow::Result<WebSocketStream<WsIo>> {
        let config = Some(websocket_config());
        match self {
            Connection::Http1(lean) => {
                let scheme = if session.target.tls.is_some() { "wss" } else { "ws" };
                let url = format!("{scheme}://{}{path}", session.target.host);
                session.request_sent();
                let (socket, _) =
                    tokio_tungstenite::client_async_with_config(url, WsIo::Http1(lean.into_io()), config)
                        .await
                        .context("WebSocket handshake")?;
                Ok(socket)
            }
            Connection::Http2(mut h2) => {
                let mut request = h2
                    .request(hyper::Method::CONNECT, path, "*/*")
                    .header("sec-websocket-version", "13")
                    .body(Full::default())?;
                request.extensions_mut().insert(hyper::ext::Protocol::from_static("websocket"));
                let response = h2.send(&session.live, request).await.context("WebSocket over HTTP/2")?;
                ensure!(
                    response.status() == hyper::StatusCode::OK,
                    "WebSocket over HTTP/2 (extended CONNECT): {}",
                    response.status()
                );
                let upgraded =
                    hyper::upgrade::on(response).await.context("WebSocket over HTTP/2: the stream")?;
                let io = WsIo::Http2 { stream: TokioIo::new(upgraded), _connection: h2 };
                Ok(WebSocketStream::from_raw_socket(io, Role::Client, config).await)
            }
        }
    }
}

/// An HTTP/2 response body as a stream of its DATA, holding the connection open.
struct DataFrames {
    body: Incoming,
    _connection: H2Connection,
}

impl Stream for DataFrames {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            match std::task::ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                None => return Poll::Ready(None),
                Some(Err(error)) => return Poll::Ready(Some(Err(io::Error::other(error)))),
                // Trailers carry no events.
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
            }
        }
    }
}

/// What a WebSocket runs on: the connection itself (HTTP/1.1), or one HTTP/2 stream,
/// which keeps its connection open.
#[derive(Debug)]
pub enum WsIo {
    /// After a 101, the connection is the WebSocket's.
    Http1(HttpIo),
    /// The extended CONNECT's stream.
    Http2 {
        /// The stream's bytes.
        stream: TokioIo<hyper::upgrade::Upgraded>,
        /// The connection the stream belongs to.
        _connection: H2Connection,
    },
}

macro_rules! each_io {
    ($self:ident, $io:ident => $e:expr) => {
        match $self.get_mut() {
            WsIo::Http1($io) => {
                let $io = Pin::new($io);
                $e
            }
            WsIo::Http2 { stream: $io, .. } => {
                let $io = Pin::new($io);
                $e
            }
        }
    };
}

impl AsyncRead for WsIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        each_io!(self, io => io.poll_read(cx, buf))
    }
}

impl AsyncWrite for WsIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        each_io!(self, io => io.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_io!(self, io => io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_io!(self, io => io.poll_shutdown(cx))
    }
}

impl AsyncRead for Socket {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    // hyper writes vectored; pass it down rather than have every write flattened.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Socket::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Socket::Plain(s) => s.is_write_vectored(),
            Socket::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_flush(cx),
            Socket::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::tls::Trust;

    /// A TLS server on 127.0.0.1:0 that offers `alpn` (nothing when empty) and then holds
    /// each connection open; its certificate, PEM.
    async fn tls_server(alpn: &[&[u8]]) -> (std::net::SocketAddr, String) {
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = made.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let _ = tokio::io::AsyncReadExt::read(&mut tls, &mut [0u8; 1]).await;
                    }
                });
            }
        });
        (addr, made.cert.pem())
    }

    fn target(addr: std::net::SocketAddr, cert_pem: &str, http: HttpVersion) -> Target {
        let trust = Trust::exactly(cert_pem, "the test's certificate").unwrap();
        let host = addr.to_string();
        Target { tls: Some(TlsClient::new(&trust, http, &host, 1).unwrap()), http, ..Target::new(addr) }
    }

    #[tokio::test]
    async fn a_server_that_chooses_another_protocol_is_an_error_not_a_fallback() {
        let (addr, cert) = tls_server(&[b"http/1.1"]).await;
        let error = open_io(&target(addr, &cert, HttpVersion::Http2), &Live::default()).await.unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains("does not speak HTTP/2") && text.contains("\"h2\""), "{text}");
        let opened = open_io(&target(addr, &cert, HttpVersion::Http1), &Live::default()).await.unwrap();
        assert_eq!(opened.negotiated.alpn.as_deref(), Some("http/1.1"));
    }

    #[tokio::test]
    async fn no_alpn_answer_is_http_1_1_and_never_http_2() {
        let (addr, cert) = tls_server(&[]).await;
        let opened = open_io(&target(addr, &cert, HttpVersion::Http1), &Live::default()).await.unwrap();
        assert_eq!((opened.negotiated.alpn, opened.negotiated.http_version.as_str()), (None, "1.1"));
        let handshake = opened.handshake.unwrap();
        assert!(
            !handshake.resumed && handshake.bytes_sent > 0 && handshake.bytes_received > 500,
            "{handshake:?}"
        );
        let error = open_io(&target(addr, &cert, HttpVersion::Http2), &Live::default()).await.unwrap_err();
        assert!(format!("{error:#}").contains("chose no protocol"), "{error:#}");
    }

    #[tokio::test]
    async fn a_certificate_not_trusted_says_so_and_what_was_trusted() {
        let (addr, _) = tls_server(&[b"h2"]).await;
        let (_, other) = tls_server(&[]).await;
        let error = open_io(&target(addr, &other, HttpVersion::Http2), &Live::default()).await.unwrap_err();
        let text = format!("{error:#}");
        assert!(
            text.contains("certificate was not trusted") && text.contains("the test's certificate"),
            "{text}"
        );
        // Accepting what is presented (`curl -k`) connects to the same server.
        let presented =
            TlsClient::new(&Trust::PresentedCertificate, HttpVersion::Http2, &addr.to_string(), 1).unwrap();
        let target = Target { tls: Some(presented), http: HttpVersion::Http2, ..Target::new(addr) };
        assert!(open_io(&target, &Live::default()).await.is_ok());
    }
}
