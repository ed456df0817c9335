//! The command line: `pushlab serve`, `pushlab lab`, `pushlab load`, `pushlab abuse` ….

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use pushlab_loadgen::{LabOptions, WorkloadArgs};

/// A benchmark and teaching lab for real-time web transports: short polling, long
/// polling, Server-Sent Events and WebSocket, measured the same way.
#[derive(Debug, Parser)]
#[command(name = "pushlab", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve one message stream over all four transports.
    Serve(ServeArgs),
    /// Measure all four transports, each against a fresh server, and print the
    /// comparison table with real numbers.
    Lab(LabArgs),
    /// Measure a server that is already running (yours, on any host).
    Load(LoadArgs),
    /// Print the comparison table of a saved run, and rewrite its reports.
    Report(ReportArgs),
    /// Show every byte one client of a transport exchanges with a fresh server, annotated.
    Trace(TraceArgs),
    /// Check every claim of the seed documents (../shared/CLAIMS.md): make the runs they
    /// need and write docs/claims.md with a verdict and the figures for each.
    Claims(ClaimsArgs),
    /// Regression gate for CI: run a quick lab a few times, compare with a baseline,
    /// exit 1 on a regression (0 when all checks pass, 2 on errors).
    Bench(BenchArgs),
    /// Measure the normal workload against a fresh server, then again while hostile
    /// clients attack a second one (stuck readers, a ping flood, poll hogs, idle
    /// sockets); report what the attack did. Exit 1 when a verdict fails, 2 on errors.
    Abuse(AbuseArgs),
}

#[derive(Debug, Args)]
struct AbuseArgs {
    /// Normal subscribers per transport [default: 1000; 50 with --quick].
    #[arg(long)]
    clients: Option<usize>,
    /// Messages per second on the stream.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Size of each normal message's `data`, in bytes of JSON.
    #[arg(long, default_value_t = 128)]
    payload: usize,
    /// Measured window per transport and phase [default: 120s; 2s with --quick].
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Warm-up before each measured window [default: 5s; 500ms with --quick].
    #[arg(long, value_parser = humantime::parse_duration)]
    warmup: Option<Duration>,
    /// The normal clients' transports, comma separated: any of short_poll,long_poll,sse,ws.
    #[arg(long, value_delimiter = ',', default_value = "sse,ws")]
    transports: Vec<pushlab_server::Transport>,
    /// The bound on the server's peak RSS, stated before the run (e.g. 512MiB, 1GiB).
    #[arg(long, default_value = "512MiB", value_parser = pushlab_loadgen::abuse::parse_size)]
    rss_bound: u64,
    /// Stop the attackers when the server's RSS passes this, to protect the machine
    /// [default: twice --rss-bound].
    #[arg(long, value_parser = pushlab_loadgen::abuse::parse_size)]
    rss_safety: Option<u64>,
    /// Messages pre-filled into each server's history [default: 1000; 100 with --quick].
    #[arg(long)]
    prefill: Option<u64>,
    /// Bytes of each pre-filled message's `data`.
    #[arg(long, default_value_t = 60 * 1024)]
    prefill_bytes: usize,
    /// Idle sockets [default: 5000; 200 with --quick].
    #[arg(long)]
    idle_sockets: Option<usize>,
    /// How long the ping flood lasts [default: the whole phase; 2s with --quick].
    #[arg(long, value_parser = humantime::parse_duration)]
    ping_flood_for: Option<Duration>,
    /// `--history` of the spawned servers [default: enough for the pre-fill and the run].
    #[arg(long)]
    history: Option<usize>,
    /// One more flag for the spawned servers, repeatable: `--server-arg=--write-timeout=5s`.
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Where abuse.json and summary.md go [default: results/<date>-abuse].
    #[arg(long)]
    out: Option<PathBuf>,
    /// A miniature run in a few seconds per phase, for tests and trying it out.
    #[arg(long)]
    quick: bool,
}

