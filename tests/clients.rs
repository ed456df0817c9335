//! The reference browser clients in `docs/clients/` (one per transport, the same small
//! API), each run in headless Chromium against a real server: every message exactly once,
//! resume after `close()` from the client's own cursor, a message published upstream
//! coming back, and a server restart on the same port (a new epoch: a `reset`, then the
//! new run from its first message); and a dead peer (a relay that goes silent without
//! closing). Also checks that the sizes printed in `docs/concerns.md` are the files'
//! sizes.
//!
//! The test page comes from a tiny HTTP server of this test on its own port, so the
//! clients talk to pushlab cross-origin, as a third-party page would: reading works
//! through CORS; publishing cross-origin needs the publish token (`403
//! cross_origin_publish` otherwise), so the server runs with one and the clients send it
//! (`Authorization: Bearer` on a POST, `?token=` on the WebSocket URL). The price, which
//! the clients' comments state: a cross-origin script cannot read `Retry-After`.

use pushlab_loadgen::complexity::{reference_client, ClientSize};
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::util::*;

const TOKEN: &str = "student-token";
const CLIENTS: [&str; 4] = ["short_poll", "long_poll", "sse", "ws"];

fn clients_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/clients")
}

/// A pushlab server on a given address (port 0: any), with a token and a 1 s heartbeat,
/// so that it can be stopped and a new run started on the same port.
struct Pushlab {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Pushlab {
    async fn start(addr: SocketAddr) -> Pushlab {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = pushlab_server::Config {
            publish_token: Some(TOKEN.into()),
            heartbeat: Duration::from_secs(1),
            ..Default::default()
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(pushlab_server::run(listener, config, async move {
            let _ = stopped.await;
        }));
        Pushlab { addr, stop: Some(stop), task }
    }

    /// Shuts down the way `pushlab serve` does on SIGTERM, and waits until it has.
    async fn stop(mut self) -> SocketAddr {
        let _ = self.stop.take().unwrap().send(());
        (&mut self.task).await.unwrap().unwrap();
        self.addr
    }

    /// Publishes `n` messages from outside the page.
    async fn publish(&self, n: u64) {
        let batch: Vec<Value> = (0..n).map(|i| json!({"data": {"n": i}})).collect();
        let response = reqwest::Client::new()
            .post(format!("http://{}/publish", self.addr))
            .bearer_auth(TOKEN)
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
}

/// The test page: imports one client (`?client=`) and records what it hears in
/// `window.state`: message ids per run (a `reset` starts a new run), notices, states, the
/// second argument of every `backoff` state, and how many traces (`onTrace`) of each type.
const PAGE: &str = r#"<!doctype html><meta charset="utf-8"><title>reference client</title>
<script type="module">
const p = new URLSearchParams(location.search);
const { connect } = await import(`/clients/${p.get('client')}.js`);
const state = (window.state = { runs: [[]], data: [], notices: [], states: [], live: false, backoffs: [],
  traces: { request: 0, response: 0, data: 0 } });
const options = JSON.parse(p.get('options') || '{}');
window.start = (since) => {
  window.client = connect({
    base: p.get('base'), token: p.get('token'), since, heartbeatMs: 1000, ...options,
    onMessage: (m) => { state.runs[state.runs.length - 1].push(m.id); state.data.push(m.data); },
    onNotice: (n) => { state.notices.push(n.type); if (n.type === 'reset') state.runs.push([]); },
    onState: (s, info) => {
      state.states.push(s);
      state.live = s === 'live';
      if (s === 'backoff') state.backoffs.push({ ...info, error: info.error && String(info.error) });
    },
    onTrace: (t) => { state.traces[t.type]++; },
  });
};
window.start(null);
</script>"#;

/// Serves `PAGE` at `/` and `docs/clients/*.js` at `/clients/`, one request per
/// connection.
async fn page_server() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/").split('?').next().unwrap_or("/");
                let file = path
                    .strip_prefix("/clients/")
                    .filter(|f| CLIENTS.iter().any(|c| *f == format!("{c}.js")));
                let (status, kind, body) = match file {
                    Some(file) => {
                        ("200 OK", "text/javascript", std::fs::read(clients_dir().join(file)).unwrap())
                    }
                    None if path == "/" => ("200 OK", "text/html", PAGE.as_bytes().to_vec()),
                    None => ("404 Not Found", "text/plain", b"not found".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {kind}; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            });
        }
    });
    (addr, task)
}

