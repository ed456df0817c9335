//! The comparison table: the seed document's rows (latency, efficiency, complexity,
//! bidirectional, connection) with the figures measured behind each rating, the seed's
//! rating beside the measured order, then the detail rows.

use pushlab_protocol::Transport;

use super::{align, bytes, markdown_table, ms};
use crate::network::{LinkKind, Network};
use crate::results::{Results, TransportResult, Wire, WireSource};
use crate::workload::{Sweep, Workload};

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

/// The lines of code of a transport's reference browser client, as the run saved them
/// (`docs/clients/`, the same contract for all four; see `docs/concerns.md`). Runs made
/// before sizes were saved have none: the table says so rather than count today's code.
pub fn client_lines(t: &TransportResult) -> Option<usize> {
    t.reference_client.map(|size| size.lines)
}

/// Widest cell of the terminal table: four transports fit [`TERMINAL_WIDTH`].
const CELL: usize = 17;

/// Whether every transport of the run has wire figures. Only then do the cost rows show
/// and rank by them: ranking some transports by IP bytes and others by payload would
/// compare unlike things.
pub fn all_wire(results: &Results) -> bool {
    !results.transports.is_empty() && results.transports.iter().all(|t| t.wire.is_some())
}

/// Whether some wire figure of the run is estimated (relay) rather than counted.
pub fn wire_estimated(results: &Results) -> bool {
    results.transports.iter().any(|t| t.wire.as_ref().is_some_and(|w| w.source == WireSource::Estimated))
}

/// `~` before an estimated wire figure, nothing before a counted one.
pub fn mark(wire: &Wire) -> &'static str {
    match wire.source {
        WireSource::Counted => "",
        WireSource::Estimated => "~",
    }
}

/// What a wire ranking ranks by, for the verdicts.
fn by_ip_bytes(results: &Results) -> &'static str {
    match wire_estimated(results) {
        true => "IP bytes (~ estimated from TCP segment counts) rank",
        false => "IP bytes rank",
    }
}

/// A wire figure with the payload figure after it: `314 B (192 B)`, `~327 B (192 B)`.
/// A compact cell too wide loses its spaces, then the payload (the full table has it).
fn wire_then_payload(wire: &Wire, ip: f64, payload: f64, compact: bool) -> String {
    let (ip, payload) = (format!("{}{}", mark(wire), bytes(ip)), bytes(payload));
    let cell = format!("{ip} ({payload})");
    if !compact || cell.chars().count() <= CELL {
        return cell;
    }
    let squeezed = format!("{} ({})", ip.replace(' ', ""), payload.replace(' ', ""));
    if squeezed.chars().count() <= CELL {
        squeezed
    } else {
        ip
    }
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
        SeedOrder::NotComparable => NOT_COMPARABLE,
        SeedOrder::Holds => "seed's order holds",
        SeedOrder::HoldsWithTies => "seed's order holds in part (ties)",
        SeedOrder::DoesNotHold => "seed's order does NOT hold",
    };
    format!("{text}: {verdict}")
}

/// What a ranking says when the run lacks one of the seed's three transports.
const NOT_COMPARABLE: &str = "run short_poll, long_poll and ws to compare with the seed";

/// The rows of the comparison, in the seed's order, then the details.
pub fn rows(results: &Results) -> Vec<Row> {
    rows_styled(results, false)
}

