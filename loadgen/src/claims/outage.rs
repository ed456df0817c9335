//! Claim C16: "reconnect with exponential backoff (1, 2, 4, 8, 16 s, then give up) keeps
//! clients connected". The experiment: WebSocket clients of two reconnect policies follow
//! a real server; the server stops (SIGTERM, as in a deploy), stays down for a while,
//! and starts again on the same address. We count who came back, and when.
//!
//! - **seed**: wait 1, 2, 4, 8, 16 s between attempts, then give up (the seed documents).
//! - **jittered**: wait a random time in [0, min(cap, base × 2^attempt)] and never give
//!   up ("full jitter", as AWS's architecture blog and most client libraries do).
//!
//! Times can be scaled down (`unit`) so a test can run the same experiment in seconds.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::process::ServerProcess;

/// A reconnect policy, in units of the experiment's time unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// 1, 2, 4, 8, 16, then give up.
    Seed,
    /// Full jitter: uniform in [0, min(10, 2^attempt)], never give up.
    Jittered,
}

impl Policy {
    /// How the policy is described in the results.
    pub fn describe(self) -> &'static str {
        match self {
            Policy::Seed => "seed: wait 1, 2, 4, 8, 16 s between attempts, then give up",
            Policy::Jittered => {
                "jittered: wait uniform [0, min(10 s, 2^n s)] before attempt n+1, never give up"
            }
        }
    }

    /// The wait before the next attempt after `failures` failed ones, in units, or
    /// `None` to give up.
    fn delay(self, failures: u32) -> Option<f64> {
        match self {
            Policy::Seed => [1.0, 2.0, 4.0, 8.0, 16.0].get(failures as usize).copied(),
            Policy::Jittered => Some(fastrand::f64() * 2f64.powi(failures.min(10) as i32).min(10.0)),
        }
    }
}

/// What happened to one policy's clients in one outage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyOutcome {
    /// [`Policy::describe`].
    pub policy: String,
    /// Clients of this policy.
    pub clients: usize,
    /// Connected again after the restart.
    pub reconnected: usize,
    /// Gave up before the server came back, or after.
    pub gave_up: usize,
    /// Connection attempts refused while the server was down.
    pub failed_attempts: u64,
    /// Time from the restart to the first and the last reconnection, ms.
    pub first_back_ms: Option<f64>,
    /// See `first_back_ms`.
    pub last_back_ms: Option<f64>,
    /// Most reconnections that landed within one 100 ms window (the thundering herd).
    pub busiest_100ms: usize,
}

/// One outage and what each policy's clients did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outage {
    /// How long the server was down, s.
    pub down_seconds: f64,
    /// One unit of the policies' schedules, s (1 for real time; less when scaled).
    pub unit_seconds: f64,
    /// One per policy.
    pub outcomes: Vec<PolicyOutcome>,
}

#[derive(Default)]
struct Log {
    /// When each client (policy index, client index) connected.
    connected: Vec<(usize, Instant)>,
    gave_up: Vec<usize>,
    failed_attempts: [u64; 2],
}

const POLICIES: [Policy; 2] = [Policy::Seed, Policy::Jittered];

/// Runs one outage of `down` (in units of `unit`) against a fresh server.
pub async fn run(exe: &Path, clients_per_policy: usize, down: f64, unit: Duration) -> anyhow::Result<Outage> {
    let server = spawn_below_ephemeral_ports(exe, None).await?;
    let addr = server.addr;
    let log = Arc::new(Mutex::new(Log::default()));
    let stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (p, &policy) in POLICIES.iter().enumerate() {
        for _ in 0..clients_per_policy {
            tasks.spawn(client(addr, p, policy, unit, log.clone(), stop.clone()));
        }
    }
    let everyone = 2 * clients_per_policy;
    wait_until(Duration::from_secs(10), || log.lock().expect("log").connected.len() >= everyone).await?;
    log.lock().expect("log").connected.clear();

    let down_at = Instant::now();
    server.stop().await?;
    tokio::time::sleep_until(down_at + unit.mul_f64(down)).await;
    let server = spawn_below_ephemeral_ports(exe, Some(addr)).await?;
    let up_at = Instant::now();
    // The seed's clients have given up 31 units after the drop at the latest; the
    // jittered ones retry at least every 10 units.
    let settled = || {
        let log = log.lock().expect("log");
        log.connected.len() + log.gave_up.len() >= everyone
    };
    let _ = wait_until(unit * 35, settled).await;
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    server.stop().await?;

    let log = log.lock().expect("log");
    let outcomes = POLICIES
        .iter()
        .enumerate()
        .map(|(p, policy)| {
            let mut back: Vec<f64> = log
                .connected
                .iter()
                .filter(|(q, _)| *q == p)
                .map(|(_, at)| at.saturating_duration_since(up_at).as_secs_f64() * 1e3)
                .collect();
            back.sort_by(f64::total_cmp);
            let busiest_100ms = (0..back.len())
                .map(|i| back[i..].iter().take_while(|&&t| t < back[i] + 100.0).count())
                .max()
                .unwrap_or(0);
            PolicyOutcome {
                policy: policy.describe().into(),
                clients: clients_per_policy,
                reconnected: back.len(),
                gave_up: log.gave_up.iter().filter(|&&q| q == p).count(),
                failed_attempts: log.failed_attempts[p],
                first_back_ms: back.first().copied(),
                last_back_ms: back.last().copied(),
                busiest_100ms,
            }
        })
        .collect();
    Ok(Outage { down_seconds: unit.as_secs_f64() * down, unit_seconds: unit.as_secs_f64(), outcomes })
}

/// One client: connect, follow until the connection ends, then reconnect by `policy`.
async fn client(
    addr: SocketAddr,
    p: usize,
    policy: Policy,
    unit: Duration,
    log: Arc<Mutex<Log>>,
    stop: CancellationToken,
) {
    let url = format!("ws://{addr}/ws");
    let mut failures = 0;
    loop {
        let attempt = tokio::select! {
            _ = stop.cancelled() => return,
            attempt = tokio_tungstenite::connect_async(url.as_str()) => attempt,
        };
        match attempt {
            Ok((mut socket, _)) => {
                failures = 0;
                log.lock().expect("log").connected.push((p, Instant::now()));
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        frame = socket.next() => if !matches!(frame, Some(Ok(_))) { break },
                    }
                }
            }
            Err(_) => {
                log.lock().expect("log").failed_attempts[p] += 1;
                failures += 1;
            }
        }
        // `failures` counts the attempts that failed since the last connection: after a
        // drop it is 0 and the wait is the policy's first delay; after the fifth failed
        // attempt the seed's policy has no delay left and gives up.
        let Some(wait) = policy.delay(failures) else {
            log.lock().expect("log").gave_up.push(p);
            return;
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(unit.mul_f64(wait)) => {}
        }
    }
}

/// A server on a port below the kernel's ephemeral range (32768 and up here), so the
/// clients' own connection attempts can never take its port while it is down.
async fn spawn_below_ephemeral_ports(exe: &Path, at: Option<SocketAddr>) -> anyhow::Result<ServerProcess> {
    if let Some(addr) = at {
        return ServerProcess::spawn_on(exe, addr, &[]).await;
    }
    let mut last_error = None;
    for _ in 0..10 {
        let addr: SocketAddr = format!("127.0.0.1:{}", fastrand::u16(20_000..32_000)).parse()?;
        match ServerProcess::spawn_on(exe, addr, &[]).await {
            Ok(server) => return Ok(server),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.expect("at least one attempt").context("no free port for the outage server"))
}

async fn wait_until(limit: Duration, done: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            anyhow::bail!("timed out after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
