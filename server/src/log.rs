//! The stream: an append-only log of messages with ids 1, 2, 3 … and bounded retention.
//!
//! Every transport is a *cursor* over this one log: a client says "I have seen up to id
//! N" and reads what comes after. Nothing here knows about HTTP. Two properties matter:
//!
//! - **Memory is bounded by retention, not by subscribers.** There is no per-subscriber
//!   queue. A slow subscriber simply lags its cursor; if it falls behind retention it is
//!   told how many messages it missed (a `gap`), never silently skipped.
//! - **Each message is encoded once.** An [`Entry`] holds the message JSON and its SSE
//!   event as reference-counted [`Bytes`]; every delivery shares them.

use std::collections::VecDeque;
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use tokio::sync::watch;

/// One published message, encoded once for every transport.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Position in the stream, starting at 1.
    pub id: u64,
    /// The delivered message, `{"id":..,"type":..,"data":..,"timestamp":..}`. Stored as
    /// [`Utf8Bytes`] so a WebSocket text frame can share it without re-validating UTF-8.
    pub json: Utf8Bytes,
    /// The same message as one Server-Sent Events event, `id:`/`event:`/`data:` lines
    /// and the blank line that ends it.
    pub sse: Bytes,
}

impl Entry {
    /// The SSE event without its `event:` line, for clients that asked for unnamed
    /// events (`?event_names=false`): `EventSource` then hands every message to
    /// `onmessage`, whatever its type. The type is still inside the JSON.
    pub fn sse_unnamed(&self) -> impl Iterator<Item = &[u8]> {
        // `sse` is `id: N\n` `event: T\n` `data: …\n\n`: keep the first and third parts.
        let id_end = self.sse.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        let event_end =
            self.sse[id_end..].iter().position(|&b| b == b'\n').map_or(id_end, |i| id_end + i + 1);
        [&self.sse[..id_end], &self.sse[event_end..]].into_iter()
    }
}

/// What a cursor read returns: the entries after the cursor and what the reader must be
/// told about the ones it cannot have.
#[derive(Debug, Default)]
pub struct Read {
    /// Retained entries newer than the cursor, oldest first, at most the requested limit.
    pub entries: Vec<Entry>,
    /// Messages newer than the cursor that fell out of retention before this read.
    pub missed: u64,
    /// The cursor was *ahead* of the stream (the server restarted and ids began again):
    /// the reader must resynchronise from `last_id`.
    pub reset: bool,
    /// The newest id in the stream at the time of the read (0 when empty).
    pub last_id: u64,
}

/// A message to append: its type and its `data`, already validated.
#[derive(Debug)]
pub struct NewMessage {
    /// The `type` field; validated by the caller so it is safe in an SSE `event:` line.
    pub kind: String,
    /// Any JSON value.
    pub data: serde_json::Value,
}

/// The in-memory log.
///
/// A real deployment that outgrows one machine would put Redis Streams (whose ids and
/// `XREAD` replay map onto this cursor model) behind the same three operations:
/// `append`, `read_after` and `subscribe`.
#[derive(Debug)]
pub struct Log {
    ring: RwLock<Ring>,
    /// The last id, for waking waiters. `watch` keeps only the newest value, so a publish
    /// costs one notification however many subscribers wait, and a subscriber that was
    /// busy never sees a backlog of wake-ups: it reads the log and catches up in one go.
    last_id: watch::Sender<u64>,
}

#[derive(Debug)]
struct Ring {
    entries: VecDeque<Entry>,
    retention: usize,
    /// Id of `entries[0]`, or the id the next entry will get when empty.
    first_id: u64,
    next_id: u64,
}

impl Log {
    /// A log that keeps the last `retention` messages (at least one).
    pub fn new(retention: usize) -> Self {
        let retention = retention.max(1);
        Log {
            ring: RwLock::new(Ring {
                // Allocate on demand: a mostly idle server should not reserve the whole
                // retention window up front.
                entries: VecDeque::new(),
                retention,
                first_id: 1,
                next_id: 1,
            }),
            last_id: watch::Sender::new(0),
        }
    }

    /// Appends messages in order and returns their ids. One lock and one wake-up for the
    /// whole batch.
    pub fn append(&self, messages: Vec<NewMessage>) -> Vec<u64> {
        if messages.is_empty() {
            return Vec::new();
        }
        let timestamp = unix_millis();
        let mut ids = Vec::with_capacity(messages.len());
        let last = {
            // The lock is held only to assign ids and push, so ids are unique and
            // gap-free even with concurrent publishers. Encoding happens inside it
            // because the id is part of the encoding; it is a few hundred nanoseconds.
            let mut ring = self.ring.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            for message in messages {
                let id = ring.next_id;
                ring.next_id += 1;
                ring.entries.push_back(Entry::encode(id, &message, timestamp));
                if ring.entries.len() > ring.retention {
                    ring.entries.pop_front();
                    ring.first_id += 1;
                }
                ids.push(id);
            }
            ring.next_id - 1
        };
        self.last_id.send_replace(last);
        ids
    }

