//! Delivery: every transport gets every message once, in order, and resumes without
//! loss; clients behind retention or ahead of the stream are told so.

use pushlab_server::Config;
use serde_json::json;

use crate::util::*;

const N: u64 = 1_000;

#[tokio::test]
async fn short_poll_delivers_every_message_once_in_order() {
    let server = TestServer::start().await;
    let publisher = server.publish_numbers(0, N);
    let (ids, messages) = tokio::join!(publisher, poll_until(&server, "/poll", 0, N));
    assert_eq!(ids, (1..=N).collect::<Vec<_>>());
    assert_exactly(&messages, 1, N);
    assert_eq!(messages[41]["data"], json!({"n": 41}));
}

#[tokio::test]
async fn long_poll_delivers_every_message_once_in_order() {
    let server = TestServer::start().await;
    let (_, messages) = tokio::join!(server.publish_numbers(0, N), poll_until(&server, "/long-poll", 0, N));
    assert_exactly(&messages, 1, N);
}

#[tokio::test]
async fn sse_delivers_every_message_once_in_order() {
    let server = TestServer::start().await;
    let mut sse = SseClient::connect(&server, "?since=0", None).await;
    server.publish_numbers(0, N).await;
    let messages = sse.messages_until(N).await;
    assert_exactly(&messages, 1, N);
}

#[tokio::test]
async fn sse_events_carry_id_and_type() {
    let server = TestServer::start().await;
    let mut sse = SseClient::connect(&server, "?since=0", None).await;
    reqwest::Client::new()
        .post(server.url("/publish"))
        .json(&json!({"type": "chat", "data": "hi"}))
        .send()
        .await
        .unwrap();
    let event = sse.next().await.unwrap();
    // The id is the cursor `EPOCH-ID`: what the browser sends back as Last-Event-ID.
    let epoch = server.get_json("/poll").await.1["epoch"].as_str().unwrap().to_string();
    assert_eq!((event.id.as_str(), event.event.as_str()), (format!("{epoch}-1").as_str(), "chat"));
    assert_eq!(event.data["data"], "hi");
}

#[tokio::test]
async fn sse_without_event_names_sends_every_type_as_an_unnamed_message() {
    let server = TestServer::start().await;
    let mut sse = SseClient::connect(&server, "?since=0&event_names=false", None).await;
    reqwest::Client::new()
        .post(server.url("/publish"))
        .json(&json!({"type": "price_tick", "data": 7}))
        .send()
        .await
        .unwrap();
    let event = sse.next().await.unwrap();
    // An unnamed event is a "message" event to EventSource; the type stays in the JSON.
    assert!(event.id.ends_with("-1"), "{}", event.id);
    assert_eq!(event.event.as_str(), "message");
    assert_eq!((event.data["type"].as_str(), event.data["data"].as_u64()), (Some("price_tick"), Some(7)));
}

#[tokio::test]
async fn ws_delivers_every_message_once_in_order() {
    let server = TestServer::start().await;
    let mut ws = ws_connect(&server, "?since=0").await;
    server.publish_numbers(0, N).await;
    let messages = ws_messages_until(&mut ws, N).await;
    assert_exactly(&messages, 1, N);
}

#[tokio::test]
async fn every_transport_resumes_after_a_disconnect_without_loss_or_duplicate() {
    let server = TestServer::start().await;
    server.publish_numbers(0, 300).await;

    // Each client reads the first part, goes away, more is published, it comes back.
    let mut sse = SseClient::connect(&server, "?since=0", None).await;
    let sse_first = sse.messages_until(120).await;
    drop(sse);
    let mut ws = ws_connect(&server, "?since=0").await;
    let ws_first = ws_messages_until(&mut ws, 170).await;
    drop(ws);
    let (_, first_page) = server.get_json("/poll?since=0&limit=50").await;
    let poll_first = first_page["messages"].as_array().unwrap().clone();

    server.publish_numbers(300, 200).await;

    // SSE resumes the way a browser does: Last-Event-ID, which wins over `since`.
    let mut sse = SseClient::connect(&server, "?since=5", Some(120)).await;
    let sse_rest = sse.messages_until(500).await;
    let mut ws = ws_connect(&server, "?since=170").await;
    let ws_rest = ws_messages_until(&mut ws, 500).await;
    let poll_rest = poll_until(&server, "/poll", 50, 500).await;
    let long_poll_rest = poll_until(&server, "/long-poll", 50, 500).await;

    assert_exactly(&[sse_first, sse_rest].concat(), 1, 500);
    assert_exactly(&[ws_first, ws_rest].concat(), 1, 500);
    assert_exactly(&[poll_first.clone(), poll_rest].concat(), 1, 500);
    assert_exactly(&[poll_first, long_poll_rest].concat(), 1, 500);
}

