//! The GitHub Actions cache as the report shows it: the usage section of the
//! terminal report (also the body of `mbx cache usage`), its job-summary
//! section, the warning annotation above 80 % of the limit, and what
//! `mbx cache prune` planned or did. The figures come from `gha_cache`.

use std::fmt::Write as _;

use crate::gha_cache::prune::{Applied, PrunePlan};
use crate::report::fmt::{bytes, md_header, md_row, table, Align};
use crate::report::github::{Annotation, Level};
use crate::run::{Bucket, CacheUsage, Risk, ScopeUsage};

/// The warning `mbx ci` raises above 80 % of the limit.
pub fn warning(u: &CacheUsage) -> Option<String> {
    let evicting = match u.risk() {
        Risk::Low => return None,
        Risk::High => "",
        Risk::Evicting => "; GitHub is evicting the least recently used entries",
    };
    Some(format!(
        "GitHub Actions cache of {} at {:.0}% of its {} limit ({}){evicting}: run `mbx cache prune` \
(dry run) then `mbx cache prune --apply` to drop stale BuildKit entries",
        u.repository,
        u.fraction() * 100.0,
        bytes(u.limit_bytes),
        bytes(u.total_bytes),
    ))
}

/// The warning as a workflow-command annotation (`::warning title=mbx cache::…`),
/// above 80 % of the limit.
pub fn annotation(u: &CacheUsage) -> Option<Annotation> {
    Some(Annotation {
        level: Level::Warning,
        title: "mbx cache".into(),
        message: warning(u)?,
    })
}

/// The usage as a terminal section: the total, a table of scopes (this
/// run's marked `*`), the blobs no single scope owns, and the refs.
pub fn render_usage(u: &CacheUsage) -> String {
    let mut out = format!(
        "cache   {}: {} of {} ({:.0}%), {} entries{}\n",
        u.repository,
        bytes(u.total_bytes),
        bytes(u.limit_bytes),
        u.fraction() * 100.0,
        u.total_count,
        match u.risk() {
            Risk::Low => "",
            Risk::High => " — above 80%, eviction near",
            Risk::Evicting => " — at the limit, GitHub is evicting",
        }
    );
    if !u.scopes.is_empty() {
        out.push_str(&scope_table(u));
    }
    let blobs_line =
        |name: &str, b: &Bucket| format!("{name}: {} entries, {}\n", b.count, bytes(b.bytes));
    if u.shared_blobs.count > 0 {
        out.push_str(&blobs_line(
            "blobs shared by several scopes",
            &u.shared_blobs,
        ));
    }
    if u.unattributed_blobs.count > 0 {
        out.push_str(&blobs_line(
            if u.attributed {
                "blobs no index names"
            } else {
                "BuildKit blobs (shared; index contents not read, so not attributed to scopes)"
            },
            &u.unattributed_blobs,
        ));
    }
    if u.other.count > 0 {
        out.push_str(&blobs_line("other tools' entries", &u.other));
    }
    if !u.run_scopes.is_empty() {
        out.push_str("(* = a scope of this run)\n");
    }
    for r in &u.refs {
        let _ = writeln!(
            out,
            "ref     {}: {} entries, {}",
            r.git_ref,
            r.count,
            bytes(r.bytes)
        );
    }
    out
}

