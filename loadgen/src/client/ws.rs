//! WebSocket client: one upgraded connection (tokio-tungstenite over a counting socket).
//! Every frame is JSON: messages carry an `id`; notices (`hello`, `gap`, `reset`) do not.

use anyhow::Context;
use futures_util::StreamExt;
use pushlab_protocol::Notice;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use super::http::connect;
use super::{ClientError, Session};
use crate::wire::CountingStream;

/// What a frame is, read from its `id` (only messages have one) and `type`.
#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    id: Option<u64>,
}

/// Small buffers: thousands of these run in one process.
pub fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(16 * 1024).write_buffer_size(0)
}

/// Follows the stream until stopped.
pub async fn run(session: &mut Session) -> Result<(), ClientError> {
    let tcp = connect(session).await?;
    let stream = CountingStream::new(tcp, session.live.wire.clone());
    let url = format!("ws://{}/ws?since={}", session.target.host, session.resume_from());
    session.request_sent();
    let (mut socket, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(client_config()))
        .await
        .context("WebSocket handshake")?;
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
