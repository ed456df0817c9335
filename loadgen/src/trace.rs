//! `pushlab trace`: every byte one client exchanges with the server, annotated.
//!
//! A client of the chosen transport follows a fresh server through a recording relay
//! while a few messages are published. Each direction's bytes are then decoded — HTTP
//! request and status lines, headers, chunk sizes, SSE fields, WebSocket frame headers
//! and masks — into parts, and the parts of both directions are printed in the order
//! their first byte crossed the socket. Every byte belongs to exactly one part, so the
//! totals are the wire totals.
//!
//! With `--http 2` the bytes are HTTP/2 frames ([`http2`]), and the same bodies, SSE
//! fields and WebSocket frames are shown inside the DATA frames that carry them. With
//! `--tls` the socket carries TLS records ([`tls`]); the client's HTTP layer records the
//! plaintext above TLS itself (a tap on its `LayerCountingStream`, `wire.rs`), and the
//! HTTP parts are shown inside the records that carried them, each record with the
//! bytes TLS added to it.

pub mod http2;
pub mod tls;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pushlab_protocol::Transport;

use crate::client::tls::HttpVersion;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// Which way bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client → server.
    Up,
    /// Server → client.
    Down,
}

/// What a part is, for the totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Request or status line, headers, the blank line.
    HttpHead,
    /// Chunked encoding: sizes and CRLFs.
    ChunkFraming,
    /// SSE field names, `retry:`, comments, line ends.
    SseFraming,
    /// WebSocket frame headers (and client masks).
    WsFraming,
    /// HTTP/2: the client preface, frame headers (9 B each), padding.
    H2Framing,
    /// HTTP/2: the payloads of SETTINGS, WINDOW_UPDATE, PING, RST_STREAM, GOAWAY.
    H2Control,
    /// HTTP/2: header blocks, HPACK-encoded.
    Hpack,
    /// The message JSON, and bodies of poll responses.
    Payload,
    /// TLS: record headers, and each encrypted record's inner content type and tag.
    TlsFraming,
    /// TLS: handshake messages (hellos, certificate, finished, session tickets),
    /// change_cipher_spec, alerts.
    TlsHandshake,
    /// TLS: records that could not be decrypted.
    TlsOpaque,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::HttpHead => "HTTP request/status lines and headers",
            Kind::ChunkFraming => "chunked-encoding framing",
            Kind::SseFraming => "SSE field names, comments, line ends",
            Kind::WsFraming => "WebSocket frame headers and masks",
            Kind::H2Framing => "HTTP/2 preface, frame headers, padding",
            Kind::H2Control => "HTTP/2 SETTINGS, WINDOW_UPDATE, PING, … payloads",
            Kind::Hpack => "HTTP/2 header blocks (HPACK)",
            Kind::Payload => "bodies and message JSON",
            Kind::TlsFraming => "TLS record headers, inner types, AEAD tags",
            Kind::TlsHandshake => "TLS handshake, change_cipher_spec, alerts",
            Kind::TlsOpaque => "TLS records not decrypted",
        }
    }
}

/// One annotated run of bytes.
#[derive(Debug, Clone)]
pub struct Part {
    /// Direction.
    pub direction: Direction,
    /// Offset in that direction's stream.
    pub offset: usize,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// What they are.
    pub label: String,
    /// For the totals.
    pub kind: Kind,
    /// How deep it is nested: 0 for what is directly on the wire; 1 inside an HTTP/2
    /// frame or a TLS record; 2 inside a frame inside a record.
    pub depth: usize,
    /// What to print instead of the bytes (decoded header fields, a frame's flags).
    pub shown: Option<String>,
}

/// The bytes each direction carried, with the time each chunk arrived.
#[derive(Debug, Default)]
pub struct Recording {
    /// `(time since start, direction, bytes)` in arrival order.
    pub chunks: Vec<(Duration, Direction, Vec<u8>)>,
    /// For each chunk, which TCP connection through the relay carried it (0, 1, …).
    pub connection_of: Vec<usize>,
    /// When the relay cut a connection on purpose (`--drop-after`).
    pub drops: Vec<Duration>,
    /// Other moments worth showing: a message published while the client was away.
    pub notes: Vec<(Duration, String)>,
    /// The HTTP version the client spoke.
    pub http_version: HttpVersion,
    /// With TLS: the plaintext above TLS, as the client's HTTP layer read and wrote it
    /// (its tap), on the same clock and with the same connection numbers.
    pub plaintext: Option<Box<Recording>>,
    /// With TLS: the client's session secrets, to decrypt the records with.
    pub key_log: Vec<tls::Secret>,
    /// The client's HTTP-layer counter at the end, `(read, written)`: what the plaintext
    /// must add up to.
    pub layer_counted: Option<(u64, u64)>,
}

impl Recording {
    /// Every byte that went one way, in order.
    pub fn stream(&self, direction: Direction) -> Vec<u8> {
        self.chunks.iter().filter(|c| c.1 == direction).flat_map(|c| c.2.clone()).collect()
    }

    /// Every byte that went one way on one connection, in order.
    pub fn stream_of(&self, connection: usize, direction: Direction) -> Vec<u8> {
        self.chunks
            .iter()
            .enumerate()
            .filter(|(i, c)| c.1 == direction && self.connection(*i) == connection)
            .flat_map(|(_, c)| c.2.clone())
            .collect()
    }

    /// The connections, in the order they were opened.
    pub fn connections(&self) -> Vec<usize> {
        let mut all: Vec<usize> = (0..self.chunks.len()).map(|i| self.connection(i)).collect();
        all.sort();
        all.dedup();
        all
    }

    fn connection(&self, chunk: usize) -> usize {
        self.connection_of.get(chunk).copied().unwrap_or(0)
    }

    /// When byte `offset` of `direction` on `connection` crossed.
    fn time_of(&self, connection: usize, direction: Direction, offset: usize) -> Duration {
        let mut seen = 0;
        for (i, (time, d, bytes)) in self.chunks.iter().enumerate() {
            if *d != direction || self.connection(i) != connection {
                continue;
            }
            seen += bytes.len();
            if offset < seen {
                return *time;
            }
        }
        Duration::ZERO
    }
}

/// A relay that records what it forwards.
pub async fn recording_relay(
    server: std::net::SocketAddr,
) -> std::io::Result<(std::net::SocketAddr, Arc<Mutex<Recording>>, tokio::task::JoinHandle<()>)> {
    dropping_relay(server, None).await
}

/// [`recording_relay`] that, with `drop_after`, cuts the first connection that long
/// after it starts (both sockets closed mid-stream, like a network cut).
pub async fn dropping_relay(
    server: std::net::SocketAddr,
    drop_after: Option<Duration>,
) -> std::io::Result<(std::net::SocketAddr, Arc<Mutex<Recording>>, tokio::task::JoinHandle<()>)> {
    relay_from(server, drop_after, Instant::now()).await
}