/// [`rows`] with short labels and cells (`compact`), so that the terminal table of four
/// transports fits 100 columns: labels of at most 24 characters, cells of at most 17.
fn rows_styled(results: &Results, compact: bool) -> Vec<Row> {
    use Transport::*;
    let label = |full: &str, short: &str| if compact { short.to_string() } else { full.to_string() };
    let slash = if compact { "/" } else { " / " };
    let each = |f: &dyn Fn(&TransportResult) -> String| results.transports.iter().map(f).collect::<Vec<_>>();
    let seed = |aspect: &str| {
        SEED.iter().find(|(a, _)| *a == aspect).map(|(_, r)| r.join(" / ")).unwrap_or_default()
    };
    let server = |t: &TransportResult, f: &dyn Fn(&crate::results::ServerCost) -> String| {
        t.server.as_ref().map_or("n/a".to_string(), f)
    };
    let wire = all_wire(results);
    let ip_per_message = |t: &TransportResult| t.wire.as_ref().map_or(0.0, |w| w.ip_bytes_per_message);
    let ip_idle = |t: &TransportResult| t.wire.as_ref().map_or(0.0, |w| w.idle_ip_bytes_per_client_per_day);
    let mut rows = vec![
        Row {
            aspect: label("Latency (p50 / p99)", "Latency (p50/p99)"),
            seed: seed("Latency"),
            cells: each(&|t| format!("{}{slash}{}", ms(t.latency.p50_ms), ms(t.latency.p99_ms))),
            verdict: order(results, |t| t.latency.p50_ms, [Ws, LongPoll, ShortPoll]),
        },
        match wire {
            // The wire decides: what the network carries, headers and ACKs included.
            true => Row {
                aspect: label("Efficiency (IP bytes per message; payload)", "Efficiency (IP; payload)"),
                seed: seed("Efficiency"),
                cells: each(&|t| {
                    let w = t.wire.as_ref().expect("all_wire");
                    wire_then_payload(w, w.ip_bytes_per_message, t.traffic.bytes_per_message, compact)
                }),
                verdict: format!(
                    "{} {}",
                    by_ip_bytes(results),
                    order(results, |t| ip_per_message(t), [Ws, LongPoll, ShortPoll])
                ),
            },
            false => Row {
                aspect: label("Efficiency (wire bytes per message)", "Efficiency (B/message)"),
                seed: seed("Efficiency"),
                cells: each(&|t| bytes(t.traffic.bytes_per_message)),
                verdict: order(results, |t| t.traffic.bytes_per_message, [Ws, LongPoll, ShortPoll]),
            },
        },
        Row {
            aspect: label("Complexity (reference client: lines / tokens)", "Complexity (client lines)"),
            seed: seed("Complexity"),
            cells: each(&|t| match t.reference_client {
                Some(size) if compact => size.lines.to_string(),
                Some(size) => format!("{} / {}", size.lines, size.tokens),
                None => "not saved".into(),
            }),
            verdict: if results.transports.iter().all(|t| t.reference_client.is_some()) {
                order(results, |t| client_lines(t).unwrap_or(0) as f64, [ShortPoll, LongPoll, Ws])
            } else {
                "this run predates saved client sizes; see docs/concerns.md".into()
            },
        },
        Row {
            aspect: label("Bidirectional (client → server send)", "Bidirectional (send)"),
            seed: seed("Bidirectional"),
            cells: each(&|t| {
                let (p50, size) = (ms(t.upstream.p50_ms), bytes(t.upstream.bytes_per_send));
                match (compact, t.transport == Ws) {
                    (false, true) => format!("same socket, {p50}, {size}"),
                    (false, false) => format!("extra POST, {p50}, {size}"),
                    (true, true) => format!("socket {} {}", p50.replace(' ', ""), size.replace(' ', "")),
                    (true, false) => format!("POST {} {}", p50.replace(' ', ""), size.replace(' ', "")),
                }
            }),
            verdict: "only ws sends on its own connection; the others need a second request".into(),
        },
        Row {
            aspect: label("Connection (server memory per client)", "Connection (mem/client)"),
            seed: seed("Connection"),
            cells: each(&|t| server(t, &|s| bytes(s.memory_per_client_bytes.max(0.0)))),
            verdict: "every client here holds a keep-alive connection; see docs".into(),
        },
        Row {
            aspect: label("Delivered / lost / dup / reordered", "Delivered/lost/dup/reord"),
            seed: String::new(),
            cells: each(&|t| {
                let d = &t.delivery;
                [d.delivered, d.lost, d.duplicated, d.reordered].map(|n| n.to_string()).join(slash)
            }),
            verdict: if results.transports.iter().all(|t| t.delivery.lost == 0 && t.delivery.duplicated == 0)
            {
                "every message delivered exactly once".into()
            } else {
                "LOSS OR DUPLICATES: see results.json".into()
            },
        },
        Row {
            aspect: label("Requests per message (empty %)", "Requests/message (empty)"),
            seed: String::new(),
            cells: each(&|t| {
                let empty = 100.0 * t.traffic.empty_responses as f64 / t.traffic.requests.max(1) as f64;
                format!("{:.3} ({empty:.0}%)", t.traffic.requests_per_message)
            }),
            verdict: String::new(),
        },
        match wire {
            true => Row {
                aspect: label("Idle cost per client per day (IP bytes; payload)", "Idle/client/day (IP)"),
                seed: String::new(),
                cells: each(&|t| {
                    let w = t.wire.as_ref().expect("all_wire");
                    let (ip, payload) = (w.idle_ip_bytes_per_client_per_day, t.idle.bytes_per_client_per_day);
                    match compact {
                        false => format!(
                            "{}{} ({}; {:.2} req/s)",
                            mark(w),
                            bytes(ip),
                            bytes(payload),
                            t.idle.requests_per_client_per_second
                        ),
                        true => wire_then_payload(w, ip, payload, true),
                    }
                }),
                verdict: format!(
                    "{} {}; measured idle rate × 86,400 s",
                    by_ip_bytes(results),
                    ranking(results, ip_idle, [Ws, LongPoll, ShortPoll]).0
                ),
            },
            false => Row {
                aspect: label("Idle cost per client per day", "Idle per client per day"),
                seed: String::new(),
                cells: each(&|t| {
                    let (day, rate) =
                        (bytes(t.idle.bytes_per_client_per_day), t.idle.requests_per_client_per_second);
                    match compact {
                        false => format!("{day} ({rate:.2} req/s)"),
                        true => format!("{day}, {rate:.2}/s"),
                    }
                }),
                verdict: "measured idle rate × 86,400 s".into(),
            },
        },
        Row {
            aspect: label("Server CPU per delivery", "Server CPU/delivery"),
            seed: String::new(),
            cells: each(&|t| server(t, &|s| format!("{:.1} µs", s.cpu_us_per_message))),
            verdict: String::new(),
        },
        Row {
            aspect: label("Load generator CPU per message", "Load gen. CPU/message"),
            seed: String::new(),
            cells: each(&|t| format!("{:.1} µs", t.loadgen.cpu_us_per_message)),
            verdict: String::new(),
        },
    ];
    // The link itself, after the requests per message: what TCP did to carry them.
    if results.transports.iter().any(|t| t.wire.is_some()) {
        let at = rows.iter().position(|r| r.aspect.starts_with("Requests")).map_or(rows.len(), |i| i + 1);
        let row = Row {
            aspect: label("Packets per message (retransmitted / dropped)", "Packets/message (retx)"),
            seed: String::new(),
            cells: each(&|t| match &t.wire {
                Some(w) if compact => {
                    format!("{}{:.2} ({})", mark(w), w.packets_per_message, w.retransmitted_packets)
                }
                Some(w) => format!(
                    "{}{:.2} ({} / {})",
                    mark(w),
                    w.packets_per_message,
                    w.retransmitted_packets,
                    w.dropped_packets
                ),
                None => "n/a".into(),
            }),
            verdict: match wire_estimated(results) {
                true => {
                    "~ estimated from TCP segment counts: the server's retransmissions are not seen".into()
                }
                false => "every IP packet counted by the packet link, both ways".into(),
            },
        };
        rows.insert(at, row);
    }
    // TLS and HTTP/2, when the run used either, before the CPU rows: what carried the
    // connections and what it cost (a cleartext HTTP/1.1 run's table is as it always was).
    let tls = results.transports.iter().any(|t| t.tls.is_some());
    let http2 =
        results.transports.iter().any(|t| t.protocol.as_ref().is_some_and(|p| p.http_version != "1.1"));
    if tls || http2 {
        let at = rows.iter().position(|r| r.aspect.starts_with("Server CPU")).unwrap_or(rows.len());
        let mut extra = vec![Row {
            aspect: label("Protocol (HTTP version, TLS)", "Protocol"),
            seed: String::new(),
            cells: each(&|t| match &t.protocol {
                Some(p) => {
                    let tls =
                        p.tls_version.as_deref().map(|v| v.replace("TLSv1_", " TLS 1.")).unwrap_or_default();
                    format!("HTTP/{}{tls}", p.http_version)
                }
                None => "not saved".into(),
            }),
            verdict: "as negotiated: over TLS by ALPN, in cleartext by prior knowledge".into(),
        }];
        if results.transports.iter().any(|t| t.idle.bytes_per_empty_poll.is_some()) {
            extra.push(Row {
                aspect: label("Empty poll (socket bytes; HTTP bytes)", "Empty poll (sock; HTTP)"),
                seed: String::new(),
                cells: each(&|t| match (t.idle.bytes_per_empty_poll, t.idle.http_bytes_per_empty_poll) {
                    (Some(socket), Some(http)) => format!("{}; {}", bytes(socket), bytes(http)),
                    _ => "-".into(),
                }),
                verdict: "per idle poll, request and answer (and any reconnect's handshake)".into(),
            });
        }
        if tls {
            extra.push(Row {
                aspect: label("HTTP-layer bytes per message (idle per day)", "HTTP B/msg (idle/day)"),
                seed: String::new(),
                cells: each(&|t| match (
                    t.traffic.http_bytes_per_message,
                    t.idle.http_bytes_per_client_per_day,
                ) {
                    (Some(message), Some(day)) => format!("{} ({})", bytes(message), bytes(day)),
                    _ => "n/a".into(),
                }),
                verdict: "above TLS; the socket bytes are in the Efficiency and Idle rows".into(),
            });
            extra.push(Row {
                aspect: label("TLS handshakes (resumed)", "TLS handshakes (resumed)"),
                seed: String::new(),
                cells: each(&|t| {
                    t.tls
                        .as_ref()
                        .map_or("n/a".into(), |s| format!("{} ({})", s.handshakes, s.resumed_handshakes))
                }),
                verdict: "over the whole run: the ramp and every reconnect".into(),
            });
            extra.push(Row {
                aspect: label("TLS handshake (bytes both ways; p50 time)", "TLS handshake (B; p50)"),
                seed: String::new(),
                cells: each(&|t| {
                    t.tls.as_ref().map_or("n/a".into(), |s| {
                        let both = s.handshake_bytes_sent + s.handshake_bytes_received;
                        format!("{}, {}", bytes(both), ms(s.handshake_p50_ms))
                    })
                }),
                verdict: "mean per handshake, full and resumed ones together".into(),
            });
        }
        rows.splice(at..at, extra);
    }
    rows
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

/// Width the terminal table fits in.
pub const TERMINAL_WIDTH: usize = 100;

/// The table as aligned text for a terminal: one column per transport, and under each
/// compared aspect the seed's rating and the measured order, in [`TERMINAL_WIDTH`]
/// columns. A hint that would repeat under several rows is printed once, at the end.
pub fn terminal(results: &Results) -> String {
    let mut lines: Vec<Line> = Vec::new();
    let mut header = vec![String::new()];
    header.extend(results.transports.iter().map(|t| t.transport.name().to_string()));
    lines.push(Line::Cells(header));
    let mut hint = None;
    for row in rows_styled(results, true) {
        let mut line = vec![row.aspect.clone()];
        line.extend(row.cells.iter().cloned());
        lines.push(Line::Cells(line));
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
            lines.push(Line::Cells(seed_line));
        }
        let mut verdict = row.verdict.clone();
        if let Some(ranking) = verdict.strip_suffix(&format!(": {NOT_COMPARABLE}")) {
            hint = Some(NOT_COMPARABLE);
            // With one transport the ranking is its name alone: nothing to say.
            verdict = if results.transports.len() > 1 { ranking.to_string() } else { String::new() };
        }
        if !verdict.is_empty() {
            lines.push(Line::Note(format!("  → {verdict}")));
        }
    }
    if let Some(hint) = hint {
        lines.push(Line::Note(format!("  ({hint})")));
    }
    let mut out = String::new();
    let rows: Vec<&Vec<String>> =
        lines.iter().filter_map(|l| if let Line::Cells(c) = l { Some(c) } else { None }).collect();
    let aligned = align(&rows.iter().map(|r| r.as_slice()).collect::<Vec<_>>());
    let mut aligned = aligned.lines();
    for line in &lines {
        match line {
            Line::Cells(_) => out += aligned.next().unwrap_or_default(),
            Line::Note(note) => out += &wrap(note, TERMINAL_WIDTH, "    "),
        }
        out += "\n";
    }
    out
}

