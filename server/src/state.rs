//! What every handler shares, behind one `Arc`: the stream, the settings, the counters
//! and the limits. Its own module (as mini-redis's `db.rs`), below everything that uses
//! it, so no file imports a file that imports it back.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::{Admission, PollBytes};
use crate::config::{Config, POLL_BYTES_IN_FLIGHT};
use crate::log::Log;
use crate::message::{unix_millis, Entry, NewMessage};
use crate::metrics::Metrics;

/// Everything the handlers share, behind one `Arc`.
#[derive(Debug)]
pub struct AppState {
    /// The stream.
    pub log: Log<Entry>,
    /// Start-up settings.
    pub config: Config,
    /// Counters for `/status` and `/metrics`.
    pub metrics: Metrics,
    /// The subscriber limit.
    pub admission: Arc<Admission>,
    /// Cancelled when the server shuts down: every long poll and stream watches it.
    pub shutdown: CancellationToken,
    /// WebSocket sessions, which outlive the HTTP request that upgraded them.
    pub tasks: TaskTracker,
    /// The bytes all poll responses in flight may hold together.
    pub poll_bytes: PollBytes,
    /// Bound to a loopback address: requests must name a loopback host (see `edge`).
    pub loopback: bool,
}

impl AppState {
    /// Fresh state for a server with `config`, listening on `addr`.
    pub fn new(config: Config, addr: SocketAddr) -> Arc<Self> {
        Arc::new(AppState {
            loopback: addr.ip().is_loopback(),
            log: Log::new(config.history),
            admission: Arc::new(Admission::new(config.max_connections)),
            metrics: Metrics::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            poll_bytes: PollBytes::new(POLL_BYTES_IN_FLIGHT),
            config,
        })
    }

    /// Appends validated messages and counts them.
    pub fn append(&self, messages: Vec<NewMessage>) -> Vec<u64> {
        // One timestamp for the batch: its messages were published together.
        let timestamp = unix_millis();
        let ids =
            self.log.append(messages, |epoch, id, message| Entry::encode(epoch, id, message, timestamp));
        self.metrics.published.inc_by(ids.len() as u64);
        ids
    }
}
