//! `pushlab abuse`: a bounded, reproducible run that shows whether hostile clients can
//! hurt the normal ones.
//!
//! Two phases, each against a fresh `pushlab serve` whose history is pre-filled with
//! large messages (`prefill.rs`):
//!
//! ```text
//! clean:     spawn ─ pre-fill ─ normal workload, transport by transport ─ stop
//! attacked:  spawn ─ pre-fill ─ attackers start ─ head start ─ the same workload ─ attackers stop ─ stop
//!                               └──────────── RSS sampled every 500 ms (both phases) ────────────┘
//! ```
//!
//! The normal workload is measured exactly as `pushlab lab` measures it ([`Plan`]):
//! latency from the intended publish time into an HdrHistogram, loss, duplicates and
//! reordering from the probe in every message. The attackers, one file each:
//!
//! | attacker | file | what it does |
//! | --- | --- | --- |
//! | stuck readers | `stuck_reader.rs` | `GET /sse?since=0` / `/ws?since=0` on a 2 KiB receive buffer, then never read |
//! | ping flooder | `ping_flood.rs` | a valid WebSocket, then 125-byte pings in a loop, never reading; reconnects when closed |
//! | poll hogs | `poll_hog.rs` | `GET /poll?since=0&limit=10000` again and again, read at 4 KiB per 100 ms |
//! | idle sockets | `idle_sockets.rs` | thousands of connections that never send a byte; reconnected when closed |
//!
//! `memory.rs` samples the server's memory and stops the attackers if it passes a
//! safety limit (the machine matters more than the run); `report.rs` holds the typed
//! results, the verdicts and the text of `summary.md`. Nothing here prints: progress goes
//! through a callback, the report is returned.
//!
//! Every attacker connects to the spawned server on 127.0.0.1 only, and every one stops
//! with its phase: the run is bounded by its phases' lengths.

pub mod idle_sockets;
pub mod memory;
pub mod ping_flood;
pub mod poll_hog;
pub mod prefill;
mod raw;
pub mod report;
pub mod stuck_reader;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use indicatif::ProgressBar;
use pushlab_protocol::Transport;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::Target;
use crate::process::{ProcSample, ServerProcess};
use crate::run::Plan;
use crate::workload::{Workload, WorkloadArgs};

pub use prefill::Prefill;
pub use raw::StatusCounts;
pub use report::{AbuseReport, AttackerOutcomes, PhaseReport, TransportRun};

/// Where progress lines go (the CLI prints them to stderr).
pub type Progress<'a> = &'a (dyn Fn(&str) + Sync);

/// The normal clients: what they do, identically, in both phases.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NormalLoad {
    /// Subscribers per transport.
    pub clients: usize,
    /// Messages per second on the stream.
    pub rate_per_second: f64,
    /// Bytes of `data` per message.
    pub payload_bytes: usize,
    /// Unmeasured warm-up per transport, s.
    pub warmup_seconds: f64,
    /// Measured window per transport, s.
    pub duration_seconds: f64,
    /// Transports, measured one after the other against the phase's server.
    pub transports: Vec<Transport>,
    /// The spawned servers' heartbeat (SSE keep-alive, WebSocket ping), s.
    pub heartbeat_seconds: f64,
}

impl NormalLoad {
    /// The lab's workload for these clients, validated as the lab validates it.
    pub fn workload(&self, quick: bool) -> anyhow::Result<Workload> {
        let s = Duration::from_secs_f64;
        let mut workload = WorkloadArgs {
            clients: self.clients,
            rate: self.rate_per_second,
            payload: self.payload_bytes,
            duration: s(self.duration_seconds),
            warmup: s(self.warmup_seconds),
            // The run's idle window has nothing to measure here; a short one keeps its
            // per-second figures finite.
            idle: s(if quick { 0.5 } else { 1.0 }),
            poll_interval: vec![Duration::from_millis(500)],
            long_poll_timeout: s(if quick { 1.0 } else { 10.0 }),
            heartbeat: s(self.heartbeat_seconds),
            connect_rate: 1000.0,
            rtt: vec![Duration::ZERO],
            jitter: Duration::ZERO,
            bandwidth: None,
            queue: None,
            loss: None,
            reorder: false,
            // The attack is on loopback: the hostile clients do not cross a link either.
            link: crate::network::LinkChoice::Relay,
            no_keepalive: false,
            drop_every: None,
            transports: self.transports.clone(),
            // The lab's --quick would replace the phase lengths given here.
            quick: false,
            // The hardening this run checks was measured in cleartext HTTP/1.1.
            tls: false,
            http: vec![crate::client::tls::HttpVersion::Http1],
            ca: None,
        }
        .validate()?;
        workload.quick = quick;
        Ok(workload)
    }
}

