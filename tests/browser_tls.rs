//! The browser over TLS and HTTP/2 (issue #15), in Debian's headless Chromium:
//!
//! - the live page over HTTPS receives every message in all four panes, its HTTP
//!   transports on one HTTP/2 connection;
//! - seven `EventSource` streams from one origin: over cleartext HTTP/1.1 the browser
//!   opens six connections to it and no more, so the seventh stream waits (it opens the
//!   moment one of the six is closed); over HTTPS all seven are streams of one HTTP/2
//!   connection (docs/labs/09-six-connections.md);
//! - a WebSocket opened by a page that holds an HTTP/2 connection: carried on that
//!   connection (RFC 8441 extended CONNECT) or on a TLS connection of its own, as the
//!   server's `/status` counts them.
//!
//! Each test's server has a fresh self-signed certificate, and Chromium trusts exactly
//! that one: `--ignore-certificate-errors-spki-list` with the hash of its public key (a
//! second server with another certificate is refused). The server's `/status` is read
//! on one keep-alive connection of the test's own, so it always counts exactly one
//! connection that is not the browser's.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use pushlab_server::tls::Identity;
use pushlab_server::Config;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;

use crate::util::*;

/// Waits up to `seconds` for `read` to return a value `done` accepts, reading every
/// 100 ms; panics with the last value read.
async fn until<F, Fut>(what: &str, seconds: u64, mut read: F, done: impl Fn(&Value) -> bool) -> Value
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Value>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        let value = read().await;
        if done(&value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {seconds} s waiting for {what}: {value}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The connections `/status` counts as open, less the one it was asked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Connections {
    cleartext_http1: u64,
    cleartext_http2: u64,
    tls_http1: u64,
    tls_http2: u64,
}

impl Connections {
    /// From a `/status` read by [`TlsServer::status`] (on a TLS HTTP/1.1 connection) or
    /// [`cleartext_status`] (cleartext HTTP/1.1): that connection is not counted.
    fn of(status: &Value) -> Connections {
        let n = |kind: &str, version: &str| status["connections"][kind][version].as_u64().unwrap();
        let own_is_tls = status["asked_over_tls"] == true;
        Connections {
            cleartext_http1: n("cleartext", "http1") - u64::from(!own_is_tls),
            cleartext_http2: n("cleartext", "http2"),
            tls_http1: n("tls", "http1") - u64::from(own_is_tls),
            tls_http2: n("tls", "http2"),
        }
    }
}

/// `/status` of a cleartext server, on `client`'s keep-alive connection.
async fn cleartext_status(server: &TestServer, client: &reqwest::Client) -> Value {
    let mut status = json_of(client.get(server.url("/status"))).await;
    status["asked_over_tls"] = json!(false);
    status
}

/// The flag that makes Chromium accept `identity`'s certificate, and no other:
/// base64(SHA-256(SubjectPublicKeyInfo DER)).
fn trusted_by_chromium(identity: &Identity) -> String {
    use base64::Engine;
    use rcgen::PublicKeyData;
    use rustls::pki_types::pem::PemObject;
    let spki = rcgen::KeyPair::from_pem(&identity.key_pem).unwrap().subject_public_key_info();
    // The same bytes are the certificate's own SubjectPublicKeyInfo: the hash is the
    // certificate's, not merely its key file's.
    let cert = rustls::pki_types::CertificateDer::from_pem_slice(identity.cert_pem.as_bytes()).unwrap();
    assert!(cert.windows(spki.len()).any(|w| w == spki), "the certificate holds this public key");
    let hash = ring::digest::digest(&ring::digest::SHA256, &spki);
    format!(
        "--ignore-certificate-errors-spki-list={}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// A TLS server with a fresh certificate, and the test's own HTTPS client for it: one
/// keep-alive HTTP/1.1 connection (ALPN `http/1.1` only), reopened if the server closed
/// it, so that the test adds exactly one connection to what `/status` counts.
///
/// Its `--request-timeout` is short, 3 s: a browser sometimes opens a connection it then
/// leaves unused (seen once here, with four tests' browsers starting together on two
/// cores), and the server closes a connection that carries nothing after one or two
/// such timeouts, while one that carries a stream stays. So the count `/status` settles
/// on is the connections that carry the page's streams.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Only the page's one TLS HTTP/2 connection (besides the test's own).
const ONE_H2: Connections =
    Connections { cleartext_http1: 0, cleartext_http2: 0, tls_http1: 0, tls_http2: 1 };

struct TlsServer {
    server: TestServer,
    identity: Identity,
    connector: TlsConnector,
    connection: Mutex<Option<SendRequest<Full<Bytes>>>>,
}

impl TlsServer {
    async fn start() -> TlsServer {
        let identity = Identity::generate().unwrap();
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config =
            Config { tls: Some(identity.clone()), request_timeout: REQUEST_TIMEOUT, ..Config::default() };
        TlsServer {
            server: TestServer::with_config(config).await,
            identity,
            connector: TlsConnector::from(Arc::new(client)),
            connection: Mutex::new(None),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}{}", self.server.addr, path)
    }

    async fn connect(&self) -> SendRequest<Full<Bytes>> {
        let tcp = tokio::net::TcpStream::connect(self.server.addr).await.unwrap();
        let tls = self.connector.connect("localhost".try_into().unwrap(), tcp).await.unwrap();
        let (send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
        tokio::spawn(connection);
        send
    }

    /// `method path` with a JSON `body`; the status and the JSON answer.
    async fn request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut held = self.connection.lock().await;
        for attempt in 0..2 {
            if let Some(send) = held.as_mut() {
                if send.ready().await.is_err() {
                    *held = None;
                }
            }
            let send = match held.as_mut() {
                Some(send) => send,
                None => held.insert(self.connect().await),
            };
            let mut request = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header("host", self.server.addr.to_string());
            let bytes = match body {
                Some(body) => {
                    request = request.header("content-type", "application/json");
                    Bytes::from(serde_json::to_vec(body).unwrap())
                }
                None => Bytes::new(),
            };
            match send.send_request(request.body(Full::new(bytes)).unwrap()).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = response.into_body().collect().await.unwrap().to_bytes();
                    return (status, serde_json::from_slice(&body).unwrap_or(Value::Null));
                }
                // Closed by the server's keep-alive timeout as the request left: it was
                // not served, so sending it again on a new connection is safe.
                Err(error) if attempt == 0 => {
                    eprintln!("reconnecting the test's HTTPS client: {error}");
                    *held = None;
                }
                Err(error) => panic!("{method} {path}: {error}"),
            }
        }
        unreachable!()
    }

    async fn status(&self) -> Value {
        let (code, mut status) = self.request("GET", "/status", None).await;
        assert_eq!(code, 200, "{status}");
        status["asked_over_tls"] = json!(true);
        status
    }

    async fn publish(&self, body: &Value) {
        let (code, answer) = self.request("POST", "/publish", Some(body)).await;
        assert_eq!(code, 201, "{answer}");
    }
}

/// Opens `n` EventSources on the page, each following `/sse` from the start with
/// unnamed events (so `onmessage` hears every type).
async fn open_event_sources(browser: &Browser, n: usize) {
    let script = format!(
        "window.streams = [];
         for (let i = 0; i < {n}; i++) {{
           const s = {{ ids: [], errors: 0 }};
           s.source = new EventSource('/sse?since=0&event_names=false');
           s.source.onmessage = e => {{
             const m = JSON.parse(e.data);
             if (typeof m.id === 'number') s.ids.push(m.id);
           }};
           s.source.onerror = () => {{ s.errors += 1; }};
           streams.push(s);
         }}
         return streams.length"
    );
    assert_eq!(browser.eval(&script).await, json!(n));
}

/// Every stream's `readyState` (0 connecting, 1 open, 2 closed), ids received and errors.
async fn streams(browser: &Browser) -> Value {
    browser
        .eval("return streams.map(s => ({ state: s.source.readyState, ids: s.ids, errors: s.errors }))")
        .await
}

/// How many of `streams` are in `state` and have received exactly `ids`.
fn count(streams: &Value, state: u64, ids: &Value) -> usize {
    streams.as_array().unwrap().iter().filter(|s| s["state"] == state && &s["ids"] == ids).count()
}

/// The protocol Chromium says it loaded the page with (`h2`, `http/1.1`).
async fn navigation_protocol(browser: &Browser) -> Value {
    browser.eval("return performance.getEntriesByType('navigation')[0].nextHopProtocol").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_over_https_shows_every_message_in_all_four_panes_its_polls_on_http2() {
    let server = TlsServer::start().await;
    let Some(browser) = Browser::start_with(&[trusted_by_chromium(&server.identity)]).await else { return };

    // Trust is for exactly this certificate: a server with another one is refused.
    let stranger = TlsServer::start().await;
    browser.goto(&stranger.url("/")).await;
    let location = browser.eval("return location.href").await;
    let served = browser.eval("return typeof window.pushlabState").await;
    assert!(
        served == "undefined" && location != stranger.url("/"),
        "{location}: another certificate was accepted"
    );
    browser.console_errors().await; // the refusal's, if any

    browser.goto(&server.url("/")).await;
    until_panes_connected(&browser, &LIVE_BEFORE_A_MESSAGE).await;
    for i in 1..=5 {
        server.publish(&chat_message(i)).await;
    }
    let state = until_all_panes_have(&browser, 5).await;
    assert_latency_shown(&state, 5);

    // Chromium's view: the page and every request of its pollers over h2.
    assert_eq!(navigation_protocol(&browser).await, "h2");
    let resources = browser
        .eval("return [...new Set(performance.getEntriesByType('resource').map(e => e.nextHopProtocol))]")
        .await;
    assert_eq!(resources, json!(["h2"]), "the page's fetches");

    // The server's view: one HTTP/2 connection carries the page, the polls and the SSE
    // stream; the WebSocket is on it or on a TLS HTTP/1.1 connection of its own.
    let status = until(
        "the page's subscribers on one HTTP/2 connection",
        20,
        || server.status(),
        |s| {
            let open = Connections::of(s);
            s["subscribers"]["sse"] == 1
                && s["subscribers"]["ws"] == 1
                && (open == ONE_H2 || open == Connections { tls_http1: 1, ..ONE_H2 })
        },
    )
    .await;
    println!(
        "the live page over https: {:?} (besides the test's own), subscribers {}",
        Connections::of(&status),
        status["subscribers"]
    );

    // Published by the page itself: a POST through the short poller's client (over h2),
    // and a publish frame on the WebSocket pane's socket. Each answer is on the page.
    let published = || browser.eval("return document.getElementById('published').textContent");
    for (button, id, through) in [("#publish", 6, "short_poll"), ("#pane-ws .publish", 7, "ws")] {
        let before = published().await;
        browser.eval(&format!("document.querySelector('{button}').click(); return true")).await;
        let text = until("the page's publish answered", 15, published, |t| t != &before).await;
        assert!(
            text.as_str().unwrap_or_default().contains(&format!("#{id} through {through}")),
            "the page's own publish through {through} over HTTPS: {text}"
        );
        until_all_panes_have(&browser, id).await;
    }
    let state = until_all_panes_have(&browser, 7).await;
    for pane in PANES {
        assert_eq!(state[pane]["duplicates"], 0, "{pane}: {state}");
        assert_eq!(state[pane]["missed"], 0, "{pane}: {state}");
    }
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "the page logged errors: {errors:?}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_event_sources_over_http1_open_six_and_the_seventh_waits_for_a_connection() {
    let Some(browser) = Browser::start().await else { return };
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    // A page of the same origin that holds no stream of its own.
    browser.goto(&server.url("/status")).await;
    assert_eq!(navigation_protocol(&browser).await, "http/1.1");
    open_event_sources(&browser, 7).await;

    let status = until(
        "six SSE subscribers",
        15,
        || cleartext_status(&server, &client),
        |s| s["subscribers"]["sse"] == 6,
    )
    .await;
    client.post(server.url("/publish")).json(&chat_message(1)).send().await.unwrap();
    until("six streams with message 1", 15, || streams(&browser), |s| count(s, 1, &json!([1])) == 6).await;

    // Held for three more seconds: still six, and the seventh still connecting (not
    // failed: no error, no retry), with nothing received.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = streams(&browser).await;
    let status_after = cleartext_status(&server, &client).await;
    println!("seven EventSources over http://: {held}");
    println!("  /status: subscribers {}, {:?}", status_after["subscribers"], Connections::of(&status_after));
    assert_eq!(count(&held, 1, &json!([1])), 6, "{held}");
    assert_eq!(count(&held, 0, &json!([])), 1, "the seventh waits: {held}");
    assert!(held.as_array().unwrap().iter().all(|s| s["errors"] == 0), "{held}");
    assert_eq!(status_after["subscribers"]["sse"], 6, "{status_after}");
    let open = Connections::of(&status_after);
    assert_eq!((open.cleartext_http1, open.tls_http1, open.tls_http2), (6, 0, 0), "{status} {status_after}");

    // One of the six closes: its connection goes back to the pool, the seventh gets it
    // and catches up from its cursor.
    browser.eval("streams[0].source.close(); return true").await;
    let after = until(
        "the seventh stream open with message 1",
        15,
        || streams(&browser),
        |s| s[6]["state"] == 1 && s[6]["ids"] == json!([1]),
    )
    .await;
    assert_eq!(after[0]["state"], 2, "{after}");
    until(
        "six SSE subscribers again",
        15,
        || cleartext_status(&server, &client),
        |s| s["subscribers"]["sse"] == 6,
    )
    .await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_event_sources_over_https_all_flow_on_one_http2_connection() {
    let server = TlsServer::start().await;
    let Some(browser) = Browser::start_with(&[trusted_by_chromium(&server.identity)]).await else { return };
    browser.goto(&server.url("/status")).await;
    assert_eq!(navigation_protocol(&browser).await, "h2");
    open_event_sources(&browser, 7).await;

    until("seven streams open", 15, || streams(&browser), |s| count(s, 1, &json!([])) == 7).await;
    until("seven SSE subscribers", 15, || server.status(), |s| s["subscribers"]["sse"] == 7).await;
    server.publish(&chat_message(1)).await;
    let all =
        until("seven streams with message 1", 15, || streams(&browser), |s| count(s, 1, &json!([1])) == 7)
            .await;
    assert!(all.as_array().unwrap().iter().all(|s| s["errors"] == 0), "{all}");

    let first = server.status().await;
    let status = until(
        "one TLS HTTP/2 connection carrying all seven",
        20,
        || server.status(),
        |s| s["subscribers"]["sse"] == 7 && Connections::of(s) == ONE_H2,
    )
    .await;
    println!("seven EventSources over https://: {all}");
    println!("  /status: subscribers {}, {:?}", status["subscribers"], Connections::of(&status));
    if Connections::of(&first) != ONE_H2 {
        println!("  (at first {:?}: an unused connection, since closed)", Connections::of(&first));
    }
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_from_a_page_on_http2_delivers_and_the_server_says_which_connection_carries_it() {
    let server = TlsServer::start().await;
    let Some(browser) = Browser::start_with(&[trusted_by_chromium(&server.identity)]).await else { return };
    let version = browser.eval("return navigator.userAgent").await;
    browser.goto(&server.url("/status")).await;
    assert_eq!(navigation_protocol(&browser).await, "h2");

    // The page holds its HTTP/2 connection with a stream (an idle one would be closed
    // after --request-timeout), and no other connection is left.
    open_event_sources(&browser, 1).await;
    until("the stream open", 15, || streams(&browser), |s| count(s, 1, &json!([])) == 1).await;
    until(
        "the SSE subscriber on the page's only connection, HTTP/2",
        20,
        || server.status(),
        |s| s["subscribers"]["sse"] == 1 && Connections::of(s) == ONE_H2,
    )
    .await;

    browser
        .eval(
            "window.ws = { frames: [], closed: null };
             ws.socket = new WebSocket(`wss://${location.host}/ws?since=0`);
             ws.socket.onmessage = e => ws.frames.push(JSON.parse(e.data));
             ws.socket.onclose = e => { ws.closed = e.code; };
             return true",
        )
        .await;
    let read =
        || browser.eval("return { state: ws.socket.readyState, frames: ws.frames, closed: ws.closed }");
    until("the WebSocket's hello", 15, read, |w| w["frames"][0]["type"] == "hello").await;
    server.publish(&chat_message(1)).await;
    let frames = until("message 1 on the WebSocket", 15, read, |w| {
        w["frames"].as_array().unwrap().iter().any(|f| f["id"] == 1 && f["data"] == chat_message(1)["data"])
    })
    .await;
    assert_eq!(frames["state"], 1, "{frames}");

    // Exactly one of the two: the HTTP/2 connection alone (the WebSocket is a stream of
    // it), or that connection and one TLS HTTP/1.1 connection (the WebSocket's own).
    let own_connection = Connections { tls_http1: 1, ..ONE_H2 };
    let status = until(
        "the WebSocket on the HTTP/2 connection or on one TLS HTTP/1.1 connection",
        20,
        || server.status(),
        |s| s["subscribers"]["ws"] == 1 && [ONE_H2, own_connection].contains(&Connections::of(s)),
    )
    .await;
    let open = Connections::of(&status);
    let carried_on_h2 = open == ONE_H2;
    let observed = if carried_on_h2 {
        "on the page's HTTP/2 connection (RFC 8441 extended CONNECT)"
    } else {
        "on a TLS HTTP/1.1 connection of its own (HTTP/1.1 Upgrade)"
    };
    println!(
        "{version}: the WebSocket was carried {observed}; /status {open:?}, subscribers {}",
        status["subscribers"]
    );

    // Its close confirms which connection was its: a connection of its own closes with
    // it, the shared HTTP/2 connection stays.
    browser.eval("ws.socket.close(1000); return true").await;
    let after =
        until("the WebSocket closed on both sides", 15, || server.status(), |s| s["subscribers"]["ws"] == 0)
            .await;
    until("only the HTTP/2 connection left", 15, || server.status(), |s| Connections::of(s) == ONE_H2).await;
    let stream = streams(&browser).await;
    assert_eq!(
        count(&stream, 1, &json!([1])),
        1,
        "the SSE stream on the HTTP/2 connection still flows: {stream}"
    );
    assert_eq!(after["subscribers"]["sse"], 1, "{after}");
    browser.close().await;
}
