//! The gate's report: a table (metric, baseline, now, change, limit, verdict) for the
//! terminal and Markdown, and JUnit XML for CI systems.

use crate::gate::{Outcome, Stat, Verdict};
use crate::results::Unit;

/// A value in its metric's unit, from the metric registry.
fn value(metric: &str, stat: Option<Stat>) -> String {
    let Some(s) = stat else { return "n/a".into() };
    let unit = crate::gate::metric_of(metric).map(|m| m.unit);
    let one = |v: f64| match unit {
        Some(Unit::Ms) => super::ms(v),
        Some(Unit::Bytes) => format!("{v:.1} B"),
        Some(Unit::Us) => format!("{v:.2} µs"),
        _ if v.fract() == 0.0 => format!("{v:.0}"),
        _ => format!("{v:.3}"),
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
    let mut rows: Vec<Vec<String>> = vec![HEADERS.map(String::from).to_vec()];
    rows.extend(outcomes.iter().map(|o| cells(o).to_vec()));
    super::align(&rows.iter().map(Vec::as_slice).collect::<Vec<_>>()) + &summary(outcomes, runs)
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
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|o| {
            let mut c = cells(o);
            if o.verdict == Verdict::Fail {
                c[5] = "**FAIL**".into();
            }
            c.to_vec()
        })
        .collect();
    out += &super::markdown_table(&HEADERS.map(String::from), &rows);
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
