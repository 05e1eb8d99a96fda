//! `--output`/`-o` (the action's `outputs`) and `--load`: buildx exporter
//! specs, each made for every platform and joined where that means something.
//!
//! - `type=registry[,name=REF]`, `type=image,push=true[,name=REF]`: the push
//!   (as `--push`); `type=image` without push keeps the result in BuildKit's
//!   cache only, as buildx does with a container builder.
//! - `type=oci,dest=PATH[,tar=false]`: one OCI layout (a tar unless
//!   `tar=false`) holding an index of every platform.
//! - `type=docker[,dest=FILE][,name=REF]`: loaded into the Docker image store
//!   (every platform when the store holds multi-platform images, else the
//!   runner's), or a tarball `docker load` takes; `--load` is `type=docker`.
//! - `type=local,dest=DIR`, `type=tar,dest=FILE`: each platform's files, in
//!   `DIR/linux_amd64/…` (one platform: `DIR/…`) as buildx writes them.
//! - `DIR` without `type=`: mbx's own OCI layout directory (as before).

use std::path::PathBuf;

use crate::error::{Error, Result};

/// What `--output` and `--load` ask for, before the plan picks the primary output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outputs {
    /// `--output DIR` (no `type=`), or `type=oci,dest=DIR,tar=false`.
    pub layout_dir: Option<PathBuf>,
    /// A spec asks for a push (`type=registry`, `type=image,push=true`).
    pub push: bool,
    /// `name=` of a push spec: full image references.
    pub push_names: Vec<String>,
    pub exports: Exports,
}

/// What is made from the merged result besides the primary output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exports {
    /// `type=docker` / `--load`: into the image store (`dest: None`) or a tarball.
    pub docker: Vec<Docker>,
    pub oci: Vec<Oci>,
    pub local: Vec<Files>,
    pub tar: Vec<Files>,
    /// The references the loaded or exported image is named by (the image
    /// and its tags), unless a spec names its own.
    pub names: Vec<String>,
    /// Exporter attributes passed on to each platform's push (`compression=zstd`, …).
    pub push_attrs: Vec<String>,
    /// Things the user should know (e.g. `type=image` without push).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Docker {
    pub dest: Option<PathBuf>,
    pub names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Oci {
    pub dest: PathBuf,
    pub tar: bool,
    pub names: Vec<String>,
}

/// A `type=local` directory or `type=tar` file; `split`: one subdirectory
/// per platform (buildx's `platform-split`, on by default).
#[derive(Debug, Clone, PartialEq)]
pub struct Files {
    pub dest: PathBuf,
    pub split: Option<bool>,
}

impl Exports {
    pub fn is_empty(&self) -> bool {
        self.docker.is_empty()
            && self.oci.is_empty()
            && self.local.is_empty()
            && self.tar.is_empty()
    }

    /// Whether the merged OCI layout is needed (loads, docker and OCI exports).
    pub fn need_layout(&self) -> bool {
        !self.docker.is_empty() || !self.oci.is_empty()
    }

    pub fn load(&self) -> bool {
        self.docker.iter().any(|d| d.dest.is_none())
    }
}

impl Outputs {
    /// Without a push, the first `type=oci,tar=false` directory is the
    /// layout the build writes (as `--output DIR`), not a copy of it.
    pub fn settle(&mut self, push: bool) {
        if push || self.layout_dir.is_some() {
            return;
        }
        if let Some(i) = self.exports.oci.iter().position(|o| !o.tar) {
            self.layout_dir = Some(self.exports.oci.remove(i).dest);
        }
    }
}

const TYPES: &str = "registry, image, oci, docker, local, tar";
/// Image exporter attributes handed on to each platform's push unchanged.
const PASSED_ON: [&str; 4] = [
    "compression",
    "compression-level",
    "force-compression",
    "oci-mediatypes",
];

fn bad(spec: &str, what: impl std::fmt::Display, help: impl Into<String>) -> Error {
    Error::input(format!("--output `{spec}`: {what}"), help)
}

