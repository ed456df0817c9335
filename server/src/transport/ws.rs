//! WebSocket: `GET /ws?since=CURSOR` upgrades the connection. The first frame is
//! `{"type":"hello","epoch":"E","last_id":M}` (the epoch a resume cursor names); from
//! then on each message is one text frame carrying the message JSON, and the client may
//! send frames back ([`pushlab_protocol::ws`]):
//!
//! - `{"type":"publish","data":...,"message_type"?:"chat"}` publishes to the stream (same
//!   rules and token as `POST /publish`); the server answers
//!   `{"type":"published","message_id":N}` (no `id`: only messages carry one, so a client
//!   can tell them from notices by that field);
//! - `{"type":"ping"}` is answered with `{"type":"pong"}`;
//! - anything else gets a `{"type":"error",...}` frame; the connection stays open.
//!
//! The cursor lives in this connection's task. One task does both directions with
//! `select!`: it halves the per-connection state compared with a reader task and a
//! writer task joined by a channel, and a slow reader simply pauses both. Every write
//! has a deadline, so a peer that stops reading is closed (1008) rather than held.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use tokio::time::{Instant, MissedTickBehavior};
use tungstenite::error::{Error as WsError, ProtocolError};

use pushlab_protocol::Transport;

use super::follower::{Follower, STREAM_BUDGET};
use crate::admission::Admitted;
use crate::error::ApiError;
use crate::params::Params;
use crate::publish::{authorized, bearer_tokens, is_cross_site, validate_fields};
use crate::socket::{OpenStream, SocketUse};
use crate::state::AppState;
use pushlab_protocol::ws::{ClientFrame, Reply};
use pushlab_protocol::Notice;

/// Bytes tungstenite reads from the socket at a time. tungstenite allocates this much
/// per connection up front (its default, 128 KiB, dominated an idle connection's
/// memory). Client frames here are small (pongs, pings, publishes) and a larger one
/// still works: the buffer grows for it. 1 KiB instead of 4 KiB took an idle connection
/// from 6.6 KB to 3.5 KB of server memory (docs/performance.md).
const READ_BUFFER: usize = 1024;
/// Frames are collected up to this size before tungstenite writes them; a batch ends
/// with an explicit flush anyway.
const WRITE_BUFFER: usize = 16 * 1024;
/// Room, beyond a full write buffer and one message, for the control frames tungstenite
/// queues by itself: the pong for a ping (RFC 6455 §5.5.2) and the reply to a Close
/// (§5.5.1), at most 2 + 125 bytes each.
const CONTROL_SLACK: usize = 1024;
/// A peer that lets this many heartbeats pass without a sign of life is gone: no frame
/// from it (a peer that reads answers our pings), or no write to it finishing (it
/// stopped reading).
const SILENT_HEARTBEATS: u32 = 2;
/// Close codes from RFC 6455 §7.4.1.
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_INVALID_DATA: u16 = 1007;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
/// How long a closing server waits for the peer's Close frame. Short, because shutdown
/// must finish within a second.
const CLOSE_HANDSHAKE: Duration = Duration::from_millis(300);

/// `GET /ws?since=ID&token=T`.
pub async fn ws(
    State(app): State<Arc<AppState>>,
    socket_use: Option<Extension<Arc<SocketUse>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    params: Params,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, Response> {
    let upgrade = upgrade.map_err(handshake_refused)?;
    let metrics = app.metrics.transport(Transport::Ws);
    // Refuse before upgrading, so a client over the limit gets a proper 503.
    let admitted = app.admission.admit(metrics).map_err(IntoResponse::into_response)?;
    // WebSocket ignores CORS: a page of any origin can open one. Without a token, only
    // same-origin pages (and non-browser clients) may publish on it.
    let same_site = app.config.publish_token.is_some() || !is_cross_site(&headers, &uri);
    let may_publish = same_site
        && authorized(&app.config, &[&[params.token.as_deref()][..], &bearer_tokens(&headers)].concat());
    // Following from now, so nothing appended during the handshake is missed.
    let follower = Follower::new(app.clone(), Transport::Ws, params.since);
    let max_frame = app.config.max_message_bytes + 1024;
    let tasks = app.tasks.clone();
    Ok(upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        // tungstenite keeps what it could not write yet in a buffer that by default grows
        // without bound, and its automatic replies go there too: a client that floods
        // pings and never reads would grow it by a pong per ping. The cap is what a peer
        // that reads can need at once: a full WRITE_BUFFER, the largest frame we send
        // (one message), and CONTROL_SLACK. A write past it fails with `WriteBufferFull`,
        // and the peer is closed as slow.
        .max_write_buffer_size(WRITE_BUFFER + max_frame + CONTROL_SLACK)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |socket| {
            // The connection counts the session as an open stream (over HTTP/2 the
            // CONNECT stream outlives its response), so it never idles out under it.
            let stream = socket_use.map(|Extension(socket_use)| OpenStream::new(socket_use));
            let session = WsSession { app, follower, may_publish, _admitted: admitted, _stream: stream };
            // Tracked, so shutdown can wait for every session to send its close frame.
            tasks.track_future(session.run(socket))
        }))
}

