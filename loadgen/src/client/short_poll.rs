//! Short-polling client: asks `GET /poll?since=<cursor>` every interval, on a fixed
//! schedule like the browser's `setInterval`, over one keep-alive connection.

use tokio::time::MissedTickBehavior;

use super::http::HttpConnection;
use super::{ClientError, Session};

/// Polls until stopped.
pub async fn run(session: &mut Session) -> Result<(), ClientError> {
    let mut connection = HttpConnection::open(session).await?;
    let first = tokio::time::Instant::now() + session.settings.poll_offset;
    let mut schedule = tokio::time::interval_at(first, session.settings.poll_interval);
    // A poll that took longer than the interval is not followed by a burst of catch-up
    // polls: the next one waits for the next tick, as a timer-driven client does.
    schedule.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = session.stop.cancelled() => return Err(ClientError::Stopped),
            _ = schedule.tick() => {}
        }
        if !session.settings.keepalive {
            connection = HttpConnection::open(session).await?;
        }
        let path = format!("/poll?since={}", session.cursor);
        let body = tokio::select! {
            _ = session.stop.cancelled() => return Err(ClientError::Stopped),
            body = connection.get_body(session, &path) => body?,
        };
        session.poll_body(&body)?;
    }
}
