//! C1–C5: the five rows of the seed's comparison table (002), each transport rated
//! High / Medium / Low. C1–C3 compare the measured order with the seed's; C4 and C5 are
//! editorial: the figures show *how* each transport sends and holds state, and the
//! verdict reads them.

use pushlab_protocol::Transport::{LongPoll, ShortPoll, Sse, Ws};

use super::{all_counted, counted, need, table, Basis, Claim, Finding, Kind, Lacks, ON_THE_WIRE};
use crate::claims::{rtt_ms, workload, Evidence};
use crate::complexity::reference_client;
use crate::report::table::{ranking, SeedOrder, TIE};
use crate::report::{bytes, ms};
use crate::results::TransportResult;

/// The verdict for a measured order: a tie (within `TIE`) or a missing transport
/// cannot confirm the seed, so it makes the verdict conditional, not false.
fn seed_kind(order: SeedOrder) -> Kind {
    match order {
        SeedOrder::Holds => Kind::Holds,
        SeedOrder::HoldsWithTies | SeedOrder::NotComparable => Kind::Conditional,
        SeedOrder::DoesNotHold => Kind::DoesNotHold,
    }
}

pub(super) const C1: Claim = Claim {
    id: "C1",
    claim: "Latency: short polling High, long polling Medium, WebSocket Low",
    source: "002 (table)",
    basis: Basis::Measured,
    runs: &["network"],
    check: c1,
};

/// Holds if the p50 order is strictly the seed's at every round-trip time; any tie or
/// inversion at some RTT makes it conditional on the RTT.
fn c1(e: &Evidence) -> Result<Finding, Lacks> {
    let mut rows = Vec::new();
    let mut orders = Vec::new();
    for r in &e.network {
        let (text, order) = ranking(r, |t| t.latency.p50_ms, [Ws, LongPoll, ShortPoll]);
        let cell = |tr| need(r, tr).map(|x| format!("{} / {}", ms(x.latency.p50_ms), ms(x.latency.p99_ms)));
        rows.push(vec![
            format!("{} ms", rtt_ms(r)),
            cell(ShortPoll)?,
            cell(LongPoll)?,
            cell(Sse)?,
            cell(Ws)?,
            text,
        ]);
        orders.push(order);
    }
    let exceptions: Vec<String> = e
        .network
        .iter()
        .zip(&orders)
        .filter(|(_, o)| **o != SeedOrder::Holds)
        .map(|(r, _)| format!("{} ms", rtt_ms(r)))
        .collect();
    let kind = if exceptions.is_empty() { Kind::Holds } else { Kind::Conditional };
    let tie = format!("{:.0} %", 100.0 * TIE);
    let summary = if exceptions.is_empty() {
        "The order holds at every round-trip time measured".to_string()
    } else {
        format!(
            "The order holds except at RTT {}, where long polling ties with WebSocket (within {tie}): a held \
             request answers in one transit, like a stream, while messages are further apart than a round trip",
            exceptions.join(", ")
        )
    }
        + ". The gaps are not what \"Medium\" suggests: short polling costs hundreds of ms (half its \
         interval); long polling a fraction of a ms more than the streams on loopback and up to one more \
         round trip on a distant network.";
    Ok(Finding {
        kind,
        summary,
        figures: table(
            &[
                "RTT",
                "short_poll p50 / p99",
                "long_poll",
                "sse",
                "ws",
                &format!("order by p50 (≈: within {tie})"),
            ],
            rows,
        ),
    })
}

pub(super) const C2: Claim = Claim {
    id: "C2",
    claim: "Efficiency: short polling Low, long polling Medium, WebSocket High",
    source: "002 (table)",
    basis: Basis::Measured,
    runs: &["lab", "network"],
    check: c2,
};

