//! WebSocket: `GET /ws?since=ID` upgrades the connection; from then on each message is
//! one text frame carrying the message JSON, and the client may send frames back:
//!
//! - `{"type":"publish","data":...,"message_type"?:"chat"}` publishes to the stream (same rules
//!   and token as `POST /publish`); the server answers `{"type":"published","message_id":N}` (no `id`: only
//!   messages carry one, so a client can tell them from notices by that field);
//! - `{"type":"ping"}` is answered with `{"type":"pong"}`;
//! - anything else gets a `{"type":"error",...}` frame; the connection stays open.
//!
//! The cursor lives in this connection's task. One task does both directions with
//! `select!`: it halves the per-connection state compared with a reader task and a
//! writer task joined by a channel, and a slow reader simply pauses both.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::SinkExt;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::Transport;
use crate::app::AppState;
use crate::config::STREAM_BATCH;
use crate::error::ApiError;
use crate::metrics::Admitted;
use crate::params::Params;
use crate::publish::{authorized, bearer_token, validate};

/// Bytes tungstenite reads from the socket at a time. tungstenite allocates this much
/// per connection up front (its default, 128 KiB, dominated an idle connection's
/// memory). Client frames here are small (pongs, pings, publishes) and a larger one
/// still works: the buffer grows for it. 1 KiB instead of 4 KiB took an idle connection
/// from 6.6 KB to 3.5 KB of server memory (docs/performance.md).
const READ_BUFFER: usize = 1024;
/// Frames are collected up to this size before tungstenite writes them; a batch ends
/// with an explicit flush anyway.
const WRITE_BUFFER: usize = 16 * 1024;
/// Close codes from RFC 6455 §7.4.1.
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;
/// How long a closing server waits for the peer's Close frame. Short, because shutdown
/// must finish within a second.
const CLOSE_HANDSHAKE: Duration = Duration::from_millis(300);

/// `GET /ws?since=ID&token=T`.
pub async fn ws(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Params,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let metrics = app.metrics.transport(Transport::Ws);
    // Refuse before upgrading, so a client over the limit gets a proper 503.
    let admitted = app.admission.admit(metrics)?;
    let may_publish = authorized(&app.config, params.token.as_deref().or(bearer_token(&headers)));
    let cursor = params.since.unwrap_or_else(|| app.log.last_id());
    // Subscribe now, so nothing appended during the handshake is missed.
    let appended = app.log.subscribe();
    let max_frame = app.config.max_message_bytes + 1024;
    let tasks = app.tasks.clone();
    Ok(upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |socket| {
            let session = WsSession { app, appended, cursor, may_publish, _admitted: admitted };
            // Tracked, so shutdown can wait for every session to send its close frame.
            tasks.track_future(session.run(socket))
        }))
}

struct WsSession {
    app: Arc<AppState>,
    appended: watch::Receiver<u64>,
    cursor: u64,
    may_publish: bool,
    _admitted: Admitted,
}

