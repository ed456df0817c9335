//! HTTP/2 on the wire (RFC 9113), for `pushlab trace --http 2`.
//!
//! A client opens with a fixed 24-byte preface; after it, both directions are nothing but
//! frames. Each frame is a 9-byte header — payload length (24 bits), type, flags, stream
//! id (31 bits) — and its payload. Stream 0 is the connection itself (SETTINGS, PING,
//! WINDOW_UPDATE, GOAWAY); every request is a stream of its own (1, 3, 5, … from the
//! client), whose HEADERS carry the request or response head as an HPACK block (RFC 7541)
//! and whose DATA carry the body. What a body is — a poll's JSON, an SSE event stream,
//! the WebSocket frames of an extended CONNECT (RFC 8441) — is decoded inside the DATA
//! payloads exactly as over HTTP/1.1, nested under the frames that carry it.
//!
//! HPACK is why a poller's second request is small: each side keeps a dynamic table of
//! the header fields it has sent, and a field sent again is one byte, its index there.
//! Each header block is split here into its field representations, each shown with its
//! size and whether it was indexed (static or dynamic table) or sent literally.

use std::collections::HashMap;

use super::{place, sse_lines, websocket_frames, Direction, Kind, Part};

/// What a client sends first on an HTTP/2 connection (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Bytes of a frame header.
const FRAME_HEADER: usize = 9;

/// What a stream's DATA carry, from its request's HEADERS and its response's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carries {
    /// A body: a poll's JSON, an error text.
    Body,
    /// `text/event-stream`: SSE fields.
    EventStream,
    /// The stream of an extended CONNECT with `:protocol websocket`: WebSocket frames.
    WebSocket,
}

/// One HEADERS (or CONTINUATION-completed) header block, for the HPACK summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderBlock {
    /// Which way it went.
    pub direction: Direction,
    /// Its stream.
    pub stream: u32,
    /// Its size on the wire, HPACK-encoded: what the frame carries.
    pub hpack_bytes: usize,
    /// The same fields written out as HTTP/1.1 would (`name: value\r\n` each).
    pub plain_bytes: usize,
    /// The decoded fields, `name: value`; empty if the block could not be decoded.
    pub fields: Vec<String>,
}

/// What decoding one connection learns, shared by its two directions: the client's
/// requests say what each stream carries, which the server's DATA need. Decode the
/// client's direction first.
#[derive(Debug, Default)]
pub struct Connection {
    carries: HashMap<u32, Carries>,
    /// Every header block, in the order decoded.
    pub header_blocks: Vec<HeaderBlock>,
}

/// A DATA payload's bytes gathered per stream, and where each piece sits in the
/// connection's byte stream: the body is decoded whole, then put back frame by frame.
#[derive(Default)]
struct Body {
    bytes: Vec<u8>,
    /// `(offset in the connection stream, offset in the body, length)`.
    segments: Vec<(usize, usize, usize)>,
}

