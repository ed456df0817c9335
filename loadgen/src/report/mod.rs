//! Reports of a run, one file per format: the comparison table (terminal and Markdown,
//! `table.rs`), CSV (`csv.rs`) and SVG plots (`plots.rs`). All of them read the same
//! [`Results`](crate::results::Results); none measures anything.

pub mod csv;
pub mod gate;
pub mod plots;
pub mod table;

use std::path::Path;

use anyhow::Context;

use crate::results::Results;

/// Writes `results.json`, `summary.md`, `summary.csv` and the plots into `dir`.
pub fn write_all(results: &Results, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(results)?;
    std::fs::write(dir.join("results.json"), json + "\n")?;
    std::fs::write(dir.join("summary.md"), table::markdown(results))?;
    std::fs::write(dir.join("summary.csv"), csv::render(results))?;
    plots::latency_percentiles(results, &dir.join("latency.svg"))?;
    plots::cost_per_message(results, &dir.join("cost.svg"))?;
    Ok(())
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
