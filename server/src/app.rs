//! The router and the server's life: start, serve, shut down.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::error::ApiError;
use crate::publish::publish;
use crate::state::AppState;
use crate::transport::{long_poll::long_poll, short_poll::short_poll, sse::sse, ws::ws};

/// The HTTP API. A function, so tests can drive it without a socket.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/clients/{file}", get(reference_client))
        // Only publishing reads a body, and it applies its own size and time limits.
        .route("/publish", post(publish))
        .route("/poll", get(short_poll))
        .route("/long-poll", get(long_poll))
        .route("/sse", get(sse))
        // CONNECT: a WebSocket over HTTP/2 opens with an extended CONNECT (RFC 8441).
        .route("/ws", get(ws).connect(ws))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(crate::edge::Edge { rejected: state.metrics.rejected.clone(), check_host: state.loopback })
        .with_state(state)
}

/// The live page: the four transports side by side in the browser, plain HTML and
/// JavaScript embedded in the binary (no build step).
async fn page() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("page.html"))
}

/// The reference browser clients of `docs/clients/`, one per transport, which the live
/// page uses: the same files the docs explain and the tests run.
async fn reference_client(
    axum::extract::Path(file): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    let source = match file.as_str() {
        "short_poll.js" => include_str!("../../docs/clients/short_poll.js"),
        "long_poll.js" => include_str!("../../docs/clients/long_poll.js"),
        "sse.js" => include_str!("../../docs/clients/sse.js"),
        "ws.js" => include_str!("../../docs/clients/ws.js"),
        _ => return Err(ApiError::not_found(&format!("/clients/{file}"))),
    };
    Ok(([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], source).into_response())
}

async fn status(State(app): State<Arc<AppState>>) -> impl IntoResponse {
    Json(app.metrics.status(app.log.last_id()))
}

async fn metrics(State(app): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        app.metrics.encode(app.log.last_id()),
    )
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(uri.path())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    let allowed = if uri.path() == "/publish" { "POST" } else { "GET" };
    let mut error = ApiError::method_not_allowed(allowed);
    error.message = format!("{method} {}: {}", uri.path(), error.message);
    error
}

/// Serves on `listener` until `shutdown` resolves, then: stops accepting, answers held
/// long polls, sends SSE subscribers a `shutdown` event and WebSocket subscribers a close
/// frame (1001), and returns within a second even if some client stopped reading.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let tls = match &config.tls {
        None => None,
        Some(identity) => {
            let settings = identity.server_config().map_err(io::Error::other)?;
            Some(tokio_rustls::TlsAcceptor::from(settings))
        }
    };
    let state = AppState::new(config, listener.local_addr()?);
    let token = state.shutdown.clone();
    let grace = state.config.shutdown_grace;
    let tasks = state.tasks.clone();
    let connections = TaskTracker::new();
    let signal = async {
        shutdown.await;
        token.cancel();
    };
    let router = app(state.clone());
    tokio::join!(signal, crate::connection::accept(listener, state, router, connections.clone(), tls));
    // Every connection finishes its response in progress and every WebSocket sends its
    // close frame. A client that stopped reading would hold that forever, so one
    // deadline covers both: shutdown takes at most the grace period and the closing
    // handshake's bound, never their sum twice over.
    connections.close();
    tasks.close();
    let everything = async {
        connections.wait().await;
        tasks.wait().await;
    };
    if tokio::time::timeout(grace + Duration::from_millis(300), everything).await.is_err() {
        tracing::warn!("some connections did not finish within the grace period; closing them");
    }
    Ok(())
}

/// Raises the soft limit on open files to the hard limit (one fd per connection) and
/// returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft).unwrap_or(0),
    }
}