#[derive(Debug, Args)]
struct BenchArgs {
    #[command(flatten)]
    workload: WorkloadArgs,
    /// The baseline to compare with (or to write, with --update-baseline).
    #[arg(long, default_value = "results/baseline.json")]
    baseline: PathBuf,
    /// Make the runs and write them as the new baseline instead of comparing.
    #[arg(long)]
    update_baseline: bool,
    /// Runs to make; timing figures are compared on their median.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Replace or add a check, e.g. `ws.latency.p99_ms=x3`, `traffic.bytes_per_message=+2%`
    /// (all transports), `delivery.lost=0`.
    #[arg(long = "threshold", value_name = "METRIC=LIMIT")]
    thresholds: Vec<String>,
    /// Fail when an absolute condition holds, e.g. "ws.latency.p99 > 5ms".
    #[arg(long = "fail-if", value_name = "CONDITION")]
    fail_if: Vec<String>,
    /// Also write the verdicts as JUnit XML.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Compare saved results (results.json or a baseline file) instead of running.
    #[arg(long, value_name = "FILE")]
    current: Vec<PathBuf>,
    /// Use the workload as given instead of shortening it with --quick.
    #[arg(long)]
    full: bool,
    /// Measure a running server instead of spawning one per transport.
    #[arg(long)]
    target: Option<String>,
    /// That server's process id, for its CPU and memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Where the runs' files go [default: a temporary folder].
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ClaimsArgs {
    /// Where the runs go [default: results/<date>-claims].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Do not measure: write the verdicts from the runs in this folder.
    #[arg(long, conflicts_with = "out")]
    from: Option<PathBuf>,
    /// The document to write.
    #[arg(long, default_value = "docs/claims.md")]
    doc: PathBuf,
    /// Short phases and few clients (a few minutes instead of about twenty), outages
    /// scaled 1:10: for trying it out, not for citing.
    #[arg(long)]
    quick: bool,
}

#[derive(Debug, Args)]
struct TraceArgs {
    /// short_poll, long_poll, sse or ws.
    #[arg(long)]
    transport: pushlab_server::Transport,
    /// Messages to publish while the client follows the stream.
    #[arg(long, default_value_t = 2)]
    messages: u64,
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// A results.json written by `pushlab lab` or `pushlab load`.
    results: PathBuf,
    /// Also rewrite summary.md, summary.csv and the plots into this folder.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct LabArgs {
    #[command(flatten)]
    workload: WorkloadArgs,
    /// Where to write results.json, summary.md, summary.csv and the plots
    /// [default: results/<date>-<name>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Name of the run, for the default output folder.
    #[arg(long, default_value = "lab")]
    name: String,
    /// Find each transport's maximum sustained rate: start at --rate and multiply it by
    /// 1.5 each step until p99 passes --p99-limit, a message is lost or delivery falls
    /// behind. Writes saturation.svg; idle phases are cut to 1 s.
    #[arg(long)]
    find_max: bool,
    /// With --find-max: the p99 a step may not pass.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    p99_limit: Duration,
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// The server to measure: host:port or http://host:port.
    #[arg(long)]
    target: String,
    /// The server's process id, when it runs on this machine, to report its CPU and
    /// memory.
    #[arg(long)]
    server_pid: Option<u32>,
    #[command(flatten)]
    lab: LabArgs,
}

/// Every limit a client can meet is a flag here or a fixed limit listed below; what a
/// client sees at each is in docs/api.md ("Limits and timeouts").
#[derive(Debug, Args)]
#[command(after_long_help = SERVE_FIXED_LIMITS)]
struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:3000 or localhost:3000; port 0 picks a free
    /// port (the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: String,
    /// Messages kept for clients that resume (at least 1). History lives in memory and
    /// ends with the process.
    #[arg(long, default_value_t = 10_000)]
    history: usize,
    /// Require `Authorization: Bearer TOKEN` (WebSocket: `?token=`) to publish.
    #[arg(long, value_name = "TOKEN")]
    publish_token: Option<String>,
    /// SSE keep-alive and WebSocket ping interval, e.g. 15s or 500ms (at least 100ms). A
    /// WebSocket silent for two heartbeats is closed with 1008.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    heartbeat: Duration,
    /// Largest message `data`, in bytes (at most 16 MiB); a publish body may be 16× that
    /// (at least 1 MiB).
    #[arg(long, default_value_t = 64 * 1024)]
    max_message_bytes: usize,
    /// Subscribers served at once (SSE and WebSocket streams, poll requests in flight);
    /// past it a new one gets a JSON 503 with Retry-After.
    #[arg(long, default_value_t = pushlab_server::Config::default().max_connections)]
    max_connections: usize,
    /// Open TCP connections of any kind, idle ones included; past it a new connection gets
    /// a JSON 503 and is closed [default: the open-files limit minus 100, at most 19,900].
    #[arg(long)]
    max_sockets: Option<usize>,
    /// A request head must be complete within this of the connection opening or of the
    /// previous response (so also the keep-alive idle timeout).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// A publish body must arrive within this (else 408).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    body_timeout: Duration,
    /// A write blocked this long (the client stopped reading) closes the connection.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    write_timeout: Duration,
    /// Largest poll response body in bytes; a response always carries at least one
    /// message and says `"more": true` when it stopped early.
    #[arg(long, default_value_t = pushlab_server::Config::default().max_response_bytes)]
    max_response_bytes: usize,
}

