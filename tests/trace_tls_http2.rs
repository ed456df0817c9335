//! `pushlab trace --http 2` and `--tls` (#15): for every transport, over HTTP/2 in
//! cleartext and over TLS, and over TLS in HTTP/1.1, every byte the relay recorded is in
//! exactly one decoded part, none of them unknown; with TLS the records' decrypted HTTP
//! is exactly what the client's HTTP layer recorded and counted; HPACK makes a poller's
//! second request smaller than its first; a WebSocket over HTTP/2 is an extended CONNECT
//! whose DATA carry WebSocket frames.

use std::path::Path;
use std::process::Command;

use pushlab_loadgen::client::tls::HttpVersion;
use pushlab_loadgen::trace::{self, Decoded, Direction, Kind, Protocol, Recording};
use pushlab_protocol::Transport;

async fn traced(transport: Transport, http: HttpVersion, tls: bool) -> (Recording, Decoded) {
    let exe = Path::new(env!("CARGO_BIN_EXE_pushlab"));
    let recording = trace::record_with(transport, exe, 2, None, Protocol { http, tls }).await.unwrap();
    let decoded = trace::decode_recording(&recording);
    (recording, decoded)
}

/// Every byte decoded once, nothing left unknown; over TLS, the plaintext is the client's.
fn check_every_byte(what: &str, recording: &Recording, decoded: &Decoded) {
    for direction in [Direction::Up, Direction::Down] {
        let relayed = recording.stream(direction).len();
        let decoded_bytes: usize =
            decoded.parts.iter().filter(|(_, p)| p.direction == direction).map(|(_, p)| p.bytes.len()).sum();
        assert_eq!(decoded_bytes, relayed, "{what} {direction:?}: the parts add up to the relay's bytes");
    }
    let unknown =
        ["incomplete", "unknown", "not decodable", "not decrypted", "protocol error", "wrong length"];
    for (_, part) in &decoded.parts {
        assert!(
            !unknown.iter().any(|u| part.label.contains(u)) && part.kind != Kind::TlsOpaque,
            "{what}: an undecoded part: {part:?}"
        );
    }
    assert!(decoded.warnings.is_empty(), "{what}: {:?}", decoded.warnings);
    let Some(plaintext) = &recording.plaintext else { return };
    let (read, written) = recording.layer_counted.expect("the layer counter's figures");
    for (direction, counted) in [(Direction::Up, written), (Direction::Down, read)] {
        let in_records: usize =
            decoded.overhead.iter().filter(|o| o.1 == direction).map(|o| o.2.http_bytes).sum();
        assert_eq!(
            in_records as u64, counted,
            "{what} {direction:?}: HTTP in the records = the layer's count"
        );
        assert_eq!(
            plaintext.stream(direction).len() as u64,
            counted,
            "{what} {direction:?}: the tap = the count"
        );
        let framing: usize =
            decoded.overhead.iter().filter(|o| o.1 == direction).map(|o| o.2.http_record_framing).sum();
        let records: usize =
            decoded.overhead.iter().filter(|o| o.1 == direction).map(|o| o.2.http_records).sum();
        assert!(records > 0, "{what} {direction:?}: HTTP went in records");
        assert_eq!(framing, records * 22, "{what} {direction:?}: TLS 1.3 adds 5 + 1 + 16 B to each record");
    }
    // The handshake is there, in the clear and encrypted.
    let labels: Vec<&str> = decoded.parts.iter().map(|(_, p)| p.label.as_str()).collect();
    for message in ["ClientHello", "ServerHello", "Certificate, ", "Finished"] {
        assert!(labels.iter().any(|l| l.starts_with(message)), "{what}: no {message} in {labels:?}");
    }
}

/// The transport over HTTP/2 in cleartext and over TLS.
async fn over_http2(transport: Transport) -> Vec<(Recording, Decoded)> {
    let mut both = Vec::new();
    for tls in [false, true] {
        let (recording, decoded) = traced(transport, HttpVersion::Http2, tls).await;
        check_every_byte(&format!("{transport} over HTTP/2, tls {tls}"), &recording, &decoded);
        let frames: Vec<&str> = decoded
            .parts
            .iter()
            .filter(|(_, p)| p.kind == Kind::H2Framing)
            .map(|(_, p)| p.label.as_str())
            .collect();
        for frame in ["HTTP/2 client preface", "SETTINGS frame", "HEADERS frame", "WINDOW_UPDATE frame"] {
            assert!(frames.iter().any(|f| f.starts_with(frame)), "{transport}: no {frame} in {frames:?}");
        }
        both.push((recording, decoded));
    }
    both
}

