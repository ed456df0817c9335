//! C15 and C16: what happens to messages when connections drop (C15), and to clients
//! when the server is down for a while (C16).

use pushlab_protocol::Transport::Sse;

use super::{need, table, Basis, Claim, Finding, Kind, Lacks};
use crate::claims::outage::Outage;
use crate::claims::{workload, Evidence};
use crate::report::ms;

pub(super) const C15: Claim = Claim {
    id: "C15",
    claim: "SSE has no reconnection handling; messages are lost on reconnect",
    source: "004",
    basis: Basis::Measured,
    runs: &["resume"],
    check: c15,
};

/// Does not hold if the SSE clients of the resume run, which drop their connection
/// again and again, lost and duplicated nothing; holds otherwise.
fn c15(e: &Evidence) -> Result<Finding, Lacks> {
    let rows = e
        .resume
        .transports
        .iter()
        .map(|x| {
            let d = &x.delivery;
            vec![
                x.transport.name().to_string(),
                x.traffic.connections.to_string(),
                d.delivered.to_string(),
                format!("{} / {} / {}", d.lost, d.duplicated, d.reordered),
            ]
        })
        .collect();
    let sse = need(&e.resume, Sse)?;
    let clean = sse.delivery.lost == 0 && sse.delivery.duplicated == 0;
    let drop_every = workload(&e.resume).drop_every_seconds.map_or(0.0, |d| d.as_secs_f64());
    Ok(Finding {
        kind: if clean { Kind::DoesNotHold } else { Kind::Holds },
        summary: format!(
            "Every SSE client dropped its connection every {drop_every} s ({} connections in the measured window) and \
             lost {} messages. What was measured: pushlab's own SSE client, which reconnects by itself and resumes \
             with `?since=` and the cursor from the last event's `id:`; the server treats that as it treats \
             `Last-Event-ID`, the header a browser's EventSource sends when it reconnects after a dropped stream \
             (tests/browser.rs checks that path in Chromium). Where the seed is partly right: EventSource reconnects \
             only after a drop; after any answer that is not a 200 event stream, pushlab's own 503 at its connection \
             limit included, it stops for good (WHATWG HTML §9.2) and the page's code must start a new one, with \
             the cursor (docs/concerns.md). Messages are lost only with a server that sends no ids or keeps no \
             history, and then on every transport.",
            sse.traffic.connections, sse.delivery.lost
        ),
        figures: table(&["transport", "connections opened", "delivered", "lost / duplicated / reordered"], rows),
    })
}

pub(super) const C16: Claim = Claim {
    id: "C16",
    claim: "Reconnect with exponential backoff (1, 2, 4, 8, 16 s, then give up) keeps clients connected",
    source: "003, 002",
    basis: Basis::Measured,
    runs: &["experiments.json"],
    check: c16,
};