    /// Reads up to `limit` entries with ids greater than `since`.
    pub fn read_after(&self, since: u64, limit: usize) -> Read {
        let ring = self.ring.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let last_id = ring.next_id - 1;
        if since > last_id {
            return Read { reset: true, last_id, ..Read::default() };
        }
        // Ids the reader wants but retention no longer holds: since+1 .. first_id-1.
        let missed = ring.first_id.saturating_sub(since + 1);
        let start = since.max(ring.first_id - 1) - (ring.first_id - 1);
        let entries = ring.entries.range(start as usize..).take(limit).cloned().collect();
        Read { entries, missed, reset: false, last_id }
    }

    /// The newest id (0 while the stream is empty).
    pub fn last_id(&self) -> u64 {
        *self.last_id.borrow()
    }

    /// A receiver that wakes when new messages are appended.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.last_id.subscribe()
    }
}

impl Entry {
    fn encode(id: u64, message: &NewMessage, timestamp: u64) -> Entry {
        #[derive(Serialize)]
        struct Delivered<'a> {
            id: u64,
            #[serde(rename = "type")]
            kind: &'a str,
            data: &'a serde_json::Value,
            timestamp: u64,
        }
        let delivered = Delivered { id, kind: &message.kind, data: &message.data, timestamp };
        // Serializing a `Value` into a `String` cannot fail: every key is a string.
        let json = serde_json::to_string(&delivered).expect("a JSON value always serializes");
        // serde_json's compact output escapes every newline, so the JSON fits on one SSE
        // `data:` line.
        let sse = sse_event(Some(id), &message.kind, json.as_bytes());
        Entry { id, json: Utf8Bytes::from(json), sse }
    }
}

/// Encodes one SSE event. `id` sets the browser's `Last-Event-ID`; notices without an id
/// leave it unchanged, so a reconnect still resumes from the last real message.
pub fn sse_event(id: Option<u64>, event: &str, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + event.len() + 40);
    if let Some(id) = id {
        out.put_slice(b"id: ");
        out.put_slice(id.to_string().as_bytes());
        out.put_u8(b'\n');
    }
    out.put_slice(b"event: ");
    out.put_slice(event.as_bytes());
    out.put_slice(b"\ndata: ");
    out.put_slice(data);
    out.put_slice(b"\n\n");
    out.freeze()
}

/// Milliseconds since the Unix epoch, the `timestamp` of a delivered message.
pub fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(log: &Log, n: usize) -> Vec<u64> {
        let messages =
            (0..n).map(|i| NewMessage { kind: "update".into(), data: serde_json::json!(i) }).collect();
        log.append(messages)
    }

    fn ids(read: &Read) -> Vec<u64> {
        read.entries.iter().map(|e| e.id).collect()
    }

    #[test]
    fn ids_start_at_one_and_are_gap_free() {
        let log = Log::new(10);
        assert_eq!(publish(&log, 3), vec![1, 2, 3]);
        assert_eq!(publish(&log, 2), vec![4, 5]);
        assert_eq!(log.last_id(), 5);
    }

    #[test]
    fn read_after_returns_newer_entries_up_to_the_limit() {
        let log = Log::new(10);
        publish(&log, 5);
        let read = log.read_after(2, 2);
        assert_eq!(ids(&read), vec![3, 4]);
        assert_eq!((read.missed, read.reset, read.last_id), (0, false, 5));
        assert!(log.read_after(5, 10).entries.is_empty());
    }

    #[test]
    fn a_reader_behind_retention_is_told_how_many_it_missed() {
        let log = Log::new(3);
        publish(&log, 10); // retains 8, 9, 10
        let read = log.read_after(2, 100);
        assert_eq!(ids(&read), vec![8, 9, 10]);
        assert_eq!(read.missed, 5); // 3, 4, 5, 6, 7
        assert_eq!(log.read_after(0, 100).missed, 7);
        assert_eq!(log.read_after(7, 100).missed, 0);
    }

    #[test]
    fn a_reader_ahead_of_the_stream_is_told_to_reset() {
        let log = Log::new(3);
        publish(&log, 2);
        let read = log.read_after(50, 100);
        assert!(read.reset);
        assert_eq!(read.last_id, 2);
        assert!(read.entries.is_empty());
    }

    #[test]
    fn an_entry_is_encoded_once_as_json_and_as_an_sse_event() {
        let log = Log::new(3);
        log.append(vec![NewMessage { kind: "chat".into(), data: serde_json::json!({"a": "x\ny"}) }]);
        let entry = log.read_after(0, 1).entries.remove(0);
        let json: serde_json::Value = serde_json::from_str(entry.json.as_str()).unwrap();
        assert_eq!(json["id"], 1);
        assert_eq!(json["type"], "chat");
        assert_eq!(json["data"]["a"], "x\ny");
        assert!(json["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
        let sse = std::str::from_utf8(&entry.sse).unwrap();
        assert_eq!(sse, format!("id: 1\nevent: chat\ndata: {}\n\n", entry.json.as_str()));
    }
}
