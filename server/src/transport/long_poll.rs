//! Long polling: `GET /long-poll?since=ID&timeout=S` is held until a message newer than
//! ID exists or the timeout passes.
//!
//! The cursor still lives in the client, but an idle stream costs one request per
//! timeout instead of one per interval, and a message arriving while a request is held
//! is delivered in one transit. Messages that arrive while the client is between two
//! requests wait for the next request: that is the extra round trip RFC 6202 §2.2 warns
//! about when messages come close together.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

use pushlab_protocol::Transport;

use super::follower::Follower;
use super::poll::{poll_response, read_poll};
use crate::error::ApiError;
use crate::params::Params;
use crate::state::AppState;

/// `GET /long-poll`. Without `since`, waits for the next message after "now".
pub async fn long_poll(State(app): State<Arc<AppState>>, params: Params) -> Result<Response, ApiError> {
    let slot = app.admission.admit(app.metrics.transport(Transport::LongPoll))?;
    let mut follower = Follower::new(app.clone(), Transport::LongPoll, params.since);
    let deadline = tokio::time::Instant::now() + params.timeout;
    loop {
        let (batch, reservation) = read_poll(&app, &mut follower, params.limit);
        if !batch.is_empty() {
            return Ok(poll_response(&app, &batch, slot, reservation));
        }
        tokio::select! {
            alive = follower.appended() => if !alive {
                return Ok(poll_response(&app, &batch, slot, reservation));
            },
            _ = tokio::time::sleep_until(deadline) => return Ok(poll_response(&app, &batch, slot, reservation)),
            // Shutting down: answer with what there is (nothing) so the client is not
            // left hanging and the connection closes promptly.
            _ = app.shutdown.cancelled() => return Ok(poll_response(&app, &batch, slot, reservation)),
        }
    }
}