/// Why a session ends.
enum End {
    /// The peer closed or the socket failed: nothing more to send.
    Gone,
    /// We close with this code and reason.
    Close(u16, &'static str),
}

impl WsSession {
    async fn run(mut self, mut socket: WebSocket) {
        let heartbeat = self.app.config.heartbeat;
        let mut ticker = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let end = loop {
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
                        Some(Err(_)) | None => break End::Gone,
                    }
                }
                changed = self.appended.changed() => if changed.is_err() {
                    break End::Close(CLOSE_GOING_AWAY, "stream closed");
                },
                _ = ticker.tick() => {
                    // Any frame from the peer counts as a sign of life; two silent
                    // heartbeats mean it is gone (or its network is).
                    if last_heard.elapsed() > heartbeat * 2 + Duration::from_millis(100) {
                        break End::Close(CLOSE_POLICY, "no pong for two heartbeats");
                    }
                    if socket.send(Message::Ping(bytes::Bytes::new())).await.is_err() {
                        break End::Gone;
                    }
                }
            }
        };
        if let End::Close(code, reason) = end {
            // The closing handshake (RFC 6455 §7.1): send our Close, then read until the
            // peer's Close comes back, so the peer can read ours before the TCP
            // connection goes. Bounded, so a peer that stopped reading cannot hold
            // shutdown.
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
    }

    /// Writes everything the cursor has pending: feed every frame of a batch, then one
    /// flush, so a cursor that fell behind catches up with a few large writes.
    async fn send_pending(&mut self, socket: &mut WebSocket) -> Result<(), End> {
        let metrics = self.app.metrics.transport(Transport::Ws);
        loop {
            let read = self.app.log.read_after(self.cursor, STREAM_BATCH);
            let mut sent = 0u64;
            if read.reset {
                let notice = format!(r#"{{"type":"reset","last_id":{}}}"#, read.last_id);
                sent += notice.len() as u64;
                feed(socket, Message::text(notice)).await?;
                self.cursor = read.last_id;
            }
            if read.missed > 0 {
                let notice = format!(r#"{{"type":"gap","missed":{}}}"#, read.missed);
                sent += notice.len() as u64;
                feed(socket, Message::text(notice)).await?;
                metrics.gaps.inc();
            }
            for entry in &read.entries {
                sent += entry.json.len() as u64;
                feed(socket, Message::Text(entry.json.clone())).await?;
                self.cursor = entry.id;
            }
            if sent == 0 {
                return Ok(());
            }
            metrics.bytes_sent.inc_by(sent);
            tokio::select! {
                biased;
                _ = self.app.shutdown.cancelled() => return Err(End::Close(CLOSE_GOING_AWAY, "server shutting down")),
                flushed = socket.flush() => flushed.map_err(|_| End::Gone)?,
            }
            // Mark the wake-up as seen: everything up to here has been sent.
            self.appended.borrow_and_update();
        }
    }

    async fn on_frame(&mut self, socket: &mut WebSocket, message: Message) -> Result<(), End> {
        let reply = match message {
            Message::Text(text) => self.on_text(text.as_str()),
            Message::Binary(_) => error_frame(ApiError::bad_request(
                "binary_not_supported",
                "send JSON text frames: {\"type\":\"ping\"} or {\"type\":\"publish\",\"data\":...}",
            )),
            Message::Close(_) => return Err(End::Gone),
            // tungstenite answers pings itself; pongs only prove the peer is alive.
            Message::Ping(_) | Message::Pong(_) => return Ok(()),
        };
        socket.send(Message::text(reply)).await.map_err(|_| End::Gone)
    }

    fn on_text(&self, text: &str) -> String {
        let Ok(Value::Object(mut frame)) = serde_json::from_str::<Value>(text) else {
            return error_frame(ApiError::bad_request(
                "invalid_json",
                "a client frame must be a JSON object",
            ));
        };
        match frame.remove("type").as_ref().and_then(Value::as_str) {
            Some("ping") => r#"{"type":"pong"}"#.to_string(),
            Some("publish") => {
                if !self.may_publish {
                    return error_frame(ApiError::unauthorized());
                }
                // The message's own type travels as `message_type`, since `type` names
                // the frame.
                if let Some(kind) = frame.remove("message_type") {
                    frame.insert("type".into(), kind);
                }
                match validate(Value::Object(frame), &self.app.config) {
                    Ok(message) => {
                        let ids = self.app.append(vec![message]);
                        format!(r#"{{"type":"published","message_id":{}}}"#, ids[0])
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

async fn feed(socket: &mut WebSocket, message: Message) -> Result<(), End> {
    socket.feed(message).await.map_err(|_| End::Gone)
}

fn error_frame(error: ApiError) -> String {
    let mut body = error.body();
    body["type"] = Value::from("error");
    body.to_string()
}
