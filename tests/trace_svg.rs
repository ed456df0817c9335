//! `pushlab trace --svg FILE` writes the traced exchange as a sequence diagram: a
//! self-contained, well-formed SVG with one labelled arrow per exchanged piece.

use std::process::Command;

/// The tag names of `svg` in document order, checked to nest: `Err` names the first
/// tag that does not close what is open. Comments, declarations and self-closing tags
/// are allowed; nothing else of XML is needed here.
fn balanced_tags(svg: &str) -> Result<Vec<String>, String> {
    let mut open: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').ok_or("a `<` without `>`")? + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') || tag.starts_with('?') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            match open.pop() {
                Some(top) if top == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            continue;
        }
        let name = tag.split_whitespace().next().unwrap_or("").trim_end_matches('/').to_string();
        if name.is_empty() || tag.contains('<') {
            return Err(format!("a malformed tag <{tag}>"));
        }
        seen.push(name.clone());
        if !tag.ends_with('/') {
            open.push(name);
        }
    }
    if open.is_empty() {
        Ok(seen)
    } else {
        Err(format!("left open: {open:?}"))
    }
}

#[test]
fn the_balanced_tags_check_finds_what_is_wrong() {
    assert!(balanced_tags("<svg><text>a</text><line/></svg>").is_ok());
    assert!(balanced_tags("<svg><text>a</svg>").is_err());
    assert!(balanced_tags("<svg><text>a</text>").is_err());
    assert!(balanced_tags("<svg><text>a < b</text></svg>").is_err());
}

#[test]
fn trace_svg_writes_a_sequence_diagram_of_the_websocket_exchange() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("trace-ws.svg");
    let output = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["trace", "--transport", "ws", "--svg"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // The text trace is printed as before.
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(printed.contains("101 Switching Protocols"), "{printed}");

    let svg = std::fs::read_to_string(&file).unwrap();
    let tags = balanced_tags(&svg).unwrap_or_else(|e| panic!("{e}:\n{svg}"));
    assert_eq!(tags.first().map(String::as_str), Some("svg"), "{svg}");
    assert!(svg.contains(r#"xmlns="http://www.w3.org/2000/svg""#));
    // Self-contained: nothing loaded from elsewhere, nothing run.
    for outside in ["<script", "<image", "@import", "@font-face", "href=\"http", "<foreignObject"] {
        assert!(!svg.contains(outside), "{outside} in\n{svg}");
    }
    for expected in [
        ">client<",
        ">server<",
        "GET /ws?since=0 (",
        "101 Switching Protocols (",
        "WS text frame: hello (49 B)",
        "WS text frame: chat, id 1 (76 B)",
        "WS text frame: chat, id 2 (76 B)",
    ] {
        assert!(svg.contains(expected), "no {expected:?} in\n{svg}");
    }
    // One arrow per piece: the request, the 101, the hello frame, two messages.
    let arrows = tags.iter().filter(|t| *t == "line").count()
        - svg.matches(r#"class="lifeline""#).count()
        - svg.matches(r#"class="gap""#).count();
    assert_eq!(arrows, 5, "{svg}");
    // Timestamps on the left, in milliseconds.
    assert!(svg.contains(" ms</text>"));
}
