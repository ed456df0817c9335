//! The comparison table: the seed document's rows (latency, efficiency, complexity,
//! bidirectional, connection) with the figures measured behind each rating, the seed's
//! rating beside the measured order, then the detail rows.

use pushlab_server::Transport;

use super::{bytes, ms};
use crate::results::{Results, TransportResult};

/// The seed's ratings for short polling, long polling and WebSocket (it has no SSE).
const SEED: [(&str, [&str; 3]); 5] = [
    ("Latency", ["High", "Medium", "Low"]),
    ("Efficiency", ["Low", "Medium", "High"]),
    ("Complexity", ["Low", "Medium", "High"]),
    ("Bidirectional", ["No", "No", "Yes"]),
    ("Connection", ["Stateless", "Stateful", "Stateful"]),
];

/// One row: an aspect, what the seed says, a figure per transport, and the verdict.
#[derive(Debug, Clone)]
pub struct Row {
    /// What is compared.
    pub aspect: String,
    /// The seed's ratings, "SP / LP / WS", or empty for detail rows.
    pub seed: String,
    /// One cell per transport in the run.
    pub cells: Vec<String>,
    /// The measured order or a short reading of the row.
    pub verdict: String,
}

/// Lines of code of each client in this repository (non-blank, non-comment): the
/// measurable part of "complexity". Polls and SSE also share `client/http.rs`.
pub fn client_lines(transport: Transport) -> usize {
    let source = match transport {
        Transport::ShortPoll => include_str!("../client/short_poll.rs"),
        Transport::LongPoll => include_str!("../client/long_poll.rs"),
        Transport::Sse => include_str!("../client/sse.rs"),
        Transport::Ws => include_str!("../client/ws.rs"),
    };
    source.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("//")).count()
}

/// Figures closer than this (relative) are a tie: one run cannot order them.
pub const TIE: f64 = 0.15;

/// Whether a measured ranking agrees with the seed's order of short poll, long poll and
/// WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedOrder {
    /// Strictly in the seed's order.
    Holds,
    /// In the seed's order except where figures tie.
    HoldsWithTies,
    /// Some pair is the other way round.
    DoesNotHold,
    /// The run lacks one of the three.
    NotComparable,
}

/// Ranks the transports by `key` (smaller first, `≈` for ties within [`TIE`]): the
/// ranking as text, and how it compares with the seed's order.
pub fn ranking(
    results: &Results,
    key: impl Fn(&TransportResult) -> f64,
    seed_smaller_first: [Transport; 3],
) -> (String, SeedOrder) {
    let mut ranked: Vec<(Transport, f64)> =
        results.transports.iter().map(|t| (t.transport, key(t))).collect();
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
    // Group into tiers: a value within TIE of the tier's first value joins it.
    let mut tiers: Vec<Vec<(Transport, f64)>> = Vec::new();
    for (transport, value) in ranked {
        match tiers.last_mut() {
            Some(tier) if value <= tier[0].1 * (1.0 + TIE) + 1e-9 => tier.push((transport, value)),
            _ => tiers.push(vec![(transport, value)]),
        }
    }
    let tier_of = |t: Transport| tiers.iter().position(|tier| tier.iter().any(|(x, _)| *x == t));
    let text = tiers
        .iter()
        .map(|tier| tier.iter().map(|(t, _)| t.name()).collect::<Vec<_>>().join(" ≈ "))
        .collect::<Vec<_>>()
        .join(" < ");
    let positions: Option<Vec<usize>> = seed_smaller_first.iter().map(|&t| tier_of(t)).collect();
    let order = match positions {
        None => SeedOrder::NotComparable,
        Some(p) if p[0] < p[1] && p[1] < p[2] => SeedOrder::Holds,
        Some(p) if p[0] <= p[1] && p[1] <= p[2] => SeedOrder::HoldsWithTies,
        Some(_) => SeedOrder::DoesNotHold,
    };
    (text, order)
}

/// [`ranking`] with the verdict in words, for the table.
pub fn order(
    results: &Results,
    key: impl Fn(&TransportResult) -> f64,
    seed_smaller_first: [Transport; 3],
) -> String {
    let (text, order) = ranking(results, key, seed_smaller_first);
    let verdict = match order {
        SeedOrder::NotComparable => "run short_poll, long_poll and ws to compare with the seed",
        SeedOrder::Holds => "seed's order holds",
        SeedOrder::HoldsWithTies => "seed's order holds in part (ties)",
        SeedOrder::DoesNotHold => "seed's order does NOT hold",
    };
    format!("{text}: {verdict}")
}

