//! The four transports. Each is a cursor over the same [`Log`](crate::log::Log); they
//! differ only in where the cursor lives and how bytes reach the client:
//!
//! | transport | file | cursor lives in | resume with |
//! | --- | --- | --- | --- |
//! | short polling | `short_poll.rs` | the client, between requests | `GET /poll?since=CURSOR` |
//! | long polling | `long_poll.rs` | the client, between requests | `GET /long-poll?since=CURSOR` |
//! | Server-Sent Events | `sse/` | a server task per connection | `Last-Event-ID` or `?since=CURSOR` |
//! | WebSocket | `ws.rs` | a server task per connection | `?since=CURSOR` |
//!
//! The cursor itself, the same for all four, is `follower.rs`; the poll body and its
//! response, shared by both pollers, are `poll.rs`. Each transport file holds only its
//! framing.

mod follower;
pub mod long_poll;
mod poll;
pub mod short_poll;
pub mod sse;
pub mod ws;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub use poll::poll_body;
pub use pushlab_protocol::Transport;

use crate::state::AppState;

/// A fresh connection a transport writes itself, taken before hyper sees it (today only
/// SSE's direct door; see `sse/direct.rs`).
pub(crate) enum TakenOver {
    /// An SSE subscriber written straight onto the socket.
    Sse(sse::Direct),
}

impl TakenOver {
    /// Serves the connection (the socket, or TLS over it) until the client leaves or the
    /// server shuts down.
    pub(crate) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(self, io: S) {
        match self {
            TakenOver::Sse(direct) => direct.serve(io).await,
        }
    }
}

/// Looks at a fresh connection's first bytes without consuming them; `Some` when a
/// transport takes the connection, `None` to leave it to hyper from its first byte.
pub(crate) async fn take_over(tcp: &TcpStream, app: &Arc<AppState>) -> Option<TakenOver> {
    sse::take_over(tcp, app).await.map(TakenOver::Sse)
}

/// The same door for a connection whose first bytes had to be read to be seen (TLS):
/// `Some` when a transport takes the request in `first`, already consumed.
pub(crate) fn offer(first: &[u8], app: &Arc<AppState>) -> Option<TakenOver> {
    sse::offer(first, app).map(TakenOver::Sse)
}

/// Reads what a fresh connection sent first (one read: a request head fits in one TLS
/// record), at most as much as the direct door looks at.
pub(crate) async fn read_first_request<S: AsyncRead + Unpin>(io: &mut S) -> std::io::Result<Vec<u8>> {
    sse::read_first_request(io).await
}
