//! The stream: an append-only log of messages with ids 1, 2, 3 … and bounded retention.
//!
//! Every transport is a *cursor* over this one log: a client says "I have seen up to id
//! N of epoch E" and reads what comes after. Nothing here knows about HTTP. Three
//! properties matter:
//!
//! - **Memory is bounded by retention, not by subscribers.** There is no per-subscriber
//!   queue. A slow subscriber simply lags its cursor; if it falls behind retention it is
//!   told how many messages it missed (a `gap`), never silently skipped.
//! - **Each message is encoded once.** An [`Entry`] holds the message JSON and its SSE
//!   event as reference-counted [`Bytes`]; every delivery shares them.
//! - **A restart is never silent.** History lives in memory and ends with the process;
//!   ids start again at 1. Each run of the log has a random [`Epoch`] that every cursor
//!   carries (as Centrifugo pairs an offset with an epoch), so a cursor from another run
//!   is recognised and answered with a `reset`, then the new run's history from its start.

use std::collections::VecDeque;
use std::fmt;
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::value::RawValue;
use tokio::sync::watch;

/// One run of the log: random, so two runs (a restart) never share one. Written as eight
/// hex digits, the part of a cursor before the `-`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Epoch(pub u32);

impl Epoch {
    /// A fresh epoch for a new run of the log.
    pub fn random() -> Epoch {
        Epoch(fastrand::u32(..))
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// A position in the stream: "I have seen up to `id`", of run `epoch`. Written
/// `EPOCH-ID` (`3f9a1c07-42`) in `since=`, SSE `id:` lines and `Last-Event-ID`. A bare
/// `ID` (no epoch) is accepted for hand-typed requests; it cannot tell a restart, except
/// when it is ahead of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The run the id belongs to, when the client knows it.
    pub epoch: Option<Epoch>,
    /// The last id seen (0: nothing yet).
    pub id: u64,
}

impl Cursor {
    /// Parses `EPOCH-ID` or `ID`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Cursor> {
        let text = text.trim();
        let (epoch, id) = match text.split_once('-') {
            Some((epoch, id)) if epoch.len() == 8 => (Some(Epoch(u32::from_str_radix(epoch, 16).ok()?)), id),
            Some(_) => return None,
            None => (None, text),
        };
        // `parse::<u64>` accepts a leading `+`; a cursor is digits only.
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Cursor { epoch, id: id.parse().ok()? })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.epoch {
            Some(epoch) => write!(f, "{epoch}-{}", self.id),
            None => write!(f, "{}", self.id),
        }
    }
}

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
    /// Retained entries newer than the cursor, oldest first, within the requested limits.
    pub entries: Vec<Entry>,
    /// Messages newer than the cursor that fell out of retention before this read.
    pub missed: u64,
    /// The cursor was from another run of the log (or ahead of this one): the reader
    /// starts again from this run's first message, and `entries` begin there.
    pub reset: bool,
    /// The limits stopped the read before the newest entry: come back at once.
    pub more: bool,
    /// The newest id in the stream at the time of the read (0 when empty).
    pub last_id: u64,
    /// This run of the log.
    pub epoch: Option<Epoch>,
}

impl Read {
    /// Where the reader is after taking this read: the last entry, or where it started.
    pub fn cursor_after(&self, since: u64) -> u64 {
        match self.entries.last() {
            Some(last) => last.id,
            None if self.reset => 0,
            None => since,
        }
    }
}

/// How much one read may return: at most `count` entries and, past the first entry, at
/// most `bytes` of message JSON. Every read that has something returns at least one
/// message, so a reader always moves forward.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Most entries.
    pub count: usize,
    /// Most bytes of message JSON.
    pub bytes: usize,
}

/// A message to append: its type and its `data`, already validated.
#[derive(Debug)]
pub struct NewMessage {
    /// The `type` field; validated by the caller so it is safe in an SSE `event:` line
    /// and in JSON without escaping.
    pub kind: String,
    /// The `data` exactly as the publisher wrote it, with whitespace outside strings
    /// removed (see [`compact_json`]): numbers, strings and key order are delivered byte
    /// for byte.
    pub data: Box<RawValue>,
}

/// The in-memory log.
///
/// A real deployment that outgrows one machine would put Redis Streams (whose ids and
/// `XREAD` replay map onto this cursor model) behind the same three operations:
/// `append`, `read_after` and `subscribe`.
#[derive(Debug)]
pub struct Log {
    ring: RwLock<Ring>,
    epoch: Epoch,
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
    /// A log that keeps the last `retention` messages (at least one), in a new epoch.
    pub fn new(retention: usize) -> Self {
        Self::with_epoch(retention, Epoch::random())
    }