/// The attackers of the attacked phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttackPlan {
    /// Stuck SSE readers.
    pub stuck_sse: usize,
    /// Stuck WebSocket readers.
    pub stuck_ws: usize,
    /// Ping flooders.
    pub ping_flooders: usize,
    /// How long the ping flood lasts, s; absent: the whole phase.
    pub ping_flood_seconds: Option<f64>,
    /// Poll hogs.
    pub poll_hogs: usize,
    /// How slowly a hog reads.
    pub poll_hog_pace: poll_hog::Pace,
    /// Idle sockets.
    pub idle_sockets: usize,
    /// Idle sockets connected per second while ramping up.
    pub idle_connect_rate: f64,
    /// Time the attackers run before the normal clients connect, s (after the idle
    /// sockets' ramp).
    pub head_start_seconds: f64,
}

/// Everything `pushlab abuse` needs.
#[derive(Debug, Clone)]
pub struct AbuseOptions {
    /// The `pushlab` binary to start as the server (`serve`).
    pub server_exe: PathBuf,
    /// `--history` for the servers; absent: enough for the pre-fill and both
    /// transports' messages twice over.
    pub history: Option<usize>,
    /// More flags for `pushlab serve`, passed as given (e.g. `--write-timeout 5s`).
    pub server_args: Vec<String>,
    /// The normal clients.
    pub normal: NormalLoad,
    /// The history pre-filled before each phase.
    pub prefill: Prefill,
    /// The attackers.
    pub attack: AttackPlan,
    /// The server's peak RSS must stay under this (stated before the run), bytes.
    pub rss_bound_bytes: u64,
    /// Past this RSS the attackers are stopped, to protect the machine, bytes.
    pub rss_safety_bytes: u64,
    /// Where `abuse.json` and `summary.md` go.
    pub out: PathBuf,
    /// The command line, recorded with the results.
    pub command: String,
    /// Whether these are the `--quick` settings.
    pub quick: bool,
}

impl AbuseOptions {
    /// The standard run: 1,000 subscribers per transport at 10 msg/s for 120 s, against
    /// 10 stuck readers, a ping flooder, 2 poll hogs and 5,000 idle sockets.
    pub fn standard(server_exe: PathBuf, out: PathBuf, command: String) -> AbuseOptions {
        AbuseOptions {
            server_exe,
            history: None,
            server_args: Vec::new(),
            normal: NormalLoad {
                clients: 1000,
                rate_per_second: 10.0,
                payload_bytes: 128,
                warmup_seconds: 5.0,
                duration_seconds: 120.0,
                transports: vec![Transport::Sse, Transport::Ws],
                heartbeat_seconds: 5.0,
            },
            prefill: Prefill { messages: 1000, data_bytes: 60 * 1024 },
            attack: AttackPlan {
                stuck_sse: 5,
                stuck_ws: 5,
                ping_flooders: 1,
                ping_flood_seconds: None,
                poll_hogs: 2,
                poll_hog_pace: poll_hog::Pace::default(),
                idle_sockets: 5000,
                idle_connect_rate: 2000.0,
                head_start_seconds: 3.0,
            },
            rss_bound_bytes: 512 << 20,
            rss_safety_bytes: 1024 << 20,
            out,
            command,
            quick: false,
        }
    }

    /// `--quick`: the same run in miniature (50 subscribers, 200 idle sockets, 100
    /// pre-filled messages, phases of a few seconds), for tests and trying it out. The
    /// ping flood lasts 2 s: against a server that queues pongs without bound, longer
    /// would only measure how fast memory fills.
    pub fn quick(server_exe: PathBuf, out: PathBuf, command: String) -> AbuseOptions {
        let mut o = Self::standard(server_exe, out, command);
        o.normal.clients = 50;
        o.normal.warmup_seconds = 0.5;
        o.normal.duration_seconds = 2.0;
        o.normal.heartbeat_seconds = 1.0;
        o.prefill.messages = 100;
        o.attack.idle_sockets = 200;
        o.attack.ping_flood_seconds = Some(2.0);
        o.attack.head_start_seconds = 0.5;
        o.quick = true;
        o
    }

