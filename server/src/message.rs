//! A message: as a publisher gives it ([`NewMessage`], validated by `publish.rs`) and as
//! the log stores it ([`Entry`]), encoded once for every transport. The encoders live
//! here, beside the transports that send them, so the log stays a ring of ids.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use pushlab_protocol::{Cursor, Epoch};
use serde_json::value::RawValue;

use crate::log::Item;

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

/// One published message, encoded once for every transport: what the log stores.
/// Every delivery shares its reference-counted bytes.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Position in the stream, starting at 1.
    pub id: u64,
    /// The delivered message, `{"id":..,"type":..,"data":..,"timestamp":..}`: a poll
    /// body's element and a WebSocket text frame. Stored as [`Utf8Bytes`] so a WebSocket
    /// frame can share it without validating UTF-8 once per subscriber.
    pub json: Utf8Bytes,
    /// The same message as one Server-Sent Events event, `id:`/`event:`/`data:` lines
    /// and the blank line that ends it.
    pub sse: Bytes,
}

impl Item for Entry {
    fn id(&self) -> u64 {
        self.id
    }

    /// A read's byte budget counts the message JSON.
    fn size(&self) -> usize {
        self.json.len()
    }
}

impl Entry {
    /// Encodes `message` as it will be delivered, with its id and the time it was
    /// appended.
    pub fn encode(epoch: Epoch, id: u64, message: NewMessage, timestamp: u64) -> Entry {
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
        let sse = pushlab_protocol::sse::event(Some(cursor), &message.kind, json.as_bytes());
        Entry { id, json: Utf8Bytes::from(json), sse }
    }

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

/// Milliseconds since the Unix epoch, the `timestamp` of a delivered message.
pub fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{Budget, Log};

    const EPOCH: Epoch = Epoch(0x3f9a_1c07);

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_string()).unwrap()
    }

    #[test]
    fn an_entry_is_encoded_once_as_json_and_as_an_sse_event() {
        let log = Log::with_epoch(3, EPOCH);
        let message = NewMessage { kind: "chat".into(), data: raw(r#"{"a":"x\ny"}"#) };
        log.append(vec![message], |epoch, id, m| Entry::encode(epoch, id, m, unix_millis()));
        let all = Budget { count: 10, bytes: usize::MAX };
        let entry = log.read_after(Cursor { epoch: Some(EPOCH), id: 0 }, all).entries.remove(0);
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
