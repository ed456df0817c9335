//! `pushlab bench`: run a quick lab a few times, compare with a baseline, and exit
//! non-zero on a regression. See `docs/ci.md`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::gate::{self, Condition};
use crate::lab::{self, LabOptions};
use crate::report;
use crate::results::Results;

/// Exit code when every check passed.
pub const PASSED: i32 = 0;
/// Exit code when a metric regressed.
pub const REGRESSED: i32 = 1;

/// A baseline: the runs it was made from, so medians and spreads can be recomputed.
#[derive(Debug, Serialize, Deserialize)]
pub struct Baseline {
    /// Format version.
    pub baseline_version: u32,
    /// The command that made it.
    pub command: String,
    /// The runs.
    pub runs: Vec<Results>,
}

/// What `pushlab bench` was asked to do.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The lab to run (its `out` is the folder for the runs' files).
    pub lab: LabOptions,
    /// Runs to make; timing figures are compared on their median.
    pub repeat: usize,
    /// The baseline file.
    pub baseline: PathBuf,
    /// Write the baseline from this run instead of comparing.
    pub update_baseline: bool,
    /// Compare these saved results (results.json or a baseline file) instead of running.
    pub current: Vec<PathBuf>,
    /// `--threshold METRIC=LIMIT`.
    pub thresholds: Vec<String>,
    /// `--fail-if "METRIC OP VALUE"`.
    pub fail_if: Vec<String>,
    /// Write JUnit XML here.
    pub junit: Option<PathBuf>,
}

/// What `pushlab bench` did, for the binary to print.
#[derive(Debug)]
pub enum Gate {
    /// `--update-baseline`: the baseline was written from this many runs.
    BaselineWritten {
        /// Runs in it.
        runs: usize,
    },
    /// The runs were compared with the baseline.
    Compared {
        /// One line per check and condition.
        outcomes: Vec<gate::Outcome>,
        /// Runs compared.
        runs: usize,
    },
}

impl Gate {
    /// The exit code: [`REGRESSED`] when a check failed, else [`PASSED`].
    pub fn exit_code(&self) -> i32 {
        match self {
            Gate::Compared { outcomes, .. } if outcomes.iter().any(|o| o.verdict == gate::Verdict::Fail) => {
                REGRESSED
            }
            _ => PASSED,
        }
    }
}

/// Runs the gate: writes the baseline, or compares and writes the JUnit XML and the
/// step summary. Errors (a missing baseline, a bad threshold, a run that failed) are
/// `Err`.
pub async fn run(options: &BenchOptions) -> anyhow::Result<Gate> {
    let runs = if options.current.is_empty() { measure(options).await? } else { load_all(&options.current)? };
    if options.update_baseline {
        let baseline = Baseline { baseline_version: 1, command: options.lab.command.clone(), runs };
        std::fs::write(&options.baseline, serde_json::to_string_pretty(&baseline)? + "\n")
            .with_context(|| format!("writing {}", options.baseline.display()))?;
        return Ok(Gate::BaselineWritten { runs: baseline.runs.len() });
    }
    let baseline = load(&options.baseline).with_context(|| {
        format!(
            "no usable baseline at {}; make one with `pushlab bench --update-baseline`",
            options.baseline.display()
        )
    })?;
    let (then, now) = (&baseline[0].setup.workload, &runs[0].setup.workload);
    if !same_workload(then, now) {
        bail!(
            "the baseline was made with a different workload; compare like with like.\n  baseline: {then}\n  now:      {now}"
        );
    }
    let transports: Vec<_> = runs[0].transports.iter().map(|t| t.transport).collect();
    let (base_stats, now_stats) = (gate::stats(&baseline), gate::stats(&runs));
    let mut checks = gate::default_checks(&transports);
    for spec in &options.thresholds {
        gate::apply_threshold(&mut checks, spec, &now_stats, &transports)?;
    }
    let conditions = options
        .fail_if
        .iter()
        .map(|text| Condition::parse(text, &now_stats, &transports))
        .collect::<anyhow::Result<Vec<_>>>()?
        .concat();
    let outcomes = gate::evaluate(&base_stats, &now_stats, &checks, &conditions);

    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .context("$GITHUB_STEP_SUMMARY")?;
        file.write_all(report::gate::markdown(&outcomes, runs.len()).as_bytes())?;
    }
    if let Some(path) = &options.junit {
        std::fs::write(path, report::gate::junit(&outcomes))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(Gate::Compared { outcomes, runs: runs.len() })
}