const SERVE_FIXED_LIMITS: &str = "\
Fixed limits:
  poll `limit`                1 to 10000 messages (default 1000)
  long-poll `timeout`         0 to 120 s (default 30)
  poll bytes in flight        64 MiB for all poll responses together; past it each carries one message
  stream batch                256 messages or 64 KiB per SSE chunk / WebSocket flush
  publish batch               1000 messages
  WebSocket write buffer      bounded (control replies included); a peer that fills it is closed with 1008
  shutdown                    within 1 s: long polls answered, SSE `shutdown` event, WebSocket close 1001

Every refusal is JSON: {\"error\": CODE, \"message\": TEXT}; every 503 carries Retry-After.";

impl Cli {
    /// Runs the command and returns the process exit code.
    pub(crate) async fn run(self) -> anyhow::Result<i32> {
        match self.command {
            Command::Serve(args) => serve(args).await.map(|()| 0),
            Command::Lab(args) => lab(args, None, None).await,
            Command::Load(args) => lab(args.lab, Some(args.target), args.server_pid).await,
            Command::Report(args) => report(args).map(|()| 0),
            Command::Bench(args) => bench(args).await,
            Command::Claims(args) => claims(args).await.map(|()| 0),
            Command::Abuse(args) => abuse(args).await,
            Command::Trace(args) => {
                let exe = std::env::current_exe().context("locating the pushlab binary")?;
                print!("{}", pushlab_loadgen::trace::run(args.transport, &exe, args.messages).await?);
                Ok(0)
            }
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let fd_limit = pushlab_server::raise_fd_limit();
    let max_sockets = args.max_sockets.unwrap_or_else(|| {
        let free = fd_limit.saturating_sub(100).max(1);
        free.min(pushlab_server::Config::default().max_sockets as u64) as usize
    });
    let config = pushlab_server::Config {
        history: args.history,
        publish_token: args.publish_token,
        heartbeat: args.heartbeat,
        max_message_bytes: args.max_message_bytes,
        max_connections: args.max_connections,
        max_sockets,
        request_timeout: args.request_timeout,
        body_timeout: args.body_timeout,
        write_timeout: args.write_timeout,
        max_response_bytes: args.max_response_bytes,
        ..pushlab_server::Config::default()
    };
    config.validate(fd_limit).map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(&args.addr).await.with_context(|| {
        format!("cannot listen on {} (expected HOST:PORT, e.g. 127.0.0.1:3000)", args.addr)
    })?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() && config.publish_token.is_none() {
        eprintln!(
            "warning: listening on {addr}, beyond this machine, without --publish-token: \
             anyone who can reach it can publish"
        );
    }
    // The load generator reads this line to learn the port: keep its shape. A closed
    // stdout (`pushlab serve | head -1`) must not stop the server, so write errors are
    // ignored rather than panicking as `println!` would.
    let stop = shutdown_signal()?;
    say(&format!("pushlab serve: listening on http://{addr} (open files limit {fd_limit})"));
    pushlab_server::run(listener, config, stop).await?;
    say("pushlab serve: stopped");
    Ok(())
}

/// One line on stdout; a closed pipe is not an error for a server.
fn say(line: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed here, before the future
/// is first polled: a signal that arrives just after the "listening" line (a test, or a
/// supervisor that stops the server at once) must stop it cleanly, not kill it.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    })
}

/// Runs the lab (or a load against `target`), prints the table, and returns 1 when any
/// message was lost or duplicated.
async fn lab(args: LabArgs, target: Option<String>, server_pid: Option<u32>) -> anyhow::Result<i32> {
    let out = args.out.unwrap_or_else(|| {
        pushlab_loadgen::lab::default_out_dir(std::path::Path::new("results"), &args.name)
    });
    let workloads = args.workload.validate_all()?;
    let mut options = lab_options(workloads[0].clone(), target, server_pid, out.clone())?;
    if args.find_max {
        options.workload.idle_seconds = options.workload.idle_seconds.min(Duration::from_secs(1));
        let search = pushlab_loadgen::saturation::Search {
            p99_limit_ms: args.p99_limit.as_secs_f64() * 1e3,
            start_rate: options.workload.rate_per_second,
            factor: 1.5,
            max_steps: 20,
        };
        let curves = pushlab_loadgen::saturation::find_max(&options, search).await?;
        println!("{}", pushlab_loadgen::saturation::markdown(&curves, &options.command, search));
        println!("wrote {}/summary.md, saturation.json, saturation.svg and a folder per step", out.display());
        return Ok(0);
    }
    let runs = if workloads.len() == 1 {
        vec![pushlab_loadgen::lab::run(&options).await?]
    } else {
        pushlab_loadgen::lab::run_conditions(&options, workloads).await?
    };
    for results in &runs {
        println!();
        if runs.len() > 1 {
            println!("== {}", pushlab_loadgen::report::table::condition_name(results));
        }
        print!("{}", pushlab_loadgen::report::table::terminal(results));
        for warning in &results.warnings {
            println!("warning: {warning}");
        }
    }
    if runs.len() > 1 {
        use pushlab_loadgen::report::table;
        println!("\n== {}\n{}", table::sweep_title(&runs), table::conditions(&runs));
        println!("wrote {}/summary.md, sweep.svg and a folder per condition", out.display());
    } else {
        println!("\nwrote {}/results.json, summary.md, summary.csv, latency.svg, cost.svg", out.display());
    }
    let faulty =
        runs.iter().flat_map(|r| &r.transports).any(|t| t.delivery.lost > 0 || t.delivery.duplicated > 0);
    Ok(if faulty { 1 } else { 0 })
}

fn report(args: ReportArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.results)
        .with_context(|| format!("reading {}", args.results.display()))?;
    let results: pushlab_loadgen::Results = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a pushlab results.json", args.results.display()))?;
    print!("{}", pushlab_loadgen::report::table::terminal(&results));
    if let Some(out) = args.out {
        pushlab_loadgen::report::write_all(&results, &out)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

fn lab_options(
    workload: pushlab_loadgen::Workload,
    target: Option<String>,
    server_pid: Option<u32>,
    out: PathBuf,
) -> anyhow::Result<LabOptions> {
    Ok(LabOptions {
        workload,
        server_exe: std::env::current_exe().context("locating the pushlab binary")?,
        target,
        server_pid,
        out,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        stall: None,
    })
}

async fn bench(mut args: BenchArgs) -> anyhow::Result<i32> {
    args.workload.quick |= !args.full;
    let out = args
        .out
        .unwrap_or_else(|| std::env::temp_dir().join(format!("pushlab-bench-{}", std::process::id())));
    let options = pushlab_loadgen::bench::BenchOptions {
        lab: lab_options(args.workload.validate()?, args.target, args.server_pid, out)?,
        repeat: args.repeat,
        baseline: args.baseline,
        update_baseline: args.update_baseline,
        current: args.current,
        thresholds: args.thresholds,
        fail_if: args.fail_if,
        junit: args.junit,
    };
    pushlab_loadgen::bench::run(&options).await
}

async fn claims(args: ClaimsArgs) -> anyhow::Result<()> {
    use pushlab_loadgen::claims;
    let dir = match args.from {
        Some(dir) => dir,
        None => {
            let out = args.out.unwrap_or_else(|| {
                pushlab_loadgen::lab::default_out_dir(std::path::Path::new("results"), "claims")
            });
            let options = claims::ClaimsOptions {
                server_exe: std::env::current_exe().context("locating the pushlab binary")?,
                out: out.clone(),
                quick: args.quick,
                command: std::env::args().collect::<Vec<_>>().join(" "),
            };
            claims::measure(&options).await?;
            out
        }
    };
    let evidence = claims::Evidence::load(&dir)?;
    let doc_dir = args.doc.parent().unwrap_or(std::path::Path::new(""));
    let text = claims::verdicts::render(&evidence, doc_dir);
    if !doc_dir.as_os_str().is_empty() {
        std::fs::create_dir_all(doc_dir).with_context(|| format!("creating {}", doc_dir.display()))?;
    }
    std::fs::write(&args.doc, &text).with_context(|| format!("writing {}", args.doc.display()))?;
    for verdict in claims::verdicts::all(&evidence) {
        println!("{:<4} {:<28} {}", verdict.id, verdict.kind.label(), verdict.claim);
    }
    println!("wrote {} from {}", args.doc.display(), dir.display());
    Ok(())
}

/// Runs the abuse run, prints its report, and returns 1 when a verdict fails.
async fn abuse(args: AbuseArgs) -> anyhow::Result<i32> {
    use pushlab_loadgen::abuse::{self, AbuseOptions};
    let exe = std::env::current_exe().context("locating the pushlab binary")?;
    let out = args
        .out
        .unwrap_or_else(|| pushlab_loadgen::lab::default_out_dir(std::path::Path::new("results"), "abuse"));
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut o = match args.quick {
        true => AbuseOptions::quick(exe, out.clone(), command),
        false => AbuseOptions::standard(exe, out.clone(), command),
    };
    o.normal.clients = args.clients.unwrap_or(o.normal.clients);
    o.normal.rate_per_second = args.rate;
    o.normal.payload_bytes = args.payload;
    o.normal.transports = args.transports;
    o.normal.duration_seconds = args.duration.map_or(o.normal.duration_seconds, |d| d.as_secs_f64());
    o.normal.warmup_seconds = args.warmup.map_or(o.normal.warmup_seconds, |d| d.as_secs_f64());
    o.prefill.messages = args.prefill.unwrap_or(o.prefill.messages);
    o.prefill.data_bytes = args.prefill_bytes;
    o.attack.idle_sockets = args.idle_sockets.unwrap_or(o.attack.idle_sockets);
    o.attack.ping_flood_seconds =
        args.ping_flood_for.map(|d| d.as_secs_f64()).or(o.attack.ping_flood_seconds);
    o.history = args.history;
    o.server_args = args.server_args;
    o.rss_bound_bytes = args.rss_bound;
    o.rss_safety_bytes = args.rss_safety.unwrap_or(2 * args.rss_bound);
    let report = abuse::run(&o, &|line| eprintln!("{line}")).await?;
    println!();
    print!("{}", abuse::report::terminal(&report));
    println!("\nwrote {}/abuse.json and summary.md", out.display());
    Ok(if report.verdicts.all_pass() { 0 } else { 1 })
}
