//! What the server tells a client that is not a message. The same JSON on every
//! transport: a WebSocket text frame, the `data:` of an SSE event named by its type, or
//! (for `reset` and `gap`) fields of a poll body. A notice never has an `id`: only
//! messages do, which is how a client tells them apart.

use serde::{Deserialize, Serialize};

use crate::cursor::Epoch;

/// A notice, `{"type": "<kind>", ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notice {
    /// The first frame of a WebSocket: the stream's epoch, which a resume cursor must
    /// name, and the newest id.
    Hello {
        /// This run of the stream.
        epoch: Epoch,
        /// The newest id (0 while the stream is empty).
        last_id: u64,
    },
    /// The cursor was behind retention: `missed` messages are gone.
    Gap {
        /// Messages the client will never get.
        missed: u64,
    },
    /// The cursor was of another run of the stream (the server restarted), or ahead of
    /// it: this run's messages follow from its first.
    Reset {
        /// This run of the stream.
        epoch: Epoch,
        /// The newest id.
        last_id: u64,
    },
    /// The server is going away; resume elsewhere or later.
    Shutdown {
        /// Why, for people.
        reason: String,
    },
}

impl Notice {
    /// The notice's `type`: also the SSE event name it is sent under.
    pub fn kind(&self) -> &'static str {
        match self {
            Notice::Hello { .. } => "hello",
            Notice::Gap { .. } => "gap",
            Notice::Reset { .. } => "reset",
            Notice::Shutdown { .. } => "shutdown",
        }
    }

    /// The JSON text.
    pub fn to_json(&self) -> String {
        // A struct of strings and numbers always serializes.
        serde_json::to_string(self).expect("a notice serializes")
    }
}

/// The `type`s of the server's own frames. A published message may not use one, or a
/// client could not tell it from a notice.
pub const RESERVED_TYPES: [&str; 7] = ["gap", "reset", "error", "pong", "published", "shutdown", "hello"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_spelled_once_with_the_type_first() {
        let epoch = Epoch(0x3f9a_1c07);
        assert_eq!(Notice::Gap { missed: 5 }.to_json(), r#"{"type":"gap","missed":5}"#);
        assert_eq!(
            Notice::Reset { epoch, last_id: 3 }.to_json(),
            r#"{"type":"reset","epoch":"3f9a1c07","last_id":3}"#
        );
        assert_eq!(
            Notice::Hello { epoch, last_id: 0 }.to_json(),
            r#"{"type":"hello","epoch":"3f9a1c07","last_id":0}"#
        );
        let shutdown = Notice::Shutdown { reason: "server shutting down".into() };
        assert_eq!(shutdown.to_json(), r#"{"type":"shutdown","reason":"server shutting down"}"#);
        for notice in [Notice::Gap { missed: 1 }, Notice::Reset { epoch, last_id: 2 }, shutdown] {
            assert!(RESERVED_TYPES.contains(&notice.kind()));
            assert_eq!(serde_json::from_str::<Notice>(&notice.to_json()).unwrap(), notice);
        }
    }
}
