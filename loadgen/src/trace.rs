//! `pushlab trace`: every byte one client exchanges with the server, annotated.
//!
//! A client of the chosen transport follows a fresh server through a recording relay
//! while a few messages are published. Each direction's bytes are then decoded — HTTP
//! request and status lines, headers, chunk sizes, SSE fields, WebSocket frame headers
//! and masks — into parts, and the parts of both directions are printed in the order
//! their first byte crossed the socket. Every byte belongs to exactly one part, so the
//! totals are the wire totals.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pushlab_protocol::Transport;
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
    /// The message JSON, and bodies of poll responses.
    Payload,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::HttpHead => "HTTP request/status lines and headers",
            Kind::ChunkFraming => "chunked-encoding framing",
            Kind::SseFraming => "SSE field names, comments, line ends",
            Kind::WsFraming => "WebSocket frame headers and masks",
            Kind::Payload => "bodies and message JSON",
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
}

/// The bytes each direction carried, with the time each chunk arrived.
#[derive(Debug, Default)]
pub struct Recording {
    /// `(time since start, direction, bytes)` in arrival order.
    pub chunks: Vec<(Duration, Direction, Vec<u8>)>,
}

impl Recording {
    /// Every byte that went one way, in order.
    pub fn stream(&self, direction: Direction) -> Vec<u8> {
        self.chunks.iter().filter(|c| c.1 == direction).flat_map(|c| c.2.clone()).collect()
    }

    /// When byte `offset` of `direction` crossed.
    fn time_of(&self, direction: Direction, offset: usize) -> Duration {
        let mut seen = 0;
        for (time, d, bytes) in &self.chunks {
            if *d != direction {
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
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let recording = Arc::new(Mutex::new(Recording::default()));
    let start = Instant::now();
    let rec = recording.clone();
    let task = tokio::spawn(async move {
        let mut pumps = tokio::task::JoinSet::new();
        while let Ok((client, _)) = listener.accept().await {
            let Ok(upstream) = tokio::net::TcpStream::connect(server).await else { continue };
            let _ = (client.set_nodelay(true), upstream.set_nodelay(true));
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = upstream.into_split();
            pumps.spawn(pump(client_read, server_write, Direction::Up, rec.clone(), start));
            pumps.spawn(pump(server_read, client_write, Direction::Down, rec.clone(), start));
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
) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if let Ok(mut r) = recording.lock() {
            r.chunks.push((start.elapsed(), direction, buf[..n].to_vec()));
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
        parts.push(Part { direction, offset, bytes: stream[offset..offset + len].to_vec(), label, kind });
    };
    while pos < stream.len() {
        if websocket {
            match ws_frame(&stream[pos..]) {
                Some((header_len, mask_len, payload_len, description)) => {
                    push(
                        &mut parts,
                        pos,
                        header_len - mask_len,
                        format!("frame header: {description}"),
                        Kind::WsFraming,
                    );
                    if mask_len > 0 {
                        push(
                            &mut parts,
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
                    });
                    pos += header_len + payload_len;
                }
                None => {
                    push(
                        &mut parts,
                        pos,
                        stream.len() - pos,
                        "incomplete frame (the trace ended)".into(),
                        Kind::WsFraming,
                    );
                    break;
                }
            }
            continue;
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
    let (len, mut header) = match bytes[1] & 0x7f {
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
    (bytes.len() >= header + len).then_some((header, mask, len, description))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Renders the parts of both directions in time order, then the totals.
pub fn render(transport: Transport, recording: &Recording) -> String {
    let mut parts = decode(&recording.stream(Direction::Up), Direction::Up);
    parts.extend(decode(&recording.stream(Direction::Down), Direction::Down));
    let time = |p: &Part| recording.time_of(p.direction, p.offset);
    parts.sort_by_key(|p| (time(p), p.direction == Direction::Down, p.offset));
    let mut out = format!(
        "pushlab trace: {transport}. → client to server, ← server to client; every byte is shown once.\n\n"
    );
    for part in &parts {
        let arrow = if part.direction == Direction::Up { "→" } else { "←" };
        // Line ends made visible; everything else as it is.
        let shown: String = String::from_utf8_lossy(&part.bytes).replace('\r', "\\r").replace('\n', "\\n");
        let shown = if part.kind == Kind::WsFraming {
            part.bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
        } else {
            shown
        };
        // Every byte is printed: long parts continue on the following lines.
        let chars: Vec<char> = shown.chars().collect();
        let mut lines = chars.chunks(72).map(|c| c.iter().collect::<String>());
        let first = lines.next().unwrap_or_default();
        let _ = writeln!(
            out,
            "{:>9.3} ms {arrow} {:>5} B  {:<36} {first}",
            time(part).as_secs_f64() * 1e3,
            part.bytes.len(),
            part.label
        );
        for more in lines {
            let _ = writeln!(out, "{:>60} {more}", "");
        }
    }
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
    out
}

/// Runs one `transport` client against a fresh server (`server_exe serve`) through a
/// recording relay, publishes `messages` small messages, and returns the annotated trace.
pub async fn run(
    transport: Transport,
    server_exe: &std::path::Path,
    messages: u64,
) -> anyhow::Result<String> {
    use crate::client::{ClientSettings, Session, Target};
    let server = crate::process::ServerProcess::spawn(server_exe, &[]).await?;
    let (relay, recording, relay_task) = recording_relay(server.addr).await?;
    let settings = ClientSettings::plain(Duration::from_millis(300));
    let recorder = crate::record::Recorder::new(Default::default());
    let session = Session::new(Target::new(relay), settings, recorder, Instant::now());
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
    let publisher = reqwest::Client::new();
    for i in 1..=messages {
        publisher
            .post(format!("http://{}/publish", server.addr))
            .json(&serde_json::json!({"type": "chat", "data": {"text": format!("hello {i}")}}))
            .send()
            .await?
            .error_for_status()?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = live.clone();
    wait_for(
        "the messages to arrive",
        Box::new(move || delivered.messages.load(std::sync::atomic::Ordering::Relaxed) >= messages),
    )
    .await?;
    // Let a poller send its next request, so the trace shows the cycle going on.
    tokio::time::sleep(Duration::from_millis(350)).await;
    stop.cancel();
    client.await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    relay_task.abort();
    server.stop().await?;
    let recording = recording.lock().map_err(|_| anyhow::anyhow!("recording poisoned"))?;
    Ok(render(transport, &recording))
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
}
