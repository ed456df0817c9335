//! `pushlab lab` and `pushlab load`: run every transport with the same workload, each
//! against a fresh server process (or the user's server), and write the reports.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use pushlab_protocol::Transport;

use crate::client::tls::{LabCertificate, TlsClient, Trust};
use crate::client::Target;
use crate::network::LinkKind;
use crate::process::ServerProcess;
use crate::report;
use crate::results::{Machine, Results, Setup, TransportResult, SCHEMA_VERSION};
use crate::run::Plan;
use crate::workload::Workload;

/// What to run and where to write.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The workload.
    pub workload: Workload,
    /// The `pushlab` binary to start as the server (`serve`), when no target is given.
    pub server_exe: PathBuf,
    /// An already running server to measure instead, e.g. `127.0.0.1:3000`.
    pub target: Option<String>,
    /// That server's process id, for its CPU and memory (same machine only).
    pub server_pid: Option<u32>,
    /// Output directory.
    pub out: PathBuf,
    /// The command line, recorded in the setup.
    pub command: String,
    /// Test hook: stall the publisher (see [`Plan::stall`]).
    pub stall: Option<(u64, Duration)>,
}

/// Runs every transport of the workload and writes the reports into `options.out`.
pub async fn run(options: &LabOptions) -> anyhow::Result<Results> {
    let w = &options.workload;
    let fd_limit = crate::process::raise_fd_limit();
    let setup = setup(options, fd_limit)?;
    let mut transports = Vec::new();
    let mut device_warnings = Vec::new();
    let (trust, certificate) = trust(options)?;
    progress(Progress::Started(Box::new(w.clone())));
    for (i, &transport) in w.transports.iter().enumerate() {
        // Hidden: the bar only holds the state (phase, position, length); whoever
        // receives the progress decides whether to draw it.
        let bar = ProgressBar::hidden();
        bar.set_style(
            ProgressStyle::with_template("{prefix:>12} [{bar:30}] {elapsed:>4} ETA {eta:>3} {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{} {transport}", i + 1, w.transports.len()));
        let (target, server) = match &options.target {
            Some(target) => (parse_target(target)?, None),
            None => {
                let history = (w.messages() * 2).max(10_000).to_string();
                let heartbeat = format!("{}ms", w.heartbeat_seconds.as_millis());
                let mut extra = vec!["--history".to_string(), history, "--heartbeat".to_string(), heartbeat];
                // Off loopback a server warns that anyone can publish; inside the run's
                // own namespace nobody else can reach it, which it cannot know.
                if w.network.link == LinkKind::Netns {
                    extra.push("--open-publish".to_string());
                }
                if let Some(certificate) = &certificate {
                    for (flag, path) in
                        [("--cert", certificate.cert_path()), ("--key", certificate.key_path())]
                    {
                        extra.push(flag.to_string());
                        extra.push(path.display().to_string());
                    }
                }
                // On the packet link the server listens on its end of it; the publisher,
                // beside it in the same namespace, reaches that address locally.
                let addr = match w.network.link {
                    LinkKind::Netns => std::net::SocketAddr::from((crate::network::netns::SERVER_ADDR, 0)),
                    LinkKind::Relay => std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                };
                let server = ServerProcess::spawn_on(&options.server_exe, addr, &extra).await?;
                progress(Progress::ServerStarted { transport, pid: server.pid, addr: server.addr });
                (Target::new(server.addr), Some(server))
            }
        };
        // A TLS configuration of its own per transport: its session store holds tickets of
        // this server only (each transport has a fresh one, with fresh ticket keys).
        let tls = match &trust {
            Some(trust) => Some(TlsClient::new(trust, w.http_version, &target.host, w.clients)?),
            None => None,
        };
        let target = Target { tls, http: w.http_version, ..target };
        let plan = Plan {
            transport,
            workload: w.clone(),
            target,
            server_pid: server.as_ref().map(|s| s.pid).or(options.server_pid),
            stall: options.stall,
        };
        progress(Progress::Measuring { transport, bar: bar.clone() });
        let link = crate::network::netns::get().filter(|_| w.network.link == LinkKind::Netns);
        let drops_before = link.map(|n| n.device_drops());
        let result = plan.measure(&bar).await.with_context(|| format!("measuring {transport}"));
        if let (Some(netns), Some(before)) = (link, drops_before) {
            let dropped = netns.device_drops() - before;
            if dropped > 0 {
                device_warnings.push(format!(
                    "{transport}: the TUN devices dropped {dropped} packets before the link read them (their queues \
                     were full): TCP resent them, and the latency figures include the delays"
                ));
            }
        }
        if let Some(server) = server {
            server.stop().await?;
        }
        let result = result?;
        progress(Progress::Measured(Box::new(result.clone())));
        transports.push(result);
        // Written after every transport, so that a run stopped during the fourth keeps
        // the first three; marked incomplete until the last one is in.
        if transports.len() < w.transports.len() {
            let mut partial = results(setup.clone(), transports.clone(), w, &setup.machine);
            partial.warnings.insert(0, incomplete_warning(transports.len(), w.transports.len()));
            partial.warnings.extend(device_warnings.iter().cloned());
            report::write_all(&partial, &options.out)?;
        }
    }
    let mut results = results(setup.clone(), transports, w, &setup.machine);
    results.warnings.extend(device_warnings);
    report::write_all(&results, &options.out)?;
    Ok(results)
}

