//! The GitHub Action's inputs, read by mbx itself: `mbx ci --inputs-from-env`
//! turns the `INPUT_*` variables that action.yml sets into `mbx ci` arguments,
//! each value one argument (never shell text), and clap then parses them as
//! if they had been typed. Lists follow docker/actions-toolkit's
//! `Util.getInputList`, so an input reads as it does in build-push-action.
//!
//! **A new action input goes in one place: [`INPUTS`]** (name → flag and
//! kind), plus its declaration and `INPUT_…` line in action.yml (GitHub
//! exports no INPUT_* to a composite action's steps). A unit test checks every
//! flag of the table against this mbx's clap definitions; tests/action.rs
//! checks the table and action.yml agree.
//!
//! Sits beside `cli.rs` at the top: only `main` calls [`parse`]; it uses the
//! clap definitions, the printer and the report's annotation format.

use std::collections::BTreeMap;
use std::ffi::OsString;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::{Error, Result};
use crate::printer;
use crate::report::fmt::escape_data;
use crate::report::github::{Annotation, Level};

/// How one list input is split (toolkit's `ListOpts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListOpts {
    /// Split at commas too; `false` is the toolkit's `ignoreComma` (KEY=VALUE
    /// inputs whose values may hold commas: one item per line).
    pub commas: bool,
    /// `"` quotes an item (which may then hold commas and newlines, `""` for
    /// a quote); `false` keeps quotes as they are (toolkit `quote: false`).
    pub quote: bool,
    /// A comment character: from it to the end of the line is dropped.
    pub comment: Option<char>,
    /// Trim each item (`false` is the toolkit's `trimWhitespace: false`,
    /// build-push-action's `secrets`: a value's spaces are kept).
    pub trim: bool,
}

/// Comma- or newline-separated items (toolkit default: tags, platforms).
pub const ITEMS: ListOpts = ListOpts {
    commas: true,
    quote: true,
    comment: None,
    trim: true,
};
/// One item per line, commas kept (toolkit `ignoreComma: true`: labels,
/// build-args, secrets).
pub const LINES: ListOpts = ListOpts {
    commas: false,
    quote: true,
    comment: None,
    trim: true,
};

/// build-push-action's `secrets`: one item per line, nothing trimmed.
pub const SECRET_LINES: ListOpts = ListOpts {
    trim: false,
    ..LINES
};

/// One exporter spec per line, commas and quotes kept (toolkit
/// `ignoreComma: true, quote: false`: build-push-action's `outputs`).
pub const SPECS: ListOpts = ListOpts {
    commas: false,
    quote: false,
    comment: None,
    trim: true,
};

/// What an input is, and how it becomes arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One value, passed when not empty: `FLAG VALUE`.
    Value,
    /// A list; each item is one `FLAG ITEM`.
    List(ListOpts),
    /// A list passed as one comma-joined value (`--platforms a,b`).
    Joined,
    /// `true` → `FLAG`, `false` → nothing (either case, as GitHub compares).
    Switch,
    /// `false` → `FLAG` (verify: false → --no-verify), `true` → nothing.
    SwitchOff,
    /// One of these words, any case (`cache: GHA`): `FLAG word`.
    OneOf(&'static [&'static str]),
    /// Full image references (build-push-action's `tags`), in one or more
    /// repositories: `FLAG REF` each, `:latest` added where no tag is written.
    Tags,
    /// `KEY=VALUE` build secrets: each value into mbx's own environment
    /// (`MBX_SECRET_<n>`, masked), `FLAG KEY=MBX_SECRET_<n>`; never in argv.
    Secrets,
    /// Into mbx's environment under FLAG (masked), never argv (github-token).
    Env,
    /// `false` drops GITHUB_STEP_SUMMARY from mbx's environment (summary).
    Summary,
    /// Read by the action's other steps (fetch), not by mbx.
    Action,
    /// A long value (JSON) into mbx's environment under FLAG: not argv, not
    /// echoed with the arguments, not masked (the parts of `mode: merge`).
    Data,
}

/// One action input: its name in action.yml, the flag it becomes, its kind.
#[derive(Debug, Clone, Copy)]
pub struct Input {
    pub name: &'static str,
    pub flag: &'static str,
    pub kind: Kind,
}

const fn input(name: &'static str, flag: &'static str, kind: Kind) -> Input {
    Input { name, flag, kind }
}

