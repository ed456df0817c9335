//! Published figure P2 (RFC 6455 §5.2): a WebSocket frame header is 2 bytes for
//! payloads up to 125 bytes, 4 up to 65,535 and 10 above, and a client's frame adds a
//! 4-byte mask. The experiment: one client publishes messages of three sizes over its
//! WebSocket and receives them back, through the trace's recording relay; the recorded
//! bytes are decoded and every frame's header measured.

use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;

use crate::process::ServerProcess;
use crate::trace::{decode, recording_relay, Direction, Kind};

/// One frame as it crossed the socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Frame {
    /// `client → server` or `server → client`.
    pub direction: String,
    /// What the frame is, from the decoder: "FIN, text, masked, len 1027".
    pub description: String,
    /// Payload length.
    pub payload_bytes: usize,
    /// Header bytes, the mask included.
    pub header_bytes: usize,
    /// Of which masking key.
    pub mask_bytes: usize,
}

impl Frame {
    /// What RFC 6455 §5.2 says this frame's header should be.
    pub fn rfc_header_bytes(&self) -> usize {
        let length = match self.payload_bytes {
            0..=125 => 2,
            126..=65_535 => 4,
            _ => 10,
        };
        length + if self.direction.starts_with("client") { 4 } else { 0 }
    }
}

/// The `data` sizes published; the frames are a little larger (the JSON around them).
pub const DATA_SIZES: [usize; 3] = [40, 1_000, 70_000];

/// Publishes one message per size over a WebSocket and returns every frame measured.
pub async fn run(exe: &Path) -> anyhow::Result<Vec<Frame>> {
    let extra = ["--max-message-bytes".to_string(), "200000".to_string()];
    let server = ServerProcess::spawn(exe, &extra).await?;
    let (relay, recording, relay_task) = recording_relay(server.addr).await?;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{relay}/ws")).await?;
    for size in DATA_SIZES {
        let frame = serde_json::json!({"type": "publish", "data": "x".repeat(size)}).to_string();
        socket.send(Message::text(frame)).await?;
        // The acknowledgement and the message itself come back.
        for _ in 0..2 {
            tokio::time::timeout(Duration::from_secs(5), socket.next())
                .await?
                .ok_or_else(|| anyhow::anyhow!("the server closed the WebSocket"))??;
        }
    }
    socket.close(None).await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    relay_task.abort();
    server.stop().await?;
    let recording = recording.lock().map_err(|_| anyhow::anyhow!("recording poisoned"))?;
    let mut frames = Vec::new();
    for (direction, name) in [(Direction::Up, "client → server"), (Direction::Down, "server → client")] {
        let parts = decode(&recording.stream(direction), direction);
        let mut parts = parts.iter().filter(|p| p.kind != Kind::HttpHead).peekable();
        // A frame decodes as: header, masking key (client frames only), payload.
        while let Some(header) = parts.next() {
            let Some(description) = header.label.strip_prefix("frame header: ") else { continue };
            let mask_bytes = match parts.peek() {
                Some(mask) if mask.label.starts_with("masking key") => {
                    parts.next().map_or(0, |m| m.bytes.len())
                }
                _ => 0,
            };
            let payload_bytes = parts.next().filter(|p| p.kind == Kind::Payload).map_or(0, |p| p.bytes.len());
            frames.push(Frame {
                direction: name.into(),
                description: description.into(),
                payload_bytes,
                header_bytes: header.bytes.len() + mask_bytes,
                mask_bytes,
            });
        }
    }
    Ok(frames)
}
