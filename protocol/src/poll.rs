//! The body both polling transports answer with:
//! `{"messages":[...],"last_id":M,"epoch":"E"}` plus `"missed":K`, `"reset":true` and
//! `"more":true` when they apply. A client's next cursor is `E-` and the id of the last
//! message it got (or its old cursor when it got none); `more` says the response stopped
//! at its size limit and the client should ask again at once.

use std::fmt::Write;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::cursor::Epoch;

/// Everything in a poll body but the messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollHead {
    /// The newest id in the stream.
    pub last_id: u64,
    /// This run of the stream.
    pub epoch: Option<Epoch>,
    /// Messages after the cursor that retention no longer holds.
    pub missed: u64,
    /// The cursor was of another run: the messages start this run from its first.
    pub reset: bool,
    /// The size limit stopped the response early.
    pub more: bool,
}

/// Encodes a poll body around messages that are already JSON (the server's log holds
/// each message encoded once): building a response copies bytes but never serializes a
/// message again.
pub fn encode<'a>(messages: impl ExactSizeIterator<Item = &'a [u8]> + Clone, head: PollHead) -> Bytes {
    let size: usize = messages.clone().map(|m| m.len() + 1).sum();
    let mut body = BytesMut::with_capacity(size + 96);
    body.put_slice(b"{\"messages\":[");
    for (i, message) in messages.enumerate() {
        if i > 0 {
            body.put_u8(b',');
        }
        body.put_slice(message);
    }
    // Written straight into the body: `format!` would allocate a String per poll.
    let _ = write!(body, "],\"last_id\":{}", head.last_id);
    if let Some(epoch) = head.epoch {
        let _ = write!(body, ",\"epoch\":\"{epoch}\"");
    }
    if head.missed > 0 {
        let _ = write!(body, ",\"missed\":{}", head.missed);
    }
    if head.reset {
        body.put_slice(b",\"reset\":true");
    }
    if head.more {
        body.put_slice(b",\"more\":true");
    }
    body.put_u8(b'}');
    body.freeze()
}

/// A poll body as a client reads it, the messages left as raw JSON.
#[derive(Debug, Deserialize)]
pub struct PollBody<'a> {
    /// The messages, oldest first.
    #[serde(borrow)]
    pub messages: Vec<&'a RawValue>,
    /// The newest id in the stream.
    pub last_id: u64,
    /// This run of the stream.
    #[serde(default)]
    pub epoch: Option<Epoch>,
    /// See [`PollHead::missed`].
    #[serde(default)]
    pub missed: u64,
    /// See [`PollHead::reset`].
    #[serde(default)]
    pub reset: bool,
    /// See [`PollHead::more`].
    #[serde(default)]
    pub more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_encodes_and_decodes() {
        let messages = [&br#"{"id":1}"#[..], br#"{"id":2}"#];
        let head = PollHead { last_id: 9, epoch: Some(Epoch(1)), missed: 3, reset: true, more: true };
        let body = encode(messages.iter().copied(), head);
        assert_eq!(
            &body[..],
            br#"{"messages":[{"id":1},{"id":2}],"last_id":9,"epoch":"00000001","missed":3,"reset":true,"more":true}"#
        );
        let decoded: PollBody = serde_json::from_slice(&body).unwrap();
        assert_eq!((decoded.messages.len(), decoded.last_id, decoded.epoch), (2, 9, Some(Epoch(1))));
        assert!(decoded.reset && decoded.more);
        let empty = encode(std::iter::empty(), PollHead { last_id: 0, ..PollHead::default() });
        assert_eq!(&empty[..], br#"{"messages":[],"last_id":0}"#);
    }
}
