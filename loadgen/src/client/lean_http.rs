//! The subscribers' HTTP/1.1 connection: one `GET` at a time over a keep-alive socket,
//! answered with a `content-length` body (the pollers) or a chunked stream that never
//! ends (SSE).
//!
//! Why not hyper (which the "bidirectional" POSTs use, see `http.rs`): a hyper client connection
//! runs in a task of its own, so every request, and every chunk of a stream, hops between
//! two tasks (and often two threads), and each request builds a header map. Subscribers
//! do little else, and with hyper the load generator spent more CPU per message than the
//! server delivering it (docs/performance.md), which would make it part of what it
//! measures. Here a request is a few bytes appended to a reused buffer, response heads
//! and chunk sizes are parsed in place by `httparse`, and nothing leaves the client's
//! task. The bytes on the wire are the ones hyper sent, header for header.
//!
//! Over HTTP/2 the clients use hyper (`connect.rs`): there the connection's own task is
//! what multiplexing streams needs, and the hop is part of what HTTP/2 costs a client.

use anyhow::{bail, ensure, Context};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Session;

/// Most headers a response may have (pushlab's have three to six).
const MAX_HEADERS: usize = 32;
/// A response head larger than this is not a pushlab server's.
const MAX_HEAD: usize = 16 * 1024;

/// One open keep-alive connection over `S` (the counted socket, or TLS above it: see
/// `connect.rs`, which makes them).
#[derive(Debug)]
pub struct LeanConnection<S> {
    io: S,
    /// The `host` header's value.
    host: String,
    /// Request bytes, rebuilt in place for each request.
    request: Vec<u8>,
    /// Response bytes read and not yet consumed.
    received: BytesMut,
}

/// How a response body is delimited.
#[derive(Debug, PartialEq)]
enum Framing {
    Length(usize),
    Chunked,
}

/// A parsed response head.
#[derive(Debug, PartialEq)]
struct Head {
    len: usize,
    status: u16,
    framing: Framing,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> LeanConnection<S> {
    /// HTTP/1.1 over an open connection to `host` (the `host` header's value).
    pub fn new(io: S, host: String) -> LeanConnection<S> {
        LeanConnection { io, host, request: Vec::with_capacity(192), received: BytesMut::new() }
    }

    /// The connection itself, for a protocol that takes it over (the WebSocket upgrade).
    /// Nothing may have been read on it yet.
    pub fn into_io(self) -> S {
        debug_assert!(self.received.is_empty());
        self.io
    }

    /// `GET path` and the whole body; a status other than 2xx is an error.
    pub async fn get_body(&mut self, session: &Session, path: &str) -> anyhow::Result<Bytes> {
        let head = self.request_head(session, path, "application/json").await?;
        let Framing::Length(body_len) = head.framing else {
            bail!("GET {path}: a chunked answer; pushlab's server answers polls with content-length");
        };
        while self.received.len() < head.len + body_len {
            self.read_more().await?;
        }
        let body = self.received.split_to(head.len + body_len).split_off(head.len).freeze();
        ensure!(
            (200..300).contains(&head.status),
            "GET {path}: {}: {}",
            head.status,
            String::from_utf8_lossy(&body)
        );
        Ok(body)
    }

    /// `GET path` answered by a chunked stream (SSE): the chunks' data, decoded, as they
    /// arrive. The stream ends with the server's last chunk or an error.
    pub async fn get_stream(
        mut self,
        session: &Session,
        path: &str,
        accept: &str,
    ) -> anyhow::Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static> {
        let head = self.request_head(session, path, accept).await?;
        if !(200..300).contains(&head.status) {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(100), self.read_more()).await;
            let body = String::from_utf8_lossy(&self.received[head.len..]).into_owned();
            bail!("GET {path}: {}: {body}", head.status);
        }
        ensure!(head.framing == Framing::Chunked, "GET {path}: a stream must be chunked");
        let _ = self.received.split_to(head.len);
        Ok(futures_util::stream::try_unfold(self, |mut connection| async move {
            let chunk = connection.next_chunk().await.map_err(std::io::Error::other)?;
            Ok(chunk.map(|chunk| (chunk, connection)))
        }))
    }

    /// Sends `GET path` and reads the response head (leaving it in `received`).
    async fn request_head(&mut self, session: &Session, path: &str, accept: &str) -> anyhow::Result<Head> {
        self.request.clear();
        for part in
            ["GET ", path, " HTTP/1.1\r\naccept: ", accept, "\r\nhost: ", &self.host, "\r\nuser-agent: "]
        {
            self.request.extend_from_slice(part.as_bytes());
        }
        self.request.extend_from_slice(concat!("pushlab/", env!("CARGO_PKG_VERSION"), "\r\n\r\n").as_bytes());
        session.request_sent();
        self.io.write_all(&self.request).await.context("sending the request")?;
        loop {
            if let Some(head) = parse_head(&self.received)? {
                return Ok(head);
            }
            self.read_more().await?;
        }
    }

    /// The next chunk's data, or `None` after the last (empty) chunk.
    async fn next_chunk(&mut self) -> anyhow::Result<Option<Bytes>> {
        loop {
            if let httparse::Status::Complete((size_len, size)) =
                httparse::parse_chunk_size(&self.received)
                    .map_err(|_| anyhow::anyhow!("a malformed chunk size"))?
            {
                let size = usize::try_from(size)?;
                // The size line, the data, and the CRLF after it.
                let whole = size_len + size + 2;
                while self.received.len() < whole {
                    self.read_more().await?;
                }
                let chunk = self.received.split_to(whole).freeze();
                ensure!(chunk.ends_with(b"\r\n"), "a chunk without its closing CRLF");
                return Ok((size > 0).then(|| chunk.slice(size_len..size_len + size)));
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> anyhow::Result<()> {
        self.received.reserve(4096);
        let read = self.io.read_buf(&mut self.received).await.context("reading the response")?;
        ensure!(read > 0, "the server closed the connection");
        Ok(())
    }
}

/// The response head, once complete.
fn parse_head(received: &[u8]) -> anyhow::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = response.parse(received)? else {
        ensure!(received.len() < MAX_HEAD, "a response head over {MAX_HEAD} bytes");
        return Ok(None);
    };
    // HTTP/1.1 asked for, HTTP/1.1 answered: a 1.0 answer would mean other framing rules.
    ensure!(
        response.version == Some(1),
        "the server answered in HTTP/1.{:?}, not HTTP/1.1",
        response.version
    );
    let status = response.code.unwrap_or(0);
    let mut framing = None;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            framing = Some(Framing::Length(std::str::from_utf8(header.value)?.trim().parse()?));
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            ensure!(header.value.eq_ignore_ascii_case(b"chunked"), "an unknown transfer-encoding");
            framing = Some(Framing::Chunked);
        }
    }
    let framing = framing.context("a response with neither content-length nor chunked encoding")?;
    Ok(Some(Head { len, status, framing }))
}

#[cfg(test)]
mod tests {
    use super::{parse_head, Framing, Head};

    #[test]
    fn a_head_is_parsed_once_complete() {
        let response = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 27\r\n\r\n{\"messages\":[],";
        let len = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(parse_head(&response[..20]).unwrap(), None);
        assert_eq!(
            parse_head(response).unwrap(),
            Some(Head { len, status: 200, framing: Framing::Length(27) })
        );
        let stream = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(parse_head(stream).unwrap().unwrap().framing, Framing::Chunked);
    }

    #[test]
    fn a_response_this_client_cannot_frame_is_an_error() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n").is_err());
    }
}
