//! A minimal HTTP/1.1 client connection (hyper) over a byte-counting socket, reused
//! between requests like a browser's keep-alive connection.
//!
//! reqwest cannot report socket bytes, so the "bidirectional" measurement's POSTs
//! (`upstream.rs`) use hyper's connection API directly with a [`CountingStream`]
//! underneath. The publisher uses reqwest (its bytes are not counted); subscribers use
//! the leaner `lean_http.rs`.

use std::sync::atomic::Ordering;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::Session;
use crate::wire::CountingStream;

/// One open connection. The task driving it is aborted when this is dropped.
#[derive(Debug)]
pub struct HttpConnection {
    sender: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
}

impl Drop for HttpConnection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl HttpConnection {
    /// Opens a TCP connection to the session's target and counts it.
    pub async fn open(session: &Session) -> anyhow::Result<HttpConnection> {
        let tcp = connect(session).await?;
        let io = TokioIo::new(CountingStream::new(tcp, session.live.wire.clone()));
        let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(HttpConnection { sender, driver })
    }

    /// Sends `POST path` with a JSON body (used to publish from an HTTP client).
    pub async fn post_json(&mut self, session: &Session, path: &str, body: Bytes) -> anyhow::Result<Bytes> {
        let request = Request::post(path)
            .header(hyper::header::ACCEPT, "application/json")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        let response = self.send(session, request).await?;
        Ok(response.into_body().collect().await?.to_bytes())
    }

    async fn send(
        &mut self,
        session: &Session,
        mut request: Request<Full<Bytes>>,
    ) -> anyhow::Result<Response<Incoming>> {
        self.sender.ready().await.context("connection closed")?;
        let headers = request.headers_mut();
        headers.insert(hyper::header::HOST, session.target.host.parse()?);
        headers.insert(
            hyper::header::USER_AGENT,
            hyper::header::HeaderValue::from_static(concat!("pushlab/", env!("CARGO_PKG_VERSION"))),
        );
        let (method, path) = (request.method().clone(), request.uri().clone());
        session.request_sent();
        let response = self.sender.send_request(request).await?;
        anyhow::ensure!(response.status().is_success(), "{method} {path}: {}", response.status());
        Ok(response)
    }
}

/// A TCP connection to the target with Nagle off (small requests must not wait for
/// an ACK), counted as one connection opened.
pub async fn connect(session: &Session) -> anyhow::Result<TcpStream> {
    let tcp = session
        .target
        .dialer
        .connect(session.target.addr)
        .await
        .with_context(|| format!("connecting to {}", session.target.addr))?;
    tcp.set_nodelay(true)?;
    session.live.connections.fetch_add(1, Ordering::Relaxed);
    Ok(tcp)
}
