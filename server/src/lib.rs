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
//! Read in this order, from the bottom of the stack up:
//!
//! - [`log`]: the stream. Append-only, ids 1, 2, 3 …, bounded retention; each message
//!   encoded once and shared by every delivery.
//! - [`transport`]: one file per transport, each reading the log through its own cursor
//!   (`short_poll.rs`, `long_poll.rs`, `sse.rs`, `ws.rs`).
//! - [`publish`]: `POST /publish` and the validation WebSocket publishing shares.
//! - [`params`]: query parameters (`since`, `limit`, `timeout`) with clear errors.
//! - [`error`]: every refusal as a status code and a JSON body.
//! - [`metrics`]: `/status`, `/metrics` (Prometheus) and the subscriber limit.
//! - [`config`]: the settings and the constants behind them.
//! - [`app`]: the router, and [`run`] which serves it and shuts it down promptly.
//! - `edge`: what every request passes through: CORS and counting refusals.
//! - `connection`: the accept loop, which hands a fresh `GET /sse` connection to the SSE
//!   transport and every other connection to hyper.
//!
//! # Using it
//!
//! `pushlab serve` runs it. Tests bind `127.0.0.1:0` and call [`run`] with their own
//! shutdown future, driving the real server in-process.

pub mod app;
pub mod config;
mod connection;
mod edge;
pub mod error;
pub mod log;
pub mod metrics;
pub mod params;
pub mod publish;
pub mod transport;

pub use app::{app, raise_fd_limit, run, AppState};
pub use config::Config;
pub use transport::Transport;