/// What a run says while it goes. The library never prints: the `pushlab` binary
/// receives these (see [`set_progress`]) and shows them; a library user that sets
/// nothing sees nothing.
#[derive(Debug, Clone)]
pub enum Progress {
    /// A run begins with this workload.
    Started(Box<Workload>),
    /// One condition of a sweep begins (`rtt-50ms`).
    Condition(String),
    /// A server was spawned to measure `transport`: whoever stops the run can check it
    /// is gone after.
    ServerStarted {
        /// The transport it serves.
        transport: Transport,
        /// Its process id.
        pid: u32,
        /// Where it listens.
        addr: std::net::SocketAddr,
    },
    /// `transport` is being measured; `bar` holds the phase (its message), the position
    /// and the length, updated as the run goes. It is hidden: the receiver draws it or not.
    Measuring {
        /// The transport.
        transport: Transport,
        /// The run's progress.
        bar: ProgressBar,
    },
    /// `transport` is measured.
    Measured(Box<TransportResult>),
    /// Run `run` of `of` of `pushlab bench` begins.
    BenchRun {
        /// This run, from 1.
        run: usize,
        /// Runs in all.
        of: usize,
    },
    /// A step of `--find-max` begins.
    FindMaxStep {
        /// The transport.
        transport: Transport,
        /// Messages per second of this step.
        rate_per_second: f64,
        /// Subscribers.
        clients: usize,
    },
}

/// Where progress goes; set once by the binary.
type ProgressSink = Box<dyn Fn(&Progress) + Send + Sync>;
static PROGRESS: std::sync::OnceLock<ProgressSink> = std::sync::OnceLock::new();

/// Sends every run's progress to `sink`. Only the first call counts.
pub fn set_progress(sink: impl Fn(&Progress) + Send + Sync + 'static) {
    let _ = PROGRESS.set(Box::new(sink));
}

/// Tells the sink, if there is one.
pub(crate) fn progress(event: Progress) {
    if let Some(sink) = PROGRESS.get() {
        sink(&event);
    }
}

fn results(setup: Setup, transports: Vec<TransportResult>, w: &Workload, machine: &Machine) -> Results {
    let warnings = warnings(&transports, w, machine.cores);
    Results { schema_version: SCHEMA_VERSION, setup, transports, warnings }
}

/// The first warning of a `results.json` written before the run ended.
pub fn incomplete_warning(done: usize, planned: usize) -> String {
    format!("{INCOMPLETE}: {done} of {planned} transports measured (the run was stopped or is still going)")
}

/// How an unfinished run's first warning starts: scripts can test for it.
pub const INCOMPLETE: &str = "incomplete";

/// Runs the lab once per workload of a sweep (one value of `--rtt` or
/// `--poll-interval` each), each into its own folder under `options.out`, then writes a
/// `summary.md` comparing the conditions and `sweep.svg` plotting them.
pub async fn run_conditions(options: &LabOptions, workloads: Vec<Workload>) -> anyhow::Result<Vec<Results>> {
    let mut runs = Vec::new();
    for workload in workloads {
        let name = workload.condition.clone().unwrap_or_else(|| "run".into());
        progress(Progress::Condition(name.clone()));
        let mut condition = options.clone();
        condition.workload = workload;
        condition.out = options.out.join(&name);
        runs.push(run(&condition).await?);
    }
    report::write_sweep(&runs, &options.out, &options.command)?;
    Ok(runs)
}

/// `host:port`, `http://host:port` or `https://host:port` (with or without a `/`).
fn parse_target(target: &str) -> anyhow::Result<Target> {
    let hostport = target.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/');
    let addr = std::net::ToSocketAddrs::to_socket_addrs(hostport)
        .with_context(|| {
            format!("--target {target:?}: expected host:port, http://host:port or https://host:port")
        })?
        .next()
        .with_context(|| format!("--target {target:?} resolves to no address"))?;
    Ok(Target { host: hostport.to_string(), ..Target::new(addr) })
}