/// Every input of action.yml. An empty value means "not given": mbx's own
/// default applies (action.yml's defaults are the same).
pub const INPUTS: &[Input] = &[
    // --- as in docker/build-push-action ---
    input("context", "--context", Kind::Value),
    input("file", "--file", Kind::Value),
    input("platforms", "--platforms", Kind::Joined),
    input("tags", "--tag", Kind::Tags),
    input("labels", "--label", Kind::List(LINES)),
    input("build-args", "--build-arg", Kind::List(LINES)),
    input("target", "--target", Kind::Value),
    input("push", "--push", Kind::Switch),
    input("provenance", "--provenance", Kind::Value),
    input("sbom", "--sbom", Kind::Value),
    input("secrets", "--secret-env", Kind::Secrets),
    input("load", "--load", Kind::Switch),
    input("outputs", "--output", Kind::List(SPECS)),
    input("secret-envs", "--secret-env", Kind::List(ITEMS)),
    input("secret-files", "--secret-file", Kind::List(LINES)),
    input("add-hosts", "--add-host", Kind::List(ITEMS)),
    input("allow", "--allow", Kind::List(ITEMS)),
    input("annotations", "--annotation", Kind::List(LINES)),
    input("attests", "--attest", Kind::List(LINES)),
    input("build-contexts", "--build-context", Kind::List(LINES)),
    input("cache-from", "--cache-from", Kind::List(LINES)),
    input("cache-to", "--cache-to", Kind::List(LINES)),
    // mbx builds images: check/outline/targets build none to join and verify.
    input("call", "--call", Kind::OneOf(&["build"])),
    input("cgroup-parent", "--cgroup-parent", Kind::Value),
    input("network", "--network", Kind::Value),
    input("no-cache", "--no-cache", Kind::Switch),
    input("no-cache-filters", "--no-cache-filter", Kind::List(ITEMS)),
    input("pull", "--pull", Kind::Switch),
    input("shm-size", "--shm-size", Kind::Value),
    input("ssh", "--ssh", Kind::List(ITEMS)),
    input("ulimit", "--ulimit", Kind::List(LINES)),
    // --- mbx's own ---
    input(
        "cache",
        "--cache",
        Kind::OneOf(&["gha", "local", "registry", "none"]),
    ),
    input("cache-scope-prefix", "--cache-scope-prefix", Kind::Value),
    input("builder", "--builder", Kind::Value),
    input("driver", "--driver", Kind::Value),
    input("driver-opts", "--driver-opt", Kind::List(ITEMS)),
    // --- builder nodes, and setup-buildx-action's inputs for a builder mbx creates ---
    input("nodes", "--node", Kind::List(LINES)),
    input("endpoint", "--endpoint", Kind::Value),
    input("buildkitd-flags", "--buildkitd-flags", Kind::Value),
    input("buildkitd-config", "--buildkitd-config", Kind::Value),
    input(
        "buildkitd-config-inline",
        "--buildkitd-config-inline",
        Kind::Value,
    ),
    input("cleanup", "--remove-builder", Kind::Switch),
    input("buildkit-image", "--buildkit-image", Kind::Value),
    input("qemu-image", "--qemu-image", Kind::Value),
    input("verify", "--no-verify", Kind::SwitchOff),
    input("check-binaries", "--check-binaries", Kind::Switch),
    input("summary", "", Kind::Summary),
    input("github-token", "GITHUB_TOKEN", Kind::Env),
    input(
        "emulation-warn-percent",
        "--emulation-warn-percent",
        Kind::Value,
    ),
    // --- multi-runner mode (build::parts; .github/workflows/build.yml) ---
    input("mode", "--mode", Kind::OneOf(&["all", "part", "merge"])),
    input("parts", "MBX_PARTS", Kind::Data),
    input("mbx-version", "", Kind::Action),
    input("mbx-binary", "", Kind::Action),
];

/// The environment variable of an input: `INPUT_` + upper case, `-` → `_`.
pub fn var_name(input: &str) -> String {
    format!("INPUT_{}", input.to_uppercase().replace(['-', ' '], "_"))
}

/// What the inputs make of this mbx run.
#[derive(Debug, Default, PartialEq)]
pub struct Expanded {
    /// Arguments appended to `mbx ci`.
    pub args: Vec<String>,
    /// Variables set in mbx's own environment (secrets, the token).
    pub set_env: Vec<(String, String)>,
    /// Variables removed from mbx's environment (every INPUT_*, and the
    /// summary file with summary: false).
    pub remove_env: Vec<String>,
    /// Values the runner must mask (`::add-mask::`), one per line of a value.
    pub masks: Vec<String>,
}

fn bad(input: &str, message: impl std::fmt::Display, help: impl Into<String>) -> Error {
    Error::input(format!("input '{input}': {message}"), help)
}

/// `true` or `false`, any case; anything else is an error.
fn boolean(name: &str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(
            name,
            format!("must be true or false, not '{v}'"),
            format!("set `{name}: true` or `{name}: false`"),
        )),
    }
}

/// The inputs in `env` (variable name → value) as arguments and environment.
/// `temp` is where the OCI layout goes when nothing is pushed (RUNNER_TEMP).
pub fn expand(env: &BTreeMap<String, String>, temp: &str) -> Result<Expanded> {
    expand_for(env, temp, &RunInfo::default())
}

