//! What every HTTP request passes through before and after its handler: CORS, and
//! counting refusals for `/metrics`.
//!
//! CORS lets any page follow the stream and publish (EventSource and fetch obey CORS;
//! WebSocket does not; the publish token still applies). It is hand-written rather than
//! tower-http's `CorsLayer`, which adds `vary` and `access-control-allow-origin` to
//! *every* response: about 110 bytes that the lab would charge to each poll. Here only
//! requests that carry an `Origin` (browsers' cross-origin requests) get the header, and
//! preflights are answered directly.
//!
//! Every request to a server bound to loopback must name a loopback host
//! ([`is_loopback_host`]); publishing cross-origin is checked in `publish.rs`.
//!
//! It is a tower layer with its own small future rather than an
//! `axum::middleware::from_fn`, which boxes the inner service and two futures on every
//! request: on short polling, that middleware cost about 15 % of requests/s
//! (`server/benches/poll_rps.rs`, docs/performance.md).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::ApiError;

/// The layer; `rejected` counts every 4xx and 5xx answer. With `check_host` (the server
/// listens on loopback), a request must name a loopback host.
#[derive(Clone, Debug)]
pub(crate) struct Edge {
    pub(crate) rejected: Counter,
    pub(crate) check_host: bool,
}

impl<S> Layer<S> for Edge {
    type Service = EdgeService<S>;

    fn layer(&self, inner: S) -> EdgeService<S> {
        EdgeService { inner, rejected: self.rejected.clone(), check_host: self.check_host }
    }
}

/// [`Edge`] around a service.
#[derive(Clone, Debug)]
pub(crate) struct EdgeService<S> {
    inner: S,
    rejected: Counter,
    check_host: bool,
}

/// Whether a `Host` header names this machine's loopback: `localhost` (and
/// `*.localhost`, RFC 6761), `127.x.x.x` or `[::1]`, with any port.
///
/// A server on 127.0.0.1 is reachable from any web page the user opens. A page cannot
/// change the `Host` its browser sends, so checking it defeats DNS rebinding (a hostile
/// name re-pointed at 127.0.0.1 makes the page same-origin with us, but its requests
/// still say that name).
pub(crate) fn is_loopback_host(host: &[u8]) -> bool {
    let Ok(host) = std::str::from_utf8(host) else { return false };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    // Every request passes here: compare without allocating a lowercase copy.
    let name = name.trim_end_matches('.').as_bytes();
    const LOCALHOST: &[u8] = b"localhost";
    let ends_localhost =
        name.len() >= LOCALHOST.len() && name[name.len() - LOCALHOST.len()..].eq_ignore_ascii_case(LOCALHOST);
    let whole_or_subdomain = name.len() == LOCALHOST.len()
        || name.get(name.len().wrapping_sub(LOCALHOST.len() + 1)) == Some(&b'.');
    if ends_localhost && whole_or_subdomain {
        return true;
    }
    std::str::from_utf8(name)
        .ok()
        .and_then(|n| n.parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_hosts_are_recognised_in_any_case_with_any_port() {
        for host in [
            "localhost",
            "LocalHost:3000",
            "app.localhost",
            "127.0.0.1:80",
            "127.9.9.9",
            "[::1]:3000",
            "localhost.",
        ] {
            assert!(is_loopback_host(host.as_bytes()), "{host}");
        }
        for host in
            ["evil.example", "notlocalhost", "evil.example:3000", "10.0.0.1", "[::2]", "localhost.evil"]
        {
            assert!(!is_loopback_host(host.as_bytes()), "{host}");
        }
    }
}

impl<S> Service<Request> for EdgeService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if let Some(error) = host_refusal(&request, self.check_host) {
            self.rejected.inc();
            return EdgeFuture::Refused { error: Some(error) };
        }
        let cross_origin = request.headers().contains_key(header::ORIGIN);
        let preflight = cross_origin
            && request.method() == Method::OPTIONS
            && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if preflight {
            return EdgeFuture::Preflight;
        }
        EdgeFuture::Handler {
            handler: self.inner.call(request),
            cross_origin,
            rejected: self.rejected.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The handler's future, finishing its response; or a preflight's answer.
    #[project = EdgeProjection]
    pub(crate) enum EdgeFuture<F> {
        Handler { #[pin] handler: F, cross_origin: bool, rejected: Counter },
        Preflight,
        Refused { error: Option<ApiError> },
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for EdgeFuture<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (handler, cross_origin, rejected) = match self.project() {
            EdgeProjection::Preflight => return Poll::Ready(Ok(preflight())),
            EdgeProjection::Refused { error } => {
                let error = error.take().expect("a refusal is answered once");
                return Poll::Ready(Ok(error.into_response()));
            }
            EdgeProjection::Handler { handler, cross_origin, rejected } => (handler, cross_origin, rejected),
        };
        let Ok(mut response) = std::task::ready!(handler.poll(cx));
        if response.status().is_client_error() || response.status().is_server_error() {
            rejected.inc();
        }
        if *cross_origin {
            response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        }
        Poll::Ready(Ok(response))
    }
}

/// RFC 9112 §3.2: a request must name its host once (`400` otherwise); on loopback it
/// must name a loopback host, whether in `Host` or in an absolute request target
/// (`GET http://host/…`, whose authority wins over `Host`).
fn host_refusal(request: &Request, check_host: bool) -> Option<ApiError> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let (first, second) = (hosts.next(), hosts.next());
    if second.is_some() {
        return Some(ApiError::bad_request(
            "duplicate_host",
            "a request names its host once (RFC 9112 §3.2)",
        ));
    }
    if !check_host {
        return None;
    }
    let named = request.uri().authority().map(|a| a.as_str().as_bytes()).or(first.map(|h| h.as_bytes()));
    (!named.is_some_and(is_loopback_host)).then(host_not_allowed)
}

fn host_not_allowed() -> ApiError {
    ApiError {
        status: StatusCode::FORBIDDEN,
        code: "host_not_allowed",
        message:
            "this server listens on loopback and answers only requests for localhost, 127.0.0.1 or [::1]"
                .into(),
    }
}

/// The answer to a CORS preflight: any origin, the methods and headers pushlab uses.
fn preflight() -> Response {
    let headers = [
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"),
        (header::ACCESS_CONTROL_ALLOW_HEADERS, "content-type, authorization, last-event-id"),
        (header::ACCESS_CONTROL_MAX_AGE, "86400"),
    ];
    (StatusCode::NO_CONTENT, headers).into_response()
}