/// A line of the terminal table: cells aligned in columns, or a note across them.
enum Line {
    Cells(Vec<String>),
    Note(String),
}

/// Wraps `text` at spaces to lines of at most `width` characters, continuing with
/// `indent`.
fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    // The text's own indentation is kept on its first line.
    let body = text.trim_start_matches(' ');
    let mut line = text[..text.len() - body.len()].to_string();
    for word in body.split(' ') {
        if !line.trim().is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            out += line.trim_end();
            out += "\n";
            line = indent.to_string();
        } else if !line.trim().is_empty() {
            line.push(' ');
        }
        line += word;
    }
    out + line.trim_end()
}

/// The workload in one sentence, for `summary.md` and `index.html`. Numbers print as
/// they are saved in results.json (`10.0`, `0.5`).
pub fn workload_line(results: &Results) -> String {
    let w = match results.setup.typed_workload() {
        Ok(w) => w,
        Err(e) => return format!("(the saved workload does not read: {e})"),
    };
    let s = |d: std::time::Duration| format!("{:?}", d.as_secs_f64());
    format!(
        "{} clients, {:?} messages/s, {}-byte payload, {} s measured after {} s warm-up, {} s idle, \
         poll interval {} s, long-poll timeout {} s{}{}",
        w.clients,
        w.rate_per_second,
        w.payload_bytes,
        s(w.duration_seconds),
        s(w.warmup_seconds),
        s(w.idle_seconds),
        s(w.poll_interval_seconds),
        s(w.long_poll_timeout_seconds),
        // A target's heartbeat is its own and not recorded (read back as zero).
        match w.heartbeat_seconds.is_zero() {
            true => String::new(),
            false => format!(", heartbeat {} s", s(w.heartbeat_seconds)),
        },
        match w.network == Network::default() {
            true => String::new(),
            false => format!("; {}", network_line(&w.network)),
        },
    )
}

