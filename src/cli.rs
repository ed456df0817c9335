//! The command line: `pushlab serve`, `pushlab lab`, `pushlab load`.

use std::net::SocketAddr;
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

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// Messages kept for clients that resume.
    #[arg(long, default_value_t = 10_000)]
    history: usize,
    /// Require `Authorization: Bearer TOKEN` (WebSocket: `?token=`) to publish.
    #[arg(long, value_name = "TOKEN")]
    publish_token: Option<String>,
    /// SSE keep-alive and WebSocket ping interval, e.g. 15s or 500ms.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    heartbeat: Duration,
    /// Largest message `data`, in bytes once encoded.
    #[arg(long, default_value_t = 64 * 1024)]
    max_message_bytes: usize,
    /// Subscribers served at once (SSE and WebSocket streams, poll requests in flight).
    #[arg(long, default_value_t = pushlab_server::Config::default().max_connections)]
    max_connections: usize,
}

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
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    let config = pushlab_server::Config {
        history: args.history,
        publish_token: args.publish_token,
        heartbeat: args.heartbeat,
        max_message_bytes: args.max_message_bytes,
        max_connections: args.max_connections,
        ..pushlab_server::Config::default()
    };
    // The load generator reads this line to learn the port: keep its shape.
    println!("pushlab serve: listening on http://{addr} (open files limit {fd_limit})");
    pushlab_server::run(listener, config, shutdown_signal()).await?;
    println!("pushlab serve: stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
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
