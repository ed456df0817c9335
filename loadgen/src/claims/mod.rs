//! `pushlab claims`: every claim of the seed documents (`docs/seed-claims.md`) checked
//! against measurements, written as `docs/claims.md`.
//!
//! Two steps, so the document is always regenerated from data, never hand-typed:
//!
//! 1. [`measure`] makes the runs the claims need into one folder: the default lab, a
//!    round-trip-time sweep, polling and WebSocket at 1,000 and 10,000 clients (P1),
//!    dropped connections (C15), server outages against two reconnect policies (C16,
//!    `outage.rs`) and WebSocket frames of three sizes (P2, `frames.rs`).
//! 2. [`Evidence::load`] reads that folder back and [`verdicts::render`] writes a
//!    verdict per claim, with the figures, the conditions and the command of each run.
//!
//! `pushlab claims --from DIR` does step 2 alone.

pub mod frames;
pub mod outage;
pub mod verdicts;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde::{Deserialize, Serialize};

use crate::lab::{self, LabOptions};
use crate::lab::{progress, Progress};
use crate::results::Results;
use crate::workload::Workload;
use crate::workload::WorkloadArgs;

/// What to measure and where.
#[derive(Debug, Clone)]
pub struct ClaimsOptions {
    /// The `pushlab` binary (the server of every run).
    pub server_exe: PathBuf,
    /// Folder for the runs.
    pub out: PathBuf,
    /// Shorter runs, fewer clients, outages scaled 1:10 (for tests and trying out).
    pub quick: bool,
    /// The command line, recorded.
    pub command: String,
}

/// The experiments that are not a lab run, saved as `experiments.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Experiments {
    /// The command that made the folder.
    pub command: String,
    /// Whether it was a quick run.
    pub quick: bool,
    /// C16: one per outage length.
    pub outages: Vec<outage::Outage>,
    /// P2: every WebSocket frame of the frame experiment.
    pub frames: Vec<frames::Frame>,
}

/// Everything the verdicts are computed from.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// The folder it was read from.
    pub dir: PathBuf,
    /// `lab/`: the default workload, every transport.
    pub lab: Results,
    /// `network/rtt-*/`: the default workload at several round-trip times.
    pub network: Vec<Results>,
    /// `scale-*/`: short polling and WebSocket at 1 poll and 1 message per second,
    /// ordered by client count.
    pub scale: Vec<Results>,
    /// `resume/`: every client drops its connection periodically.
    pub resume: Results,
    /// `experiments.json`.
    pub experiments: Experiments,
}

