//! Bad input gets a 4xx with a JSON body saying what was wrong, and loses nothing:
//! every other client keeps being served and the stream stays intact.

use pushlab_server::Config;
use serde_json::{json, Value};

use crate::util::*;

async fn request(server: &TestServer, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client.request(method.parse().unwrap(), server.url(path));
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path}: body is not JSON: {text}"));
    (status, body)
}

#[tokio::test]
async fn bad_requests_get_a_json_error_and_everyone_else_is_still_served() {
    let server = TestServer::with_config(Config { max_message_bytes: 100, ..Config::default() }).await;
    // Subscribers on every streaming transport watch the whole time.
    let mut sse = SseClient::connect(&server, "?since=0", None).await;
    let mut ws = ws_connect(&server, "?since=0").await;
    server.publish_numbers(0, 5).await;

    let big = format!(r#"{{"data":"{}"}}"#, "x".repeat(200));
    let cases: &[(&str, &str, Option<&str>, u16, &str)] = &[
        ("GET", "/poll?since=abc", None, 400, "invalid_since"),
        ("GET", "/poll?since=-1", None, 400, "invalid_since"),
        ("GET", "/poll?since=1&limit=x", None, 400, "invalid_limit"),
        ("GET", "/poll?since=1&limit=-3", None, 400, "invalid_limit"),
        ("GET", "/long-poll?since=1&timeout=abc", None, 400, "invalid_timeout"),
        ("GET", "/long-poll?since=1&timeout=-1", None, 400, "invalid_timeout"),
        ("GET", "/long-poll?since=1&timeout=121", None, 400, "timeout_too_large"),
        ("GET", "/sse?since=x", None, 400, "invalid_since"),
        ("GET", "/ws?since=-2", None, 400, "invalid_since"),
        ("POST", "/publish", Some("{not json"), 400, "invalid_json"),
        ("POST", "/publish", Some(r#"{"type":"chat"}"#), 400, "missing_data"),
        ("POST", "/publish", Some(r#"[{"data":1},{"nodata":2}]"#), 400, "missing_data"),
        ("POST", "/publish", Some("[]"), 400, "empty_batch"),
        ("POST", "/publish", Some(r#"{"type":"a b","data":1}"#), 400, "invalid_type"),
        ("POST", "/publish", Some(big.as_str()), 413, "too_large"),
        ("GET", "/nowhere", None, 404, "not_found"),
        ("DELETE", "/poll", None, 405, "method_not_allowed"),
        ("GET", "/publish", None, 405, "method_not_allowed"),
    ];
    for &(method, path, body, status, code) in cases {
        let (got_status, got) = request(&server, method, path, body).await;
        assert_eq!(
            (got_status, got["error"].as_str().unwrap_or("")),
            (status, code),
            "{method} {path}: {got}"
        );
        assert!(got["message"].as_str().is_some_and(|m| !m.is_empty()), "{method} {path}: {got}");
    }

    // A rejected batch appends nothing of it: still 5 messages.
    let (_, status) = server.get_json("/status").await;
    assert_eq!(status["last_id"], 5);

    server.publish_numbers(5, 5).await;
    assert_exactly(&sse.messages_until(10).await, 1, 10);
    assert_exactly(&ws_messages_until(&mut ws, 10).await, 1, 10);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_with_json() {
    let server = TestServer::with_config(Config { max_message_bytes: 1_000, ..Config::default() }).await;
    // 1 MiB is the smallest body limit; send more than that.
    let huge = format!(r#"{{"data":"{}"}}"#, "y".repeat(2 * 1024 * 1024));
    let (status, body) = request(&server, "POST", "/publish", Some(&huge)).await;
    assert_eq!((status, body["error"].as_str().unwrap()), (413, "too_large"));
}

#[tokio::test]
async fn ws_frames_the_server_cannot_understand_get_an_error_frame_not_a_closed_socket() {
    let server = TestServer::start().await;
    let mut ws = ws_connect(&server, "?since=0").await;
    for (frame, code) in [
        ("not json", "invalid_json"),
        (r#"{"type":"dance"}"#, "unknown_frame"),
        (r#"{"type":"publish"}"#, "missing_data"),
        (r#"{"type":"publish","message_type":"gap","data":1}"#, "invalid_type"),
    ] {
        use futures_util::SinkExt;
        ws.send(tokio_tungstenite::tungstenite::Message::text(frame)).await.unwrap();
        let reply = ws_next(&mut ws).await.unwrap();
        assert_eq!((reply["type"].as_str(), reply["error"].as_str()), (Some("error"), Some(code)), "{frame}");
    }
    ws.send(tokio_tungstenite::tungstenite::Message::binary(vec![1, 2, 3])).await.map_err(|_| ()).ok();
    use futures_util::SinkExt;
    assert_eq!(ws_next(&mut ws).await.unwrap()["error"], "binary_not_supported");
    // Still connected and still receiving.
    server.publish_numbers(0, 2).await;
    assert_exactly(&ws_messages_until(&mut ws, 2).await, 1, 2);
}

#[tokio::test]
async fn publishing_requires_the_token_when_one_is_set() {
    let config = Config { publish_token: Some("s3cret".into()), ..Config::default() };
    let server = TestServer::with_config(config).await;
    let client = reqwest::Client::new();
    let url = server.url("/publish");
    let denied = client.post(&url).json(&json!({"data": 1})).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    assert_eq!(denied.json::<Value>().await.unwrap()["error"], "unauthorized");
    let wrong = client.post(&url).bearer_auth("nope").json(&json!({"data": 1})).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let allowed = client.post(&url).bearer_auth("s3cret").json(&json!({"data": 1})).send().await.unwrap();
    assert_eq!(allowed.status(), 201);

    // WebSocket: anyone may subscribe; publishing needs ?token=.
    let mut reader = ws_connect(&server, "?since=0").await;
    assert_eq!(ws_next(&mut reader).await.unwrap()["id"], 1);
    ws_send(&mut reader, json!({"type": "publish", "data": 2})).await;
    assert_eq!(ws_next(&mut reader).await.unwrap()["error"], "unauthorized");
    let mut writer = ws_connect(&server, "?token=s3cret").await;
    ws_send(&mut writer, json!({"type": "publish", "data": 3})).await;
    assert_eq!(ws_next(&mut writer).await.unwrap(), json!({"type": "published", "message_id": 2}));
}

#[tokio::test]
async fn subscribers_over_the_limit_get_503_before_any_upgrade() {
    let server = TestServer::with_config(Config { max_connections: 2, ..Config::default() }).await;
    let sse = SseClient::connect(&server, "", None).await;
    let ws = ws_connect(&server, "").await;

    let (status, body) = request(&server, "GET", "/sse", None).await;
    assert_eq!((status, body["error"].as_str().unwrap()), (503, "too_many_connections"));
    let (status, body) = request(&server, "GET", "/poll", None).await;
    assert_eq!((status, body["error"].as_str().unwrap()), (503, "too_many_connections"));
    match tokio_tungstenite::connect_async(server.ws_url("/ws")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected a 503 refusal before the upgrade, got {other:?}"),
    }
    // Publishing is not a subscriber and still works; a freed place is reusable.
    server.publish_numbers(0, 1).await;
    drop(ws);
    let mut admitted = None;
    for _ in 0..50 {
        let (_, status) = server.get_json("/status").await;
        if status["subscribers"]["ws"] == 0 {
            admitted = Some(ws_connect(&server, "?since=0").await);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut ws = admitted.expect("the closed WebSocket's place is released");
    assert_eq!(ws_next(&mut ws).await.unwrap()["id"], 1);
    drop(sse);
}

#[tokio::test]
async fn cors_headers_go_only_to_browsers_cross_origin_requests() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    // The lab's clients send no Origin: not one byte of CORS on their polls.
    let plain = client.get(server.url("/poll")).send().await.unwrap();
    assert!(plain.headers().get("access-control-allow-origin").is_none());
    assert!(plain.headers().get("vary").is_none());
    // A page on another origin may read the stream…
    let cross = client.get(server.url("/poll")).header("Origin", "http://example.test").send().await.unwrap();
    assert_eq!(cross.headers()["access-control-allow-origin"], "*");
    // …and publish with JSON after a preflight.
    let preflight = client
        .request(reqwest::Method::OPTIONS, server.url("/publish"))
        .header("Origin", "http://example.test")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert!(preflight.headers()["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    assert!(preflight.headers()["access-control-allow-headers"].to_str().unwrap().contains("content-type"));
}

#[tokio::test]
async fn every_refusal_is_counted_for_metrics() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    for (path, status) in [("/poll?since=x", 400), ("/nowhere", 404), ("/poll", 200), ("/sse?since=-1", 400)]
    {
        assert_eq!(client.get(server.url(path)).send().await.unwrap().status(), status, "{path}");
    }
    let oversized = client
        .post(server.url("/publish"))
        .header("content-type", "application/json")
        .body(vec![b' '; 10 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status(), 413);
    let metrics = client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("pushlab_rejected_requests_total 4\n"), "{metrics}");
}