/// The network in a few words: a short [`Network::describe`] that reads only what the
/// run saved (`describe` also asks this machine whether it could make a packet link).
pub fn network_line(n: &Network) -> String {
    let mut parts = vec![match n.link {
        LinkKind::Netns => "link: packet link (netns)".to_string(),
        LinkKind::Relay => "link: relay".to_string(),
    }];
    parts.push(format!("RTT {} ms", n.rtt.as_secs_f64() * 1e3));
    if !n.jitter.is_zero() {
        let order = if n.reorder { ", may reorder" } else { "" };
        parts.push(format!("jitter ≤ {} ms{order}", n.jitter.as_secs_f64() * 1e3));
    }
    if let Some(rate) = n.bandwidth_bytes_per_second {
        parts.push(format!("{} kbit/s", rate * 8 / 1000));
        if n.link == LinkKind::Netns {
            parts.push(format!("queue {} packets", n.queue_packets));
        }
    }
    // Only the packet link drops packets: a relay's loss is always none.
    match (n.link, n.loss.is_none()) {
        (_, false) => parts.push(format!("loss {}", n.loss)),
        (LinkKind::Netns, true) => parts.push("no loss".into()),
        (LinkKind::Relay, true) => {}
    }
    parts.join(", ")
}

/// `summary.md`: the setup, the table, and the warnings.
pub fn markdown(results: &Results) -> String {
    let s = &results.setup;
    let mut out = String::from("# pushlab results\n\n");
    out += &format!(
        "Command: `{}`  \nStarted: {} · pushlab {} · commit {}  \nMachine: {} ({} cores), kernel {}  \n\
         Workload: {}; server: {}\n\n",
        s.command,
        s.started_at,
        s.pushlab_version,
        s.git_commit.as_deref().unwrap_or("unknown"),
        s.machine.cpu_model,
        s.machine.cores,
        s.machine.kernel,
        workload_line(results),
        s.target,
    );
    out += &markdown_table(&headers(results), &rows(results).iter().map(cells).collect::<Vec<_>>());
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
    match results.setup.typed_workload() {
        Ok(Workload { condition: Some(name), .. }) => name,
        // Runs saved before sweeps had names were all round-trip-time sweeps.
        Ok(w) => format!("rtt-{}ms", w.network.rtt.as_secs_f64() * 1e3),
        Err(_) => "(unreadable workload)".into(),
    }
}