    /// A log of a given epoch (tests pick theirs).
    pub fn with_epoch(retention: usize, epoch: Epoch) -> Self {
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
            epoch,
            last_id: watch::Sender::new(0),
        }
    }

    /// This run of the log.
    pub fn epoch(&self) -> Epoch {
        self.epoch
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
                ring.entries.push_back(Entry::encode(self.epoch, id, &message, timestamp));
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

    /// Reads the entries after `cursor`, within `budget`.
    ///
    /// A cursor of another epoch, or one ahead of the stream (ids began again after a
    /// restart, and the client did not say its epoch), is a `reset`: the reader gets
    /// this run's history from its start, and a `missed` count for the part of it that
    /// retention no longer holds.
    pub fn read_after(&self, cursor: Cursor, budget: Budget) -> Read {
        let ring = self.ring.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let last_id = ring.next_id - 1;
        let other_run = cursor.epoch.is_some_and(|epoch| epoch != self.epoch);
        let reset = other_run || cursor.id > last_id;
        let since = if reset { 0 } else { cursor.id };
        // Ids the reader wants but retention no longer holds: since+1 .. first_id-1.
        let missed = ring.first_id.saturating_sub(since + 1);
        let start = since.max(ring.first_id - 1) - (ring.first_id - 1);
        let mut entries = Vec::new();
        let mut bytes = 0;
        let mut available = ring.entries.range(start as usize..);
        for entry in available.by_ref() {
            let over = entries.len() >= budget.count || (bytes + entry.json.len() > budget.bytes);
            if over && !entries.is_empty() {
                break;
            }
            bytes += entry.json.len();
            entries.push(entry.clone());
        }
        let more = entries.last().is_some_and(|last| last.id < last_id);
        Read { entries, missed, reset, more, last_id, epoch: Some(self.epoch) }
    }

    /// The newest id (0 while the stream is empty).
    pub fn last_id(&self) -> u64 {
        *self.last_id.borrow()
    }

    /// A cursor at the newest message: "from now on".
    pub fn now(&self) -> Cursor {
        Cursor { epoch: Some(self.epoch), id: self.last_id() }
    }

    /// A receiver that wakes when new messages are appended.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.last_id.subscribe()
    }
}

impl Entry {
    fn encode(epoch: Epoch, id: u64, message: &NewMessage, timestamp: u64) -> Entry {
        // Written by hand rather than through serde so that `data` goes out exactly as it
        // came in: serde_json's `Value` would turn 18446744073709551616 into
        // 1.8446744073709552e19 and `1e2` into 100.0. `kind` needs no escaping: publish
        // allows only `A-Z a-z 0-9 _ - . :` in it.
        let data = message.data.get();
        let mut json = String::with_capacity(data.len() + message.kind.len() + 64);
        json.push_str("{\"id\":");
        json.push_str(itoa::Buffer::new().format(id));
        json.push_str(",\"type\":\"");
        json.push_str(&message.kind);
        json.push_str("\",\"data\":");
        json.push_str(data);
        json.push_str(",\"timestamp\":");
        json.push_str(itoa::Buffer::new().format(timestamp));
        json.push('}');
        // `data` is compact (no whitespace outside strings) and JSON strings cannot hold a
        // raw newline, so the whole message fits on one SSE `data:` line.
        let cursor = Cursor { epoch: Some(epoch), id };
        let sse = sse_event(Some(cursor), &message.kind, json.as_bytes());
        Entry { id, json: Utf8Bytes::from(json), sse }
    }
}

/// Removes the whitespace outside strings from valid JSON, leaving every other byte as
/// it was. Publishers may pretty-print; an SSE `data:` line must not contain a newline.
pub fn compact_json(raw: &RawValue) -> Box<RawValue> {
    let text = raw.get();
    let needs_work = text.bytes().any(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t'));
    if !needs_work {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\n' | '\r' | '\t') {
            out.push(c);
        }
    }
    // Removing insignificant whitespace from valid JSON leaves valid JSON.
    RawValue::from_string(out).expect("compacted JSON is still JSON")
}

