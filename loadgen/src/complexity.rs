//! How much code each transport needs in a browser, counted on the reference clients of
//! `docs/clients/` (the same contract for all four: resume, backoff with jitter,
//! dead-peer detection, sending upstream; see `docs/concerns.md`). The binary carries
//! their sizes, and every run saves them, so a saved run prints what it saved, whatever
//! binary prints it.

use pushlab_protocol::Transport;
use serde::{Deserialize, Serialize};

/// The size of one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSize {
    /// Lines of code, without comments and blank lines.
    pub lines: usize,
    /// Tokens: words, string literals and other non-blank characters.
    pub tokens: usize,
}

/// The size of the reference browser client of `transport`, as this binary was built.
pub fn reference_client(transport: Transport) -> ClientSize {
    let source = match transport {
        Transport::ShortPoll => include_str!("../../docs/clients/short_poll.js"),
        Transport::LongPoll => include_str!("../../docs/clients/long_poll.js"),
        Transport::Sse => include_str!("../../docs/clients/sse.js"),
        Transport::Ws => include_str!("../../docs/clients/ws.js"),
    };
    ClientSize::of(source)
}

/// Strips `//` and `/* */` comments, leaving strings (quotes and template literals)
/// alone.
fn strip_comments(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == '\'' || c == '"' || c == '`' {
            out.push(c);
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    out.push(chars[i]);
                    i += 1;
                }
                if let Some(&ch) = chars.get(i) {
                    out.push(ch);
                }
                i += 1;
            }
            if i < chars.len() {
                out.push(c);
            }
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

impl ClientSize {
    /// Counts `source`: lines of code (not blank once comments are removed) and tokens
    /// (a word — letters, digits, `_`, `$` — or a string literal is one token; every
    /// other character that is not white space is one).
    pub fn of(source: &str) -> ClientSize {
        let code = strip_comments(source);
        let lines = code.lines().filter(|l| !l.trim().is_empty()).count();
        let chars: Vec<char> = code.chars().collect();
        let (mut tokens, mut i) = (0, 0);
        while i < chars.len() {
            let c = chars[i];
            if c.is_whitespace() {
                i += 1;
                continue;
            }
            tokens += 1;
            if c.is_alphanumeric() || c == '_' || c == '$' {
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                    i += 1;
                }
            } else if c == '\'' || c == '"' || c == '`' {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            } else {
                i += 1;
            }
        }
        ClientSize { lines, tokens }
    }
}
