//! What one TCP connection is being used for, shared by the accept loop (which owns
//! the socket) and the handlers (which know what they serve on it). The accept loop
//! reads it to close a connection whose first request never completes, and to count a
//! stalled write against the subscriber it starved.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use pushlab_protocol::Transport;

/// One connection's use, in a request's extensions and beside its socket.
#[derive(Debug, Default)]
pub struct SocketUse {
    /// hyper has parsed a whole request head on this connection.
    first_request: AtomicBool,
    /// The streaming subscriber this connection serves (0: none), as `Transport as u8 + 1`.
    subscriber: AtomicU8,
    /// When a request last started or an HTTP/2 stream last ended, in [`CLOCK`]
    /// milliseconds plus one (0: never): the start of an idle spell.
    last_active: AtomicU64,
    /// HTTP/2 streams whose response has not ended (HTTP/1.1 does not list them).
    streams: Mutex<Vec<Arc<StreamProgress>>>,
}

/// How far hyper has taken one HTTP/2 stream's response body.
///
/// Over HTTP/2 a client can stop a single stream by never granting it flow-control
/// window, while its connection stays healthy: the socket never blocks, so the write
/// deadline never fires. hyper then holds the chunk it took and stops asking the body for
/// more. That is the signal: a body that handed hyper a frame and has not been asked for
/// the next one for `--write-timeout` is stalled. (A stream waiting for the next message
/// was asked, and is not.)
#[derive(Debug, Default)]
pub(crate) struct StreamProgress {
    /// When hyper last took a frame and has not asked for the next since, in
    /// milliseconds from [`CLOCK`] plus one; 0 while nothing is pending.
    handed_at: AtomicU64,
}

/// One HTTP/2 stream open on a connection, listed in its [`SocketUse`] until dropped: a
/// response body while hyper sends it, or a WebSocket session on an extended CONNECT
/// stream (whose response has no body: the session is the stream).
pub struct OpenStream {
    socket_use: Arc<SocketUse>,
    progress: Arc<StreamProgress>,
}

impl OpenStream {
    /// Lists a stream on `socket_use`.
    pub fn new(socket_use: Arc<SocketUse>) -> OpenStream {
        let progress = socket_use.stream_opened();
        OpenStream { socket_use, progress }
    }

    /// hyper took a frame of the body.
    pub(crate) fn handed(&self) {
        self.progress.handed();
    }

    /// hyper asked for the next frame.
    pub(crate) fn asked(&self) {
        self.progress.asked();
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.socket_use.stream_closed(&self.progress);
    }
}

/// The time base of [`StreamProgress`].
static CLOCK: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    CLOCK.elapsed().as_millis() as u64 + 1
}

impl StreamProgress {
    /// hyper took a frame of the body: it asks again as soon as it has sent it.
    pub(crate) fn handed(&self) {
        self.handed_at.store(now_ms(), Ordering::Relaxed);
    }

    /// hyper asked for the next frame (and is waiting for it, or the body ended).
    pub(crate) fn asked(&self) {
        self.handed_at.store(0, Ordering::Relaxed);
    }

    fn stalled_for(&self, limit: Duration) -> bool {
        match self.handed_at.load(Ordering::Relaxed) {
            0 => false,
            at => now_ms().saturating_sub(at) > limit.as_millis() as u64,
        }
    }
}

impl SocketUse {
    /// A request head arrived.
    pub(crate) fn request_started(&self) {
        self.first_request.store(true, Ordering::Relaxed);
        self.last_active.store(now_ms(), Ordering::Relaxed);
    }

    /// How long since a request started or a stream ended (since the epoch of [`CLOCK`]
    /// if neither happened: a connection that never asked is the first-head check's).
    pub(crate) fn idle_for(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.last_active.load(Ordering::Relaxed)))
    }

    /// An HTTP/2 stream opened; its progress is watched until [`SocketUse::stream_closed`].
    pub(crate) fn stream_opened(&self) -> Arc<StreamProgress> {
        let progress = Arc::new(StreamProgress::default());
        self.streams().push(progress.clone());
        progress
    }

    /// An HTTP/2 stream's response ended.
    pub(crate) fn stream_closed(&self, progress: &Arc<StreamProgress>) {
        self.streams().retain(|open| !Arc::ptr_eq(open, progress));
        self.last_active.store(now_ms(), Ordering::Relaxed);
    }

    /// HTTP/2 streams whose response has not ended.
    pub(crate) fn open_streams(&self) -> usize {
        self.streams().len()
    }

    /// Whether some open HTTP/2 stream has been stalled for longer than `limit`.
    pub(crate) fn a_stream_stalled_for(&self, limit: Duration) -> bool {
        self.streams().iter().any(|stream| stream.stalled_for(limit))
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, Vec<Arc<StreamProgress>>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
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