/// What the clients trust with `--tls`, and the certificate the lab's servers present:
/// the lab makes one for the run and trusts exactly it; a target is trusted by its
/// `--ca` file, or (like `curl -k`) for whatever certificate it presents. `None`: no TLS.
fn trust(options: &LabOptions) -> anyhow::Result<(Option<Trust>, Option<LabCertificate>)> {
    let w = &options.workload;
    if let Some(target) = &options.target {
        let https = target.starts_with("https://");
        if https && !w.tls {
            anyhow::bail!(
                "--target {target}: https:// means TLS, and this workload is cleartext (add --tls)"
            );
        }
        if target.starts_with("http://") && w.tls {
            anyhow::bail!("--target {target}: http:// means cleartext, and --tls was given (write https://)");
        }
    }
    if !w.tls {
        return Ok((None, None));
    }
    match (&options.target, &w.ca_file) {
        (None, Some(_)) => anyhow::bail!(
            "--ca is for `pushlab load`: `pushlab lab` makes a certificate for its servers and trusts exactly that one"
        ),
        (None, None) => {
            // On the packet link the server's address is its end of the link.
            let also = match w.network.link {
                LinkKind::Netns => vec![std::net::IpAddr::from(crate::network::netns::SERVER_ADDR)],
                LinkKind::Relay => Vec::new(),
            };
            let certificate = LabCertificate::generate(&also)?;
            Ok((Some(certificate.trust()?), Some(certificate)))
        }
        (Some(_), Some(ca)) => Ok((Some(Trust::from_pem_file(ca)?), None)),
        (Some(_), None) => Ok((Some(Trust::PresentedCertificate), None)),
    }
}

/// What makes this run's figures less trustworthy, in plain words.
fn warnings(transports: &[TransportResult], w: &Workload, cores: usize) -> Vec<String> {
    let mut out = Vec::new();
    let seconds = w.duration_seconds.as_secs_f64();
    for t in transports {
        let name = t.transport.name();
        if t.delivery.lost_untold > 0 {
            out.push(format!("{name}: {} messages lost without a gap notice", t.delivery.lost_untold));
        }
        if t.delivery.lost > 0 || t.delivery.duplicated > 0 {
            out.push(format!("{name}: {} lost, {} duplicated", t.delivery.lost, t.delivery.duplicated));
        }
        if let Some(wire) = t.wire.as_ref().filter(|_| w.network.loss.is_none()) {
            if wire.retransmitted_packets > 0 {
                out.push(format!(
                    "{name}: {} packets were sent again though the link dropped none: a packet lost on the way (a \
                     full socket or device queue) or a retransmission timer that fired early under load; their \
                     delays are in the latency figures",
                    wire.retransmitted_packets
                ));
            }
        }
        if t.loadgen.publisher_max_lag_ms > 50.0 {
            out.push(format!(
                "{name}: the publisher fell {:.0} ms behind its schedule; that delay is in the latency figures",
                t.loadgen.publisher_max_lag_ms
            ));
        }
        if let Some(server) = &t.server {
            // /proc counts CPU in ticks of 10 ms; a window with a few ticks cannot give a
            // per-message figure worth reading.
            if server.cpu_seconds < 0.05 {
                out.push(format!(
                    "{name}: the server used {:.2} s of CPU in the window, close to /proc's 10 ms resolution; \
                     CPU per message is not reliable (measure longer or with more clients)",
                    server.cpu_seconds
                ));
            }
        }
        let loadgen_cores = t.loadgen.cpu_seconds / seconds;
        let server_cores = t.server.as_ref().map_or(0.0, |s| s.cpu_seconds / seconds);
        if loadgen_cores + server_cores > 0.8 * cores as f64 && loadgen_cores > server_cores {
            out.push(format!(
                "{name}: the machine was near saturation ({loadgen_cores:.2} cores load generator, \
                 {server_cores:.2} server) and the load generator used more: figures may measure it, not the server"
            ));
        }
    }
    out
}

fn setup(options: &LabOptions, fd_limit: u64) -> anyhow::Result<Setup> {
    let mut workload = serde_json::to_value(&options.workload)?;
    if options.target.is_some() {
        // The heartbeat is a flag of the servers pushlab spawns; a target has its own,
        // which pushlab does not know, so none is recorded.
        workload["heartbeat_seconds"] = serde_json::Value::Null;
    }
    Ok(Setup {
        pushlab_version: env!("CARGO_PKG_VERSION").to_string(),
        command: options.command.clone(),
        started_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        git_commit: build_commit(),
        machine: Machine::here(fd_limit),
        target: options
            .target
            .clone()
            .unwrap_or_else(|| "spawned: a fresh `pushlab serve` per transport".into()),
        workload,
    })
}

/// `results/<date>-<name>`, with `-2`, `-3` … appended if that exists already.
pub fn default_out_dir(results_dir: &Path, name: &str) -> PathBuf {
    let date = humantime::format_rfc3339_seconds(SystemTime::now()).to_string()[..10].to_string();
    let base = results_dir.join(format!("{date}-{name}"));
    let mut candidate = base.clone();
    let mut n = 2;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{}-{n}", base.display()));
        n += 1;
    }
    candidate
}

/// The commit the running binary was built from (see the root `build.rs`), set once by
/// the `pushlab` binary; a library user that does not set it records none.
static BUILD_COMMIT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The commit the running binary was built from, when the binary said.
pub fn build_commit() -> Option<String> {
    BUILD_COMMIT.get().cloned()
}

/// Records `commit` (e.g. `env!("PUSHLAB_GIT_COMMIT")` of the binary) as every run's
/// `git_commit`. Only the first call counts.
pub fn set_build_commit(commit: &str) {
    let _ = BUILD_COMMIT.set(commit.to_string());
}