fn scope_table(u: &CacheUsage) -> String {
    let rows: Vec<Vec<String>> = u
        .scopes
        .iter()
        .map(|s| {
            let mark = if u.run_scopes.contains(&s.scope) {
                " *"
            } else {
                ""
            };
            vec![
                format!("{}{mark}", s.scope),
                s.platform.clone().unwrap_or_else(|| "-".into()),
                if s.superseded > 0 {
                    format!("{} ({} superseded)", s.indexes.count, s.superseded)
                } else {
                    s.indexes.count.to_string()
                },
                s.blobs.count.to_string(),
                bytes(s.bytes()),
                s.last_accessed_at
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &[
            "SCOPE",
            "PLATFORM",
            "INDEXES",
            "BLOBS",
            "SIZE",
            "LAST USED (UTC)",
        ],
        &rows,
    )
}

const SCOPE_COLUMNS: &[(&str, Align)] = &[
    ("scope", Align::Left),
    ("platform", Align::Left),
    ("indexes", Align::Right),
    ("blobs", Align::Right),
    ("size", Align::Right),
    ("last used", Align::Left),
];

fn scope_row(u: &CacheUsage, s: &ScopeUsage) -> String {
    md_row(&[
        format!("`{}`", s.scope),
        s.platform.clone().unwrap_or_else(|| "-".into()),
        s.indexes.count.to_string(),
        if u.attributed {
            s.blobs.count.to_string()
        } else {
            "?".into()
        },
        bytes(s.bytes()),
        s.last_accessed_at
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "-".into()),
    ])
}

/// The cache section of the job summary (GitHub-flavoured Markdown): usage
/// and eviction risk, this run's scopes in a table, every scope and ref in
/// `<details>`.
pub fn markdown(u: &CacheUsage) -> String {
    let risk = match u.risk() {
        Risk::Low => "low eviction risk",
        Risk::High => "⚠️ above 80%: GitHub will soon evict the least recently used entries",
        Risk::Evicting => "⚠️ at the limit: GitHub is evicting the least recently used entries",
    };
    let mut out = format!(
        "### GitHub Actions cache\n\n`{}` uses **{}** of {} ({:.0}%, {} entries): {risk}.\n\n",
        u.repository,
        bytes(u.total_bytes),
        bytes(u.limit_bytes),
        u.fraction() * 100.0,
        u.total_count
    );
    let mine: Vec<&ScopeUsage> = u
        .scopes
        .iter()
        .filter(|s| u.run_scopes.contains(&s.scope))
        .collect();
    if !mine.is_empty() {
        out.push_str(&md_header(SCOPE_COLUMNS));
        for s in &mine {
            out.push_str(&scope_row(u, s));
        }
        out.push('\n');
    }
    if !u.attributed {
        let _ = write!(
            out,
            "BuildKit blobs ({} entries, {}) are shared and not attributed to scopes: the index \
contents could not be read from this run.\n\n",
            u.unattributed_blobs.count,
            bytes(u.unattributed_blobs.bytes)
        );
    }
    out.push_str("<details><summary>Every scope and ref</summary>\n\n");
    out.push_str(&md_header(SCOPE_COLUMNS));
    for s in &u.scopes {
        out.push_str(&scope_row(u, s));
    }
    let _ = write!(
        out,
        "\nShared blobs: {} ({} entries). Other tools' entries: {} ({} entries).\n\n",
        bytes(u.shared_blobs.bytes),
        u.shared_blobs.count,
        bytes(u.other.bytes),
        u.other.count
    );
    out.push_str(&md_header(&[
        ("ref", Align::Left),
        ("entries", Align::Right),
        ("size", Align::Right),
    ]));
    for r in &u.refs {
        out.push_str(&md_row(&[
            format!("`{}`", r.git_ref),
            r.count.to_string(),
            bytes(r.bytes),
        ]));
    }
    out.push_str("\n`mbx cache prune` lists stale entries; `--apply` deletes them.\n</details>\n");
    out
}

/// What `mbx cache prune` planned (a dry run, `applied` None) or did:
/// one line per entry, the blobs kept, a total.
pub fn render_prune(repository: &str, plan: &PrunePlan, applied: Option<&Applied>) -> String {
    let mut out = String::new();
    let verb = if applied.is_some() {
        "deleted"
    } else {
        "would delete"
    };
    for d in &plan.delete {
        let _ = writeln!(
            out,
            "{verb} {}  {}  {}  ({})",
            d.key,
            d.git_ref,
            bytes(d.size_in_bytes),
            d.reason
        );
    }
    if plan.kept_blobs > 0 {
        let _ = writeln!(
            out,
            "kept {} blob(s), {}: an index that stays may use them",
            plan.kept_blobs,
            bytes(plan.kept_blob_bytes)
        );
    }
    let _ = match applied {
        Some(a) => writeln!(
            out,
            "deleted {} entries, {} freed in {repository}",
            a.deleted,
            bytes(a.bytes)
        ),
        None if plan.delete.is_empty() => writeln!(out, "nothing to prune in {repository}"),
        None => writeln!(
            out,
            "dry run: {} entries, {} would be freed in {repository}; pass --apply to delete",
            plan.delete.len(),
            bytes(plan.bytes())
        ),
    };
    out
}

/// `mbx cache prune --json`: the plan and what was deleted.
pub fn prune_json(
    repository: &str,
    dry_run: bool,
    plan: &PrunePlan,
    applied: Option<&Applied>,
) -> serde_json::Value {
    serde_json::json!({
        "repository": repository,
        "dry_run": dry_run,
        "delete": plan.delete,
        "bytes": plan.bytes(),
        "kept_blobs": plan.kept_blobs,
        "kept_blob_bytes": plan.kept_blob_bytes,
        "deleted": applied.map_or(0, |a| a.deleted),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gha_cache::prune::Deletion;
    use crate::gha_cache::tests::{captured_entries, with_another_tools_entry};
    use crate::gha_cache::{summarize, IndexContents, DEFAULT_LIMIT_BYTES};

    fn usage(total: u64, limit: u64) -> CacheUsage {
        CacheUsage {
            repository: "o/r".into(),
            limit_bytes: limit,
            total_bytes: total,
            ..CacheUsage::default()
        }
    }

    #[test]
    fn risk_and_warning() {
        let mut u = usage(DEFAULT_LIMIT_BYTES / 2, DEFAULT_LIMIT_BYTES);
        assert_eq!(u.risk(), Risk::Low);
        assert!(warning(&u).is_none());
        u.total_bytes = DEFAULT_LIMIT_BYTES / 10 * 9;
        assert_eq!(u.risk(), Risk::High);
        let w = warning(&u).unwrap();
        assert!(w.contains("at 90% of its 10.0 GiB limit (9.0 GiB)"), "{w}");
        assert!(!w.contains("evicting"), "{w}");
        u.total_bytes = DEFAULT_LIMIT_BYTES + 1;
        assert_eq!(u.risk(), Risk::Evicting);
        assert!(warning(&u).unwrap().contains("evicting"));
    }

    #[test]
    fn annotation_only_above_80_percent() {
        let mut u = usage(80, 100);
        assert_eq!(annotation(&u), None, "80% is not above 80%");
        u.total_bytes = 81;
        let a = annotation(&u).unwrap().to_string();
        assert!(
            a.starts_with("::warning title=mbx cache::GitHub Actions cache of o/r at 81%25"),
            "{a}"
        );
        assert!(!a.contains('\n'));
    }

    #[test]
    fn usage_section_names_every_bucket_in_iec_units() {
        let entries = with_another_tools_entry(captured_entries().0);
        let mut u = summarize(
            "o/r",
            None,
            &entries,
            DEFAULT_LIMIT_BYTES,
            &IndexContents::new(),
        );
        u.run_scopes = vec!["hello-linux-arm64".into()];
        let text = render_usage(&u);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0], "cache   o/r: 2.2 MiB of 10.0 GiB (0%), 19 entries",
            "{text}"
        );
        assert_eq!(
            lines[1],
            "SCOPE                PLATFORM     INDEXES           BLOBS  SIZE     LAST USED (UTC)",
            "{text}"
        );
        assert!(
            lines[3].starts_with("hello-linux-arm64 *  linux/arm64  1                 0      "),
            "{text}"
        );
        assert!(text.contains("2 (1 superseded)"), "{text}");
        assert!(text.contains("not attributed"), "{text}");
        assert!(
            text.contains("other tools' entries: 1 entries, 4.9 KiB\n"),
            "{text}"
        );
        assert!(text.contains("(* = a scope of this run)\n"), "{text}");
        assert!(
            text.ends_with("ref     refs/pull/7/merge: 1 entries, 4.9 KiB\n"),
            "{text}"
        );
    }

    #[test]
    fn markdown_section_shows_the_run_scopes_first() {
        let (entries, contents) = captured_entries();
        let mut u = summarize("o/r", None, &entries, DEFAULT_LIMIT_BYTES, &contents);
        u.run_scopes = vec!["hello-linux-arm64".into()];
        let md = markdown(&u);
        assert!(md.starts_with("### GitHub Actions cache\n\n`o/r` uses **2.2 MiB** of 10.0 GiB (0%, 18 entries): low eviction risk.\n\n| scope | platform | indexes | blobs | size | last used |\n|---|---|--:|--:|--:|---|\n"), "{md}");
        let first_table = md.split("<details>").next().unwrap();
        assert!(
            first_table.contains("| `hello-linux-arm64` | linux/arm64 | 1 | 5 |"),
            "{md}"
        );
        assert!(!first_table.contains("hello-linux-amd64"), "{md}");
        assert!(
            md.contains(
                "| ref | entries | size |\n|---|--:|--:|\n| `refs/heads/main` | 18 | 2.2 MiB |\n"
            ),
            "{md}"
        );
        assert!(md.trim_end().ends_with("</details>"));
    }

    fn deletion(key: &str, size: u64) -> Deletion {
        Deletion {
            id: 1,
            key: key.into(),
            git_ref: "refs/heads/main".into(),
            size_in_bytes: size,
            scope: None,
            reason: "superseded by #2".into(),
            by_key: true,
        }
    }

    #[test]
    fn prune_dry_run_applied_and_nothing() {
        let plan = PrunePlan {
            delete: vec![deletion("index-a-1", 2048), deletion("index-b-1", 1024)],
            kept_blobs: 3,
            kept_blob_bytes: 3 << 20,
        };
        assert_eq!(
            render_prune("o/r", &plan, None),
            "would delete index-a-1  refs/heads/main  2.0 KiB  (superseded by #2)\n\
would delete index-b-1  refs/heads/main  1.0 KiB  (superseded by #2)\n\
kept 3 blob(s), 3.0 MiB: an index that stays may use them\n\
dry run: 2 entries, 3.0 KiB would be freed in o/r; pass --apply to delete\n"
        );
        let done = Applied {
            deleted: 2,
            bytes: 3072,
        };
        let text = render_prune("o/r", &plan, Some(&done));
        assert!(text.starts_with("deleted index-a-1  refs/heads/main  2.0 KiB"));
        assert!(
            text.ends_with("deleted 2 entries, 3.0 KiB freed in o/r\n"),
            "{text}"
        );
        assert_eq!(
            render_prune("o/r", &PrunePlan::default(), None),
            "nothing to prune in o/r\n"
        );
        let j = prune_json("o/r", false, &plan, Some(&done));
        assert_eq!(j["bytes"], 3072);
        assert_eq!(j["deleted"], 2);
        assert_eq!(j["delete"][0]["ref"], "refs/heads/main");
        assert_eq!(prune_json("o/r", true, &plan, None)["deleted"], 0);
    }
}
