//! Server settings, with the defaults `pushlab serve` documents, and the checks that
//! refuse a setting that would break the server before it starts.
//!
//! Every limit a client can run into is here (or, for the fixed ones, a `const` below),
//! so `pushlab help serve` and the "Limits and timeouts" table of docs/api.md can list
//! them all.

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
    /// Largest `data` of one message, in bytes (`--max-message-bytes`).
    pub max_message_bytes: usize,
    /// Subscribers served at once: open SSE and WebSocket streams plus poll requests in
    /// flight (`--max-connections`). Past it, new ones get 503 before any upgrade.
    pub max_connections: usize,
    /// Open TCP connections of any kind, idle ones included (`--max-sockets`). Past it,
    /// a new connection is answered with a JSON 503 and closed. It must stay below the
    /// process's open-files limit, or the kernel refuses connections with no answer.
    pub max_sockets: usize,
    /// A request head must be complete this long after its connection opened or after
    /// the previous response on it ended; so it is also the keep-alive idle timeout
    /// (`--request-timeout`).
    pub request_timeout: Duration,
    /// A `POST /publish` body must arrive within this (`--body-timeout`).
    pub body_timeout: Duration,
    /// A write that makes no progress for this long means the client stopped reading:
    /// the connection is closed and counted (`--write-timeout`).
    pub write_timeout: Duration,
    /// Largest poll response body, in bytes; a response always carries at least one
    /// message, and says `"more": true` when it stopped early (`--max-response-bytes`).
    pub max_response_bytes: usize,
    /// How long the whole shutdown may take: subscribers are told, then closed.
    pub shutdown_grace: Duration,
    /// Serve TLS with this certificate (`--tls`, `--cert`, `--key`); ALPN offers HTTP/2
    /// and HTTP/1.1. Without it the port speaks cleartext HTTP/1.1 and HTTP/2 with prior
    /// knowledge.
    pub tls: Option<crate::tls::Identity>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            history: 10_000,
            publish_token: None,
            heartbeat: Duration::from_secs(15),
            max_message_bytes: 64 * 1024,
            // The open-files limit on the machines this lab targets is 20,000; leave some
            // for the listener, logs and the publisher.
            max_connections: 19_500,
            max_sockets: 19_900,
            request_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_response_bytes: 1024 * 1024,
            shutdown_grace: Duration::from_millis(500),
            tls: None,
        }
    }
}

/// Shortest `--heartbeat`: below it keep-alives alone would be a flood (at 1 ns an idle
/// SSE client got 25 MB/s of comments).
pub const HEARTBEAT_MIN: Duration = Duration::from_millis(100);
/// Largest `--max-message-bytes`: one message must fit many times in memory.
pub const MAX_MESSAGE_BYTES_LIMIT: usize = 16 * 1024 * 1024;
/// Descriptors kept free below the open-files limit for the listener, logs and files.
pub const FD_RESERVE: u64 = 64;

impl Config {
    /// Refuses settings the server cannot work with, naming the flag. `fd_limit` is the
    /// open-files limit in force (0 when unknown).
    pub fn validate(&self, fd_limit: u64) -> Result<(), String> {
        if self.history == 0 {
            return Err("--history must be at least 1 (it is the number of messages kept for resume)".into());
        }
        if self.heartbeat < HEARTBEAT_MIN {
            return Err(format!(
                "--heartbeat must be at least {} ms, got {:?} (e.g. --heartbeat 15s)",
                HEARTBEAT_MIN.as_millis(),
                self.heartbeat
            ));
        }
        if self.max_message_bytes == 0 || self.max_message_bytes > MAX_MESSAGE_BYTES_LIMIT {
            return Err(format!(
                "--max-message-bytes must be between 1 and {MAX_MESSAGE_BYTES_LIMIT}, got {}",
                self.max_message_bytes
            ));
        }
        if self.max_connections == 0 {
            return Err("--max-connections must be at least 1: with 0 even a short poll is refused".into());
        }
        if self.max_sockets == 0 {
            return Err("--max-sockets must be at least 1".into());
        }
        if fd_limit > 0 && self.max_sockets as u64 > fd_limit.saturating_sub(FD_RESERVE) {
            return Err(format!(
                "--max-sockets {} is not below the open-files limit {fd_limit} minus {FD_RESERVE} \
                 kept for the server itself; raise the limit (ulimit -n) or lower --max-sockets",
                self.max_sockets
            ));
        }
        if let Some(token) = &self.publish_token {
            let printable = token.bytes().all(|b| b.is_ascii_graphic());
            if token.is_empty() || !printable {
                return Err(
                    "--publish-token must be 1 or more printable ASCII characters without spaces".into()
                );
            }
        }
        for (flag, value) in [
            ("--request-timeout", self.request_timeout),
            ("--body-timeout", self.body_timeout),
            ("--write-timeout", self.write_timeout),
        ] {
            if value < Duration::from_millis(10) {
                return Err(format!("{flag} must be at least 10ms, got {value:?}"));
            }
        }
        if !(1024..=POLL_BYTES_IN_FLIGHT).contains(&self.max_response_bytes) {
            return Err(format!(
                "--max-response-bytes must be between 1024 and {POLL_BYTES_IN_FLIGHT} (what all poll responses \
                 in flight may hold together), got {}",
                self.max_response_bytes
            ));
        }
        Ok(())
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
/// Bytes a streaming cursor gathers into one write (at least one message). It is also
/// what a subscriber that stopped reading can pin in the server beyond the shared log.
pub const STREAM_BATCH_BYTES: usize = 64 * 1024;
/// Bytes all poll responses in flight may hold together. Past it, each new response
/// carries one message (and `"more": true`), so many slow pollers on large messages
/// cannot make the server hold a copy of the history each.
pub const POLL_BYTES_IN_FLIGHT: usize = 64 * 1024 * 1024;
/// Messages in one `POST /publish` batch.
pub const PUBLISH_BATCH_MAX: usize = 1_000;
/// The `retry:` hint sent at the start of every SSE stream, in milliseconds.
pub const SSE_RETRY_MS: u64 = 1_000;
/// Seconds a refused client is told to wait (`Retry-After` on every 503).
pub const RETRY_AFTER_SECONDS: u32 = 1;
