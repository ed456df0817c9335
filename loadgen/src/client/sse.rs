//! SSE client: one `GET /sse` whose body (HTTP/1.1 chunks or HTTP/2 DATA frames) is
//! parsed into events by `eventsource-stream` (the same parsing rules as the browser's
//! `EventSource`). On reconnect it resumes from
//! its cursor with `?since=`, which the server treats as it treats `Last-Event-ID`.

use anyhow::Context;
use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt, TryStreamExt};
use pushlab_protocol::Notice;

use super::connect::Connection;
use super::{ClientError, Session};

/// Follows the event stream until stopped or the stream ends.
pub async fn run(session: &mut Session) -> Result<(), ClientError> {
    let connection = Connection::open(session).await?;
    // `since` on the first connection; afterwards the cursor is what Last-Event-ID
    // would carry, and the server treats both the same.
    let path = format!("/sse?since={}", session.resume_from());
    let body = tokio::select! {
        _ = session.stop.cancelled() => return Err(ClientError::Stopped),
        body = connection.get_stream(session, &path, "text/event-stream") => body?,
    };
    let mut events = std::pin::pin!(one_event_at_a_time(body).eventsource());
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
            "gap" | "reset" => match serde_json::from_str::<Notice>(&event.data).context("a notice")? {
                Notice::Gap { missed } => session.gap(missed),
                Notice::Reset { epoch, .. } => session.reset(Some(&epoch.to_string())),
                _ => {}
            },
            "shutdown" => return Err(anyhow::anyhow!("the server is shutting down").into()),
            _ => {
                // A message's id is `EPOCH-ID`: what `Last-Event-ID` would carry.
                if let Some((epoch, _)) = event.id.split_once('-') {
                    session.epoch_is(epoch);
                }
                session.deliver(&event.data)?
            }
        }
    }
}

/// Splits each chunk after every blank line (`\n\n`, the end of an event), so that
/// `eventsource-stream` is fed one event at a time.
///
/// Why: after each line it parses, `eventsource-stream` moves the rest of its buffer into
/// a new `String`. On a chunk carrying a batch of events (a cursor that is behind gets up to
/// 256 in one write) that is quadratic: at 575 messages/s to 1,000 SSE subscribers the
/// load generator used 1.6 cores, mostly allocating and copying, while the server used 0.3
/// (docs/performance.md). Fed one event, it copies only the rest of that event. Splitting
/// anywhere is safe: the parser keeps an incomplete line for the next piece.
pub fn one_event_at_a_time<E>(
    chunks: impl Stream<Item = Result<Bytes, E>>,
) -> impl Stream<Item = Result<Bytes, E>> {
    chunks.map_ok(|chunk| futures_util::stream::iter(EventPieces(chunk).map(Ok))).try_flatten()
}

/// The pieces of a chunk, each ending after a blank line (the last may end anywhere).
struct EventPieces(Bytes);

impl Iterator for EventPieces {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.0.is_empty() {
            return None;
        }
        let end = memchr::memmem::find(&self.0, b"\n\n").map_or(self.0.len(), |i| i + 2);
        Some(self.0.split_to(end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_split_across_and_within_chunks_parse_as_one_stream() {
        let text = "retry: 1000\n\nid: 1\nevent: chat\ndata: {\"a\":1}\n\n: keep-alive\n\nid: 2\ndata: x\ndata: y\n\n";
        // Every way of cutting the stream in two gives the same events.
        for cut in 0..text.len() {
            let chunks = [&text[..cut], &text[cut..]]
                .map(|part| Ok::<_, std::io::Error>(Bytes::from(part.to_owned())));
            let events: Vec<_> = one_event_at_a_time(futures_util::stream::iter(chunks))
                .eventsource()
                .map(|event| event.unwrap())
                .collect()
                .await;
            let fields: Vec<_> =
                events.iter().map(|e| (e.id.as_str(), e.event.as_str(), e.data.as_str())).collect();
            assert_eq!(fields, [("1", "chat", "{\"a\":1}"), ("2", "message", "x\ny")], "cut at {cut}");
        }
    }

    #[test]
    fn a_chunk_splits_after_each_blank_line() {
        let pieces: Vec<_> = EventPieces(Bytes::from_static(b"a\n\nb\nc\n\nd")).collect();
        assert_eq!(pieces, [&b"a\n\n"[..], b"b\nc\n\n", b"d"]);
    }
}
