//! Every file the documentation points at is there: the paths named in `README.md`, in
//! `docs/**/*.md` and in the comments of the Rust sources exist in this repository, and
//! none of them points outside it (a sibling folder of the checkout is on the author's
//! machine, not on a reader's).
//!
//! The extraction is conservative, so that the test never cries wolf: it checks only
//! what is certainly meant as a path in this repository —
//!
//! - a Markdown link's target (`[text](target)`), resolved from the document's folder;
//! - a backticked span that starts with one of the repository's top-level folders
//!   (`server/src/log.rs`, `docs/api.md`, `loadgen/src/client/`), resolved from the
//!   repository's root;
//! - in a Rust comment, a backticked span with a folder and a known extension (such as
//!   client/lean_http.rs in a comment under loadgen/src/), resolved from the file's
//!   folder or any folder above it, as a reader would look for it.
//!
//! Spans with spaces or wildcards (commands, `client/*.rs`), bare file names
//! (`summary.md`: a file of every run folder), what a document's own commands write
//! (`--out results/lab3`) and URLs are not checked. On top of that, a Markdown file
//! named in capitals (like `README.md`) must be the name of a file somewhere in the
//! repository, and no path may climb out of it with `..`.

use std::path::{Component, Path, PathBuf};

/// The repository's root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Extensions that make a span a file path rather than a word.
const EXTENSIONS: [&str; 11] = ["rs", "md", "json", "toml", "html", "svg", "csv", "txt", "yml", "sh", "lock"];

/// Folders never searched: build output and version control.
fn skipped(name: &str) -> bool {
    name == "target" || name.starts_with('.') && name != ".ci"
}

/// Every file under `dir` whose name ends with `extension`, recursively.
fn files(dir: &Path, extension: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !skipped(&name) {
                files(&path, extension, out);
            }
        } else if name.ends_with(extension) {
            out.push(path);
        }
    }
}

/// The lines of a file that are prose, with their line numbers: outside code fences in
/// Markdown, the comments in Rust.
fn prose(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let rust = path.extension().is_some_and(|e| e == "rs");
    let mut in_fence = false;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if rust {
            if let Some(comment) = trimmed.strip_prefix("//") {
                lines.push((i + 1, comment.to_string()));
            }
        } else if trimmed.starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence {
            lines.push((i + 1, line.to_string()));
        }
    }
    lines
}

/// The inline code spans of a line: the text between pairs of backticks.
fn code_spans(line: &str) -> impl Iterator<Item = &str> {
    line.split('`').skip(1).step_by(2)
}

/// The targets of a line's Markdown links, `[text](target)`, without an `#anchor`.
fn link_targets(line: &str) -> Vec<&str> {
    line.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &line[at + 2..];
            let target = &rest[..rest.find(')')?];
            Some(target.split('#').next().unwrap_or(""))
        })
        .filter(|t| !t.is_empty() && !t.contains("://") && !t.starts_with("mailto:"))
        .collect()
}

/// Whether a span could only be a path: no spaces, wildcards, placeholders or URLs.
fn plain(span: &str) -> bool {
    !span.is_empty()
        && !span.contains("://")
        && !span.contains(|c: char| c.is_whitespace() || "*?<>{}$|,;…()[]'\"=".contains(c))
}

/// Whether the last part of a path has one of [`EXTENSIONS`].
fn has_extension(span: &str) -> bool {
    let last = span.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    last.rsplit_once('.').is_some_and(|(stem, ext)| !stem.is_empty() && EXTENSIONS.contains(&ext))
}

/// Whether a span starts with one of the repository's top-level folders (`.ci` too).
fn starts_at_top_folder(span: &str) -> bool {
    match span.split_once('/') {
        Some((first, _)) => !first.is_empty() && !skipped(first) && root().join(first).is_dir(),
        None => false,
    }
}

/// `base/relative` with `.` and `..` folded, or `None` if it climbs above the root.
fn resolve(base: &Path, relative: &str) -> Option<PathBuf> {
    let mut parts: Vec<Component> = base.strip_prefix(root()).unwrap().components().collect();
    for part in Path::new(relative).components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.iter().fold(root().to_path_buf(), |path, part| path.join(part)))
}

/// The problem with `span` resolved from `base`, if it has one.
fn missing(base: &Path, span: &str, from: &str) -> Option<String> {
    match resolve(base, span) {
        None => Some(format!("`{span}` points outside the repository")),
        Some(path) if !path.exists() => Some(format!("`{span}` does not exist (looked {from})")),
        Some(_) => None,
    }
}