/// What a sweep varies, in words: "across network conditions" or "across poll intervals".
pub fn sweep_title(runs: &[Results]) -> &'static str {
    let sweep = runs.first().and_then(|r| r.setup.typed_workload().ok()).and_then(|w| w.sweep);
    match sweep {
        Some(Sweep::PollInterval) => "across poll intervals",
        Some(Sweep::Loss) => "across packet loss rates",
        Some(Sweep::Http) => "across protocols (http: cleartext, https: TLS)",
        _ => "across network conditions",
    }
}

/// The comparison across a sweep's conditions (one run per value): each transport's
/// latency, wire cost and idle cost per condition, and under a round-trip time long
/// polling in units of one network transit (RFC 6202 §2.2: about one on average, up to
/// three at worst).
pub fn conditions(runs: &[Results]) -> String {
    let protocols = runs
        .first()
        .and_then(|r| r.setup.typed_workload().ok())
        .is_some_and(|w| w.sweep == Some(Sweep::Http));
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
        // The wire, where the runs counted it: under loss, retransmissions are the cost.
        if runs.iter().any(|r| r.transport(*transport).is_some_and(|t| t.wire.is_some())) {
            let ip = |t: &TransportResult| match &t.wire {
                Some(w) => format!("{}{}", mark(w), bytes(w.ip_bytes_per_message)),
                None => "-".into(),
            };
            let lost = |t: &TransportResult| match &t.wire {
                Some(w) => format!("{}{} / {}", mark(w), w.retransmitted_packets, w.dropped_packets),
                None => "-".into(),
            };
            lines.push(cells("IP bytes/message", &ip));
            lines.push(cells("retransmitted / dropped", &lost));
        }
        // Across protocols: what HPACK and TLS change, each row from its own run.
        if protocols {
            lines.push(cells("HTTP-layer bytes/message", &|t| {
                t.traffic.http_bytes_per_message.map_or("-".into(), bytes)
            }));
            if matches!(transport, Transport::ShortPoll | Transport::LongPoll) {
                let empty = |t: &TransportResult| match (
                    t.idle.bytes_per_empty_poll,
                    t.idle.http_bytes_per_empty_poll,
                ) {
                    (Some(socket), Some(http)) => format!("{}; {}", bytes(socket), bytes(http)),
                    _ => "-".into(),
                };
                lines.push(cells("empty poll (socket; HTTP)", &empty));
            }
            lines.push(cells("TLS handshake bytes, p50", &|t| match &t.tls {
                Some(tls) => format!(
                    "{}, {}",
                    bytes(tls.handshake_bytes_sent + tls.handshake_bytes_received),
                    ms(tls.handshake_p50_ms)
                ),
                None => "-".into(),
            }));
            lines.push(cells("server CPU/delivery", &|t| {
                t.server.as_ref().map_or("-".into(), |s| format!("{:.1} µs", s.cpu_us_per_message))
            }));
            lines.push(cells("server memory/client", &|t| {
                t.server.as_ref().map_or("-".into(), |s| bytes(s.memory_per_client_bytes))
            }));
        }
    }
    if transports.contains(&Transport::LongPoll) {
        let mut line = vec!["long_poll in transits (mean, max)".to_string()];
        line.extend(runs.iter().map(|r| {
            let rtt_ms = r.setup.typed_workload().map_or(0.0, |w| w.network.rtt.as_secs_f64() * 1e3);
            let transit = rtt_ms / 2.0;
            match (r.transport(Transport::LongPoll), transit > 0.0) {
                (Some(t), true) => {
                    format!("{:.2} / {:.2}", t.latency.mean_ms / transit, t.latency.max_ms / transit)
                }
                _ => "-".into(),
            }
        }));
        lines.push(line);
    }
    align(&lines.iter().map(Vec::as_slice).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::verdicts::build::{of, run};
    use Transport::{LongPoll, ShortPoll, Sse, Ws};

    /// The seed's order for latency: WebSocket smallest, then long and short polling.
    const SEED_LATENCY: [Transport; 3] = [Ws, LongPoll, ShortPoll];

    /// A run whose short poll, long poll, SSE and WebSocket p50s are `p50`.
    fn latencies(p50: [f64; 4]) -> Results {
        let mut results = run(0.0);
        for (transport, value) in Transport::ALL.into_iter().zip(p50) {
            of(&mut results, transport).latency.p50_ms = value;
        }
        results
    }

    fn rank(results: &Results) -> (String, SeedOrder) {
        ranking(results, |t| t.latency.p50_ms, SEED_LATENCY)
    }

    #[test]
    fn a_strict_order_in_the_seeds_direction_holds() {
        let results = latencies([250.0, 10.0, 4.0, 2.0]);
        assert_eq!(rank(&results), ("ws < sse < long_poll < short_poll".into(), SeedOrder::Holds));
        assert_eq!(
            order(&results, |t| t.latency.p50_ms, SEED_LATENCY),
            "ws < sse < long_poll < short_poll: seed's order holds"
        );
    }

    #[test]
    fn the_reversed_order_does_not_hold() {
        let results = latencies([2.0, 10.0, 4.0, 250.0]);
        assert_eq!(rank(&results), ("short_poll < sse < long_poll < ws".into(), SeedOrder::DoesNotHold));
        assert!(order(&results, |t| t.latency.p50_ms, SEED_LATENCY).ends_with(": seed's order does NOT hold"));
    }

    #[test]
    fn figures_within_tie_are_one_tier_and_hold_only_with_ties() {
        // SSE and WebSocket within TIE of each other: one tier, their order unknown.
        let results = latencies([250.0, 10.0, 2.0 * (1.0 + TIE), 2.0]);
        assert_eq!(rank(&results), ("ws ≈ sse < long_poll < short_poll".into(), SeedOrder::Holds));
        // Long polling within TIE of WebSocket: the seed's "Medium < Low" is a tie.
        let results = latencies([250.0, 2.0 * (1.0 + TIE), 100.0, 2.0]);
        assert_eq!(rank(&results), ("ws ≈ long_poll < sse < short_poll".into(), SeedOrder::HoldsWithTies));
        assert!(order(&results, |t| t.latency.p50_ms, SEED_LATENCY)
            .ends_with(": seed's order holds in part (ties)"));
        // Just over TIE: two tiers.
        let results = latencies([250.0, 2.0 * (1.0 + TIE) + 0.01, 100.0, 2.0]);
        assert_eq!(rank(&results).1, SeedOrder::Holds);
        // All four equal: one tier.
        assert_eq!(rank(&latencies([5.0; 4])).1, SeedOrder::HoldsWithTies);
    }

    #[test]
    fn a_tier_is_measured_from_its_smallest_figure() {
        // 1.1 is within TIE of 1.0; 1.2 is within TIE of 1.1 but not of 1.0, so it starts
        // a tier of its own: ties do not chain.
        let results = latencies([1.2, 1.1, 9.0, 1.0]);
        assert_eq!(rank(&results), ("ws ≈ long_poll < short_poll < sse".into(), SeedOrder::HoldsWithTies));
    }

    #[test]
    fn a_run_without_one_of_the_three_is_not_comparable() {
        let mut results = latencies([250.0, 10.0, 4.0, 2.0]);
        results.transports.retain(|t| t.transport != LongPoll);
        assert_eq!(rank(&results), ("ws < sse < short_poll".into(), SeedOrder::NotComparable));
        assert_eq!(
            order(&results, |t| t.latency.p50_ms, SEED_LATENCY),
            "ws < sse < short_poll: run short_poll, long_poll and ws to compare with the seed"
        );
        // SSE is not in the seed's table: without it the order still compares.
        let mut results = latencies([250.0, 10.0, 4.0, 2.0]);
        results.transports.retain(|t| t.transport != Sse);
        assert_eq!(rank(&results).1, SeedOrder::Holds);
        // No transport at all.
        results.transports.clear();
        assert_eq!(rank(&results), (String::new(), SeedOrder::NotComparable));
    }
}

