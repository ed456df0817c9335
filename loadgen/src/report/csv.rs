//! `summary.csv`: one row per transport, one column per figure, names with units (the
//! same names as in `results.json`). The columns come from the metric registry
//! ([`METRICS`]), so the CSV and the gate name the same figures. Three text columns
//! follow them: `wire_source`, how the `wire_` figures were obtained; `http_version` and
//! `tls_version`, what the connections spoke (empty: not saved, or no TLS).

use crate::results::{Metric, Results, TransportResult, WireSource, METRICS};

/// The CSV's figure columns: the metrics of [`METRICS`] that name a column, in order.
fn columns() -> impl Iterator<Item = (&'static str, &'static Metric)> {
    METRICS.iter().filter_map(|m| m.csv.map(|name| (name, m)))
}

/// A figure as the CSV writes it: whole numbers whole, others with four decimals, and
/// an empty cell for a figure not measured (no server process, no wire figures): an
/// empty cell is "unknown", where 0 would be a measurement.
fn cell(metric: &Metric, t: &TransportResult) -> String {
    match (metric.get)(t) {
        Some(v) if metric.integer => format!("{v:.0}"),
        Some(v) => format!("{v:.4}"),
        None => String::new(),
    }
}

/// `counted`, `estimated`, or empty for a run without wire figures (as in results.json).
fn wire_source(t: &TransportResult) -> &'static str {
    match t.wire.as_ref().map(|w| w.source) {
        Some(WireSource::Counted) => "counted",
        Some(WireSource::Estimated) => "estimated",
        None => "",
    }
}

/// `http_version` and `tls_version`, as negotiated (empty when not saved or no TLS).
fn protocol(t: &TransportResult) -> [String; 2] {
    let p = t.protocol.as_ref();
    [
        p.map_or(String::new(), |p| p.http_version.clone()),
        p.and_then(|p| p.tls_version.clone()).unwrap_or_default(),
    ]
}

fn header() -> String {
    std::iter::once("transport")
        .chain(columns().map(|(name, _)| name))
        .chain(["wire_source", "http_version", "tls_version"])
        .collect::<Vec<_>>()
        .join(",")
}

fn row(t: &TransportResult) -> String {
    std::iter::once(t.transport.name().to_string())
        .chain(columns().map(|(_, m)| cell(m, t)))
        .chain([wire_source(t).to_string()])
        .chain(protocol(t))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> Results {
        serde_json::from_str(include_str!("../../../results/2026-11-22-lab/results.json")).unwrap()
    }

    fn column(csv: &str, name: &str) -> Vec<String> {
        let mut lines = csv.lines();
        let i = lines.next().unwrap().split(',').position(|c| c == name).unwrap_or_else(|| panic!("{name}"));
        lines.map(|l| l.split(',').nth(i).unwrap().to_string()).collect()
    }

    #[test]
    fn a_run_without_wire_has_empty_wire_cells_not_zeros() {
        let csv = render(&reference());
        let width = csv.lines().next().unwrap().split(',').count();
        assert!(csv.lines().all(|l| l.split(',').count() == width), "{csv}");
        for name in ["wire_ip_bytes_per_message", "wire_retransmitted_packets", "wire_source"] {
            assert_eq!(column(&csv, name), vec![""; 4], "{name}");
        }
    }

    #[test]
    fn wire_figures_and_their_source_are_columns() {
        let mut results = reference();
        results.transports[0].wire =
            Some(crate::report::table::wire_tests::wire(WireSource::Estimated, 327.5, 0.0));
        let csv = render(&results);
        assert_eq!(column(&csv, "wire_ip_bytes_per_message")[..2], ["327.5000".to_string(), String::new()]);
        assert_eq!(column(&csv, "wire_retransmitted_packets")[0], "7");
        assert_eq!(column(&csv, "wire_source")[..2], ["estimated".to_string(), String::new()]);
    }

    #[test]
    fn tls_figures_are_empty_cells_without_tls_and_the_protocol_is_named_with_it() {
        let mut results = reference();
        let csv = render(&results);
        for name in ["tls_handshakes", "tls_handshake_p50_ms", "http_bytes_per_message", "http_version"] {
            assert_eq!(column(&csv, name), vec![""; 4], "{name}: a run saved before TLS");
        }
        results.transports[0].protocol = Some(crate::results::ProtocolUsed {
            http_version: "2".into(),
            tls: true,
            alpn: Some("h2".into()),
            tls_version: Some("TLSv1_3".into()),
        });
        let csv = render(&results);
        assert_eq!(column(&csv, "http_version")[..2], ["2".to_string(), String::new()]);
        assert_eq!(column(&csv, "tls_version")[0], "TLSv1_3");
    }
}