    /// The flags every spawned server gets.
    pub fn serve_args(&self, workload: &Workload) -> Vec<String> {
        let per_transport = workload.messages() as usize;
        let history = self.history.unwrap_or_else(|| {
            (self.prefill.messages as usize + 2 * per_transport * workload.transports.len()).max(10_000)
        });
        let heartbeat = format!("{}ms", workload.heartbeat_seconds.as_millis());
        let mut args =
            vec!["--history".to_string(), history.to_string(), "--heartbeat".to_string(), heartbeat];
        args.extend(self.server_args.iter().cloned());
        args
    }

    /// Descriptors this process needs at once: every client and attacker socket, plus
    /// room for the publisher, the pre-fill and `/proc`.
    fn descriptors_needed(&self) -> u64 {
        let a = &self.attack;
        (self.normal.clients
            + a.idle_sockets
            + a.stuck_sse
            + a.stuck_ws
            + a.ping_flooders
            + a.poll_hogs
            + 256) as u64
    }
}

/// Runs both phases, writes `abuse.json` and `summary.md` into `options.out`, and returns
/// the report. An error is a run that could not be made (the clean phase failed, a file
/// could not be written); what the attackers did to the normal clients is in the report.
pub async fn run(options: &AbuseOptions, progress: Progress<'_>) -> anyhow::Result<AbuseReport> {
    let workload = options.normal.workload(options.quick)?;
    if options.rss_safety_bytes <= options.rss_bound_bytes {
        bail!("the RSS safety limit must be above the bound (--rss-safety > --rss-bound)");
    }
    let fd_limit = crate::process::raise_fd_limit();
    let needed = options.descriptors_needed();
    if fd_limit < needed {
        bail!(
            "this run needs about {needed} open files at once and the limit is {fd_limit}: \
             lower --idle-sockets or --clients, or raise the limit (ulimit -n)"
        );
    }
    let setup = report::setup(options, fd_limit);
    progress(&format!(
        "pushlab abuse: the bound, stated before the run: the server's peak RSS stays under {} \
         (attackers are stopped if it passes {})",
        report::mib(options.rss_bound_bytes),
        report::mib(options.rss_safety_bytes)
    ));
    progress(&format!(
        "normal load: {} clients per transport ({}), {} msg/s, {}-byte payloads, {:.1}s warm-up + {:.1}s measured each",
        options.normal.clients,
        options.normal.transports.iter().map(|t| t.name()).collect::<Vec<_>>().join(", "),
        options.normal.rate_per_second,
        options.normal.payload_bytes,
        options.normal.warmup_seconds,
        options.normal.duration_seconds,
    ));
    let clean = phase(options, &workload, false, progress).await.context("the clean phase")?;
    let attacked = phase(options, &workload, true, progress).await.context("the attacked phase")?;
    let report = AbuseReport::new(setup, clean, attacked);
    report::write(&report, &options.out)?;
    Ok(report)
}

/// One phase against a fresh server, which is stopped at the end whatever happened.
async fn phase(
    options: &AbuseOptions,
    workload: &Workload,
    attacked: bool,
    progress: Progress<'_>,
) -> anyhow::Result<PhaseReport> {
    let name = if attacked { "attacked" } else { "clean" };
    let server_args = options.serve_args(workload);
    let server = ServerProcess::spawn(&options.server_exe, &server_args).await?;
    progress(&format!(
        "{name} phase: `pushlab serve {}` on {}, pid {}",
        server_args.join(" "),
        server.addr,
        server.pid
    ));
    let started = Instant::now();
    let result = measure_phase(options, workload, attacked, server.addr, server.pid, progress).await;
    let alive = ProcSample::read(server.pid).is_ok_and(|s| s.rss_bytes > 0);
    let stopped_cleanly = server.stop().await.unwrap_or(false);
    let mut report = result?;
    report.server_alive_at_end = alive;
    report.server_stopped_cleanly = stopped_cleanly;
    report.seconds = started.elapsed().as_secs_f64();
    report.server_args = server_args;
    Ok(report)
}

