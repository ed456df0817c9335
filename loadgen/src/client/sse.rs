//! SSE client: one `GET /sse` whose body is parsed into events by `eventsource-stream`
//! (the same parsing rules as the browser's `EventSource`). On reconnect it resumes from
//! its cursor with `?since=`, which the server treats as it treats `Last-Event-ID`.

use anyhow::Context;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde::Deserialize;

use super::lean_http::LeanConnection;
use super::{ClientError, Session};

#[derive(Deserialize)]
struct Notice {
    #[serde(default)]
    missed: u64,
    #[serde(default)]
    last_id: u64,
}

/// Follows the event stream until stopped or the stream ends.
pub async fn run(session: &mut Session) -> Result<(), ClientError> {
    let connection = LeanConnection::open(session).await?;
    // `since` on the first connection; afterwards the cursor is what Last-Event-ID
    // would carry, and the server treats both the same.
    let path = format!("/sse?since={}", session.cursor);
    let body = tokio::select! {
        _ = session.stop.cancelled() => return Err(ClientError::Stopped),
        body = connection.get_stream(session, &path, "text/event-stream") => body?,
    };
    let mut events = std::pin::pin!(body.eventsource());
    loop {
        let event = tokio::select! {
            _ = session.stop.cancelled() => return Err(ClientError::Stopped),
            event = events.next() => event,
        };
        let event = match event {
            None => return Err(anyhow::anyhow!("the server ended the stream").into()),
            Some(event) => event.context("reading the event stream")?,
        };
        match event.event.as_str() {
            "gap" => session.gap(serde_json::from_str::<Notice>(&event.data).context("gap notice")?.missed),
            "reset" => {
                session.reset(serde_json::from_str::<Notice>(&event.data).context("reset notice")?.last_id)
            }
            "shutdown" => return Err(anyhow::anyhow!("the server is shutting down").into()),
            _ => session.deliver(&event.data)?,
        }
    }
}