/// Splits one direction of an HTTP/2 connection into parts: the preface, each frame's
/// header and payload, and inside DATA the parts of what they carry. Every byte is in
/// exactly one part; nothing here panics on truncated or garbage input.
pub fn decode(stream: &[u8], direction: Direction, connection: &mut Connection) -> Vec<Part> {
    let mut parts = Vec::new();
    let part = |offset: usize, len: usize, label: String, kind: Kind, depth: usize, shown: Option<String>| {
        Part { direction, offset, bytes: stream[offset..offset + len].to_vec(), label, kind, depth, shown }
    };
    let mut pos = 0;
    if direction == Direction::Up {
        let n = PREFACE.len().min(stream.len());
        if stream[..n] == PREFACE[..n] && n > 0 {
            let label =
                if n == PREFACE.len() { "HTTP/2 client preface" } else { "incomplete HTTP/2 preface" };
            let text = String::from_utf8_lossy(&stream[..n]).replace('\r', "\\r").replace('\n', "\\n");
            parts.push(part(0, n, label.into(), Kind::H2Framing, 0, Some(text)));
            pos = n;
        }
    }
    // Each side encodes its header blocks with its own dynamic table.
    let mut hpack = loona_hpack::Decoder::new();
    // A header block split over HEADERS and CONTINUATION frames: its stream and pieces.
    let mut unfinished_block: Option<(u32, Vec<u8>)> = None;
    let mut bodies: HashMap<u32, Body> = HashMap::new();
    while pos < stream.len() {
        let rest = &stream[pos..];
        if rest.len() < FRAME_HEADER {
            parts.push(part(
                pos,
                rest.len(),
                "incomplete frame header (the trace ended)".into(),
                Kind::H2Framing,
                0,
                None,
            ));
            break;
        }
        let length = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        let (frame_type, flags) = (rest[3], rest[4]);
        let stream_id = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
        let payload_start = pos + FRAME_HEADER;
        let available = (stream.len() - payload_start).min(length);
        let payload = &stream[payload_start..payload_start + available];
        let name = frame_name(frame_type);
        let flag_names = flag_names(frame_type, flags);
        let shown = format!(
            "{length} B payload{}{} · {}",
            if flag_names.is_empty() { "" } else { ", " },
            flag_names,
            hex(&rest[..FRAME_HEADER])
        );
        let header_index = parts.len();
        let stream_label =
            if stream_id == 0 { "connection".to_string() } else { format!("stream {stream_id}") };
        parts.push(part(
            pos,
            FRAME_HEADER,
            format!("{name} frame, {stream_label}"),
            Kind::H2Framing,
            0,
            Some(shown),
        ));
        if available < length {
            if available > 0 {
                parts.push(part(
                    payload_start,
                    available,
                    "incomplete frame payload (the trace ended)".into(),
                    Kind::H2Control,
                    1,
                    None,
                ));
            }
            break;
        }
        // PADDED frames (DATA, HEADERS) say their padding length in a first byte and end
        // with that much padding: both framing.
        let padded = matches!(frame_type, 0 | 1) && flags & 0x8 != 0;
        let (mut body_from, mut body_to) = (payload_start, payload_start + length);
        if padded {
            let pad = payload.first().copied().unwrap_or(0) as usize;
            if length == 0 || pad + 1 > length {
                parts.push(part(
                    payload_start,
                    length,
                    "invalid padding (a protocol error)".into(),
                    Kind::H2Framing,
                    1,
                    None,
                ));
                pos = payload_start + length;
                continue;
            }
            parts.push(part(payload_start, 1, format!("pad length: {pad} B"), Kind::H2Framing, 1, None));
            if pad > 0 {
                parts.push(part(body_to - pad, pad, "padding".into(), Kind::H2Framing, 1, None));
            }
            body_from += 1;
            body_to -= pad;
        }
        match frame_type {
            // DATA: the body, gathered per stream and decoded below.
            0 if body_to > body_from => {
                let body = bodies.entry(stream_id).or_default();
                body.segments.push((body_from, body.bytes.len(), body_to - body_from));
                body.bytes.extend_from_slice(&stream[body_from..body_to]);
            }
            0 => {}
            // HEADERS and CONTINUATION: a header block, decoded when it is complete.
            1 | 9 => {
                if frame_type == 1 && flags & 0x20 != 0 {
                    // The deprecated priority fields: stream dependency and weight.
                    let n = 5.min(body_to - body_from);
                    parts.push(part(body_from, n, "priority (deprecated)".into(), Kind::H2Control, 1, None));
                    body_from += n;
                }
                let fragment = &stream[body_from..body_to];
                let end_headers = flags & 0x4 != 0;
                let whole_in_one = frame_type == 1 && end_headers && unfinished_block.is_none();
                if whole_in_one {
                    let (block_parts, block) =
                        header_block(fragment, body_from, &mut hpack, direction, stream_id);
                    parts[header_index].label.push_str(&format!(", HPACK {} B", fragment.len()));
                    parts.extend(block_parts.into_iter().map(|p| Part { depth: 1, ..p }));
                    learn(&mut connection.carries, direction, stream_id, &block.fields);
                    connection.header_blocks.push(block);
                } else {
                    let (_, pieces) = unfinished_block.get_or_insert_with(|| (stream_id, Vec::new()));
                    pieces.extend_from_slice(fragment);
                    let mut label = "header block fragment, HPACK".to_string();
                    if end_headers {
                        let (block_stream, pieces) = unfinished_block.take().unwrap_or_default();
                        let (_, block) = header_block(&pieces, 0, &mut hpack, direction, block_stream);
                        label = format!("last fragment: block of {} B, HPACK", pieces.len());
                        learn(&mut connection.carries, direction, block_stream, &block.fields);
                        let shown = block.fields.join(", ");
                        connection.header_blocks.push(block);
                        if !fragment.is_empty() {
                            parts.push(part(body_from, fragment.len(), label, Kind::Hpack, 1, Some(shown)));
                        }
                        pos = payload_start + length;
                        continue;
                    }
                    if !fragment.is_empty() {
                        parts.push(part(body_from, fragment.len(), label, Kind::Hpack, 1, None));
                    }
                }
            }
            4 => {
                // SETTINGS: 6 bytes per parameter, identifier then value.
                let mut at = 0;
                while at + 6 <= payload.len() {
                    let id = u16::from_be_bytes([payload[at], payload[at + 1]]);
                    let value = u32::from_be_bytes([
                        payload[at + 2],
                        payload[at + 3],
                        payload[at + 4],
                        payload[at + 5],
                    ]);
                    let label = format!("{} = {value}", setting_name(id));
                    parts.push(part(payload_start + at, 6, label, Kind::H2Control, 1, None));
                    at += 6;
                }
                if at < payload.len() {
                    let label = "not a whole parameter (a protocol error)".to_string();
                    parts.push(part(payload_start + at, payload.len() - at, label, Kind::H2Control, 1, None));
                }
            }
            _ if length > 0 => {
                let label = control_payload(frame_type, payload);
                parts.push(part(payload_start, length, label, Kind::H2Control, 1, None));
            }
            _ => {}
        }
        pos = payload_start + length;
    }
    // The bodies, decoded as what their streams carry, put back into their DATA frames.
    let mut ids: Vec<u32> = bodies.keys().copied().collect();
    ids.sort();
    for id in ids {
        let body = &bodies[&id];
        let mut inner = Vec::new();
        match connection.carries.get(&id).copied().unwrap_or(Carries::Body) {
            Carries::EventStream => sse_lines(&body.bytes, 0, body.bytes.len(), direction, &mut inner),
            Carries::WebSocket => websocket_frames(&body.bytes, 0, direction, &mut inner),
            Carries::Body => inner.push(Part {
                direction,
                offset: 0,
                bytes: body.bytes.clone(),
                label: format!("body, {} B", body.bytes.len()),
                kind: Kind::Payload,
                depth: 0,
                shown: None,
            }),
        }
        parts.extend(place(inner, &body.segments, 1));
    }
    parts.sort_by_key(|p| p.offset);
    parts
}

