//! The frames a WebSocket client may send, and the server's replies to them. Every
//! frame is one JSON text frame. Messages and notices flow from the server as well (see
//! [`crate::notice`]); these are the client's side of the conversation.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A field that may be absent, kept as the raw JSON text it was sent as. Unlike
/// `Option<&RawValue>`, a field that is present and `null` is kept (as `null`).
#[derive(Debug, Default)]
pub struct Field<'a>(pub Option<&'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&RawValue>::deserialize(deserializer).map(|raw| Field(Some(raw)))
    }
}

/// A client frame as the server reads it: `{"type":"ping"}` or
/// `{"type":"publish","data":...,"message_type"?:"chat"}`. The message's own type travels
/// as `message_type`, since `type` names the frame; `data` stays the raw JSON it was
/// sent as, so it is delivered byte for byte.
#[derive(Debug, Deserialize)]
pub struct ClientFrame<'a> {
    /// `ping` or `publish`.
    #[serde(rename = "type")]
    pub frame: Option<&'a str>,
    /// The published message's type.
    #[serde(borrow, default)]
    pub message_type: Field<'a>,
    /// The published message's data.
    #[serde(borrow, default)]
    pub data: Field<'a>,
}

/// A publish frame as a client writes it.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "publish")]
pub struct Publish<'a> {
    /// Any JSON.
    pub data: &'a RawValue,
    /// The message's type (`update` when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_type: Option<&'a str>,
}

/// The server's answer to a client frame.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// To `{"type":"ping"}`.
    Pong,
    /// To a publish: the id the message got. Not `id`: only messages carry that.
    Published {
        /// The new message's id.
        message_id: u64,
    },
    /// To a frame the server cannot act on; the connection stays open.
    Error {
        /// A stable code, as in HTTP error bodies.
        error: String,
        /// What was wrong, for people.
        message: String,
    },
}

impl Reply {
    /// The JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a reply serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_replies_are_spelled_once() {
        assert_eq!(Reply::Pong.to_json(), r#"{"type":"pong"}"#);
        assert_eq!(Reply::Published { message_id: 4 }.to_json(), r#"{"type":"published","message_id":4}"#);
        let data = RawValue::from_string(r#"{"upstream":1}"#.into()).unwrap();
        let publish = Publish { data: &data, message_type: None };
        let text = serde_json::to_string(&publish).unwrap();
        assert_eq!(text, r#"{"type":"publish","data":{"upstream":1}}"#);
        let read: ClientFrame = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (read.frame, read.data.0.map(RawValue::get)),
            (Some("publish"), Some(r#"{"upstream":1}"#))
        );
        let null: ClientFrame = serde_json::from_str(r#"{"type":"publish","data":null}"#).unwrap();
        assert_eq!(null.data.0.map(RawValue::get), Some("null"));
    }
}
