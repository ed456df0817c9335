//! Short polling: `GET /poll?since=ID` answers at once with whatever is newer than ID.
//!
//! The cursor lives in the client, which asks again every interval. Latency is therefore
//! up to one interval (half on average) plus a round trip, and every poll costs a full
//! request and response — headers included — whether or not anything happened.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

use super::{poll_budget, poll_response, Transport};
use crate::app::AppState;
use crate::error::ApiError;
use crate::log::Read;
use crate::params::Params;

/// `GET /poll`. Without `since`, returns no messages, only `last_id`: where "now" is.
pub async fn short_poll(State(app): State<Arc<AppState>>, params: Params) -> Result<Response, ApiError> {
    let metrics = app.metrics.transport(Transport::ShortPoll);
    let slot = app.admission.admit(metrics)?;
    let read = match params.since {
        Some(since) => app.log.read_after(since, poll_budget(&app, params.limit)),
        None => Read { last_id: app.log.last_id(), epoch: Some(app.log.epoch()), ..Read::default() },
    };
    Ok(poll_response(&app, &read, metrics, slot))
}