struct WsSession {
    app: Arc<AppState>,
    follower: Follower,
    may_publish: bool,
    _admitted: Admitted,
    _stream: Option<OpenStream>,
}

/// Why a session ends.
enum End {
    /// The socket failed or the peer vanished: nothing more can be sent.
    Gone,
    /// The peer sent a Close frame; tungstenite has queued our reply.
    PeerClosed,
    /// The peer stopped reading: a write made no progress, or its write buffer filled.
    /// We close with 1008 and count it.
    Slow,
    /// We close with this code and reason.
    Close(u16, &'static str),
}

impl WsSession {
    async fn run(mut self, mut socket: WebSocket) {
        let heartbeat = self.app.config.heartbeat;
        let mut ticker = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        // First, the stream's epoch: the client needs it to resume with a full cursor
        // (`?since=EPOCH-ID`), so that a restart of this server is never silent.
        let hello = Notice::Hello { epoch: self.app.log.epoch(), last_id: self.app.log.last_id() }.to_json();
        let end = match self.write(socket.send(Message::text(hello))).await {
            Err(end) => end,
            Ok(()) => loop {
                if let Err(end) = self.send_pending(&mut socket).await {
                    break end;
                }
                tokio::select! {
                    biased;
                    _ = self.app.shutdown.cancelled() => break End::Close(CLOSE_GOING_AWAY, "server shutting down"),
                    incoming = socket.recv() => {
                        last_heard = Instant::now();
                        match incoming {
                            Some(Ok(message)) => if let Err(end) = self.on_frame(&mut socket, message).await {
                                break end;
                            },
                            Some(Err(error)) => break read_failed(error),
                            None => break End::Gone,
                        }
                    }
                    alive = self.follower.appended() => if !alive {
                        break End::Close(CLOSE_GOING_AWAY, "stream closed");
                    },
                    _ = ticker.tick() => {
                        // Any frame from the peer counts as a sign of life; two silent
                        // heartbeats mean it is gone (or its network is).
                        // Checked at a tick, so "silent for two heartbeats" is reached
                        // at the second tick after the last sign of life; the tenth of a
                        // heartbeat of slack absorbs the ticker's own lateness.
                        if last_heard.elapsed() + heartbeat / 10 >= heartbeat * SILENT_HEARTBEATS {
                            break End::Close(CLOSE_POLICY, "no pong for two heartbeats");
                        }
                        if let Err(end) = self.write(socket.send(Message::Ping(bytes::Bytes::new()))).await {
                            break end;
                        }
                    }
                }
            },
        };
        let (code, reason) = match end {
            End::Gone => return,
            End::PeerClosed => {
                // RFC 6455 §5.5.1: an endpoint that receives a Close sends one back.
                // tungstenite queued ours (the peer's code echoed, or 1002 for a code no
                // endpoint may send, §7.4); this flush sends it. Dropping the socket then
                // closes the TCP connection, which the server should do first (§7.1.1).
                let _ = tokio::time::timeout(CLOSE_HANDSHAKE, socket.flush()).await;
                return;
            }
            End::Slow => {
                self.app.metrics.transport(Transport::Ws).slow_closed.inc();
                (CLOSE_POLICY, "slow reader")
            }
            End::Close(code, reason) => (code, reason),
        };
        // The closing handshake (RFC 6455 §7.1): send our Close, then read until the
        // peer's Close comes back, so the peer can read ours before the TCP connection
        // goes. Bounded, so a peer that stopped reading cannot hold shutdown (to a slow
        // peer the Close is only a best effort). After a protocol error tungstenite reads
        // nothing more, so the Close is sent and the connection dropped at once (§7.1.7).
        let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
        let handshake = async {
            socket.send(Message::Close(Some(frame))).await?;
            while let Some(message) = socket.recv().await {
                if let Message::Close(_) = message? {
                    break;
                }
            }
            Ok::<(), axum::Error>(())
        };
        let _ = tokio::time::timeout(CLOSE_HANDSHAKE, handshake).await;
    }

