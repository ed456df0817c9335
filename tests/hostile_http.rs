//! Hostile and broken HTTP clients: each test is one attack from the hardening issue,
//! made on a raw socket where a well-behaved client library would refuse to send it.
//! Every one of them failed before its fix. The server must answer with a clear JSON
//! error (or close), keep its memory bounded, and go on serving everyone else.

use std::time::{Duration, Instant};

use pushlab_server::Config;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::util::*;

/// Reads until the server closes the connection (or `within` passes); returns what came.
async fn read_to_close(tcp: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return (out, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `request` on a fresh connection and reads the whole answer.
async fn raw_exchange(server: &TestServer, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let (bytes, _) = read_to_close(&mut tcp, Duration::from_secs(5)).await;
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The status and JSON body of a raw HTTP/1.1 response.
fn parse_response(text: &str) -> (u16, Value) {
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// A connection with a small receive buffer that will never be read: a stuck reader.
async fn stuck_reader(server: &TestServer, request: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let mut tcp = socket.connect(server.addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    tcp
}

async fn publish_big(server: &TestServer, count: usize, bytes: usize) {
    let client = reqwest::Client::new();
    for _ in 0..count {
        let status = client
            .post(server.url("/publish"))
            .json(&json!({"data": "x".repeat(bytes)}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 201);
    }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(name))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

async fn metrics(server: &TestServer) -> String {
    reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap()
}

// --- 2. Poll responses are capped in bytes, and hold their slot until written. ---

#[tokio::test]
async fn a_poll_response_is_capped_in_bytes_but_always_carries_one_message() {
    let config = Config { max_response_bytes: 200_000, ..Config::default() };
    let server = TestServer::with_config(config).await;
    publish_big(&server, 10, 60_000).await;
    let (status, body) = server.get_json("/poll?since=0&limit=10000").await;
    assert_eq!(status, 200);
    let ids: Vec<u64> =
        body["messages"].as_array().unwrap().iter().map(|m| m["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![1, 2, 3], "three 60 KB messages fit in 200 KB, a fourth does not");
    assert_eq!(body["more"], true, "the body says there is more to fetch at once");
    // The client comes back from its cursor and gets the rest.
    let epoch = body["epoch"].as_str().unwrap();
    let (_, rest) = server.get_json(&format!("/poll?since={epoch}-3&limit=10000")).await;
    assert_eq!(rest["messages"][0]["id"], 4);
    // A message larger than the cap still goes out, alone.
    let tiny = TestServer::with_config(Config { max_response_bytes: 1024, ..Config::default() }).await;
    publish_big(&tiny, 3, 5_000).await;
    let (_, body) = tiny.get_json("/poll?since=0").await;
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    assert_eq!(body["more"], true);
    // Long polling is capped the same way.
    let (_, body) = server.get_json("/long-poll?since=0&limit=10000").await;
    assert_eq!(body["messages"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_poll_holds_its_subscriber_place_until_its_body_is_written() {
    let config = Config { max_connections: 1, max_response_bytes: 16 << 20, ..Config::default() };
    let server = TestServer::with_config(config).await;
    publish_big(&server, 150, 60_000).await;
    // 9 MB of response to a client that never reads: more than the kernel's socket
    // buffers take, so the body cannot be written.
    let hog =
        stuck_reader(&server, &format!("GET /poll?since=0 HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = server.get_json("/poll").await;
    assert_eq!(status, 503, "the stuck poll still holds the only place: {body}");
    assert_eq!(body["error"], "too_many_connections");
    drop(hog);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.get_json("/poll").await.0 != 200 {
        assert!(Instant::now() < deadline, "the place was never given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// --- 3. A stuck SSE subscriber pins at most one batch's bytes. ---

#[tokio::test]
async fn an_sse_chunk_is_built_to_a_byte_budget() {
    let server = TestServer::start().await;
    publish_big(&server, 60, 10_000).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(format!("GET /sse?since=0 HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes())
        .await
        .unwrap();
    // Read the head and the first two chunk-size lines: the `retry:` chunk is part of
    // the first chunk, which must stay near 64 KiB rather than hold 256 messages.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await.unwrap().unwrap();
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen).into_owned();
    let after_head = text.split_once("\r\n\r\n").unwrap().1;
    let size_line = after_head.split("\r\n").next().unwrap();
    let size = usize::from_str_radix(size_line, 16).unwrap();
    assert!(size <= 64 * 1024 + 11_000, "first chunk is {size} bytes: a stuck reader would pin all of it");
    assert!(size > 10_000, "the chunk still batches messages: {size}");
}

#[tokio::test]
async fn stuck_sse_and_poll_readers_are_dropped_after_the_write_timeout() {
    let config = Config {
        write_timeout: Duration::from_millis(300),
        max_response_bytes: 16 << 20,
        ..Config::default()
    };
    let server = TestServer::with_config(config).await;
    let host = server.addr;
    let mut sse = stuck_reader(&server, &format!("GET /sse?since=0 HTTP/1.1\r\nHost: {host}\r\n\r\n")).await;
    // Through the router too: the second request on a keep-alive connection.
    let routed = format!(
        "GET /status HTTP/1.1\r\nHost: {host}\r\n\r\nGET /sse?since=0 HTTP/1.1\r\nHost: {host}\r\n\r\n"
    );
    let mut routed_sse = stuck_reader(&server, &routed).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // 9 MB: more than the kernel's send buffer absorbs (it grows to 4 MB per socket).
    publish_big(&server, 150, 60_000).await;
    let mut poll =
        stuck_reader(&server, &format!("GET /poll?since=0 HTTP/1.1\r\nHost: {host}\r\n\r\n")).await;
    // The kernel took the first 4 MB of each; the stall begins after that.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Each is closed: reading now drains what was buffered and then sees the end.
    for (name, tcp) in [("sse", &mut sse), ("routed sse", &mut routed_sse), ("poll", &mut poll)] {
        let (read, closed) = read_to_close(tcp, Duration::from_secs(10)).await;
        assert!(
            closed,
            "{name}: a client that stopped reading was never dropped (read {} bytes)",
            read.len()
        );
    }
    let text = metrics(&server).await;
    // Both SSE doors count alike: the direct one and the router's.
    assert!(metric(&text, "pushlab_slow_subscribers_closed_total{transport=\"sse\"}") >= 2.0, "{text}");
    let timeouts = metric(&text, "pushlab_write_timeouts_total");
    assert!(timeouts >= 3.0, "write timeouts: {timeouts}\n{text}");
}

// --- 4. Timeouts and the connection cap. ---

fn quick_timeouts() -> Config {
    Config {
        request_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        ..Config::default()
    }
}

#[tokio::test]
async fn silent_trickling_and_idle_connections_are_closed() {
    let server = TestServer::with_config(quick_timeouts()).await;
    // A socket that never speaks.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // A request line that never ends.
    let mut trickle = TcpStream::connect(server.addr).await.unwrap();
    trickle.write_all(b"GET /po").await.unwrap();
    // An idle keep-alive connection after one good request.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(format!("GET /status HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes())
        .await
        .unwrap();
    for (name, tcp) in [("silent", &mut silent), ("trickle", &mut trickle), ("idle keep-alive", &mut idle)] {
        let (_, closed) = read_to_close(tcp, Duration::from_secs(5)).await;
        assert!(closed, "{name} connection was never closed");
    }
    // Headers at one byte every 100 ms never finish within the timeout, although bytes
    // keep coming.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let mut closed = false;
    for byte in
        format!("GET /status HTTP/1.1\r\nHost: {}\r\nX-Slow: {}\r\n\r\n", server.addr, "a".repeat(100))
            .bytes()
    {
        if slow.write_all(&[byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    if !closed {
        closed = read_to_close(&mut slow, Duration::from_secs(1)).await.1;
    }
    assert!(closed, "a slowloris head was never cut off");
    // Everyone else is served.
    assert_eq!(server.get_json("/status").await.0, 200);
}

#[tokio::test]
async fn a_publish_body_that_never_arrives_gets_a_408_and_a_huge_one_a_413() {
    let server = TestServer::with_config(quick_timeouts()).await;
    let head = |length: usize| {
        format!(
            "POST /publish HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n",
            server.addr
        )
    };
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(format!("{}{{\"data\":", head(100)).as_bytes()).await.unwrap();
    let (bytes, _) = read_to_close(&mut half, Duration::from_secs(5)).await;
    let (status, body) = parse_response(&String::from_utf8_lossy(&bytes));
    assert_eq!((status, body["error"].as_str()), (408, Some("body_timeout")));
    let answer = raw_exchange(&server, head(999_999_999).as_bytes()).await;
    let (status, body) = parse_response(&answer);
    assert_eq!((status, body["error"].as_str()), (413, Some("too_large")));
}

#[tokio::test]
async fn past_the_socket_limit_a_connection_gets_a_json_503() {
    let server = TestServer::with_config(Config { max_sockets: 3, ..Config::default() }).await;
    let idle: Vec<TcpStream> =
        futures_util::future::join_all((0..3).map(|_| TcpStream::connect(server.addr)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answer =
        raw_exchange(&server, format!("GET /status HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes())
            .await;
    let (status, body) = parse_response(&answer);
    assert_eq!((status, body["error"].as_str()), (503, Some("too_many_sockets")), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
    drop(idle);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.get_json("/status").await.0, 200);
}

// --- 5. A restart is never silent: cursors carry the epoch. ---

#[tokio::test]
async fn a_cursor_from_before_a_restart_gets_a_reset_and_the_new_history() {
    let before = TestServer::start().await;
    before.publish_numbers(0, 10).await;
    let (_, body) = before.get_json("/poll?since=0").await;
    let old = format!("{}-10", body["epoch"].as_str().unwrap());
    drop(before);
    // The "restarted" server: a new run of the stream with 15 messages.
    let after = TestServer::start().await;
    after.publish_numbers(100, 15).await;
    let (_, body) = after.get_json(&format!("/poll?since={old}")).await;
    assert_eq!(body["reset"], true);
    assert_exactly(body["messages"].as_array().unwrap(), 1, 15);
    assert_ne!(body["epoch"].as_str().unwrap(), &old[..8]);
    let (_, body) = after.get_json(&format!("/long-poll?since={old}")).await;
    assert_eq!((body["reset"].as_bool(), body["messages"].as_array().unwrap().len()), (Some(true), 15));
    // SSE, resuming as a browser does, with Last-Event-ID.
    let response =
        reqwest::Client::new().get(after.url("/sse")).header("Last-Event-ID", &old).send().await.unwrap();
    use eventsource_stream::Eventsource;
    use futures_util::StreamExt;
    let mut events = response.bytes_stream().eventsource();
    let first = tokio::time::timeout(Duration::from_secs(5), events.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.event, "reset");
    assert!(first.id.ends_with("-0"), "the reset moves Last-Event-ID to the new run: {}", first.id);
    let mut ids = Vec::new();
    while ids.len() < 15 {
        let event =
            tokio::time::timeout(Duration::from_secs(5), events.next()).await.unwrap().unwrap().unwrap();
        ids.push(serde_json::from_str::<Value>(&event.data).unwrap()["id"].as_u64().unwrap());
    }
    assert_eq!(ids, (1..=15).collect::<Vec<_>>());
    // WebSocket.
    let mut ws = ws_connect(&after, &format!("?since={old}")).await;
    let mut reset = false;
    let mut messages = Vec::new();
    while messages.len() < 15 {
        let frame = ws_next(&mut ws).await.expect("a frame");
        match frame["type"].as_str() {
            Some("reset") => reset = true,
            _ if frame.get("id").is_some() => messages.push(frame),
            _ => {}
        }
    }
    assert!(reset, "the WebSocket was not told of the restart");
    assert_exactly(&messages, 1, 15);
}

// --- 9. Payloads are delivered as written. ---

#[tokio::test]
async fn data_is_delivered_byte_for_byte() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    for body in
        [r#"{"data": 18446744073709551616}"#, r#"{"data":1e2}"#, "{\"data\": {\n  \"pretty\": [1, 2.50]\n}}"]
    {
        let status = client
            .post(server.url("/publish"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 201);
    }
    let text = reqwest::get(server.url("/poll?since=0")).await.unwrap().text().await.unwrap();
    assert!(text.contains(r#""data":18446744073709551616,"#), "{text}");
    assert!(text.contains(r#""data":1e2,"#), "{text}");
    assert!(text.contains(r#""data":{"pretty":[1,2.50]},"#), "{text}");
}

// --- 10. Every refusal is JSON. ---

#[tokio::test]
async fn requests_hyper_cannot_parse_get_a_json_error() {
    let server = TestServer::start().await;
    let (status, body) = parse_response(&raw_exchange(&server, b"GARBAGE\r\n\r\n").await);
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    let huge =
        format!("GET /status HTTP/1.1\r\nHost: {}\r\nX-Big: {}\r\n\r\n", server.addr, "a".repeat(600_000));
    let (status, body) = parse_response(&raw_exchange(&server, huge.as_bytes()).await);
    assert_eq!((status, body["error"].as_str()), (431, Some("headers_too_large")));
    // On a keep-alive connection, after a good request: the second one is hyper's.
    let twice = format!("GET /status HTTP/1.1\r\nHost: {}\r\n\r\nNOT HTTP\r\n\r\n", server.addr);
    let answer = raw_exchange(&server, twice.as_bytes()).await;
    let second = &answer[answer.rfind("HTTP/1.1 ").unwrap()..];
    assert_eq!(parse_response(second).1["error"], "bad_request", "{answer}");
}

#[tokio::test]
async fn every_503_says_when_to_retry_and_limit_errors_say_the_range() {
    let server = TestServer::with_config(Config { max_connections: 1, ..Config::default() }).await;
    let _sse = SseClient::connect(&server, "", None).await;
    let response = reqwest::get(server.url("/poll")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    drop(_sse);
    let free = TestServer::start().await;
    let (_, body) = free.get_json("/poll?since=0&limit=-1").await;
    assert!(body["message"].as_str().unwrap().contains("from 1 to 10000"), "{body}");
}

// --- 11. The publish token. ---

#[tokio::test]
async fn the_token_is_checked_first_case_insensitively_and_a_right_one_wins() {
    let config = Config { publish_token: Some("s3cret".into()), ..Config::default() };
    let server = TestServer::with_config(config).await;
    // The body is never read without the token: a wrong token with a body that never
    // arrives is refused at once, not after a timeout.
    let started = Instant::now();
    let request = format!(
        "POST /publish HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer nope\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        server.addr
    );
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 401"));
    assert!(started.elapsed() < Duration::from_secs(2));
    // `bearer` in any case.
    let status = reqwest::Client::new()
        .post(server.url("/publish"))
        .header("authorization", "bEaReR s3cret")
        .json(&json!({"data": 1}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 201);
    // WebSocket: a wrong ?token= does not cancel a right Authorization header.
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        server.ws_url("/ws?token=wrong"),
    )
    .unwrap();
    request.headers_mut().insert("authorization", "Bearer s3cret".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws_send(&mut ws, json!({"type": "publish", "data": 2})).await;
    loop {
        let frame = ws_next(&mut ws).await.expect("a reply");
        if frame["type"] == "published" {
            break;
        }
        assert_ne!(frame["type"], "error", "{frame}");
    }
}

#[test]
fn bad_server_settings_are_refused_at_start_up() {
    let refused = |config: Config| config.validate(20_000).unwrap_err();
    assert!(refused(Config { heartbeat: Duration::ZERO, ..Config::default() }).contains("--heartbeat"));
    assert!(
        refused(Config { heartbeat: Duration::from_nanos(1), ..Config::default() }).contains("--heartbeat")
    );
    assert!(refused(Config { history: 0, ..Config::default() }).contains("--history"));
    assert!(refused(Config { max_connections: 0, ..Config::default() }).contains("--max-connections"));
    assert!(refused(Config { max_message_bytes: usize::MAX, ..Config::default() })
        .contains("--max-message-bytes"));
    assert!(refused(Config { publish_token: Some(String::new()), ..Config::default() })
        .contains("--publish-token"));
    assert!(refused(Config { max_sockets: 20_000, ..Config::default() }).contains("--max-sockets"));
    assert!(Config::default().validate(20_000).is_ok());
}

#[test]
fn serve_refuses_bad_flags_with_a_message_and_exit_code_2() {
    for args in [
        &["--heartbeat", "0s"][..],
        &["--history", "0"],
        &["--max-connections", "0"],
        &["--max-message-bytes", "18446744073709551615"],
        &["--publish-token", ""],
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_pushlab"))
            .arg("serve")
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(args[0]), "{args:?}: the message names the flag: {stderr}");
    }
}

// --- 12. Cross-site holes on a developer's laptop. ---

#[tokio::test]
async fn cross_site_requests_cannot_publish_and_foreign_hosts_are_refused() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    // The no-preflight `text/plain` POST any page can send.
    let response = client
        .post(server.url("/publish"))
        .header("content-type", "text/plain")
        .body(r#"{"data":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let response = client
        .post(server.url("/publish"))
        .header("origin", "https://evil.example")
        .json(&json!({"data": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "cross_origin_publish");
    // DNS rebinding: a hostile name pointed at 127.0.0.1 still says its name in Host,
    // on the router and on the SSE fast path alike.
    for path in ["/poll", "/sse"] {
        let answer = raw_exchange(
            &server,
            format!("GET {path} HTTP/1.1\r\nHost: evil.example:3000\r\n\r\n").as_bytes(),
        )
        .await;
        let (status, body) = parse_response(&answer);
        assert_eq!((status, body["error"].as_str()), (403, Some("host_not_allowed")), "{path}");
    }
    assert_eq!(server.get_json("/poll").await.0, 200, "localhost names still work");
    let (_, last) = server.get_json("/poll").await;
    assert_eq!(last["last_id"], 0, "nothing was published");
}

// --- 13 and 14. The process. ---

#[test]
fn serve_survives_a_closed_stdout_and_exits_0_on_sigterm() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("listening on"));
    // `| head -1`: the reader is gone.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "serve must exit 0, not panic on the closed pipe");
}

#[tokio::test]
async fn shutdown_takes_under_a_second_even_with_clients_that_do_not_read() {
    let mut server = TestServer::start().await;
    let host = server.addr;
    let mut stuck = Vec::new();
    for _ in 0..5 {
        stuck
            .push(stuck_reader(&server, &format!("GET /sse?since=0 HTTP/1.1\r\nHost: {host}\r\n\r\n")).await);
        let ws = format!(
            "GET /ws?since=0 HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stuck.push(stuck_reader(&server, &ws).await);
    }
    publish_big(&server, 30, 60_000).await;
    let started = Instant::now();
    server.begin_shutdown();
    (&mut server.task).await.unwrap().unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1000), "shutdown took {took:?}");
}

#[test]
fn help_serve_lists_every_limit() {
    let output =
        std::process::Command::new(env!("CARGO_BIN_EXE_pushlab")).args(["help", "serve"]).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for limit in [
        "--max-connections",
        "--max-sockets",
        "--request-timeout",
        "--body-timeout",
        "--write-timeout",
        "--max-response-bytes",
        "--max-message-bytes",
        "--heartbeat",
        "--history",
        "Fixed limits",
        "poll bytes in flight",
        "Retry-After",
    ] {
        assert!(help.contains(limit), "`pushlab help serve` does not mention {limit}:\n{help}");
    }
}

/// The documented bound on what one stuck SSE subscriber costs the server beyond the
/// shared log (docs/api.md): one chunk of at most 64 KiB plus one message, and its
/// session; 256 KiB leaves room for the allocator.
const STUCK_SUBSCRIBER_BOUND: u64 = 256 * 1024;

fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test]
async fn stuck_sse_subscribers_add_no_more_than_the_documented_amount_each() {
    // A real server process, so its RSS is its own.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["serve", "--addr", "127.0.0.1:0", "--history", "300"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut line = String::new();
    use tokio::io::AsyncBufReadExt;
    tokio::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).await.unwrap();
    let addr: std::net::SocketAddr =
        line.split("http://").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let client = reqwest::Client::new();
    for _ in 0..300 {
        let body = json!({"data": "x".repeat(60_000)});
        client.post(format!("http://{addr}/publish")).json(&body).send().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_of(pid);
    const STUCK: u64 = 40;
    let mut stuck = Vec::new();
    for _ in 0..STUCK {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(2048).unwrap();
        let mut tcp = socket.connect(addr).await.unwrap();
        tcp.write_all(format!("GET /sse?since=0 HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
        stuck.push(tcp);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = rss_of(pid).saturating_sub(before);
    let _ = child.kill().await;
    // Before the byte budget each of them pinned a private copy of 256 messages: 15 MB.
    assert!(
        grown <= STUCK * STUCK_SUBSCRIBER_BOUND,
        "{STUCK} stuck subscribers grew the server by {} KiB, over {} KiB each",
        grown / 1024,
        STUCK_SUBSCRIBER_BOUND / 1024
    );
}

// --- Found by an independent hostile review after the first round of fixes. ---

#[tokio::test]
async fn a_first_head_cannot_take_two_request_timeouts() {
    // Silent until just before the deadline for a first byte, then one byte every 50 ms:
    // hyper's own header timeout would start only then.
    let config = Config { request_timeout: Duration::from_secs(1), ..Config::default() };
    let server = TestServer::with_config(config).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(900)).await;
    let request =
        format!("GET /status HTTP/1.1\r\nHost: {}\r\nX-Slow: {}\r\n\r\n", server.addr, "a".repeat(200));
    for byte in request.bytes() {
        if tcp.write_all(&[byte]).await.is_err() {
            break;
        }
        let mut probe = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(50), tcp.read(&mut probe)).await {
            break;
        }
    }
    let closed_after = started.elapsed();
    assert!(
        closed_after < Duration::from_millis(1600),
        "closed after {closed_after:?}: the first head gets at most 1.25 request timeouts"
    );
}

#[tokio::test]
async fn a_host_named_twice_or_in_the_target_is_checked() {
    let server = TestServer::start().await;
    for path in ["/status", "/sse"] {
        for hosts in ["Host: evil.example\r\nHost: 127.0.0.1", "Host: 127.0.0.1\r\nHost: evil.example"] {
            let answer =
                raw_exchange(&server, format!("GET {path} HTTP/1.1\r\n{hosts}\r\n\r\n").as_bytes()).await;
            let (status, body) = parse_response(&answer);
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some("duplicate_host")),
                "{path} {hosts:?}: {answer}"
            );
        }
    }
    let absolute = "GET http://evil.example/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let (status, body) = parse_response(&raw_exchange(&server, absolute.as_bytes()).await);
    assert_eq!((status, body["error"].as_str()), (403, Some("host_not_allowed")));
    let twice = format!(
        "GET /sse HTTP/1.1\r\nHost: {}\r\nLast-Event-ID: 1\r\nLast-Event-ID: zz\r\n\r\n",
        server.addr
    );
    let (status, body) = parse_response(&raw_exchange(&server, twice.as_bytes()).await);
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_last_event_id")));
}

#[tokio::test]
async fn any_right_token_wins_and_a_second_origin_is_not_trusted() {
    let config = Config { publish_token: Some("s3cret".into()), ..Config::default() };
    let server = TestServer::with_config(config).await;
    let body = r#"{"data":1}"#;
    let request = format!(
        "POST /publish HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer nope\r\nAuthorization: Bearer s3cret\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    let (status, _) = parse_response(&raw_exchange(&server, request.as_bytes()).await);
    assert_eq!(status, 201);
    let open = TestServer::start().await;
    let own = format!("http://{}", open.addr);
    let request = format!(
        "POST /publish HTTP/1.1\r\nHost: {}\r\nOrigin: {own}\r\nOrigin: http://evil.example\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        open.addr,
        body.len()
    );
    let (status, body) = parse_response(&raw_exchange(&open, request.as_bytes()).await);
    assert_eq!((status, body["error"].as_str()), (403, Some("cross_origin_publish")));
}

#[tokio::test]
async fn an_http2_client_that_breaks_the_protocol_gets_goaway() {
    let server = TestServer::start().await;
    let answer = {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        // The preface, then a frame no stream may carry: DATA on stream 0.
        tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
        tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap(); // empty SETTINGS
        tcp.write_all(&[0, 0, 1, 0, 0, 0, 0, 0, 0, b'x']).await.unwrap();
        read_to_close(&mut tcp, Duration::from_secs(5)).await.0
    };
    // Frames: the server's SETTINGS first, then somewhere a GOAWAY (type 7) with
    // PROTOCOL_ERROR (1), and the connection closed.
    assert_eq!(answer[3], 0x4, "the server's preface is a SETTINGS frame");
    let mut at = 0;
    let mut goaway = None;
    while at + 9 <= answer.len() {
        let length = u32::from_be_bytes([0, answer[at], answer[at + 1], answer[at + 2]]) as usize;
        if answer[at + 3] == 0x7 {
            goaway = Some(u32::from_be_bytes(answer[at + 13..at + 17].try_into().unwrap()));
        }
        at += 9 + length;
    }
    assert_eq!(goaway, Some(1), "GOAWAY PROTOCOL_ERROR in {answer:?}");
    assert_eq!(server.get_json("/status").await.0, 200, "and the server serves everyone else");
}
