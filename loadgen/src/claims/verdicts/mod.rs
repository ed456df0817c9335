//! A verdict per claim, computed from the [`Evidence`], rendered as `docs/claims.md`.
//!
//! Each claim gets: the verdict (holds / holds only under stated conditions / does not
//! hold), the measured figures it rests on, and the run that produced them.
//!
//! Every claim is one [`Claim`] item, a row of one table: its id, its text, where it
//! comes from, whether its verdict is measured or editorial, and the function that checks
//! it. The items sit beside their checks, one file per group of claims, and [`CLAIMS`]
//! lists them in the order of `docs/seed-claims.md`:
//!
//! - `seed_table.rs`: C1–C5, the rows of the seed's comparison table.
//! - `websocket.rs`: C6 and C10–C14, what the seeds say of WebSocket.
//! - `polling.rs`: C7–C9, what polling costs and how late it delivers.
//! - `reconnect.rs`: C15 and C16, dropped connections and server outages.
//! - `published.rs`: P1–P3, published figures (Lubbers & Greco, RFC 6455, RFC 6202).
//!
//! The thresholds that turn figures into verdicts are named constants beside the check
//! that uses them, each with the reason for its value, and each check has unit tests on
//! small constructed runs (`build.rs`) that show the verdict change at its threshold.

mod polling;
mod published;
mod reconnect;
mod seed_table;
mod websocket;

// Also used by the tests of `report::table`'s ranking.
#[cfg(test)]
pub(crate) mod build;

use pushlab_protocol::Transport;

use super::{clients, Evidence};
use crate::network::LinkKind;
use crate::results::{Results, TransportResult, Wire, WireSource};

/// The three kinds of verdict, and the answer for a claim the runs cannot check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The claim holds in every measured condition.
    Holds,
    /// It holds only under the conditions the verdict states.
    Conditional,
    /// It does not hold.
    DoesNotHold,
    /// The runs lack what the check needs: [`Lacks`] says what.
    NotMeasured(Lacks),
}

impl Kind {
    /// The verdict in words.
    pub fn label(&self) -> String {
        match self {
            Kind::Holds => "holds".into(),
            Kind::Conditional => "holds only under conditions".into(),
            Kind::DoesNotHold => "does not hold".into(),
            Kind::NotMeasured(lacks) => format!("not measured: the run lacks {}", lacks.0),
        }
    }
}

/// Whether a verdict is computed from the figures or written by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Computed from the runs: other figures can give another verdict.
    Measured,
    /// The lab's reading of the figures, written by hand: the figures printed with it
    /// support it, but the check does not compute it, so it is the same whatever the
    /// runs say. The output says so ("editorial: …"), so nobody mistakes it for a
    /// measurement.
    Editorial,
}

/// What a run lacks for a check, in words: a transport's name, "scale runs".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lacks(pub String);

/// What a check finds in the runs.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The verdict.
    pub kind: Kind,
    /// One sentence: why.
    pub summary: String,
    /// The figures (Markdown: a table or a list), or empty.
    pub figures: String,
}

/// One claim and how it is checked: one item per claim, beside its check.
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    /// `C1` … `C16`, `P1` … `P3`.
    pub id: &'static str,
    /// The claim, as `docs/seed-claims.md` puts it.
    pub claim: &'static str,
    /// Where it comes from.
    pub source: &'static str,
    /// Measured or editorial.
    pub basis: Basis,
    /// The runs the figures come from (folders under the evidence folder).
    pub runs: &'static [&'static str],
    /// Computes the finding, or says what the runs lack for it.
    pub check: fn(&Evidence) -> Result<Finding, Lacks>,
}

/// Every claim, in the order of `docs/seed-claims.md`.
pub const CLAIMS: [Claim; 19] = [
    seed_table::C1,
    seed_table::C2,
    seed_table::C3,
    seed_table::C4,
    seed_table::C5,
    websocket::C6,
    polling::C7,
    polling::C8,
    polling::C9,
    websocket::C10,
    websocket::C11,
    websocket::C12,
    websocket::C13,
    websocket::C14,
    reconnect::C15,
    reconnect::C16,
    published::P1,
    published::P2,
    published::P3,
];

