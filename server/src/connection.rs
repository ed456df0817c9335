//! Accepting connections, and the one decision taken before any HTTP parsing: a fresh
//! connection whose first request is a `GET /sse` is handed to the SSE transport, which
//! writes the stream onto the socket itself ([`sse::take_over`]); every other
//! connection is served by hyper and the router.
//!
//! This is what `axum::serve` does, plus that one branch: HTTP/1 with upgrades (for
//! WebSocket), Nagle off, graceful shutdown, and a pause after accept errors such as
//! running out of file descriptors.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use crate::app::AppState;
use crate::transport::sse;

/// Accepts until the server shuts down; each connection runs in a task of `connections`.
pub(crate) async fn accept(
    listener: TcpListener,
    app: Arc<AppState>,
    router: Router,
    connections: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = app.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, _)) => {
                // Nagle's algorithm would hold small frames back waiting for an ACK: the
                // exact opposite of what a push server wants.
                let _ = tcp.set_nodelay(true);
                connections.spawn(serve(tcp, app.clone(), router.clone()));
            }
            Err(error) => pause_after(error).await,
        }
    }
}

async fn serve(tcp: TcpStream, app: Arc<AppState>, router: Router) {
    let direct = tokio::select! {
        _ = app.shutdown.cancelled() => return,
        direct = sse::take_over(&tcp, &app) => direct,
    };
    if let Some(subscriber) = direct {
        return subscriber.serve(tcp).await;
    }
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(router))
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = app.shutdown.cancelled() => {}
    }
    // Finish the response in progress (a long poll's answer, an SSE stream's `shutdown`
    // event), then close.
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
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
