//! The command line: `pushlab serve`, `pushlab lab`, `pushlab load`, `pushlab abuse` ….

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use pushlab_loadgen::workload::parse_duration;
use pushlab_loadgen::{LabOptions, WorkloadArgs};

/// `pushlab --version`: the version and the commit it was built from (see build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("PUSHLAB_GIT_COMMIT"), ")");

/// A benchmark and teaching lab for real-time web transports: short polling, long
/// polling, Server-Sent Events and WebSocket, measured the same way.
#[derive(Debug, Parser)]
#[command(name = "pushlab", version = VERSION, about)]
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
    /// Check the packet link by itself before trusting it: what it adds at zero delay,
    /// its round trip, handshake, loss, bandwidth and packet counts against the settings,
    /// and its CPU per packet (needs root and /dev/net/tun). Exit 1 when a check fails.
    Link(LinkArgs),
    /// Check every claim of the seed documents (their list of claims): make the runs they
    /// need and write docs/claims.md with a verdict and the figures for each.
    Claims(ClaimsArgs),
    /// Regression gate for CI: run a quick lab a few times, compare with a baseline,
    /// exit 1 on a regression (0 when all checks pass, 2 on errors).
    Bench(BenchArgs),
    /// Measure the normal workload against a fresh server, then again while hostile
    /// clients attack a second one (stuck readers, a ping flood, poll hogs, idle
    /// sockets); report what the attack did. Exit 1 when a verdict fails, 2 on errors.
    Abuse(AbuseArgs),
    /// Print a shell completion script: `pushlab completions bash > ~/.local/share/bash-completion/completions/pushlab`.
    Completions(CompletionsArgs),
    /// Print the man page (roff): `pushlab man > pushlab.1 && man ./pushlab.1`.
    Man,
}

#[derive(Debug, Args)]
struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

/// What `lab`, `load` and `report` print on stdout; the files are written either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutputFormat {
    /// The comparison table, for people.
    Text,
    /// results.json (a sweep: sweep.json).
    Json,
    /// summary.csv (a sweep: sweep.csv).
    Csv,
    /// summary.md.
    Md,
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
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Warm-up before each measured window [default: 5s; 500ms with --quick].
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// The normal clients' transports, comma separated: any of short_poll,long_poll,sse,ws.
    #[arg(long, value_delimiter = ',', default_value = "sse,ws")]
    transports: Vec<pushlab_protocol::Transport>,
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
    #[arg(long, value_parser = parse_duration)]
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

/// `pushlab link`: the packet link's checks, as a table or JSON; exit 1 if one failed.
async fn link(args: LinkArgs) -> anyhow::Result<i32> {
    use pushlab_loadgen::network::{check, LinkKind, Network};
    let loss = match args.loss.as_ref().map(|l| l.0.as_slice()) {
        None => Default::default(),
        Some([one]) => *one,
        Some(_) => bail!("pushlab link checks one --loss setting at a time"),
    };
    let network = Network {
        rtt: args.rtt,
        jitter: args.jitter,
        reorder: args.reorder,
        bandwidth_bytes_per_second: args.bandwidth,
        queue_packets: args.queue,
        loss,
        link: LinkKind::Netns,
    };
    let report = check::check(network).await?;
    match args.json {
        true => println!("{}", serde_json::to_string_pretty(&report)?),
        false => print!("{}", report.render()),
    }
    Ok(if report.passed() { 0 } else { 1 })
}