/// [`dropping_relay`] whose times count from `start`: the clock the client's own
/// plaintext recording (with TLS) is on too.
async fn relay_from(
    server: std::net::SocketAddr,
    drop_after: Option<Duration>,
    start: Instant,
) -> std::io::Result<(std::net::SocketAddr, Arc<Mutex<Recording>>, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let recording = Arc::new(Mutex::new(Recording::default()));
    let rec = recording.clone();
    let task = tokio::spawn(async move {
        let mut pumps = tokio::task::JoinSet::new();
        let mut connection = 0;
        while let Ok((client, _)) = listener.accept().await {
            let Ok(upstream) = tokio::net::TcpStream::connect(server).await else { continue };
            let _ = (client.set_nodelay(true), upstream.set_nodelay(true));
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = upstream.into_split();
            let up =
                tokio::spawn(pump(client_read, server_write, Direction::Up, rec.clone(), start, connection));
            let down = tokio::spawn(pump(
                server_read,
                client_write,
                Direction::Down,
                rec.clone(),
                start,
                connection,
            ));
            let (cut, rec) = (if connection == 0 { drop_after } else { None }, rec.clone());
            pumps.spawn(async move {
                if let Some(after) = cut {
                    tokio::time::sleep_until(start + after).await;
                    // Aborting the pumps drops both sockets' halves: closed mid-stream.
                    up.abort();
                    down.abort();
                    if let Ok(mut r) = rec.lock() {
                        r.drops.push(start.elapsed());
                    }
                } else {
                    let _ = tokio::join!(up, down);
                }
            });
            connection += 1;
        }
    });
    Ok((addr, recording, task))
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    direction: Direction,
    recording: Arc<Mutex<Recording>>,
    start: Instant,
    connection: usize,
) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if let Ok(mut r) = recording.lock() {
            r.chunks.push((start.elapsed(), direction, buf[..n].to_vec()));
            r.connection_of.push(connection);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

/// Splits one direction's stream into annotated parts.
pub fn decode(stream: &[u8], direction: Direction) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut pos = 0;
    let mut websocket = false;
    let push = |parts: &mut Vec<Part>, offset: usize, len: usize, label: String, kind: Kind| {
        parts.push(Part {
            direction,
            offset,
            bytes: stream[offset..offset + len].to_vec(),
            label,
            kind,
            depth: 0,
            shown: None,
        });
    };
    while pos < stream.len() {
        if websocket {
            // After the upgrade, the rest of the connection is WebSocket frames.
            websocket_frames(stream, pos, direction, &mut parts);
            break;
        }
        // An HTTP message head: start line, header lines, blank line.
        let Some(head_end) = find(&stream[pos..], b"\r\n\r\n").map(|i| pos + i + 4) else {
            push(
                &mut parts,
                pos,
                stream.len() - pos,
                "incomplete HTTP head (the trace ended)".into(),
                Kind::HttpHead,
            );
            break;
        };
        let head = String::from_utf8_lossy(&stream[pos..head_end]).to_string();
        let mut line_start = pos;
        let mut chunked = false;
        let mut content_length = 0usize;
        let mut event_stream = false;
        for (i, line) in head.split_inclusive("\r\n").enumerate() {
            let label = if i == 0 {
                if direction == Direction::Up { "request line" } else { "status line" }.to_string()
            } else if line == "\r\n" {
                "blank line: end of the head".to_string()
            } else {
                "header".to_string()
            };
            let lower = line.to_ascii_lowercase();
            chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
            event_stream |= lower.starts_with("content-type:") && lower.contains("text/event-stream");
            websocket |= (i == 0 && lower.contains(" 101 "))
                || (direction == Direction::Up && lower.starts_with("upgrade: websocket"));
            if let Some(value) = lower.strip_prefix("content-length:") {
                content_length = value.trim().parse().unwrap_or(0);
            }
            push(&mut parts, line_start, line.len(), label, Kind::HttpHead);
            line_start += line.len();
        }
        pos = head_end;
        if websocket {
            continue;
        }
        if chunked {
            while pos < stream.len() {
                let Some(line_end) = find(&stream[pos..], b"\r\n").map(|i| pos + i + 2) else { break };
                let size_text = String::from_utf8_lossy(&stream[pos..line_end - 2]).to_string();
                let size = usize::from_str_radix(size_text.trim(), 16).unwrap_or(0);
                push(
                    &mut parts,
                    pos,
                    line_end - pos,
                    format!("chunk size: 0x{} = {size} B follow", size_text.trim()),
                    Kind::ChunkFraming,
                );
                pos = line_end;
                let end = (pos + size).min(stream.len());
                if event_stream {
                    sse_lines(stream, pos, end, direction, &mut parts);
                } else if end > pos {
                    push(&mut parts, pos, end - pos, "body".into(), Kind::Payload);
                }
                pos = end;
                let crlf = 2.min(stream.len() - pos);
                if crlf > 0 {
                    push(&mut parts, pos, crlf, "end of chunk".into(), Kind::ChunkFraming);
                }
                pos += crlf;
                if size == 0 {
                    break;
                }
            }
        } else if content_length > 0 {
            let end = (pos + content_length).min(stream.len());
            push(
                &mut parts,
                pos,
                end - pos,
                format!("body, {content_length} B (content-length)"),
                Kind::Payload,
            );
            pos = end;
        }
    }
    parts
}

/// WebSocket frames from `pos` to the end of `stream`: each frame's header, the client's
/// masking key, and the payload (shown unmasked).
fn websocket_frames(stream: &[u8], mut pos: usize, direction: Direction, parts: &mut Vec<Part>) {
    let push = |parts: &mut Vec<Part>, offset: usize, len: usize, label: String, kind: Kind| {
        parts.push(Part {
            direction,
            offset,
            bytes: stream[offset..offset + len].to_vec(),
            label,
            kind,
            depth: 0,
            shown: None,
        });
    };
    while pos < stream.len() {
        match ws_frame(&stream[pos..]) {
            Some((header_len, mask_len, payload_len, description)) => {
                push(
                    parts,
                    pos,
                    header_len - mask_len,
                    format!("frame header: {description}"),
                    Kind::WsFraming,
                );
                if mask_len > 0 {
                    push(
                        parts,
                        pos + header_len - mask_len,
                        mask_len,
                        "masking key (client → server)".into(),
                        Kind::WsFraming,
                    );
                }
                let payload = &stream[pos + header_len..pos + header_len + payload_len];
                let key = &stream[pos + header_len - mask_len..pos + header_len];
                let text: Vec<u8> = payload
                    .iter()
                    .enumerate()
                    .map(|(i, b)| if mask_len > 0 { b ^ key[i % 4] } else { *b })
                    .collect();
                parts.push(Part {
                    direction,
                    offset: pos + header_len,
                    bytes: text,
                    label: format!(
                        "payload, {payload_len} B{}",
                        if mask_len > 0 { " (shown unmasked)" } else { "" }
                    ),
                    kind: Kind::Payload,
                    depth: 0,
                    shown: None,
                });
                pos += header_len + payload_len;
            }
            None => {
                push(
                    parts,
                    pos,
                    stream.len() - pos,
                    "incomplete frame (the trace ended)".into(),
                    Kind::WsFraming,
                );
                break;
            }
        }
    }
}

/// Puts parts decoded from a stream carried in pieces (a body in DATA frames, HTTP in
/// TLS records) back where the pieces are: `segments` are `(offset in the outer stream,
/// offset in the inner one, length)`. A part that spans two pieces is split in two, the
/// second marked as continued; each goes `deeper` levels below what carries it.
fn place(inner: Vec<Part>, segments: &[(usize, usize, usize)], deeper: usize) -> Vec<Part> {
    let mut placed = Vec::new();
    for part in inner {
        let (from, to) = (part.offset, part.offset + part.bytes.len());
        let mut first = true;
        for &(outer, start, len) in segments {
            let (lo, hi) = (from.max(start), to.min(start + len));
            if lo >= hi {
                continue;
            }
            let label = if first { part.label.clone() } else { format!("{} (continued)", part.label) };
            placed.push(Part {
                direction: part.direction,
                offset: outer + lo - start,
                bytes: part.bytes[lo - from..hi - from].to_vec(),
                label,
                kind: part.kind,
                depth: part.depth + deeper,
                shown: if first { part.shown.clone() } else { None },
            });
            first = false;
        }
    }
    placed
}