/// [`expand`] in a run described by `run` (provenance's defaults).
pub fn expand_for(env: &BTreeMap<String, String>, temp: &str, run: &RunInfo) -> Result<Expanded> {
    refuse_unknown(env)?;
    let mut x = Expanded::default();
    let mut pushed = false;
    let mut image = None;
    for i in INPUTS {
        let Some(v) = env.get(&var_name(i.name)).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        match i.kind {
            Kind::Value => x.args.extend([i.flag.to_string(), v.clone()]),
            Kind::List(opts) => {
                for item in list(v, opts).map_err(|e| bad(i.name, e, QUOTE_HELP))? {
                    x.args.extend([i.flag.to_string(), item]);
                }
            }
            Kind::Joined => {
                let items = list(v, ITEMS).map_err(|e| bad(i.name, e, QUOTE_HELP))?;
                x.args.extend([i.flag.to_string(), items.join(",")]);
            }
            Kind::Switch | Kind::SwitchOff => {
                let on = boolean(i.name, v)?;
                pushed |= i.name == "push" && on;
                if on == (i.kind == Kind::Switch) {
                    x.args.push(i.flag.to_string());
                }
            }
            Kind::OneOf(words) => x
                .args
                .extend([i.flag.to_string(), one_of(i.name, v, words)?]),
            Kind::Tags => image = tags(i, v, &mut x.args)?,
            Kind::Secrets => secrets(i, v, &mut x)?,
            Kind::Env => {
                x.masks.extend(mask_lines(v));
                x.set_env.push((i.flag.to_string(), v.clone()));
            }
            Kind::Summary if !boolean(i.name, v)? => {
                x.remove_env.push("GITHUB_STEP_SUMMARY".into());
            }
            Kind::Data => x.set_env.push((i.flag.to_string(), v.clone())),
            Kind::Summary | Kind::Action => {}
        }
    }
    let load = env
        .get(&var_name("load"))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    provenance(&mut x.args, load, run);
    if pushed && image.is_none() {
        return Err(Error::input(
            "push: true needs tags naming the image",
            "add e.g. `tags: ghcr.io/acme/app:latest`",
        ));
    }
    let outputs = env
        .get(&var_name("outputs"))
        .is_some_and(|v| !v.trim().is_empty());
    if !pushed && !outputs {
        // The OCI layout goes to the runner's temp directory, not the workspace.
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = format!("{temp}/mbx-out.{}.{unique}", std::process::id());
        x.args.extend(["--output".to_string(), dir]);
    }
    x.remove_env
        .extend(env.keys().filter(|k| k.starts_with("INPUT_")).cloned());
    Ok(x)
}

/// What the run says about itself that build-push-action's provenance
/// default reads (never an input).
#[derive(Debug, Default, Clone)]
pub struct RunInfo {
    /// `$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID/attempts/$GITHUB_RUN_ATTEMPT`.
    pub run_url: Option<String>,
    /// The event payload's `repository.private`.
    pub private: Option<bool>,
    /// `BUILDX_NO_DEFAULT_ATTESTATIONS` is true.
    pub no_default_attestations: bool,
}

impl RunInfo {
    /// From the process's environment and the event payload file.
    pub fn from_env() -> RunInfo {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let run_url = match (
            var("GITHUB_SERVER_URL"),
            var("GITHUB_REPOSITORY"),
            var("GITHUB_RUN_ID"),
        ) {
            (Some(s), Some(r), Some(id)) => Some(format!(
                "{}/{r}/actions/runs/{id}/attempts/{}",
                s.trim_end_matches('/'),
                var("GITHUB_RUN_ATTEMPT").unwrap_or_else(|| "1".into())
            )),
            _ => None,
        };
        let private = var("GITHUB_EVENT_PATH")
            // GitHub's event payloads are at most 25 MB.
            .and_then(|p| crate::error::read_capped(std::path::Path::new(&p), 64 << 20).ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|e| e["repository"]["private"].as_bool());
        let no_default_attestations = var("BUILDX_NO_DEFAULT_ATTESTATIONS")
            .is_some_and(|v| matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"));
        RunInfo {
            run_url,
            private,
            no_default_attestations,
        }
    }
}

/// build-push-action's provenance (docker/actions-toolkit): `true` becomes
/// `builder-id=<run URL>`, other settings get the builder-id added; left
/// empty, `mode=max` for a public repository and `mode=min,inline-only=true`
/// for a private one — unless `attests` asks for provenance itself, `load`
/// is true, or BUILDX_NO_DEFAULT_ATTESTATIONS is set.
fn provenance(args: &mut Vec<String>, load: bool, run: &RunInfo) {
    let builder_id = run.run_url.as_ref().map(|u| format!("builder-id={u}"));
    let with_id = |v: &str| match &builder_id {
        Some(id) if !v.split(',').any(|f| f.trim().starts_with("builder-id=")) => {
            format!("{v},{id}")
        }
        _ => v.to_string(),
    };
    if let Some(i) = args.iter().position(|a| a == "--provenance") {
        let v = args[i + 1].clone();
        args[i + 1] = match v.to_ascii_lowercase().as_str() {
            "true" => builder_id.unwrap_or(v),
            "false" => "false".into(),
            _ => with_id(&v),
        };
        return;
    }
    let attested = args
        .windows(2)
        .any(|w| w[0] == "--attest" && w[1].split(',').any(|f| f.trim() == "type=provenance"));
    if attested || load || run.no_default_attestations {
        return;
    }
    let mode = if run.private == Some(true) {
        "mode=min,inline-only=true"
    } else {
        "mode=max"
    };
    args.extend(["--provenance".to_string(), with_id(mode)]);
}

const QUOTE_HELP: &str =
    "quote an item holding commas or newlines with \" (a quote inside it as \"\")";

fn one_of(name: &str, v: &str, words: &[&str]) -> Result<String> {
    let w = v.trim().to_ascii_lowercase();
    if words.contains(&w.as_str()) {
        Ok(w)
    } else {
        Err(bad(
            name,
            format!("must be {}, not '{v}'", words.join(", ")),
            format!("set `{name}:` to one of {}", words.join(", ")),
        ))
    }
}

/// An INPUT_* this mbx does not know, set to anything but empty or `false`,
/// comes from a newer action.yml: an error, never ignored. (Its value is not
/// printed: it may be a secret.)
fn refuse_unknown(env: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in env {
        let Some(rest) = k.strip_prefix("INPUT_") else {
            continue;
        };
        // act (and GitHub, for JavaScript actions) also sets INPUT_NAME-WITH-DASHES.
        let known = INPUTS
            .iter()
            .any(|i| var_name(i.name) == k.replace('-', "_"));
        let off = v.trim().is_empty() || v.trim().eq_ignore_ascii_case("false");
        if !known && !off {
            let name = rest.to_lowercase().replace('_', "-");
            return Err(bad(
                &name,
                format!(
                    "is set, but mbx {} does not know this input",
                    env!("CARGO_PKG_VERSION")
                ),
                format!("leave '{name}' at its default, or run a newer mbx (input mbx-version)"),
            ));
        }
    }
    Ok(())
}

/// `tags`: full references (ghcr.io/acme/app:1.0), in any number of
/// repositories (docker/metadata-action with two `images:`). Adds `--tag REF`
/// each (`:latest` where none is written, so a bare name is never read as a
/// tag); returns the first repository.
fn tags(i: &Input, v: &str, args: &mut Vec<String>) -> Result<Option<String>> {
    let mut first = None;
    for r in list(v, ITEMS).map_err(|e| bad(i.name, e, QUOTE_HELP))? {
        if r.contains('@') {
            return Err(bad(
                i.name,
                format!("tag '{r}' names a digest; a build makes a new one"),
                "give references with a tag, e.g. ghcr.io/acme/app:1.0",
            ));
        }
        oci_client::Reference::try_from(r.as_str()).map_err(|e| {
            bad(
                i.name,
                format!("'{r}' is not an image reference: {e}"),
                "give full references, e.g. ghcr.io/acme/app:1.0",
            )
        })?;
        let last = r.rsplit('/').next().unwrap_or(&r);
        let full = if last.contains(':') {
            r.clone()
        } else {
            format!("{r}:latest")
        };
        first.get_or_insert_with(|| {
            full[..full.len() - full.rsplit(':').next().map_or(0, |t| t.len() + 1)].to_string()
        });
        args.extend([i.flag.to_string(), full]);
    }
    Ok(first)
}

/// `secrets`: KEY=VALUE items (a quoted item may span lines: a PEM key).
fn secrets(i: &Input, v: &str, x: &mut Expanded) -> Result<()> {
    let items = list(v, SECRET_LINES).map_err(|_| {
        // The parse error may quote the value: say only where it failed.
        bad(
            i.name,
            "a quote is not closed or not followed by a new line",
            QUOTE_HELP,
        )
    })?;
    for (n, s) in items.into_iter().enumerate() {
        let Some((k, val)) = s.split_once('=') else {
            return Err(bad(
                i.name,
                format!("item {} is not KEY=VALUE", n + 1),
                "one KEY=VALUE per line; quote a value that spans lines",
            ));
        };
        let id_ok = !k.is_empty()
            && k.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c));
        if !id_ok {
            return Err(bad(
                i.name,
                format!("secret id '{k}' has characters other than letters, digits, _ . -"),
                "name each secret with letters, digits, _ . -",
            ));
        }
        let var = format!("MBX_SECRET_{n}");
        x.masks.extend(mask_lines(val));
        x.set_env.push((var.clone(), val.to_string()));
        x.args.extend([i.flag.to_string(), format!("{k}={var}")]);
    }
    Ok(())
}

