//! A position in the stream. History lives in the server's memory and ends with its
//! process, so ids start again at 1 after a restart; each run of the stream has a random
//! [`Epoch`], and a cursor names it (as Centrifugo pairs an offset with an epoch). A
//! cursor from another run is recognised, never silently read as this run's ids.

use std::fmt;

use serde::{Serialize, Serializer};

/// One run of the stream: random, so two runs (a restart) never share one. Written as
/// eight hex digits, the part of a cursor before the `-`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Epoch(pub u32);

impl Epoch {
    /// A fresh epoch for a new run of the stream.
    pub fn random() -> Epoch {
        Epoch(fastrand::u32(..))
    }

    /// Parses the eight hex digits of an epoch.
    pub fn parse(text: &str) -> Option<Epoch> {
        if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(text, 16).ok().map(Epoch)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl Serialize for Epoch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Epoch {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Epoch::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("not an epoch: {text:?}")))
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
            Some((epoch, id)) => (Some(Epoch::parse(epoch)?), id),
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

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCH: Epoch = Epoch(0x3f9a_1c07);

    #[test]
    fn cursors_parse_with_and_without_an_epoch() {
        let at = |id| Cursor { epoch: Some(EPOCH), id };
        assert_eq!(Cursor::parse("3f9a1c07-42"), Some(at(42)));
        assert_eq!(Cursor::parse("42"), Some(Cursor { epoch: None, id: 42 }));
        assert_eq!(at(42).to_string(), "3f9a1c07-42");
        for bad in [
            "",
            "-1",
            "+1",
            "abc",
            "3f9a1c0-42",
            "3f9a1c07-",
            "zzzzzzzz-1",
            "1e3",
            "3f9a1c07-4-2",
            "+f9a1c07-1",
        ] {
            assert_eq!(Cursor::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_epoch_is_a_json_string_of_eight_hex_digits() {
        assert_eq!(serde_json::to_string(&EPOCH).unwrap(), r#""3f9a1c07""#);
        assert_eq!(serde_json::from_str::<Epoch>(r#""3f9a1c07""#).unwrap(), EPOCH);
        assert!(serde_json::from_str::<Epoch>(r#""xyz""#).is_err());
    }
}
