//! The regression gate behind `pushlab bench`: compare a run (or several) with a
//! baseline and decide, metric by metric, whether it regressed.
//!
//! Two kinds of figure, two kinds of comparison:
//!
//! - **Deterministic** figures (bytes and requests per delivered message, messages lost
//!   or duplicated) come out the same on every run of the same code; they are compared
//!   tightly: any loss fails, bytes may grow 5 %.
//! - **Timing** figures (latency percentiles, CPU per message) move with whatever else
//!   the machine is doing; they are compared as *ratios* with wide limits, on the median
//!   of repeated runs, and the report shows the spread it saw.
//!
//! Metrics are named by their path in `results.json`, e.g. `ws.latency.p99_ms`.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{bail, Context};
use pushlab_server::Transport;
use serde_json::Value;

use crate::results::Results;

/// One metric's value over repeated runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// Median over the runs.
    pub median: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Number of runs.
    pub runs: usize,
}

/// Every numeric figure of every transport, by name (`ws.latency.p99_ms`).
pub fn flatten(results: &Results) -> BTreeMap<String, f64> {
    fn walk(prefix: &str, value: &Value, out: &mut BTreeMap<String, f64>) {
        match value {
            Value::Number(n) => {
                if let Some(v) = n.as_f64() {
                    out.insert(prefix.to_string(), v);
                }
            }
            Value::Object(map) => {
                for (key, value) in map {
                    walk(&format!("{prefix}.{key}"), value, out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    for t in &results.transports {
        if let Ok(value) = serde_json::to_value(t) {
            walk(t.transport.name(), &value, &mut out);
        }
    }
    out
}

/// Median, minimum and maximum of each metric over `runs`.
pub fn stats(runs: &[Results]) -> BTreeMap<String, Stat> {
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for run in runs {
        for (name, value) in flatten(run) {
            values.entry(name).or_default().push(value);
        }
    }
    values
        .into_iter()
        .map(|(name, mut v)| {
            v.sort_by(f64::total_cmp);
            let median =
                if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0 };
            (name, Stat { median, min: v[0], max: v[v.len() - 1], runs: v.len() })
        })
        .collect()
}

/// How far a metric may move against the baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// Now (worst run) ≤ this value, whatever the baseline: `lost=0`.
    AtMost(f64),
    /// Now (median) ≤ baseline × (1 + fraction): `+5%`.
    Grow(f64),
    /// Now (median) ≤ baseline × factor: `x2`.
    Ratio(f64),
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::AtMost(v) => write!(f, "≤ {v}"),
            Limit::Grow(g) => write!(f, "+{}%", g * 100.0),
            Limit::Ratio(r) => write!(f, "×{r}"),
        }
    }
}

impl Limit {
    /// `+5%`, `x2` (or `×2`), or a number (an absolute maximum).
    pub fn parse(text: &str) -> anyhow::Result<Limit> {
        let text = text.trim();
        if let Some(percent) = text.strip_prefix('+').and_then(|t| t.strip_suffix('%')) {
            return Ok(Limit::Grow(percent.trim().parse::<f64>().context("in +N%")? / 100.0));
        }
        if let Some(factor) = text.strip_prefix('x').or_else(|| text.strip_prefix('×')) {
            return Ok(Limit::Ratio(factor.trim().parse().context("in xN")?));
        }
        text.parse()
            .map(Limit::AtMost)
            .with_context(|| format!("limit {text:?}: expected +N%, xN or a number"))
    }
}

/// One metric compared with its baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Full metric name.
    pub metric: String,
    /// Its limit.
    pub limit: Limit,
}

/// The checks `pushlab bench` makes unless told otherwise, for each transport run.
pub fn default_checks(transports: &[Transport]) -> Vec<Check> {
    const DEFAULTS: [(&str, Limit); 8] = [
        ("delivery.lost", Limit::AtMost(0.0)),
        ("delivery.lost_untold", Limit::AtMost(0.0)),
        ("delivery.duplicated", Limit::AtMost(0.0)),
        ("traffic.bytes_per_message", Limit::Grow(0.05)),
        ("traffic.requests_per_message", Limit::Grow(0.05)),
        ("latency.p50_ms", Limit::Ratio(2.5)),
        ("latency.p99_ms", Limit::Ratio(4.0)),
        ("server.cpu_us_per_message", Limit::Ratio(3.0)),
    ];
    transports
        .iter()
        .flat_map(|t| {
            DEFAULTS.iter().map(move |(m, limit)| Check { metric: format!("{t}.{m}"), limit: *limit })
        })
        .collect()
}

