//! The four transports, named as everywhere in pushlab: server, load generator, JSON,
//! metrics labels, the CLI and the docs.

use serde::{Deserialize, Serialize};

/// A transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// A request every interval, answered at once.
    ShortPoll = 0,
    /// A request held open until a message exists or a timeout passes.
    LongPoll = 1,
    /// One HTTP response that never ends, `text/event-stream`.
    Sse = 2,
    /// An upgraded connection carrying frames both ways.
    Ws = 3,
}

impl Transport {
    /// All four, in the order the lab runs and reports them.
    pub const ALL: [Transport; 4] =
        [Transport::ShortPoll, Transport::LongPoll, Transport::Sse, Transport::Ws];

    /// The snake_case name used in JSON, CSV, metrics labels and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Transport::ShortPoll => "short_poll",
            Transport::LongPoll => "long_poll",
            Transport::Sse => "sse",
            Transport::Ws => "ws",
        }
    }

    /// The server's path for it.
    pub fn path(self) -> &'static str {
        match self {
            Transport::ShortPoll => "/poll",
            Transport::LongPoll => "/long-poll",
            Transport::Sse => "/sse",
            Transport::Ws => "/ws",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Transport {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Transport::ALL
            .into_iter()
            .find(|t| t.name() == s || t.name().replace('_', "-") == s)
            .ok_or_else(|| format!("unknown transport {s:?}: expected short_poll, long_poll, sse or ws"))
    }
}
