//! The server under TLS and HTTP/2: every transport over each of cleartext HTTP/2
//! (prior knowledge), TLS with ALPN `h2` and TLS with `http/1.1`, WebSocket over HTTP/2
//! by extended CONNECT (RFC 8441), `/status` naming each connection's protocol, and the
//! hostile clients of these layers: a silent or garbage TLS handshake, an HTTP/2
//! connection left idle, a stream flood.
//!
//! The client here is hyper's, driven by hand over tokio-rustls: independent of the load
//! generator's, so the server is checked against a second implementation.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pushlab_server::tls::Identity;
use pushlab_server::Config;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;

use crate::util::TestServer;

/// A TLS server with a fresh certificate, and a connector that trusts exactly it.
async fn tls_server(config: Config) -> (TestServer, TlsConnector) {
    let (server, connector, _) = tls_server_with_identity(config).await;
    (server, connector)
}

async fn tls_server_with_identity(config: Config) -> (TestServer, TlsConnector, Identity) {
    let identity = Identity::generate().unwrap();
    let connector = connector(&identity, &[b"h2", b"http/1.1"]);
    let server = TestServer::with_config(Config { tls: Some(identity.clone()), ..config }).await;
    (server, connector, identity)
}

fn connector(identity: &Identity, alpn: &[&[u8]]) -> TlsConnector {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

async fn tls_connect(
    server: &TestServer,
    connector: &TlsConnector,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    connector.connect("localhost".try_into().unwrap(), tcp).await.unwrap()
}

/// An HTTP/2 connection over `io`; its driver runs in a task.
async fn http2<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: S) -> SendRequest<Full<Bytes>> {
    let (send, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await.unwrap();
    tokio::spawn(connection);
    send
}

async fn get(send: &mut SendRequest<Full<Bytes>>, path: &str) -> (u16, Value) {
    let request = hyper::Request::get(format!("https://localhost{path}")).body(Full::default()).unwrap();
    let response = send.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Publishes `n` messages on `send`'s connection.
async fn publish(send: &mut SendRequest<Full<Bytes>>, n: usize) {
    let batch: Vec<Value> = (0..n).map(|i| serde_json::json!({ "data": { "n": i } })).collect();
    let request = hyper::Request::post("https://localhost/publish")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&batch).unwrap())))
        .unwrap();
    let response = send.send_request(request).await.unwrap();
    assert_eq!(response.status(), 201);
}

/// The ids of the SSE events on `send`'s stream until `last` arrived.
async fn sse_ids(send: &mut SendRequest<Full<Bytes>>, last: u64) -> Vec<u64> {
    let request = hyper::Request::get("https://localhost/sse?since=0").body(Full::default()).unwrap();
    let response = send.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut text = String::new();
    let mut ids = Vec::new();
    while ids.last() != Some(&last) {
        let frame =
            tokio::time::timeout(Duration::from_secs(5), body.frame()).await.unwrap().unwrap().unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|line| line.strip_prefix("data: ")) {
                let json: Value = serde_json::from_str(data).unwrap();
                if let Some(id) = json["id"].as_u64() {
                    ids.push(id);
                }
            }
        }
    }
    ids
}

/// A WebSocket over HTTP/2: an extended CONNECT stream (RFC 8441), the frames of
/// RFC 6455 inside it.
async fn ws_over_http2(
    send: &mut SendRequest<Full<Bytes>>,
    query: &str,
) -> tokio_tungstenite::WebSocketStream<TokioIo<hyper::upgrade::Upgraded>> {
    let mut request = hyper::Request::builder()
        .method(hyper::Method::CONNECT)
        .uri(format!("https://localhost/ws?{query}"))
        .header("sec-websocket-version", "13")
        .body(Full::default())
        .unwrap();
    request.extensions_mut().insert(hyper::ext::Protocol::from_static("websocket"));
    let response = send.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200, "an extended CONNECT is answered 200, not 101");
    let upgraded = hyper::upgrade::on(response).await.unwrap();
    tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await
}