/// Decodes one header block at `offset` into one part per field representation, and
/// the block for the summary. A block that does not decode is one part, its size shown.
fn header_block(
    block: &[u8],
    offset: usize,
    hpack: &mut loona_hpack::Decoder,
    direction: Direction,
    stream: u32,
) -> (Vec<Part>, HeaderBlock) {
    let part = |from: usize, len: usize, label: String, shown: Option<String>| Part {
        direction,
        offset: offset + from,
        bytes: block[from..from + len].to_vec(),
        label,
        kind: Kind::Hpack,
        depth: 0,
        shown,
    };
    let decoded = hpack.decode(block);
    let representations = representations(block);
    let fields: Vec<String> = match &decoded {
        Ok(list) => list
            .iter()
            .map(|(name, value)| {
                format!("{}: {}", String::from_utf8_lossy(name), String::from_utf8_lossy(value))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let plain_bytes = fields.iter().map(|f| f.len() + 2).sum();
    let summary =
        HeaderBlock { direction, stream, hpack_bytes: block.len(), plain_bytes, fields: fields.clone() };
    let field_count = representations.as_ref().map(|r| r.iter().filter(|r| r.2.is_some()).count());
    match (&decoded, representations) {
        (Ok(_), Some(representations)) if field_count == Some(fields.len()) => {
            let mut parts = Vec::new();
            let mut names = fields.into_iter();
            for (from, len, how) in representations {
                match how {
                    Some((label, note)) => {
                        let shown = names.next().map(|field| format!("{field}{note}"));
                        parts.push(part(from, len, label, shown))
                    }
                    None => parts.push(part(from, len, "HPACK dynamic table size update".into(), None)),
                }
            }
            (parts, summary)
        }
        (Err(error), _) => {
            let label = format!("header block, HPACK ({} B, not decodable: {error:?})", block.len());
            (vec![part(0, block.len(), label, None)], summary)
        }
        _ => {
            let label = format!("header block, HPACK ({} B)", block.len());
            (vec![part(0, block.len(), label, Some(summary.fields.join(", ")))], summary)
        }
    }
}

/// The field representations of a header block (RFC 7541 §6): `(offset, length, how)`,
/// `how` a label and a note to show after the field, `None` for a table size update (no
/// field). `None` if the block is malformed.
#[allow(clippy::type_complexity)]
fn representations(block: &[u8]) -> Option<Vec<(usize, usize, Option<(String, String)>)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < block.len() {
        let first = block[pos];
        let (len, how) = if first & 0x80 != 0 {
            // 1xxxxxxx: a field from the tables by index; 1–61 is the static table.
            let (index, n) = integer(&block[pos..], 7)?;
            let table = if index <= STATIC_TABLE_LEN { "static" } else { "dynamic" };
            (n, Some((format!("HPACK indexed: {table} #{index}"), String::new())))
        } else if first & 0xe0 == 0x20 {
            let (_, n) = integer(&block[pos..], 5)?;
            (n, None)
        } else {
            // 01xxxxxx: literal, then added to the dynamic table; 0000xxxx: literal, not
            // added; 0001xxxx: literal, never to be added (by any intermediary either).
            let (prefix, what) = match first {
                f if f & 0xc0 == 0x40 => (6, "added to the dynamic table"),
                f if f & 0xf0 == 0x10 => (4, "never to be indexed"),
                _ => (4, "not indexed"),
            };
            let (name_index, mut n) = integer(&block[pos..], prefix)?;
            let mut huffman = false;
            if name_index == 0 {
                let (length, h) = string(&block[pos + n..])?;
                n += length;
                huffman |= h;
            }
            let (length, h) = string(&block[pos + n..])?;
            n += length;
            huffman |= h;
            let name = match name_index {
                0 => "new name".to_string(),
                i if i <= STATIC_TABLE_LEN => format!("name static #{i}"),
                i => format!("name dynamic #{i}"),
            };
            let coded = if huffman { "Huffman-coded, " } else { "" };
            (n, Some((format!("HPACK literal, {name}"), format!("  [{coded}{what}]"))))
        };
        out.push((pos, len, how));
        pos += len;
    }
    Some(out)
}

/// Entries in HPACK's static table (RFC 7541 Appendix A).
const STATIC_TABLE_LEN: usize = 61;

/// An HPACK integer with an `prefix`-bit prefix (RFC 7541 §5.1): `(value, bytes)`.
fn integer(bytes: &[u8], prefix: u8) -> Option<(usize, usize)> {
    let max = (1usize << prefix) - 1;
    let first = (*bytes.first()? as usize) & max;
    if first < max {
        return Some((first, 1));
    }
    let mut value = max;
    // Five continuation bytes hold 35 bits: more is no header block anyone sends.
    for (i, &b) in bytes.iter().enumerate().skip(1).take(5) {
        value += ((b & 0x7f) as usize) << (7 * (i - 1));
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// An HPACK string (RFC 7541 §5.2): `(bytes it takes, Huffman-coded)`.
fn string(bytes: &[u8]) -> Option<(usize, bool)> {
    let huffman = *bytes.first()? & 0x80 != 0;
    let (length, n) = integer(bytes, 7)?;
    let total = n.checked_add(length)?;
    (total <= bytes.len()).then_some((total, huffman))
}

/// Remembers what a stream carries from its decoded header fields.
fn learn(carries: &mut HashMap<u32, Carries>, direction: Direction, stream: u32, fields: &[String]) {
    let has = |prefix: &str| fields.iter().any(|f| f.to_ascii_lowercase().starts_with(prefix));
    if direction == Direction::Up && has(":protocol: websocket") {
        carries.insert(stream, Carries::WebSocket);
    } else if has("content-type: text/event-stream")
        || (direction == Direction::Up && has("accept: text/event-stream"))
    {
        carries.insert(stream, Carries::EventStream);
    } else {
        carries.entry(stream).or_insert(Carries::Body);
    }
}

fn frame_name(frame_type: u8) -> String {
    match frame_type {
        0 => "DATA".into(),
        1 => "HEADERS".into(),
        2 => "PRIORITY".into(),
        3 => "RST_STREAM".into(),
        4 => "SETTINGS".into(),
        5 => "PUSH_PROMISE".into(),
        6 => "PING".into(),
        7 => "GOAWAY".into(),
        8 => "WINDOW_UPDATE".into(),
        9 => "CONTINUATION".into(),
        other => format!("unknown type 0x{other:02x}"),
    }
}

fn flag_names(frame_type: u8, flags: u8) -> String {
    let known: &[(u8, &str)] = match frame_type {
        0 => &[(0x1, "END_STREAM"), (0x8, "PADDED")],
        1 => &[(0x1, "END_STREAM"), (0x4, "END_HEADERS"), (0x8, "PADDED"), (0x20, "PRIORITY")],
        4 | 6 => &[(0x1, "ACK")],
        5 | 9 => &[(0x4, "END_HEADERS"), (0x8, "PADDED")],
        _ => &[],
    };
    let mut names: Vec<String> =
        known.iter().filter(|(bit, _)| flags & bit != 0).map(|(_, n)| n.to_string()).collect();
    let unknown = flags & !known.iter().fold(0, |all, (bit, _)| all | bit);
    if unknown != 0 {
        names.push(format!("0x{unknown:02x}"));
    }
    names.join("|")
}

fn setting_name(id: u16) -> String {
    match id {
        1 => "HEADER_TABLE_SIZE".into(),
        2 => "ENABLE_PUSH".into(),
        3 => "MAX_CONCURRENT_STREAMS".into(),
        4 => "INITIAL_WINDOW_SIZE".into(),
        5 => "MAX_FRAME_SIZE".into(),
        6 => "MAX_HEADER_LIST_SIZE".into(),
        8 => "ENABLE_CONNECT_PROTOCOL".into(),
        9 => "NO_RFC7540_PRIORITIES".into(),
        other => format!("setting 0x{other:04x}"),
    }
}

/// The payload of a frame other than DATA, HEADERS, CONTINUATION and SETTINGS, in words.
fn control_payload(frame_type: u8, payload: &[u8]) -> String {
    let u32_at = |at: usize| payload.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    match (frame_type, payload.len()) {
        (3, 4) => format!("error code {}", error_name(u32_at(0).unwrap_or(0))),
        (6, 8) => "opaque data, echoed in the ACK".into(),
        (7, n) if n >= 8 => format!(
            "last stream {}, error {}{}",
            u32_at(0).unwrap_or(0) & 0x7fff_ffff,
            error_name(u32_at(4).unwrap_or(0)),
            if n > 8 { format!(", {} B of debug data", n - 8) } else { String::new() }
        ),
        (8, 4) => format!("window grows by {} B", u32_at(0).unwrap_or(0) & 0x7fff_ffff),
        (2, 5) => "priority (deprecated)".into(),
        (5, _) => "server push (refused by clients here)".into(),
        (3 | 6 | 7 | 8 | 2, n) => format!("{n} B: wrong length (a protocol error)"),
        (_, n) => format!("{n} B of an unknown frame type (ignored)"),
    }
}

fn error_name(code: u32) -> String {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    NAMES.get(code as usize).map_or_else(|| format!("0x{code:x}"), |n| n.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(frame_type: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        out.extend([frame_type, flags]);
        out.extend(stream.to_be_bytes());
        out.extend(payload);
        out
    }

    fn total(parts: &[Part]) -> usize {
        parts.iter().map(|p| p.bytes.len()).sum()
    }

    #[test]
    fn a_preface_settings_and_a_request_decode_with_every_byte_counted() {
        let mut wire = PREFACE.to_vec();
        // ENABLE_PUSH = 0, INITIAL_WINDOW_SIZE = 65535.
        wire.extend(frame(4, 0, 0, &[0, 2, 0, 0, 0, 0, 0, 4, 0, 0, 0xff, 0xff]));
        // :method GET (static 2), :scheme http (6), :path / (4), then a literal
        // `user-agent: pushlab` added to the table (name static #58), not Huffman.
        let mut block = vec![0x82, 0x86, 0x84, 0x40 | 58, 7];
        block.extend(b"pushlab");
        wire.extend(frame(1, 0x5, 1, &block));
        // The same request again: the user-agent is now dynamic table entry 62.
        wire.extend(frame(1, 0x5, 3, &[0x82, 0x86, 0x84, 0x80 | 62]));
        wire.extend(frame(8, 0, 0, &1000u32.to_be_bytes()));
        let mut connection = Connection::default();
        let parts = decode(&wire, Direction::Up, &mut connection);
        assert_eq!(total(&parts), wire.len());
        let labels: Vec<&str> = parts.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels[0], "HTTP/2 client preface");
        assert!(
            labels.contains(&"ENABLE_PUSH = 0") && labels.contains(&"INITIAL_WINDOW_SIZE = 65535"),
            "{labels:?}"
        );
        assert!(labels.contains(&"HPACK literal, name static #58"), "{labels:?}");
        assert!(labels.contains(&"HPACK indexed: dynamic #62"), "{labels:?}");
        assert!(labels.contains(&"window grows by 1000 B"), "{labels:?}");
        let shown: Vec<&str> = parts.iter().filter_map(|p| p.shown.as_deref()).collect();
        assert!(shown.contains(&"user-agent: pushlab  [added to the dynamic table]"), "{shown:?}");
        assert!(shown.contains(&"user-agent: pushlab"), "{shown:?}");
        let sizes: Vec<usize> = connection.header_blocks.iter().map(|b| b.hpack_bytes).collect();
        assert_eq!(sizes, [block.len(), 4]);
        assert!(labels.contains(&"HEADERS frame, stream 3, HPACK 4 B"), "{labels:?}");
    }

    #[test]
    fn data_carries_sse_fields_and_websocket_frames_nested_and_split_across_frames() {
        let mut connection = Connection::default();
        // Client: a GET that accepts an event stream (literal `accept`, name static #19)
        // on stream 1, an extended CONNECT for a WebSocket on stream 3.
        // `accept` is static #19: more than a 4-bit prefix holds, so 0x0f then 19 - 15.
        let mut sse = vec![0x82, 0x0f, 19 - 15, 17];
        sse.extend(b"text/event-stream");
        let mut up = PREFACE.to_vec();
        up.extend(frame(1, 0x4, 1, &sse));
        let mut connect = vec![0x00, 9];
        connect.extend(b":protocol");
        connect.push(9);
        connect.extend(b"websocket");
        up.extend(frame(1, 0x4, 3, &connect));
        // A masked client text frame "hi", key 0.
        up.extend(frame(0, 0, 3, &[0x81, 0x82, 0, 0, 0, 0, b'h', b'i']));
        let up_parts = decode(&up, Direction::Up, &mut connection);
        assert_eq!(total(&up_parts), up.len());
        assert!(
            up_parts.iter().any(|p| p.label.starts_with("frame header: FIN, text, masked")),
            "{up_parts:#?}"
        );

        // Server: an SSE event split over two DATA frames; the second padded.
        let event = b"id: 1\ndata: {\"id\":1}\n\n";
        let mut down = frame(1, 0x4, 1, &[0x88]);
        down.extend(frame(0, 0, 1, &event[..15]));
        let mut padded = vec![2];
        padded.extend(&event[15..]);
        padded.extend([0, 0]);
        down.extend(frame(0, 0x8, 1, &padded));
        down.extend(frame(7, 0, 0, &[0, 0, 0, 3, 0, 0, 0, 0]));
        let parts = decode(&down, Direction::Down, &mut connection);
        assert_eq!(total(&parts), down.len());
        let json: Vec<&Part> = parts.iter().filter(|p| p.label.starts_with("the message JSON")).collect();
        assert_eq!(json.iter().flat_map(|p| p.bytes.clone()).collect::<Vec<u8>>(), br#"{"id":1}"#);
        assert_eq!(json.len(), 2, "split at the frame boundary: {parts:#?}");
        assert!(parts.iter().any(|p| p.label == "padding" && p.bytes == [0, 0]));
        assert!(parts.iter().any(|p| p.label == "last stream 3, error NO_ERROR"));
        assert!(parts.iter().all(|p| p.depth <= 1));
    }

    #[test]
    fn truncated_and_garbage_input_decodes_without_panicking_and_keeps_every_byte() {
        let mut request = PREFACE.to_vec();
        request.extend(frame(1, 0x5, 1, &[0x82, 0x86, 0x84]));
        for cut in 0..request.len() {
            let mut connection = Connection::default();
            let parts = decode(&request[..cut], Direction::Up, &mut connection);
            assert_eq!(total(&parts), cut, "cut at {cut}");
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for round in 0..300 {
            let len = round % 97;
            let garbage: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            for direction in [Direction::Up, Direction::Down] {
                let mut connection = Connection::default();
                assert_eq!(total(&decode(&garbage, direction, &mut connection)), len);
            }
            // A HEADERS frame whose block is garbage: still every byte, no panic.
            let wire = frame(1, 0x4, 1, &garbage);
            let mut connection = Connection::default();
            assert_eq!(total(&decode(&wire, Direction::Down, &mut connection)), wire.len());
        }
    }

    #[test]
    fn hpack_integers_follow_rfc_7541_c_1() {
        // C.1.1: 10 in a 5-bit prefix; C.1.2: 1337 in a 5-bit prefix.
        assert_eq!(integer(&[0x0a], 5), Some((10, 1)));
        assert_eq!(integer(&[0x1f, 0x9a, 0x0a], 5), Some((1337, 3)));
        assert_eq!(integer(&[0x1f, 0x9a], 5), None);
        assert_eq!(integer(&[], 5), None);
        assert_eq!(string(&[0x83, 1, 2, 3]), Some((4, true)));
        assert_eq!(string(&[0x03, 1, 2]), None);
    }
}
