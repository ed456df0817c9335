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

use super::{poll_budget, poll_response, Transport};
use crate::app::AppState;
use crate::error::ApiError;
use crate::params::Params;

/// `GET /long-poll`. Without `since`, waits for the next message after "now".
pub async fn long_poll(State(app): State<Arc<AppState>>, params: Params) -> Result<Response, ApiError> {
    let metrics = app.metrics.transport(Transport::LongPoll);
    let slot = app.admission.admit(metrics)?;
    // Subscribe *before* reading, so a message appended between the read and the wait
    // still wakes us: no lost wake-up.
    let mut appended = app.log.subscribe();
    let since = params.since.unwrap_or_else(|| app.log.now());
    let deadline = tokio::time::Instant::now() + params.timeout;
    loop {
        let read = app.log.read_after(since, poll_budget(&app, params.limit));
        let answer_now = !read.entries.is_empty() || read.missed > 0 || read.reset;
        if answer_now {
            return Ok(poll_response(&app, &read, metrics, slot));
        }
        tokio::select! {
            changed = appended.changed() => {
                if changed.is_err() {
                    return Ok(poll_response(&app, &read, metrics, slot));
                }
            }
            _ = tokio::time::sleep_until(deadline) => return Ok(poll_response(&app, &read, metrics, slot)),
            // Shutting down: answer with what there is (nothing) so the client is not
            // left hanging and the connection closes promptly.
            _ = app.shutdown.cancelled() => return Ok(poll_response(&app, &read, metrics, slot)),
        }
    }
}
