//! The README's table is `pushlab report` of the reference run it names, today: a change
//! to the table's code, or a new reference run, must come with the README that shows it.

use std::process::Command;

#[test]
fn the_readme_table_is_pushlab_report_of_the_reference_run() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = &readme[readme.find("## What the lab shows").expect("the README shows the lab")..];
    let run = section
        .split("[`results/")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .map(|dir| format!("results/{}", dir.trim_end_matches('/')))
        .expect("the section names its reference run");
    let start = section.find("```\n").expect("a table block") + 4;
    let shown = &section[start..start + section[start..].find("```").unwrap()];
    let output = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["report", &format!("{run}/results.json")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8(output.stdout).unwrap();
    let table = printed.trim_start_matches('\n');
    assert!(
        table.trim_end() == shown.trim_end(),
        "README.md's table is not `pushlab report {run}/results.json`; paste:\n{table}"
    );
}