/// Whether `name` is a Markdown file named in capitals, like `README.md`.
fn capital_markdown(name: &str) -> bool {
    name.strip_suffix(".md").is_some_and(|stem| {
        !stem.is_empty() && stem.chars().all(|c| c.is_ascii_uppercase() || c == '_' || c == '-')
    })
}

/// The folders a file's own commands write into (`--out results/lab3`): they exist only
/// once a reader has run them.
fn outputs(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let words: Vec<&str> = text.split_whitespace().collect();
    words.windows(2).filter(|w| w[0] == "--out").map(|w| w[1].trim_end_matches('/').to_string()).collect()
}

/// What is wrong with the paths one line names, one entry per problem. `written` are the
/// file's [`outputs`].
fn problems_in_line(file: &Path, line: &str, written: &[String], markdown_names: &[String]) -> Vec<String> {
    let folder = file.parent().unwrap();
    let rust = file.extension().is_some_and(|e| e == "rs");
    // In a Rust comment a path climbing out with `..` is meant from the root.
    let parent_base = if rust { root() } else { folder };
    let mut problems = Vec::new();
    // Rust doc links are mostly to items (`crate::x`), so only path-like ones count.
    for target in link_targets(line) {
        if plain(target) && !target.contains("::") && (!rust || has_extension(target)) {
            problems.extend(missing(folder, target, "from the file's folder"));
        }
    }
    for span in code_spans(line).map(|s| s.trim_end_matches(['.', ':'])) {
        let output = written.iter().any(|out| span.starts_with(&format!("{out}/")) || span == out);
        if !plain(span) || span.starts_with('/') || output {
            continue;
        }
        if span.starts_with("../") {
            problems.extend(missing(parent_base, span, "from the file's folder"));
        } else if starts_at_top_folder(span) {
            problems.extend(missing(root(), span, "from the repository's root"));
        } else if rust && span.contains('/') && has_extension(span) {
            // Such as client/lean_http.rs in a comment under loadgen/src/: a reader
            // looks beside the file, then a folder up, and so on.
            let found = folder
                .ancestors()
                .take_while(|a| a.starts_with(root()))
                .any(|base| resolve(base, span).is_some_and(|path| path.exists()));
            if !found {
                problems.push(format!("`{span}` is in no folder from the file's up to the root"));
            }
        }
    }
    // A path out of the repository need not be in backticks or a link to mislead.
    for word in line.split(|c: char| c.is_whitespace() || "()[]`'\",;".contains(c)) {
        let already_checked = code_spans(line).any(|span| span == word) || link_targets(line).contains(&word);
        if word.starts_with("../") && !already_checked && resolve(parent_base, word).is_none() {
            problems.push(format!("{word} points outside the repository"));
        }
        let name = word.trim_end_matches(|c: char| !c.is_alphanumeric());
        if capital_markdown(name) && !markdown_names.iter().any(|n| n == name) {
            problems.push(format!("{name} is not a file of this repository"));
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

#[test]
fn every_path_named_in_the_docs_and_comments_exists_in_the_repository() {
    let mut documents = vec![root().join("README.md")];
    files(&root().join("docs"), ".md", &mut documents);
    let mut sources = Vec::new();
    files(root(), ".rs", &mut sources);
    let mut markdown = Vec::new();
    files(root(), ".md", &mut markdown);
    let markdown_names: Vec<String> =
        markdown.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert!(documents.len() > 10 && sources.len() > 50, "the walk found too little: {documents:?}");

    let mut problems = Vec::new();
    for file in documents.iter().chain(&sources) {
        let shown = file.strip_prefix(root()).unwrap().display();
        let written = outputs(file);
        for (number, line) in prose(file) {
            for problem in problems_in_line(file, &line, &written, &markdown_names) {
                problems.push(format!("{shown}:{number}: {problem}"));
            }
        }
    }
    assert!(problems.is_empty(), "{} broken pointers:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn the_extraction_finds_paths_and_leaves_words_alone() {
    let line = "see [the API](docs/api.md#errors), `server/src/log.rs`, `GET /poll`, `client/*.rs`";
    assert_eq!(link_targets(line), ["docs/api.md"]);
    let spans: Vec<&str> = code_spans(line).filter(|s| plain(s)).collect();
    assert_eq!(spans, ["server/src/log.rs"]);
    assert!(starts_at_top_folder("server/src/log.rs") && !starts_at_top_folder("text/event-stream"));
    assert!(has_extension("client/lean_http.rs") && !has_extension("application/json"));
    assert_eq!(resolve(&root().join("docs"), "../README.md"), Some(root().join("README.md")));
    assert_eq!(resolve(root(), "../elsewhere/NOTES.md"), None);
}