/// Resolves a user's metric name against the known ones: the transport may be left out
/// (then it means every transport) and the unit suffix may be left out
/// (`ws.latency.p99` is `ws.latency.p99_ms`).
pub fn resolve(
    name: &str,
    known: &BTreeMap<String, Stat>,
    transports: &[Transport],
) -> anyhow::Result<Vec<String>> {
    let name = name.trim();
    let qualified: Vec<String> = match name.split_once('.') {
        Some((first, _)) if first.parse::<Transport>().is_ok() => vec![name.to_string()],
        _ => transports.iter().map(|t| format!("{t}.{name}")).collect(),
    };
    qualified
        .into_iter()
        .map(|q| {
            if known.contains_key(&q) {
                return Ok(q);
            }
            let matches: Vec<&String> = known.keys().filter(|k| k.starts_with(&format!("{q}_"))).collect();
            match matches.as_slice() {
                [one] => Ok((*one).clone()),
                [] => bail!("unknown metric {q:?} (names are paths in results.json, e.g. ws.latency.p99_ms)"),
                many => bail!(
                    "{q:?} is ambiguous: {}",
                    many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            }
        })
        .collect()
}

/// `--threshold METRIC=LIMIT`: replaces the default check of those metrics or adds one.
pub fn apply_threshold(
    checks: &mut Vec<Check>,
    spec: &str,
    known: &BTreeMap<String, Stat>,
    transports: &[Transport],
) -> anyhow::Result<()> {
    let (metric, limit) =
        spec.split_once('=').with_context(|| format!("--threshold {spec:?}: expected METRIC=LIMIT"))?;
    let limit = Limit::parse(limit).with_context(|| format!("--threshold {spec:?}"))?;
    for metric in resolve(metric, known, transports).with_context(|| format!("--threshold {spec:?}"))? {
        checks.retain(|c| c.metric != metric);
        checks.push(Check { metric, limit });
    }
    Ok(())
}

/// `--fail-if "ws.latency.p99 > 5ms"`: an absolute condition on this run, like a k6
/// threshold. True means failure.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The text as given.
    pub text: String,
    /// Full metric name.
    pub metric: String,
    /// Comparison.
    pub op: &'static str,
    /// Value in the metric's own unit.
    pub value: f64,
}

impl Condition {
    /// Parses `METRIC OP VALUE[UNIT]` with OP one of `> >= < <= == !=` and UNIT one of
    /// `us µs ms s` (time metrics) or `B KB MB` (byte metrics), or none.
    pub fn parse(
        text: &str,
        known: &BTreeMap<String, Stat>,
        transports: &[Transport],
    ) -> anyhow::Result<Vec<Condition>> {
        let context =
            || format!("--fail-if {text:?}: expected METRIC OP VALUE, e.g. \"ws.latency.p99 > 5ms\"");
        let op = [">=", "<=", "==", "!=", ">", "<"]
            .into_iter()
            .find(|op| text.contains(op))
            .with_context(context)?;
        let (metric, value) = text.split_once(op).with_context(context)?;
        let value = value.trim();
        let split =
            value.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-')).unwrap_or(value.len());
        let (number, unit) = value.split_at(split);
        let number: f64 = number.parse().with_context(context)?;
        resolve(metric, known, transports)
            .with_context(context)?
            .into_iter()
            .map(|metric| {
                let scale = unit_scale(&metric, unit.trim()).with_context(context)?;
                Ok(Condition { text: text.to_string(), metric, op, value: number * scale })
            })
            .collect()
    }

    fn holds(&self, now: f64) -> bool {
        match self.op {
            ">" => now > self.value,
            ">=" => now >= self.value,
            "<" => now < self.value,
            "<=" => now <= self.value,
            "==" => now == self.value,
            _ => now != self.value,
        }
    }
}

/// Factor from `unit` to the unit `metric` is stored in.
fn unit_scale(metric: &str, unit: &str) -> anyhow::Result<f64> {
    let time_ms = metric.ends_with("_ms");
    let time_us = metric.contains("_us_");
    let bytes = metric.contains("bytes");
    Ok(match (unit, time_ms, time_us, bytes) {
        ("", ..) => 1.0,
        ("us" | "µs", true, _, _) => 1e-3,
        ("ms", true, _, _) => 1.0,
        ("s", true, _, _) => 1e3,
        ("us" | "µs", _, true, _) => 1.0,
        ("ms", _, true, _) => 1e3,
        ("B", _, _, true) => 1.0,
        ("KB", _, _, true) => 1e3,
        ("MB", _, _, true) => 1e6,
        _ => bail!("unit {unit:?} does not fit metric {metric}"),
    })
}

/// The verdict on one line of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within its limit.
    Pass,
    /// Regressed.
    Fail,
    /// Not measured in the baseline or in this run (e.g. no server CPU for a remote
    /// target): neither pass nor fail.
    Skipped,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Metric name.
    pub metric: String,
    /// Baseline value, if compared with one.
    pub baseline: Option<Stat>,
    /// This run's value.
    pub now: Option<Stat>,
    /// What was allowed.
    pub limit: String,
    /// Now ÷ baseline − 1.
    pub change: Option<f64>,
    /// Verdict.
    pub verdict: Verdict,
}

