//! Short polling: `GET /poll?since=ID` answers at once with whatever is newer than ID.
//!
//! The cursor lives in the client, which asks again every interval. Latency is therefore
//! up to one interval (half on average) plus a round trip, and every poll costs a full
//! request and response — headers included — whether or not anything happened.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

use pushlab_protocol::Transport;

use super::follower::Follower;
use super::poll::{poll_response, read_poll};
use crate::error::ApiError;
use crate::params::Params;
use crate::state::AppState;

/// `GET /poll`. Without `since`, returns no messages, only `last_id` and `epoch`: where
/// "now" is.
pub async fn short_poll(State(app): State<Arc<AppState>>, params: Params) -> Result<Response, ApiError> {
    let slot = app.admission.admit(app.metrics.transport(Transport::ShortPoll))?;
    let mut follower = Follower::new(app.clone(), Transport::ShortPoll, params.since);
    let (batch, reservation) = match params.since {
        Some(_) => read_poll(&app, &mut follower, params.limit),
        None => (follower.here(), app.poll_bytes.grant(0)),
    };
    Ok(poll_response(&app, &batch, slot, reservation))
}