/// The rows of the comparison, in the seed's order, then the details.
pub fn rows(results: &Results) -> Vec<Row> {
    use Transport::*;
    let each = |f: &dyn Fn(&TransportResult) -> String| results.transports.iter().map(f).collect::<Vec<_>>();
    let seed = |aspect: &str| {
        SEED.iter().find(|(a, _)| *a == aspect).map(|(_, r)| r.join(" / ")).unwrap_or_default()
    };
    let server = |t: &TransportResult, f: &dyn Fn(&crate::results::ServerCost) -> String| {
        t.server.as_ref().map_or("n/a".to_string(), f)
    };
    vec![
        Row {
            aspect: "Latency (p50 / p99)".into(),
            seed: seed("Latency"),
            cells: each(&|t| format!("{} / {}", ms(t.latency.p50_ms), ms(t.latency.p99_ms))),
            verdict: order(results, |t| t.latency.p50_ms, [Ws, LongPoll, ShortPoll]),
        },
        Row {
            aspect: "Efficiency (wire bytes per message)".into(),
            seed: seed("Efficiency"),
            cells: each(&|t| bytes(t.traffic.bytes_per_message)),
            verdict: order(results, |t| t.traffic.bytes_per_message, [Ws, LongPoll, ShortPoll]),
        },
        Row {
            aspect: "Complexity (client lines of code)".into(),
            seed: seed("Complexity"),
            cells: each(&|t| client_lines(t.transport).to_string()),
            verdict: order(results, |t| client_lines(t.transport) as f64, [ShortPoll, LongPoll, Ws]),
        },
        Row {
            aspect: "Bidirectional (client → server send)".into(),
            seed: seed("Bidirectional"),
            cells: each(&|t| {
                let how = if t.transport == Ws { "same socket" } else { "extra POST" };
                format!("{how}, {}, {}", ms(t.upstream.p50_ms), bytes(t.upstream.bytes_per_send))
            }),
            verdict: "only ws sends on its own connection; the others need a second request".into(),
        },
        Row {
            aspect: "Connection (server memory per client)".into(),
            seed: seed("Connection"),
            cells: each(&|t| server(t, &|s| bytes(s.memory_per_client_bytes.max(0.0)))),
            verdict: "every client here holds a keep-alive connection; see docs".into(),
        },
        Row {
            aspect: "Delivered / lost / dup / reordered".into(),
            seed: String::new(),
            cells: each(&|t| {
                let d = &t.delivery;
                format!("{} / {} / {} / {}", d.delivered, d.lost, d.duplicated, d.reordered)
            }),
            verdict: if results.transports.iter().all(|t| t.delivery.lost == 0 && t.delivery.duplicated == 0)
            {
                "every message delivered exactly once".into()
            } else {
                "LOSS OR DUPLICATES: see results.json".into()
            },
        },
        Row {
            aspect: "Requests per message (empty %)".into(),
            seed: String::new(),
            cells: each(&|t| {
                let empty = 100.0 * t.traffic.empty_responses as f64 / t.traffic.requests.max(1) as f64;
                format!("{:.3} ({empty:.0}%)", t.traffic.requests_per_message)
            }),
            verdict: String::new(),
        },
        Row {
            aspect: "Idle cost per client per day".into(),
            seed: String::new(),
            cells: each(&|t| {
                format!(
                    "{} ({:.2} req/s)",
                    bytes(t.idle.bytes_per_client_per_day),
                    t.idle.requests_per_client_per_second
                )
            }),
            verdict: "measured idle rate × 86,400 s".into(),
        },
        Row {
            aspect: "Server CPU per delivery".into(),
            seed: String::new(),
            cells: each(&|t| server(t, &|s| format!("{:.1} µs", s.cpu_us_per_message))),
            verdict: String::new(),
        },
        Row {
            aspect: "Load generator CPU per message".into(),
            seed: String::new(),
            cells: each(&|t| format!("{:.1} µs", t.loadgen.cpu_us_per_message)),
            verdict: String::new(),
        },
    ]
}

fn headers(results: &Results) -> Vec<String> {
    let mut h = vec!["aspect".to_string(), "seed (SP / LP / WS)".to_string()];
    h.extend(results.transports.iter().map(|t| t.transport.name().to_string()));
    h.push("measured".to_string());
    h
}

fn cells(row: &Row) -> Vec<String> {
    let mut c = vec![row.aspect.clone(), row.seed.clone()];
    c.extend(row.cells.iter().cloned());
    c.push(row.verdict.clone());
    c
}

