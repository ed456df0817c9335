//! The live page in a real browser: Debian's Chromium, headless, receives every message
//! in all four panes through the reference clients of `docs/clients/` (which the page
//! imports from `/clients/*.js`), including after every connection is dropped, with a
//! latency for every message, whoever published it, and without a console error.

use std::time::Duration;

use serde_json::Value;

use crate::util::*;

/// Publishes messages of several types (`chat_message`): each pane must show every type,
/// including ones the page has never heard of.
async fn publish_chat(server: &TestServer, from: u64, n: u64) {
    let client = reqwest::Client::new();
    for i in from..from + n {
        client.post(server.url("/publish")).json(&chat_message(i)).send().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_every_message_in_all_four_panes_even_after_a_forced_reconnect() {
    let Some(browser) = Browser::start().await else { return };
    let server = TestServer::start().await;
    browser.goto(&server.url("/")).await;
    until_panes_connected(&browser, &LIVE_BEFORE_A_MESSAGE).await;

    publish_chat(&server, 1, 5).await;
    let state = until_all_panes_have(&browser, 5).await;
    assert_latency_shown(&state, 5);

    // Drop every connection, publish while they are down, and check nothing is lost.
    browser.eval("document.getElementById('drop').click(); return true").await;
    publish_chat(&server, 6, 5).await;
    let state = until_all_panes_have(&browser, 10).await;
    for pane in ["short_poll", "long_poll", "sse", "ws"] {
        assert_eq!(state[pane]["duplicates"], 0, "{pane}: {state}");
        assert_eq!(state[pane]["missed"], 0, "{pane}: {state}");
        assert!(state[pane]["reconnects"].as_u64().unwrap() >= 1, "{pane}: {state}");
    }

    // The page's own publish button reaches every pane too (a POST, through the short
    // poller's client), and so does a pane's: the WebSocket pane publishes on its socket.
    browser.eval("document.getElementById('publish').click(); return true").await;
    until_all_panes_have(&browser, 11).await;
    browser.eval("document.querySelector('#pane-ws .publish').click(); return true").await;
    let state = until_all_panes_have(&browser, 12).await;
    for pane in ["short_poll", "long_poll", "sse", "ws"] {
        assert_eq!(state[pane]["duplicates"], 0, "{pane}: {state}");
    }
    let published = browser.eval("return document.getElementById('published').textContent").await;
    assert!(published.as_str().unwrap_or_default().contains("#12 through ws"), "{published}");

    // The rate control publishes on its own, here through the long poller's client.
    browser
        .eval(
            "document.getElementById('via').value = 'long_poll';
             const rate = document.getElementById('rate');
             rate.value = '10'; rate.onchange({ target: rate }); return true",
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    browser
        .eval("const rate = document.getElementById('rate'); rate.value = '0'; rate.onchange({ target: rate }); return true")
        .await;
    // Until the last publish in flight has its answer: the text stops changing.
    let mut published = String::new();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = browser.eval("return document.getElementById('published').textContent").await;
        let now = now.as_str().unwrap_or_default().to_string();
        if now == published {
            break;
        }
        published = now;
    }
    let last: u64 = published
        .split("#")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("{published}"));
    assert!(last > 12 && published.contains("through long_poll"), "{published}");
    until_all_panes_have(&browser, last).await;

    // The short poller asks for the poll interval before every wait: a change applies at
    // once. 1.5 s for 3 s: two or three polls (a broken setting would be hundreds, or
    // six at the default 500 ms).
    let requests = "return Number(document.querySelector('#pane-short_poll .requests').textContent)";
    browser.eval("document.getElementById('interval').value = '1500'; return true").await;
    tokio::time::sleep(Duration::from_millis(600)).await; // the wait already begun
    let before = browser.eval(requests).await.as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let polls = browser.eval(requests).await.as_u64().unwrap() - before;
    assert!((1..=4).contains(&polls), "{polls} short polls in 3 s at a 1.5 s interval");

    // Every pane's client is the reference client, served by the server.
    let how =
        browser.eval("return [...document.querySelectorAll('.pane .how')].map(e => e.textContent)").await;
    for client in ["short_poll", "long_poll", "sse", "ws"] {
        let named = how
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h.as_str().unwrap().contains(&format!("clients/{client}.js")));
        assert!(named, "{client}: {how}");
    }

    // Nothing went wrong in the page: no exception, no failed request, no failed import.
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "the page logged errors: {errors:?}");
    browser.close().await;
}

