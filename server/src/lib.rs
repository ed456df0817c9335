//! # pushlab-server
//!
//! One message stream, served over four transports: short polling, long polling,
//! Server-Sent Events and WebSocket. Each transport is a *cursor* over the same
//! append-only log, so every client sees the same messages with the same ids, resumes
//! the same way after a disconnect, and is told — never silently skipped — when it
//! missed messages that fell out of retention.
//!
//! # Layout
//!
//! Read in this order, from the bottom of the stack up; each module uses only the ones
//! above it in this list (and `pushlab-protocol`, which owns what goes on the wire):
//!
//! - [`config`]: the settings, the constants behind them, and the checks at start-up.
//! - [`tls`]: the certificate and the rustls settings of `serve --tls`.
//! - [`error`]: every refusal as a status code and a JSON body.
//! - [`log`]: the stream. Append-only, ids 1, 2, 3 … of one epoch, bounded retention:
//!   a ring, ids and wake-ups.
//! - [`message`]: a message as published and as stored, encoded once (JSON and SSE) and
//!   shared by every delivery.
//! - [`metrics`]: the counters of `/status` and `/metrics`.
//! - [`admission`]: the subscriber limit and the poll-bytes budget, as guards.
//! - [`socket`]: what one connection is used for, told by the handlers to the accept
//!   loop.
//! - [`state`]: [`AppState`], what every handler shares.
//! - [`params`]: query parameters (`since`, `limit`, `timeout`) with clear errors.
//! - [`publish`]: `POST /publish` and the validation WebSocket publishing shares.
//! - [`transport`]: one file per transport, each reading the log through its own cursor
//!   (`short_poll.rs`, `long_poll.rs`, `sse/`, `ws.rs`), and the cursor they share.
//! - `edge`: what every request passes through: the Host check, CORS, counting refusals.
//! - `connection`: the accept loop: the socket limit, the TLS handshake, HTTP/1.1 or
//!   HTTP/2 (ALPN, or the prior-knowledge preface), the request and idle timeouts, the
//!   write deadline, and the take-over hook that lets SSE write a fresh connection itself.
//! - [`app`]: the router, and [`run`] which serves it and shuts it down promptly.
//!
//! # Using it
//!
//! `pushlab serve` runs it. Tests bind `127.0.0.1:0` and call [`run`] with their own
//! shutdown future, driving the real server in-process.

pub mod admission;
pub mod app;
pub mod config;
mod connection;
mod edge;
pub mod error;
pub mod log;
pub mod message;
pub mod metrics;
pub mod params;
pub mod publish;
pub mod socket;
pub mod state;
pub mod tls;
pub mod transport;

pub use app::{app, raise_fd_limit, run};
pub use config::Config;
pub use state::AppState;
pub use transport::Transport;
