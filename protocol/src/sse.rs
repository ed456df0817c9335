//! One Server-Sent Events event as bytes (WHATWG HTML §9.2): `id:`, `event:` and
//! `data:` lines and the blank line that ends it.

use bytes::{BufMut, Bytes, BytesMut};

use crate::cursor::Cursor;
use crate::notice::Notice;

/// Encodes one event. `id` sets the browser's `Last-Event-ID`; notices without an id
/// leave it unchanged, so a reconnect still resumes from the last real message. `data`
/// must not contain a newline (every JSON pushlab sends is compact).
pub fn event(id: Option<Cursor>, name: &str, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + name.len() + 48);
    if let Some(id) = id {
        out.put_slice(b"id: ");
        out.put_slice(id.to_string().as_bytes());
        out.put_u8(b'\n');
    }
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_slice(b"\ndata: ");
    out.put_slice(data);
    out.put_slice(b"\n\n");
    out.freeze()
}

/// A notice as an event named by its type.
pub fn notice(id: Option<Cursor>, notice: &Notice) -> Bytes {
    event(id, notice.kind(), notice.to_json().as_bytes())
}

/// The comment sent every heartbeat: ignored by `EventSource`, but it keeps proxies
/// from closing an idle connection and lets both ends notice a dead one.
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";