#[cfg(test)]
mod terminal_tests {
    use super::*;

    /// The committed reference run: four transports with real figures.
    fn reference() -> Results {
        serde_json::from_str(include_str!("../../../results/2026-11-22-lab/results.json")).unwrap()
    }

    #[test]
    fn the_terminal_table_of_four_transports_fits_100_columns() {
        let text = terminal(&reference());
        for line in text.lines() {
            assert!(line.chars().count() <= TERMINAL_WIDTH, "{} columns: {line}", line.chars().count());
        }
        assert!(text.contains("  → ws ≈ sse < long_poll < short_poll: seed's order holds"), "{text}");
    }

    #[test]
    fn a_single_transport_run_gives_the_seed_hint_once() {
        let mut results = reference();
        results.transports.retain(|t| t.transport == Transport::Ws);
        let text = terminal(&results);
        assert_eq!(text.matches(NOT_COMPARABLE).count(), 1, "{text}");
    }

    #[test]
    fn long_notes_wrap_with_an_indent() {
        let wrapped = wrap(&format!("  → {}", "word ".repeat(30)), 40, "    ");
        assert!(wrapped.lines().all(|l| l.chars().count() <= 40), "{wrapped}");
        assert!(wrapped.starts_with("  → word"));
        assert!(wrapped.lines().skip(1).all(|l| l.starts_with("    word")));
    }
}