/// Evaluates every check and condition.
pub fn evaluate(
    baseline: &BTreeMap<String, Stat>,
    now: &BTreeMap<String, Stat>,
    checks: &[Check],
    conditions: &[Condition],
) -> Vec<Outcome> {
    let mut out = Vec::new();
    for check in checks {
        let (b, n) = (baseline.get(&check.metric).copied(), now.get(&check.metric).copied());
        let change = match (b, n) {
            (Some(b), Some(n)) if b.median != 0.0 => Some(n.median / b.median - 1.0),
            _ => None,
        };
        let verdict = match (check.limit, b, n) {
            (Limit::AtMost(max), _, Some(n)) => pass_if(n.max <= max),
            // A figure that was 0 and still is has not grown.
            (Limit::Grow(g), Some(b), Some(n)) => pass_if(n.median <= b.median * (1.0 + g) + 1e-9),
            (Limit::Ratio(r), Some(b), Some(n)) => pass_if(n.median <= b.median * r + 1e-9),
            _ => Verdict::Skipped,
        };
        out.push(Outcome {
            metric: check.metric.clone(),
            baseline: b,
            now: n,
            limit: check.limit.to_string(),
            change,
            verdict,
        });
    }
    for condition in conditions {
        let n = now.get(&condition.metric).copied();
        let verdict = match n {
            Some(n) => pass_if(!condition.holds(n.median)),
            None => Verdict::Skipped,
        };
        out.push(Outcome {
            metric: condition.metric.clone(),
            baseline: None,
            now: n,
            limit: format!("fail if {} {}", condition.op, condition.value),
            change: None,
            verdict,
        });
    }
    out
}

fn pass_if(ok: bool) -> Verdict {
    if ok {
        Verdict::Pass
    } else {
        Verdict::Fail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(names: &[(&str, f64)]) -> BTreeMap<String, Stat> {
        names.iter().map(|(n, v)| (n.to_string(), Stat { median: *v, min: *v, max: *v, runs: 1 })).collect()
    }

    #[test]
    fn limits_parse() {
        assert_eq!(Limit::parse("+5%").unwrap(), Limit::Grow(0.05));
        assert_eq!(Limit::parse("x2").unwrap(), Limit::Ratio(2.0));
        assert_eq!(Limit::parse("0").unwrap(), Limit::AtMost(0.0));
        assert!(Limit::parse("lots").is_err());
    }

    #[test]
    fn names_resolve_without_transport_or_unit() {
        let k =
            known(&[("ws.latency.p99_ms", 1.0), ("sse.latency.p99_ms", 1.0), ("ws.latency.p999_ms", 1.0)]);
        let all = [Transport::Sse, Transport::Ws];
        assert_eq!(resolve("ws.latency.p99", &k, &all).unwrap(), vec!["ws.latency.p99_ms"]);
        assert_eq!(
            resolve("latency.p99_ms", &k, &all).unwrap(),
            vec!["sse.latency.p99_ms", "ws.latency.p99_ms"]
        );
        assert!(resolve("ws.latency.p98", &k, &all).is_err());
    }

    #[test]
    fn conditions_convert_units() {
        let k = known(&[("ws.latency.p99_ms", 4.0)]);
        let c = Condition::parse("ws.latency.p99 > 5ms", &k, &[Transport::Ws]).unwrap().remove(0);
        assert_eq!((c.op, c.value), (">", 5.0));
        let c = Condition::parse("ws.latency.p99 >= 0.004s", &k, &[Transport::Ws]).unwrap().remove(0);
        assert_eq!(c.value, 4.0);
        assert!(Condition::parse("ws.latency.p99 > 5KB", &k, &[Transport::Ws]).is_err());
        assert!(Condition::parse("nonsense", &k, &[Transport::Ws]).is_err());
    }

    #[test]
    fn deterministic_figures_are_tight_and_timing_figures_wide() {
        let base = known(&[
            ("ws.traffic.bytes_per_message", 100.0),
            ("ws.latency.p50_ms", 1.0),
            ("ws.delivery.lost", 0.0),
        ]);
        let now = known(&[
            ("ws.traffic.bytes_per_message", 106.0),
            ("ws.latency.p50_ms", 2.0),
            ("ws.delivery.lost", 0.0),
        ]);
        let checks = default_checks(&[Transport::Ws]);
        let outcomes = evaluate(&base, &now, &checks, &[]);
        let verdict = |m: &str| outcomes.iter().find(|o| o.metric == m).unwrap().verdict;
        assert_eq!(verdict("ws.traffic.bytes_per_message"), Verdict::Fail); // +6 % > +5 %
        assert_eq!(verdict("ws.latency.p50_ms"), Verdict::Pass); // ×2 < ×2.5
        assert_eq!(verdict("ws.delivery.lost"), Verdict::Pass);
        assert_eq!(verdict("ws.server.cpu_us_per_message"), Verdict::Skipped);
    }
}
