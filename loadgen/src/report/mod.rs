//! Reports of a run, one file per format: the comparison table (terminal and Markdown,
//! `table.rs`), CSV (`csv.rs`) and SVG plots (`plots.rs`). All of them read the same
//! [`Results`](crate::results::Results); none measures anything.

pub mod csv;
pub mod gate;
pub mod html;
pub mod plots;
pub mod table;

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::results::Results;

/// Writes `results.json`, `summary.md`, `summary.csv`, the plots and `index.html` into
/// `dir`.
pub fn write_all(results: &Results, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(results)?;
    std::fs::write(dir.join("results.json"), json + "\n")?;
    std::fs::write(dir.join("summary.md"), table::markdown(results))?;
    std::fs::write(dir.join("summary.csv"), csv::render(results))?;
    plots::latency_percentiles(results, &dir.join("latency.svg"))?;
    plots::cost_per_message(results, &dir.join("cost.svg"))?;
    let svg = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    std::fs::write(dir.join("index.html"), html::run(results, &[svg("latency.svg"), svg("cost.svg")]))?;
    Ok(())
}

/// `sweep.json`: every condition of a sweep with its full results, for scripts.
#[derive(Debug, Serialize, Deserialize)]
pub struct SweepFile {
    /// One entry per condition, in the order run.
    pub conditions: Vec<SweepCondition>,
}

/// One condition of a sweep.
#[derive(Debug, Serialize, Deserialize)]
pub struct SweepCondition {
    /// Its name, also its folder: `rtt-50ms`, `poll-500ms`.
    pub condition: String,
    /// Its results, as in its folder's `results.json`.
    pub results: Results,
}

/// Writes a sweep's combined files into `dir`: `summary.md` comparing the conditions,
/// `sweep.json`, `sweep.csv`, `sweep.svg` and `index.html`.
pub fn write_sweep(runs: &[Results], dir: &Path, command: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut summary = format!("# pushlab results {}\n\n", table::sweep_title(runs));
    summary += &format!(
        "Command: `{command}`\n\nEach condition's full results are in its folder; `sweep.svg` plots them.\n\n```\n"
    );
    summary += &table::conditions(runs);
    summary += "```\n";
    std::fs::write(dir.join("summary.md"), summary)?;
    let file = SweepFile {
        conditions: runs
            .iter()
            .map(|r| SweepCondition { condition: table::condition_name(r), results: r.clone() })
            .collect(),
    };
    std::fs::write(dir.join("sweep.json"), serde_json::to_string_pretty(&file)? + "\n")?;
    std::fs::write(dir.join("sweep.csv"), csv::render_sweep(runs))?;
    plots::sweep(runs, &dir.join("sweep.svg"))?;
    let svg = std::fs::read_to_string(dir.join("sweep.svg")).unwrap_or_default();
    std::fs::write(dir.join("index.html"), html::sweep(runs, command, &svg))?;
    Ok(())
}

/// What a saved path holds, for `pushlab report`.
#[derive(Debug)]
pub enum Saved {
    /// One run (`results.json`).
    Run(Box<Results>),
    /// A sweep: one run per condition.
    Sweep(Vec<Results>),
    /// A `--find-max` search (`saturation.json`).
    Saturation(Vec<crate::results::Curve>),
}

/// Reads a run's folder or `results.json`, a sweep's folder or `sweep.json`, or a
/// find-max folder or `saturation.json`.
pub fn open(path: &Path) -> anyhow::Result<Saved> {
    if path.is_dir() {
        for name in ["results.json", "sweep.json", "saturation.json"] {
            if path.join(name).is_file() {
                return open(&path.join(name));
            }
        }
        // A sweep written before sweep.json existed: a folder of runs.
        let mut runs = Vec::new();
        let mut folders: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("results.json").is_file())
            .collect();
        folders.sort();
        for folder in folders {
            match open(&folder.join("results.json"))? {
                Saved::Run(results) => runs.push(*results),
                _ => unreachable!("a results.json is a run"),
            }
        }
        // The conditions in the order they were run, not alphabetical (rtt-150ms < rtt-50ms).
        runs.sort_by(|a, b| a.setup.started_at.cmp(&b.setup.started_at));
        anyhow::ensure!(
            !runs.is_empty(),
            "{} holds no results.json, sweep.json or saturation.json (nor folders with one)",
            path.display()
        );
        return Ok(Saved::Sweep(runs));
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let what = |kind: &str| format!("{} looks like {kind} but does not read as one", path.display());
    if value.is_array() {
        return Ok(Saved::Saturation(
            serde_json::from_value(value).with_context(|| what("a saturation.json"))?,
        ));
    }
    if value.get("conditions").is_some() {
        let file: SweepFile = serde_json::from_value(value).with_context(|| what("a sweep.json"))?;
        return Ok(Saved::Sweep(file.conditions.into_iter().map(|c| c.results).collect()));
    }
    if value.get("transports").is_some() {
        return Ok(Saved::Run(Box::new(
            serde_json::from_value(value).with_context(|| what("a results.json"))?,
        )));
    }
    anyhow::bail!("{} is not a pushlab results.json, sweep.json or saturation.json", path.display())
}

/// Aligns rows of cells into left-aligned columns two spaces apart, without trailing
/// spaces: the one column aligner of the reports (comparison table, sweep table, gate).
pub fn align(rows: &[&[String]]) -> String {
    let columns = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            let text = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ");
            text.trim_end().to_string() + "\n"
        })
        .collect()
}

/// A Markdown table: the one writer of the reports' tables (`summary.md`, the gate's
/// step summary, the saturation search).
pub fn markdown_table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|{}\n", header.join(" | "), " --- |".repeat(header.len()));
    for row in rows {
        out += &format!("| {} |\n", row.join(" | "));
    }
    out
}

/// Human units: `0.42 ms`, `251 ms`, `1.23 s`.
pub fn ms(value: f64) -> String {
    if value >= 1000.0 {
        format!("{:.2} s", value / 1000.0)
    } else if value >= 100.0 {
        format!("{value:.0} ms")
    } else if value >= 10.0 {
        format!("{value:.1} ms")
    } else {
        format!("{value:.2} ms")
    }
}

/// Human units for bytes: `871 B`, `12.3 KB`, `86.4 MB` (powers of 1000, like the seed).
pub fn bytes(value: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = value;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(ms(0.4234), "0.42 ms");
        assert_eq!(ms(251.2), "251 ms");
        assert_eq!(ms(1234.0), "1.23 s");
        assert_eq!(bytes(871.0), "871 B");
        assert_eq!(bytes(86_400_000.0), "86.4 MB");
    }
}