/// Holds if the seed's order holds both per delivered message and per idle day;
/// conditional if only when idle (messages rare); otherwise it does not hold. Ranked by
/// IP bytes when the packet link counted every transport of the lab run (what the
/// network carries), else by TCP payload (runs made before it).
fn c2(e: &Evidence) -> Result<Finding, Lacks> {
    let l = &e.lab;
    let wired = all_counted(l);
    let per_message_of = |t: &TransportResult| {
        counted(t).filter(|_| wired).map_or(t.traffic.bytes_per_message, |w| w.ip_bytes_per_message)
    };
    let idle_of = |t: &TransportResult| {
        counted(t)
            .filter(|_| wired)
            .map_or(t.idle.bytes_per_client_per_day, |w| w.idle_ip_bytes_per_client_per_day)
    };
    let (per_message, per_message_order) = ranking(l, per_message_of, [Ws, LongPoll, ShortPoll]);
    let (idle, idle_order) = ranking(l, idle_of, [Ws, LongPoll, ShortPoll]);
    let mut rows = Vec::new();
    for tr in [ShortPoll, LongPoll, Sse, Ws] {
        let x = need(l, tr)?;
        let mut by_rtt = Vec::new();
        for r in &e.network {
            // Each run's own measure: wire only where that run counted its packets.
            let y = need(r, tr)?;
            let cell = match (wired, counted(y)) {
                (true, Some(w)) => format!("{} (wire)", bytes(w.ip_bytes_per_message)),
                _ => bytes(y.traffic.bytes_per_message),
            };
            by_rtt.push(format!("{cell} @ {} ms", rtt_ms(r)));
        }
        let mut row = vec![tr.name().to_string(), bytes(per_message_of(x))];
        if wired {
            row.push(bytes(x.traffic.bytes_per_message));
        }
        row.push(format!("{:.2}", x.traffic.requests_per_message));
        row.push(bytes(idle_of(x)));
        if wired {
            row.push(bytes(x.idle.bytes_per_client_per_day));
        }
        row.push(by_rtt.join(", "));
        rows.push(row);
    }
    let (kind, summary) = match (per_message_order, idle_order) {
        (SeedOrder::Holds, SeedOrder::Holds) => {
            (Kind::Holds, "The order holds both per message and when idle.".to_string())
        }
        (_, SeedOrder::Holds) => (
            Kind::Conditional,
            format!(
                "Holds when messages are rare (idle cost per client: {idle}), not per delivered message at {} msg/s \
                 ({per_message}): a poll every {} s carries several messages, while long polling pays a full \
                 request and response for each one.",
                workload(l).rate_per_second,
                workload(l).poll_interval_seconds.as_secs_f64()
            ),
        ),
        _ => (Kind::DoesNotHold, format!("Per message: {per_message}; idle: {idle}.")),
    };
    let (summary, headers) = if wired {
        (
            summary + &format!(" Ranked by IP bytes {ON_THE_WIRE}; TCP payload is beside them in the table."),
            vec![
                "transport",
                "IP bytes per message (wire)",
                "TCP payload per message",
                "requests per message",
                "idle IP bytes per client per day (wire)",
                "idle TCP payload per client per day",
                "bytes per message by RTT",
            ],
        )
    } else {
        (
            summary,
            vec![
                "transport",
                "wire bytes per message",
                "requests per message",
                "idle cost per client per day",
                "bytes per message by RTT",
            ],
        )
    };
    Ok(Finding { kind, summary, figures: table(&headers, rows) })
}

pub(super) const C3: Claim = Claim {
    id: "C3",
    claim: "Complexity: short polling Low, long polling Medium, WebSocket High",
    source: "002 (table)",
    basis: Basis::Measured,
    runs: &[],
    check: c3,
};

/// The order of the reference browser clients' sizes (`docs/clients/`, one contract for
/// all four) against the seed's: as the lab run saved them, or, for a run made before
/// they were saved, as this binary has them (and the summary says which).
fn c3(e: &Evidence) -> Result<Finding, Lacks> {
    let saved = e.lab.transports.iter().all(|t| t.reference_client.is_some());
    let size = |t: &TransportResult| t.reference_client.unwrap_or_else(|| reference_client(t.transport));
    let (text, order) = ranking(&e.lab, |t| size(t).lines as f64, [ShortPoll, LongPoll, Ws]);
    let cells = [ShortPoll, LongPoll, Sse, Ws]
        .iter()
        .map(|&tr| {
            e.lab
                .transport(tr)
                .map_or("–".to_string(), |t| format!("{} / {}", size(t).lines, size(t).tokens))
        })
        .collect();
    let whence = if saved {
        "as the lab run saved them"
    } else {
        "as this binary has them: the lab run predates saved sizes"
    };
    Ok(Finding {
        kind: seed_kind(order),
        summary: format!(
            "Measured as the size (lines of code without blanks or comments / tokens) of four browser \
             clients that keep the same contract (resume with the epoch, reset, backoff with jitter, \
             dead-peer detection, publishing), `docs/clients/*.js`, {whence}: {text}. Most of each is the \
             same work; docs/concerns.md says who handles what for each transport (the browser, the \
             protocol, or your code)."
        ),
        figures: table(&["short_poll", "long_poll", "sse", "ws"], vec![cells]),
    })
}

