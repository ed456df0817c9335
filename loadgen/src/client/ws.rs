//! WebSocket client: one WebSocket (tokio-tungstenite) on the client's connection: an
//! HTTP/1.1 upgrade, or over HTTP/2 one extended-CONNECT stream (RFC 8441).
//! Every frame is JSON: messages carry an `id`; notices (`hello`, `gap`, `reset`) do not.

use anyhow::Context;
use futures_util::StreamExt;
use pushlab_protocol::Notice;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;

use super::connect::Connection;
use super::{ClientError, Session};

/// What a frame is, read from its `id` (only messages have one) and `type`.
#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    id: Option<u64>,
}

/// Follows the stream until stopped.
pub async fn run(session: &mut Session) -> Result<(), ClientError> {
    let path = format!("/ws?since={}", session.resume_from());
    let mut socket = Connection::open(session).await?.websocket(session, &path).await?;
    loop {
        let frame = tokio::select! {
            _ = session.stop.cancelled() => return Err(ClientError::Stopped),
            frame = socket.next() => frame,
        };
        let text = match frame {
            None => return Err(anyhow::anyhow!("the server closed the connection").into()),
            Some(frame) => match frame.context("reading a frame")? {
                Message::Text(text) => text,
                Message::Close(reason) => {
                    return Err(anyhow::anyhow!("closed by the server: {reason:?}").into())
                }
                // tungstenite answers pings by itself on the next read or write.
                _ => continue,
            },
        };
        let header: Header = serde_json::from_str(text.as_str()).context("frame is not JSON")?;
        if header.id.is_some() {
            session.deliver(text.as_str())?;
            continue;
        }
        // Not a message: a notice, or a reply this client never asked for.
        match serde_json::from_str::<Notice>(text.as_str()) {
            Ok(Notice::Gap { missed }) => session.gap(missed),
            Ok(Notice::Reset { epoch, .. }) => session.reset(Some(&epoch.to_string())),
            Ok(Notice::Hello { epoch, .. }) => session.epoch_is(&epoch.to_string()),
            _ => {}
        }
    }
}
