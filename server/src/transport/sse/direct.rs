//! The direct door: a fresh connection whose first request is a whole, valid
//! `GET /sse` is taken over before hyper sees it, and its response written straight
//! onto the socket with `writev`: the same bytes the router would send (a test compares
//! them), without hyper's buffers for the life of the stream.

use std::io::{self, IoSlice};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{SseSession, STREAM_HEADERS};
use crate::params::Params;
use crate::state::AppState;
use pushlab_protocol::Transport;

/// The most request bytes [`take_over`] looks at; a longer head goes to the router.
const PEEK_LIMIT: usize = 4096;

/// A subscriber whose connection the SSE transport writes itself.
pub(crate) struct Direct {
    session: SseSession,
    /// The request head, peeked but not yet consumed (empty when it was read).
    head: Vec<u8>,
    /// The request carried `Origin`: answer with `access-control-allow-origin: *`, as the
    /// router's CORS middleware does.
    cross_origin: bool,
}

/// Looks at a fresh connection's first bytes without consuming them. If they are a
/// whole `GET /sse` request that opens a session, returns it; otherwise `None`, and
/// hyper serves the connection from its first byte as if nothing had happened.
pub(crate) async fn take_over(tcp: &TcpStream, app: &Arc<AppState>) -> Option<Direct> {
    // Wait before allocating: a connection that never speaks holds no buffer. The caller
    // bounds this wait by --request-timeout.
    tcp.readable().await.ok()?;
    let mut head = vec![0; PEEK_LIMIT];
    let peeked = tcp.peek(&mut head).await.ok()?;
    let (direct, head_len) = open(&head[..peeked], app)?;
    head.truncate(head_len);
    Some(Direct { head, ..direct })
}

/// The door for bytes already read (the first request inside TLS): nothing is left
/// to consume.
pub(crate) fn offer(first: &[u8], app: &Arc<AppState>) -> Option<Direct> {
    open(first, app).map(|(direct, _)| direct)
}

/// One read of what a fresh connection sent first, at most [`PEEK_LIMIT`] bytes.
pub(crate) async fn read_first_request<S: AsyncRead + Unpin>(io: &mut S) -> io::Result<Vec<u8>> {
    let mut first = vec![0; PEEK_LIMIT];
    let n = io.read(&mut first).await?;
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    first.truncate(n);
    Ok(first)
}

/// A session for the `GET /sse` request at the start of `bytes`, and that request's
/// length; `None` for anything the router should answer.
fn open(bytes: &[u8], app: &Arc<AppState>) -> Option<(Direct, usize)> {
    let request = DirectRequest::parse(bytes)?;
    // A host the router would refuse is left to it, so the refusal is the same.
    if app.loopback && !request.host.is_some_and(crate::edge::is_loopback_host) {
        return None;
    }
    let params = Params::from_query(request.query).ok()?;
    let session = SseSession::open(app.clone(), request.last_event_id, params).ok()?;
    Some((Direct { session, head: Vec::new(), cross_origin: request.cross_origin }, request.head_len))
}

/// What [`take_over`] needs from a request head.
#[derive(Debug, PartialEq)]
struct DirectRequest<'a> {
    head_len: usize,
    query: &'a str,
    last_event_id: Option<&'a [u8]>,
    host: Option<&'a [u8]>,
    cross_origin: bool,
}

impl<'a> DirectRequest<'a> {
    /// A complete HTTP/1.1 `GET /sse[?query]` without a body, or `None`.
    fn parse(bytes: &'a [u8]) -> Option<DirectRequest<'a>> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        let httparse::Status::Complete(head_len) = request.parse(bytes).ok()? else {
            return None;
        };
        // HTTP/1.0 has no chunked encoding; leave it to hyper.
        if request.method != Some("GET") || request.version != Some(1) {
            return None;
        }
        let query = match request.path?.strip_prefix("/sse")? {
            "" => "",
            rest => rest.strip_prefix('?')?,
        };
        let mut direct =
            DirectRequest { head_len, query, last_event_id: None, host: None, cross_origin: false };
        for header in request.headers.iter() {
            let name = header.name;
            if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding") {
                return None; // a GET with a body: unusual enough for the general path
            } else if name.eq_ignore_ascii_case("last-event-id") {
                // Twice is a 400 the router gives.
                if direct.last_event_id.replace(header.value).is_some() {
                    return None;
                }
            } else if name.eq_ignore_ascii_case("host") {
                // Twice is a 400 (RFC 9112 §3.2): the router's to answer.
                if direct.host.replace(header.value).is_some() {
                    return None;
                }
            } else if name.eq_ignore_ascii_case("origin") {
                direct.cross_origin = true;
            }
        }
        Some(direct)
    }
}

