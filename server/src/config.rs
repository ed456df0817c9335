//! Server settings, with the defaults `pushlab serve` documents.

use std::time::Duration;

/// Everything the server can be told at start-up.
#[derive(Clone, Debug)]
pub struct Config {
    /// Messages retained for resume (`--history`).
    pub history: usize,
    /// When set, publishing requires `Authorization: Bearer <token>` (`--publish-token`).
    pub publish_token: Option<String>,
    /// SSE keep-alive comment and WebSocket ping interval (`--heartbeat`).
    pub heartbeat: Duration,
    /// Largest `data` of one message, in bytes once encoded (`--max-message-bytes`).
    pub max_message_bytes: usize,
    /// Subscribers served at once: open SSE and WebSocket streams plus poll requests in
    /// flight (`--max-connections`). Past it, new ones get 503 before any upgrade.
    pub max_connections: usize,
    /// How long SSE and WebSocket subscribers get to close when the server shuts down.
    pub shutdown_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            history: 10_000,
            publish_token: None,
            heartbeat: Duration::from_secs(15),
            max_message_bytes: 64 * 1024,
            // The fd limit on the machines this lab targets is 20,000 (see DESIGN.md);
            // leave some for the listener, logs and the publisher.
            max_connections: 19_500,
            shutdown_grace: Duration::from_millis(500),
        }
    }
}

/// Long-poll hold time when the client does not say (`timeout`, seconds).
pub const LONG_POLL_DEFAULT: Duration = Duration::from_secs(30);
/// Longest hold a client may ask for. Longer holds outlive many proxies' idle timeouts.
pub const LONG_POLL_MAX: Duration = Duration::from_secs(120);
/// Messages in one poll response when the client does not say (`limit`).
pub const POLL_LIMIT_DEFAULT: usize = 1_000;
/// Largest `limit` a client may ask for.
pub const POLL_LIMIT_MAX: usize = 10_000;
/// Messages a streaming cursor drains from the log before one write and one flush.
/// Large enough to amortise the syscall, small enough to keep one write near 64 KiB.
pub const STREAM_BATCH: usize = 256;
/// Messages in one `POST /publish` batch.
pub const PUBLISH_BATCH_MAX: usize = 1_000;
/// The `retry:` hint sent at the start of every SSE stream, in milliseconds.
pub const SSE_RETRY_MS: u64 = 1_000;
