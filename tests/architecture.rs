//! The shape of `src/` that STYLE.md promises, checked on every test run:
//! layers without import cycles, short functions, one printer, one file per
//! subcommand. Reads the source only (no chain needed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/`, with its text cut at `#[cfg(test)]` (unit
/// tests may be long and may print).
fn sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read src") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&src(), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read source");
            let code = match text.find("#[cfg(test)]") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            (p, code)
        })
        .collect()
}

/// `src/build/mod.rs` → `build`, `src/plan.rs` → `plan`.
fn top_module(path: &Path) -> String {
    let rel = path.strip_prefix(src()).expect("under src");
    let first = rel.components().next().expect("a component");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// The top-level modules a file names through `crate::…` (grouped imports too).
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != "self" {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, code) in sources() {
        let me = top_module(&path);
        let refs = crate_refs(&code);
        let entry = deps.entry(me.clone()).or_default();
        entry.extend(refs.into_iter().filter(|r| *r != me));
    }
    // Depth-first search for a back edge; report the cycle it closes.
    fn visit(
        n: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for d in deps.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, deps, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in deps.keys() {
        let cycle = visit(n, &deps, &mut Vec::new(), &mut done);
        assert!(
            cycle.is_none(),
            "import cycle between src/'s top-level modules: {}\n(layers only look down: commands → pipeline → stages → plan/run → docker/oci/printer)",
            cycle.unwrap_or_default().join(" → ")
        );
    }
}

/// (file, function, lines) of every `fn` in `src/`, from its signature to
/// the closing brace at the same indentation.
fn functions() -> Vec<(PathBuf, String, usize)> {
    let mut out = Vec::new();
    for (path, code) in sources() {
        let lines: Vec<&str> = code.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            let mut words = trimmed.split_whitespace();
            let mut is_fn = false;
            for w in words.by_ref() {
                match w {
                    "pub" | "async" | "const" | "unsafe" => continue,
                    w if w.starts_with("pub(") => continue,
                    "fn" => {
                        is_fn = true;
                        break;
                    }
                    _ => break,
                }
            }
            if !is_fn {
                continue;
            }
            let name: String = words
                .next()
                .unwrap_or("")
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // The signature runs to the first `{` (a body) or `;` (none).
            let mut sig_end = None;
            for (k, l) in lines[i..].iter().enumerate() {
                if l.contains('{') {
                    sig_end = Some((k, true));
                    break;
                }
                if l.trim_end().ends_with(';') {
                    sig_end = Some((k, false));
                    break;
                }
            }
            let end = match sig_end {
                Some((_, false)) | None => None,
                Some((k, true)) if lines[i + k].trim_end().ends_with('}') => Some(k),
                Some(_) => {
                    let close = format!("{indent}}}");
                    lines[i..].iter().position(|l| l.trim_end() == close)
                }
            };
            if let Some(n) = end {
                out.push((path.clone(), name, n + 1));
            }
        }
    }
    out
}

#[test]
fn no_function_over_100_lines() {
    let long: Vec<String> = functions()
        .into_iter()
        .filter(|(_, _, n)| *n > 100)
        .map(|(p, f, n)| format!("{}: {f} ({n} lines)", p.display()))
        .collect();
    assert!(
        long.is_empty(),
        "functions over 100 lines in src/ (cut them into named steps):\n  {}",
        long.join("\n  ")
    );
}

#[test]
fn the_function_scan_sees_long_functions() {
    // The scan above must find real functions, or it proves nothing.
    let fns = functions();
    assert!(fns.iter().any(|(_, f, _)| f == "main"));
    assert!(fns.len() > 200, "only {} functions found", fns.len());
    assert!(fns.iter().any(|(_, _, n)| *n > 50));
}

#[test]
fn only_the_printer_and_the_report_print() {
    let allowed = |p: &Path| {
        let rel = p.strip_prefix(src()).expect("under src");
        rel == Path::new("printer.rs") || rel == Path::new("main.rs") || rel.starts_with("report")
    };
    let mut offenders = Vec::new();
    for (path, code) in sources() {
        if allowed(&path) {
            continue;
        }
        for (n, line) in code.lines().enumerate() {
            let l = line.trim_start();
            if l.starts_with("//") {
                continue;
            }
            for m in ["print!(", "println!(", "eprint!(", "eprintln!("] {
                let hit = l.match_indices(m).any(|(i, _)| {
                    i == 0 || !l[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                });
                if hit {
                    offenders.push(format!("{}:{}: {}", path.display(), n + 1, l));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "print outside src/printer.rs, src/report/ and main.rs (use crate::printer):\n  {}",
        offenders.join("\n  ")
    );
}

#[test]
fn one_file_per_subcommand() {
    let cli = std::fs::read_to_string(src().join("cli.rs")).expect("cli.rs");
    let start = cli.find("pub enum Command").expect("the Command enum");
    let body = &cli[start..];
    let body = &body[..body.find("\n}").expect("its end")];
    let variants: Vec<String> = body
        .lines()
        .map(str::trim)
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
        .filter(|l| l.ends_with("),") && !l.contains(' '))
        .filter_map(|l| l.split('(').next())
        .map(str::to_lowercase)
        .collect();
    assert!(variants.len() >= 7, "variants found: {variants:?}");
    for v in &variants {
        let file = src().join("commands").join(format!("{v}.rs"));
        assert!(file.is_file(), "no src/commands/{v}.rs for `mbx {v}`");
    }
}