/// One claim's verdict.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// `C1` … `C16`, `P1` … `P3`.
    pub id: &'static str,
    /// The claim, as `docs/seed-claims.md` puts it.
    pub claim: &'static str,
    /// Where it comes from.
    pub source: &'static str,
    /// Measured or editorial.
    pub basis: Basis,
    /// The verdict.
    pub kind: Kind,
    /// One sentence: why.
    pub summary: String,
    /// The figures (Markdown: a table or a list).
    pub figures: String,
    /// The runs the figures come from (folders under the evidence folder).
    pub runs: Vec<&'static str>,
}

impl Verdict {
    /// The verdict in words, marked "editorial: " when it was written by hand.
    pub fn label(&self) -> String {
        match (&self.kind, self.basis) {
            (Kind::NotMeasured(_), _) | (_, Basis::Measured) => self.kind.label(),
            (kind, Basis::Editorial) => format!("editorial: {}", kind.label()),
        }
    }
}

impl Claim {
    /// Checks the claim against the evidence.
    pub fn verdict(&self, e: &Evidence) -> Verdict {
        let finding = (self.check)(e).unwrap_or_else(|lacks| Finding {
            summary: format!(
                "The runs have no figures for this check: they lack {}. Make them with `pushlab claims`.",
                lacks.0
            ),
            kind: Kind::NotMeasured(lacks),
            figures: String::new(),
        });
        Verdict {
            id: self.id,
            claim: self.claim,
            source: self.source,
            basis: self.basis,
            kind: finding.kind,
            summary: finding.summary,
            figures: finding.figures,
            runs: self.runs.to_vec(),
        }
    }
}

/// Every verdict, in the order of `docs/seed-claims.md`.
pub fn all(e: &Evidence) -> Vec<Verdict> {
    CLAIMS.iter().map(|claim| claim.verdict(e)).collect()
}

/// One transport's result in a run, or what the run lacks.
fn need(results: &Results, transport: Transport) -> Result<&TransportResult, Lacks> {
    results.transport(transport).ok_or_else(|| Lacks(transport.name().to_string()))
}

/// A Markdown table: one row per entry of `rows`, one column per header.
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut out = format!("| {} |\n|{}\n", headers.join(" | "), " --- |".repeat(headers.len()));
    for row in rows {
        out += &format!("| {} |\n", row.join(" | "));
    }
    out
}

/// Bytes per delivered message that are not the message JSON: headers, framing,
/// heartbeats, empty polls, requests.
fn overhead_per_message(t: &TransportResult) -> f64 {
    t.traffic.bytes_per_message - t.traffic.message_bytes
}

/// What one TCP segment adds on the wire beyond its payload, which the load generator's
/// counters (TCP payload only) cannot see: Ethernet 14 B + IPv4 20 B + TCP with the
/// timestamp option 32 B. Used only for estimates, which the verdicts label so, and only
/// when the runs have no counted [`Wire`] figures (runs made before the packet link).
const SEGMENT_HEADER_BYTES: f64 = 66.0;

/// How the verdicts name figures from counted [`Wire`] (IP bytes exclude Ethernet's
/// 14-byte header, which the old estimate included).
const ON_THE_WIRE: &str =
    "measured on the wire (IP bytes, every packet counted by the packet link; Ethernet would add 14 B a packet)";

/// A transport's wire figures if the packet link counted them: relay estimates are not
/// measurements, so the verdicts keep their own labelled estimates for those.
fn counted(t: &TransportResult) -> Option<&Wire> {
    t.wire.as_ref().filter(|w| w.source == WireSource::Counted)
}