#[cfg(test)]
pub(crate) mod wire_tests {
    use super::*;
    use crate::claims::verdicts::build::{of, run};
    use crate::results::DirectionCount;
    use Transport::{LongPoll, ShortPoll, Sse, Ws};

    /// Wire figures with `ip` IP bytes per message and `idle` IP bytes per client per
    /// day; the rest zero.
    pub(crate) fn wire(source: WireSource, ip: f64, idle: f64) -> Wire {
        Wire {
            source,
            to_server: DirectionCount::default(),
            to_clients: DirectionCount::default(),
            ip_bytes_per_message: ip,
            packets_per_message: 2.5,
            header_bytes_per_message: 0.0,
            retransmitted_packets: 7,
            dropped_packets: 3,
            idle_ip_bytes_per_client_per_second: idle / 86_400.0,
            idle_ip_bytes_per_client_per_day: idle,
            idle_packets_per_client_per_second: 0.0,
            link_cpu_us_per_packet: None,
            link_system_cpu_us_per_packet: None,
        }
    }

    /// The measured lab of the packet link: payload and IP bytes per message, idle
    /// payload and IP bytes per client per day, for short poll, long poll, SSE, ws.
    const LAB: [(f64, f64, f64, f64); 4] = [
        (242.0, 273.0, 47.0e6, 74.0e6),
        (475.0, 643.0, 24.8e6, 38.3e6),
        (232.0, 342.0, 1.6e6, 10.6e6),
        (192.0, 314.0, 0.69e6, 14.2e6),
    ];

    fn lab(source: Option<WireSource>) -> Results {
        let mut results = run(0.0);
        for (transport, (payload, ip, idle_payload, idle_ip)) in Transport::ALL.into_iter().zip(LAB) {
            let t = of(&mut results, transport);
            t.traffic.bytes_per_message = payload;
            t.idle.bytes_per_client_per_day = idle_payload;
            t.wire = source.map(|s| wire(s, ip, idle_ip));
        }
        results
    }