async fn ws_ids(
    ws: &mut (impl StreamExt<Item = tokio_tungstenite::tungstenite::Result<Message>> + Unpin),
    last: u64,
) -> Vec<u64> {
    let mut ids = Vec::new();
    while ids.last() != Some(&last) {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
        if let Message::Text(text) = frame {
            let json: Value = serde_json::from_str(&text).unwrap();
            if json["type"] == "update" {
                ids.push(json["id"].as_u64().unwrap());
            }
        }
    }
    ids
}

/// Every transport on one HTTP/2 connection: two polls, an SSE stream and a WebSocket.
async fn all_transports_on_one_connection(mut send: SendRequest<Full<Bytes>>) {
    publish(&mut send, 3).await;
    let (status, poll) = get(&mut send, "/poll?since=0").await;
    assert_eq!(status, 200);
    assert_eq!(poll["messages"].as_array().unwrap().len(), 3);
    let (status, long) = get(&mut send, "/long-poll?since=2&timeout=5").await;
    assert_eq!((status, long["messages"][0]["id"].as_u64()), (200, Some(3)));
    assert_eq!(sse_ids(&mut send.clone(), 3).await, [1, 2, 3]);
    let mut ws = ws_over_http2(&mut send, "since=0").await;
    assert_eq!(ws_ids(&mut ws, 3).await, [1, 2, 3]);
    // Live, after the handshake: the same message on both streams.
    let mut sse_send = send.clone();
    let sse = tokio::spawn(async move { sse_ids(&mut sse_send, 4).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    publish(&mut send, 1).await;
    assert_eq!(ws_ids(&mut ws, 4).await, [4]);
    assert_eq!(sse.await.unwrap(), [1, 2, 3, 4]);
    // Publishing over the WebSocket works inside HTTP/2 too.
    ws.send(Message::text(r#"{"type":"publish","data":{"n":99}}"#)).await.unwrap();
    assert_eq!(ws_ids(&mut ws, 5).await, [5]);
}

#[tokio::test]
async fn every_transport_flows_over_cleartext_http2_with_prior_knowledge() {
    let server = TestServer::start().await;
    let mut send = http2(TcpStream::connect(server.addr).await.unwrap()).await;
    let (_, status) = get(&mut send, "/status").await;
    assert_eq!(status["connections"]["cleartext"]["http2"], 1, "{status}");
    all_transports_on_one_connection(send).await;
}

#[tokio::test]
async fn every_transport_flows_over_tls_with_alpn_h2() {
    let (server, connector) = tls_server(Config::default()).await;
    let tls = tls_connect(&server, &connector).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut send = http2(tls).await;
    let (_, status) = get(&mut send, "/status").await;
    assert_eq!(status["connections"]["tls"]["http2"], 1, "{status}");
    all_transports_on_one_connection(send).await;
}

/// HTTP/1.1 inside TLS, by hand: the request bytes as a browser sends them.
async fn tls_http1(server: &TestServer, connector: &TlsConnector, request: &str) -> Vec<u8> {
    let mut tls = tls_connect(server, connector).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), tls.read_to_end(&mut out)).await;
    out
}

#[tokio::test]
async fn every_transport_flows_over_tls_with_http_1_1() {
    let identity = Identity::generate().unwrap();
    let server = TestServer::with_config(Config { tls: Some(identity.clone()), ..Config::default() }).await;
    let connector = connector(&identity, &[b"http/1.1"]);
    let body = r#"[{"data":1},{"data":2}]"#;
    let publish = format!(
        "POST /publish HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let published = String::from_utf8(tls_http1(&server, &connector, &publish).await).unwrap();
    assert!(published.starts_with("HTTP/1.1 201"), "{published}");
    let poll = tls_http1(
        &server,
        &connector,
        "GET /poll?since=0 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let poll = String::from_utf8(poll).unwrap();
    assert!(poll.starts_with("HTTP/1.1 200 OK\r\n") && poll.contains(r#""last_id":2"#), "{poll}");
    // SSE through the direct door (a whole `GET /sse` as the first request): the stream
    // is written inside TLS, until the client goes.
    let sse = tls_http1(&server, &connector, "GET /sse?since=0 HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    let sse = String::from_utf8(sse).unwrap();
    assert!(
        sse.starts_with("HTTP/1.1 200 OK\r\n") && sse.contains("id: ") && sse.contains(r#""id":2"#),
        "{sse}"
    );
    // A second request on the connection (no direct door) is hyper's, replayed.
    let two = "GET /status HTTP/1.1\r\nHost: localhost\r\n\r\nGET /poll?since=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let both = String::from_utf8(tls_http1(&server, &connector, two).await).unwrap();
    assert_eq!(both.matches("HTTP/1.1 200 OK").count(), 2, "{both}");
    // WebSocket by Upgrade, inside TLS.
    let tls = tls_connect(&server, &connector).await;
    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/ws?since=0", tls).await.unwrap();
    assert_eq!(ws_ids(&mut ws, 2).await, [1, 2]);
    let status = tls_http1(
        &server,
        &connector,
        "GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let status = String::from_utf8(status).unwrap();
    assert!(
        status.contains(r#""tls":{"http1":2,"http2":0}"#),
        "the WebSocket's connection and this one: {status}"
    );
}

#[tokio::test]
async fn a_tls_client_that_stalls_or_speaks_garbage_is_closed_and_others_are_served() {
    let config = Config { request_timeout: Duration::from_millis(300), ..Config::default() };
    let (server, connector) = tls_server(config).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut garbage = TcpStream::connect(server.addr).await.unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    // A handshake that starts and never finishes: the first two bytes of a record.
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(&[0x16, 0x03]).await.unwrap();
    let mut send = http2(tls_connect(&server, &connector).await).await;
    assert_eq!(get(&mut send, "/poll?since=0").await.0, 200, "a good client is served meanwhile");
    for (name, tcp) in [("silent", &mut silent), ("garbage", &mut garbage), ("half", &mut half)] {
        let mut scrap = [0; 512];
        let closed = async {
            loop {
                match tcp.read(&mut scrap).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(2), closed)
            .await
            .unwrap_or_else(|_| panic!("the {name} client is still open"));
    }
    let metrics = reqwest::get(server.url("/metrics")).await;
    // Cleartext requests to a TLS port fail their handshake too: read through a TLS
    // connection instead (a new one: the first has idled out meanwhile).
    assert!(metrics.is_err());
    let mut send = http2(tls_connect(&server, &connector).await).await;
    let request = hyper::Request::get("https://localhost/metrics").body(Full::default()).unwrap();
    let body = send.send_request(request).await.unwrap().into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    // The three, and reqwest's cleartext request above.
    assert!(text.contains("pushlab_tls_handshakes_failed_total 4"), "{text}");
}

#[tokio::test]
async fn an_idle_http2_connection_is_told_goaway_after_the_request_timeout() {
    let config = Config { request_timeout: Duration::from_millis(400), ..Config::default() };
    let server = TestServer::with_config(config).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut send, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    let driver = tokio::spawn(connection);
    assert_eq!(get(&mut send, "/poll?since=0").await.0, 200);
    // A long poll held for longer than the idle timeout is not idle.
    let (status, body) = get(&mut send, "/long-poll?since=0&timeout=1").await;
    assert_eq!((status, body["messages"].as_array().map(Vec::len)), (200, Some(0)));
    let ended = tokio::time::timeout(Duration::from_secs(3), driver).await;
    assert!(ended.is_ok(), "the idle connection is still open");
}

#[tokio::test]
async fn an_http2_stream_flood_is_refused_past_the_stream_limit_and_the_subscriber_limit() {
    let config = Config { max_connections: 10, ..Config::default() };
    let server = TestServer::with_config(config).await;
    let send = http2(TcpStream::connect(server.addr).await.unwrap()).await;
    // 300 SSE streams at once on one connection: past 256 the client itself waits for a
    // stream (the server's SETTINGS_MAX_CONCURRENT_STREAMS); past 10 subscribers every
    // stream is answered 503 with the JSON refusal.
    let mut streams = Vec::new();
    for _ in 0..300 {
        let mut send = send.clone();
        streams.push(tokio::spawn(async move {
            let request = hyper::Request::get("https://localhost/sse").body(Full::default()).unwrap();
            let response = send.send_request(request).await.unwrap();
            let status = response.status().as_u16();
            if status == 503 {
                let body = response.into_body().collect().await.unwrap().to_bytes();
                let json: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(json["error"], "too_many_connections", "{json}");
            } else {
                // Held open until the test ends.
                std::mem::forget(response);
            }
            status
        }));
    }
    let mut statuses = Vec::new();
    for stream in streams {
        statuses.push(tokio::time::timeout(Duration::from_secs(10), stream).await.unwrap().unwrap());
    }
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 10);
    assert_eq!(statuses.iter().filter(|&&s| s == 503).count(), 290);
    // Everyone else is still served.
    assert_eq!(server.get_json("/status").await.0, 200);
    // Keep `send` (and so the connection) alive until here.
    drop(send);
}

#[tokio::test]
async fn a_same_origin_page_may_publish_over_http2_and_another_origin_may_not() {
    // HTTP/2 names the host in `:authority`, with no `Host` header: before the fix every
    // browser publish over HTTP/2 was refused as cross-origin.
    let (server, connector) = tls_server(Config::default()).await;
    let mut send = http2(tls_connect(&server, &connector).await).await;
    let authority = format!("localhost:{}", server.addr.port());
    for (origin, expected) in
        [(format!("https://{authority}"), 201), ("https://evil.example".to_string(), 403)]
    {
        let request = hyper::Request::post(format!("https://{authority}/publish"))
            .header("content-type", "application/json")
            .header("origin", origin.as_str())
            .body(Full::new(Bytes::from_static(br#"{"data":1}"#)))
            .unwrap();
        let response = send.send_request(request).await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "Origin {origin}");
    }
}

#[tokio::test]
async fn a_stream_starved_of_flow_control_window_is_closed_after_the_write_timeout() {
    // Over HTTP/2 a client can stop one stream by granting it no window while its
    // connection stays healthy: the socket never blocks, so before the fix the write
    // deadline never fired and the subscriber held its place (and h2 its buffer) forever.
    let config = Config { write_timeout: Duration::from_millis(500), ..Config::default() };
    let server = TestServer::with_config(config).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        // Room for the stream's first bytes only; the body is never read, so never more.
        .initial_stream_window_size(64)
        .handshake::<_, Full<Bytes>>(TokioIo::new(tcp))
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get("https://localhost/sse?since=0").body(Full::default()).unwrap();
    let response = send.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut other = http2(TcpStream::connect(server.addr).await.unwrap()).await;
    let big = serde_json::json!({ "data": "x".repeat(4000) }).to_string();
    for _ in 0..3 {
        let request = hyper::Request::post("https://localhost/publish")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(big.clone())))
            .unwrap();
        assert_eq!(other.send_request(request).await.unwrap().status(), 201);
    }
    let closed = tokio::time::timeout(Duration::from_secs(5), driver).await;
    assert!(closed.is_ok(), "the starved stream's connection is still open");
    let request = hyper::Request::get("https://localhost/metrics").body(Full::default()).unwrap();
    let body = other.send_request(request).await.unwrap().into_body().collect().await.unwrap().to_bytes();
    let metrics = String::from_utf8(body.to_vec()).unwrap();
    assert!(metrics.contains("pushlab_write_timeouts_total 1"), "{metrics}");
    assert!(metrics.contains(r#"pushlab_slow_subscribers_closed_total{transport="sse"} 1"#), "{metrics}");
    drop(response);
}

#[tokio::test]
async fn a_websocket_over_http2_outlives_the_idle_timeout() {
    // The extended CONNECT's response has no body: before the fix the connection saw no
    // open stream once it was sent and closed the WebSocket as idle.
    let config = Config { request_timeout: Duration::from_millis(300), ..Config::default() };
    let server = TestServer::with_config(config).await;
    let mut send = http2(TcpStream::connect(server.addr).await.unwrap()).await;
    let mut ws = ws_over_http2(&mut send, "since=0").await;
    // Idle for ten timeouts: more than the idle check, the GOAWAY and the grace after it.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    publish(&mut http2(TcpStream::connect(server.addr).await.unwrap()).await, 1).await;
    assert_eq!(ws_ids(&mut ws, 1).await, [1], "the WebSocket still delivers after ten idle timeouts");
}
