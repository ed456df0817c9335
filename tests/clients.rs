//! The reference browser clients in `docs/clients/` (one per transport, the same small
//! API), each run in headless Chromium against a real server: every message exactly once,
//! resume after `close()` from the client's own cursor, a message published upstream
//! coming back, and a server restart on the same port (a new epoch: a `reset`, then the
//! new run from its first message). Also checks that the sizes printed in
//! `docs/concerns.md` are the files' sizes.
//!
//! The test page comes from a tiny HTTP server of this test on its own port, so the
//! clients talk to pushlab cross-origin, as a third-party page would: reading works
//! through CORS; publishing cross-origin needs the publish token (`403
//! cross_origin_publish` otherwise), so the server runs with one and the clients send it
//! (`Authorization: Bearer` on a POST, `?token=` on the WebSocket URL). The price, which
//! the clients' comments state: a cross-origin script cannot read `Retry-After`.

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
/// `window.state`: message ids per run (a `reset` starts a new run), notices, states.
const PAGE: &str = r#"<!doctype html><meta charset="utf-8"><title>reference client</title>
<script type="module">
const p = new URLSearchParams(location.search);
const { connect } = await import(`/clients/${p.get('client')}.js`);
const state = (window.state = { runs: [[]], data: [], notices: [], states: [], live: false });
window.start = (since) => {
  window.client = connect({
    base: p.get('base'), token: p.get('token'), since, heartbeatMs: 1000,
    onMessage: (m) => { state.runs[state.runs.length - 1].push(m.id); state.data.push(m.data); },
    onNotice: (n) => { state.notices.push(n.type); if (n.type === 'reset') state.runs.push([]); },
    onState: (s) => { state.states.push(s); state.live = s === 'live'; },
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
                let file = path.strip_prefix("/clients/").filter(|f| CLIENTS.iter().any(|c| *f == format!("{c}.js")));
                let (status, kind, body) = match file {
                    Some(file) => ("200 OK", "text/javascript", std::fs::read(clients_dir().join(file)).unwrap()),
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
    browser
        .goto(&format!("http://{page}/?client={client}&base=http://{}&token={TOKEN}", server.addr))
        .await;
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
        s["runs"] == json!([ids(1, 26)]) || s.get("publishError").is_some()
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
    let state = until(&browser, "the new run's ids 1..=5", 30, |s| s["runs"] == json!([ids(1, 26), ids(1, 5)])).await;
    assert!(state["notices"].as_array().unwrap().contains(&json!("reset")), "{state}");
    assert!(state["states"].as_array().unwrap().contains(&json!("backoff")), "{state}");
    browser.close().await;
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

/// Strips `//` and `/* */` comments, leaving strings (quotes and template literals)
/// alone.
fn strip_comments(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == '\'' || c == '"' || c == '`' {
            out.push(c);
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    out.push(chars[i]);
                    i += 1;
                }
                if let Some(&ch) = chars.get(i) {
                    out.push(ch);
                }
                i += 1;
            }
            if i < chars.len() {
                out.push(c);
            }
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// A client's size: lines of code (not blank once comments are removed) and tokens
/// (a word — letters, digits, `_`, `$` — or a string literal is one token; every other
/// character that is not white space is one).
fn size(source: &str) -> (usize, usize) {
    let code = strip_comments(source);
    let lines = code.lines().filter(|l| !l.trim().is_empty()).count();
    let chars: Vec<char> = code.chars().collect();
    let (mut tokens, mut i) = (0, 0);
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        tokens += 1;
        if c.is_alphanumeric() || c == '_' || c == '$' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                i += 1;
            }
        } else if c == '\'' || c == '"' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else {
            i += 1;
        }
    }
    (lines, tokens)
}

#[test]
fn the_sizes_in_concerns_md_are_the_clients_sizes() {
    let concerns = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/concerns.md"))
        .expect("docs/concerns.md");
    let mut expected = Vec::new();
    for client in CLIENTS {
        let source = std::fs::read_to_string(clients_dir().join(format!("{client}.js"))).unwrap();
        let (lines, tokens) = size(&source);
        expected.push(format!("| [`{client}.js`](clients/{client}.js) | {lines} | {tokens} |"));
    }
    let missing: Vec<&String> = expected.iter().filter(|row| !concerns.contains(row.as_str())).collect();
    assert!(
        missing.is_empty(),
        "docs/concerns.md must have these rows (lines of code, tokens), as counted now:\n{}",
        expected.join("\n")
    );
}
