//! README.md as a workflow author reads it: every ```yaml block parses, and,
//! made a workflow, passes actionlint (on PATH after scripts/chain-up); the
//! migration table lists build-push-action v6's 33 inputs, each declared in
//! action.yml or refused by name (exit 2).

mod support;

use std::process::Command;

use serde_yaml::{Mapping, Value};
use support::{repo_root, BUILD_PUSH_ACTION_V6};

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).unwrap()
}

/// The ```yaml blocks: (line of the fence, text).
fn yaml_blocks(md: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in md.lines().enumerate() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```yaml") => current = Some((n + 1, String::new())),
            (Some(_), "```") => out.push(current.take().unwrap()),
            (Some((_, text)), _) => {
                text.push_str(line);
                text.push('\n');
            }
            _ => {}
        }
    }
    assert!(current.is_none(), "a ```yaml block is not closed");
    out
}

/// A block as a whole workflow: `jobs:` gets `on: push` if it has none; a
/// job's keys (`steps:`, `permissions:`) become one job on ubuntu-24.04.
fn as_workflow(block: Value) -> Value {
    let mut map = match block {
        Value::Mapping(m) => m,
        other => panic!("a README yaml block is not a mapping: {other:?}"),
    };
    let key = |k: &str| Value::String(k.into());
    if map.contains_key(key("jobs")) {
        if !map.contains_key(key("on")) {
            map.insert(key("on"), key("push"));
        }
        return Value::Mapping(map);
    }
    if !map.contains_key(key("runs-on")) {
        map.insert(key("runs-on"), key("ubuntu-24.04"));
    }
    let mut jobs = Mapping::new();
    jobs.insert(key("readme"), Value::Mapping(map));
    let mut wf = Mapping::new();
    wf.insert(key("on"), key("push"));
    wf.insert(key("jobs"), Value::Mapping(jobs));
    Value::Mapping(wf)
}

#[test]
fn every_yaml_block_parses_and_passes_actionlint() {
    let md = readme();
    let blocks = yaml_blocks(&md);
    assert!(blocks.len() >= 3, "{blocks:?}");
    let d = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (line, text) in blocks {
        let parsed: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| {
            panic!("README.md line {line}: the yaml block does not parse: {e}\n{text}")
        });
        let wf = serde_yaml::to_string(&as_workflow(parsed)).unwrap();
        let file = d.path().join(format!("readme-{line}.yml"));
        std::fs::write(&file, &wf).unwrap();
        let o = Command::new("actionlint")
            .arg("-no-color")
            .arg(&file)
            .output()
            .expect("actionlint is on PATH (scripts/chain-up installs it)");
        if !o.status.success() {
            failures.push(format!(
                "README.md line {line}:\n{}{}\n--- as linted:\n{wf}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A broken block is caught: the old headline example's flow mapping.
#[test]
fn the_check_catches_what_it_is_for() {
    let bad = "with: { username: ${{ github.actor }} }\n";
    assert!(serde_yaml::from_str::<Value>(bad).is_err());
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("bad.yml");
    let wf = as_workflow(
        serde_yaml::from_str(
            "steps:\n  - uses: org/mbx-action@v1\n    with: {push: true}\n    run: echo\n",
        )
        .unwrap(),
    );
    std::fs::write(&file, serde_yaml::to_string(&wf).unwrap()).unwrap();
    let o = Command::new("actionlint").arg(&file).output().unwrap();
    assert!(!o.status.success(), "uses and run in one step is an error");
}

#[test]
fn the_migration_table_lists_every_build_push_action_input() {
    let md = readme();
    let start = md
        .find("#### Migrating from docker/build-push-action v6")
        .expect("the migration table's heading");
    let table: Vec<&str> = md[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .collect();
    let rows: Vec<(String, String)> = table
        .iter()
        .skip(2)
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_string(), cells[3].to_string())
        })
        .collect();
    let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    let mut want = BUILD_PUSH_ACTION_V6.to_vec();
    want.sort();
    let mut got = names.clone();
    got.sort();
    assert_eq!(got, want, "one row per input, no other");
    let yml = std::fs::read_to_string(repo_root().join("action.yml")).unwrap();
    for (name, note) in &rows {
        let declared = yml.contains(&format!("\n  {name}:\n"));
        assert!(
            declared || note.contains("exit 2"),
            "`{name}` is declared in action.yml, or the table says it fails with exit 2"
        );
    }
}
