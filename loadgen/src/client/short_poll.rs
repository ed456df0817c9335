//! Short-polling client: asks `GET /poll?since=<cursor>` every interval, on a fixed
//! schedule like the browser's `setInterval`, over one keep-alive connection (HTTP/1.1:
//! one request after another; HTTP/2: each poll a new stream on it).

use tokio::time::MissedTickBehavior;

use super::connect::Connection;
use super::{ClientError, Session};

/// Polls until stopped.
pub async fn run(session: &mut Session) -> Result<(), ClientError> {
    // Kept alive, the connection is open before the first tick; without keep-alive each
    // poll opens its own (and its handshake), the previous one closed first.
    let mut connection = match session.settings.keepalive {
        true => Some(Connection::open(session).await?),
        false => None,
    };
    // The schedule is a fixed grid from the run's start (offset per client, so pollers
    // spread over the interval). The first poll goes out at once; a reconnect joins the
    // grid at its next tick, as a browser's `setInterval` keeps ticking while a fetch fails.
    let (interval, grid_start) =
        (session.settings.poll_interval, session.epoch + session.settings.poll_offset);
    let elapsed = tokio::time::Instant::now().saturating_duration_since(grid_start).as_nanos();
    let never_polled = session.live.requests.load(std::sync::atomic::Ordering::Relaxed) == 0;
    let ticks =
        if never_polled { elapsed / interval.as_nanos() } else { elapsed.div_ceil(interval.as_nanos()) };
    let first = grid_start + interval * ticks as u32;
    let mut schedule = tokio::time::interval_at(first, interval);
    // A poll that took longer than the interval is not followed by a burst of catch-up
    // polls: the next one waits for the next tick, as a timer-driven client does.
    schedule.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = session.stop.cancelled() => return Err(ClientError::Stopped),
            _ = schedule.tick() => {}
        }
        if !session.settings.keepalive {
            connection = None;
        }
        if connection.is_none() {
            connection = Some(Connection::open(session).await?);
        }
        let open = connection.as_mut().expect("opened above");
        let path = format!("/poll?since={}", session.resume_from());
        let body = tokio::select! {
            _ = session.stop.cancelled() => return Err(ClientError::Stopped),
            body = open.get_body(session, &path) => body?,
        };
        session.poll_body(&body)?;
    }
}