/// Evaluates `window.state` until `done` holds, for up to `seconds`.
async fn until(browser: &Browser, what: &str, seconds: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        let state = browser.eval("return window.state ?? null").await;
        if done(&state) {
            return state;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}: {state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ids(first: u64, last: u64) -> Value {
    json!((first..=last).collect::<Vec<u64>>())
}

/// Runs every scenario against one client.
async fn exercise(client: &str) {
    let Some(browser) = Browser::start().await else { return };
    let server = Pushlab::start("127.0.0.1:0".parse().unwrap()).await;
    let (page, _page_task) = page_server().await;
    browser.goto(&format!("http://{page}/?client={client}&base=http://{}&token={TOKEN}", server.addr)).await;
    until(&browser, "the client to be live", 20, |s| s["live"] == true).await;

    // 1. Every message exactly once, in order (the client dedups by id, so exact
    // equality also says "no duplicates").
    server.publish(20).await;
    until(&browser, "ids 1..=20", 20, |s| s["runs"] == json!([ids(1, 20)])).await;

    // 2. Resume from the client's own cursor: close, publish while nobody listens, start
    // a new client from the cursor.
    browser.eval("window.cursor = window.client.cursor(); window.client.close(); return window.cursor").await;
    server.publish(5).await;
    browser.eval("window.start(window.cursor); return true").await;
    until(&browser, "ids 1..=25 after resuming", 20, |s| s["runs"] == json!([ids(1, 25)])).await;

    // 3. Upstream: the client publishes (cross-origin, with the token) and hears it back.
    until(&browser, "the new client to be live", 20, |s| s["live"] == true).await;
    browser
        .eval(
            "window.client.publish({text: 'from the page'}).then(id => window.state.published = id,
                e => window.state.publishError = String(e)); return true",
        )
        .await;
    let state = until(&browser, "the page's own message back", 20, |s| {
        // The message may come back before the publish's own answer: wait for both.
        (s["runs"] == json!([ids(1, 26)]) && s.get("published").is_some()) || s.get("publishError").is_some()
    })
    .await;
    assert_eq!(state["published"], 26, "{state}");
    assert_eq!(state["data"][25], json!({"text": "from the page"}), "{state}");

    // 4. A server restart: the same port, a new run (ids from 1 again, a new epoch). The
    // client's connections drop; it backs off, reconnects with its old cursor, gets a
    // reset and the new run from its first message, published before it got back.
    // Down for longer than a short poll's interval, so that every client meets the
    // outage (connection refused) and backs off.
    let addr = server.stop().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let server = Pushlab::start(addr).await;
    server.publish(5).await;
    let state =
        until(&browser, "the new run's ids 1..=5", 30, |s| s["runs"] == json!([ids(1, 26), ids(1, 5)])).await;
    assert!(state["notices"].as_array().unwrap().contains(&json!("reset")), "{state}");
    assert!(state["states"].as_array().unwrap().contains(&json!("backoff")), "{state}");
    // Every backoff says how long it waits, and why (the pollers and SSE: the error; the
    // WebSocket: whether it had opened, and the close code).
    for backoff in state["backoffs"].as_array().unwrap() {
        assert!(backoff["delayMs"].as_f64().is_some_and(|ms| ms >= 0.0), "{client}: {state}");
        let why = if client == "ws" { &backoff["opened"] } else { &backoff["error"] };
        assert!(!why.is_null(), "{client}: {state}");
    }
    // The hook a page draws a timeline with: every request or connection, every body
    // (a poll's carries a batch), event or frame, and for fetch every answer's headers.
    let traces = &state["traces"];
    assert!(traces["request"].as_u64().unwrap() >= 3, "{client}: {state}");
    assert!(traces["data"].as_u64().unwrap() >= 3, "{client}: {state}");
    if client != "ws" {
        assert!(traces["response"].as_u64().unwrap() >= 2, "{client}: {state}");
    }
    browser.close().await;
}

/// A bare id as `since` (what a page passes to start from the first message of whatever
/// run is current, as pushlab's live page does with `"0"`): the client sends `since=ID`,
/// learns the epoch from the first answer, and its `cursor()` is a full `EPOCH-ID` then.
async fn exercise_bare_cursor(client: &str) {
    let Some(browser) = Browser::start().await else { return };
    let server = Pushlab::start("127.0.0.1:0".parse().unwrap()).await;
    server.publish(3).await;
    let (page, _page_task) = page_server().await;
    let options = r#"{"since":"1"}"#;
    browser
        .goto(&format!(
            "http://{page}/?client={client}&base=http://{}&token={TOKEN}&options={options}",
            server.addr
        ))
        .await;
    until(&browser, "ids 2..=3 after a bare cursor", 20, |s| s["runs"] == json!([ids(2, 3)])).await;
    server.publish(2).await;
    until(&browser, "ids 2..=5", 20, |s| s["runs"] == json!([ids(2, 5)])).await;
    let cursor = browser.eval("return window.client.cursor()").await;
    let cursor = cursor.as_str().unwrap_or_default();
    assert!(cursor.ends_with("-5") && cursor.len() > 2, "{client}: cursor {cursor}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_poll_reference_client_resumes_from_a_bare_id() {
    exercise_bare_cursor("short_poll").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_reference_client_resumes_from_a_bare_id() {
    exercise_bare_cursor("long_poll").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_reference_client_resumes_from_a_bare_id() {
    exercise_bare_cursor("sse").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_reference_client_resumes_from_a_bare_id() {
    exercise_bare_cursor("ws").await;
}

/// A TCP relay between the browser and pushlab that can play a dead peer: `freeze` makes
/// every connection open at that moment stop forwarding in both directions while its
/// sockets stay open (no FIN, no RST: a peer that vanished, a NAT that forgot the flow).
/// Connections opened later are forwarded normally.
struct FreezingRelay {
    addr: SocketAddr,
    /// Connections accepted so far; connection ids are 0, 1, 2 ...
    accepted: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Connections with an id below this are frozen.
    frozen_below: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: JoinHandle<()>,
}

impl FreezingRelay {
    async fn start(upstream: SocketAddr) -> FreezingRelay {
        use std::sync::atomic::{AtomicU64, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen_below = std::sync::Arc::new(AtomicU64::new(0));
        let accepted = std::sync::Arc::new(AtomicU64::new(0));
        let (below, next) = (frozen_below.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let id = next.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else { continue };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(Self::pump(id, client_read, server_write, below.clone()));
                tokio::spawn(Self::pump(id, server_read, client_write, below.clone()));
            }
        });
        FreezingRelay { addr, accepted, frozen_below, task }
    }

    /// Copies until the end, unless connection `id` is frozen: then holds both sockets
    /// open, forwarding nothing more, not even the end.
    async fn pump(
        id: u64,
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        frozen_below: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf).await.unwrap_or(0);
            if id < frozen_below.load(std::sync::atomic::Ordering::SeqCst) {
                let _held = (from, to);
                match std::future::pending::<std::convert::Infallible>().await {}
            }
            if n == 0 || to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }

    /// Every connection open now goes silent; later ones are forwarded.
    fn freeze(&self) {
        use std::sync::atomic::Ordering;
        self.frozen_below.store(self.accepted.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

impl Drop for FreezingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A peer that goes silent without closing: the client must notice by itself (pollers:
/// their request timeout; SSE: no byte for 2.5 heartbeats; WebSocket: no frame for 2.5
/// heartbeats, its own pings unanswered), reconnect, and resume from its cursor.
async fn exercise_dead_peer(client: &str) {
    let Some(browser) = Browser::start().await else { return };
    let server = Pushlab::start("127.0.0.1:0".parse().unwrap()).await;
    let relay = FreezingRelay::start(server.addr).await;
    let (page, _page_task) = page_server().await;
    // Short timeouts, so that the test takes seconds: a 2.5 s request timeout (a long
    // poll held 1 s), a 1 s heartbeat.
    let options = r#"{"timeoutMs":2500,"holdSeconds":1}"#;
    browser
        .goto(&format!(
            "http://{page}/?client={client}&base=http://{}&token={TOKEN}&options={options}",
            relay.addr
        ))
        .await;
    until(&browser, "the client to be live", 20, |s| s["live"] == true).await;
    server.publish(2).await;
    until(&browser, "ids 1..=2", 20, |s| s["runs"] == json!([ids(1, 2)])).await;

    // Every connection open now goes silent; the messages published next are written by
    // the server into connections that no longer reach the browser.
    let states_before = browser.eval("return window.state.states.length").await.as_u64().unwrap();
    relay.freeze();
    server.publish(3).await;
    let state =
        until(&browser, "ids 1..=5 after the dead peer", 30, |s| s["runs"] == json!([ids(1, 5)])).await;
    let later: Vec<&Value> =
        state["states"].as_array().unwrap().iter().skip(states_before as usize).collect();
    assert!(later.contains(&&json!("backoff")), "{client} must have noticed the dead peer: {state}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_poll_reference_client_detects_a_dead_peer() {
    exercise_dead_peer("short_poll").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_reference_client_detects_a_dead_peer() {
    exercise_dead_peer("long_poll").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_reference_client_detects_a_dead_peer() {
    exercise_dead_peer("sse").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_reference_client_detects_a_dead_peer() {
    exercise_dead_peer("ws").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_poll_reference_client_keeps_the_contract() {
    exercise("short_poll").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_reference_client_keeps_the_contract() {
    exercise("long_poll").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_reference_client_keeps_the_contract() {
    exercise("sse").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_reference_client_keeps_the_contract() {
    exercise("ws").await;
}

#[test]
fn the_sizes_in_concerns_md_are_the_clients_sizes() {
    let concerns =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/concerns.md"))
            .expect("docs/concerns.md");
    let mut expected = Vec::new();
    for client in CLIENTS {
        let source = std::fs::read_to_string(clients_dir().join(format!("{client}.js"))).unwrap();
        let ClientSize { lines, tokens } = ClientSize::of(&source);
        assert_eq!(
            ClientSize::of(&source),
            reference_client(client.parse().unwrap()),
            "{client}: the binary's copy is stale"
        );
        expected.push(format!("| [`{client}.js`](clients/{client}.js) | {lines} | {tokens} |"));
    }
    let missing: Vec<&String> = expected.iter().filter(|row| !concerns.contains(row.as_str())).collect();
    assert!(
        missing.is_empty(),
        "docs/concerns.md must have these rows (lines of code, tokens), as counted now:\n{}",
        expected.join("\n")
    );
}