/// The text of every pane's `status` field, by pane name, as a student sees it.
async fn pane_statuses(browser: &Browser) -> Value {
    browser
        .eval(
            "return Object.fromEntries([...document.querySelectorAll('.pane')].map(p =>
                [p.id.replace('pane-', ''), p.querySelector('.status').textContent]))",
        )
        .await
}

/// A server at its subscriber limit answers the page's subscribers with 503. Each pane must
/// show the refusal (its client's `backoff` state says why: the status and pushlab's JSON
/// error, except for WebSocket, whose API hides it), back off, and come back from its
/// cursor once the server has room again. (A browser's own `EventSource` would not retry
/// at all after a 503, WHATWG HTML §9.2, "fail the connection": one reason `sse.js` reads
/// the stream with fetch.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pane_refused_with_503_says_so_and_recovers_when_the_server_has_room() {
    let Some(browser) = Browser::start().await else { return };
    // Room for exactly what the page holds at once: an SSE stream, a WebSocket and a long
    // poll held open, and one short poll in flight.
    const LIMIT: usize = 4;
    let config = pushlab_server::Config { max_connections: LIMIT, ..Default::default() };
    let server = TestServer::with_config(config).await;
    // Take every place before the page loads: each of its subscribers is refused, whatever
    // order its requests arrive in.
    let mut holders = Vec::new();
    for _ in 0..LIMIT {
        holders.push(SseClient::connect(&server, "", None).await);
    }
    browser.goto(&server.url("/")).await;

    // Every pane says it was refused (at some point: each retry changes the text), and the
    // SSE pane says why, from the error's JSON body.
    let mut seen_refused = std::collections::BTreeSet::new();
    let mut statuses = Value::Null;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while seen_refused.len() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "not every pane showed the refusal: {statuses}");
        statuses = pane_statuses(&browser).await;
        for pane in ["short_poll", "long_poll", "sse", "ws"] {
            let text = statuses[pane].as_str().unwrap_or_default();
            let shows_it = match pane {
                // The WebSocket API does not tell a script why a handshake failed.
                "ws" => text.contains("refused"),
                "sse" => text.contains("503") && text.contains("too_many_connections"),
                _ => text.contains("503"),
            };
            if shows_it {
                seen_refused.insert(pane);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Published while every pane is refused: each must fetch it once it gets in, so each
    // resumes from its own cursor (the page starts every client from id 0 of the current
    // run, not from "now").
    publish_chat(&server, 1, 1).await;
    drop(holders);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let state = browser.eval("return window.pushlabState()").await;
        let recovered = ["short_poll", "long_poll", "sse", "ws"]
            .iter()
            .all(|p| state[p]["connected"] == true && state[p]["ids"] == serde_json::json!([1]));
        if recovered {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every pane recovered with message 1: {state}, statuses {}",
            pane_statuses(&browser).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // And they stay live: a message published now reaches every pane, once.
    publish_chat(&server, 2, 1).await;
    let state = until_all_panes_have(&browser, 2).await;
    for pane in ["short_poll", "long_poll", "sse", "ws"] {
        assert_eq!(state[pane]["duplicates"], 0, "{pane}: {state}");
        assert_eq!(state[pane]["missed"], 0, "{pane}: {state}");
    }
    browser.close().await;
}