/// The table as aligned text for a terminal: one column per transport, and under each
/// compared aspect the seed's rating and the measured order, so it fits ~110 columns.
pub fn terminal(results: &Results) -> String {
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut notes: Vec<Option<String>> = Vec::new();
    let mut header = vec![String::new()];
    header.extend(results.transports.iter().map(|t| t.transport.name().to_string()));
    lines.push(header);
    notes.push(None);
    for row in rows(results) {
        let mut line = vec![row.aspect.clone()];
        line.extend(row.cells.iter().cloned());
        lines.push(line);
        notes.push(None);
        if !row.seed.is_empty() {
            let ratings: Vec<&str> = row.seed.split(" / ").collect();
            let mut seed_line = vec!["  seed says".to_string()];
            seed_line.extend(results.transports.iter().map(|t| {
                match t.transport {
                    Transport::ShortPoll => ratings[0],
                    Transport::LongPoll => ratings[1],
                    Transport::Sse => "(not rated)",
                    Transport::Ws => ratings[2],
                }
                .to_string()
            }));
            lines.push(seed_line);
            notes.push(None);
        }
        if !row.verdict.is_empty() {
            lines.push(Vec::new());
            notes.push(Some(format!("  → {}", row.verdict)));
        }
    }
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| lines.iter().filter_map(|l| l.get(i)).map(|c| c.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (line, note) in lines.iter().zip(&notes) {
        let text = match note {
            Some(note) => note.clone(),
            None => line.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  "),
        };
        out += text.trim_end();
        out += "\n";
    }
    out
}

/// `summary.md`: the setup, the table, and the warnings.
pub fn markdown(results: &Results) -> String {
    let s = &results.setup;
    let w = &s.workload;
    let mut out = String::from("# pushlab results\n\n");
    out += &format!(
        "Command: `{}`  \nStarted: {} · pushlab {} · commit {}  \nMachine: {} ({} cores), kernel {}  \n\
         Workload: {} clients, {} messages/s, {}-byte payload, {} s measured after {} s warm-up, {} s idle, \
         poll interval {} s, long-poll timeout {} s, heartbeat {} s; server: {}\n\n",
        s.command,
        s.started_at,
        s.pushlab_version,
        s.git_commit.as_deref().unwrap_or("unknown"),
        s.machine.cpu_model,
        s.machine.cores,
        s.machine.kernel,
        w["clients"],
        w["rate_per_second"],
        w["payload_bytes"],
        w["duration_seconds"],
        w["warmup_seconds"],
        w["idle_seconds"],
        w["poll_interval_seconds"],
        w["long_poll_timeout_seconds"],
        w["heartbeat_seconds"],
        s.target,
    );
    let headers = headers(results);
    out += &format!("| {} |\n", headers.join(" | "));
    out += &format!("|{}\n", " --- |".repeat(headers.len()));
    for row in rows(results) {
        out += &format!("| {} |\n", cells(&row).join(" | "));
    }
    if !results.warnings.is_empty() {
        out += "\nWarnings:\n\n";
        for warning in &results.warnings {
            out += &format!("- {warning}\n");
        }
    }
    out
}

/// Condition name of a run in a sweep, for folders and headers: `rtt-50ms`,
/// `poll-500ms`.
pub fn condition_name(results: &Results) -> String {
    let w = &results.setup.workload;
    match w["condition"].as_str() {
        Some(name) => name.to_string(),
        // Runs saved before sweeps had names were all round-trip-time sweeps.
        None => format!("rtt-{}ms", w["network"]["rtt_ms"].as_f64().unwrap_or(0.0)),
    }
}

/// What a sweep varies, in words: "across network conditions" or "across poll intervals".
pub fn sweep_title(runs: &[Results]) -> &'static str {
    match runs.first().map(|r| r.setup.workload["sweep"].as_str()) {
        Some(Some("poll_interval")) => "across poll intervals",
        _ => "across network conditions",
    }
}

/// The comparison across a sweep's conditions (one run per value): each transport's
/// latency, wire cost and idle cost per condition, and under a round-trip time long
/// polling in units of one network transit (RFC 6202 §2.2: about one on average, up to
/// three at worst).
pub fn conditions(runs: &[Results]) -> String {
    let mut headers = vec!["transport".to_string()];
    headers.extend(runs.iter().map(condition_name));
    let mut lines = vec![headers];
    let transports: Vec<Transport> =
        runs.first().map(|r| r.transports.iter().map(|t| t.transport).collect()).unwrap_or_default();
    for transport in &transports {
        let cells = |label: &str, f: &dyn Fn(&TransportResult) -> String| {
            let mut line = vec![format!("{transport} {label}")];
            line.extend(runs.iter().map(|r| r.transport(*transport).map_or("-".into(), f)));
            line
        };
        lines.push(cells("p50 / p99", &|t| format!("{} / {}", ms(t.latency.p50_ms), ms(t.latency.p99_ms))));
        lines.push(cells("bytes/message", &|t| bytes(t.traffic.bytes_per_message)));
        lines.push(cells("idle/client/day", &|t| bytes(t.idle.bytes_per_client_per_day)));
    }
    if transports.contains(&Transport::LongPoll) {
        let mut line = vec!["long_poll in transits (mean, max)".to_string()];
        line.extend(runs.iter().map(|r| {
            let transit = r.setup.workload["network"]["rtt_ms"].as_f64().unwrap_or(0.0) / 2.0;
            match (r.transport(Transport::LongPoll), transit > 0.0) {
                (Some(t), true) => {
                    format!("{:.2} / {:.2}", t.latency.mean_ms / transit, t.latency.max_ms / transit)
                }
                _ => "-".into(),
            }
        }));
        lines.push(line);
    }
    let widths: Vec<usize> =
        (0..lines[0].len()).map(|i| lines.iter().map(|l| l[i].chars().count()).max().unwrap_or(0)).collect();
    lines
        .iter()
        .map(|l| {
            let text = l.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ");
            text.trim_end().to_string() + "\n"
        })
        .collect()
}
