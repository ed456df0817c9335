//! What one TCP connection is being used for, shared by the accept loop (which owns
//! the socket) and the handlers (which know what they serve on it). The accept loop
//! reads it to close a connection whose first request never completes, and to count a
//! stalled write against the subscriber it starved.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use pushlab_protocol::Transport;

/// One connection's use, in a request's extensions and beside its socket.
#[derive(Debug, Default)]
pub struct SocketUse {
    /// hyper has parsed a whole request head on this connection.
    first_request: AtomicBool,
    /// The streaming subscriber this connection serves (0: none), as `Transport as u8 + 1`.
    subscriber: AtomicU8,
    /// Request heads so far.
    requests: AtomicU64,
    /// HTTP/2 streams whose response has not ended (HTTP/1.1 does not count them).
    open_streams: AtomicUsize,
}

impl SocketUse {
    /// A request head arrived.
    pub(crate) fn request_started(&self) {
        self.first_request.store(true, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Request heads so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// An HTTP/2 stream opened.
    pub(crate) fn stream_opened(&self) {
        self.open_streams.fetch_add(1, Ordering::Relaxed);
    }

    /// An HTTP/2 stream's response ended.
    pub(crate) fn stream_closed(&self) {
        self.open_streams.fetch_sub(1, Ordering::Relaxed);
    }

    /// HTTP/2 streams whose response has not ended.
    pub(crate) fn open_streams(&self) -> usize {
        self.open_streams.load(Ordering::Relaxed)
    }

    /// Whether a request head ever arrived.
    pub(crate) fn has_requested(&self) -> bool {
        self.first_request.load(Ordering::Relaxed)
    }

    /// The connection now carries a `transport` subscriber's stream.
    pub fn serves(&self, transport: Transport) {
        self.subscriber.store(transport as u8 + 1, Ordering::Relaxed);
    }

    /// The subscriber it carries, if any.
    pub(crate) fn subscriber(&self) -> Option<Transport> {
        match self.subscriber.load(Ordering::Relaxed) {
            0 => None,
            n => Transport::ALL.get(n as usize - 1).copied(),
        }
    }
}
