//! The abuse run's results (`abuse.json`, typed), its three verdicts, and the text of
//! the terminal report and `summary.md`. Nothing here measures anything.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use pushlab_protocol::Transport;
use serde::{Deserialize, Serialize};

use super::idle_sockets::IdleSocketsOutcome;
use super::memory::MemoryTrack;
use super::ping_flood::PingFloodOutcome;
use super::poll_hog::PollHogOutcome;
use super::prefill::{Prefill, PrefillOutcome};
use super::stuck_reader::StuckReaderOutcome;
use super::{AbuseOptions, AttackPlan, NormalLoad};
use crate::report::ms;
use crate::results::{Machine, TransportResult};

/// Version of `abuse.json`'s shape.
pub const SCHEMA_VERSION: u32 = 1;

/// How far the attacked p99 may rise above the clean one and still pass.
pub const P99_RATIO_LIMIT: f64 = 1.5;

/// The whole run: `abuse.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AbuseReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// How the run was made.
    pub setup: AbuseSetup,
    /// Without attackers.
    pub clean: PhaseReport,
    /// With them.
    pub attacked: PhaseReport,
    /// Clean against attacked, per transport.
    pub comparison: Vec<Comparison>,
    /// The three verdicts.
    pub verdicts: Verdicts,
}

/// Enough to repeat the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AbuseSetup {
    /// The command line.
    pub command: String,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
    /// `pushlab` version.
    pub pushlab_version: String,
    /// `debug` or `release`: the build of both the load generator and the servers (the
    /// same binary). Only a release build's latencies mean much.
    pub build: String,
    /// `git rev-parse HEAD`, `+uncommitted` when the code differs from it.
    pub git_commit: Option<String>,
    /// The machine.
    pub machine: Machine,
    /// The normal clients.
    pub normal: NormalLoad,
    /// The pre-filled history.
    pub prefill: Prefill,
    /// The attackers.
    pub attack: AttackPlan,
    /// The bound on the server's peak RSS, fixed before the run, bytes.
    pub rss_bound_bytes: u64,
    /// The RSS at which the attackers are stopped, bytes.
    pub rss_safety_bytes: u64,
    /// Whether `--quick` made this a miniature run.
    pub quick: bool,
}

/// One phase: one server, the normal clients transport by transport, and (attacked
/// phase) the attackers throughout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseReport {
    /// Whether the attackers ran.
    pub attacked: bool,
    /// The flags the server was started with (after `serve --addr 127.0.0.1:0`).
    pub server_args: Vec<String>,
    /// The pre-fill.
    pub prefill: PrefillOutcome,
    /// Each transport's measurement, in run order.
    pub transports: Vec<TransportRun>,
    /// The server's memory.
    pub memory: MemoryTrack,
    /// What the attackers did (attacked phase only).
    pub attackers: Option<AttackerOutcomes>,
    /// Whether the server was still running when the phase ended.
    pub server_alive_at_end: bool,
    /// Whether it then stopped on SIGTERM with status 0 within 3 s.
    pub server_stopped_cleanly: bool,
    /// Length of the phase, s.
    pub seconds: f64,
}

/// One transport's measurement in one phase: the lab's figures, or why there are none.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransportRun {
    /// The transport.
    pub transport: Transport,
    /// The figures, measured as `pushlab lab` measures them.
    pub result: Option<TransportResult>,
    /// Why the measurement failed (only under attack; a clean failure is an error).
    pub error: Option<String>,
}

/// What each kind of attacker did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttackerOutcomes {
    /// From the first attacker's start to the last one's stop, s.
    pub seconds: f64,
    /// Each stuck reader.
    pub stuck_readers: Vec<StuckReaderOutcome>,
    /// The ping flooders.
    pub ping_flood: PingFloodOutcome,
    /// The poll hogs.
    pub poll_hogs: PollHogOutcome,
    /// The idle sockets.
    pub idle_sockets: IdleSocketsOutcome,
}