#[derive(Debug, Args)]
struct LinkArgs {
    /// Round-trip time to emulate.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    rtt: Duration,
    /// Extra random delay per packet and direction, uniform in [0, JITTER].
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    jitter: Duration,
    /// Let jittered packets overtake each other.
    #[arg(long)]
    reorder: bool,
    /// Link rate each direction, e.g. 10mbit or 1MB/s.
    #[arg(long, value_parser = pushlab_loadgen::network::parse_bandwidth)]
    bandwidth: Option<u64>,
    /// Packets the queue holds while waiting for the bandwidth.
    #[arg(long, default_value_t = pushlab_loadgen::network::DEFAULT_QUEUE_PACKETS)]
    queue: usize,
    /// Packet loss: `1%`, `0%/2%` (to the server / to the clients), `1%,burst=4`.
    #[arg(long, value_parser = pushlab_loadgen::network::loss::parse_loss_flag)]
    loss: Option<pushlab_loadgen::network::loss::LossList>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct TraceArgs {
    /// short_poll, long_poll, sse or ws.
    #[arg(long)]
    transport: pushlab_protocol::Transport,
    /// Messages to publish while the client follows the stream.
    #[arg(long, default_value_t = 2)]
    messages: u64,
    /// Also write the exchange as a sequence diagram, a self-contained SVG, to this file.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Cut the client's connection this long after the start (`250ms`), publish one more
    /// message while it is away, and trace its reconnect and resume.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    drop_after: Option<Duration>,
    /// Over TLS: the server gets a certificate made for the trace; the TLS records on the
    /// wire are shown with the HTTP inside each and what TLS added to it.
    #[arg(long)]
    tls: bool,
    /// The HTTP version the client speaks: 1.1, or 2 (its frames decoded; in cleartext
    /// with prior knowledge without --tls).
    #[arg(long, default_value = "1.1", value_parser = pushlab_loadgen::client::tls::parse_http_version)]
    http: pushlab_loadgen::client::tls::HttpVersion,
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// A run's folder or its results.json; a sweep's folder (or sweep.json); a
    /// find-max folder (or saturation.json).
    results: PathBuf,
    /// Also rewrite summary.md, summary.csv, index.html and the plots into this folder.
    #[arg(long)]
    out: Option<PathBuf>,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value = "text")]
    output_format: OutputFormat,
}

/// What `lab` and `load` share beyond the workload: where the files go, what is printed,
/// and the saturation search.
#[derive(Debug, Args)]
struct RunArgs {
    /// Where to write results.json, summary.md, summary.csv, index.html and the plots
    /// [default: results/<date>-<name>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// What to print on stdout (the files are written whatever it is).
    #[arg(long, value_enum, default_value = "text")]
    output_format: OutputFormat,
    /// Find each transport's maximum sustained rate: start at --rate and multiply it by
    /// 1.5 each step until p99 passes --p99-limit, a message is lost or delivery falls
    /// behind. Writes saturation.svg; idle phases are cut to 1 s. Takes one --rtt and
    /// one --poll-interval value.
    #[arg(long)]
    find_max: bool,
    /// With --find-max: the p99 a step may not pass.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    p99_limit: Duration,
}

#[derive(Debug, Args)]
struct LabArgs {
    #[command(flatten)]
    workload: WorkloadArgs,
    #[command(flatten)]
    run: RunArgs,
    /// Name of the run, for the default output folder.
    #[arg(long, default_value = "lab")]
    name: String,
}

