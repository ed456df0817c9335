//! `summary.csv`: one row per transport, one column per figure, names with units (the
//! same names as in `results.json`). The columns come from the metric registry
//! ([`METRICS`]), so the CSV and the gate name the same figures.

use crate::results::{Metric, Results, TransportResult, METRICS};

/// The CSV's figure columns: the metrics of [`METRICS`] that name a column, in order.
fn columns() -> impl Iterator<Item = (&'static str, &'static Metric)> {
    METRICS.iter().filter_map(|m| m.csv.map(|name| (name, m)))
}

/// A figure as the CSV writes it: whole numbers whole, others with four decimals, and
/// an empty cell for a figure not measured (no server process).
fn cell(metric: &Metric, t: &TransportResult) -> String {
    match (metric.get)(t) {
        Some(v) if metric.integer => format!("{v:.0}"),
        Some(v) => format!("{v:.4}"),
        None => String::new(),
    }
}

fn header() -> String {
    std::iter::once("transport").chain(columns().map(|(name, _)| name)).collect::<Vec<_>>().join(",")
}

fn row(t: &TransportResult) -> String {
    std::iter::once(t.transport.name().to_string())
        .chain(columns().map(|(_, m)| cell(m, t)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The CSV text.
pub fn render(results: &Results) -> String {
    let mut out = header() + "\n";
    for t in &results.transports {
        out += &row(t);
        out.push('\n');
    }
    out
}

/// `sweep.csv`: the rows of every condition, each led by its condition's name.
pub fn render_sweep(runs: &[Results]) -> String {
    let mut out = format!("condition,{}\n", header());
    for results in runs {
        let condition = super::table::condition_name(results);
        for t in &results.transports {
            out += &format!("{condition},{}\n", row(t));
        }
    }
    out
}
