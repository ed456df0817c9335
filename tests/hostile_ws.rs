//! WebSocket clients that misbehave: ones that stop reading (while flooding the server
//! or while it has data for them), ones that break RFC 6455, and requests that are not
//! a WebSocket handshake at all. Most are raw TCP sockets sending hand-built frames
//! (RFC 6455 §5.2), because a real client library refuses to send such input.

use std::time::Duration;

use futures_util::StreamExt;
use pushlab_server::Config;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::util::{ws_connect, TestServer};

// Opcodes (RFC 6455 §5.2).
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xa;

/// A client frame: `rsv` is the three reserved bits, `masked` says whether the payload
/// is masked as a client must (RFC 6455 §5.3).
fn frame(fin: bool, rsv: u8, opcode: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![(u8::from(fin) << 7) | ((rsv & 0b111) << 4) | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend((n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend((n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend(MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    } else {
        out.extend(payload);
    }
    out
}

/// A well-formed, final, masked client frame.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(true, 0, opcode, true, payload)
}

/// A Close frame's payload: the status code, then the reason (RFC 6455 §5.5.1).
fn close_payload(code: u16) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend(b"bye");
    payload
}

/// A WebSocket client on a raw socket: it sends whatever bytes it is given.
struct RawWs {
    tcp: TcpStream,
    /// Bytes read but not yet parsed into frames.
    unread: Vec<u8>,
}

impl RawWs {
    async fn connect(server: &TestServer) -> RawWs {
        RawWs::open(server, None).await
    }

    /// With a receive buffer of a few KB, so that a client that does not read fills its
    /// receive window quickly and the server's writes block soon.
    async fn with_small_receive_buffer(server: &TestServer) -> RawWs {
        RawWs::open(server, Some(4096)).await
    }

    async fn open(server: &TestServer, receive_buffer: Option<u32>) -> RawWs {
        let socket = TcpSocket::new_v4().unwrap();
        if let Some(size) = receive_buffer {
            // Before connecting, so the window the kernel announces is small from the start.
            socket.set_recv_buffer_size(size).unwrap();
        }
        let mut tcp = timeout(Duration::from_secs(5), socket.connect(server.addr)).await.unwrap().unwrap();
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            server.addr
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut unread = Vec::new();
        let head_end = loop {
            if let Some(end) = unread.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = timeout(Duration::from_secs(5), tcp.read(&mut chunk)).await.unwrap().unwrap();
            assert!(n > 0, "the server closed during the handshake");
            unread.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&unread[..head_end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "expected 101 Switching Protocols, got {head}");
        unread.drain(..head_end);
        RawWs { tcp, unread }
    }

    async fn send(&mut self, bytes: &[u8]) {
        timeout(Duration::from_secs(5), self.tcp.write_all(bytes)).await.unwrap().unwrap();
    }

    /// The next frame from the server as (opcode, payload); `None` once the connection
    /// ends (end of stream, reset, or 5 s without a byte).
    async fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((frame, used)) = parse_server_frame(&self.unread) {
                self.unread.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 16 * 1024];
            match timeout(Duration::from_secs(5), self.tcp.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.unread.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// Reads up to the server's Close frame and returns its status code; `None` when the
    /// connection ended without one.
    async fn close_code(&mut self) -> Option<u16> {
        while let Some((opcode, payload)) = self.next_frame().await {
            if opcode == CLOSE {
                assert!(payload.len() >= 2, "a Close frame without a status code");
                return Some(u16::from_be_bytes([payload[0], payload[1]]));
            }
        }
        None
    }
}

/// Reads (and drops) everything until the server closes the TCP connection; false if
/// it is still open after `within`.
async fn closed_within(tcp: &mut (impl AsyncRead + Unpin), within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut chunk)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Parses one unmasked server frame from the start of `bytes`: ((opcode, payload),
/// bytes used), or `None` if it is not all there yet.
fn parse_server_frame(bytes: &[u8]) -> Option<((u8, Vec<u8>), usize)> {
    let (&first, rest) = bytes.split_first()?;
    let (&second, rest) = rest.split_first()?;
    assert_eq!(second & 0x80, 0, "a server must not mask its frames (RFC 6455 §5.1)");
    let (len, header) = match second & 0x7f {
        126 => (u16::from_be_bytes(rest.get(..2)?.try_into().unwrap()) as usize, 4),
        127 => (u64::from_be_bytes(rest.get(..8)?.try_into().unwrap()) as usize, 10),
        n => (n as usize, 2),
    };
    let payload = bytes.get(header..header + len)?;
    Some(((first & 0x0f, payload.to_vec()), header + len))
}

/// A well-behaved subscriber, reading in its own task (reading is also what answers
/// the server's pings); it forwards the id of every message it gets.
struct Watcher {
    ids: mpsc::UnboundedReceiver<u64>,
    task: JoinHandle<()>,
}

impl Watcher {
    async fn start(server: &TestServer) -> Watcher {
        let mut ws = ws_connect(server, "").await;
        let (tx, ids) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Some(Ok(frame)) = ws.next().await {
                if let Message::Text(text) = frame {
                    let message: Value = serde_json::from_str(text.as_str()).unwrap();
                    if let Some(id) = message["id"].as_u64() {
                        let _ = tx.send(id);
                    }
                }
            }
        });
        Watcher { ids, task }
    }

    /// Whether message `id` arrives within 10 s.
    async fn gets(&mut self, id: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Ok(Some(got)) = tokio::time::timeout_at(deadline, self.ids.recv()).await {
            if got == id {
                return true;
            }
        }
        false
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `pushlab_slow_subscribers_closed_total{transport="ws"}` from `/metrics` (0 while
/// nothing was counted).
async fn slow_closed(server: &TestServer) -> u64 {
    let text = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("pushlab_slow_subscribers_closed_total{transport=\"ws\"} "))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// Waits up to 5 s for the slow-subscriber counter to reach 1.
async fn slow_closed_counts_one(server: &TestServer) -> bool {
    for _ in 0..100 {
        if slow_closed(server).await >= 1 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Writes `burst` to `tcp` again and again, never reading, until a write fails: the
/// server closed the connection.
fn flood(tcp: TcpStream, burst: Vec<u8>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let (_read, mut write) = tcp.into_split();
        while write.write_all(&burst).await.is_ok() {}
    })
}

#[tokio::test]
async fn a_ping_flood_from_a_client_that_never_reads_is_closed_as_slow() {
    let config = Config { heartbeat: Duration::from_millis(250), ..Default::default() };
    let server = TestServer::with_config(config).await;
    let mut watcher = Watcher::start(&server).await;
    let flooder = RawWs::with_small_receive_buffer(&server).await;
    // Every ping makes the server owe a 127-byte pong; this client reads none of them.
    let burst = client_frame(PING, &[b'p'; 125]).repeat(100);
    let mut flooding = flood(flooder.tcp, burst);

    let ids = server.publish_numbers(0, 1).await;
    assert!(watcher.gets(ids[0]).await, "another subscriber is served during the flood");
    let ended = timeout(Duration::from_secs(5), &mut flooding).await;
    flooding.abort();
    assert!(ended.is_ok(), "the server never closed a client that floods pings and never reads");
    assert!(slow_closed_counts_one(&server).await, "the close is counted as a slow subscriber");
    let ids = server.publish_numbers(1, 1).await;
    assert!(watcher.gets(ids[0]).await, "the other subscriber is still served");
}

#[tokio::test]
async fn a_client_that_stops_reading_while_data_is_pending_is_closed_as_slow() {
    let config = Config { heartbeat: Duration::from_millis(100), history: 64, ..Default::default() };
    let server = TestServer::with_config(config).await;
    let mut watcher = Watcher::start(&server).await;
    let stuck = RawWs::with_small_receive_buffer(&server).await;
    // The stuck client is alive: it sends an unsolicited pong (RFC 6455 §5.5.3) every
    // 50 ms, so it is never silent for two heartbeats; it just reads nothing. Only the
    // write deadline can close it.
    let (mut stuck_read, mut stuck_write) = stuck.tcp.into_split();
    let pong = client_frame(PONG, b"");
    let alive = tokio::spawn(async move {
        while stuck_write.write_all(&pong).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    // Messages of about 60 KB, until the server gives up on the client that reads none.
    let batch: Vec<Value> = (0..4).map(|_| json!({"data": "x".repeat(60_000)})).collect();
    let client = reqwest::Client::new();
    let started = Instant::now();
    while slow_closed(&server).await == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "a client that stopped reading is never closed");
        let response = client.post(server.url("/publish")).json(&batch).send().await.unwrap();
        assert_eq!(response.status(), 201);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Two heartbeats of no progress, plus the time to fill the socket buffers.
    assert!(started.elapsed() < Duration::from_secs(5), "closed only after {:?}", started.elapsed());
    assert!(closed_within(&mut stuck_read, Duration::from_secs(5)).await, "the TCP connection is closed");
    alive.abort();
    let ids = server.publish_numbers(0, 1).await;
    assert!(watcher.gets(ids[0]).await, "another subscriber is still served");
}

#[tokio::test]
async fn a_flood_of_bad_frames_from_a_client_that_never_reads_is_closed_as_slow() {
    let config = Config { heartbeat: Duration::from_millis(250), ..Default::default() };
    let server = TestServer::with_config(config).await;
    let mut watcher = Watcher::start(&server).await;
    let flooder = RawWs::with_small_receive_buffer(&server).await;
    // Each of these gets an error frame back (`binary_not_supported`, `unknown_frame`);
    // the connection stays open, so only the write deadline can end it.
    let mut burst = Vec::new();
    for _ in 0..50 {
        burst.extend(client_frame(BINARY, &[1, 2, 3]));
        burst.extend(client_frame(TEXT, br#"{"type":"nonsense"}"#));
    }
    let mut flooding = flood(flooder.tcp, burst);

    let ended = timeout(Duration::from_secs(5), &mut flooding).await;
    flooding.abort();
    assert!(ended.is_ok(), "the server never closed a client that sends bad frames and never reads");
    assert!(slow_closed_counts_one(&server).await, "the close is counted as a slow subscriber");
    let ids = server.publish_numbers(0, 1).await;
    assert!(watcher.gets(ids[0]).await, "another subscriber is still served");
}

#[tokio::test]
async fn a_client_close_is_answered_with_a_close_frame_with_its_code() {
    let server = TestServer::start().await;
    let mut ws = ws_connect(&server, "").await;
    let frame = CloseFrame { code: CloseCode::Normal, reason: "done".into() };
    ws.close(Some(frame)).await.unwrap();
    // RFC 6455 §5.5.1: the endpoint that receives a Close sends one back.
    let reply = loop {
        match timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Close(reply)))) => break reply,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected the server's Close frame, got {other:?}"),
        }
    };
    assert_eq!(reply.expect("a status code").code, CloseCode::Normal);
}

/// The frame limit the violation tests run against: `max_message_bytes` plus the 1 KiB
/// the server allows for the message's envelope.
const MAX_FRAME: usize = 1024 + 1024;

/// Sends `bytes` on a fresh connection and returns the code of the server's Close
/// frame, checking that the TCP connection closes after it.
async fn close_code_for(bytes: &[u8]) -> u16 {
    let config = Config { max_message_bytes: 1024, ..Default::default() };
    let server = TestServer::with_config(config).await;
    let mut ws = RawWs::connect(&server).await;
    ws.send(bytes).await;
    let code = ws.close_code().await.expect("a Close frame before the connection ends, not a bare close");
    assert!(
        closed_within(&mut ws.tcp, Duration::from_secs(2)).await,
        "the server closes the TCP connection after its Close"
    );
    code
}

#[tokio::test]
async fn an_oversized_frame_gets_1009() {
    let payload = vec![b'x'; MAX_FRAME + 1];
    assert_eq!(close_code_for(&client_frame(TEXT, &payload)).await, 1009);
}

#[tokio::test]
async fn an_oversized_fragmented_message_gets_1009() {
    // Each frame is within the frame limit; together they are over the message limit.
    let half = vec![b'x'; MAX_FRAME / 2 + 1];
    let mut bytes = frame(false, 0, TEXT, true, &half);
    bytes.extend(frame(true, 0, CONTINUATION, true, &half));
    assert_eq!(close_code_for(&bytes).await, 1009);
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_gets_1007() {
    // 0xC3 starts a two-byte sequence; 0x28 cannot continue it.
    assert_eq!(close_code_for(&client_frame(TEXT, &[b'{', 0xc3, 0x28, b'}'])).await, 1007);
}

#[tokio::test]
async fn an_unmasked_client_frame_gets_1002() {
    assert_eq!(close_code_for(&frame(true, 0, TEXT, false, br#"{"type":"ping"}"#)).await, 1002);
}

#[tokio::test]
async fn reserved_bits_without_an_extension_get_1002() {
    assert_eq!(close_code_for(&frame(true, 0b100, TEXT, true, br#"{"type":"ping"}"#)).await, 1002);
}

#[tokio::test]
async fn an_unknown_opcode_gets_1002() {
    // 0x3 is a reserved data opcode, 0xB a reserved control opcode.
    assert_eq!(close_code_for(&client_frame(0x3, b"?")).await, 1002);
    assert_eq!(close_code_for(&client_frame(0xb, b"?")).await, 1002);
}

#[tokio::test]
async fn a_control_frame_over_125_bytes_gets_1002() {
    assert_eq!(close_code_for(&client_frame(PING, &[b'p'; 126])).await, 1002);
}

#[tokio::test]
async fn a_fragmented_control_frame_gets_1002() {
    assert_eq!(close_code_for(&frame(false, 0, PING, true, b"part")).await, 1002);
}

#[tokio::test]
async fn a_close_with_an_invalid_code_gets_1002() {
    // 1005 and 1006 must never be sent, below 1000 is not a code, 5000 is past the
    // range (RFC 6455 §7.4); a 1-byte body cannot hold a code (§5.5.1).
    for code in [1005u16, 1006, 999, 5000] {
        assert_eq!(
            close_code_for(&client_frame(CLOSE, &close_payload(code))).await,
            1002,
            "close code {code}"
        );
    }
    assert_eq!(close_code_for(&client_frame(CLOSE, &[3])).await, 1002, "a 1-byte close body");
}

/// Sends a raw HTTP request and returns the response's status, head and JSON body.
async fn raw_request(server: &TestServer, request: &str) -> (u16, String, Value) {
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head, body) = loop {
        let n = timeout(Duration::from_secs(5), tcp.read(&mut chunk)).await.unwrap().unwrap();
        response.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&response).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_string))
                .map(|l| l.trim().parse::<usize>().unwrap());
            if length.is_some_and(|l| body.len() >= l) {
                break (head.to_string(), body.to_string());
            }
        }
        assert!(n > 0, "the response ended early: {text}");
    };
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = serde_json::from_str(&body).unwrap_or_else(|_| panic!("a JSON body, got {body:?}"));
    (status, head.to_ascii_lowercase(), body)
}

#[tokio::test]
async fn a_request_that_is_not_a_websocket_handshake_gets_a_json_error() {
    let server = TestServer::start().await;
    let host = format!("Host: {}\r\n", server.addr);
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let cases = [
        ("a plain GET", format!("GET /ws HTTP/1.1\r\n{host}\r\n"), 400, "not_a_websocket_upgrade"),
        (
            "no key",
            format!("GET /ws HTTP/1.1\r\n{host}{upgrade}Sec-WebSocket-Version: 13\r\n\r\n"),
            400,
            "not_a_websocket_upgrade",
        ),
        (
            "version 8",
            format!("GET /ws HTTP/1.1\r\n{host}{upgrade}{key}Sec-WebSocket-Version: 8\r\n\r\n"),
            400,
            "unsupported_websocket_version",
        ),
        (
            "HTTP/1.0",
            format!("GET /ws HTTP/1.0\r\n{host}{upgrade}{key}Sec-WebSocket-Version: 13\r\n\r\n"),
            426,
            "not_a_websocket_upgrade",
        ),
    ];
    for (what, request, status, code) in cases {
        let (got_status, head, body) = raw_request(&server, &request).await;
        assert_eq!((got_status, body["error"].as_str()), (status, Some(code)), "{what}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
        assert!(head.contains("content-type: application/json"), "{what}: {head}");
        if code == "unsupported_websocket_version" {
            // RFC 6455 §4.4: the refusal names the versions the server speaks.
            assert!(head.contains("sec-websocket-version: 13"), "{what}: {head}");
        }
        if status == 426 {
            // RFC 9110 §15.5.22: a 426 names the protocol to upgrade to.
            assert!(head.contains("upgrade: websocket"), "{what}: {head}");
        }
    }
}

#[tokio::test]
async fn upgraded_websockets_hold_their_place_under_max_sockets() {
    // Before the fix a socket was released from --max-sockets (and /status) when hyper
    // handed it to the WebSocket: any number of WebSockets could open.
    let config = Config { max_sockets: 3, ..Config::default() };
    let server = TestServer::with_config(config).await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(ws_connect(&server, "?since=0").await);
    }
    let mut fourth = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut fourth, &mut answer),
    )
    .await
    .unwrap()
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("too_many_sockets"), "{answer}");
    drop(sockets);
}