/// Parse every `--output` value and `--load`.
pub fn parse(values: &[String], load: bool) -> Result<Outputs> {
    let mut out = Outputs::default();
    if load {
        out.exports.docker.push(Docker {
            dest: None,
            names: Vec::new(),
        });
    }
    for v in values {
        if !v.contains('=') {
            if v.trim() == "-" {
                return Err(bad(
                    v,
                    "mbx does not write to stdout",
                    "pass type=tar,dest=FILE or type=oci,dest=FILE",
                ));
            }
            if let Some(d) = &out.layout_dir {
                return Err(bad(
                    v,
                    format!("a second layout directory (first: {})", d.display()),
                    "pass one --output DIR; other outputs as type=…,dest=…",
                ));
            }
            out.layout_dir = Some(PathBuf::from(v));
            continue;
        }
        spec(v, &mut out)?;
    }
    Ok(out)
}

/// `type=…,key=value,…` (CSV: a field in double quotes may hold commas).
fn spec(v: &str, out: &mut Outputs) -> Result<()> {
    let fields = fields(v).map_err(|e| bad(v, e, "quote a field holding commas with \""))?;
    let get = |k: &str| fields.iter().find(|(a, _)| a == k).map(|(_, b)| b.clone());
    let Some(kind) = get("type") else {
        return Err(bad(
            v,
            "no type=",
            format!("start it with type= ({TYPES}), or pass a bare DIR for mbx's OCI layout"),
        ));
    };
    let boolean = |k: &str, default: bool| -> Result<bool> {
        match get(k).as_deref().map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(x) => Err(bad(
                v,
                format!("{k}={x} is not true or false"),
                format!("pass {k}=true or {k}=false"),
            )),
        }
    };
    let names = || -> Vec<String> {
        get("name")
            .map(|n| {
                n.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let dest = |required: bool| -> Result<Option<PathBuf>> {
        match get("dest") {
            Some(d) if d.trim() == "-" => {
                Err(bad(v, "mbx does not write to stdout", "pass dest=FILE"))
            }
            Some(d) if !d.trim().is_empty() => Ok(Some(PathBuf::from(d))),
            _ if required => Err(bad(
                v,
                format!("type={kind} needs dest="),
                format!("add dest=PATH, e.g. type={kind},dest=out"),
            )),
            _ => Ok(None),
        }
    };
    check_keys(v, &kind, &fields)?;
    match kind.as_str() {
        "registry" | "image" => {
            let push = boolean("push", kind == "registry")?;
            if push {
                out.push = true;
                out.push_names.extend(names());
                out.exports.push_attrs.extend(
                    fields
                        .iter()
                        .filter(|(k, _)| PASSED_ON.contains(&k.as_str()))
                        .map(|(k, val)| format!("{k}={val}")),
                );
            } else {
                out.exports.notes.push(format!(
                    "--output {v}: without push=true the image stays in BuildKit's cache only (as with buildx)"
                ));
            }
        }
        "oci" => {
            let tar = boolean("tar", true)?;
            let dest = dest(true)?.expect("required");
            out.exports.oci.push(Oci {
                dest,
                tar,
                names: names(),
            });
        }
        "docker" => out.exports.docker.push(Docker {
            dest: dest(false)?,
            names: names(),
        }),
        _ => {
            let files = Files {
                dest: dest(true)?.expect("required"),
                split: get("platform-split")
                    .map(|_| boolean("platform-split", true))
                    .transpose()?,
            };
            if kind == "local" {
                out.exports.local.push(files);
            } else {
                out.exports.tar.push(files);
            }
        }
    }
    Ok(())
}

/// Every key of the spec is one its type takes.
fn check_keys(v: &str, kind: &str, fields: &[(String, String)]) -> Result<()> {
    let allowed: &[&str] = match kind {
        "registry" | "image" => &["name", "push"],
        "oci" => &["dest", "tar", "name"],
        "docker" => &["dest", "name"],
        "local" | "tar" => &["dest", "platform-split"],
        other => {
            return Err(bad(
                v,
                format!("type={other} is not an output mbx makes"),
                format!("use one of type={TYPES}"),
            ))
        }
    };
    for (k, _) in fields {
        let image = matches!(kind, "registry" | "image");
        if k != "type"
            && !allowed.contains(&k.as_str())
            && !(image && PASSED_ON.contains(&k.as_str()))
        {
            let mut takes: Vec<&str> = allowed.to_vec();
            if image {
                takes.extend(PASSED_ON);
            }
            return Err(bad(
                v,
                format!("type={kind} takes no {k}="),
                format!("type={kind} takes {}=", takes.join("=, ")),
            ));
        }
    }
    Ok(())
}

/// The fields of one spec as (key, value); CSV as buildx reads it.
fn fields(s: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => items.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if quoted {
        return Err("a quote is not closed".into());
    }
    items.push(cur);
    items
        .into_iter()
        .map(|f| {
            let f = f.trim();
            match f.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    Ok((k.trim().to_ascii_lowercase(), v.trim().to_string()))
                }
                _ => Err(format!("`{f}` is not KEY=VALUE")),
            }
        })
        .collect()
}

