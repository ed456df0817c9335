//! Embeds the commit this binary is built from as `PUSHLAB_GIT_COMMIT`, so that
//! `results.json` names the code that measured, not whatever the current directory holds
//! when the run is made (a binary built yesterday, run from another checkout, or
//! installed with `cargo install`).
//!
//! `git rev-parse HEAD`, with `+uncommitted` when the code (Rust sources, manifests, the
//! lock file) differs from that commit; `unknown` when there is no git or no repository
//! (a build from a crates.io-style source archive).

use std::process::Command;

fn main() {
    // Rebuild the value when the commit moves or the code changes; directories are
    // watched recursively by cargo.
    for path in [".git/HEAD", ".git/index", "Cargo.lock", "src", "loadgen/src", "server/src", "protocol/src"]
    {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rustc-env=PUSHLAB_GIT_COMMIT={}", commit().unwrap_or_else(|| "unknown".into()));
}

fn commit() -> Option<String> {
    let git = |args: &[&str]| Command::new("git").args(args).output().ok();
    let head = git(&["rev-parse", "HEAD"]).filter(|o| o.status.success())?;
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let code = [":(glob)**/*.rs", ":(glob)**/Cargo.toml", "Cargo.lock"];
    let changed = git(&[&["diff", "--quiet", "HEAD", "--"][..], &code[..]].concat())
        .is_some_and(|o| o.status.code() == Some(1));
    Some(if changed { format!("{head}+uncommitted") } else { head })
}