impl AttackerOutcomes {
    /// `503` answers any attacker saw (the server refusing for load).
    pub fn refusals_503(&self) -> u64 {
        let of = |c: &super::StatusCounts| c.get(&503).copied().unwrap_or(0);
        of(&self.ping_flood.upgrades_refused) + of(&self.poll_hogs.statuses) + of(&self.idle_sockets.answered)
    }
}

/// The figures compared, for one transport in one phase.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Figures {
    /// Latency samples.
    pub samples: u64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Worst, ms.
    pub max_ms: f64,
    /// Messages expected (published × clients).
    pub expected: u64,
    /// Delivered.
    pub delivered: u64,
    /// Lost.
    pub lost: u64,
    /// Duplicated.
    pub duplicated: u64,
    /// Reordered.
    pub reordered: u64,
}

impl Figures {
    fn of(result: &TransportResult) -> Figures {
        let (l, d) = (&result.latency, &result.delivery);
        Figures {
            samples: l.samples,
            p50_ms: l.p50_ms,
            p99_ms: l.p99_ms,
            p999_ms: l.p999_ms,
            max_ms: l.max_ms,
            expected: d.expected,
            delivered: d.delivered,
            lost: d.lost,
            duplicated: d.duplicated,
            reordered: d.reordered,
        }
    }
}

/// Clean against attacked, for one transport.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// The transport.
    pub transport: Transport,
    /// Without attackers.
    pub clean: Option<Figures>,
    /// With them.
    pub attacked: Option<Figures>,
    /// Why there are no attacked figures, when there are none.
    pub attacked_error: Option<String>,
    /// Attacked p99 / clean p99.
    pub p99_ratio: Option<f64>,
}

/// One verdict: whether it passed, and the line that says so with its figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    /// Passed.
    pub pass: bool,
    /// e.g. `p99 within 1.5× of clean: yes (1.08×)`.
    pub line: String,
}

/// The three verdicts of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdicts {
    /// Under attack, every normal client got every message exactly once, in order.
    pub lost_nothing: Verdict,
    /// Under attack, every transport's p99 stayed within [`P99_RATIO_LIMIT`] of clean.
    pub p99_within_limit: Verdict,
    /// The server's peak RSS stayed under the bound in both phases.
    pub rss_under_bound: Verdict,
}

impl Verdicts {
    /// Whether all three passed.
    pub fn all_pass(&self) -> bool {
        self.lost_nothing.pass && self.p99_within_limit.pass && self.rss_under_bound.pass
    }

    fn lines(&self) -> [&str; 3] {
        [&self.lost_nothing.line, &self.p99_within_limit.line, &self.rss_under_bound.line]
    }
}

impl AbuseReport {
    /// Compares the phases and gives the verdicts.
    pub fn new(setup: AbuseSetup, clean: PhaseReport, attacked: PhaseReport) -> AbuseReport {
        let comparison: Vec<Comparison> = clean
            .transports
            .iter()
            .map(|c| {
                let a = attacked.transports.iter().find(|a| a.transport == c.transport);
                let clean = c.result.as_ref().map(Figures::of);
                let under_attack = a.and_then(|a| a.result.as_ref()).map(Figures::of);
                let p99_ratio = match (clean, under_attack) {
                    (Some(c), Some(a)) if c.p99_ms > 0.0 => Some(a.p99_ms / c.p99_ms),
                    _ => None,
                };
                Comparison {
                    transport: c.transport,
                    clean,
                    attacked: under_attack,
                    attacked_error: a.and_then(|a| a.error.clone()),
                    p99_ratio,
                }
            })
            .collect();
        let verdicts = verdicts(&setup, &clean, &attacked, &comparison);
        AbuseReport { schema_version: SCHEMA_VERSION, setup, clean, attacked, comparison, verdicts }
    }
}