    /// Writes everything the cursor has pending: feed every frame of a batch, then one
    /// flush, so a cursor that fell behind catches up with a few large writes.
    async fn send_pending(&mut self, socket: &mut WebSocket) -> Result<(), End> {
        let metrics = self.app.metrics.transport(Transport::Ws);
        loop {
            let batch = self.follower.read(STREAM_BUDGET);
            if batch.is_empty() {
                return Ok(());
            }
            let mut sent = 0u64;
            for notice in batch.reset.iter().chain(&batch.gap) {
                let notice = notice.to_json();
                sent += notice.len() as u64;
                self.write(socket.feed(Message::text(notice))).await?;
            }
            for entry in &batch.entries {
                sent += entry.json.len() as u64;
                self.write(socket.feed(Message::Text(entry.json.clone()))).await?;
            }
            metrics.bytes_sent.inc_by(sent);
            self.write(socket.flush()).await?;
            // Mark the wake-up as seen: everything up to here has been sent.
            self.follower.seen();
        }
    }

    /// One write to the socket (a frame fed or sent, or a flush), bounded in time. A
    /// write waits while the peer's TCP window is full; one that has not finished after
    /// `SILENT_HEARTBEATS` heartbeats means the peer stopped reading, so "closed (1008)
    /// after two silent heartbeats" holds even while data is pending (the ticker cannot
    /// run during a write). One write moves at most the write buffer's cap, so a peer
    /// that reads, however slowly, finishes it in time. Shutdown interrupts it.
    async fn write(&self, write: impl Future<Output = Result<(), axum::Error>>) -> Result<(), End> {
        let deadline = self.app.config.heartbeat * SILENT_HEARTBEATS;
        tokio::select! {
            biased;
            _ = self.app.shutdown.cancelled() => Err(End::Close(CLOSE_GOING_AWAY, "server shutting down")),
            written = tokio::time::timeout(deadline, write) => match written {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(write_failed(error)),
                Err(_) => Err(End::Slow),
            },
        }
    }

    async fn on_frame(&mut self, socket: &mut WebSocket, message: Message) -> Result<(), End> {
        let reply = match message {
            Message::Text(text) => self.on_text(text.as_str()),
            Message::Binary(_) => error_frame(ApiError::bad_request(
                "binary_not_supported",
                "send JSON text frames: {\"type\":\"ping\"} or {\"type\":\"publish\",\"data\":...}",
            )),
            Message::Close(_) => return Err(End::PeerClosed),
            // tungstenite queued the pong (RFC 6455 §5.5.2: "as soon as is practical").
            // Sending it before reading on means that a client that pings and never reads
            // is not read either, and meets the write deadline, instead of making us pile
            // up its pongs.
            Message::Ping(_) => return self.write(socket.flush()).await,
            // Pongs only prove the peer is alive.
            Message::Pong(_) => return Ok(()),
        };
        // `send` waits for the flush, so a client that sends bad frames and never reads
        // its error frames is not read either, until the write deadline closes it.
        self.write(socket.send(Message::text(reply))).await
    }

    fn on_text(&self, text: &str) -> String {
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) if text.trim_start().starts_with('{') => frame,
            _ => {
                return error_frame(ApiError::bad_request(
                    "invalid_json",
                    "a client frame must be a JSON object with a string `type`",
                ))
            }
        };
        match frame.frame {
            Some("ping") => Reply::Pong.to_json(),
            Some("publish") => {
                if !self.may_publish {
                    return error_frame(ApiError::unauthorized());
                }
                match validate_fields(frame.message_type.0, frame.data.0, &self.app.config) {
                    Ok(message) => {
                        let ids = self.app.append(vec![message]);
                        Reply::Published { message_id: ids[0] }.to_json()
                    }
                    Err(e) => error_frame(e),
                }
            }
            _ => error_frame(ApiError::bad_request(
                "unknown_frame",
                "known client frames: {\"type\":\"ping\"} and {\"type\":\"publish\",\"data\":...}",
            )),
        }
    }
}