async fn measure(options: &BenchOptions) -> anyhow::Result<Vec<Results>> {
    let mut runs = Vec::new();
    for i in 1..=options.repeat.max(1) {
        lab::progress(lab::Progress::BenchRun { run: i, of: options.repeat.max(1) });
        let mut lab = options.lab.clone();
        lab.out = options.lab.out.join(format!("run-{i}"));
        runs.push(lab::run(&lab).await?);
    }
    Ok(runs)
}

fn load_all(paths: &[PathBuf]) -> anyhow::Result<Vec<Results>> {
    let mut runs = Vec::new();
    for path in paths {
        runs.extend(load(path)?);
    }
    Ok(runs)
}

/// Reads a baseline file or a single `results.json`.
pub fn load(path: &Path) -> anyhow::Result<Vec<Results>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let runs = if value.get("runs").is_some() {
        serde_json::from_value::<Baseline>(value)?.runs
    } else {
        vec![serde_json::from_value::<Results>(value)?]
    };
    if runs.is_empty() {
        bail!("{} holds no runs", path.display());
    }
    Ok(runs)
}

/// Whether two recorded workloads are the same. A setting added to pushlab after the
/// baseline was made is absent there and `null` or its default now (the link, no loss,
/// the default queue); that is the same workload, so a new setting does not invalidate
/// every baseline. Both are read typed first, which fills in those defaults.
pub fn same_workload(then: &serde_json::Value, now: &serde_json::Value) -> bool {
    let typed = |v: &serde_json::Value| {
        serde_json::from_value::<crate::workload::Workload>(v.clone())
            .ok()
            .and_then(|w| serde_json::to_value(w).ok())
            .unwrap_or_else(|| v.clone())
    };
    same_values(&typed(then), &typed(now))
}

/// Equal, once `null` fields are left out at any depth.
fn same_values(then: &serde_json::Value, now: &serde_json::Value) -> bool {
    fn without_nulls(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => serde_json::Value::Object(
                map.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), without_nulls(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    without_nulls(then) == without_nulls(now)
}

#[cfg(test)]
mod workload_tests {
    use super::same_workload;
    use serde_json::json;

    #[test]
    fn a_setting_added_later_and_left_off_is_the_same_workload() {
        let then = json!({"clients": 100, "network": {"rtt_ms": 0.0}});
        let now = json!({"clients": 100, "drop_every_seconds": null, "network": {"rtt_ms": 0.0}});
        assert!(same_workload(&then, &now));
        assert!(!same_workload(
            &then,
            &json!({"clients": 100, "drop_every_seconds": 1.0, "network": {"rtt_ms": 0.0}})
        ));
        assert!(!same_workload(&then, &json!({"clients": 50, "network": {"rtt_ms": 0.0}})));
    }

    /// The baseline committed before the packet link (no `link`, `loss`, `queue_packets`
    /// or `reorder` in its network) is the same workload as a relay run of today.
    #[test]
    fn network_settings_added_later_take_their_defaults() {
        let text = include_str!("../../results/baseline.json");
        let baseline: serde_json::Value = serde_json::from_str(text).unwrap();
        let then = &baseline["runs"][0]["setup"]["workload"];
        let mut now = then.clone();
        now["network"] = json!({"bandwidth_bytes_per_second": null, "jitter_ms": 0.0, "link": "relay",
            "loss": {"to_clients": {"rate": 0.0}, "to_server": {"rate": 0.0}}, "queue_packets": 1000,
            "reorder": false, "rtt_ms": 0.0});
        assert!(same_workload(then, &now));
        now["network"]["link"] = json!("netns");
        assert!(!same_workload(then, &now), "a run across the packet link is another workload");
    }
}
