//! Time and life cycle: long-poll timeouts (with paused time), status and metrics, and a
//! prompt shutdown with clients connected.

use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::util::*;

#[tokio::test(start_paused = true)]
async fn a_long_poll_is_held_until_its_timeout_then_answers_empty() {
    let server = TestServer::start().await;
    let started = tokio::time::Instant::now();
    let (status, body) = server.get_json("/long-poll?since=0&timeout=30").await;
    assert_eq!(status, 200);
    assert_eq!((body["messages"].clone(), body["last_id"].clone()), (json!([]), json!(0)));
    let held = started.elapsed();
    assert!(held >= Duration::from_secs(30) && held < Duration::from_secs(31), "held {held:?}");

    // Without `timeout` the default is 30 s too.
    let started = tokio::time::Instant::now();
    server.get_json("/long-poll?since=0").await;
    assert!(started.elapsed() >= Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn a_held_long_poll_answers_as_soon_as_a_message_is_published() {
    let server = TestServer::start().await;
    let started = tokio::time::Instant::now();
    let poll = server.get_json("/long-poll?since=0&timeout=60");
    let publish = async {
        tokio::time::sleep(Duration::from_secs(7)).await;
        server.publish_numbers(0, 1).await;
    };
    let ((status, body), ()) = tokio::join!(poll, publish);
    assert_eq!(status, 200);
    assert_eq!(body["messages"][0]["id"], 1);
    let held = started.elapsed();
    assert!(held >= Duration::from_secs(7) && held < Duration::from_secs(8), "held {held:?}");
}

#[tokio::test]
async fn status_and_metrics_count_per_transport() {
    let server = TestServer::start().await;
    let mut sse = SseClient::connect(&server, "?since=0", None).await;
    let mut ws = ws_connect(&server, "?since=0").await;
    server.publish_numbers(0, 3).await;
    sse.messages_until(3).await;
    ws_messages_until(&mut ws, 3).await;
    poll_until(&server, "/poll", 0, 3).await;

    let (_, status) = server.get_json("/status").await;
    assert_eq!(status["last_id"], 3);
    assert_eq!(status["messages_published"], 3);
    assert_eq!(status["subscribers"]["sse"], 1);
    assert_eq!(status["subscribers"]["ws"], 1);
    assert!(status["requests"]["short_poll"].as_u64().unwrap() >= 1);
    assert!(status["uptime_seconds"].as_f64().unwrap() > 0.0);

    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("pushlab_messages_published_total 3"), "{metrics}");
    assert!(metrics.contains(r#"pushlab_subscribers{transport="ws"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"pushlab_sent_bytes_total{transport="sse"}"#), "{metrics}");
    assert!(metrics.contains("pushlab_last_id 3"), "{metrics}");
    assert!(metrics.trim_end().ends_with("# EOF"), "{metrics}");
}

#[tokio::test]
async fn shutdown_is_prompt_and_tells_every_client() {
    let mut server = TestServer::start().await;
    let mut sse = SseClient::connect(&server, "", None).await;
    let mut ws = ws_connect(&server, "").await;
    let long_poll = tokio::spawn({
        let url = server.url("/long-poll?timeout=100");
        async move { reqwest::get(url).await.unwrap().json::<serde_json::Value>().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = std::time::Instant::now();
    server.begin_shutdown();

    // WebSocket: a close frame with 1001 (going away).
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(2), futures_util::StreamExt::next(&mut ws)).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.unwrap().code, CloseCode::Away);
    // SSE: a shutdown event, then the end of the stream.
    let bye = sse.next().await.unwrap();
    assert_eq!(bye.event, "shutdown");
    assert!(sse.next().await.is_none());
    // Long poll: answered (empty) instead of held for 100 s.
    let body = long_poll.await.unwrap();
    assert_eq!(body["messages"], json!([]));

    tokio::time::timeout(Duration::from_secs(2), &mut server.task)
        .await
        .expect("run returns")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1), "shutdown took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_websocket_peer_that_misses_two_pings_is_closed() {
    let config = pushlab_server::Config { heartbeat: Duration::from_millis(100), ..Default::default() };
    let server = TestServer::with_config(config).await;
    let mut ws = ws_connect(&server, "").await;
    // Not reading means never answering the server's pings (tungstenite answers them
    // while reading). After two missed heartbeats the server gives up on us.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut pings = 0;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(2), futures_util::StreamExt::next(&mut ws)).await {
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(Some(Ok(Message::Close(frame)))) => break frame.unwrap(),
            other => panic!("expected pings then a close frame, got {other:?}"),
        }
    };
    // One ping at the first heartbeat, unanswered; at the second the peer has been
    // silent for two heartbeats and is closed (it used to take a third).
    assert_eq!(pings, 1, "{pings} pings before the close");
    assert_eq!(close.code, CloseCode::Policy);
}

#[tokio::test]
async fn a_websocket_peer_that_answers_pings_stays_connected() {
    let config = pushlab_server::Config { heartbeat: Duration::from_millis(100), ..Default::default() };
    let server = TestServer::with_config(config).await;
    let mut ws = ws_connect(&server, "?since=0").await;
    // Reading answers pings; a message published after five heartbeats still arrives.
    let reader = tokio::spawn(async move { ws_messages_until(&mut ws, 1).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.publish_numbers(0, 1).await;
    assert_exactly(&reader.await.unwrap(), 1, 1);
}

#[tokio::test]
async fn an_idle_sse_stream_gets_a_keep_alive_comment_every_heartbeat() {
    let config = pushlab_server::Config { heartbeat: Duration::from_millis(100), ..Default::default() };
    let server = TestServer::with_config(config).await;
    let mut response = reqwest::get(server.url("/sse")).await.unwrap();
    let mut body = String::new();
    while body.matches(": keep-alive\n\n").count() < 2 {
        let chunk =
            tokio::time::timeout(Duration::from_secs(2), response.chunk()).await.unwrap().unwrap().unwrap();
        body.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(body.starts_with("retry: 1000\n\n"), "{body:?}");
}

/// A reader that stops reading while 40 MB are published must cost the server no more
/// than its retention: when it reads again it gets what is retained and a gap notice for
/// the rest — every message accounted for, none twice.
#[tokio::test]
async fn a_slow_reader_lags_its_cursor_and_is_told_what_it_missed() {
    const PUBLISHED: u64 = 20_000;
    let config = pushlab_server::Config { history: 100, ..Default::default() };
    let server = TestServer::with_config(config).await;
    let mut sse = SseClient::connect(&server, "?since=0", None).await;
    let mut ws = ws_connect(&server, "?since=0").await;
    let client = reqwest::Client::new();
    let blob = "z".repeat(2_000);
    for batch in 0..(PUBLISHED / 100) {
        let messages: Vec<serde_json::Value> =
            (0..100).map(|i| json!({"data": [batch * 100 + i, blob]})).collect();
        client.post(server.url("/publish")).json(&messages).send().await.unwrap();
    }

    let mut sse_seen = Vec::new();
    let mut sse_missed = 0;
    while sse_seen.last() != Some(&PUBLISHED) {
        let event = sse.next().await.expect("the stream goes on");
        match event.event.as_str() {
            "gap" => sse_missed += event.data["missed"].as_u64().unwrap(),
            _ => sse_seen.push(event.data["id"].as_u64().unwrap()),
        }
    }
    let mut ws_seen = Vec::new();
    let mut ws_missed = 0;
    while ws_seen.last() != Some(&PUBLISHED) {
        let frame = ws_next(&mut ws).await.expect("the socket stays open");
        match frame["id"].as_u64() {
            Some(id) => ws_seen.push(id),
            None => ws_missed += frame["missed"].as_u64().unwrap(),
        }
    }
    for (name, seen, missed) in [("sse", &sse_seen, sse_missed), ("ws", &ws_seen, ws_missed)] {
        assert!(missed > 0, "{name}: 40 MB cannot all sit in socket buffers; the reader must have lagged");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{name}: in order, no duplicates");
        assert_eq!(seen.len() as u64 + missed, PUBLISHED, "{name}: received + missed = published");
    }
}

#[tokio::test]
async fn the_binary_stops_on_sigterm_within_a_second_and_exits_0() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let addr = first.split("http://").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
    let sse = reqwest::get(format!("http://{addr}/sse")).await.unwrap();
    assert_eq!(sse.status(), 200);

    let started = std::time::Instant::now();
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(2), child.wait()).await.expect("exits").unwrap();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    // The WebSocket client was told why: 1001, going away.
    let close = loop {
        match futures_util::StreamExt::next(&mut ws).await {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.unwrap().code, CloseCode::Away);
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("pushlab serve: stopped"));
}