impl Direct {
    /// Consumes the request, writes the response head with the first chunk, then one
    /// chunk per batch until the client leaves or the server shuts down.
    pub(crate) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(self, mut io: S) {
        let Direct { mut session, mut head, cross_origin } = self;
        if io.read_exact(&mut head).await.is_err() {
            return;
        }
        drop(head);
        let write_timeout = session.app.config.write_timeout;
        let mut response_head = response_head(cross_origin);
        let mut next = session.next_chunk().await;
        loop {
            // `None` ends the stream with the last chunk, of size 0.
            let chunk = next.as_deref().unwrap_or_default();
            let head = std::mem::take(&mut response_head);
            // A client that stopped reading (or vanished without a FIN) fills its socket
            // buffer and the write waits; a write that makes no progress for
            // --write-timeout drops it, counted as the router's door counts it.
            match write_chunk(&mut io, &head, chunk, write_timeout).await {
                Err(error) if error.kind() == io::ErrorKind::TimedOut => {
                    session.app.metrics.write_timeouts.inc();
                    session.app.metrics.transport(Transport::Sse).slow_closed.inc();
                    return;
                }
                Err(_) => return,
                Ok(()) if next.is_none() => {
                    // Closed as TLS wants it (close_notify; a FIN on a bare socket), so a
                    // client can tell the end from a cut; briefly, as shutdown is bounded.
                    let _ = tokio::time::timeout(Duration::from_millis(200), io.shutdown()).await;
                    return;
                }
                Ok(()) => {}
            }
            // A subscriber sends nothing after its request: whatever it does send is read
            // and dropped, and its end of the stream ends the session.
            let mut scrap = [0; 64];
            next = loop {
                tokio::select! {
                    chunk = session.next_chunk() => break chunk,
                    read = io.read(&mut scrap) => match read {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    },
                }
            };
        }
    }
}

/// The status line and headers of a stream, as hyper writes them (with `date`).
fn response_head(cross_origin: bool) -> Vec<u8> {
    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    let cors = cross_origin.then_some(("access-control-allow-origin", "*"));
    for (name, value) in STREAM_HEADERS.into_iter().chain(cors) {
        head.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    head.extend_from_slice(format!("transfer-encoding: chunked\r\ndate: {date}\r\n\r\n").as_bytes());
    head
}

/// Writes `before` (the response head, once), then `chunk` in chunked encoding, in one
/// `writev` when the socket takes it all; a `writev` that makes no progress for
/// `timeout` fails with `TimedOut`.
async fn write_chunk<S: AsyncWrite + Unpin>(
    io: &mut S,
    before: &[u8],
    chunk: &[u8],
    timeout: Duration,
) -> io::Result<()> {
    let size_line = format!("{:X}\r\n", chunk.len());
    let mut parts = [
        IoSlice::new(before),
        IoSlice::new(size_line.as_bytes()),
        IoSlice::new(chunk),
        IoSlice::new(b"\r\n"),
    ];
    let mut parts = &mut parts[..];
    while !parts.is_empty() {
        let written = tokio::time::timeout(timeout, io.write_vectored(parts))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading"))??;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut parts, written);
    }
    // A socket has nothing to flush; TLS may still hold the end of a record.
    tokio::time::timeout(timeout, io.flush())
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading"))?
}

#[cfg(test)]
mod tests {
    use super::DirectRequest;

    fn parse(head: &str) -> Option<DirectRequest<'_>> {
        DirectRequest::parse(head.as_bytes())
    }

    #[test]
    fn a_whole_get_sse_request_is_served_directly() {
        let head = "GET /sse?since=4&event_names=false HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 7\r\nOrigin: http://a\r\n\r\n";
        let request = parse(head).unwrap();
        assert_eq!(request.head_len, head.len());
        assert_eq!(request.query, "since=4&event_names=false");
        assert_eq!(request.last_event_id, Some(&b"7"[..]));
        assert!(request.cross_origin);
        let plain = parse("GET /sse HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!((plain.query, plain.last_event_id, plain.cross_origin), ("", None, false));
    }

    #[test]
    fn anything_else_is_left_to_the_router() {
        for head in [
            "GET /sse HTTP/1.1\r\nHost: x\r\n",              // not complete yet
            "GET /sse HTTP/1.0\r\nHost: x\r\n\r\n",          // no chunked encoding
            "POST /sse HTTP/1.1\r\nHost: x\r\n\r\n",         // wrong method: a 405
            "GET /sse2 HTTP/1.1\r\nHost: x\r\n\r\n",         // another path
            "GET /poll?since=1 HTTP/1.1\r\nHost: x\r\n\r\n", // another transport
            "GET /sse HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", // a body
        ] {
            assert_eq!(parse(head), None, "{head:?}");
        }
    }
}
