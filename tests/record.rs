//! The run record as a contract: its JSON Schema is generated from the types
//! and committed (docs/run-record.schema.json), captured records from before
//! `schema_version` still load, and `mbx report` / `mbx merge` refuse a
//! record or part they cannot read — naming the file and the version found —
//! before anything is pushed or tagged (a real part, cut short, on the chain).

mod support;

use std::path::Path;

use mbx::run::{RunRecord, SchemaVersion};
use support::*;

const SCHEMA: &str = "docs/run-record.schema.json";

#[test]
fn the_committed_schema_is_the_one_the_types_generate() {
    let generated = format!(
        "{}\n",
        serde_json::to_string_pretty(&mbx::run::json_schema()).unwrap()
    );
    let path = repo_root().join(SCHEMA);
    if std::env::var_os("MBX_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{SCHEMA} is not what the record's types generate: regenerate it with \
         `MBX_UPDATE_SCHEMA=1 cargo test --test record schema`, and if the record's shape \
         changed, bump SchemaVersion::CURRENT in src/run/version.rs (minor: a field added \
         that readers may ignore; major: anything else) and say so in docs/run-record.md"
    );
    let schema: serde_json::Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(schema["title"], "RunRecord");
    let props = schema["properties"].as_object().unwrap();
    assert!(props.contains_key("schema_version"));
    assert_eq!(
        schema["$defs"]["BuilderAction"]["oneOf"]
            .as_array()
            .map(|a| a.len()),
        Some(3),
        "{}",
        schema["$defs"]["BuilderAction"]
    );
}

/// Every field of a record mbx writes is in the schema (the schema is not a
/// stale subset), for the records captured from real runs.
#[test]
fn captured_records_load_as_1_0_and_their_fields_are_in_the_schema() {
    let schema = mbx::run::json_schema();
    for name in [
        "report-hello-cold.json",
        "report-hello-warm.json",
        "report-hello-registry.json",
        "report-arm64-fails.json",
    ] {
        let path = repo_root().join("tests/data").join(name);
        let r = mbx::report::read_json(&path).expect("a captured run record");
        assert_eq!(r.schema_version, SchemaVersion::UNVERSIONED, "{name}");
        // Written again by this mbx: the current version, every key described.
        let written = serde_json::to_value(&r).unwrap();
        assert_eq!(
            written["schema_version"],
            SchemaVersion::CURRENT.to_string()
        );
        for key in written.as_object().unwrap().keys() {
            assert!(
                schema["properties"].get(key).is_some(),
                "{name}: `{key}` is not in the schema"
            );
        }
        let platform = &written["platforms"][0];
        let def = &schema["$defs"]["PlatformRecord"]["properties"];
        for key in platform.as_object().unwrap().keys() {
            assert!(def.get(key).is_some(), "{name}: platforms[].`{key}`");
        }
        let back = RunRecord::from_json(written.to_string().as_bytes()).unwrap();
        assert_eq!(back.platforms.len(), r.platforms.len());
    }
}

#[test]
fn a_record_is_written_in_this_mbx_version_whatever_it_was_read_from() {
    let r = RunRecord {
        schema_version: SchemaVersion { major: 1, minor: 7 },
        ..RunRecord::default()
    };
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("r.json");
    mbx::report::write_json(&r, &p).unwrap();
    let back = mbx::report::read_json(&p).unwrap();
    assert_eq!(back.schema_version, SchemaVersion::CURRENT);
}

fn report(record: &Path) -> std::process::Output {
    let mut c = mbx();
    c.args(["report", "--record"]).arg(record);
    run(c)
}