pub(super) const C4: Claim = Claim {
    id: "C4",
    claim: "Bidirectional: only WebSocket",
    source: "002 (table)",
    basis: Basis::Editorial,
    runs: &["lab"],
    check: c4,
};

/// Editorial: which transport sends on its own connection is a fact of the protocols;
/// the figures show what sending costs each.
fn c4(e: &Evidence) -> Result<Finding, Lacks> {
    let rows = e
        .lab
        .transports
        .iter()
        .map(|x| {
            vec![
                x.transport.name().to_string(),
                x.upstream.method.clone(),
                bytes(x.upstream.bytes_per_send),
                format!("{} / {}", ms(x.upstream.p50_ms), ms(x.upstream.p99_ms)),
            ]
        })
        .collect();
    let ws = need(&e.lab, Ws)?;
    let sp = need(&e.lab, ShortPoll)?;
    Ok(Finding {
        kind: Kind::Holds,
        summary: format!(
            "Only WebSocket sends on the connection it receives on. The others send with a separate HTTP request: \
             it works, at {} per send against WebSocket's {}.",
            bytes(sp.upstream.bytes_per_send),
            bytes(ws.upstream.bytes_per_send)
        ),
        figures: table(&["transport", "how a client sends", "bytes per send", "send → acknowledged p50 / p99"], rows),
    })
}

pub(super) const C5: Claim = Claim {
    id: "C5",
    claim: "Connection: short polling stateless, long polling and WebSocket stateful",
    source: "002 (table)",
    basis: Basis::Editorial,
    runs: &["lab"],
    check: c5,
};

/// Editorial: "stateless" depends on what one counts as state; the figures give the
/// server memory each client costs.
fn c5(e: &Evidence) -> Result<Finding, Lacks> {
    let rows = e
        .lab
        .transports
        .iter()
        .map(|x| {
            let memory =
                x.server.as_ref().map_or("n/a".into(), |s| bytes(s.memory_per_client_bytes.max(0.0)));
            let state = match x.transport {
                ShortPoll => "none between requests: the cursor comes with each poll",
                LongPoll => "a held request (cursor in it) while waiting",
                Sse | Ws => "an open stream with its cursor",
            };
            vec![x.transport.name().to_string(), memory, state.to_string()]
        })
        .collect();
    Ok(Finding {
        kind: Kind::Conditional,
        summary: "Holds for application state: a short poll carries its cursor, so any server can answer it. \
                  It does not hold for connections: with HTTP keep-alive (what browsers do) every polling client \
                  holds a connection too, and it costs the server as much memory as a WebSocket or more."
            .into(),
        figures: table(&["transport", "server memory per connected client", "per-client state on the server"], rows),
    })
}

#[cfg(test)]
mod tests {
    use pushlab_protocol::Transport;

    use super::super::build::{counted_wire, evidence, of};
    use super::*;
    use crate::results::Results;

    /// Sets one figure of short polling, long polling and WebSocket (SSE with WebSocket).
    fn set(
        run: &mut Results,
        [sp, lp, ws]: [f64; 3],
        field: fn(&mut crate::results::TransportResult) -> &mut f64,
    ) {
        *field(of(run, ShortPoll)) = sp;
        *field(of(run, LongPoll)) = lp;
        *field(of(run, Sse)) = ws;
        *field(of(run, Ws)) = ws;
    }

    #[test]
    fn c1_holds_in_the_seed_order_and_is_conditional_on_a_tie() {
        let mut e = evidence();
        for r in &mut e.network {
            set(r, [250.0, 2.0, 1.0], |t| &mut t.latency.p50_ms);
        }
        assert_eq!(c1(&e).unwrap().kind, Kind::Holds);
        // Long polling within TIE of WebSocket at one RTT: a tie, so conditional.
        set(&mut e.network[1], [250.0, 1.0 + TIE * 0.99, 1.0], |t| &mut t.latency.p50_ms);
        let finding = c1(&e).unwrap();
        assert_eq!(finding.kind, Kind::Conditional);
        assert!(finding.summary.contains("except at RTT 50 ms"), "{}", finding.summary);
        // Just outside TIE: strict again.
        set(&mut e.network[1], [250.0, 1.0 + TIE * 1.01, 1.0], |t| &mut t.latency.p50_ms);
        assert_eq!(c1(&e).unwrap().kind, Kind::Holds);
    }

