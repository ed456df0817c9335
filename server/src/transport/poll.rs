//! What both polling transports answer with: the poll body
//! ([`pushlab_protocol::poll`]) around the log's pre-encoded message JSON, within a byte
//! budget, and a response body that holds the client's place until it is written.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use pushlab_protocol::poll::PollHead;

use super::follower::{Batch, Follower};
use crate::admission::{Admitted, Reservation};
use crate::log::Budget;
use crate::message::Entry;
use crate::state::AppState;

/// The body both polling transports answer with ([`pushlab_protocol::poll`]), around
/// the log's pre-encoded message JSON.
pub fn poll_body(entries: &[Entry], head: PollHead) -> Bytes {
    pushlab_protocol::poll::encode(entries.iter().map(|e| e.json.as_bytes()), head)
}

/// Reads one poll response's worth: the client's `limit`, `--max-response-bytes`, and
/// what is left of the bytes all poll responses in flight may hold together, which is
/// taken (granted) before the read, so concurrent polls cannot overshoot it.
pub(crate) fn read_poll(app: &AppState, follower: &mut Follower, limit: usize) -> (Batch, Reservation) {
    let mut reservation = app.poll_bytes.grant(app.config.max_response_bytes);
    let batch = follower.read(Budget { count: limit, bytes: reservation.bytes() });
    reservation.settle(batch.entries.iter().map(|e| e.json.len()).sum());
    (batch, reservation)
}

/// A poll answer as a response, counted. The response body holds the client's
/// subscriber place and its share of the poll-bytes budget until hyper has taken the
/// last of it for writing, not just until the handler returns: a client that reads
/// slowly keeps its place, so a few slow readers cannot make the server build
/// response after response for them.
pub(crate) fn poll_response(
    app: &AppState,
    batch: &Batch,
    slot: Admitted,
    mut reservation: Reservation,
) -> Response {
    let summary = batch.read;
    let head = PollHead {
        last_id: summary.last_id,
        epoch: Some(summary.epoch),
        missed: summary.missed,
        reset: summary.reset,
        more: summary.more,
    };
    let body = poll_body(&batch.entries, head);
    app.metrics.transport(batch.transport).bytes_sent.inc_by(body.len() as u64);
    reservation.settle(body.len());
    let body = HeldBody { rest: body, _slot: slot, _reservation: reservation };
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], Body::new(body)).into_response()
}

/// A poll body handed to hyper a piece at a time. hyper asks for the next piece only
/// when its write buffer has room, so the last piece (and with it the slot) is taken
/// when the client has read nearly everything.
struct HeldBody {
    rest: Bytes,
    _slot: Admitted,
    _reservation: Reservation,
}

/// Size of one piece of a poll body: small enough that hyper's write buffer (about
/// 400 KiB) fills with pieces of a large response, rather than taking all of it at once.
const BODY_PIECE: usize = 64 * 1024;

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.rest.is_empty() {
            return Poll::Ready(None);
        }
        let piece = this.rest.split_to(this.rest.len().min(BODY_PIECE));
        Poll::Ready(Some(Ok(http_body::Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.rest.len() as u64)
    }
}