#[tokio::test]
async fn a_client_behind_retention_is_told_how_many_it_missed() {
    let server = TestServer::with_config(Config { history: 10, ..Config::default() }).await;
    server.publish_numbers(0, 50).await; // retains 41..=50

    for path in ["/poll", "/long-poll"] {
        let (status, body) = server.get_json(&format!("{path}?since=5")).await;
        assert_eq!(status, 200);
        assert_eq!(body["missed"], 35, "{path}: ids 6..=40 are gone");
        assert_exactly(body["messages"].as_array().unwrap(), 41, 50);
    }

    let mut sse = SseClient::connect(&server, "?since=5", None).await;
    let gap = sse.next().await.unwrap();
    assert_eq!((gap.event.as_str(), gap.id.as_str()), ("gap", ""));
    assert_eq!(gap.data, json!({"type": "gap", "missed": 35}));
    assert_exactly(&sse.messages_until(50).await, 41, 50);

    let mut ws = ws_connect(&server, "?since=5").await;
    assert_eq!(ws_next(&mut ws).await.unwrap(), json!({"type": "gap", "missed": 35}));
    assert_exactly(&ws_messages_until(&mut ws, 50).await, 41, 50);

    let (_, status) = server.get_json("/status").await;
    assert_eq!(status["last_id"], 50);
}

#[tokio::test]
async fn a_client_ahead_of_the_stream_is_told_to_reset() {
    // A bare id ahead of the stream can only come from another run of it (a client that
    // did not say its epoch): it gets a reset and this run from its start.
    let server = TestServer::start().await;
    server.publish_numbers(0, 3).await;
    let epoch = server.get_json("/poll").await.1["epoch"].as_str().unwrap().to_string();

    for path in ["/poll", "/long-poll"] {
        let (status, body) = server.get_json(&format!("{path}?since=900")).await;
        assert_eq!(status, 200);
        assert_eq!(
            (body["reset"].as_bool(), body["epoch"].as_str()),
            (Some(true), Some(epoch.as_str())),
            "{path}"
        );
        assert_exactly(body["messages"].as_array().unwrap(), 1, 3);
    }

    let mut sse = SseClient::connect(&server, "", Some(900)).await;
    let reset = sse.next().await.unwrap();
    assert_eq!((reset.event.as_str(), reset.id.clone()), ("reset", format!("{epoch}-0")));
    assert_eq!(reset.data, json!({"type": "reset", "epoch": epoch, "last_id": 3}));
    assert_exactly(&sse.messages_until(3).await, 1, 3);

    let mut ws = ws_connect(&server, "?since=900").await;
    assert_eq!(ws_next(&mut ws).await.unwrap(), json!({"type": "reset", "epoch": epoch, "last_id": 3}));
    assert_exactly(&ws_messages_until(&mut ws, 3).await, 1, 3);

    // After the reset both streams go on with the stream.
    server.publish_numbers(3, 1).await;
    assert_eq!(sse.next().await.unwrap().data["id"], 4);
    assert_eq!(ws_next(&mut ws).await.unwrap()["id"], 4);
}

#[tokio::test]
async fn poll_without_since_says_where_now_is() {
    let server = TestServer::start().await;
    server.publish_numbers(0, 7).await;
    let (_, body) = server.get_json("/poll").await;
    assert_eq!((body["messages"].clone(), body["last_id"].clone()), (json!([]), json!(7)));
    assert_eq!(body["epoch"].as_str().map(str::len), Some(8), "the cursor's epoch: {body}");
    let (_, body) = server.get_json("/poll?since=5&limit=1").await;
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    assert_eq!(body["messages"][0]["id"], 6);
}

#[tokio::test]
async fn concurrent_publishers_get_unique_gap_free_ids() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    let publishers = (0..8).map(|p| {
        let client = client.clone();
        let url = server.url("/publish");
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..100 {
                let body = json_of(client.post(&url).json(&json!({"data": [p, i]}))).await;
                ids.push(body["id"].as_u64().unwrap());
            }
            ids
        })
    });
    let mut ids: Vec<u64> =
        futures_util::future::join_all(publishers).await.into_iter().flat_map(|r| r.unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=800).collect::<Vec<_>>());
    let messages = poll_until(&server, "/poll", 0, 800).await;
    assert_exactly(&messages, 1, 800);
}

#[tokio::test]
async fn ws_clients_publish_and_ping_over_the_socket() {
    let server = TestServer::start().await;
    let mut ws = ws_connect(&server, "?since=0").await;
    ws_send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(ws_next(&mut ws).await.unwrap(), json!({"type": "pong"}));
    ws_send(&mut ws, json!({"type": "publish", "message_type": "chat", "data": {"text": "hello"}})).await;
    // The acknowledgement and the message itself, in either order. Only the message
    // carries an `id`: a client that treats every frame with an id as a message (as
    // browser code usually does) must not see the acknowledgement as a duplicate.
    let frames = [ws_next(&mut ws).await.unwrap(), ws_next(&mut ws).await.unwrap()];
    assert!(frames.contains(&json!({"type": "published", "message_id": 1})), "{frames:?}");
    let with_id: Vec<&serde_json::Value> = frames.iter().filter(|f| f.get("id").is_some()).collect();
    assert_eq!(with_id.len(), 1, "exactly one frame is a message: {frames:?}");
    assert_eq!(
        (with_id[0]["type"].as_str(), with_id[0]["data"]["text"].as_str()),
        (Some("chat"), Some("hello"))
    );
    // Other transports see what a WebSocket client published.
    let (_, body) = server.get_json("/poll?since=0").await;
    assert_eq!(body["messages"][0]["data"]["text"], "hello");
}