#[test]
fn report_refuses_a_record_of_another_major_or_cut_short() {
    let d = tempfile::tempdir().unwrap();
    let captured =
        std::fs::read_to_string(repo_root().join("tests/data/report-hello-cold.json")).unwrap();

    let mut newer: serde_json::Value = serde_json::from_str(&captured).unwrap();
    newer["schema_version"] = "2.0".into();
    let p = d.path().join("newer.json");
    std::fs::write(&p, newer.to_string()).unwrap();
    let o = report(&p);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!(
            "{}: record schema 2.0 (written by mbx 0.1.0) is newer than this mbx",
            p.display()
        )),
        "{}",
        stderr(&o)
    );
    assert!(
        stdout(&o).is_empty(),
        "no report from a record it cannot read"
    );

    let p = d.path().join("cut.json");
    std::fs::write(&p, &captured.as_bytes()[..300]).unwrap();
    let o = report(&p);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!("{} is not valid JSON", p.display())),
        "{}",
        stderr(&o)
    );

    // A newer minor is read: its unknown fields are ignored.
    let mut minor: serde_json::Value = serde_json::from_str(&captured).unwrap();
    minor["schema_version"] = "1.9".into();
    minor["a_field_of_1_9"] = serde_json::json!({"x": 1});
    let p = d.path().join("minor.json");
    std::fs::write(&p, minor.to_string()).unwrap();
    let o = report(&p);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

fn build_part(context: &Path, repo: &str, platform: &str, out: &Path) -> std::process::Child {
    let mut c = mbx();
    c.args([
        "build",
        "--local",
        "--cache",
        "none",
        "--platform",
        platform,
    ])
    .arg("--context")
    .arg(context)
    .args(["--image", repo, "--push", "--json"])
    .arg(out)
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    c.spawn().expect("spawn mbx build")
}

/// Issue 15 item 2: an amd64 part plus an arm64 part cut to 300 bytes gave
/// exit 0 and a tag on an amd64-only index.
#[test]
fn merge_refuses_a_part_cut_short_and_tags_nothing() {
    require_builder();
    let ctx = context("FROM 127.0.0.1:5000/mbx/busybox:latest\nRUN echo part > /part.txt\n");
    let d = tempfile::tempdir().unwrap();
    let parts = d.path().join("parts");
    for job in ["amd64", "arm64"] {
        std::fs::create_dir_all(parts.join(job)).unwrap();
    }
    let repo = unique_repo("record-cut");
    let arm = parts.join("arm64/part.json");
    let a = build_part(
        ctx.path(),
        &repo,
        "linux/amd64",
        &parts.join("amd64/part.json"),
    );
    let b = build_part(ctx.path(), &repo, "linux/arm64", &arm);
    for child in [a, b] {
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let part = std::fs::read(&arm).unwrap();
    assert!(part.len() > 300, "a real part is longer than the cut");
    RunRecord::from_json(&part).expect("the part as written is readable");
    std::fs::write(&arm, &part[..300]).unwrap();

    let merged = d.path().join("merged.json");
    let mut c = mbx();
    c.args(["merge", "--parts"])
        .arg(&parts)
        .args(["--tag", "cut", "--json"])
        .arg(&merged);
    let o = run(c);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("part {} is not valid JSON", arm.display())),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("run the job that wrote it again"),
        "{}",
        stderr(&o)
    );
    for tag in ["cut", "latest"] {
        assert!(!tag_exists(&format!("{repo}:{tag}")), "{repo}:{tag} moved");
    }
    // The registry answers 404 for a repository without tags, [] otherwise.
    let list = std::process::Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{repo}"))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        (!list.status.success() && String::from_utf8_lossy(&list.stderr).contains("404"))
            || json(&listed)["Tags"] == serde_json::json!([]),
        "tags in {repo}: {listed}"
    );
    assert!(
        !merged.exists(),
        "no merged record for a merge that did not happen"
    );
}

/// Wherever an upload cuts a record, it is refused as damaged: never read as
/// a smaller record, never a panic.
#[test]
fn every_cut_of_a_record_is_refused_as_damaged() {
    let full = std::fs::read(repo_root().join("tests/data/report-arm64-fails.json")).unwrap();
    let full = String::from_utf8(full).unwrap();
    let full = full.trim_end().as_bytes();
    RunRecord::from_json(full).expect("the whole record reads");
    for cut in 1..full.len() {
        match RunRecord::from_json(&full[..cut]) {
            Err(mbx::run::RecordError::NotJson(_)) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}
