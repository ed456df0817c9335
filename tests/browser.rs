//! The live page in a real browser: Debian's Chromium, headless, receives every message
//! in all four panes through the browser's own clients (fetch, EventSource, WebSocket),
//! including after every connection is dropped.

use std::time::Duration;

use serde_json::Value;

use crate::util::*;

/// Waits until every pane has received exactly ids 1..=last, none twice.
async fn until_all_panes_have(browser: &Browser, last: u64) -> Value {
    let expected: Vec<u64> = (1..=last).collect();
    let mut state = Value::Null;
    for _ in 0..200 {
        state = browser.eval("return window.pushlabState()").await;
        let complete = ["short_poll", "long_poll", "sse", "ws"].iter().all(|pane| {
            let ids: Vec<u64> = state[pane]["ids"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            ids == expected
        });
        if complete {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not every pane received 1..={last}: {state}");
}

/// Publishes messages of several types: each pane must show every type, including ones
/// the page has never heard of (EventSource only hears the event names it listens for).
async fn publish_chat(server: &TestServer, from: u64, n: u64) {
    let client = reqwest::Client::new();
    for i in from..from + n {
        let kind = ["chat", "price_tick", "update"][i as usize % 3];
        let body = serde_json::json!({"type": kind, "data": {"text": format!("message {i}")}});
        client.post(server.url("/publish")).json(&body).send().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_every_message_in_all_four_panes_even_after_a_forced_reconnect() {
    let Some(browser) = Browser::start().await else { return };
    let server = TestServer::start().await;
    browser.goto(&server.url("/")).await;
    for _ in 0..200 {
        let state = browser.eval("return window.pushlabState ? window.pushlabState() : null").await;
        if ["short_poll", "long_poll", "sse", "ws"].iter().all(|p| state[p]["connected"] == true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    publish_chat(&server, 1, 5).await;
    until_all_panes_have(&browser, 5).await;

    // Drop every connection, publish while they are down, and check nothing is lost.
    browser.eval("document.getElementById('drop').click(); return true").await;
    publish_chat(&server, 6, 5).await;
    let state = until_all_panes_have(&browser, 10).await;
    for pane in ["short_poll", "long_poll", "sse", "ws"] {
        assert_eq!(state[pane]["duplicates"], 0, "{pane}: {state}");
        assert_eq!(state[pane]["missed"], 0, "{pane}: {state}");
        assert!(state[pane]["reconnects"].as_u64().unwrap() >= 1, "{pane}: {state}");
    }

    // The page's own publish button reaches every pane too.
    browser.eval("document.getElementById('publish').click(); return true").await;
    until_all_panes_have(&browser, 11).await;
    browser.close().await;
}
