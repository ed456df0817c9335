//! What one TCP connection is being used for, shared by the accept loop (which owns
//! the socket) and the handlers (which know what they serve on it). The accept loop
//! reads it to close a connection whose first request never completes, and to count a
//! stalled write against the subscriber it starved.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use pushlab_protocol::Transport;

/// One connection's use, in a request's extensions and beside its socket.
#[derive(Debug, Default)]
pub struct SocketUse {
    /// hyper has parsed a whole request head on this connection.
    first_request: AtomicBool,
    /// The streaming subscriber this connection serves (0: none), as `Transport as u8 + 1`.
    subscriber: AtomicU8,
}

impl SocketUse {
    /// A request head arrived.
    pub(crate) fn request_started(&self) {
        self.first_request.store(true, Ordering::Relaxed);
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