/// The phase's work between starting its server and stopping it. The server's own
/// fields of the report (its flags, how it ended, the phase's length) are `phase`'s.
async fn measure_phase(
    options: &AbuseOptions,
    workload: &Workload,
    attacked: bool,
    addr: SocketAddr,
    pid: u32,
    progress: Progress<'_>,
) -> anyhow::Result<PhaseReport> {
    let name = if attacked { "attacked" } else { "clean" };
    // The attackers are for a server of our own, on this machine, and nothing else.
    anyhow::ensure!(addr.ip().is_loopback(), "the abuse run only attacks a server on 127.0.0.1, not {addr}");
    let epoch = Instant::now();
    progress(&format!(
        "{name} phase: pre-filling {} messages of {} bytes",
        options.prefill.messages, options.prefill.data_bytes
    ));
    let prefill = prefill::run(&format!("http://{addr}"), options.prefill).await?;

    // Cancelled on every way out of this function, so no task outlives the phase.
    let stop_memory = CancellationToken::new();
    let _stop_memory_on_exit = stop_memory.clone().drop_guard();
    let stop_attack = CancellationToken::new();
    let _stop_attack_on_exit = stop_attack.clone().drop_guard();
    let memory = tokio::spawn(memory::track(
        pid,
        epoch,
        options.rss_safety_bytes,
        attacked.then(|| stop_attack.clone()),
        stop_memory.clone(),
    ));
    let attack = match attacked {
        true => Some(Attack::start(addr, &options.attack, stop_attack.clone(), progress).await?),
        false => None,
    };

    let mut transports = Vec::new();
    for &transport in &workload.transports {
        progress(&format!(
            "{name} phase: measuring {transport}: {} clients, {:.1}s",
            workload.clients,
            workload.duration_seconds.as_secs_f64()
        ));
        let plan = Plan {
            transport,
            workload: workload.clone(),
            target: Target::new(addr),
            server_pid: Some(pid),
            stall: None,
        };
        // A stuck server must not hang the run: the plan's own phases plus a margin.
        let limit = Duration::from_secs_f64(workload.clients as f64 / workload.connect_rate_per_second)
            + workload.warmup_seconds
            + workload.duration_seconds
            + workload.idle_seconds
            + workload.poll_interval_seconds
            + Duration::from_secs(60);
        let measured = match tokio::time::timeout(limit, plan.measure(&ProgressBar::hidden())).await {
            Ok(measured) => measured,
            Err(_) => Err(anyhow::anyhow!("did not finish within {:.0} s", limit.as_secs_f64())),
        };
        match measured {
            Ok(result) => {
                progress(&format!(
                    "{name} phase: {transport}: p50 {} · p99 {} · p99.9 {} · lost {}",
                    crate::report::ms(result.latency.p50_ms),
                    crate::report::ms(result.latency.p99_ms),
                    crate::report::ms(result.latency.p999_ms),
                    result.delivery.lost
                ));
                transports.push(TransportRun { transport, result: Some(result), error: None });
            }
            // Without attackers a failure is the run's: report it as an error.
            Err(error) if !attacked => return Err(error.context(format!("measuring {transport}"))),
            // Under attack it may be the attack's doing: that is a finding, reported.
            Err(error) => {
                progress(&format!("{name} phase: {transport}: the measurement failed: {error:#}"));
                transports.push(TransportRun { transport, result: None, error: Some(format!("{error:#}")) });
            }
        }
    }

    stop_attack.cancel();
    let attackers = match attack {
        Some(attack) => Some(attack.join().await?),
        None => None,
    };
    stop_memory.cancel();
    let memory = memory.await.context("the memory sampler")?;
    Ok(PhaseReport {
        attacked,
        prefill,
        transports,
        memory,
        attackers,
        // Set by `phase`, which owns the server.
        server_args: Vec::new(),
        server_alive_at_end: false,
        server_stopped_cleanly: false,
        seconds: 0.0,
    })
}

/// The attackers of one phase, running.
///
/// They run on a runtime of their own (one worker thread), not the load generator's:
/// they compete with the normal clients for the machine's CPU, as another process
/// would, but never for the scheduler that runs the normal clients, so a busy attacker
/// does not show up as server latency.
struct Attack {
    _runtime: AttackRuntime,
    started: Instant,
    stuck: JoinHandle<Vec<stuck_reader::StuckReaderOutcome>>,
    ping: JoinHandle<ping_flood::PingFloodOutcome>,
    hogs: JoinHandle<poll_hog::PollHogOutcome>,
    idle: JoinHandle<idle_sockets::IdleSocketsOutcome>,
}