/// How a failed read ends the session. A peer that breaks RFC 6455 gets the Close code
/// §7.4.1 asks for before the TCP connection closes (§7.1.7); a dead socket gets nothing.
fn read_failed(error: axum::Error) -> End {
    match tungstenite_error(error) {
        // A frame or message over `max_frame_size` / `max_message_size`.
        Some(WsError::Capacity(_)) => End::Close(CLOSE_TOO_BIG, "message too big"),
        // A text frame or Close reason that is not UTF-8 (§8.1).
        Some(WsError::Utf8(_)) => End::Close(CLOSE_INVALID_DATA, "invalid UTF-8"),
        // The TCP connection ended without a Close: there is no one left to tell.
        Some(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => End::Gone,
        // An unmasked frame (§5.1), reserved bits (§5.2) or opcode (§5.2), a control
        // frame over 125 bytes or fragmented (§5.5), a Close body of one byte (§5.5.1).
        Some(WsError::Protocol(_)) => End::Close(CLOSE_PROTOCOL_ERROR, "protocol error"),
        // Reading also writes: tungstenite sends its queued pongs on the way.
        Some(error) if is_slow(&error) => End::Slow,
        _ => End::Gone,
    }
}

/// How a failed write ends the session.
fn write_failed(error: axum::Error) -> End {
    match tungstenite_error(error) {
        Some(error) if is_slow(&error) => End::Slow,
        _ => End::Gone,
    }
}

/// Whether a write failed because the peer stopped reading: the write buffer reached
/// its cap, or the connection's own write deadline (`--write-timeout`, see
/// `connection::Guarded`) passed.
fn is_slow(error: &WsError) -> bool {
    match error {
        WsError::WriteBufferFull(_) => true,
        WsError::Io(error) => error.kind() == io::ErrorKind::TimedOut,
        _ => false,
    }
}

/// The tungstenite error inside axum's: axum 0.8 wraps it as it is. The downcast fails
/// only if axum ever uses another tungstenite than server/Cargo.toml names; every
/// error would then end the session as a dead socket.
fn tungstenite_error(error: axum::Error) -> Option<WsError> {
    error.into_inner().downcast::<WsError>().ok().map(|error| *error)
}

/// The answer to a `GET /ws` that is not a WebSocket handshake: the project's JSON
/// error, with the status axum chose, instead of axum's plain text.
fn handshake_refused(rejection: WebSocketUpgradeRejection) -> Response {
    let status = rejection.status();
    let why = rejection.body_text();
    let (code, message, header) = match rejection {
        WebSocketUpgradeRejection::MethodNotGet(_) | WebSocketUpgradeRejection::MethodNotConnect(_) => {
            return ApiError::method_not_allowed("GET").into_response();
        }
        // RFC 6455 §4.4: refuse, and name the versions the server speaks.
        WebSocketUpgradeRejection::InvalidWebSocketVersionHeader(_) => (
            "unsupported_websocket_version",
            "this server speaks WebSocket version 13 (RFC 6455): send `Sec-WebSocket-Version: 13`"
                .to_string(),
            Some((header::SEC_WEBSOCKET_VERSION, "13")),
        ),
        // HTTP/1.0 has no upgrades: 426, which names the protocol to upgrade to
        // (RFC 9110 §15.5.22).
        WebSocketUpgradeRejection::ConnectionNotUpgradable(_) => (
            "not_a_websocket_upgrade",
            format!("{why}: a WebSocket handshake needs HTTP/1.1"),
            Some((header::UPGRADE, "websocket")),
        ),
        _ => (
            "not_a_websocket_upgrade",
            format!(
                "{why}: /ws takes a WebSocket handshake (`Upgrade: websocket`, `Connection: Upgrade`, \
                 `Sec-WebSocket-Key`, `Sec-WebSocket-Version: 13`)"
            ),
            None,
        ),
    };
    let mut response = ApiError { status, code, message }.into_response();
    if let Some((name, value)) = header {
        response.headers_mut().insert(name, HeaderValue::from_static(value));
    }
    response
}

fn error_frame(error: ApiError) -> String {
    Reply::Error { error: error.code.to_string(), message: error.message }.to_json()
}
