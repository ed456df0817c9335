//! `index.html`: one self-contained page per run or sweep, for people who would rather
//! open a file than read a terminal. Everything is inline (styles, the SVG plots): no
//! script, no font, no request leaves the page, so it works offline and as a CI artifact.

use super::{bytes, ms, table};
use crate::results::{Results, Wire, WireSource};

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out += "&amp;",
            '<' => out += "&lt;",
            '>' => out += "&gt;",
            '"' => out += "&quot;",
            '\'' => out += "&#39;",
            c => out.push(c),
        }
    }
    out
}

/// An SVG file's text as an inline element: its XML declaration, if any, must go.
fn inline_svg(svg: &str) -> String {
    match svg.find("<svg") {
        Some(start) => format!("<figure>{}</figure>\n", &svg[start..]),
        None => String::new(),
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}code,pre{background:#f7f7f7;padding:.1em .3em}pre{padding:.8em;overflow-x:auto}\
figure{margin:1em 0}figure svg{max-width:100%;height:auto}.warn{color:#a40}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n{body}</body>\n</html>\n",
        escape(title),
        escape(title)
    )
}

/// A table from a header and rows of cells.
fn html_table(header: &[String], rows: &[Vec<String>]) -> String {
    let cells = |tag: &str, row: &[String]| {
        row.iter().map(|c| format!("<{tag}>{}</{tag}>", escape(c))).collect::<String>()
    };
    let mut out = format!("<table>\n<tr>{}</tr>\n", cells("th", header));
    for row in rows {
        out += &format!("<tr>{}</tr>\n", cells("td", row));
    }
    out + "</table>\n"
}

fn setup(results: &Results) -> String {
    let s = &results.setup;
    let rows = vec![
        vec!["command".into(), s.command.clone()],
        vec!["started".into(), s.started_at.clone()],
        vec![
            "pushlab".into(),
            format!("{} (commit {})", s.pushlab_version, s.git_commit.as_deref().unwrap_or("unknown")),
        ],
        vec![
            "machine".into(),
            format!("{} ({} cores), kernel {}", s.machine.cpu_model, s.machine.cores, s.machine.kernel),
        ],
        vec!["server".into(), s.target.clone()],
        vec!["workload".into(), table::workload_line(results)],
    ];
    html_table(&["setting".into(), "value".into()], &rows)
}

fn warnings(results: &Results) -> String {
    if results.warnings.is_empty() {
        return "<p>No warnings.</p>\n".into();
    }
    let items: String =
        results.warnings.iter().map(|w| format!("<li class=\"warn\">{}</li>\n", escape(w))).collect();
    format!("<ul>\n{items}</ul>\n")
}

fn comparison(results: &Results) -> String {
    let mut header = vec!["aspect".to_string()];
    header.extend(results.transports.iter().map(|t| t.transport.name().to_string()));
    header.push("measured".into());
    let rows: Vec<Vec<String>> = table::rows(results)
        .into_iter()
        .map(|row| {
            let mut cells = vec![row.aspect];
            cells.extend(row.cells);
            cells.push(row.verdict);
            cells
        })
        .collect();
    html_table(&header, &rows)
}

fn percentiles(results: &Results) -> String {
    let header: Vec<String> =
        ["transport", "samples", "mean", "p50", "p90", "p99", "p99.9", "max"].map(String::from).into();
    let rows: Vec<Vec<String>> = results
        .transports
        .iter()
        .map(|t| {
            let l = &t.latency;
            vec![
                t.transport.name().to_string(),
                l.samples.to_string(),
                ms(l.mean_ms),
                ms(l.p50_ms),
                ms(l.p90_ms),
                ms(l.p99_ms),
                ms(l.p999_ms),
                ms(l.max_ms),
            ]
        })
        .collect();
    html_table(&header, &rows)
}

/// What the link saw per transport, one figure a row (absent: the run has no wire
/// figures). The cost figures of the comparison are per message; these are the counts
/// behind them, each way, over the measured window.
fn wire(results: &Results) -> String {
    if results.transports.iter().all(|t| t.wire.is_none()) {
        return String::new();
    }
    let mut header = vec!["on the wire".to_string()];
    header.extend(results.transports.iter().map(|t| t.transport.name().to_string()));
    // A counter of each direction: `to server / to clients`.
    fn both(w: &Wire, f: fn(&crate::results::DirectionCount) -> u64) -> String {
        format!("{} / {}", f(&w.to_server), f(&w.to_clients))
    }
    /// How one figure of the table reads a transport's wire figures.
    type Figure = fn(&Wire) -> String;
    let figures: Vec<(&str, Figure)> = vec![
        ("source", |w| match w.source {
            WireSource::Counted => "counted by the packet link".into(),
            WireSource::Estimated => "estimated from TCP segment counts (relay)".into(),
        }),
        ("IP bytes per message", |w| bytes(w.ip_bytes_per_message)),
        ("TCP/IP headers per message", |w| bytes(w.header_bytes_per_message)),
        ("packets per message", |w| format!("{:.2}", w.packets_per_message)),
        ("idle IP bytes per client per day", |w| bytes(w.idle_ip_bytes_per_client_per_day)),
        ("idle packets per client per second", |w| format!("{:.2}", w.idle_packets_per_client_per_second)),
        ("packets (to server / to clients)", |w| both(w, |d| d.packets)),
        ("IP bytes (to server / to clients)", |w| both(w, |d| d.ip_bytes)),
        ("payload bytes (to server / to clients)", |w| both(w, |d| d.payload_bytes)),
        ("pure ACKs (to server / to clients)", |w| both(w, |d| d.pure_acks)),
        ("handshake packets (to server / to clients)", |w| both(w, |d| d.handshake_packets)),
        ("teardown packets (to server / to clients)", |w| both(w, |d| d.teardown_packets)),
        ("retransmitted (to server / to clients)", |w| both(w, |d| d.retransmitted_packets)),
        ("dropped by loss (to server / to clients)", |w| both(w, |d| d.dropped_by_loss)),
        ("dropped by a full queue (to server / to clients)", |w| both(w, |d| d.dropped_by_queue)),
        ("link CPU per packet", |w| {
            w.link_cpu_us_per_packet.map_or("n/a".into(), |us| format!("{us:.1} µs"))
        }),
    ];
    let rows: Vec<Vec<String>> = figures
        .iter()
        .map(|(name, f)| {
            let mut row = vec![name.to_string()];
            row.extend(results.transports.iter().map(|t| t.wire.as_ref().map_or("n/a".into(), f)));
            row
        })
        .collect();
    html_table(&header, &rows)
}

/// The page of one run; `svgs` are its plots' SVG texts, inlined in order.
pub fn run(results: &Results, svgs: &[String]) -> String {
    let mut body = String::from("<h2>Comparison</h2>\n");
    body += &comparison(results);
    let wire = wire(results);
    if !wire.is_empty() {
        body += "<h2>On the wire</h2>\n";
        body += &wire;
    }
    body += "<h2>Warnings</h2>\n";
    body += &warnings(results);
    body += "<h2>Latency percentiles</h2>\n";
    body += &percentiles(results);
    body += "<h2>Plots</h2>\n";
    body += &svgs.iter().map(|svg| inline_svg(svg)).collect::<String>();
    body += "<h2>Setup</h2>\n";
    body += &setup(results);
    page("pushlab results", &body)
}

/// The page of a sweep: the comparison across conditions, the sweep plot, then each
/// condition's table, warnings and percentiles.
pub fn sweep(runs: &[Results], command: &str, svg: &str) -> String {
    let mut body = format!("<p>Command: <code>{}</code></p>\n", escape(command));
    body += &format!("<pre>{}</pre>\n", escape(&table::conditions(runs)));
    body += &inline_svg(svg);
    for results in runs {
        body += &format!("<h2>{}</h2>\n", escape(&table::condition_name(results)));
        body += &comparison(results);
        body += &wire(results);
        body += &warnings(results);
        body += &percentiles(results);
    }
    if let Some(first) = runs.first() {
        body += "<h2>Setup (first condition)</h2>\n";
        body += &setup(first);
    }
    page(&format!("pushlab results {}", table::sweep_title(runs)), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_svg_declarations_dropped() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(inline_svg("<?xml version=\"1.0\"?>\n<svg></svg>"), "<figure><svg></svg></figure>\n");
        assert_eq!(inline_svg("not a plot"), "");
    }

    fn reference() -> Results {
        serde_json::from_str(include_str!("../../../results/2026-11-22-lab/results.json")).unwrap()
    }

    #[test]
    fn the_page_lists_the_wire_figures_where_the_run_has_them() {
        let mut results = reference();
        assert!(!run(&results, &[]).contains("On the wire"), "a run without wire has no such section");
        for t in &mut results.transports {
            t.wire = Some(table::wire_tests::wire(WireSource::Estimated, 327.0, 1e6));
        }
        let page = run(&results, &[]);
        assert!(page.contains("<h2>On the wire</h2>"));
        assert!(page.contains("<td>IP bytes per message</td><td>327 B</td>"), "{page}");
        assert!(page.contains("estimated from TCP segment counts (relay)"));
        assert!(page.contains("~327 B ("), "the comparison's cost row is on the wire");
    }
}
