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

use crate::results::{Metric, Results, Unit, METRICS};
use anyhow::{bail, Context};
use pushlab_protocol::Transport;

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

/// Every numeric figure of every transport, by name (`ws.latency.p99_ms`): the metric
/// registry ([`METRICS`]) read for each transport.
pub fn flatten(results: &Results) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for t in &results.transports {
        for m in METRICS {
            if let Some(value) = (m.get)(t) {
                out.insert(format!("{}.{}", t.transport.name(), m.path), value);
            }
        }
    }
    out
}

/// The registry entry of a full metric name (`ws.latency.p99_ms`).
pub fn metric_of(name: &str) -> Option<&'static Metric> {
    name.split_once('.').and_then(|(_, path)| crate::results::metric(path))
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

/// The comparison of a `--fail-if` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
}

impl Op {
    /// Every operator with its symbol, two-character ones first so that `>=` is not
    /// read as `>`.
    const ALL: [(&'static str, Op); 6] = [
        (">=", Op::GreaterOrEqual),
        ("<=", Op::LessOrEqual),
        ("==", Op::Equal),
        ("!=", Op::NotEqual),
        (">", Op::Greater),
        ("<", Op::Less),
    ];

    /// The operator's symbol.
    pub fn symbol(self) -> &'static str {
        Op::ALL.iter().find(|(_, op)| *op == self).map_or("?", |(symbol, _)| symbol)
    }

    /// Whether `left OP right`.
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Op::Greater => left > right,
            Op::GreaterOrEqual => left >= right,
            Op::Less => left < right,
            Op::LessOrEqual => left <= right,
            Op::Equal => left == right,
            Op::NotEqual => left != right,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
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
    pub op: Op,
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
        let (symbol, op) =
            Op::ALL.into_iter().find(|(symbol, _)| text.contains(symbol)).with_context(context)?;
        let (metric, value) = text.split_once(symbol).with_context(context)?;
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
        self.op.holds(now, self.value)
    }
}

/// Factor from `unit` to the unit `metric` is stored in, from the metric registry.
fn unit_scale(metric: &str, unit: &str) -> anyhow::Result<f64> {
    let stored = metric_of(metric).map(|m| m.unit);
    Ok(match (unit, stored) {
        ("", _) => 1.0,
        ("us" | "µs", Some(Unit::Ms)) => 1e-3,
        ("ms", Some(Unit::Ms)) => 1.0,
        ("s", Some(Unit::Ms)) => 1e3,
        ("us" | "µs", Some(Unit::Us)) => 1.0,
        ("ms", Some(Unit::Us)) => 1e3,
        ("s", Some(Unit::Us)) => 1e6,
        ("B", Some(Unit::Bytes)) => 1.0,
        ("KB", Some(Unit::Bytes)) => 1e3,
        ("MB", Some(Unit::Bytes)) => 1e6,
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
        assert_eq!((c.op, c.value), (Op::Greater, 5.0));
        let c = Condition::parse("ws.latency.p99 >= 0.004s", &k, &[Transport::Ws]).unwrap().remove(0);
        assert_eq!(c.value, 4.0);
        assert!(Condition::parse("ws.latency.p99 > 5KB", &k, &[Transport::Ws]).is_err());
        assert!(Condition::parse("nonsense", &k, &[Transport::Ws]).is_err());
        let k = known(&[("ws.server.cpu_us_per_message", 4.0), ("ws.traffic.bytes_per_message", 200.0)]);
        let c = Condition::parse("ws.server.cpu_us_per_message <= 0.02ms", &k, &[Transport::Ws]).unwrap();
        assert_eq!((c[0].op, c[0].value), (Op::LessOrEqual, 20.0));
        let c = Condition::parse("ws.traffic.bytes_per_message != 1KB", &k, &[Transport::Ws]).unwrap();
        assert_eq!((c[0].op, c[0].value), (Op::NotEqual, 1000.0));
        assert!(c[0].holds(200.0) && !Op::Equal.holds(1.0, 2.0));
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