fn sse_lines(stream: &[u8], mut pos: usize, end: usize, direction: Direction, parts: &mut Vec<Part>) {
    while pos < end {
        let line_end = find(&stream[pos..end], b"\n").map(|i| pos + i + 1).unwrap_or(end);
        let line = &stream[pos..line_end];
        let text = String::from_utf8_lossy(line);
        let mut push = |from: usize, to: usize, label: &str, kind: Kind| {
            parts.push(Part {
                direction,
                offset: from,
                bytes: stream[from..to].to_vec(),
                label: label.into(),
                kind,
                depth: 0,
                shown: None,
            });
        };
        if let Some(data) = text.strip_prefix("data: ") {
            let json_len = data.trim_end_matches('\n').len();
            push(pos, pos + 6, "SSE field name `data: `", Kind::SseFraming);
            push(pos + 6, pos + 6 + json_len, "the message JSON", Kind::Payload);
            push(pos + 6 + json_len, line_end, "line end", Kind::SseFraming);
        } else if text == "\n" {
            push(pos, line_end, "blank line: end of the event", Kind::SseFraming);
        } else if text.starts_with(':') {
            push(pos, line_end, "comment (keep-alive)", Kind::SseFraming);
        } else {
            let field = text.split(':').next().unwrap_or("").to_string();
            push(pos, line_end, &format!("SSE field `{field}`"), Kind::SseFraming);
        }
        pos = line_end;
    }
}

