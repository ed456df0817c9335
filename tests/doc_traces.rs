//! The traces printed in `docs/transports/*.md` are what `pushlab trace` prints today:
//! the same exchanges, line for line, with the same byte counts and labels. Times,
//! dates, ports, keys, epochs and timestamps differ from run to run and are not
//! compared; every byte count and what it is called are.

use std::process::Command;

use pushlab_protocol::Transport;

/// The lines of a trace that do not change between runs: per exchanged piece its
/// direction, size and label, then the closing summary.
fn shape(trace: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for line in trace.lines() {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let arrow = tokens.iter().position(|t| *t == "→" || *t == "←");
        match arrow {
            // `  0.741 ms →    27 B  request line     GET /sse …`: the label is the text
            // between the size and the next wide gap.
            Some(i) if tokens.get(i + 2) == Some(&"B") => {
                let after_size = line.split_once(" B  ").map_or("", |(_, rest)| rest);
                let label = after_size.split("  ").next().unwrap_or("").trim();
                lines.push(format!("{} {} B {label}", tokens[i], tokens[i + 1]));
            }
            Some(_) => lines.push(line.trim().to_string()),
            // The summary: `client → server: 106 B`, `   106 B  HTTP request…`.
            None if line.contains(" B ") || line.ends_with(" B") => lines.push(line.trim().to_string()),
            None => {}
        }
    }
    lines
}

/// The ```text block after "`pushlab trace --transport NAME`" in the transport's page.
fn documented(transport: Transport) -> String {
    let path = format!("{}/docs/transports/{transport}.md", env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(&path).unwrap();
    let from =
        page.find(&format!("`pushlab trace --transport {transport}`")).expect("the page shows a trace");
    let block = &page[from..];
    let start = block.find("```text\n").expect("a text block") + 8;
    let end = block[start..].find("```").unwrap();
    block[start..start + end].to_string()
}

#[test]
fn the_traces_in_the_docs_are_what_pushlab_trace_prints_today() {
    for transport in Transport::ALL {
        let output = Command::new(env!("CARGO_BIN_EXE_pushlab"))
            .args(["trace", "--transport", transport.name()])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let printed = String::from_utf8(output.stdout).unwrap();
        let (now, docs) = (shape(&printed), shape(&documented(transport)));
        if now != docs {
            let first = now.iter().zip(&docs).position(|(a, b)| a != b).unwrap_or(now.len().min(docs.len()));
            panic!(
                "docs/transports/{transport}.md shows another trace than `pushlab trace --transport {transport}` \
                 prints now (first difference at line {first}: now {:?}, docs {:?}). Paste the new output:\n{printed}",
                now.get(first),
                docs.get(first)
            );
        }
    }
}