    fn row<'a>(rows: &'a [Row], aspect: &str) -> &'a Row {
        rows.iter().find(|r| r.aspect.starts_with(aspect)).unwrap_or_else(|| panic!("no {aspect} row"))
    }

    #[test]
    fn with_wire_the_efficiency_row_shows_ip_bytes_beside_payload_and_ranks_by_them() {
        let rows = rows(&lab(Some(WireSource::Counted)));
        let efficiency = row(&rows, "Efficiency");
        assert_eq!(efficiency.aspect, "Efficiency (IP bytes per message; payload)");
        assert_eq!(efficiency.cells, ["273 B (242 B)", "643 B (475 B)", "342 B (232 B)", "314 B (192 B)"]);
        // By payload ws is cheapest; on the wire short polling is (its ACKs are few).
        assert_eq!(
            efficiency.verdict,
            "IP bytes rank short_poll < ws ≈ sse < long_poll: seed's order does NOT hold"
        );
        let idle = row(&rows, "Idle");
        assert_eq!(idle.cells[0], "74.0 MB (47.0 MB; 0.00 req/s)");
        assert!(
            idle.verdict.starts_with("IP bytes rank sse < ws < long_poll < short_poll;"),
            "{}",
            idle.verdict
        );
        let packets = row(&rows, "Packets");
        assert_eq!(packets.cells, vec!["2.50 (7 / 3)"; 4]);
        assert!(packets.verdict.contains("counted"), "{}", packets.verdict);
    }

    #[test]
    fn estimated_wire_is_marked() {
        let results = lab(Some(WireSource::Estimated));
        let rows = rows(&results);
        assert_eq!(row(&rows, "Efficiency").cells[3], "~314 B (192 B)");
        assert!(row(&rows, "Efficiency")
            .verdict
            .starts_with("IP bytes (~ estimated from TCP segment counts) rank"));
        assert!(row(&rows, "Idle").cells[0].starts_with("~74.0 MB"));
        assert!(row(&rows, "Packets").cells[0].starts_with("~2.50"));
        assert!(row(&rows, "Packets").verdict.contains("estimated"));
        assert!(terminal(&results).contains("~314 B (192 B)"));
    }

    #[test]
    fn without_wire_on_every_transport_the_rows_stay_on_payload() {
        let without = rows(&lab(None));
        assert_eq!(row(&without, "Efficiency").aspect, "Efficiency (wire bytes per message)");
        assert_eq!(row(&without, "Efficiency").cells[3], "192 B");
        assert_eq!(
            row(&without, "Efficiency").verdict,
            "ws < sse ≈ short_poll < long_poll: seed's order does NOT hold"
        );
        assert_eq!(row(&without, "Idle").verdict, "measured idle rate × 86,400 s");
        assert!(without.iter().all(|r| !r.aspect.starts_with("Packets")));
        // One transport without: the cost rows do not mix IP bytes and payload, the
        // packet row says which lacks them.
        let mut mixed = lab(Some(WireSource::Counted));
        of(&mut mixed, Sse).wire = None;
        let mixed = rows(&mixed);
        assert_eq!(row(&mixed, "Efficiency").cells, row(&without, "Efficiency").cells);
        assert_eq!(row(&mixed, "Packets").cells[2], "n/a");
    }

    #[test]
    fn the_terminal_table_with_wire_fits_100_columns() {
        let mut results = lab(Some(WireSource::Estimated));
        // Large figures: compact cells squeeze, then drop the payload, to stay ≤ 17.
        for (transport, idle) in [(ShortPoll, 312.4e6), (LongPoll, 123.4e6)] {
            let t = of(&mut results, transport);
            t.idle.bytes_per_client_per_day = idle / 2.0;
            t.wire.as_mut().unwrap().idle_ip_bytes_per_client_per_day = idle;
            t.wire.as_mut().unwrap().retransmitted_packets = 123_456;
        }
        of(&mut results, Ws).wire.as_mut().unwrap().idle_ip_bytes_per_client_per_day = 14.2e6;
        let text = terminal(&results);
        for line in text.lines() {
            assert!(line.chars().count() <= TERMINAL_WIDTH, "{} columns: {line}", line.chars().count());
        }
        assert!(text.contains("~312.4 MB  ") || text.contains("~312.4 MB\n"), "{text}");
        assert!(text.contains("~14.2MB (690.0KB)"), "{text}");
    }

    #[test]
    fn the_workload_line_names_a_link_that_is_not_the_default() {
        let mut results = run(0.0);
        assert!(!workload_line(&results).contains("link:"), "{}", workload_line(&results));
        let mut w = results.setup.typed_workload().unwrap();
        w.network.link = LinkKind::Netns;
        w.network.loss.to_clients.rate = 0.01;
        results.setup.workload = serde_json::to_value(&w).unwrap();
        let line = workload_line(&results);
        assert!(
            line.ends_with("; link: packet link (netns), RTT 0 ms, loss 0% to the server, 1% to the clients"),
            "{line}"
        );
    }

    #[test]
    fn a_loss_sweep_compares_ip_bytes_and_retransmissions() {
        let mut runs = vec![lab(Some(WireSource::Counted)), lab(None)];
        let mut w = runs[0].setup.typed_workload().unwrap();
        w.sweep = Some(Sweep::Loss);
        w.condition = Some("loss-1%".into());
        runs[0].setup.workload = serde_json::to_value(&w).unwrap();
        assert_eq!(sweep_title(&runs), "across packet loss rates");
        let text = conditions(&runs);
        let line =
            |start: &str| text.lines().find(|l| l.starts_with(start)).unwrap_or_else(|| panic!("{text}"));
        assert!(line("ws IP bytes/message").contains("314 B"), "{text}");
        assert!(line("ws IP bytes/message").trim_end().ends_with('-'), "{text}");
        assert!(line("ws retransmitted / dropped").contains("7 / 3"), "{text}");
        // Without wire anywhere, no such rows.
        assert!(!conditions(&[lab(None)]).contains("IP bytes"));
    }
}