/// The flags of each lab run, as a user would type them after `pushlab lab`.
fn lab_runs(quick: bool) -> Vec<(String, Vec<&'static str>)> {
    let mut runs: Vec<(String, Vec<&'static str>)> = vec![
        ("lab".into(), vec![]),
        ("network".into(), vec!["--rtt", "0ms,50ms,150ms"]),
        ("resume".into(), vec!["--drop-every", "1s", "--rate", "50"]),
    ];
    let scale: &[(&str, &'static str)] = if quick {
        &[("scale-50", "50"), ("scale-200", "200")]
    } else {
        &[("scale-1000", "1000"), ("scale-10000", "10000")]
    };
    for (name, clients) in scale {
        runs.push((
            name.to_string(),
            vec![
                "--clients",
                clients,
                "--rate",
                "1",
                "--poll-interval",
                "1s",
                "--transports",
                "short_poll,ws",
                "--idle",
                "5s",
            ],
        ));
    }
    if quick {
        for (_, flags) in &mut runs {
            flags.push("--quick");
            if !flags.contains(&"--clients") {
                flags.extend(["--clients", "20"]);
            }
        }
    }
    runs
}

/// Makes every run and experiment into `options.out`.
pub async fn measure(options: &ClaimsOptions) -> anyhow::Result<()> {
    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        workload: WorkloadArgs,
    }
    for (name, flags) in lab_runs(options.quick) {
        let out = options.out.join(&name);
        let workloads = Flags::try_parse_from(std::iter::once("pushlab").chain(flags.iter().copied()))?
            .workload
            .validate_all()?;
        progress(Progress::Condition(format!("pushlab claims: {name}")));
        let lab_options = LabOptions {
            workload: workloads[0].clone(),
            server_exe: options.server_exe.clone(),
            target: None,
            server_pid: None,
            out: out.clone(),
            command: format!("pushlab lab {} --out {}", flags.join(" "), out.display()),
            stall: None,
        };
        if workloads.len() > 1 {
            lab::run_conditions(&lab_options, workloads).await?;
        } else {
            lab::run(&lab_options).await?;
        }
    }
    // C16: a short outage (the seed's schedule outlasts it) and a long one (it does not).
    let (unit, clients) =
        if options.quick { (Duration::from_millis(100), 10) } else { (Duration::from_secs(1), 50) };
    let mut outages = Vec::new();
    for down in [10.0, 40.0] {
        let seconds = unit.as_secs_f64() * down;
        progress(Progress::Condition(format!("pushlab claims: server outage of {seconds:.1} s")));
        outages.push(outage::run(&options.server_exe, clients, down, unit).await?);
    }
    progress(Progress::Condition("pushlab claims: WebSocket frames".into()));
    let frames = frames::run(&options.server_exe).await?;
    let experiments = Experiments { command: options.command.clone(), quick: options.quick, outages, frames };
    std::fs::write(options.out.join("experiments.json"), serde_json::to_string_pretty(&experiments)? + "\n")?;
    Ok(())
}

impl Evidence {
    /// Reads a folder written by [`measure`].
    pub fn load(dir: &Path) -> anyhow::Result<Evidence> {
        let read = |path: PathBuf| -> anyhow::Result<Results> {
            let text =
                std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let results: Results = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a pushlab results.json", path.display()))?;
            // Every verdict reads the workload typed: a run whose workload does not read
            // is refused here, by name, instead of a field silently reading as 0 later.
            results.setup.typed_workload().with_context(|| format!("the workload in {}", path.display()))?;
            Ok(results)
        };
        let folders = |prefix: &str, under: &Path| -> anyhow::Result<Vec<Results>> {
            let mut runs = Vec::new();
            for entry in std::fs::read_dir(under).with_context(|| format!("reading {}", under.display()))? {
                let path = entry?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if path.is_dir() && name.starts_with(prefix) {
                    runs.push(read(path.join("results.json"))?);
                }
            }
            Ok(runs)
        };
        let mut network = folders("rtt-", &dir.join("network"))?;
        network.sort_by(|a, b| rtt_ms(a).total_cmp(&rtt_ms(b)));
        let mut scale = folders("scale-", dir)?;
        scale.sort_by_key(clients);
        let experiments_path = dir.join("experiments.json");
        let experiments: Experiments = serde_json::from_str(
            &std::fs::read_to_string(&experiments_path)
                .with_context(|| format!("reading {}", experiments_path.display()))?,
        )
        .with_context(|| format!("{} is not a pushlab experiments.json", experiments_path.display()))?;
        anyhow::ensure!(
            !network.is_empty() && !scale.is_empty(),
            "{} lacks the network or scale runs",
            dir.display()
        );
        Ok(Evidence {
            dir: dir.to_path_buf(),
            lab: read(dir.join("lab/results.json"))?,
            network,
            scale,
            resume: read(dir.join("resume/results.json"))?,
            experiments,
        })
    }
}

/// A run's workload, typed. [`Evidence::load`] has checked that every run's reads.
pub fn workload(results: &Results) -> Workload {
    results.setup.typed_workload().expect("Evidence::load checked every workload")
}

/// The emulated round-trip time of a run, ms.
pub fn rtt_ms(results: &Results) -> f64 {
    workload(results).network.rtt.as_micros() as f64 / 1e3
}

/// Subscribers per transport in a run.
pub fn clients(results: &Results) -> u64 {
    workload(results).clients as u64
}
