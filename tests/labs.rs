//! Every command in the labs runs as written (`docs/labs/*.md`, `bash` blocks), in quick
//! mode: shorter phases and at most 20 clients, output to a temporary folder.
//!
//! Ignored by default because it takes about three minutes; `.ci/run` runs it with
//! `cargo test --test tests labs -- --ignored`. `cargo test` commands inside the labs are
//! left out here (they are tests of this same suite, and cargo cannot run inside itself);
//! `console` blocks are interactive and left out too.

use std::path::Path;

/// The `bash` blocks' commands of one lab.
fn commands(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_bash = false;
    for line in markdown.lines() {
        match line.trim() {
            "```bash" => in_bash = true,
            "```" => in_bash = false,
            command if in_bash && !command.is_empty() && !command.starts_with('#') => {
                out.push(command.to_string())
            }
            _ => {}
        }
    }
    out
}

/// `cargo run --release -- ARGS` as quick-mode arguments for the pushlab binary.
fn quick(args: &str, out: &Path) -> Vec<String> {
    let mut args: Vec<String> = args.split_whitespace().map(String::from).collect();
    if args[0] == "lab" {
        if let Some(i) = args.iter().position(|a| a == "--out") {
            args.drain(i..i + 2);
        }
        if let Some(i) = args.iter().position(|a| a == "--clients") {
            let clients: usize = args[i + 1].parse().unwrap();
            args[i + 1] = clients.min(20).to_string();
        }
        args.extend(["--quick".into(), "--out".into(), out.display().to_string()]);
    }
    args
}

#[test]
#[ignore = "about three minutes; run by .ci/run"]
fn labs_commands_run_as_written() {
    let mut labs: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/labs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md") && p.file_name().unwrap() != "README.md")
        .collect();
    labs.sort();
    assert!(labs.len() >= 6, "at least six labs");
    let dir = tempfile::Builder::new().prefix("pushlab-labs-").tempdir().unwrap();
    for lab in labs {
        let commands = commands(&std::fs::read_to_string(&lab).unwrap());
        assert!(!commands.is_empty(), "{}: no commands", lab.display());
        for command in commands {
            if command.starts_with("cargo test") {
                continue;
            }
            let args = command.strip_prefix("cargo run --release -- ").unwrap_or_else(|| {
                panic!("{}: a lab command should be `cargo run --release -- ...`: {command}", lab.display())
            });
            let args = quick(args, dir.path());
            let output =
                std::process::Command::new(env!("CARGO_BIN_EXE_pushlab")).args(&args).output().unwrap();
            assert!(
                output.status.success(),
                "{}: `{command}` (run as {args:?}) failed:\n{}{}",
                lab.display(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

#[test]
fn lab_commands_are_found_and_shortened() {
    let md = "text\n```bash\ncargo run --release -- lab --clients 1000 --out results/x\n```\n```console\ncargo run --release -- serve\n```\n";
    let found = commands(md);
    assert_eq!(found, vec!["cargo run --release -- lab --clients 1000 --out results/x"]);
    let args = quick(found[0].strip_prefix("cargo run --release -- ").unwrap(), Path::new("/tmp/o"));
    assert_eq!(args, ["lab", "--clients", "20", "--quick", "--out", "/tmp/o"]);
}