/// Parses a frame header (RFC 6455 §5.2): `(header length incl. mask, mask length,
/// payload length, description)`, or `None` if the frame is incomplete.
fn ws_frame(bytes: &[u8]) -> Option<(usize, usize, usize, String)> {
    if bytes.len() < 2 {
        return None;
    }
    let fin = bytes[0] & 0x80 != 0;
    let opcode = match bytes[0] & 0x0f {
        0 => "continuation",
        1 => "text",
        2 => "binary",
        8 => "close",
        9 => "ping",
        10 => "pong",
        _ => "reserved",
    };
    let masked = bytes[1] & 0x80 != 0;
    let (len, mut header): (usize, usize) = match bytes[1] & 0x7f {
        126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
        127 if bytes.len() >= 10 => (u64::from_be_bytes(bytes[2..10].try_into().ok()?) as usize, 10),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    let description = format!(
        "{}{opcode}, {}, len {len}",
        if fin { "FIN, " } else { "" },
        if masked { "masked" } else { "unmasked" }
    );
    let mask = if masked { 4 } else { 0 };
    header += mask;
    (bytes.len() >= header.checked_add(len)?).then_some((header, mask, len, description))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A recording decoded: every part on the wire, and what the HTTP/2 and TLS decoders
/// learnt on the way.
#[derive(Debug, Default)]
pub struct Decoded {
    /// `(connection, part)` of both directions, in the order their first byte crossed.
    pub parts: Vec<(usize, Part)>,
    /// HTTP/2: every header block, with its connection, in the order sent.
    pub header_blocks: Vec<(usize, http2::HeaderBlock)>,
    /// TLS: what it added, per connection and direction.
    pub overhead: Vec<(usize, Direction, tls::Overhead)>,
    /// What did not add up: records that could not be decrypted, plaintext that differs
    /// from what the client recorded.
    pub warnings: Vec<String>,
}

/// Decodes every connection of a recording, both directions: HTTP/1.1 or HTTP/2 on the
/// socket, or inside TLS records.
pub fn decode_recording(recording: &Recording) -> Decoded {
    let mut decoded = Decoded::default();
    // Where the HTTP bytes are: on the socket, or with TLS as the client recorded them.
    let http_source = recording.plaintext.as_deref().unwrap_or(recording);
    for connection in recording.connections() {
        let streams = [Direction::Up, Direction::Down].map(|d| http_source.stream_of(connection, d));
        let mut http_parts = match recording.http_version {
            HttpVersion::Http1 => [decode(&streams[0], Direction::Up), decode(&streams[1], Direction::Down)],
            HttpVersion::Http2 => {
                // The client's side first: its requests say what each stream carries.
                let mut context = http2::Connection::default();
                let up = http2::decode(&streams[0], Direction::Up, &mut context);
                let down = http2::decode(&streams[1], Direction::Down, &mut context);
                decoded.header_blocks.extend(context.header_blocks.into_iter().map(|b| (connection, b)));
                [up, down]
            }
        };
        if recording.plaintext.is_none() {
            for parts in http_parts {
                decoded.parts.extend(parts.into_iter().map(|p| (connection, p)));
            }
            continue;
        }
        let wire = [Direction::Up, Direction::Down].map(|d| recording.stream_of(connection, d));
        for (i, direction) in [Direction::Up, Direction::Down].into_iter().enumerate() {
            let secrets = tls::secrets(&wire[0], &wire[1], &recording.key_log, direction);
            let decrypted = secrets.is_some();
            let http = std::mem::take(&mut http_parts[i]);
            let (parts, plaintext, overhead) = tls::decode(&wire[i], direction, secrets, http);
            let way = if direction == Direction::Up { "client → server" } else { "server → client" };
            if !decrypted && !wire[i].is_empty() {
                decoded.warnings.push(format!(
                    "connection {}, {way}: no TLS 1.3 secrets for it, its records are not decrypted",
                    connection + 1
                ));
            } else if plaintext != streams[i] {
                decoded.warnings.push(format!(
                    "connection {}, {way}: the records hold {} B of HTTP, the client recorded {} B",
                    connection + 1,
                    plaintext.len(),
                    streams[i].len()
                ));
            }
            decoded.parts.extend(parts.into_iter().map(|p| (connection, p)));
            decoded.overhead.push((connection, direction, overhead));
        }
    }
    let time = |(c, p): &(usize, Part)| recording.time_of(*c, p.direction, p.offset);
    decoded.parts.sort_by_key(|cp| (time(cp), cp.0, cp.1.direction == Direction::Down, cp.1.offset));
    decoded
}

/// Cleartext HTTP/1.1: what `pushlab trace` printed before HTTP/2 and TLS, and prints the same.
fn is_plain_http1(recording: &Recording) -> bool {
    recording.http_version == HttpVersion::Http1 && recording.plaintext.is_none()
}

/// What carries the HTTP, in words: "HTTP/2 over TLS".
fn protocol_name(recording: &Recording) -> String {
    match (recording.http_version, recording.plaintext.is_some()) {
        (HttpVersion::Http1, false) => "HTTP/1.1".into(),
        (HttpVersion::Http1, true) => "HTTP/1.1 over TLS".into(),
        (HttpVersion::Http2, false) => "HTTP/2 in cleartext (prior knowledge)".into(),
        (HttpVersion::Http2, true) => "HTTP/2 over TLS".into(),
    }
}

/// Up to 24 bytes in hex; longer runs (certificates) cut short, with their length.
fn hex_preview(bytes: &[u8]) -> String {
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
    if bytes.len() <= 24 {
        hex(bytes)
    } else {
        format!("{} … ({} B more)", hex(&bytes[..16]), bytes.len() - 16)
    }
}

/// Renders the parts of both directions in time order, then the totals.
pub fn render(transport: Transport, recording: &Recording) -> String {
    let decoded = decode_recording(recording);
    let parts = decoded.parts;
    let time = |(c, p): &(usize, Part)| recording.time_of(*c, p.direction, p.offset);
    let mut out = if is_plain_http1(recording) {
        format!(
            "pushlab trace: {transport}. → client to server, ← server to client; every byte is shown once.\n\n"
        )
    } else {
        format!(
            "pushlab trace: {transport}, {}. → client to server, ← server to client; every byte on the wire is \
             shown once, what a frame{} carries indented below it.\n\n",
            protocol_name(recording),
            if recording.plaintext.is_some() { " or a TLS record" } else { "" }
        )
    };
    // Nested frames and records need a wider label column than HTTP/1.1's lines.
    let label_width = if is_plain_http1(recording) { 36 } else { 42 };
    let mut drops = recording.drops.iter().peekable();
    let mut notes = recording.notes.iter().peekable();
    let mut connection = 0;
    for cp in &parts {
        while let Some(drop) = drops.next_if(|d| **d <= time(cp)) {
            let _ = writeln!(
                out,
                "{:>9.3} ms ✕ the relay cut the connection (--drop-after)",
                drop.as_secs_f64() * 1e3
            );
        }
        while let Some((when, note)) = notes.next_if(|n| n.0 <= time(cp)) {
            let _ = writeln!(out, "{:>9.3} ms · {note}", when.as_secs_f64() * 1e3);
        }
        if cp.0 != connection {
            connection = cp.0;
            let _ = writeln!(
                out,
                "{:>9.3} ms · connection {} (a new TCP connection)",
                time(cp).as_secs_f64() * 1e3,
                connection + 1
            );
        }
        let part = &cp.1;
        let arrow = if part.direction == Direction::Up { "→" } else { "←" };
        let shown = match (&part.shown, part.kind) {
            (Some(shown), _) => shown.clone(),
            (None, Kind::WsFraming | Kind::H2Framing | Kind::H2Control | Kind::Hpack | Kind::TlsFraming) => {
                part.bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
            }
            (None, Kind::TlsHandshake | Kind::TlsOpaque) => hex_preview(&part.bytes),
            // Line ends made visible; everything else as it is.
            (None, _) => String::from_utf8_lossy(&part.bytes).replace('\r', "\\r").replace('\n', "\\n"),
        };
        let label = format!("{}{}", "  ".repeat(part.depth), part.label);
        // Every byte is printed: long parts continue on the following lines.
        let chars: Vec<char> = shown.chars().collect();
        let mut lines = chars.chunks(72).map(|c| c.iter().collect::<String>());
        let first = lines.next().unwrap_or_default();
        let _ = writeln!(
            out,
            "{:>9.3} ms {arrow} {:>5} B  {label:<label_width$} {first}",
            time(cp).as_secs_f64() * 1e3,
            part.bytes.len(),
        );
        for more in lines {
            let _ = writeln!(out, "{:>width$} {more}", "", width = label_width + 24);
        }
    }
    for drop in drops {
        let _ = writeln!(
            out,
            "{:>9.3} ms ✕ the relay cut the connection (--drop-after)",
            drop.as_secs_f64() * 1e3
        );
    }
    let parts: Vec<Part> = parts.into_iter().map(|(_, p)| p).collect();
    for (direction, name) in [(Direction::Up, "client → server"), (Direction::Down, "server → client")] {
        let total: usize = parts.iter().filter(|p| p.direction == direction).map(|p| p.bytes.len()).sum();
        let _ = writeln!(out, "\n{name}: {total} B");
        let mut kinds: Vec<Kind> =
            parts.iter().filter(|p| p.direction == direction).map(|p| p.kind).collect();
        kinds.sort();
        kinds.dedup();
        for kind in kinds {
            let bytes: usize = parts
                .iter()
                .filter(|p| p.direction == direction && p.kind == kind)
                .map(|p| p.bytes.len())
                .sum();
            let _ = writeln!(out, "  {bytes:>6} B  {}", kind.name());
        }
    }
    if !decoded.header_blocks.is_empty() {
        out.push_str(
            "\nHTTP/2 header blocks, HPACK-encoded, beside the same fields as text (`name: value\\r\\n`): a field \
             sent before on the connection is one byte, its index in HPACK's dynamic table.\n",
        );
        for (connection, block) in &decoded.header_blocks {
            let arrow = if block.direction == Direction::Up { "→" } else { "←" };
            let _ = writeln!(
                out,
                "  {arrow} connection {}, stream {:>3}: {:>4} B HPACK, {:>4} B as text",
                connection + 1,
                block.stream,
                block.hpack_bytes,
                block.plain_bytes
            );
        }
    }
    for (direction, name) in [(Direction::Up, "client → server"), (Direction::Down, "server → client")] {
        let mut sum = tls::Overhead::default();
        for (_, _, o) in decoded.overhead.iter().filter(|o| o.1 == direction) {
            sum.wire_bytes += o.wire_bytes;
            sum.http_bytes += o.http_bytes;
            sum.http_records += o.http_records;
            sum.http_record_framing += o.http_record_framing;
            sum.other_records += o.other_records;
            sum.other_record_bytes += o.other_record_bytes;
            sum.sealed_bytes += o.sealed_bytes;
        }
        if decoded.overhead.is_empty() {
            break;
        }
        let counted = recording.layer_counted.map(|(read, written)| match direction {
            Direction::Up => written,
            Direction::Down => read,
        });
        let _ = writeln!(
            out,
            "\nTLS, {name}: {} B on the wire carried {} B of HTTP{}; TLS added {} B",
            sum.wire_bytes,
            sum.http_bytes,
            counted.map_or(String::new(), |c| format!(" (the client's HTTP layer counted {c} B)")),
            sum.wire_bytes - sum.http_bytes
        );
        let _ = writeln!(
            out,
            "  {:>6} B  {} records of the handshake, session tickets, change_cipher_spec, alerts (whole)",
            sum.other_record_bytes, sum.other_records
        );
        if sum.http_records > 0 {
            let _ = writeln!(
                out,
                "  {:>6} B  framing of the {} records that carried HTTP: {:.0} B each (5 B header, 1 B inner type, 16 B tag)",
                sum.http_record_framing,
                sum.http_records,
                sum.http_record_framing as f64 / sum.http_records as f64
            );
        }
        if sum.sealed_bytes > 0 {
            let _ = writeln!(out, "  {:>6} B  in records not decrypted", sum.sealed_bytes);
        }
    }
    for warning in &decoded.warnings {
        let _ = writeln!(out, "\nwarning: {warning}");
    }
    out
}

/// How `pushlab trace` reaches its server: the HTTP version, and whether over TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Protocol {
    /// `--http`.
    pub http: HttpVersion,
    /// `--tls`.
    pub tls: bool,
}

/// Runs one `transport` client against a fresh server (`server_exe serve`) through a
/// recording relay, publishes `messages` small messages, and returns the annotated trace.
pub async fn run(
    transport: Transport,
    server_exe: &std::path::Path,
    messages: u64,
) -> anyhow::Result<String> {
    Ok(render(transport, &record(transport, server_exe, messages, None).await?))
}

/// What [`run`] prints, as the recording itself: for [`render`] and [`svg`].
///
/// With `drop_after`, the relay cuts the client's connection that long after the start;
/// one more message is published while the client is away, and the trace goes on until
/// the client has reconnected, resumed from its cursor and received it.
pub async fn record(
    transport: Transport,
    server_exe: &std::path::Path,
    messages: u64,
    drop_after: Option<Duration>,
) -> anyhow::Result<Recording> {
    record_with(transport, server_exe, messages, drop_after, Protocol::default()).await
}

/// [`record`] over `protocol`: HTTP/2 (`--http 2`), TLS (`--tls`) or both. With TLS the
/// server gets a certificate made for this trace, the client trusts exactly that one
/// and logs its session secrets, and its HTTP layer records the plaintext above TLS.
pub async fn record_with(
    transport: Transport,
    server_exe: &std::path::Path,
    messages: u64,
    drop_after: Option<Duration>,
    protocol: Protocol,
) -> anyhow::Result<Recording> {
    use crate::client::http::HttpConnection;
    use crate::client::tls::{LabCertificate, TlsClient};
    use crate::client::{ClientSettings, Session, Target};
    let certificate = if protocol.tls { Some(LabCertificate::generate(&[])?) } else { None };
    let mut extra = Vec::new();
    if let Some(certificate) = &certificate {
        for (flag, path) in [("--cert", certificate.cert_path()), ("--key", certificate.key_path())] {
            extra.push(flag.to_string());
            extra.push(path.display().to_string());
        }
    }
    let server = crate::process::ServerProcess::spawn(server_exe, &extra).await?;
    let start = Instant::now();
    let (relay, recording, relay_task) = relay_from(server.addr, drop_after, start).await?;
    let key_log = Arc::new(tls::KeyLog::default());
    let tls_for = |host: &str, http: HttpVersion, key_log: Option<Arc<tls::KeyLog>>| -> anyhow::Result<_> {
        let Some(certificate) = &certificate else { return Ok(None) };
        let tls = TlsClient::new(&certificate.trust()?, http, host, 1)?;
        let Some(key_log) = key_log else { return Ok(Some(tls.without_resumption())) };
        let mut config = (*tls.config).clone();
        config.key_log = key_log;
        Ok(Some(TlsClient { config: Arc::new(config), ..tls }))
    };
    let target = Target {
        tls: tls_for(&relay.to_string(), protocol.http, Some(key_log.clone()))?,
        http: protocol.http,
        ..Target::new(relay)
    };
    // The publisher goes straight to the server, in HTTP/1.1: not part of the trace.
    let publisher_target = Target {
        tls: tls_for(&server.addr.to_string(), HttpVersion::Http1, None)?,
        ..Target::new(server.addr)
    };
    let settings = ClientSettings::plain(Duration::from_millis(300));
    let recorder = crate::record::Recorder::new(Default::default());
    let session = Session::new(target, settings, recorder, Instant::now());
    let tap = Arc::new(crate::wire::Tap::default());
    if protocol.tls {
        let _ = session.live.http.tap.set(tap.clone());
    }
    let (live, stop) = (session.live.clone(), session.stop.clone());
    let client = tokio::spawn(session.run(transport));
    let wait_for = |what: &'static str, done: Box<dyn Fn() -> bool + Send>| async move {
        for _ in 0..500 {
            if done() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        anyhow::bail!("trace: timed out waiting for {what}")
    };
    let requests = live.clone();
    wait_for(
        "the client to connect",
        Box::new(move || requests.requests.load(std::sync::atomic::Ordering::Relaxed) > 0),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let publisher_live = crate::record::Live::default();
    let mut publisher = HttpConnection::open(&publisher_target, &publisher_live).await?;
    async fn publish(
        publisher: &mut HttpConnection,
        live: &crate::record::Live,
        text: String,
    ) -> anyhow::Result<()> {
        let body = serde_json::json!({"type": "chat", "data": {"text": text}}).to_string();
        let (status, answer) = publisher.post_json(live, "/publish", body.into(), None).await?;
        anyhow::ensure!(status.is_success(), "publishing: {status}: {}", String::from_utf8_lossy(&answer));
        Ok(())
    }
    let mut published = messages;
    for i in 1..=messages {
        publish(&mut publisher, &publisher_live, format!("hello {i}")).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Some(after) = drop_after {
        // One more while the client is away: it must come with the resume.
        tokio::time::sleep_until(start + after + Duration::from_millis(30)).await;
        published += 1;
        publish(&mut publisher, &publisher_live, "hello while away".to_string()).await?;
        if let Ok(mut r) = recording.lock() {
            r.notes
                .push((start.elapsed(), format!("message {published} published while the client is away")));
        }
    }
    let delivered = live.clone();
    wait_for(
        "the messages to arrive",
        Box::new(move || delivered.messages.load(std::sync::atomic::Ordering::Relaxed) >= published),
    )
    .await?;
    // Let a poller send its next request, so the trace shows the cycle going on.
    tokio::time::sleep(Duration::from_millis(350)).await;
    stop.cancel();
    client.await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    relay_task.abort();
    drop(publisher);
    server.stop().await?;
    let mut recording = recording.lock().map_err(|_| anyhow::anyhow!("recording poisoned"))?;
    let mut recording = std::mem::take(&mut *recording);
    recording.http_version = protocol.http;
    recording.layer_counted = Some(live.http.snapshot());
    if protocol.tls {
        let mut plaintext = Recording::default();
        for chunk in tap.taken().chunks {
            let direction = if chunk.written { Direction::Up } else { Direction::Down };
            plaintext.chunks.push((chunk.at.saturating_duration_since(start), direction, chunk.bytes));
            plaintext.connection_of.push(chunk.connection);
        }
        recording.plaintext = Some(Box::new(plaintext));
        recording.key_log = key_log.secrets();
    }
    Ok(recording)
}

// ---------------------------------------------------------------------------------------
// The same recording as a sequence diagram (`pushlab trace --svg FILE`).

/// One arrow of the sequence diagram: the parts of one exchanged piece (a request head,
/// a response head and its body, one SSE event, one WebSocket frame).
#[derive(Debug, Clone, PartialEq)]
pub struct Arrow {
    /// When its first byte crossed.
    pub time: Duration,
    /// Which way.
    pub direction: Direction,
    /// What it is, with its size: `GET /poll?since=0 (106 B)`.
    pub label: String,
    /// Its bytes on the wire.
    pub bytes: usize,
}

/// Groups the parts of a recording into arrows, in the order they crossed.
pub fn arrows(recording: &Recording) -> Vec<Arrow> {
    if !is_plain_http1(recording) {
        return layered_arrows(recording);
    }
    let mut arrows = Vec::new();
    for (connection, direction) in
        recording.connections().into_iter().flat_map(|c| [(c, Direction::Up), (c, Direction::Down)])
    {
        let parts = decode(&recording.stream_of(connection, direction), direction);
        let mut i = 0;
        while i < parts.len() {
            let first = &parts[i];
            let mut end = i + 1;
            let text = |p: &Part| String::from_utf8_lossy(&p.bytes).trim_end().to_string();
            let label = if first.label == "request line" || first.label == "status line" {
                while end < parts.len() && parts[end - 1].label != "blank line: end of the head" {
                    end += 1;
                }
                let line = text(first);
                let mut label = if first.label == "request line" {
                    line.trim_end_matches(" HTTP/1.1").to_string()
                } else {
                    line.trim_start_matches("HTTP/1.1 ").to_string()
                };
                if end < parts.len() && parts[end].label.starts_with("body") {
                    label.push_str(&format!(" + body {} B", parts[end].bytes.len()));
                    end += 1;
                }
                label
            } else if first.label.starts_with("chunk size") {
                while end < parts.len() && parts[end - 1].label != "end of chunk" {
                    end += 1;
                }
                let inner = &parts[i + 1..end];
                let field = |name: &str| {
                    inner
                        .iter()
                        .find(|p| p.label == format!("SSE field `{name}`"))
                        .map(|p| text(p).trim_start_matches(&format!("{name}:")).trim().to_string())
                };
                if first.bytes.starts_with(b"0\r\n") {
                    "last chunk: end of the body".to_string()
                } else if let Some(id) = field("id") {
                    let retry = field("retry").map_or(String::new(), |r| format!("retry: {r} + "));
                    format!(
                        "SSE {retry}event {}, id {id}",
                        field("event").unwrap_or_else(|| "message".into())
                    )
                } else if let Some(retry) = field("retry") {
                    format!("SSE retry: {retry}")
                } else if let Some(event) = field("event") {
                    format!("SSE event {event}")
                } else if inner.iter().any(|p| p.label.starts_with("comment")) {
                    "SSE comment (keep-alive)".to_string()
                } else {
                    "chunk".to_string()
                }
            } else if let Some(header) = first.label.strip_prefix("frame header: ") {
                while end < parts.len() && parts[end - 1].kind != Kind::Payload {
                    end += 1;
                }
                let opcode = header.trim_start_matches("FIN, ").split(',').next().unwrap_or("");
                let payload = String::from_utf8_lossy(&parts[end - 1].bytes).to_string();
                let json: Option<serde_json::Value> = serde_json::from_str(&payload).ok();
                let kind = json.as_ref().and_then(|j| j.get("type")).and_then(|t| t.as_str());
                let id = json.as_ref().and_then(|j| j.get("id")).and_then(|t| t.as_u64());
                let masked = if header.contains(" masked") { ", masked" } else { "" };
                match (kind, id) {
                    (Some(kind), Some(id)) => format!("WS {opcode} frame: {kind}, id {id}{masked}"),
                    (Some(kind), None) => format!("WS {opcode} frame: {kind}{masked}"),
                    _ => format!("WS {opcode} frame{masked}"),
                }
            } else {
                first.label.clone()
            };
            let bytes = parts[i..end].iter().map(|p| p.bytes.len()).sum();
            arrows.push(Arrow {
                time: recording.time_of(connection, direction, first.offset),
                direction,
                label: format!("{label} ({bytes} B)"),
                bytes,
            });
            i = end;
        }
    }
    arrows.sort_by_key(|a| (a.time, a.direction == Direction::Down));
    arrows
}

/// Over HTTP/2 or TLS, one arrow per HTTP/2 frame or TLS record: what is directly on
/// the wire, named by its label and, for a record, by the first thing it carries.
fn layered_arrows(recording: &Recording) -> Vec<Arrow> {
    let mut arrows: Vec<Arrow> = Vec::new();
    let mut streams: Vec<((usize, bool), Vec<Part>)> = Vec::new();
    for (connection, part) in decode_recording(recording).parts {
        let key = (connection, part.direction == Direction::Down);
        match streams.iter_mut().find(|(k, _)| *k == key) {
            Some((_, parts)) => parts.push(part),
            None => streams.push((key, vec![part])),
        }
    }
    for ((connection, _), mut parts) in streams {
        parts.sort_by_key(|p| p.offset);
        let mut open: Option<(Arrow, bool)> = None;
        for part in parts {
            if part.depth == 0 || open.is_none() {
                arrows.extend(open.take().map(|(a, _)| a));
                let arrow = Arrow {
                    time: recording.time_of(connection, part.direction, part.offset),
                    direction: part.direction,
                    label: part.label.clone(),
                    bytes: 0,
                };
                open = Some((arrow, part.label.starts_with("TLS record")));
            }
            let Some((arrow, named_by_content)) = open.as_mut() else { continue };
            arrow.bytes += part.bytes.len();
            if *named_by_content && part.depth == 1 {
                let what = match part.label.as_str() {
                    "request line" | "status line" => {
                        String::from_utf8_lossy(&part.bytes).trim_end().to_string()
                    }
                    label => label.to_string(),
                };
                arrow.label = format!("{}: {what}", arrow.label);
                *named_by_content = false;
            }
        }
        arrows.extend(open.map(|(a, _)| a));
    }
    for arrow in &mut arrows {
        arrow.label = format!("{} ({} B)", arrow.label, arrow.bytes);
    }
    arrows.sort_by_key(|a| (a.time, a.direction == Direction::Down));
    arrows
}

/// A drawing element of the diagram.
#[derive(Debug, Clone, PartialEq)]
pub enum Element {
    /// A straight line; `class` styles it (`lifeline`, `up`, `down`, `gap`).
    Line { x1: f64, y1: f64, x2: f64, y2: f64, class: &'static str },
    /// Text; `anchor` is `start`, `middle` or `end`.
    Text { x: f64, y: f64, anchor: &'static str, class: &'static str, text: String },
    /// A path (the break marks on the lifelines).
    Path { d: String, class: &'static str },
}

/// The diagram: its size and what to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagram {
    pub width: f64,
    pub height: f64,
    pub elements: Vec<Element>,
}

const WIDTH: f64 = 900.0;
const CLIENT_X: f64 = 190.0;
const SERVER_X: f64 = 760.0;
const TOP: f64 = 96.0;
/// Pixels per millisecond for the gaps drawn to scale.
const PX_PER_MS: f64 = 1.2;
/// Gaps longer than this are drawn as a break of `BREAK_PX`.
const LONGEST_TO_SCALE_MS: f64 = 60.0;
const BREAK_PX: f64 = 44.0;
/// Arrows closer in time than this are still this far apart.
const MIN_STEP_PX: f64 = 26.0;

/// Lays the arrows out: time flows down, to scale up to 60 ms between arrows, longer
/// waits shortened to a marked break.
/// `marks` are moments drawn across both lifelines (a cut connection, a new one).
pub fn layout(transport: Transport, arrows: &[Arrow], marks: &[(Duration, String)]) -> Diagram {
    let mut elements = Vec::new();
    let text = |x: f64, y: f64, anchor: &'static str, class: &'static str, text: String| Element::Text {
        x,
        y,
        anchor,
        class,
        text,
    };
    elements.push(text(
        WIDTH / 2.0,
        24.0,
        "middle",
        "title",
        format!("pushlab trace --transport {transport}: one client, a fresh server"),
    ));
    elements.push(text(
        WIDTH / 2.0,
        42.0,
        "middle",
        "note",
        format!(
            "time flows down, {PX_PER_MS} px per ms; waits over {LONGEST_TO_SCALE_MS} ms are shortened (≈ marks, length written)"
        ),
    ));
    for (x, name) in [(CLIENT_X, "client"), (SERVER_X, "server")] {
        elements.push(text(x, 72.0, "middle", "actor", name.to_string()));
    }
    elements.push(text(CLIENT_X - 60.0, 72.0, "end", "actor", "time".to_string()));
    // The y of each arrow, and the breaks.
    let mut y = TOP;
    let mut previous: Option<Duration> = None;
    let mut breaks: Vec<(f64, f64, Duration)> = Vec::new();
    let mut ys = vec![0.0; arrows.len()];
    let mut mark_ys = vec![0.0; marks.len()];
    let mut items: Vec<(Duration, bool, usize)> =
        arrows.iter().enumerate().map(|(i, a)| (a.time, true, i)).collect();
    items.extend(marks.iter().enumerate().map(|(i, m)| (m.0, false, i)));
    items.sort_by_key(|a| (a.0, a.1));
    for &(time, is_arrow, index) in &items {
        if let Some(previous) = previous {
            let gap = time.saturating_sub(previous);
            let ms = gap.as_secs_f64() * 1e3;
            if ms > LONGEST_TO_SCALE_MS {
                let from = y + MIN_STEP_PX * 0.5;
                breaks.push((from, from + BREAK_PX, gap));
                y = from + BREAK_PX + MIN_STEP_PX * 0.5 + 6.0;
            } else {
                y += (ms * PX_PER_MS).max(MIN_STEP_PX);
            }
        }
        previous = Some(time);
        if is_arrow {
            ys[index] = y;
        } else {
            mark_ys[index] = y;
        }
    }
    for ((time, label), &y) in marks.iter().zip(&mark_ys) {
        let connection = label.starts_with('✕') || label.starts_with("connection");
        let (line, words) = if connection { ("cut", "cutlabel") } else { ("mark", "marklabel") };
        elements.push(Element::Line { x1: CLIENT_X - 8.0, y1: y, x2: SERVER_X + 8.0, y2: y, class: line });
        elements.push(text((CLIENT_X + SERVER_X) / 2.0, y - 5.0, "middle", words, label.clone()));
        if !arrows.iter().any(|a| a.time == *time) {
            elements.push(text(
                CLIENT_X - 14.0,
                y + 4.0,
                "end",
                "time",
                format!("{:.3} ms", time.as_secs_f64() * 1e3),
            ));
        }
    }
    let bottom = y + 30.0;
    // Lifelines: solid between the breaks, dashed across them.
    for x in [CLIENT_X, SERVER_X] {
        let mut from = 80.0;
        for &(start, end, _) in &breaks {
            elements.push(Element::Line { x1: x, y1: from, x2: x, y2: start, class: "lifeline" });
            elements.push(Element::Line { x1: x, y1: start, x2: x, y2: end, class: "gap" });
            for mark in [start + 4.0, end - 4.0] {
                elements.push(Element::Path {
                    d: format!("M{} {} L{} {}", x - 9.0, mark + 4.0, x + 9.0, mark - 4.0),
                    class: "break",
                });
            }
            from = end;
        }
        elements.push(Element::Line { x1: x, y1: from, x2: x, y2: bottom, class: "lifeline" });
    }
    for &(start, end, gap) in &breaks {
        let middle = (start + end) / 2.0 + 4.0;
        elements.push(text(
            (CLIENT_X + SERVER_X) / 2.0,
            middle,
            "middle",
            "note",
            format!("≈ {:.0} ms pass, shortened", gap.as_secs_f64() * 1e3),
        ));
    }
    // A long poll is held at the server until there is something to answer: a bar on
    // the server's lifeline from each request to its response (or to the end).
    if transport == Transport::LongPoll {
        for (i, arrow) in arrows.iter().enumerate() {
            if arrow.direction != Direction::Up {
                continue;
            }
            let answer = arrows[i + 1..].iter().position(|a| a.direction == Direction::Down);
            let (from, to) = (ys[i], answer.map_or(bottom, |j| ys[i + 1 + j]));
            elements.push(Element::Line {
                x1: SERVER_X + 5.0,
                y1: from,
                x2: SERVER_X + 5.0,
                y2: to,
                class: "held",
            });
            let held = match answer {
                Some(j) => format!(
                    "held {:.0} ms",
                    arrows[i + 1 + j].time.saturating_sub(arrow.time).as_secs_f64() * 1e3
                ),
                None => "held…".to_string(),
            };
            elements.push(text(SERVER_X + 14.0, (from + to) / 2.0 + 4.0, "start", "note", held));
        }
    }
    let mut last_time = None;
    for (arrow, &y) in arrows.iter().zip(&ys) {
        let (x1, x2, class) = match arrow.direction {
            Direction::Up => (CLIENT_X, SERVER_X, "up"),
            Direction::Down => (SERVER_X, CLIENT_X, "down"),
        };
        elements.push(Element::Line { x1, y1: y, x2, y2: y, class });
        elements.push(text((CLIENT_X + SERVER_X) / 2.0, y - 5.0, "middle", "label", arrow.label.clone()));
        // Arrows at the same time share one timestamp.
        if last_time != Some(arrow.time) {
            elements.push(text(
                CLIENT_X - 14.0,
                y + 4.0,
                "end",
                "time",
                format!("{:.3} ms", arrow.time.as_secs_f64() * 1e3),
            ));
        }
        last_time = Some(arrow.time);
    }
    let up: usize = arrows.iter().filter(|a| a.direction == Direction::Up).map(|a| a.bytes).sum();
    let down: usize = arrows.iter().filter(|a| a.direction == Direction::Down).map(|a| a.bytes).sum();
    elements.push(text(
        WIDTH / 2.0,
        bottom + 20.0,
        "middle",
        "note",
        format!(
            "client → server {up} B, server → client {down} B: every byte of the trace, in {} arrows",
            arrows.len()
        ),
    ));
    Diagram { width: WIDTH, height: bottom + 36.0, elements }
}

/// Escapes text for SVG (XML) content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Writes a diagram as a self-contained SVG document: no fonts, images or scripts.
pub fn to_svg(diagram: &Diagram) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"#,
        w = diagram.width,
        h = diagram.height.ceil()
    );
    out.push_str(concat!(
        "<style>\n",
        "text { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; fill: #222; }\n",
        ".title { font-size: 15px; font-weight: bold; } .note { fill: #666; font-style: italic; }\n",
        ".actor { font-size: 14px; font-weight: bold; } .time { fill: #555; }\n",
        ".lifeline { stroke: #999; stroke-width: 2; } .gap { stroke: #bbb; stroke-width: 2; stroke-dasharray: 3 4; }\n",
        ".break { stroke: #666; stroke-width: 2; fill: none; }\n",
        ".cut { stroke: #b3261e; stroke-width: 1.5; stroke-dasharray: 6 4; } .cutlabel { fill: #b3261e; font-weight: bold; }\n",
        ".mark { stroke: #2e7d32; stroke-width: 1; stroke-dasharray: 2 4; } .marklabel { fill: #2e7d32; }\n",
        ".held { stroke: #b8461b; stroke-opacity: 0.35; stroke-width: 6; }\n",
        ".up { stroke: #1f5fbf; stroke-width: 1.6; marker-end: url(#head-up); }\n",
        ".down { stroke: #b8461b; stroke-width: 1.6; marker-end: url(#head-down); }\n",
        "</style>\n",
        "<defs>\n",
        "<marker id=\"head-up\" markerWidth=\"10\" markerHeight=\"8\" refX=\"9\" refY=\"4\" orient=\"auto\">",
        "<path d=\"M0 0 L10 4 L0 8 Z\" fill=\"#1f5fbf\"/></marker>\n",
        "<marker id=\"head-down\" markerWidth=\"10\" markerHeight=\"8\" refX=\"9\" refY=\"4\" orient=\"auto\">",
        "<path d=\"M0 0 L10 4 L0 8 Z\" fill=\"#b8461b\"/></marker>\n",
        "</defs>\n",
        "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
    ));
    for element in &diagram.elements {
        let _ = match element {
            Element::Line { x1, y1, x2, y2, class } => {
                writeln!(
                    out,
                    r#"<line class="{class}" x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}"/>"#
                )
            }
            Element::Text { x, y, anchor, class, text } => writeln!(
                out,
                r#"<text class="{class}" x="{x:.1}" y="{y:.1}" text-anchor="{anchor}">{}</text>"#,
                escape(text)
            ),
            Element::Path { d, class } => writeln!(out, r#"<path class="{class}" d="{}"/>"#, escape(d)),
        };
    }
    out.push_str("</svg>\n");
    out
}

/// The recording as a sequence diagram, an SVG document.
pub fn svg(transport: Transport, recording: &Recording) -> String {
    let mut marks: Vec<(Duration, String)> = recording
        .drops
        .iter()
        .map(|d| (*d, "✕ the relay cuts the connection (--drop-after)".to_string()))
        .collect();
    marks.extend(recording.notes.iter().cloned());
    for connection in recording.connections().into_iter().skip(1) {
        if let Some(i) = (0..recording.chunks.len()).find(|i| recording.connection(*i) == connection) {
            marks.push((
                recording.chunks[i].0,
                format!("connection {}: the client reconnects", connection + 1),
            ));
        }
    }
    to_svg(&layout(transport, &arrows(recording), &marks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_client_frame_decodes_to_header_mask_and_payload() {
        // "hi" masked with key 01 02 03 04.
        let frame = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
        let parts = decode(&frame, Direction::Up);
        // Only after an upgrade is the stream WebSocket; here we decode the frame directly.
        assert!(parts.iter().all(|p| p.kind == Kind::HttpHead));
        let (header, mask, len, description) = ws_frame(&frame).unwrap();
        assert_eq!((header, mask, len), (6, 4, 2));
        assert_eq!(description, "FIN, text, masked, len 2");
    }

    #[test]
    fn a_chunked_sse_response_is_split_into_fields_and_every_byte_counted() {
        let body = "id: 1\nevent: update\ndata: {\"id\":1}\n\n";
        let stream = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n",
            body.len()
        );
        let parts = decode(stream.as_bytes(), Direction::Down);
        assert_eq!(parts.iter().map(|p| p.bytes.len()).sum::<usize>(), stream.len());
        let json = parts.iter().find(|p| p.label == "the message JSON").unwrap();
        assert_eq!(json.bytes, br#"{"id":1}"#);
        assert!(parts.iter().any(|p| p.label.starts_with("chunk size: 0x")));
    }
    fn poll_recording() -> Recording {
        let request = b"GET /poll?since=0 HTTP/1.1\r\nhost: x\r\n\r\n".to_vec();
        let response = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".to_vec();
        let again = b"GET /poll?since=e-0 HTTP/1.1\r\nhost: x\r\n\r\n".to_vec();
        let mut recording = Recording::default();
        recording.chunks.push((Duration::from_micros(800), Direction::Up, request));
        recording.chunks.push((Duration::from_micros(1500), Direction::Down, response.clone()));
        // A 300 ms wait: the poll interval.
        recording.chunks.push((Duration::from_micros(301_200), Direction::Up, again));
        recording.chunks.push((Duration::from_micros(301_900), Direction::Down, response));
        recording
    }

    #[test]
    fn a_request_head_and_a_response_with_its_body_are_one_arrow_each() {
        let arrows = arrows(&poll_recording());
        let labels: Vec<&str> = arrows.iter().map(|a| a.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "GET /poll?since=0 (39 B)",
                "200 OK + body 2 B (40 B)",
                "GET /poll?since=e-0 (41 B)",
                "200 OK + body 2 B (40 B)"
            ]
        );
        assert_eq!(arrows[1].direction, Direction::Down);
    }

    #[test]
    fn sse_events_and_ws_frames_are_one_arrow_each_named_by_their_kind() {
        let body = "id: e-1\nevent: chat\ndata: {\"id\":1}\n\n";
        let stream = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n",
            body.len()
        );
        let mut recording = Recording::default();
        recording.chunks.push((Duration::from_millis(1), Direction::Down, stream.into_bytes()));
        let labels: Vec<String> = arrows(&recording).into_iter().map(|a| a.label).collect();
        assert_eq!(labels[1], format!("SSE event chat, id e-1 ({} B)", body.len() + 6));

        let mut ws = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n".to_vec();
        let hello = br#"{"type":"hello","epoch":"e","last_id":0}"#;
        ws.extend([0x81, hello.len() as u8]);
        ws.extend(hello);
        let mut recording = Recording::default();
        recording.chunks.push((Duration::from_millis(1), Direction::Down, ws));
        let labels: Vec<String> = arrows(&recording).into_iter().map(|a| a.label).collect();
        assert_eq!(labels[0], "101 Switching Protocols (56 B)");
        assert_eq!(labels[1], format!("WS text frame: hello ({} B)", hello.len() + 2));
    }

    #[test]
    fn time_flows_down_and_a_long_wait_becomes_a_labelled_break() {
        let diagram = layout(Transport::ShortPoll, &arrows(&poll_recording()), &[]);
        let arrow_ys: Vec<f64> = diagram
            .elements
            .iter()
            .filter_map(|e| match e {
                Element::Line { y1, y2, class: "up" | "down", .. } if y1 == y2 => Some(*y1),
                _ => None,
            })
            .collect();
        assert_eq!(arrow_ys.len(), 4);
        assert!(arrow_ys.windows(2).all(|w| w[0] < w[1]), "{arrow_ys:?}");
        // 300 ms to scale would be 360 px; the break keeps it under 100.
        assert!(arrow_ys[2] - arrow_ys[1] < 100.0, "{arrow_ys:?}");
        let texts: Vec<&str> = diagram
            .elements
            .iter()
            .filter_map(|e| if let Element::Text { text, .. } = e { Some(text.as_str()) } else { None })
            .collect();
        assert!(texts.contains(&"≈ 300 ms pass, shortened"), "{texts:?}");
        assert!(texts.contains(&"0.800 ms") && texts.contains(&"301.200 ms"), "{texts:?}");
        assert_eq!(
            diagram.elements.iter().filter(|e| matches!(e, Element::Line { class: "gap", .. })).count(),
            2
        );
    }

    #[test]
    fn svg_text_is_escaped() {
        assert_eq!(escape(r#"a<b & "c">'"#), "a&lt;b &amp; &quot;c&quot;&gt;&apos;");
        let diagram = Diagram {
            width: 10.0,
            height: 10.0,
            elements: vec![Element::Text {
                x: 1.0,
                y: 2.0,
                anchor: "start",
                class: "label",
                text: "<&>".into(),
            }],
        };
        let svg = to_svg(&diagram);
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(">&lt;&amp;&gt;</text>"));
    }
    #[test]
    fn a_cut_connection_and_the_reconnect_are_marked_and_each_connection_decoded_alone() {
        let mut recording = Recording::default();
        let request =
            |since: &str| format!("GET /sse?since={since} HTTP/1.1\r\nhost: x\r\n\r\n").into_bytes();
        let head =
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        // The first response is cut in the middle of a chunk: the second connection's
        // bytes must not be read as the rest of it.
        let mut cut = head.to_vec();
        cut.extend(b"6D\r\nid: e-1\n");
        for (ms, connection, direction, bytes) in [
            (1, 0, Direction::Up, request("0")),
            (2, 0, Direction::Down, cut),
            (400, 1, Direction::Up, request("e-0")),
            (401, 1, Direction::Down, head.to_vec()),
        ] {
            recording.chunks.push((Duration::from_millis(ms), direction, bytes));
            recording.connection_of.push(connection);
        }
        recording.drops.push(Duration::from_millis(250));
        let labels: Vec<String> = arrows(&recording).into_iter().map(|a| a.label).collect();
        assert_eq!(labels.len(), 5, "{labels:?}");
        assert!(labels[3].starts_with("GET /sse?since=e-0"), "{labels:?}");
        assert!(labels[4].starts_with("200 OK"), "{labels:?}");
        let svg = svg(Transport::Sse, &recording);
        assert!(svg.contains("✕ the relay cuts the connection"), "{svg}");
        assert!(svg.contains("connection 2: the client reconnects"), "{svg}");
        let text = render(Transport::Sse, &recording);
        assert!(text.contains("✕ the relay cut the connection"), "{text}");
        assert!(text.contains("· connection 2"), "{text}");
    }
}
