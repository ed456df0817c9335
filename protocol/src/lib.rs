//! # pushlab-protocol
//!
//! What pushlab's server and every client of it speak, written once: a field renamed
//! here is renamed for the server, the load generator, `pushlab trace` and the tests, and
//! the compiler finds every use.
//!
//! # Layout
//!
//! - [`transport`]: the four transports, their names and their paths.
//! - [`cursor`]: a position in the stream, `EPOCH-ID`, and the [`Epoch`] that tells one
//!   run of the stream from the next.
//! - [`notice`]: what the server tells a client that is not a message (`hello`, `gap`,
//!   `reset`, `shutdown`), the same JSON on every transport.
//! - [`poll`]: the body both polling transports answer with.
//! - [`sse`]: one Server-Sent Events event, as bytes.
//! - [`ws`]: the frames a WebSocket client may send, and the server's replies.

pub mod cursor;
pub mod notice;
pub mod poll;
pub mod sse;
pub mod transport;
pub mod ws;

pub use cursor::{Cursor, Epoch};
pub use notice::Notice;
pub use transport::Transport;
