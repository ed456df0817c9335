//! Raw sockets for the attackers.
//!
//! No client library here, on purpose: a library would do things for the attacker that
//! a hostile client does not do — read in the background, answer pings, time out. Each
//! attacker writes exactly the bytes it means to and reads only when it decides to.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::{ensure, Context};
use base64::Engine;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

/// Connects to `addr`, with a receive buffer of `recv_buffer` bytes when given.
pub(super) async fn connect(addr: SocketAddr, recv_buffer: Option<u32>) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(size) = recv_buffer {
        // Set before connecting: the window the client offers (and its scale) is agreed
        // in the handshake. Linux doubles the value and has a floor of a few KiB.
        socket.set_recv_buffer_size(size)?;
    }
    socket.connect(addr).await
}

/// `GET path` with the headers a browser-like client sends, keep-alive.
pub(super) fn get(host: &str, path: &str, accept: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: {host}\r\naccept: {accept}\r\nuser-agent: pushlab-abuse\r\n\r\n")
}

/// A valid WebSocket upgrade request for `path` (RFC 6455 §4.1), with a fresh key.
pub(super) fn ws_upgrade(host: &str, path: &str) -> String {
    let key: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    let key = base64::engine::general_purpose::STANDARD.encode(key);
    format!(
        "GET {path} HTTP/1.1\r\nhost: {host}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-key: {key}\r\nsec-websocket-version: 13\r\nuser-agent: pushlab-abuse\r\n\r\n"
    )
}

/// A response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Head {
    /// Bytes of the head, blank line included.
    pub(super) len: usize,
    /// Status code.
    pub(super) status: u16,
    /// `content-length`, when the response has one.
    pub(super) content_length: Option<u64>,
}

/// The head at the start of `received`, once it is complete.
pub(super) fn parse_head(received: &[u8]) -> anyhow::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = response.parse(received).context("a malformed response head")?
    else {
        ensure!(received.len() < 16 * 1024, "a response head over 16 KiB");
        return Ok(None);
    };
    let mut content_length = None;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            content_length = Some(std::str::from_utf8(header.value)?.trim().parse()?);
        }
    }
    Ok(Some(Head { len, status: response.code.unwrap_or(0), content_length }))
}

/// Reads into `received` (at most `chunk` bytes at a time) until it starts with a whole
/// response head. Bytes after the head stay in `received`.
pub(super) async fn read_head(
    stream: &mut TcpStream,
    received: &mut Vec<u8>,
    chunk: usize,
) -> anyhow::Result<Head> {
    let mut buf = vec![0; chunk];
    loop {
        if let Some(head) = parse_head(received)? {
            return Ok(head);
        }
        let n = stream.read(&mut buf).await.context("reading the response head")?;
        ensure!(n > 0, "the server closed the connection before answering");
        received.extend_from_slice(&buf[..n]);
    }
}

/// Counts of HTTP status codes seen.
pub type StatusCounts = BTreeMap<u16, u64>;

/// Adds `other`'s counts to `into`.
pub(super) fn add_statuses(into: &mut StatusCounts, other: &StatusCounts) {
    for (status, n) in other {
        *into.entry(*status).or_default() += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_parsed_with_its_length_and_status() {
        let response = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_head(&response[..10]).unwrap(), None);
        assert_eq!(
            parse_head(response).unwrap(),
            Some(Head { len: response.len() - 2, status: 503, content_length: Some(2) })
        );
        let upgrade = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n";
        assert_eq!(parse_head(upgrade).unwrap().unwrap().content_length, None);
    }

    #[test]
    fn an_upgrade_request_is_well_formed() {
        let request = ws_upgrade("127.0.0.1:1", "/ws?since=0");
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut parsed = httparse::Request::new(&mut headers);
        assert!(parsed.parse(request.as_bytes()).unwrap().is_complete());
        let key = parsed.headers.iter().find(|h| h.name == "sec-websocket-key").unwrap();
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(key.value).unwrap().len(), 16);
    }
}