    #[test]
    fn c2_depends_on_the_order_per_message_and_when_idle() {
        let mut e = evidence();
        set(&mut e.lab, [300.0, 200.0, 100.0], |t| &mut t.traffic.bytes_per_message);
        set(&mut e.lab, [3e6, 2e6, 1e6], |t| &mut t.idle.bytes_per_client_per_day);
        assert_eq!(c2(&e).unwrap().kind, Kind::Holds);
        // Long polling the dearest per message, as at 10 messages/s: only when idle.
        set(&mut e.lab, [200.0, 300.0, 100.0], |t| &mut t.traffic.bytes_per_message);
        assert_eq!(c2(&e).unwrap().kind, Kind::Conditional);
        // Wrong way round when idle too.
        set(&mut e.lab, [1e6, 2e6, 3e6], |t| &mut t.idle.bytes_per_client_per_day);
        assert_eq!(c2(&e).unwrap().kind, Kind::DoesNotHold);
    }

    #[test]
    fn c2_ranks_by_counted_wire_bytes_when_every_transport_has_them() {
        let mut e = evidence();
        // Payload in the seed's order; the wire (the quick lab's figures) not.
        set(&mut e.lab, [300.0, 200.0, 100.0], |t| &mut t.traffic.bytes_per_message);
        set(&mut e.lab, [3e6, 2e6, 1e6], |t| &mut t.idle.bytes_per_client_per_day);
        assert_eq!(c2(&e).unwrap().kind, Kind::Holds);
        for (tr, per_message, packets, idle) in [
            (ShortPoll, 273.0, 0.60, 74.0e6),
            (LongPoll, 643.0, 3.11, 20.0e6),
            (Sse, 342.0, 2.18, 10.6e6),
            (Ws, 314.0, 2.36, 14.2e6),
        ] {
            of(&mut e.lab, tr).wire = Some(counted_wire(per_message, packets, idle));
        }
        let finding = c2(&e).unwrap();
        assert_eq!(finding.kind, Kind::Conditional, "{}", finding.summary);
        assert!(finding.summary.contains("(short_poll < ws ≈ sse < long_poll)"), "{}", finding.summary);
        assert!(finding.summary.contains("sse < ws < long_poll < short_poll"), "{}", finding.summary);
        assert!(finding.summary.contains("Ranked by IP bytes measured on the wire"), "{}", finding.summary);
        assert!(finding.figures.contains("| short_poll | 273 B | 300 B |"), "{}", finding.figures);
        // One transport without counted wire: payload ranks, as in runs made before.
        of(&mut e.lab, Ws).wire = None;
        let finding = c2(&e).unwrap();
        assert_eq!(finding.kind, Kind::Holds);
        assert!(!finding.summary.contains("wire"), "{}", finding.summary);
        assert!(
            finding.figures.starts_with("| transport | wire bytes per message | requests"),
            "{}",
            finding.figures
        );
    }

    #[test]
    fn c3_maps_the_order_of_lines_of_code_to_a_verdict() {
        assert_eq!(seed_kind(SeedOrder::Holds), Kind::Holds);
        assert_eq!(seed_kind(SeedOrder::HoldsWithTies), Kind::Conditional);
        assert_eq!(seed_kind(SeedOrder::NotComparable), Kind::Conditional);
        assert_eq!(seed_kind(SeedOrder::DoesNotHold), Kind::DoesNotHold);
        // Lines of code come from this repository, not from the runs' figures.
        let mut other = evidence();
        set(&mut other.lab, [9.0, 9.0, 9.0], |t| &mut t.latency.p50_ms);
        assert_eq!(c3(&evidence()).unwrap().kind, c3(&other).unwrap().kind);
    }

    #[test]
    fn c4_and_c5_are_editorial_whatever_the_figures() {
        let mut e = evidence();
        assert_eq!(c4(&e).unwrap().kind, Kind::Holds);
        assert_eq!(c5(&e).unwrap().kind, Kind::Conditional);
        for t in &mut e.lab.transports {
            t.upstream.bytes_per_send = 1e6;
        }
        assert_eq!(c4(&e).unwrap().kind, Kind::Holds);
        assert_eq!(c5(&e).unwrap().kind, Kind::Conditional);
        e.lab.transports.retain(|t| t.transport != Transport::ShortPoll);
        assert_eq!(c4(&e).unwrap_err(), Lacks("short_poll".into()));
    }
}