impl Attack {
    /// Starts every attacker, waits for the idle sockets' ramp and the head start.
    async fn start(
        addr: SocketAddr,
        plan: &AttackPlan,
        stop: CancellationToken,
        progress: Progress<'_>,
    ) -> anyhow::Result<Attack> {
        progress(&format!(
            "attacked phase: starting {} idle sockets, {} stuck readers, {} ping flooder(s){}, {} poll hog(s)",
            plan.idle_sockets,
            plan.stuck_sse + plan.stuck_ws,
            plan.ping_flooders,
            plan.ping_flood_seconds.map(|s| format!(" for {s:.1}s")).unwrap_or_default(),
            plan.poll_hogs
        ));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pushlab-attackers")
            .enable_all()
            .build()
            .context("starting the attackers' runtime")?;
        let started = Instant::now();
        let idle_live = Arc::new(idle_sockets::IdleLive::default());
        let idle = runtime.spawn(idle_sockets::run(
            addr,
            plan.idle_sockets,
            plan.idle_connect_rate,
            idle_live.clone(),
            stop.clone(),
        ));
        let stuck = runtime.spawn(stuck_reader::run(addr, plan.stuck_sse, plan.stuck_ws, stop.clone()));
        let hogs = runtime.spawn(poll_hog::run(addr, plan.poll_hogs, plan.poll_hog_pace, stop.clone()));
        let flood_for = plan.ping_flood_seconds.map(Duration::from_secs_f64);
        let ping = runtime.spawn(ping_flood::run(addr, plan.ping_flooders, flood_for, stop.clone()));

        // The ramp: until every idle socket is open, or long enough past its schedule
        // that the server is plainly not taking them (that is reported, not waited for).
        let ramp = Duration::from_secs_f64(plan.idle_sockets as f64 / plan.idle_connect_rate);
        let ramp_deadline = started + ramp + Duration::from_secs(5);
        while idle_live.open.load(Ordering::Relaxed) < plan.idle_sockets as u64
            && Instant::now() < ramp_deadline
            && !stop.is_cancelled()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        progress(&format!(
            "attacked phase: {} of {} idle sockets open after {:.1}s",
            idle_live.open.load(Ordering::Relaxed),
            plan.idle_sockets,
            started.elapsed().as_secs_f64()
        ));
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_secs_f64(plan.head_start_seconds)) => {}
        }
        Ok(Attack { _runtime: AttackRuntime(Some(runtime)), started, stuck, ping, hogs, idle })
    }

    /// Waits for every attacker to stop (the token is cancelled) and collects what each
    /// did.
    async fn join(self) -> anyhow::Result<AttackerOutcomes> {
        Ok(AttackerOutcomes {
            seconds: self.started.elapsed().as_secs_f64(),
            stuck_readers: self.stuck.await.context("the stuck readers")?,
            ping_flood: self.ping.await.context("the ping flooder")?,
            poll_hogs: self.hogs.await.context("the poll hogs")?,
            idle_sockets: self.idle.await.context("the idle sockets")?,
        })
    }
}

/// The attackers' runtime, shut down without blocking when dropped: a runtime may not
/// be dropped the blocking way inside another one, and by then its tasks have returned
/// (or, on an error path, are abandoned with their sockets).
struct AttackRuntime(Option<tokio::runtime::Runtime>);

impl Drop for AttackRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Smallest, median and largest of some values.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Spread {
    /// How many.
    pub count: usize,
    /// Smallest.
    pub min: f64,
    /// Median.
    pub median: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub fn of(mut values: Vec<f64>) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        Some(Spread {
            count: values.len(),
            min: values[0],
            median: values[values.len() / 2],
            max: values[values.len() - 1],
        })
    }
}

/// RFC 3339 UTC, to the second.
fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// A size such as `512MiB`, `1GiB`, `300MB`, `64KiB` or plain bytes (`1048576`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("{text:?}: expected a size such as 512MiB"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("{text:?}: unknown unit {other:?} (B, KB, MB, GB, KiB, MiB, GiB)")),
    };
    Ok((number * factor).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_read_in_both_kinds_of_unit() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("300MB"), Ok(300_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn a_spread_has_its_ends_and_middle() {
        let s = Spread::of(vec![3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.count, s.min, s.median, s.max), (3, 1.0, 2.0, 3.0));
        assert!(Spread::of(Vec::new()).is_none());
    }

    #[test]
    fn quick_keeps_the_shape_of_the_standard_run() {
        let quick = AbuseOptions::quick("pushlab".into(), "out".into(), String::new());
        let workload = quick.normal.workload(true).unwrap();
        assert_eq!(workload.clients, 50);
        assert_eq!(workload.transports, vec![Transport::Sse, Transport::Ws]);
        assert!(quick.serve_args(&workload).starts_with(&["--history".to_string(), "10000".to_string()]));
    }
}