/// Every transport of `run` has counted wire figures (and there is at least one), so a
/// ranking by them compares like with like.
fn all_counted(run: &Results) -> bool {
    !run.transports.is_empty() && run.transports.iter().all(|t| counted(t).is_some())
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or(String::new(), |first| first.to_uppercase().collect::<String>() + chars.as_str())
}

fn pct(x: f64) -> String {
    format!("{:.1} %", 100.0 * x)
}

/// `docs/claims.md`.
pub fn render(e: &Evidence, doc_dir: &std::path::Path) -> String {
    let verdicts = all(e);
    let link = relative(&e.dir, doc_dir);
    let machine = &e.lab.setup.machine;
    let mut out = String::from("# Every claim, checked\n\n");
    // A run that cannot read its workload is an old one: the relay, as before.
    let netns = e.lab.setup.typed_workload().is_ok_and(|w| w.network.link == LinkKind::Netns);
    out += &if netns {
        format!(
            "Scope: every figure here is HTTP/1.1 in clear text (no TLS); the subscribers' packets crossed a packet \
             link between two network namespaces (every IP packet counted; no loss unless a run lists it), on one \
             {}-core machine shared by the server and the load generator, with the client counts of each run listed \
             below.\n\n",
            machine.cores
        )
    } else {
        format!(
            "Scope: every figure here is HTTP/1.1 in clear text (no TLS), on loopback with no packet loss (the \
             in-process link emulation delays packets but never drops one), on one {}-core machine shared by the \
             server and the load generator, with the client counts of each run listed below.\n\n",
            machine.cores
        )
    };
    out += &format!(
        "Generated by `{}` from the runs in [`{}`]({link}/); do not edit by hand: run `pushlab claims --from {}` \
         to regenerate it, or `pushlab claims` to measure again.\n\n\
         Machine: {} ({} cores), kernel {}; started {}; commit {}.{}\n\n\
         A verdict is one of: **holds**, **holds only under conditions** (stated), **does not hold**. A verdict \
         marked **editorial** is the lab's reading of the figures under it, written by hand: they support it, but it \
         is not computed from them. Each rests on the figures under it; each run's folder has its `summary.md` with \
         the exact command and workload.\n\n",
        e.experiments.command,
        e.dir.display(),
        e.dir.display(),
        machine.cpu_model,
        machine.cores,
        machine.kernel,
        e.lab.setup.started_at,
        e.lab.setup.git_commit.as_deref().unwrap_or("unknown"),
        if e.experiments.quick { " **Quick run: short phases, few clients; for trying out, not for citing.**" } else { "" }
    );
    out += &table(
        &["id", "claim", "verdict"],
        verdicts
            .iter()
            .map(|v| {
                vec![format!("[{}](#{})", v.id, v.id.to_lowercase()), v.claim.replace('|', "\\|"), v.label()]
            })
            .collect(),
    );
    out += "\nThe runs:\n\n";
    for (name, command) in runs(e) {
        out += &format!("- [`{name}`]({link}/{name}/): `{command}`\n");
    }
    out += &format!(
        "- `experiments.json`: the outage and frame experiments (C16, P2), made by `{}` itself\n",
        e.experiments.command
    );
    for v in &verdicts {
        out += &format!(
            "\n## {}\n\n> {} — *{}*\n\n**Verdict: {}.** {}\n",
            v.id,
            v.claim,
            v.source,
            v.label(),
            v.summary
        );
        if !v.figures.is_empty() {
            out += &format!("\n{}", v.figures);
        }
        if !v.runs.is_empty() {
            out += &format!(
                "\nFrom: {}.\n",
                v.runs.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
            );
        }
    }
    out
}

/// Each lab run's folder and the command that made it.
fn runs(e: &Evidence) -> Vec<(String, String)> {
    let mut runs = vec![("lab".to_string(), e.lab.setup.command.clone())];
    if let Some(first) = e.network.first() {
        runs.push(("network".into(), first.setup.command.clone()));
    }
    for r in &e.scale {
        runs.push((format!("scale-{}", clients(r)), r.setup.command.clone()));
    }
    runs.push(("resume".into(), e.resume.setup.command.clone()));
    runs
}

