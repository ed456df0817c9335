//! A general HTTP client connection (hyper, HTTP/1.1 or HTTP/2 as the target says), on
//! the same counted layers as every subscriber (`connect.rs`), reused between requests
//! like a browser's keep-alive connection.
//!
//! The "bidirectional" measurement's POSTs (`upstream.rs`) use it with the client's
//! counters underneath; the publisher and the probe before a run use it with counters
//! nobody reads (their bytes are not any transport's cost). Subscribers use the leaner
//! `lean_http.rs` over HTTP/1.1.

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::task::JoinHandle;

use super::connect::{open_io, H2Connection, USER_AGENT};
use super::tls::HttpVersion;
use super::Target;
use crate::record::Live;

/// One open connection. The task driving an HTTP/1.1 connection is aborted when this is
/// dropped (an HTTP/2 one's by its own guard).
#[derive(Debug)]
pub enum HttpConnection {
    /// HTTP/1.1.
    Http1 {
        /// hyper's handle.
        sender: SendRequest<Full<Bytes>>,
        /// The connection's task.
        driver: JoinHandle<()>,
        /// The `host` header.
        host: String,
    },
    /// HTTP/2.
    Http2(H2Connection),
}

impl Drop for HttpConnection {
    fn drop(&mut self) {
        if let HttpConnection::Http1 { driver, .. } = self {
            driver.abort();
        }
    }
}

impl HttpConnection {
    /// Opens a connection to `target` (TCP, TLS when it has it, its HTTP version), counted
    /// in `live`.
    pub async fn open(target: &Target, live: &Live) -> anyhow::Result<HttpConnection> {
        let opened = open_io(target, live).await?;
        match target.http {
            HttpVersion::Http1 => {
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(opened.io)).await?;
                let driver = tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok(HttpConnection::Http1 { sender, driver, host: target.host.clone() })
            }
            HttpVersion::Http2 => {
                Ok(HttpConnection::Http2(H2Connection::handshake(opened.io, target).await?))
            }
        }
    }

    /// `POST path` with a JSON body and, when given, a bearer token: the status and body.
    pub async fn post_json(
        &mut self,
        live: &Live,
        path: &str,
        body: Bytes,
        token: Option<&str>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request =
            self.request(hyper::Method::POST, path).header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = self.send(live, request.body(Full::new(body))?).await?;
        let status = response.status();
        Ok((status, response.into_body().collect().await?.to_bytes()))
    }

    /// `GET path`: the body of a 2xx answer; another status is an error.
    pub async fn get(&mut self, live: &Live, path: &str) -> anyhow::Result<Bytes> {
        let request = self.request(hyper::Method::GET, path).body(Full::default())?;
        let response = self.send(live, request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::ensure!(status.is_success(), "GET {path}: {status}: {}", String::from_utf8_lossy(&body));
        Ok(body)
    }

    fn request(&self, method: hyper::Method, path: &str) -> hyper::http::request::Builder {
        match self {
            HttpConnection::Http1 { host, .. } => Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, host.as_str())
                .header(hyper::header::ACCEPT, "application/json")
                .header(hyper::header::USER_AGENT, USER_AGENT),
            HttpConnection::Http2(h2) => h2.request(method, path, "application/json"),
        }
    }

    async fn send(
        &mut self,
        live: &Live,
        request: Request<Full<Bytes>>,
    ) -> anyhow::Result<Response<Incoming>> {
        match self {
            HttpConnection::Http1 { sender, .. } => {
                sender.ready().await.context("connection closed")?;
                live.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(sender.send_request(request).await?)
            }
            HttpConnection::Http2(h2) => h2.send(live, request).await,
        }
    }
}