/// `--heartbeat` is a flag of the servers pushlab spawns: `load` hides it (see
/// [`command`]) and refuses it, since a target keeps its own heartbeat.
#[derive(Debug, Args)]
struct LoadArgs {
    /// The server to measure: host:port, http://host:port, or https://host:port (which
    /// means --tls).
    #[arg(long)]
    target: String,
    /// The server's process id, when it runs on this machine, to report its CPU and
    /// memory.
    #[arg(long)]
    server_pid: Option<u32>,
    #[command(flatten)]
    workload: WorkloadArgs,
    #[command(flatten)]
    run: RunArgs,
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
    /// Publishing needs no token off loopback, knowingly: for an address only you can
    /// reach (`pushlab lab` serves inside a network namespace of its own). Without it,
    /// such a server warns at start.
    #[arg(long, conflicts_with = "publish_token")]
    open_publish: bool,
    /// SSE keep-alive and WebSocket ping interval, e.g. 15s or 500ms (at least 100ms). A
    /// WebSocket silent for two heartbeats is closed with 1008.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
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
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    request_timeout: Duration,
    /// A publish body must arrive within this (else 408).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    body_timeout: Duration,
    /// A write blocked this long (the client stopped reading) closes the connection.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    write_timeout: Duration,
    /// Largest poll response body in bytes; a response always carries at least one
    /// message and says `"more": true` when it stopped early.
    #[arg(long, default_value_t = pushlab_server::Config::default().max_response_bytes)]
    max_response_bytes: usize,
    /// Serve HTTPS: TLS 1.2/1.3 with ALPN offering HTTP/2 and HTTP/1.1. Without --cert and
    /// --key, a self-signed certificate for localhost, 127.0.0.1 and ::1 is made at start
    /// and its file named in the start line (trust it with `curl --cacert FILE`). Without
    /// --tls the port speaks cleartext HTTP/1.1, and HTTP/2 with prior knowledge.
    #[arg(long)]
    tls: bool,
    /// The certificate chain (PEM) to serve; implies --tls.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<std::path::PathBuf>,
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
  HTTP/2 streams              256 open per connection; a connection with none open closes after --request-timeout
  TLS handshake               done within --request-timeout, else closed (counted)

Every refusal is JSON: {\"error\": CODE, \"message\": TEXT}; every 503 carries Retry-After.";

/// The command line as clap sees it: the derived one, with `load`'s `--heartbeat` hidden
/// (it is a flag for servers pushlab spawns; `load` refuses it). Completions and the man
/// page are made from this too.
pub(crate) fn command() -> clap::Command {
    Cli::command()
        .mut_subcommand("load", |load| load.mut_arg("heartbeat", |arg| arg.hide(true)))
        // `--ca` names the certificate of someone else's server; the lab makes its own
        // (and refuses --ca, saying so).
        .mut_subcommand("lab", |lab| lab.mut_arg("ca", |arg| arg.hide(true)))
}

impl Cli {
    /// Parses the process's arguments (exiting with clap's message on an error), and says
    /// which of the phase flags that `--quick` would shorten were typed explicitly.
    pub(crate) fn parse_args() -> (Cli, Vec<&'static str>) {
        let matches = command().get_matches();
        let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
        let explicit = match matches.subcommand() {
            Some(("lab" | "load" | "bench", sub)) => pushlab_loadgen::workload::explicit_flags(sub),
            _ => Vec::new(),
        };
        (cli, explicit)
    }

    /// Runs the command and returns the process exit code.
    /// Makes the packet link for `pushlab lab` (unless `--link relay`), `pushlab claims`
    /// and `pushlab link`: it moves the process into a network namespace of its own,
    /// which must happen before the async runtime starts any thread. A failure is kept,
    /// and said by the run (`--link auto` falls back to the relay; `--link netns` stops
    /// with the reason).
    pub(crate) fn prepare_link(&self) {
        let wanted = match &self.command {
            Command::Lab(args) => args.workload.link != pushlab_loadgen::network::LinkChoice::Relay,
            // Measuring again (not `--from` saved runs): across the packet link when it can.
            Command::Claims(args) => args.from.is_none(),
            Command::Link(_) => true,
            _ => false,
        };
        if wanted {
            let _ = pushlab_loadgen::network::netns::enter();
        }
    }

    pub(crate) async fn run(self, explicit: Vec<&'static str>) -> anyhow::Result<i32> {
        match self.command {
            Command::Serve(args) => serve(args).await.map(|()| 0),
            Command::Lab(args) => {
                let LabArgs { workload, run, name } = args;
                until_signal(lab(workload, run, &name, None, None, &explicit)).await
            }
            Command::Load(mut args) => {
                // The scheme says TLS as --tls does (`http://` with --tls is refused).
                args.workload.tls |= args.target.starts_with("https://");
                if explicit.contains(&"heartbeat") {
                    bail!(
                        "--heartbeat does not apply to `pushlab load`: it sets the heartbeat of the \
                         servers `pushlab lab` spawns, and a target keeps its own (e.g. `pushlab serve --heartbeat 5s`)"
                    );
                }
                let target = Some(args.target);
                until_signal(lab(args.workload, args.run, "load", target, args.server_pid, &explicit)).await
            }
            Command::Report(args) => report(args).map(|()| 0),
            Command::Bench(args) => until_signal(bench(args, &explicit)).await,
            Command::Claims(args) => until_signal(async { claims(args).await.map(|()| 0) }).await,
            Command::Abuse(args) => until_signal(abuse(args)).await,
            Command::Trace(args) => {
                let exe = std::env::current_exe().context("locating the pushlab binary")?;
                let protocol = pushlab_loadgen::trace::Protocol { http: args.http, tls: args.tls };
                let recording = pushlab_loadgen::trace::record_with(
                    args.transport,
                    &exe,
                    args.messages,
                    args.drop_after,
                    protocol,
                )
                .await?;
                print!("{}", pushlab_loadgen::trace::render(args.transport, &recording));
                if let Some(path) = &args.svg {
                    std::fs::write(path, pushlab_loadgen::trace::svg(args.transport, &recording))
                        .with_context(|| format!("writing {}", path.display()))?;
                }
                Ok(0)
            }
            Command::Link(args) => link(args).await,
            Command::Completions(args) => {
                clap_complete::generate(args.shell, &mut command(), "pushlab", &mut std::io::stdout());
                Ok(0)
            }
            Command::Man => {
                clap_mangen::Man::new(command())
                    .render(&mut std::io::stdout())
                    .context("writing the man page")?;
                Ok(0)
            }
        }
    }
}

/// Shows the runs' progress on stderr (the library reports it, only the binary
/// prints): on a terminal a bar per transport that redraws itself, with the time left;
/// elsewhere (a CI log, where a bar would be noise) a line every few seconds with the
/// phase, the deliveries per second and the time left.
pub(crate) fn show_progress() {
    use pushlab_loadgen::lab::Progress;
    use pushlab_loadgen::report::{bytes, ms};
    use std::io::IsTerminal;
    // The task writing those lines for the transport being measured.
    let lines: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>> = std::sync::Mutex::new(None);
    let stop_lines = move |next: Option<tokio::task::JoinHandle<()>>| {
        if let Ok(mut task) = lines.lock() {
            if let Some(previous) = std::mem::replace(&mut *task, next) {
                previous.abort();
            }
        }
    };
    pushlab_loadgen::lab::set_progress(move |event| match event {
        Progress::Started(w) => eprintln!(
            "pushlab: {} clients, {} msg/s, {}-byte payload; per transport: {:.1}s warm-up, {:.1}s measured, \
             {:.1}s idle\npushlab: {}",
            w.clients,
            w.rate_per_second,
            w.payload_bytes,
            w.warmup_seconds.as_secs_f64(),
            w.duration_seconds.as_secs_f64(),
            w.idle_seconds.as_secs_f64(),
            w.network.describe()
        ),
        Progress::Condition(name) => eprintln!("\n== {name}"),
        // Said so that whoever stops the run can check nothing is left behind.
        Progress::ServerStarted { transport, pid, addr } => {
            eprintln!("pushlab: {transport} server pid {pid} on {addr}")
        }
        Progress::Measuring { bar, .. } => {
            if std::io::stderr().is_terminal() {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                stop_lines(None);
            } else {
                stop_lines(Some(tokio::spawn(progress_lines(bar.clone()))));
            }
        }
        Progress::Measured(t) => {
            stop_lines(None);
            eprintln!(
                "{:>12} p50 {} · p99 {} · {} per message · lost {}",
                t.transport.name(),
                ms(t.latency.p50_ms),
                ms(t.latency.p99_ms),
                bytes(t.traffic.bytes_per_message),
                t.delivery.lost
            );
        }
        Progress::BenchRun { run, of } => eprintln!("pushlab bench: run {run} of {of}"),
        Progress::FindMaxStep { transport, rate_per_second, clients } => {
            eprintln!("\n== find-max: {transport} at {rate_per_second:.0} msg/s × {clients} clients")
        }
    });
}

/// Every [`PROGRESS_EVERY`], one line on stderr with the bar's prefix, its message (the
/// phase, the deliveries per second and the p99 so far), how far the transport is, and
/// the time left.
async fn progress_lines(bar: indicatif::ProgressBar) {
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        let done = 100 * bar.position() / bar.length().unwrap_or(1).max(1);
        eprintln!("{:>12} {} · {done}% · about {} s left", bar.prefix(), bar.message(), bar.eta().as_secs());
    }
}

/// How often [`progress_lines`] writes.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Exit code after SIGINT (Ctrl-C), as shells report it: 128 + 2.
const SIGINT_EXIT: i32 = 130;
/// Exit code after SIGTERM: 128 + 15.
const SIGTERM_EXIT: i32 = 143;

/// Runs `work` until it ends or the process is told to stop. On SIGINT or SIGTERM `work`
/// is dropped, and with it every `pushlab serve` it started (their handles kill the child
/// when dropped), so nothing is left running; results are written after each transport,
/// so what was measured is on disk already.
async fn until_signal(work: impl std::future::Future<Output = anyhow::Result<i32>>) -> anyhow::Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let (name, code) = tokio::select! {
        result = work => return result,
        _ = interrupt.recv() => ("SIGINT", SIGINT_EXIT),
        _ = terminate.recv() => ("SIGTERM", SIGTERM_EXIT),
    };
    eprintln!(
        "pushlab: stopped by {name}; the servers it started are stopped, and the transports measured \
         so far are in the output folder (results.json says `incomplete`)"
    );
    Ok(code)
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
    let (tls, generated_cert) = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            (Some(pushlab_server::tls::Identity::from_files(cert, key).map_err(anyhow::Error::msg)?), None)
        }
        _ if args.tls => {
            let identity = pushlab_server::tls::Identity::generate().map_err(anyhow::Error::msg)?;
            (Some(identity), None::<CertFile>)
        }
        _ => (None, None),
    };
    let generate = tls.is_some() && args.cert.is_none();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let tls_pem = tls.as_ref().map(|identity| identity.cert_pem.clone());
    let config = pushlab_server::Config { tls, ..config };
    config.validate(fd_limit).map_err(anyhow::Error::msg)?;
    let listener = listen(&args.addr).await.with_context(|| {
        format!("cannot listen on {} (expected HOST:PORT, e.g. 127.0.0.1:3000)", args.addr)
    })?;
    let addr = listener.local_addr()?;
    // Written once the port is ours, where a client can be pointed at it (it is public;
    // the key stays in memory), and removed however the server ends.
    let generated_cert = match (&tls_pem, generate) {
        (Some(pem), true) => Some(CertFile::write(pem)?),
        _ => generated_cert,
    };
    if !addr.ip().is_loopback() && config.publish_token.is_none() && !args.open_publish {
        eprintln!(
            "warning: listening on {addr}, beyond this machine, without --publish-token: \
             anyone who can reach it can publish"
        );
    }
    // The load generator reads this line to learn the port: keep its shape. A closed
    // stdout (`pushlab serve | head -1`) must not stop the server, so write errors are
    // ignored rather than panicking as `println!` would.
    let stop = shutdown_signal()?;
    let certificate = match &generated_cert {
        Some(file) => format!(", self-signed certificate {}", file.path.display()),
        None => String::new(),
    };
    say(&format!("pushlab serve: listening on {scheme}://{addr} (open files limit {fd_limit}{certificate})"));
    pushlab_server::run(listener, config, stop).await?;
    drop(generated_cert);
    say("pushlab serve: stopped");
    Ok(())
}