fn requests(decoded: &Decoded) -> Vec<&trace::http2::HeaderBlock> {
    decoded.header_blocks.iter().map(|(_, b)| b).filter(|b| b.direction == Direction::Up).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_polls_over_http2_decode_every_frame_and_hpack_shrinks_the_second_poll() {
    for (_, decoded) in over_http2(Transport::ShortPoll).await {
        let polls = requests(&decoded);
        assert!(polls.len() >= 2, "{polls:?}");
        // The first poll's header block names every field; the second indexes most of
        // them in the dynamic table and is less than half its size.
        let (first, second) = (polls[0], polls[1]);
        assert!(second.hpack_bytes * 2 < first.hpack_bytes, "{first:?} then {second:?}");
        assert!(second.plain_bytes >= first.plain_bytes, "the same fields: {first:?} then {second:?}");
        let body = decoded.parts.iter().find(|(_, p)| p.label.starts_with("body, ")).unwrap();
        assert!(body.1.depth >= 1, "a poll's JSON is inside a DATA frame: {body:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polls_over_http2_decode_every_frame() {
    for (_, decoded) in over_http2(Transport::LongPoll).await {
        assert!(requests(&decoded).len() >= 2);
        assert!(decoded
            .parts
            .iter()
            .any(|(_, p)| p.label.starts_with("body, ") && p.bytes.starts_with(b"{")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_over_http2_shows_its_fields_inside_data_frames() {
    for (_, decoded) in over_http2(Transport::Sse).await {
        let json: Vec<_> = decoded.parts.iter().filter(|(_, p)| p.label == "the message JSON").collect();
        assert!(json.len() >= 2, "{json:?}");
        assert!(json.iter().all(|(_, p)| p.depth >= 1 && p.kind == Kind::Payload));
        assert!(decoded.parts.iter().any(|(_, p)| p.label == "SSE field name `data: `"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_over_http2_is_an_extended_connect_whose_data_carry_websocket_frames() {
    for (_, decoded) in over_http2(Transport::Ws).await {
        let connect = requests(&decoded)[0];
        for field in [":method: CONNECT", ":protocol: websocket"] {
            assert!(connect.fields.iter().any(|f| f == field), "{connect:?}");
        }
        let ws: Vec<_> = decoded.parts.iter().filter(|(_, p)| p.kind == Kind::WsFraming).collect();
        assert!(ws.len() >= 3, "the hello and two messages: {ws:?}");
        assert!(ws.iter().all(|(_, p)| p.depth >= 1), "inside DATA frames: {ws:?}");
        assert!(decoded.parts.iter().any(
            |(_, p)| p.label.contains("\"type\":\"hello\"") || p.bytes.starts_with(br#"{"type":"hello""#)
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_over_tls_in_http_1_1_shows_its_http_inside_the_records() {
    for transport in Transport::ALL {
        let (recording, decoded) = traced(transport, HttpVersion::Http1, true).await;
        check_every_byte(&format!("{transport} over HTTP/1.1 and TLS"), &recording, &decoded);
        let request = decoded.parts.iter().find(|(_, p)| p.label == "request line").unwrap();
        assert_eq!(request.1.depth, 1, "inside a record: {request:?}");
        let text = trace::render(transport, &recording);
        assert!(
            text.contains("HTTP/1.1 over TLS") && text.contains("TLS added 22 B to this record"),
            "{text}"
        );
    }
}

#[test]
fn pushlab_trace_takes_tls_and_http_2_and_prints_the_frames_and_what_tls_added() {
    let output = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["trace", "--transport", "short_poll", "--tls", "--http", "2"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "pushlab trace: short_poll, HTTP/2 over TLS.",
        "TLS record: handshake",
        "ClientHello",
        "HTTP/2 client preface",
        "SETTINGS frame, connection",
        "HPACK indexed: dynamic #",
        "HTTP/2 header blocks, HPACK-encoded",
        "TLS, server → client: ",
        "22 B each (5 B header, 1 B inner type, 16 B tag)",
    ] {
        assert!(printed.contains(expected), "no {expected:?} in\n{printed}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["trace", "--transport", "sse", "--http", "3"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("HTTP/3 is not supported"));
}
