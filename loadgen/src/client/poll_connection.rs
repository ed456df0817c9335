//! The pollers' HTTP/1.1 connection: one `GET` at a time over a keep-alive socket,
//! answered with a `content-length` body.
//!
//! Why not hyper (which the SSE client and the publisher use, see `http.rs`): a hyper
//! client connection runs in a task of its own, so every request hops between two tasks
//! (and often two threads), and builds a header map. Short polling is nothing but
//! requests, and with hyper the load generator spent more CPU per poll than the server
//! answering it (docs/performance.md), which would make it part of what it measures.
//! Here the request is a few bytes appended to a reused buffer, the response head is
//! parsed in place by `httparse`, and nothing leaves the client's task. The bytes on the
//! wire are the ones hyper sent, header for header.

use anyhow::{bail, ensure, Context};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::http::connect;
use super::Session;
use crate::wire::CountingStream;

/// Most headers a poll response may have (pushlab's has three).
const MAX_HEADERS: usize = 32;
/// A response head larger than this is not a pushlab server's.
const MAX_HEAD: usize = 16 * 1024;

/// One open keep-alive connection.
#[derive(Debug)]
pub struct PollConnection {
    tcp: CountingStream<TcpStream>,
    /// Request bytes, rebuilt in place for each request.
    request: Vec<u8>,
    /// What follows the path in every request: the version and the headers.
    request_tail: Vec<u8>,
    /// Response bytes read and not yet returned.
    received: BytesMut,
}

impl PollConnection {
    /// Opens a TCP connection to the session's target and counts it.
    pub async fn open(session: &Session) -> anyhow::Result<PollConnection> {
        let tcp = CountingStream::new(connect(session).await?, session.live.wire.clone());
        let request_tail = format!(
            " HTTP/1.1\r\naccept: application/json\r\nhost: {}\r\nuser-agent: pushlab/{}\r\n\r\n",
            session.target.host,
            env!("CARGO_PKG_VERSION")
        );
        Ok(PollConnection {
            tcp,
            request: Vec::with_capacity(request_tail.len() + 64),
            request_tail: request_tail.into_bytes(),
            received: BytesMut::new(),
        })
    }

    /// `GET path` and the whole body; a status other than 2xx is an error.
    pub async fn get_body(&mut self, session: &Session, path: &str) -> anyhow::Result<Bytes> {
        self.request.clear();
        self.request.extend_from_slice(b"GET ");
        self.request.extend_from_slice(path.as_bytes());
        self.request.extend_from_slice(&self.request_tail);
        session.request_sent();
        self.tcp.write_all(&self.request).await.context("sending the request")?;

        let (head_len, status, body_len) = loop {
            if let Some(head) = parse_head(&self.received)? {
                break head;
            }
            self.read_more().await?;
        };
        while self.received.len() < head_len + body_len {
            self.read_more().await?;
        }
        let mut response = self.received.split_to(head_len + body_len);
        let body = response.split_off(head_len).freeze();
        ensure!((200..300).contains(&status), "GET {path}: {status}: {}", String::from_utf8_lossy(&body));
        Ok(body)
    }

    async fn read_more(&mut self) -> anyhow::Result<()> {
        self.received.reserve(4096);
        let read = self.tcp.read_buf(&mut self.received).await.context("reading the response")?;
        ensure!(read > 0, "the server closed the connection");
        Ok(())
    }
}

/// `(head length, status, content-length)` once the head is complete.
fn parse_head(received: &[u8]) -> anyhow::Result<Option<(usize, u16, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = response.parse(received)? else {
        ensure!(received.len() < MAX_HEAD, "a response head over {MAX_HEAD} bytes");
        return Ok(None);
    };
    let status = response.code.unwrap_or(0);
    let mut body_len = None;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            body_len = Some(std::str::from_utf8(header.value)?.trim().parse()?);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("a poll response in chunked encoding: pushlab's server answers with content-length");
        }
    }
    let body_len = body_len.context("a poll response without content-length")?;
    Ok(Some((head_len, status, body_len)))
}

#[cfg(test)]
mod tests {
    use super::parse_head;

    #[test]
    fn a_head_is_parsed_once_complete() {
        let response = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 27\r\n\r\n{\"messages\":[],";
        let head_len = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(parse_head(&response[..20]).unwrap(), None);
        assert_eq!(parse_head(response).unwrap(), Some((head_len, 200, 27)));
    }

    #[test]
    fn a_response_this_client_cannot_frame_is_an_error() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
    }
}