/// The self-signed certificate of `serve --tls`, in a folder only this user can enter
/// (so no other user can plant a file or a link where it is written), removed on drop.
struct CertFile {
    path: std::path::PathBuf,
}

impl CertFile {
    fn write(pem: &str) -> anyhow::Result<CertFile> {
        use std::io::Write;
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!("pushlab-serve-{}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("making {} for the certificate", dir.display()))?;
        let path = dir.join("cert.pem");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("writing the certificate to {}", path.display()))?;
        file.write_all(pem.as_bytes())?;
        Ok(CertFile { path })
    }
}

impl Drop for CertFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Binds `addr` (a name is resolved) with a listen backlog of 4096 connections, capped
/// by the kernel's `net.core.somaxconn`. The standard library's bind asks for 128: a
/// burst of a few hundred connects (thousands of clients reconnecting after a restart)
/// then overflows the queue, and the kernel drops SYNs that clients retry only after a
/// second.
async fn listen(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host(addr).await? {
        let socket =
            if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(4096)) {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error
        .unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "the name has no address")))
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
async fn lab(
    workload: WorkloadArgs,
    run: RunArgs,
    name: &str,
    target: Option<String>,
    server_pid: Option<u32>,
    explicit: &[&str],
) -> anyhow::Result<i32> {
    let out = run
        .out
        .unwrap_or_else(|| pushlab_loadgen::lab::default_out_dir(std::path::Path::new("results"), name));
    let mut workloads = workload.validate_all_with(explicit)?;
    // A server the lab starts itself can be measured without TLS too, as TLS's reference.
    if target.is_none() && !run.find_max {
        workloads = pushlab_loadgen::workload::with_cleartext_references(workloads);
    }
    if run.find_max && workloads.len() > 1 {
        bail!(
            "--find-max takes one --rtt and one --poll-interval value, not a list (it would use only the \
             first): run it once per value, e.g. `--find-max --rtt 50ms`"
        );
    }
    let mut options = lab_options(workloads[0].clone(), target, server_pid, out.clone())?;
    if run.find_max {
        options.workload.idle_seconds = options.workload.idle_seconds.min(Duration::from_secs(1));
        let search = pushlab_loadgen::saturation::Search {
            p99_limit_ms: run.p99_limit.as_secs_f64() * 1e3,
            start_rate: options.workload.rate_per_second,
            factor: 1.5,
            max_steps: 20,
        };
        let curves = pushlab_loadgen::saturation::find_max(&options, search).await?;
        match run.output_format {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&curves)?),
            _ => println!("{}", pushlab_loadgen::saturation::markdown(&curves, &options.command, search)),
        }
        eprintln!(
            "wrote {}/summary.md, saturation.json, saturation.svg and a folder per step",
            out.display()
        );
        return Ok(0);
    }
    let runs = if workloads.len() == 1 {
        vec![pushlab_loadgen::lab::run(&options).await?]
    } else {
        pushlab_loadgen::lab::run_conditions(&options, workloads).await?
    };
    if runs.len() > 1 {
        print_sweep(&runs, &out, run.output_format)?;
        eprintln!(
            "\nwrote {}/sweep.json, sweep.csv, summary.md, index.html, sweep.svg and a folder per condition",
            out.display()
        );
    } else {
        print_run(&runs[0], &out, run.output_format)?;
        eprintln!(
            "\nwrote {}/results.json, summary.md, summary.csv, index.html, latency.svg, cost.svg",
            out.display()
        );
    }
    let faulty =
        runs.iter().flat_map(|r| &r.transports).any(|t| t.delivery.lost > 0 || t.delivery.duplicated > 0);
    Ok(if faulty { 1 } else { 0 })
}