/// Holds if every client of the seed's policy came back after every outage; conditional
/// if after some outages (the short ones); does not hold if after none.
fn c16(e: &Evidence) -> Result<Finding, Lacks> {
    let outages: &[Outage] = &e.experiments.outages;
    if outages.is_empty() {
        return Err(Lacks("the outage experiments".into()));
    }
    let mut rows = Vec::new();
    for o in outages {
        for p in &o.outcomes {
            rows.push(vec![
                format!("{:.1} s", o.down_seconds),
                p.policy.split(':').next().unwrap_or("").to_string(),
                format!("{} / {}", p.reconnected, p.clients),
                p.gave_up.to_string(),
                match (p.first_back_ms, p.last_back_ms) {
                    (Some(a), Some(b)) => format!("{} – {}", ms(a), ms(b)),
                    _ => "-".into(),
                },
                p.busiest_100ms.to_string(),
            ]);
        }
    }
    let seed_outcome = |o: &Outage| o.outcomes.iter().find(|p| p.policy.starts_with("seed")).cloned();
    let all_back = |o: &Outage| seed_outcome(o).is_some_and(|p| p.reconnected == p.clients);
    let kind = if outages.iter().all(all_back) {
        Kind::Holds
    } else if outages.iter().any(all_back) {
        Kind::Conditional
    } else {
        Kind::DoesNotHold
    };
    // What jitter costs: the last client back after the server returned, against the
    // seed's, for the first outage both policies came back from.
    let jitter_cost = outages
        .iter()
        .find_map(|o| {
            let seed = o.outcomes.iter().find(|p| p.policy.starts_with("seed"))?;
            let jittered = o.outcomes.iter().find(|p| p.policy.starts_with("jitter"))?;
            let (seed_last, jittered_last) = (seed.last_back_ms?, jittered.last_back_ms?);
            Some(format!(
                ", at a price: after the {:.0} s outage the last jittered client was back {} after the restart, \
                 against {} for the seed's schedule (a jittered wait can last the whole current step)",
                o.down_seconds,
                ms(jittered_last),
                ms(seed_last)
            ))
        })
        .unwrap_or_default();
    let unit = outages.first().map_or(1.0, |o| o.unit_seconds);
    let scaled = if (unit - 1.0).abs() > 1e-9 {
        format!(" (quick run: every time scaled by {unit}, so 1 s of the schedule took {unit} s)")
    } else {
        String::new()
    };
    let policies = outages
        .first()
        .map(|o| o.outcomes.iter().map(|p| format!("- {}", p.policy)).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default();
    Ok(Finding {
        kind,
        summary: format!(
            "The seed's schedule tries at 1, 3, 7, 15 and 31 s after the drop, then gives up: it rides out an outage \
             shorter than 31 s and loses every client in a longer one (a deploy, a failover). And since every client \
             waits exactly the same, they all come back in the same instant (\"busiest 100 ms\"): a thundering herd. \
             Random (jittered) waits that never give up keep every client and spread the reconnections{jitter_cost}\
             {scaled}."
        ),
        figures: format!(
            "{policies}\n\n{}",
            table(
                &["outage", "policy", "back", "gave up", "back after restart (first – last)", "busiest 100 ms"],
                rows
            )
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::super::build::{evidence, of};
    use super::*;
    use crate::claims::outage::PolicyOutcome;

    #[test]
    fn c15_does_not_hold_while_sse_loses_and_duplicates_nothing() {
        let mut e = evidence();
        assert_eq!(c15(&e).unwrap().kind, Kind::DoesNotHold);
        of(&mut e.resume, Sse).delivery.lost = 1;
        assert_eq!(c15(&e).unwrap().kind, Kind::Holds);
        of(&mut e.resume, Sse).delivery.lost = 0;
        of(&mut e.resume, Sse).delivery.duplicated = 1;
        assert_eq!(c15(&e).unwrap().kind, Kind::Holds);
    }

    /// An outage in which `reconnected` of the seed policy's 10 clients came back.
    fn outage(reconnected: usize) -> Outage {
        let outcome = |policy: &str, reconnected| PolicyOutcome {
            policy: policy.into(),
            clients: 10,
            reconnected,
            gave_up: 10 - reconnected,
            failed_attempts: 0,
            first_back_ms: None,
            last_back_ms: None,
            busiest_100ms: reconnected,
        };
        Outage {
            down_seconds: 10.0,
            unit_seconds: 1.0,
            outcomes: vec![outcome("seed: 1, 2, 4, 8, 16 s", reconnected), outcome("jittered", 10)],
        }
    }

    #[test]
    fn c16_holds_only_if_every_seed_client_comes_back_after_every_outage() {
        let mut e = evidence();
        e.experiments.outages = vec![outage(10), outage(10)];
        assert_eq!(c16(&e).unwrap().kind, Kind::Holds);
        e.experiments.outages = vec![outage(10), outage(9)];
        assert_eq!(c16(&e).unwrap().kind, Kind::Conditional);
        e.experiments.outages = vec![outage(0), outage(9)];
        assert_eq!(c16(&e).unwrap().kind, Kind::DoesNotHold);
        e.experiments.outages = vec![];
        assert_eq!(c16(&e).unwrap_err(), Lacks("the outage experiments".into()));
    }
}