/// Checks on where the exports write: a file destination must not be a
/// directory and a directory destination must not be a file.
pub fn check_destinations(exports: &Exports) -> Result<()> {
    let files = exports
        .tar
        .iter()
        .map(|f| &f.dest)
        .chain(exports.oci.iter().filter(|o| o.tar).map(|o| &o.dest))
        .chain(exports.docker.iter().filter_map(|d| d.dest.as_ref()));
    for f in files {
        if f.is_dir() {
            return Err(Error::input(
                format!("output `{}` is a directory, but this output writes a file", f.display()),
                "pass dest=FILE naming a file (it is replaced), or tar=false for an OCI layout directory",
            ));
        }
    }
    for d in exports.oci.iter().filter(|o| !o.tar).map(|o| &o.dest) {
        let foreign = super::foreign_entries(d);
        if (d.exists() && !d.is_dir()) || !foreign.is_empty() {
            return Err(Error::input(
                format!(
                    "output `{}` is not a new or empty directory nor an earlier mbx layout{}",
                    d.display(),
                    if foreign.is_empty() { String::new() } else { format!("; it holds {}", foreign.join(", ")) }
                ),
                "pass type=oci,dest=DIR,tar=false naming a new or empty directory; mbx replaces only its own output (oci-layout, index.json, blobs/)",
            ));
        }
    }
    for d in exports.local.iter().map(|f| &f.dest) {
        if d.exists() && !d.is_dir() {
            return Err(Error::input(
                format!("output `{}` exists and is not a directory", d.display()),
                "pass type=local,dest=DIR naming a directory",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<Outputs> {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>(), false)
    }

    #[test]
    fn every_type() {
        let o = p(&[
            "type=registry,name=127.0.0.1:5000/a/b:1,compression=zstd",
            "type=oci,dest=x.tar",
            "type=oci,dest=lay,tar=false",
            "type=docker",
            "type=docker,dest=d.tar,name=a:b",
            "type=local,dest=files",
            "type=tar,dest=f.tar,platform-split=false",
        ])
        .unwrap();
        assert!(o.push);
        assert_eq!(o.push_names, ["127.0.0.1:5000/a/b:1"]);
        assert_eq!(o.exports.push_attrs, ["compression=zstd"]);
        assert_eq!(o.exports.oci.len(), 2);
        assert!(!o.exports.oci[1].tar && o.exports.oci[0].tar);
        assert!(o.exports.load());
        assert_eq!(o.exports.docker[1].names, ["a:b"]);
        assert_eq!(o.exports.local[0].split, None);
        assert_eq!(o.exports.tar[0].split, Some(false));
        assert_eq!(o.layout_dir, None);
    }

    #[test]
    fn a_bare_dir_is_the_layout_and_image_without_push_only_notes() {
        let o = p(&["out", "type=image,name=a/b"]).unwrap();
        assert_eq!(o.layout_dir, Some(PathBuf::from("out")));
        assert!(!o.push && o.exports.notes.len() == 1);
        let o = p(&["\"type=image\",\"name=a/b:1,a/b:2\",push=true"]).unwrap();
        assert_eq!(o.push_names, ["a/b:1", "a/b:2"]);
    }

    #[test]
    fn bad_specs_name_the_fix() {
        for (spec, want) in [
            ("type=oci", "needs dest="),
            ("type=local,dest=-", "stdout"),
            ("-", "stdout"),
            ("type=s3,dest=x", "not an output mbx makes"),
            ("dest=x", "no type="),
            ("type=tar,dest=x,compression=gzip", "takes no compression="),
            ("type=oci,dest=x,tar=maybe", "not true or false"),
            ("type=local,\"dest=x", "not closed"),
            ("type=local,dest", "not KEY=VALUE"),
        ] {
            let e = p(&[spec]).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
        assert!(p(&["a", "b"])
            .unwrap_err()
            .to_string()
            .contains("second layout"));
    }
}
