//! The gate's report: a table (metric, baseline, now, change, limit, verdict) for the
//! terminal and Markdown, and JUnit XML for CI systems.

use crate::gate::{Outcome, Stat, Verdict};

fn value(metric: &str, stat: Option<Stat>) -> String {
    let Some(s) = stat else { return "n/a".into() };
    let one = |v: f64| {
        if metric.ends_with("_ms") {
            super::ms(v)
        } else if metric.contains("bytes") {
            format!("{v:.1} B")
        } else if metric.contains("_us_") {
            format!("{v:.2} µs")
        } else if v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.3}")
        }
    };
    let (low, high) = (one(s.min), one(s.max));
    if s.runs > 1 && low != high {
        format!("{} [{low}–{high}]", one(s.median))
    } else {
        one(s.median)
    }
}

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "FAIL",
        Verdict::Skipped => "skipped",
    }
}

fn cells(o: &Outcome) -> [String; 6] {
    [
        o.metric.clone(),
        value(&o.metric, o.baseline),
        value(&o.metric, o.now),
        o.change.map_or(String::new(), |c| format!("{:+.1}%", c * 100.0)),
        o.limit.clone(),
        verdict(o.verdict).to_string(),
    ]
}

const HEADERS: [&str; 6] = ["metric", "baseline", "now", "change", "limit", "verdict"];

/// Aligned text, then a line saying how many failed.
pub fn terminal(outcomes: &[Outcome], runs: usize) -> String {
    let rows: Vec<[String; 6]> = outcomes.iter().map(cells).collect();
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([HEADERS[i].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(HEADERS.to_vec()) + "\n";
    for row in &rows {
        out += &line(row.iter().map(String::as_str).collect());
        out += "\n";
    }
    out += &summary(outcomes, runs);
    out
}

fn summary(outcomes: &[Outcome], runs: usize) -> String {
    let failed = outcomes.iter().filter(|o| o.verdict == Verdict::Fail).count();
    format!(
        "{} checks, {failed} failed. Values are medians of {runs} run(s) [min–max where they differ]; \
         timing limits are ratios to the baseline's median.\n",
        outcomes.len()
    )
}

/// The same table in Markdown, for `$GITHUB_STEP_SUMMARY`.
pub fn markdown(outcomes: &[Outcome], runs: usize) -> String {
    let failed = outcomes.iter().any(|o| o.verdict == Verdict::Fail);
    let mut out = format!("## pushlab bench: {}\n\n", if failed { "regression" } else { "no regression" });
    out += &format!("| {} |\n|{}\n", HEADERS.join(" | "), " --- |".repeat(6));
    for o in outcomes {
        let mut c = cells(o);
        if o.verdict == Verdict::Fail {
            c[5] = "**FAIL**".into();
        }
        out += &format!("| {} |\n", c.join(" | "));
    }
    out += "\n";
    out += &summary(outcomes, runs);
    out
}

/// JUnit XML: one test case per check, a failure for each regression.
pub fn junit(outcomes: &[Outcome]) -> String {
    let escape =
        |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let failures = outcomes.iter().filter(|o| o.verdict == Verdict::Fail).count();
    let skipped = outcomes.iter().filter(|o| o.verdict == Verdict::Skipped).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out += &format!(
        "<testsuites><testsuite name=\"pushlab bench\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">\n",
        outcomes.len()
    );
    for o in outcomes {
        let [metric, baseline, now, change, limit, _] = cells(o);
        let name = escape(&format!("{metric} ({limit})"));
        out += &format!("  <testcase classname=\"pushlab.bench\" name=\"{name}\">");
        match o.verdict {
            Verdict::Fail => {
                let message =
                    escape(&format!("{metric}: now {now}, baseline {baseline} ({change}), limit {limit}"));
                out += &format!("<failure message=\"{message}\"/>");
            }
            Verdict::Skipped => out += "<skipped/>",
            Verdict::Pass => {}
        }
        out += "</testcase>\n";
    }
    out += "</testsuite></testsuites>\n";
    out
}