/// One run on stdout in `format`. Text is the table and the run's warnings; the other
/// formats print a file of the run (`dir`) as written, so stdout is what a script reads.
fn print_run(
    results: &pushlab_loadgen::Results,
    dir: &std::path::Path,
    format: OutputFormat,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Text => {
            println!();
            print!("{}", pushlab_loadgen::report::table::terminal(results));
            for warning in &results.warnings {
                println!("warning: {warning}");
            }
        }
        OutputFormat::Json => print!("{}", read(&dir.join("results.json"))?),
        OutputFormat::Csv => print!("{}", read(&dir.join("summary.csv"))?),
        OutputFormat::Md => print!("{}", read(&dir.join("summary.md"))?),
    }
    Ok(())
}

/// A sweep on stdout in `format`: each condition's table, then the comparison.
fn print_sweep(
    runs: &[pushlab_loadgen::Results],
    dir: &std::path::Path,
    format: OutputFormat,
) -> anyhow::Result<()> {
    use pushlab_loadgen::report::table;
    match format {
        OutputFormat::Text => {
            for results in runs {
                println!("\n== {}", table::condition_name(results));
                print!("{}", table::terminal(results));
                for warning in &results.warnings {
                    println!("warning: {warning}");
                }
            }
            println!("\n== {}\n{}", table::sweep_title(runs), table::conditions(runs));
        }
        OutputFormat::Json => print!("{}", read(&dir.join("sweep.json"))?),
        OutputFormat::Csv => print!("{}", read(&dir.join("sweep.csv"))?),
        OutputFormat::Md => print!("{}", read(&dir.join("summary.md"))?),
    }
    Ok(())
}

