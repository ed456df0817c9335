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

/// `docs/claims.md` is what `pushlab claims --from` makes of the committed runs today:
/// a change to a verdict or to the figures it prints must come with the regenerated
/// document.
#[test]
fn docs_claims_md_is_what_claims_from_the_committed_runs_makes() {
    // Cargo runs integration tests from the package's root, where the relative paths
    // of the document (`../results/…`) are meant to be read from.
    let committed = std::fs::read_to_string("docs/claims.md").unwrap();
    let source = committed
        .lines()
        .find_map(|line| line.split("pushlab claims --from ").nth(1))
        .and_then(|rest| rest.split(['`', ' ']).next())
        .expect("docs/claims.md names the runs it was made from");
    let evidence = pushlab_loadgen::claims::Evidence::load(std::path::Path::new(source)).unwrap();
    let made = pushlab_loadgen::claims::verdicts::render(&evidence, std::path::Path::new("docs"));
    assert!(
        made == committed,
        "docs/claims.md is stale: run `cargo run --release -- claims --from {source}` and commit the result"
    );
}
