//! Client → server: the "bidirectional" row of the comparison, measured rather than
//! asserted. A WebSocket client sends on the connection it already has; a client of
//! the other transports must make a separate HTTP request (`POST /publish`) on a second
//! connection. Both are timed from send to the server's acknowledgement, on a quiet
//! server after the main measurement.

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use pushlab_protocol::ws::{Publish, Reply};
use pushlab_protocol::Transport;
use serde_json::value::RawValue;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::client::connect::Connection;
use crate::client::http::HttpConnection;
use crate::client::{ClientSettings, Session, Target};
use crate::record::{new_histogram, Recorder};
use crate::results::Upstream;

/// Sends timed per transport.
const SENDS: u64 = 50;

/// Times [`SENDS`] client → server messages the way a client of `transport` sends them.
pub async fn measure(transport: Transport, target: &Target, epoch: Instant) -> anyhow::Result<Upstream> {
    let settings = ClientSettings::plain(Duration::ZERO);
    let mut session = Session::new(target.clone(), settings, Recorder::new(Default::default()), epoch);
    let mut rtt = new_histogram();
    let method;
    if transport == Transport::Ws {
        method = "frame on the same WebSocket connection";
        let mut socket = Connection::open(&mut session).await?.websocket(&session, "/ws").await?;
        let before = session.live.wire.snapshot();
        for i in 0..SENDS {
            let sent = Instant::now();
            let data = RawValue::from_string(format!(r#"{{"upstream":{i}}}"#))?;
            let frame = serde_json::to_string(&Publish { data: &data, message_type: None })?;
            socket.send(Message::text(frame)).await?;
            // Wait for the acknowledgement; the message itself also comes back on this
            // connection (it is a subscriber too), which is skipped here.
            loop {
                let frame = socket.next().await.context("connection closed")??;
                if let Message::Text(text) = frame {
                    if let Ok(Reply::Published { .. }) = serde_json::from_str(text.as_str()) {
                        break;
                    }
                }
            }
            rtt.saturating_record(sent.elapsed().as_micros() as u64);
        }
        let after = session.live.wire.snapshot();
        return Ok(finish(method, &rtt, before, after));
    }
    method = "separate HTTP request: POST /publish";
    let mut connection = HttpConnection::open(target, &session.live).await?;
    let before = session.live.wire.snapshot();
    for i in 0..SENDS {
        let sent = Instant::now();
        let body = Bytes::from(format!(r#"{{"data":{{"upstream":{i}}}}}"#));
        let token = target.publish_token.as_deref();
        let (status, reply) = connection.post_json(&session.live, "/publish", body, token).await?;
        anyhow::ensure!(status.is_success(), "POST /publish: {status}: {}", String::from_utf8_lossy(&reply));
        rtt.saturating_record(sent.elapsed().as_micros() as u64);
    }
    let after = session.live.wire.snapshot();
    Ok(finish(method, &rtt, before, after))
}

fn finish(
    method: &str,
    rtt: &hdrhistogram::Histogram<u64>,
    before: (u64, u64),
    after: (u64, u64),
) -> Upstream {
    // Client → server only: the request or frame that carries the message. (The replies
    // differ in kind: a 201 response versus an acknowledgement frame.)
    let bytes = after.1 - before.1;
    Upstream {
        method: method.to_string(),
        samples: rtt.len(),
        p50_ms: rtt.value_at_quantile(0.5) as f64 / 1e3,
        p99_ms: rtt.value_at_quantile(0.99) as f64 / 1e3,
        bytes_per_send: bytes as f64 / SENDS as f64,
    }
}
