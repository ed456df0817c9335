//! SSE's two doors: a fresh connection whose first request is `GET /sse` is written by
//! the SSE transport straight onto the socket; anything else goes through hyper and the
//! router. Clients must not be able to tell them apart.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::*;

const SSE_REQUEST: &str = "GET /sse?since=1 HTTP/1.1\r\nhost: 127.0.0.1\r\norigin: http://page.test\r\n\r\n";

/// Sends `writes` on one new connection, `pause` apart, and reads until the text holds
/// `until` and ends at a chunk boundary (or with `until`).
async fn exchange(server: &TestServer, writes: &[&str], pause: Duration, until: &str) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    for write in writes {
        tcp.write_all(write.as_bytes()).await.unwrap();
        tokio::time::sleep(pause).await;
    }
    let mut received = Vec::new();
    let mut buffer = [0; 4096];
    let done = |text: &[u8]| {
        String::from_utf8_lossy(text).contains(until)
            && (text.ends_with(b"\r\n") || text.ends_with(until.as_bytes()))
    };
    while !done(&received) {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buffer))
            .await
            .expect("the stream stalled")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buffer[..n]);
    }
    (tcp, String::from_utf8(received).unwrap())
}

/// The response without its `date` header, the one line that may differ.
fn without_date(response: &str) -> String {
    response.split("\r\n").filter(|line| !line.starts_with("date: ")).collect::<Vec<_>>().join("\r\n")
}

#[tokio::test]
async fn sse_sends_the_same_bytes_written_directly_or_through_the_router() {
    let server = TestServer::start().await;
    server.publish_numbers(0, 3).await;
    let no_pause = Duration::ZERO;
    let (_direct_tcp, direct) = exchange(&server, &[SSE_REQUEST], no_pause, "-3\nevent").await;
    // After another request on the same connection, hyper serves it through the router.
    let status = "GET /status HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";
    let (_routed_tcp, routed) = exchange(&server, &[status, SSE_REQUEST], no_pause, "-3\nevent").await;
    let routed = &routed[routed.rfind("HTTP/1.1 200 OK").unwrap()..];

    assert_eq!(without_date(&direct), without_date(routed));
    assert!(direct.starts_with(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
         x-accel-buffering: no\r\naccess-control-allow-origin: *\r\ntransfer-encoding: chunked\r\ndate: "
    ));
    assert!(direct.contains("retry: 1000\n\nid: "), "{direct}");
}

#[tokio::test]
async fn a_request_split_over_two_packets_still_gets_its_stream() {
    let server = TestServer::start().await;
    server.publish_numbers(0, 2).await;
    let (first, second) = SSE_REQUEST.split_at(12);
    let (_tcp, response) = exchange(&server, &[first, second], Duration::from_millis(50), "-2\nevent").await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
}

#[tokio::test]
async fn a_direct_subscriber_that_hangs_up_is_released_at_once() {
    // Without watching the socket, the server would notice only at the next heartbeat
    // write (15 s by default).
    let server = TestServer::start().await;
    let (tcp, _) = exchange(&server, &[SSE_REQUEST], Duration::ZERO, "retry: 1000").await;
    assert_eq!(server.get_json("/status").await.1["subscribers"]["sse"], 1);
    drop(tcp);
    for _ in 0..200 {
        if server.get_json("/status").await.1["subscribers"]["sse"] == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the subscriber was still counted 2 s after it hung up");
}

#[tokio::test]
async fn a_bad_direct_request_gets_the_routers_json_error() {
    let server = TestServer::start().await;
    let request = "GET /sse?since=soon HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";
    let (_tcp, response) = exchange(&server, &[request], Duration::ZERO, "\"}").await;
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"),
        "{response}"
    );
    assert!(response.contains(r#""error":"invalid_since""#), "{response}");
}