/// The lines of a secret, each masked on its own (the runner masks per line).
fn mask_lines(v: &str) -> Vec<String> {
    v.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// A list input as docker/actions-toolkit's `Util.getList` reads it: CSV
/// records (csv-parse with relaxQuotes, relaxColumnCount, skipEmptyLines);
/// a one-field record is split at commas unless `ignoreComma`; a record of
/// several fields gives each field, or with `ignoreComma` the fields joined
/// by commas again; items trimmed. One deviation: an item empty after
/// trimming is dropped (the toolkit keeps a blank line's spaces as `""`).
pub fn list(input: &str, opts: ListOpts) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    for record in records(input, opts)? {
        match (record.len(), opts.commas) {
            (1, true) => out.extend(record[0].split(',').map(String::from)),
            (1, false) => out.push(record[0].clone()),
            (_, true) => out.extend(record),
            (_, false) => out.push(record.join(",")),
        }
    }
    Ok(out
        .into_iter()
        .map(|s| if opts.trim { s.trim().to_string() } else { s })
        .filter(|s| !s.trim().is_empty())
        .collect())
}

/// CSV records: fields at `,`, records at `\n`, `\r\n` or `\r`; a field that
/// starts with `"` is quoted (commas, line breaks and `""` inside); a quote
/// elsewhere is kept (relaxQuotes); empty lines skipped.
fn records(input: &str, opts: ListOpts) -> std::result::Result<Vec<Vec<String>>, String> {
    let mut records = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut quoted = false; // this field was quoted (it may be empty)
    let mut chars = input.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match c {
            '"' if opts.quote && field.is_empty() && !quoted => {
                quoted = true;
                let opened = line;
                loop {
                    match chars.next() {
                        None => {
                            return Err(format!("the quote opened on line {opened} is not closed"))
                        }
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => {
                            line += usize::from(c == '\n');
                            field.push(c);
                        }
                    }
                }
                if !matches!(chars.peek(), None | Some(',' | '\n' | '\r')) {
                    return Err(format!(
                        "on line {line}, a closing quote must end the item (a quote inside it is written \"\")"
                    ));
                }
            }
            ',' => {
                record.push(std::mem::take(&mut field));
                quoted = false;
            }
            '\n' | '\r' => {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                line += 1;
                end_record(&mut records, &mut record, &mut field, quoted);
                quoted = false;
            }
            c if Some(c) == opts.comment => {
                while chars.peek().is_some_and(|&c| c != '\n' && c != '\r') {
                    chars.next();
                }
            }
            c => field.push(c),
        }
    }
    end_record(&mut records, &mut record, &mut field, quoted);
    Ok(records)
}