fn verdicts(
    setup: &AbuseSetup,
    clean: &PhaseReport,
    attacked: &PhaseReport,
    comparison: &[Comparison],
) -> Verdicts {
    let yes_no = |pass: bool| if pass { "yes" } else { "no" };

    // Lost nothing: every message to every client exactly once, in order, under attack.
    let failed: Vec<String> = comparison
        .iter()
        .filter(|c| c.attacked.is_none())
        .map(|c| {
            let why = c.attacked_error.as_deref().unwrap_or("not measured");
            format!("{}: the measurement failed under attack: {why}", c.transport)
        })
        .collect();
    let measured: Vec<Figures> = comparison.iter().filter_map(|c| c.attacked).collect();
    let sum = |f: fn(&Figures) -> u64| measured.iter().map(f).sum::<u64>();
    let (lost, duplicated, reordered) = (sum(|f| f.lost), sum(|f| f.duplicated), sum(|f| f.reordered));
    let pass = failed.is_empty() && lost + duplicated + reordered == 0;
    let mut line = format!(
        "normal clients lost nothing: {} ({lost} lost, {duplicated} duplicated, {reordered} reordered of {} expected",
        yes_no(pass),
        sum(|f| f.expected)
    );
    for failure in failed {
        line += &format!("; {failure}");
    }
    line += ")";
    let lost_nothing = Verdict { pass, line };

    // p99: the worst ratio over the transports.
    let ratios: Vec<(Transport, Option<f64>)> =
        comparison.iter().map(|c| (c.transport, c.p99_ratio)).collect();
    let worst =
        ratios.iter().filter_map(|(_, r)| *r).fold(None, |w: Option<f64>, r| Some(w.map_or(r, |w| w.max(r))));
    let all_measured = ratios.iter().all(|(_, r)| r.is_some());
    let pass = all_measured && worst.is_some_and(|w| w <= P99_RATIO_LIMIT);
    let each: Vec<String> = ratios
        .iter()
        .map(|(t, r)| match r {
            Some(r) => format!("{t} {r:.2}×"),
            None => format!("{t} not measured"),
        })
        .collect();
    let p99_within_limit = Verdict {
        pass,
        line: format!(
            "p99 within {P99_RATIO_LIMIT}× of clean: {} ({}; {})",
            yes_no(pass),
            worst.map_or("no ratio".to_string(), |w| format!("worst {w:.2}×")),
            each.join(", ")
        ),
    };

    // RSS: both phases' true peaks (VmHWM) under the bound stated in advance.
    let bound = setup.rss_bound_bytes;
    let (clean_peak, attacked_peak) = (clean.memory.peak_bytes, attacked.memory.peak_bytes);
    let pass = clean_peak > 0 && attacked_peak > 0 && clean_peak <= bound && attacked_peak <= bound;
    let mut line = format!(
        "RSS under bound: {} (peak {} clean, {} attacked; bound {})",
        yes_no(pass),
        mib(clean_peak),
        mib(attacked_peak),
        mib(bound)
    );
    if let Some(t) = attacked.memory.safety_stop_at_seconds {
        line += &format!(
            "; the attackers were stopped {t:.1}s into the phase when RSS passed the safety limit {}",
            mib(setup.rss_safety_bytes)
        );
    }
    let rss_under_bound = Verdict { pass, line };
    Verdicts { lost_nothing, p99_within_limit, rss_under_bound }
}

/// The setup of a run about to be made.
pub(super) fn setup(options: &AbuseOptions, fd_limit: u64) -> AbuseSetup {
    AbuseSetup {
        command: options.command.clone(),
        started_at: super::now_rfc3339(),
        pushlab_version: env!("CARGO_PKG_VERSION").to_string(),
        build: if cfg!(debug_assertions) { "debug" } else { "release" }.to_string(),
        git_commit: crate::lab::build_commit(),
        machine: Machine::here(fd_limit),
        normal: options.normal.clone(),
        prefill: options.prefill,
        attack: options.attack.clone(),
        rss_bound_bytes: options.rss_bound_bytes,
        rss_safety_bytes: options.rss_safety_bytes,
        quick: options.quick,
    }
}

