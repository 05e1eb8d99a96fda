//! `mbx verify` output: a per-platform table, then the index-level checks;
//! or the JSON form (the verification part of the run record).

use crate::digest::short;
use crate::platform::Platform;
use crate::report::fmt::table;
use crate::run::Check;
use crate::verify::Verification;

fn mark(c: Option<&Check>) -> &'static str {
    match c {
        Some(c) if c.passed => "ok",
        Some(_) => "FAIL",
        None => "-",
    }
}

/// The human form.
pub fn render(reference: &str, required: &[Platform], v: &Verification) -> String {
    let find = |name: String| v.checks.iter().find(|c| c.name == name);
    let mut platforms: Vec<Platform> = required.to_vec();
    for (p, _) in &v.platforms {
        if !platforms.contains(p) {
            platforms.push(p.clone());
        }
    }
    let binaries = v.checks.iter().any(|c| c.name.starts_with("binaries "));
    let mut rows: Vec<Vec<String>> = Vec::new();
    for p in &platforms {
        let digest = v
            .platforms
            .iter()
            .find(|(q, _)| q == p)
            .map(|(_, d)| short(d));
        rows.push(vec![
            p.to_string(),
            if required.contains(p) {
                "yes".into()
            } else {
                "no".into()
            },
            if digest.is_none() {
                "MISSING".into()
            } else {
                mark(find(format!("manifest {p}"))).into()
            },
            if binaries {
                mark(find(format!("binaries {p}"))).into()
            } else {
                "-".into()
            },
            digest.unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut out = format!("{reference}\n");
    if let Some(d) = &v.index_digest {
        out.push_str(&format!("index {d}\n"));
    }
    out.push('\n');
    out.push_str(&table(
        &["PLATFORM", "REQUIRED", "MANIFEST", "BINARIES", "DIGEST"],
        &rows,
    ));
    out.push('\n');
    for c in &v.checks {
        out.push_str(&format!(
            "{} {}: {}\n",
            if c.passed { "✓" } else { "✗" },
            c.name,
            c.detail
        ));
    }
    out.push_str(if v.passed() {
        "verified\n"
    } else {
        "verification FAILED\n"
    });
    out
}

/// The machine form.
pub fn json(reference: &str, v: &Verification) -> serde_json::Value {
    let platforms: Vec<serde_json::Value> = v
        .platforms
        .iter()
        .map(|(p, d)| serde_json::json!({"platform": p, "digest": d}))
        .collect();
    serde_json::json!({
        "reference": reference,
        "index_digest": v.index_digest,
        "verified": v.passed(),
        "platforms": platforms,
        "checks": v.checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, passed: bool) -> Check {
        Check {
            name: name.into(),
            passed,
            detail: "d".into(),
        }
    }

    #[test]
    fn table_marks_missing_and_failed() {
        let v = Verification {
            index_digest: Some("sha256:ff".into()),
            platforms: vec![(
                "linux/amd64".parse().unwrap(),
                format!("sha256:{}", "ab".repeat(32)),
            )],
            checks: vec![
                c("platform linux/amd64", true),
                c("platform linux/arm64", false),
                c("manifest linux/amd64", true),
                c("binaries linux/amd64", false),
            ],
        };
        let req: Vec<Platform> = vec![
            "linux/amd64".parse().unwrap(),
            "linux/arm64".parse().unwrap(),
        ];
        let s = render("r:latest", &req, &v);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines[3],
            "PLATFORM     REQUIRED  MANIFEST  BINARIES  DIGEST"
        );
        assert_eq!(
            lines[4],
            "linux/amd64  yes       ok        FAIL      sha256:abababababab"
        );
        assert_eq!(lines[5], "linux/arm64  yes       MISSING   -         -");
        assert!(s.ends_with("verification FAILED\n"));
    }
}