fn end_record(
    records: &mut Vec<Vec<String>>,
    record: &mut Vec<String>,
    field: &mut String,
    quoted: bool,
) {
    // An empty line (or a comment line) makes no record.
    if record.is_empty() && field.is_empty() && !quoted {
        return;
    }
    record.push(std::mem::take(field));
    records.push(std::mem::take(record));
}

/// The command line, with `mbx ci --inputs-from-env` expanded: the inputs are
/// read, mbx's environment set (secrets, token; every INPUT_* removed), the
/// values to mask announced, and the arguments parsed by clap as if typed.
/// A bad input ends the process with exit 2 and an error annotation.
pub fn parse() -> Cli {
    let cli = Cli::parse();
    let asked = matches!(&cli.command, Command::Ci(a) if a.inputs_from_env);
    if !asked {
        return cli;
    }
    let env: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("INPUT_"))
        .collect();
    let temp = std::env::var("RUNNER_TEMP")
        .or_else(|_| std::env::var("TMPDIR"))
        .unwrap_or_else(|_| "/tmp".into());
    let x = match expand_for(&env, temp.trim_end_matches('/'), &RunInfo::from_env()) {
        Ok(x) => x,
        Err(e) => fail(&e.to_string(), e.help().unwrap_or(""), e.exit_code()),
    };
    for m in &x.masks {
        printer::outln(&format!("::add-mask::{}", escape_data(m)));
    }
    // Still one thread: nothing else reads the environment yet.
    for (k, v) in &x.set_env {
        std::env::set_var(k, v);
    }
    for k in &x.remove_env {
        std::env::remove_var(k);
    }
    let mut argv: Vec<OsString> = std::env::args_os().collect();
    argv.extend(x.args.iter().map(OsString::from));
    printer::outln(&format!(
        "mbx {}: the action's inputs as arguments: {}",
        env!("CARGO_PKG_VERSION"),
        serde_json::to_string(&x.args).unwrap_or_default()
    ));
    Cli::try_parse_from(argv).unwrap_or_else(|e| {
        // clap's first line names the flag and the value (never a secret: those are not in argv).
        let text = e.render().to_string();
        let first = text.lines().next().unwrap_or_default();
        annotate(first.trim_start_matches("error: "));
        e.exit()
    })
}

/// An error annotation the runner shows on the step.
fn annotate(message: &str) {
    let a = Annotation {
        level: Level::Error,
        title: "mbx".into(),
        message: message.into(),
    };
    printer::outln(&a.to_string());
}

