//! `pushlab claims --quick` end to end: every claim of `docs/seed-claims.md` gets a
//! verdict backed by figures, and the verdicts that do not depend on the machine come
//! out as measured elsewhere (P2 exact header sizes, C15 nothing lost, C16 the seed's
//! schedule giving up in a long outage).
//!
//! Ignored by default (about three minutes); `.ci/run` runs it with the labs test.

use std::process::Command;

#[test]
#[ignore = "about three minutes; run by .ci/run with --ignored"]
fn claims_gives_every_claim_a_verdict_with_figures() {
    let temp = tempfile::Builder::new().prefix("pushlab-claims-").tempdir().unwrap();
    let dir = temp.path();
    let doc = dir.join("claims.md");
    let output = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["claims", "--quick", "--out"])
        .arg(dir.join("runs"))
        .arg("--doc")
        .arg(&doc)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let text = std::fs::read_to_string(&doc).unwrap();
    let ids: Vec<String> =
        (1..=16).map(|i| format!("C{i}")).chain((1..=3).map(|i| format!("P{i}"))).collect();
    for id in &ids {
        let section = text.split(&format!("\n## {id}\n")).nth(1).unwrap_or_else(|| panic!("no section {id}"));
        let section = section.split("\n## ").next().unwrap();
        assert!(section.contains("**Verdict: "), "{id} has no verdict:\n{section}");
        assert!(section.chars().any(|c| c.is_ascii_digit()), "{id} has no figures:\n{section}");
    }
    let verdict_of = |id: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("{id}: {stdout}"))
    };
    assert!(verdict_of("P2").contains(" holds "), "{stdout}");
    assert!(verdict_of("C15").contains("does not hold"), "{stdout}");
    assert!(verdict_of("C16").contains("only under conditions"), "{stdout}");
    // Regenerating from the saved runs gives the same document.
    let again = dir.join("again.md");
    let status = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["claims", "--from"])
        .arg(dir.join("runs"))
        .arg("--doc")
        .arg(&again)
        .status()
        .unwrap();
    assert!(status.success());
    let normalise = |s: String| s.lines().skip(3).collect::<Vec<_>>().join("\n");
    assert_eq!(normalise(std::fs::read_to_string(&again).unwrap()), normalise(text));
}
