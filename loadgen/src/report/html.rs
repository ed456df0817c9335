//! `index.html`: one self-contained page per run or sweep, for people who would rather
//! open a file than read a terminal. Everything is inline (styles, the SVG plots): no
//! script, no font, no request leaves the page, so it works offline and as a CI artifact.

use super::{ms, table};
use crate::results::Results;

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

/// The page of one run; `svgs` are its plots' SVG texts, inlined in order.
pub fn run(results: &Results, svgs: &[String]) -> String {
    let mut body = String::from("<h2>Comparison</h2>\n");
    body += &comparison(results);
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
}