/// Encodes one SSE event. `id` sets the browser's `Last-Event-ID`; notices without an id
/// leave it unchanged, so a reconnect still resumes from the last real message.
pub fn sse_event(id: Option<Cursor>, event: &str, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + event.len() + 48);
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

    const EPOCH: Epoch = Epoch(0x3f9a_1c07);
    const ALL: Budget = Budget { count: 100, bytes: usize::MAX };

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_string()).unwrap()
    }

    fn publish(log: &Log, n: usize) -> Vec<u64> {
        let messages =
            (0..n).map(|i| NewMessage { kind: "update".into(), data: raw(&i.to_string()) }).collect();
        log.append(messages)
    }

    fn ids(read: &Read) -> Vec<u64> {
        read.entries.iter().map(|e| e.id).collect()
    }

    fn at(id: u64) -> Cursor {
        Cursor { epoch: Some(EPOCH), id }
    }

    #[test]
    fn ids_start_at_one_and_are_gap_free() {
        let log = Log::with_epoch(10, EPOCH);
        assert_eq!(publish(&log, 3), vec![1, 2, 3]);
        assert_eq!(publish(&log, 2), vec![4, 5]);
        assert_eq!(log.last_id(), 5);
    }

    #[test]
    fn read_after_returns_newer_entries_up_to_the_limit() {
        let log = Log::with_epoch(10, EPOCH);
        publish(&log, 5);
        let read = log.read_after(at(2), Budget { count: 2, bytes: usize::MAX });
        assert_eq!(ids(&read), vec![3, 4]);
        assert_eq!((read.missed, read.reset, read.more, read.last_id), (0, false, true, 5));
        let rest = log.read_after(at(4), ALL);
        assert_eq!((ids(&rest), rest.more), (vec![5], false));
        assert!(log.read_after(at(5), ALL).entries.is_empty());
    }

    #[test]
    fn a_byte_budget_stops_a_read_but_never_before_the_first_message() {
        let log = Log::with_epoch(10, EPOCH);
        publish(&log, 5);
        let one = log.read_after(at(0), ALL).entries[0].json.len();
        let read = log.read_after(at(0), Budget { count: 100, bytes: 2 * one });
        assert_eq!((ids(&read), read.more), (vec![1, 2], true));
        let read = log.read_after(at(0), Budget { count: 100, bytes: 1 });
        assert_eq!((ids(&read), read.more), (vec![1], true));
    }

    #[test]
    fn a_reader_behind_retention_is_told_how_many_it_missed() {
        let log = Log::with_epoch(3, EPOCH);
        publish(&log, 10); // retains 8, 9, 10
        let read = log.read_after(at(2), ALL);
        assert_eq!(ids(&read), vec![8, 9, 10]);
        assert_eq!(read.missed, 5); // 3, 4, 5, 6, 7
        assert_eq!(log.read_after(at(0), ALL).missed, 7);
        assert_eq!(log.read_after(at(7), ALL).missed, 0);
    }

    #[test]
    fn a_cursor_of_another_run_starts_again_from_this_runs_first_message() {
        // The restart case: the client saw ids up to 10 of the old run; the new run has
        // 15 messages. It must get all 15, told that it was reset, not new 11–15 only.
        let log = Log::with_epoch(100, EPOCH);
        publish(&log, 15);
        let read = log.read_after(Cursor { epoch: Some(Epoch(1)), id: 10 }, ALL);
        assert!(read.reset);
        assert_eq!(ids(&read), (1..=15).collect::<Vec<_>>());
        assert_eq!(read.missed, 0);
        // Same run: no reset.
        assert!(!log.read_after(at(10), ALL).reset);
    }

    #[test]
    fn a_reset_reader_is_told_what_this_run_no_longer_holds() {
        let log = Log::with_epoch(3, EPOCH);
        publish(&log, 10);
        let read = log.read_after(Cursor { epoch: Some(Epoch(1)), id: 4 }, ALL);
        assert!(read.reset);
        assert_eq!((ids(&read), read.missed), (vec![8, 9, 10], 7));
    }

    #[test]
    fn a_bare_cursor_ahead_of_the_stream_is_a_reset() {
        let log = Log::with_epoch(3, EPOCH);
        publish(&log, 2);
        let read = log.read_after(Cursor { epoch: None, id: 50 }, ALL);
        assert!(read.reset);
        assert_eq!((ids(&read), read.last_id), (vec![1, 2], 2));
        assert!(!log.read_after(Cursor { epoch: None, id: 1 }, ALL).reset);
    }

    #[test]
    fn cursors_parse_with_and_without_an_epoch() {
        assert_eq!(Cursor::parse("3f9a1c07-42"), Some(at(42)));
        assert_eq!(Cursor::parse("42"), Some(Cursor { epoch: None, id: 42 }));
        assert_eq!(at(42).to_string(), "3f9a1c07-42");
        for bad in ["", "-1", "+1", "abc", "3f9a1c0-42", "3f9a1c07-", "zzzzzzzz-1", "1e3", "3f9a1c07-4-2"] {
            assert_eq!(Cursor::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_entry_is_encoded_once_as_json_and_as_an_sse_event() {
        let log = Log::with_epoch(3, EPOCH);
        log.append(vec![NewMessage { kind: "chat".into(), data: raw(r#"{"a":"x\ny"}"#) }]);
        let entry = log.read_after(at(0), ALL).entries.remove(0);
        let json: serde_json::Value = serde_json::from_str(entry.json.as_str()).unwrap();
        assert_eq!(json["id"], 1);
        assert_eq!(json["type"], "chat");
        assert_eq!(json["data"]["a"], "x\ny");
        assert!(json["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
        let sse = std::str::from_utf8(&entry.sse).unwrap();
        assert_eq!(sse, format!("id: 3f9a1c07-1\nevent: chat\ndata: {}\n\n", entry.json.as_str()));
    }

    #[test]
    fn data_is_delivered_as_written_less_whitespace_outside_strings() {
        let data =
            compact_json(&raw("{ \"big\" : 18446744073709551616,\n \"e\": 1e2, \"s\": \"a  b\\\" \" }"));
        assert_eq!(data.get(), r#"{"big":18446744073709551616,"e":1e2,"s":"a  b\" "}"#);
        assert_eq!(compact_json(&raw("[1, 2]")).get(), "[1,2]");
    }
}
