//! Helpers shared by the tests: an in-process server and minimal, independent clients
//! for each transport (deliberately not the load generator's, so the server is checked
//! against a second implementation).

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pushlab_server::Config;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// A server running in this process until `stop` (or drop).
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::with_config(Config::default()).await
    }

    pub async fn with_config(config: Config) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(pushlab_server::run(listener, config, async move {
            let _ = stopped.await;
        }));
        TestServer { addr, stop: Some(stop), task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Starts shutdown; `self.task` then finishes.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Publishes `n` messages `{"n": first..}` in batches; returns their ids.
    pub async fn publish_numbers(&self, first: u64, n: u64) -> Vec<u64> {
        let client = reqwest::Client::new();
        let mut ids = Vec::new();
        let mut next = first;
        while next < first + n {
            let end = (next + 100).min(first + n);
            let batch: Vec<Value> = (next..end).map(|i| json!({"data": {"n": i}})).collect();
            let response: Value =
                client.post(self.url("/publish")).json(&batch).send().await.unwrap().json().await.unwrap();
            ids.extend(response["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()));
            next = end;
        }
        ids
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = reqwest::get(self.url(path)).await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}

/// Sends `request` and reads its JSON body.
pub async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// Polls `path` (`/poll` or `/long-poll`) from `since` until `last` arrives; returns
/// every message body received, in order.
pub async fn poll_until(server: &TestServer, path: &str, since: u64, last: u64) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut cursor = since;
    let mut messages = Vec::new();
    while cursor < last {
        let body = json_of(client.get(server.url(&format!("{path}?since={cursor}&timeout=5")))).await;
        for message in body["messages"].as_array().unwrap() {
            cursor = message["id"].as_u64().unwrap();
            messages.push(message.clone());
        }
        if path == "/poll" {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    messages
}

/// One parsed SSE event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: String,
    pub event: String,
    pub data: Value,
}

/// An SSE subscription read with `eventsource-stream`.
pub struct SseClient {
    events: std::pin::Pin<Box<dyn futures_util::Stream<Item = SseEvent> + Send>>,
}

impl SseClient {
    pub async fn connect(server: &TestServer, query: &str, last_event_id: Option<u64>) -> SseClient {
        let mut request = reqwest::Client::new().get(server.url(&format!("/sse{query}")));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        use eventsource_stream::Eventsource;
        let events = response.bytes_stream().eventsource().filter_map(|event| async move {
            let event = event.ok()?;
            Some(SseEvent { id: event.id, event: event.event, data: serde_json::from_str(&event.data).ok()? })
        });
        SseClient { events: Box::pin(events) }
    }

    pub async fn next(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(Duration::from_secs(10), self.events.next()).await.ok().flatten()
    }

    /// Reads message events until id `last`.
    pub async fn messages_until(&mut self, last: u64) -> Vec<Value> {
        let mut messages = Vec::new();
        while let Some(event) = self.next().await {
            if let Some(id) = event.data["id"].as_u64() {
                messages.push(event.data);
                if id >= last {
                    break;
                }
            }
        }
        messages
    }
}

pub type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects and reads the `hello` frame every WebSocket starts with (the stream's epoch).
pub async fn ws_connect(server: &TestServer, query: &str) -> WsStream {
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url(&format!("/ws{query}"))).await.unwrap();
    let hello = ws_next(&mut ws).await.expect("a hello frame");
    assert_eq!(hello["type"], "hello", "{hello}");
    assert_eq!(hello["epoch"].as_str().map(str::len), Some(8), "{hello}");
    ws
}

/// The next text frame as JSON, within 10 s.
pub async fn ws_next(ws: &mut WsStream) -> Option<Value> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.ok()??.ok()?;
        match frame {
            Message::Text(text) => return serde_json::from_str(text.as_str()).ok(),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

pub async fn ws_send(ws: &mut WsStream, frame: Value) {
    ws.send(Message::text(frame.to_string())).await.unwrap();
}

/// Reads WS message frames until id `last`.
pub async fn ws_messages_until(ws: &mut WsStream, last: u64) -> Vec<Value> {
    let mut messages = Vec::new();
    while let Some(frame) = ws_next(ws).await {
        if let Some(id) = frame["id"].as_u64() {
            messages.push(frame);
            if id >= last {
                break;
            }
        }
    }
    messages
}

/// Asserts that `messages` are exactly ids `first..=last`, in order, each once, and that
/// each carries the payload it was published with.
pub fn assert_exactly(messages: &[Value], first: u64, last: u64) {
    let ids: Vec<u64> = messages.iter().map(|m| m["id"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = (first..=last).collect();
    if ids != expected {
        let out_of_place: Vec<(usize, u64)> =
            ids.iter().copied().enumerate().filter(|&(i, id)| id != first + i as u64).take(5).collect();
        panic!(
            "ids must be {first}..={last} in order, exactly once; got {} ids, first out of place (index, id): {out_of_place:?}",
            ids.len()
        );
    }
    for message in messages {
        assert_eq!(message["type"], "update");
        assert!(message["timestamp"].as_u64().is_some());
        assert!(message.get("data").is_some());
    }
}

/// A TCP relay that counts, independently of the load generator, every byte it forwards
/// in each direction: the reference the load generator's socket counters are checked
/// against.
pub struct CountingRelay {
    pub addr: SocketAddr,
    pub to_server: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub to_client: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: JoinHandle<()>,
}

impl CountingRelay {
    pub async fn start(upstream: SocketAddr) -> CountingRelay {
        use std::sync::atomic::AtomicU64;
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let to_server = Arc::new(AtomicU64::new(0));
        let to_client = Arc::new(AtomicU64::new(0));
        let (up, down) = (to_server.clone(), to_client.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                let server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                client.set_nodelay(true).unwrap();
                server.set_nodelay(true).unwrap();
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, up.clone()));
                tokio::spawn(pump(server_read, client_write, down.clone()));
            }
        });
        CountingRelay { addr, to_server, to_client, task }
    }

    /// `(server → client, client → server)` bytes forwarded so far.
    pub fn counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering;
        (self.to_client.load(Ordering::SeqCst), self.to_server.load(Ordering::SeqCst))
    }
}

impl Drop for CountingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`, adding each forwarded chunk to `count`.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        count.fetch_add(n as u64, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A load-generator client session for `addr`, starting at `cursor`.
pub fn session(addr: SocketAddr, poll_interval: Duration) -> pushlab_loadgen::client::Session {
    use pushlab_loadgen::client::{ClientSettings, Session, Target};
    use pushlab_loadgen::record::Recorder;
    let settings = ClientSettings::plain(poll_interval);
    Session::new(Target::new(addr), settings, Recorder::new(Default::default()), tokio::time::Instant::now())
}

/// Polls `condition` every 10 ms for up to 10 s.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Publishes load-generator probes `seqs` in one batch.
pub async fn publish_probes(server: &TestServer, seqs: &[u64]) {
    let batch: Vec<Value> = seqs
        .iter()
        .map(|&seq| json!({"data": serde_json::from_str::<Value>(&pushlab_loadgen::record::probe_data(seq, 0, 64)).unwrap()}))
        .collect();
    let status =
        reqwest::Client::new().post(server.url("/publish")).json(&batch).send().await.unwrap().status();
    assert_eq!(status, 201);
}

/// A headless Chromium driven through chromedriver's W3C WebDriver endpoints. Four
/// endpoints are all the browser tests need, so they are called with reqwest directly.
pub struct Browser {
    driver: tokio::process::Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium; `None` (with a message) when they are
    /// not installed, except in CI where that is an error.
    pub async fn start() -> Option<Browser> {
        Self::start_with(&[]).await
    }

    /// [`Browser::start`] with more Chromium flags after the usual ones (such as the one
    /// that trusts a test's certificate, tests/browser_tls.rs).
    pub async fn start_with(extra_args: &[String]) -> Option<Browser> {
        let installed =
            ["/usr/bin/chromium", "/usr/bin/chromedriver"].iter().all(|p| std::path::Path::new(p).exists());
        if !installed {
            let message = "browser tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)";
            if std::env::var("CI").is_ok() {
                panic!("{message}");
            }
            eprintln!("skipped: {message}");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let driver = tokio::process::Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            // Its own process group, which Chromium joins: dropping the Browser (also when
            // a test fails before `close`) ends the whole group, never leaving a browser.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        // Removed with the Browser, also when a test fails.
        let profile = tempfile::Builder::new().prefix("pushlab-chromium-").tempdir().unwrap();
        // Flags for a root user on a machine without a display or outside network.
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ]
        .map(String::from)
        .to_vec();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend_from_slice(extra_args);
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            // Keeps the page's console, for `console_errors`.
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let mut session = None;
        for _ in 0..100 {
            if let Ok(response) = http.post(format!("{base}/session")).json(&capabilities).send().await {
                let body: Value = response.json().await.unwrap();
                session = Some(body["value"]["sessionId"].as_str().expect("a WebDriver session").to_string());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(Browser {
            driver,
            base,
            session: session.expect("chromedriver answers"),
            http,
            _profile: profile,
        })
    }

    pub async fn goto(&self, url: &str) {
        let url_endpoint = format!("{}/session/{}/url", self.base, self.session);
        self.http.post(url_endpoint).json(&json!({"url": url})).send().await.unwrap();
    }

    /// The page's console messages of level SEVERE (errors) since the last call.
    pub async fn console_errors(&self) -> Vec<String> {
        let endpoint = format!("{}/session/{}/se/log", self.base, self.session);
        let body = json_of(self.http.post(endpoint).json(&json!({"type": "browser"}))).await;
        body["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// Runs `script` in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        let endpoint = format!("{}/session/{}/execute/sync", self.base, self.session);
        let body = json_of(self.http.post(endpoint).json(&json!({"script": script, "args": []}))).await;
        body["value"].clone()
    }

    pub async fn close(self) {
        let _ = self.http.delete(format!("{}/session/{}", self.base, self.session)).send().await;
        // Drop ends chromedriver and whatever Chromium processes are left.
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(pid) = self.driver.id() {
            let group = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// The panes of the live page (`server/src/page.html`), one per transport.
pub const PANES: [&str; 4] = ["short_poll", "long_poll", "sse", "ws"];

/// The panes that say they are live before any message is published: the long poller
/// says so at its first answer, which its held request gets only when a message comes.
pub const LIVE_BEFORE_A_MESSAGE: [&str; 3] = ["short_poll", "sse", "ws"];

/// Waits (up to 10 s) until each of `panes` of the live page says it is connected.
pub async fn until_panes_connected(browser: &Browser, panes: &[&str]) -> Value {
    let mut state = Value::Null;
    for _ in 0..200 {
        state = browser.eval("return window.pushlabState ? window.pushlabState() : null").await;
        if panes.iter().all(|p| state[p]["connected"] == true) {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not every pane of {panes:?} connected: {state}");
}

/// Waits until every pane has received exactly ids 1..=last, none twice.
pub async fn until_all_panes_have(browser: &Browser, last: u64) -> Value {
    let expected: Vec<u64> = (1..=last).collect();
    let mut state = Value::Null;
    for _ in 0..200 {
        state = browser.eval("return window.pushlabState()").await;
        let complete = PANES.iter().all(|pane| {
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

/// The `i`th message the browser tests publish: its type cycles through `chat`,
/// `price_tick` and `update`, so each pane must show every type, including ones the page
/// has never heard of (EventSource only hears the event names it listens for).
pub fn chat_message(i: u64) -> Value {
    let kind = ["chat", "price_tick", "update"][i as usize % 3];
    json!({"type": kind, "data": {"text": format!("message {i}")}})
}

/// Every pane shows a latency for message `id`, published from outside the page (so the
/// page cannot have timed it itself): the server's `timestamp` against the page's clock,
/// corrected by the measured offset, with its uncertainty. Server and browser share this
/// machine's clock, so the true offset is 0 and the figure is the real latency (under a
/// second on loopback, a short poll's included) give or take the uncertainty shown. The
/// timeline has recorded requests and messages.
pub fn assert_latency_shown(state: &Value, id: u64) {
    for pane in PANES {
        let p = &state[pane];
        let text = p["latency_text"].as_str().unwrap_or_default();
        assert!(text.contains(" ms ± ") && text.contains(&format!("(#{id})")), "{pane}: {state}");
        let (latency, within) = (p["latency_ms"].as_f64().unwrap(), p["latency_within_ms"].as_f64().unwrap());
        assert!(within <= 1000.0, "{pane}: the offset should be known within a second: {state}");
        assert!(latency >= -within - 1.0 && latency <= 1000.0 + within, "{pane}: {state}");
        assert!(p["timeline_events"].as_u64().unwrap() >= 2, "{pane}: {state}");
    }
}