fn fail(message: &str, help: &str, code: i32) -> ! {
    annotate(message);
    printer::err(&format!("error: {message}"));
    if !help.is_empty() {
        printer::err(&format!("help: {help}"));
    }
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(input: &str, opts: ListOpts) -> Vec<String> {
        list(input, opts).unwrap()
    }

    /// The cases of docker/actions-toolkit's `__tests__/util.test.ts` (getInputList).
    #[test]
    fn lists_split_as_the_toolkit_splits_them() {
        assert_eq!(l("bar", ITEMS), ["bar"]);
        assert_eq!(l("bar\nbaz", ITEMS), ["bar", "baz"]);
        assert_eq!(l("bar\n\nbaz", ITEMS), ["bar", "baz"]);
        assert_eq!(l("bar,baz", ITEMS), ["bar", "baz"]);
        assert_eq!(l("bar,baz,", ITEMS), ["bar", "baz"]);
        assert_eq!(l("bar\r\nbaz", ITEMS), ["bar", "baz"]);
        assert_eq!(l("bar\r\nbaz,bat", ITEMS), ["bar", "baz", "bat"]);
        assert_eq!(
            l("user/app:cache\ntype=local,src=path/to/dir", LINES),
            ["user/app:cache", "type=local,src=path/to/dir"]
        );
        assert_eq!(
            l("user/app:cache\r\ntype=local,src=path/to/dir", LINES),
            ["user/app:cache", "type=local,src=path/to/dir"]
        );
        // No comment character unless asked for one.
        assert_eq!(l("foo=bar\nbar=qux#baz", ITEMS), ["foo=bar", "bar=qux#baz"]);
        let hash = ListOpts {
            comment: Some('#'),
            ..ITEMS
        };
        assert_eq!(l("foo=bar\nbar=qux#baz", hash), ["foo=bar", "bar=qux"]);
        assert_eq!(l("# a comment line\nfoo=bar", hash), ["foo=bar"]);
        // quote: false keeps the quotes and the commas in them.
        let raw = ListOpts {
            commas: false,
            quote: false,
            comment: None,
            trim: true,
        };
        let q = r#""env.no_proxy=localhost,127.0.0.1,.mydomain""#;
        assert_eq!(l(q, raw), [q]);
        let out = r#"type=image,"name=ghcr.io/a/b,docker.io/a/b",push=true"#;
        assert_eq!(l(out, raw), [out]);
        // A quoted one-field record is still split at commas without ignoreComma.
        assert_eq!(
            l("linux/amd64\n\"linux/arm64,linux/arm/v7\"", ITEMS),
            ["linux/amd64", "linux/arm64", "linux/arm/v7"]
        );
    }

    #[test]
    fn quoted_items_hold_newlines_commas_and_quotes() {
        let s = "GIT_AUTH_TOKEN=abcdefgh,ijklmno=0123456789\n\"MYSECRET=aaaaaaaa\nbbbbbbb\nccccccccc\"\nFOO=bar";
        assert_eq!(
            l(s, LINES),
            [
                "GIT_AUTH_TOKEN=abcdefgh,ijklmno=0123456789",
                "MYSECRET=aaaaaaaa\nbbbbbbb\nccccccccc",
                "FOO=bar"
            ]
        );
        let s = "\"EMPTYLINE=aaaa\n\nbbbb\nccc\"\nFOO=bar";
        assert_eq!(l(s, LINES), ["EMPTYLINE=aaaa\n\nbbbb\nccc", "FOO=bar"]);
        // Unquoted, each line is an item.
        assert_eq!(
            l("MYSECRET=aaaaaaaa\nbbbbbbb\nFOO=bar", LINES),
            ["MYSECRET=aaaaaaaa", "bbbbbbb", "FOO=bar"]
        );
        assert_eq!(
            l("\"MYSECRET=aaaa\nbbbb\"\"bbb\nccc\"\nFOO=bar", LINES),
            ["MYSECRET=aaaa\nbbbb\"bbb\nccc", "FOO=bar"]
        );
        // Secrets keep their spaces (trimWhitespace: false).
        assert_eq!(
            l("A=one \n\"B=two\nlines \"\n", SECRET_LINES),
            ["A=one ", "B=two\nlines "]
        );
        // Several fields with ignoreComma: joined again, quotes gone.
        assert_eq!(l("a=1,\"b,c\"", LINES), ["a=1,b,c"]);
        // A quote inside an unquoted item is kept (relaxQuotes).
        assert_eq!(l("say=\"hi\"", LINES), ["say=\"hi\""]);
        // Blank lines and spaces: trimmed, dropped.
        assert_eq!(
            l("a=1\n\n  b=two words  \n   \n", LINES),
            ["a=1", "b=two words"]
        );
        assert!(l("", ITEMS).is_empty());
    }

    #[test]
    fn broken_quotes_are_errors() {
        let e = list("a\n\"b,\nc", LINES).unwrap_err();
        assert!(e.contains("line 2 is not closed"), "{e}");
        let e = list("\"a\"b", LINES).unwrap_err();
        assert!(e.contains("closing quote must end the item"), "{e}");
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (var_name(k), v.to_string()))
            .collect()
    }

    fn expand_ok(pairs: &[(&str, &str)]) -> Expanded {
        expand(&env(pairs), "/rt").unwrap()
    }

    fn pairs(args: &[String], flag: &str) -> Vec<String> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].clone())
            .collect()
    }

    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----";

    #[test]
    fn every_input_becomes_arguments() {
        let secrets = format!("TOKEN=s3cr3t-value\n\"KEY={PEM}\"\nNETRC=machine=x,login=y");
        let x = expand_ok(&[
            ("context", "ctx dir"),
            ("file", "ctx dir/Dockerfile.prod"),
            ("platforms", "linux/amd64\nlinux/arm64"),
            (
                "tags",
                "ghcr.io/acme/app:1.0\nghcr.io/acme/app , ghcr.io/acme/app:sha-abc",
            ),
            ("labels", "a=1\n\n  b=two words  \n"),
            ("build-args", "X=1\nY=has,comma"),
            ("target", "prod"),
            ("push", "TRUE"),
            ("provenance", "mode=max"),
            ("sbom", "true"),
            ("secrets", &secrets),
            ("cache", "Registry"),
            ("cache-scope-prefix", "app"),
            ("builder", "b1"),
            ("driver", "docker-container"),
            (
                "driver-opts",
                "network=host,image=127.0.0.1:5000/moby/buildkit:local",
            ),
            ("buildkit-image", "127.0.0.1:5000/moby/buildkit:local"),
            ("qemu-image", "127.0.0.1:5000/binfmt:local"),
            ("verify", "False"),
            ("check-binaries", "true"),
            ("summary", "false"),
            ("github-token", "ghs_tokenvalue"),
            ("emulation-warn-percent", "30"),
            ("mbx-binary", "/opt/mbx"),
        ]);
        let a = &x.args;
        assert_eq!(pairs(a, "--context"), ["ctx dir"]);
        assert_eq!(pairs(a, "--file"), ["ctx dir/Dockerfile.prod"]);
        assert_eq!(pairs(a, "--platforms"), ["linux/amd64,linux/arm64"]);
        assert!(pairs(a, "--image").is_empty());
        assert_eq!(
            pairs(a, "--tag"),
            [
                "ghcr.io/acme/app:1.0",
                "ghcr.io/acme/app:latest",
                "ghcr.io/acme/app:sha-abc"
            ]
        );
        assert_eq!(pairs(a, "--label"), ["a=1", "b=two words"]);
        assert_eq!(pairs(a, "--build-arg"), ["X=1", "Y=has,comma"]);
        assert!(a.contains(&"--push".into()) && pairs(a, "--output").is_empty());
        assert_eq!(
            pairs(a, "--secret-env"),
            [
                "TOKEN=MBX_SECRET_0",
                "KEY=MBX_SECRET_1",
                "NETRC=MBX_SECRET_2"
            ]
        );
        assert_eq!(pairs(a, "--cache"), ["registry"]);
        assert_eq!(
            pairs(a, "--driver-opt"),
            ["network=host", "image=127.0.0.1:5000/moby/buildkit:local"]
        );
        assert!(a.contains(&"--no-verify".into()) && a.contains(&"--check-binaries".into()));
        assert_eq!(pairs(a, "--emulation-warn-percent"), ["30"]);
        assert!(!a
            .iter()
            .any(|s| s.contains("s3cr3t") || s.contains("ghs_") || s.contains("PRIVATE")));
        assert_eq!(
            x.set_env,
            [
                ("MBX_SECRET_0".into(), "s3cr3t-value".into()),
                ("MBX_SECRET_1".into(), PEM.into()),
                ("MBX_SECRET_2".into(), "machine=x,login=y".into()),
                ("GITHUB_TOKEN".into(), "ghs_tokenvalue".into()),
            ]
        );
        // Each line of the PEM key masked on its own.
        assert!(x
            .masks
            .contains(&"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC".to_string()));
        assert!(x.masks.contains(&"s3cr3t-value".to_string()));
        assert!(x.masks.contains(&"ghs_tokenvalue".to_string()));
        assert!(x.remove_env.contains(&"GITHUB_STEP_SUMMARY".into()));
        assert!(x.remove_env.contains(&"INPUT_SECRETS".into()));
        assert!(x.remove_env.contains(&"INPUT_GITHUB_TOKEN".into()));
    }

    #[test]
    fn every_flag_of_the_table_is_one_this_mbx_has() {
        let x = expand_ok(&[
            ("context", "."),
            ("file", "Dockerfile"),
            ("platforms", "linux/amd64"),
            ("tags", "127.0.0.1:5000/app:v1"),
            ("labels", "a=1"),
            ("build-args", "b=2"),
            ("target", "t"),
            ("push", "true"),
            ("provenance", "false"),
            ("sbom", "true"),
            ("secrets", "K=v"),
            ("load", "true"),
            ("outputs", "type=local,dest=out"),
            ("secret-envs", "a=HOME"),
            ("secret-files", "b=/etc/hostname"),
            ("add-hosts", "h:127.0.0.1"),
            ("allow", "network.host"),
            ("annotations", "index:a=1"),
            ("attests", "type=sbom"),
            ("build-contexts", "x=."),
            ("cache-from", "type=gha,scope=a"),
            ("cache-to", "type=gha,scope=a"),
            ("call", "build"),
            ("cgroup-parent", "p"),
            ("network", "host"),
            ("no-cache", "true"),
            ("no-cache-filters", "a,b"),
            ("pull", "true"),
            ("shm-size", "2g"),
            ("ssh", "default"),
            ("ulimit", "nofile=1024:1024"),
            ("cache", "gha"),
            ("cache-scope-prefix", "p"),
            ("builder", "b"),
            ("driver", "docker-container"),
            ("driver-opts", "network=host"),
            (
                "nodes",
                "tcp://10.0.0.1:1234=linux/amd64\ntcp://10.0.0.2:1234=linux/arm64",
            ),
            ("endpoint", "tcp://10.0.0.1:1234"),
            (
                "buildkitd-flags",
                "--debug --allow-insecure-entitlement security.insecure",
            ),
            ("buildkitd-config", "/etc/buildkitd.toml"),
            ("buildkitd-config-inline", "[registry.\"r\"]\nhttp = true"),
            ("cleanup", "true"),
            ("buildkit-image", "moby/buildkit"),
            ("qemu-image", "binfmt"),
            ("verify", "false"),
            ("check-binaries", "true"),
            ("emulation-warn-percent", "30"),
            ("mode", "Part"),
        ]);
        for i in INPUTS.iter().filter(|i| i.flag.starts_with("--")) {
            assert!(
                x.args.contains(&i.flag.to_string()),
                "{} was exercised",
                i.name
            );
        }
        let mut argv = vec!["mbx".to_string(), "ci".into(), "--inputs-from-env".into()];
        argv.extend(x.args);
        Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    }

    /// `mode` is a flag; `parts` (the JSON of every part, up to ~110 KiB)
    /// reaches mbx through its environment: not argv, not echoed, not masked.
    #[test]
    fn mode_and_parts_reach_mbx() {
        let parts = r#"{"part-0": "{\"mbx_version\": \"0.1.0\"}", "part-1": ""}"#;
        let x = expand_ok(&[("mode", "merge"), ("parts", parts)]);
        assert_eq!(x.args[..2], ["--mode", "merge"]);
        assert!(!x.args.iter().any(|a| a.contains("part-0")), "{:?}", x.args);
        assert_eq!(x.set_env, [("MBX_PARTS".to_string(), parts.to_string())]);
        assert!(x.masks.is_empty());
        let e = expand(&env(&[("mode", "parts")]), "/rt").unwrap_err();
        assert!(e.to_string().contains("must be all, part, merge"), "{e}");
    }

    #[test]
    fn defaults_and_empty_values_pass_nothing_but_the_output_and_provenance() {
        let x = expand_ok(&[
            ("context", ""),
            ("push", "false"),
            ("verify", "true"),
            ("summary", "TRUE"),
        ]);
        assert_eq!(x.args.len(), 4, "{:?}", x.args);
        assert_eq!(
            x.args[..2],
            ["--provenance", "mode=max"],
            "build-push-action's default"
        );
        assert_eq!(x.args[2], "--output");
        assert!(x.args[3].starts_with("/rt/mbx-out."), "{:?}", x.args);
        assert!(x.set_env.is_empty() && x.masks.is_empty());
        assert!(!x.remove_env.contains(&"GITHUB_STEP_SUMMARY".into()));
    }

    #[test]
    fn bad_inputs_are_errors_naming_the_input() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("push", "true")], "push: true needs tags"),
            (&[("push", "yes")], "must be true or false"),
            (&[("cache", "s3")], "must be gha, local, registry, none"),
            (&[("tags", "a.io/x@sha256:00")], "names a digest"),
            (&[("tags", "A.io/X Y:1")], "is not an image reference"),
            (&[("secrets", "no-equals-sign")], "item 1 is not KEY=VALUE"),
            (&[("secrets", "bad id=x")], "secret id 'bad id'"),
            (&[("labels", "\"open")], "is not closed"),
            (
                &[("from-a-newer-action", "x")],
                "input 'from-a-newer-action': is set, but mbx",
            ),
        ];
        for (inputs, want) in cases {
            let e = expand(&env(inputs), "/rt").unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(want), "{inputs:?}: {e}");
        }
        // A secret's value never appears in an error.
        let e = expand(&env(&[("secrets", "K=\"hunter2")]), "/rt");
        assert!(e.is_ok(), "a quote inside a value is kept: {e:?}");
        let e = expand(&env(&[("secrets", "\"K=hunter2")]), "/rt").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        // act's own copies of the inputs (INPUT_DRIVER-OPTS) are known ones.
        let mut e = env(&[("driver-opts", "network=host")]);
        e.insert("INPUT_DRIVER-OPTS".into(), "network=host".into());
        let x = expand(&e, "/rt").unwrap();
        assert_eq!(
            pairs(&x.args, "--driver-opt"),
            ["network=host"],
            "read once"
        );
        assert!(x.remove_env.contains(&"INPUT_DRIVER-OPTS".into()));
        // Unknown inputs left empty or false are fine (a newer action.yml's defaults).
        assert!(expand(
            &env(&[("network", "false"), ("no-cache-filters", "")]),
            "/rt"
        )
        .is_ok());
    }

    #[test]
    fn load_and_outputs_as_build_push_action_reads_them() {
        let x = expand_ok(&[
            ("load", "true"),
            ("outputs", "type=local,dest=out\n\"type=tar\",dest=a,b.tar"),
        ]);
        assert!(x.args.contains(&"--load".into()));
        assert_eq!(
            pairs(&x.args, "--output"),
            ["type=local,dest=out", "\"type=tar\",dest=a,b.tar"],
            "one spec per line, no layout directory of mbx's own"
        );
        let x = expand_ok(&[("load", "true")]);
        assert_eq!(
            pairs(&x.args, "--output").len(),
            1,
            "the layout in RUNNER_TEMP"
        );
    }

    #[test]
    fn provenance_as_build_push_action_sets_it() {
        let run = |private: Option<bool>| RunInfo {
            run_url: Some("https://github.com/o/r/actions/runs/7/attempts/1".into()),
            private,
            no_default_attestations: false,
        };
        let id = "builder-id=https://github.com/o/r/actions/runs/7/attempts/1";
        let prov = |pairs: &[(&str, &str)], r: &RunInfo| {
            pairs_of(
                &expand_for(&env(pairs), "/rt", r).unwrap().args,
                "--provenance",
            )
        };
        assert_eq!(prov(&[], &run(None)), [format!("mode=max,{id}")]);
        assert_eq!(prov(&[], &run(Some(false))), [format!("mode=max,{id}")]);
        assert_eq!(
            prov(&[], &run(Some(true))),
            [format!("mode=min,inline-only=true,{id}")]
        );
        assert_eq!(prov(&[("provenance", "true")], &run(None)), [id]);
        assert_eq!(prov(&[("provenance", "False")], &run(None)), ["false"]);
        assert_eq!(
            prov(&[("provenance", "mode=max")], &run(None)),
            [format!("mode=max,{id}")]
        );
        assert!(prov(&[("attests", "type=provenance,mode=min")], &run(None)).is_empty());
        // (`load: true` turns the default off too, once action.yml declares `load`.)
        let off = RunInfo {
            no_default_attestations: true,
            ..run(None)
        };
        assert!(prov(&[], &off).is_empty());
        assert_eq!(prov(&[], &RunInfo::default()), ["mode=max"]);
    }

    fn pairs_of(args: &[String], flag: &str) -> Vec<String> {
        pairs(args, flag)
    }

    #[test]
    fn tags_are_full_references_in_any_number_of_repositories() {
        let x = expand_ok(&[("tags", "acme/app:1,docker.io/acme/app:2")]);
        assert_eq!(
            pairs(&x.args, "--tag"),
            ["acme/app:1", "docker.io/acme/app:2"]
        );
        let x = expand_ok(&[("tags", "127.0.0.1:5000/app")]);
        assert_eq!(pairs(&x.args, "--tag"), ["127.0.0.1:5000/app:latest"]);
        // docker/metadata-action's output with two `images:`.
        let x = expand_ok(&[(
            "tags",
            "127.0.0.1:5000/a/app:1.2.3\n127.0.0.1:5000/a/app:latest\n127.0.0.1:5001/a/app:1.2.3\n127.0.0.1:5001/a/app:latest",
        ), ("push", "true")]);
        assert_eq!(pairs(&x.args, "--tag").len(), 4);
        assert!(x.args.contains(&"--push".into()));
    }
}