/// `to` as seen from `from` (both relative to the working directory), for links.
fn relative(to: &std::path::Path, from: &std::path::Path) -> String {
    if to.is_absolute() {
        return to.display().to_string();
    }
    let depth = from.components().filter(|c| matches!(c, std::path::Component::Normal(_))).count();
    format!("{}{}", "../".repeat(depth), to.display())
}

#[cfg(test)]
mod tests {
    use super::build::{evidence, of};
    use super::*;

    #[test]
    fn every_claim_has_one_item_in_order() {
        let ids: Vec<&str> = CLAIMS.iter().map(|c| c.id).collect();
        let expected: Vec<String> =
            (1..=16).map(|i| format!("C{i}")).chain((1..=3).map(|i| format!("P{i}"))).collect();
        assert_eq!(ids, expected);
    }

    #[test]
    fn exactly_the_five_constant_verdicts_are_editorial() {
        let editorial: Vec<&str> =
            CLAIMS.iter().filter(|c| c.basis == Basis::Editorial).map(|c| c.id).collect();
        assert_eq!(editorial, ["C4", "C5", "C11", "C14", "P1"]);
    }

    #[test]
    fn an_editorial_verdict_is_labelled_and_a_measured_one_is_not() {
        let e = evidence();
        let verdicts = all(&e);
        let label = |id: &str| verdicts.iter().find(|v| v.id == id).unwrap().label();
        assert_eq!(label("C4"), "editorial: holds");
        assert_eq!(label("C5"), "editorial: holds only under conditions");
        assert!(!label("C7").starts_with("editorial"), "{}", label("C7"));
    }

    #[test]
    fn a_missing_transport_is_not_measured_instead_of_a_panic() {
        let mut e = evidence();
        for run in [&mut e.lab, &mut e.resume].into_iter().chain(&mut e.network).chain(&mut e.scale) {
            run.transports.retain(|t| t.transport != Transport::Ws);
        }
        let verdicts = all(&e);
        for id in ["C1", "C2", "C4", "C6", "C10", "C11", "C12", "C13", "C14", "P1", "P3"] {
            let v = verdicts.iter().find(|v| v.id == id).unwrap();
            assert_eq!(v.kind, Kind::NotMeasured(Lacks("ws".into())), "{id}");
            assert_eq!(v.label(), "not measured: the run lacks ws", "{id}");
        }
        // Rendering the document with holes in it works too.
        assert!(render(&e, std::path::Path::new("docs")).contains("not measured: the run lacks ws"));
    }

    #[test]
    fn the_scope_names_the_packet_link_only_when_the_lab_ran_on_it() {
        let mut e = evidence();
        let doc = render(&e, std::path::Path::new("docs"));
        assert!(doc.contains("on loopback with no packet loss (the in-process link emulation"), "{doc}");
        let mut w = e.lab.setup.typed_workload().unwrap();
        w.network.link = LinkKind::Netns;
        e.lab.setup.workload = serde_json::to_value(w).unwrap();
        let doc = render(&e, std::path::Path::new("docs"));
        assert!(
            doc.contains(
                "(no TLS); the subscribers' packets crossed a packet link between two network namespaces (every IP \
                 packet counted; no loss unless a run lists it), on one 2-core machine"
            ),
            "{doc}"
        );
        assert!(!doc.contains("in-process link emulation"), "{doc}");
    }

    #[test]
    fn the_document_has_a_section_per_claim() {
        let mut e = evidence();
        of(&mut e.lab, Transport::Ws).traffic.bytes_per_message = 200.0;
        let doc = render(&e, std::path::Path::new("docs"));
        for claim in CLAIMS {
            assert!(doc.contains(&format!("\n## {}\n", claim.id)), "{}", claim.id);
        }
        assert!(doc.contains("**Verdict: editorial: holds.**"), "{doc}");
    }
}