/// Bytes in binary units, as the bound is given: `131 B`, `4 KiB`, `2.1 MiB`, `1.5 GiB`.
pub fn size(bytes: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let (mut v, mut unit) = (bytes, 0);
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{v:.0} B"),
        _ if v.fract() == 0.0 || v >= 100.0 => format!("{v:.0} {}", UNITS[unit]),
        _ => format!("{v:.1} {}", UNITS[unit]),
    }
}

/// Bytes in MiB, the unit of the bound: `512 MiB`, `95.3 MiB`.
pub fn mib(bytes: u64) -> String {
    let m = bytes as f64 / (1024.0 * 1024.0);
    if m >= 100.0 || m.fract() == 0.0 {
        format!("{m:.0} MiB")
    } else {
        format!("{m:.1} MiB")
    }
}

/// The report as printed: figures, attackers, verdicts.
pub fn terminal(report: &AbuseReport) -> String {
    let s = &report.setup;
    let mut out = String::new();
    let transports: Vec<&str> = s.normal.transports.iter().map(|t| t.name()).collect();
    let _ = writeln!(
        out,
        "pushlab abuse{} ({} build): {} clients per transport ({}), {} msg/s, {}-byte payloads, {:.1}s measured after {:.1}s warm-up",
        if s.quick { " --quick" } else { "" },
        s.build,
        s.normal.clients,
        transports.join(", "),
        s.normal.rate_per_second,
        s.normal.payload_bytes,
        s.normal.duration_seconds,
        s.normal.warmup_seconds
    );
    let _ = writeln!(
        out,
        "history pre-filled with {} messages of {}; RSS bound {} (stated before the run)\n",
        s.prefill.messages,
        size(s.prefill.data_bytes as f64),
        mib(s.rss_bound_bytes)
    );
    let _ = writeln!(out, "{:<36} {:<32} {:<32} p99 ratio", "normal clients", "clean", "attacked");
    let latency = |f: &Option<Figures>| {
        f.map_or("—".to_string(), |f| format!("{} / {} / {}", ms(f.p50_ms), ms(f.p99_ms), ms(f.p999_ms)))
    };
    let delivery = |f: &Option<Figures>| {
        f.map_or("—".to_string(), |f| {
            format!("{} / {} / {} / {}", f.delivered, f.lost, f.duplicated, f.reordered)
        })
    };
    for c in &report.comparison {
        let ratio = c.p99_ratio.map_or("—".to_string(), |r| format!("{r:.2}×"));
        let name = c.transport.name();
        let _ = writeln!(
            out,
            "{:<36} {:<32} {:<32} {ratio}",
            format!("{name} p50 / p99 / p99.9"),
            latency(&c.clean),
            latency(&c.attacked)
        );
        let _ = writeln!(
            out,
            "{:<36} {:<32} {}",
            format!("{name} delivered / lost / dup / reord"),
            delivery(&c.clean),
            delivery(&c.attacked)
        );
        if let Some(error) = &c.attacked_error {
            let _ = writeln!(out, "  {name} under attack: {error}");
        }
    }
    let memory = |p: &PhaseReport| {
        let mut m = format!("{} (sampled {})", mib(p.memory.peak_bytes), mib(p.memory.peak_sampled_bytes));
        if !p.server_alive_at_end {
            m += ", server gone";
        }
        m
    };
    let _ = writeln!(
        out,
        "{:<36} {:<32} {:<32} bound {}",
        "server peak RSS",
        memory(&report.clean),
        memory(&report.attacked),
        mib(s.rss_bound_bytes)
    );
    let ending = |p: &PhaseReport| match (p.server_alive_at_end, p.server_stopped_cleanly) {
        (true, true) => "running, then stopped cleanly".to_string(),
        (true, false) => "running, but did not stop cleanly".to_string(),
        (false, _) => match p.memory.server_gone_at_seconds {
            Some(t) => format!("GONE {t:.1}s into the phase"),
            None => "GONE at the end".to_string(),
        },
    };
    let _ = writeln!(
        out,
        "{:<36} {:<32} {}",
        "server at the end",
        ending(&report.clean),
        ending(&report.attacked)
    );
    if let Some(a) = &report.attacked.attackers {
        let how_long = match report.attacked.memory.safety_stop_at_seconds {
            None => format!("the whole attacked phase, {:.1}s", a.seconds),
            Some(_) => "stopped early, see the last line".to_string(),
        };
        let _ = writeln!(out, "\nattackers ({how_long})");
        for line in attacker_lines(a, &s.attack) {
            let _ = writeln!(out, "  {line}");
        }
        if let Some(t) = report.attacked.memory.safety_stop_at_seconds {
            let _ = writeln!(
                out,
                "  stopped early: {t:.1}s into the phase the server's RSS passed the safety limit {}",
                mib(s.rss_safety_bytes)
            );
        }
    }
    let _ = writeln!(out);
    for line in report.verdicts.lines() {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// One line (or a few) per kind of attacker.
fn attacker_lines(a: &AttackerOutcomes, plan: &AttackPlan) -> Vec<String> {
    let mut lines = Vec::new();
    let statuses = |c: &super::StatusCounts| {
        if c.is_empty() {
            "none".to_string()
        } else {
            c.iter().map(|(s, n)| format!("{s} ×{n}")).collect::<Vec<_>>().join(", ")
        }
    };
    for transport in [Transport::Sse, Transport::Ws] {
        let readers: Vec<&StuckReaderOutcome> =
            a.stuck_readers.iter().filter(|r| r.transport == transport).collect();
        if readers.is_empty() {
            continue;
        }
        let connected = readers.iter().filter(|r| r.connected).count();
        let closed: Vec<f64> = readers.iter().filter_map(|r| r.closed_by_server_after_seconds).collect();
        let unsent = readers.iter().map(|r| r.server_unsent_bytes_max).max().unwrap_or(0);
        let closed_text = match super::Spread::of(closed) {
            None => "none closed by the server (still held at the end)".to_string(),
            Some(s) => format!(
                "{} of {} closed by the server after {:.1}–{:.1}s",
                s.count,
                readers.len(),
                s.min,
                s.max
            ),
        };
        lines.push(format!(
            "stuck {transport} readers: {connected} of {} connected; {closed_text}; \
             up to {} queued unsent in the server's socket",
            readers.len(),
            size(unsent as f64)
        ));
    }
    let p = &a.ping_flood;
    let closes = match super::Spread::of(p.closed_after_seconds.clone()) {
        None => "never closed by the server".to_string(),
        Some(s) => format!("closed by the server {} times (after {:.1}–{:.1}s)", s.count, s.min, s.max),
    };
    lines.push(format!(
        "ping flood: {} flooder(s) for {:.1}s: {} pings ({}) sent over {} upgrade(s) accepted; {closes}; \
         longest write {:.2}s; upgrades refused: {}",
        p.flooders,
        p.flood_seconds,
        p.pings_sent,
        size(p.bytes_sent as f64),
        p.upgrades_accepted,
        p.longest_write_seconds,
        statuses(&p.upgrades_refused)
    ));
    let h = &a.poll_hogs;
    lines.push(format!(
        "poll hogs: {} reading {} every {:.0} ms: {} requests, {} responses ({}), {} completed{}; \
         {} read; largest body {}; {} cut off by the server",
        h.hogs,
        size(plan.poll_hog_pace.bytes as f64),
        plan.poll_hog_pace.every_seconds * 1e3,
        h.requests,
        h.responses,
        statuses(&h.statuses),
        h.completed,
        h.completed_body_bytes_mean.map(|m| format!(" ({} each on average)", size(m))).unwrap_or_default(),
        size(h.bytes_read as f64),
        size(h.largest_body_bytes as f64),
        h.cut_off
    ));
    let i = &a.idle_sockets;
    let lifetimes = match &i.closed_after_seconds {
        None => String::new(),
        Some(s) => format!(" after {:.1}–{:.1}s (median {:.1}s)", s.min, s.max, s.median),
    };
    lines.push(format!(
        "idle sockets: {}: {} connects, {} closed by the server{lifetimes}, {} reconnected, \
         {} connect errors; {} open at most, {} at the end; answers before closing: {}",
        i.sockets,
        i.connects,
        i.closed_by_server,
        i.reconnects,
        i.connect_errors,
        i.max_open,
        i.open_at_end,
        statuses(&i.answered)
    ));
    lines.push(format!("503s seen by the attackers: {}", a.refusals_503()));
    lines
}

/// `summary.md`: the command and setup next to the figures.
pub fn markdown(report: &AbuseReport) -> String {
    let s = &report.setup;
    let m = &s.machine;
    let mut out = String::from("# pushlab abuse\n\n");
    let _ = writeln!(out, "Command: `{}`\n", s.command);
    let _ = writeln!(
        out,
        "- Started {}; pushlab {} ({} build) at commit {}.",
        s.started_at,
        s.pushlab_version,
        s.build,
        s.git_commit.as_deref().unwrap_or("unknown")
    );
    let _ = writeln!(
        out,
        "- Machine: {} CPUs (nproc), {} memory, {}, kernel {}, open-files limit {}.",
        m.cores,
        mib(m.memory_bytes),
        m.cpu_model,
        m.kernel,
        m.fd_limit
    );
    let _ = writeln!(
        out,
        "- The bound, fixed before the run: the server's peak RSS (VmHWM) stays under {}; \
         the attackers are stopped if it passes {}.",
        mib(s.rss_bound_bytes),
        mib(s.rss_safety_bytes)
    );
    let _ = writeln!(
        out,
        "- Each phase: a fresh `pushlab serve {}`, its history pre-filled with {} messages of {} bytes, \
         then the normal clients transport by transport, measured as `pushlab lab` measures them.",
        report.attacked.server_args.join(" "),
        s.prefill.messages,
        s.prefill.data_bytes
    );
    let a = &s.attack;
    let _ = writeln!(
        out,
        "- Attackers, for the whole attacked phase: {} stuck SSE and {} stuck WebSocket readers (2 KiB receive \
         buffer, never read), {} ping flooder(s) ({}), {} poll hog(s) (`limit=10000`, {} bytes per {:.0} ms), \
         {} idle sockets (connected at {}/s, {:.1}s head start).",
        a.stuck_sse,
        a.stuck_ws,
        a.ping_flooders,
        a.ping_flood_seconds.map_or("the whole phase".to_string(), |s| format!("for {s:.1}s")),
        a.poll_hogs,
        a.poll_hog_pace.bytes,
        a.poll_hog_pace.every_seconds * 1e3,
        a.idle_sockets,
        a.idle_connect_rate,
        a.head_start_seconds
    );
    if s.quick {
        out += "- `--quick`: a miniature run for trying it out; its figures are not for citing.\n";
    }
    out += "\n```\n";
    out += &terminal(report);
    out += "```\n\n";
    out += "How to read it: latency is from each message's intended publish time (HdrHistogram, \
            as in `pushlab lab`); delivery counts every client's messages by their probe. A stuck \
            reader counts as closed by the server when the server's end of its connection left \
            ESTABLISHED or no process held it any more (`/proc/net/tcp`, checked every 0.5 s): the \
            reader itself never reads, so it cannot see the close. Every figure is in `abuse.json`, \
            with the full results of each measurement and the memory samples.\n";
    out
}

/// Writes `abuse.json` and `summary.md` into `dir`.
pub fn write(report: &AbuseReport, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(dir.join("abuse.json"), json + "\n").context("writing abuse.json")?;
    std::fs::write(dir.join("summary.md"), markdown(report)).context("writing summary.md")?;
    Ok(())
}