fn read(path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// `pushlab report PATH`: a run, a sweep or a saturation search, whichever PATH holds.
fn report(args: ReportArgs) -> anyhow::Result<()> {
    use pushlab_loadgen::report::{self, Saved};
    let saved = report::open(&args.results)?;
    // The files a non-text format prints are rewritten first when they are missing (a
    // results.json copied alone), into --out or a temporary folder.
    let dir = match &args.out {
        Some(out) => out.clone(),
        None => std::env::temp_dir().join(format!("pushlab-report-{}", std::process::id())),
    };
    match saved {
        Saved::Run(results) => {
            if args.out.is_some() || args.output_format != OutputFormat::Text {
                report::write_all(&results, &dir)?;
            }
            print_run(&results, &dir, args.output_format)?;
        }
        Saved::Sweep(runs) => {
            if args.out.is_some() || args.output_format != OutputFormat::Text {
                report::write_sweep(&runs, &dir, &runs[0].setup.command)?;
            }
            print_sweep(&runs, &dir, args.output_format)?;
        }
        Saved::Saturation(curves) => match args.output_format {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&curves)?),
            _ => print!("{}", pushlab_loadgen::saturation::terminal(&curves)),
        },
    }
    match &args.out {
        Some(out) => eprintln!("wrote {}", out.display()),
        None => {
            let _ = std::fs::remove_dir_all(&dir);
        }
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

async fn bench(mut args: BenchArgs, explicit: &[&str]) -> anyhow::Result<i32> {
    use pushlab_loadgen::bench::Gate;
    args.workload.quick |= !args.full;
    let out = args
        .out
        .unwrap_or_else(|| std::env::temp_dir().join(format!("pushlab-bench-{}", std::process::id())));
    let options = pushlab_loadgen::bench::BenchOptions {
        lab: lab_options(args.workload.validate_with(explicit)?, args.target, args.server_pid, out)?,
        repeat: args.repeat,
        baseline: args.baseline,
        update_baseline: args.update_baseline,
        current: args.current,
        thresholds: args.thresholds,
        fail_if: args.fail_if,
        junit: args.junit,
    };
    let baseline = options.baseline.display();
    let gate = pushlab_loadgen::bench::run(&options).await?;
    match &gate {
        Gate::BaselineWritten { runs } => println!("wrote the baseline {baseline} ({runs} runs)"),
        Gate::Compared { outcomes, runs } => {
            print!("{}", pushlab_loadgen::report::gate::terminal(outcomes, *runs))
        }
    }
    Ok(gate.exit_code())
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
