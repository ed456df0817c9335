//! Pre-filling the server's history with large messages, so that the attackers that ask
//! for the history (stuck readers, poll hogs) have something big to ask for.
//!
//! The normal clients start from the stream's last id (see `run.rs`), so they never
//! receive these: the history is bait, not part of the measured workload.

use anyhow::{ensure, Context};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// What to pre-fill.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Prefill {
    /// Messages.
    pub messages: u64,
    /// Bytes of each message's `data`, as encoded JSON (a string of this length,
    /// quotes included).
    pub data_bytes: usize,
}

/// What pre-filling took.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct PrefillOutcome {
    /// Messages appended.
    pub messages: u64,
    /// `POST /publish` requests.
    pub batches: u64,
    /// How long it took, s.
    pub seconds: f64,
    /// The stream's last id afterwards.
    pub last_id: u64,
}

/// A publish body stays under this: the server takes at most 16 × `--max-message-bytes`
/// (1 MiB with the default 64 KiB).
const BODY_BUDGET: usize = 900 * 1024;

/// Publishes `prefill.messages` messages to the server at `base_url`, in batches.
pub async fn run(base_url: &str, prefill: Prefill) -> anyhow::Result<PrefillOutcome> {
    ensure!(prefill.data_bytes >= 2, "a pre-filled message needs at least 2 bytes of data (\"\")");
    let started = Instant::now();
    let client = reqwest::Client::new();
    let item = format!(r#"{{"type":"bulk","data":"{}"}}"#, "x".repeat(prefill.data_bytes - 2));
    let per_batch = (BODY_BUDGET / (item.len() + 1)).max(1) as u64;
    let (mut sent, mut batches) = (0, 0);
    while sent < prefill.messages {
        let n = per_batch.min(prefill.messages - sent);
        let body = format!("[{}]", vec![item.as_str(); n as usize].join(","));
        let response = client
            .post(format!("{base_url}/publish"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .context("pre-filling the history")?;
        let status = response.status();
        ensure!(
            status.is_success(),
            "pre-filling the history: {status}: {} (is --max-message-bytes below {} bytes?)",
            response.text().await.unwrap_or_default(),
            prefill.data_bytes
        );
        sent += n;
        batches += 1;
    }
    let poll: serde_json::Value = client.get(format!("{base_url}/poll")).send().await?.json().await?;
    Ok(PrefillOutcome {
        messages: sent,
        batches,
        seconds: started.elapsed().as_secs_f64(),
        last_id: poll["last_id"].as_u64().unwrap_or(0),
    })
}
