//! `Buildx`: the one type through which mbx runs the real `docker buildx` CLI.

use std::ffi::OsString;
use std::io::Read;
use std::process::{Command, Stdio};

use crate::docker::process::{display_command, os_args, run_captured};
use crate::error::{tail, CommandError, Error, Result};

#[derive(Debug, Clone)]
pub struct Buildx {
    /// The docker CLI (`MBX_DOCKER`, default `docker` on PATH).
    pub docker: String,
}

/// What `docker buildx inspect` says of a builder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuilderInfo {
    pub name: String,
    pub driver: String,
    pub status: Option<String>,
    pub buildkit_version: Option<String>,
    pub platforms: Vec<String>,
    pub driver_options: Vec<String>,
}

/// The outcome of one `docker buildx build` (its progress went to the caller's sink).
#[derive(Debug)]
pub struct BuildOutcome {
    pub success: bool,
    pub status: Option<i32>,
    pub command: String,
    pub metadata: Option<serde_json::Value>,
    /// The last lines buildx wrote on stdout (usually nothing).
    pub stdout_tail: Vec<String>,
}

impl Default for Buildx {
    fn default() -> Self {
        Buildx {
            docker: std::env::var("MBX_DOCKER")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "docker".into()),
        }
    }
}

impl Buildx {
    fn run(&self, args: Vec<OsString>) -> Result<String, CommandError> {
        let out = run_captured(&self.docker, &args)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The error for a docker CLI that cannot be started at all.
    fn missing(&self, e: &CommandError) -> Option<Error> {
        let why = e.not_started.as_ref()?;
        Some(Error::env(
            format!(
                "the docker CLI `{}` could not be started: {why}",
                self.docker
            ),
            "install the docker CLI with the buildx plugin, or set MBX_DOCKER to its path",
        ))
    }

    /// `docker buildx version` → e.g. `v0.13.1`. Remembered per docker CLI
    /// and buildx plugin binary (path, size, mtime) in the state directory,
    /// so a warm run starts no plugin (~0.3 s) to ask again.
    pub fn version(&self) -> Result<String> {
        let key = version_cache::key(&self.docker);
        if let Some(v) = key.as_deref().and_then(version_cache::get) {
            tracing::debug!(version = %v, "buildx version remembered");
            return Ok(v);
        }
        let v = self.ask_version()?;
        if let Some(k) = &key {
            version_cache::put(k, &v);
        }
        Ok(v)
    }

    fn ask_version(&self) -> Result<String> {
        let out = self.run(os_args(["buildx", "version"])).map_err(|e| {
            if let Some(missing) = self.missing(&e) {
                return missing;
            }
            Error::env(
                format!("docker buildx is not available: {e}"),
                "install the buildx plugin ≥ 0.13 (Debian: docker-buildx; elsewhere docker/setup-buildx-action)",
            )
        })?;
        // "github.com/docker/buildx 0.13.1+ds1-3 …" or "… v0.13.1 abcdef"
        let v = out.split_whitespace().nth(1).unwrap_or("").to_string();
        Ok(if v.starts_with('v') {
            v
        } else {
            format!("v{v}")
        })
    }

    /// None when no builder of that name exists.
    pub fn inspect(&self, name: &str, bootstrap: bool) -> Result<Option<BuilderInfo>> {
        let mut args = os_args(["buildx", "inspect"]);
        if bootstrap {
            args.push("--bootstrap".into());
        }
        args.push(name.into());
        match self.run(args) {
            Ok(out) => Ok(Some(parse_inspect(&out))),
            Err(e) if e.stderr_tail.contains("no builder") && e.stderr_tail.contains("found") => Ok(None),
            Err(e) if e.not_started.is_some() => Err(self.missing(&e).expect("not started")),
            Err(e) => Err(Error::env(
                format!("builder `{name}` did not start: {e}"),
                format!("check the BuildKit image can be pulled and the daemon runs; `docker buildx rm {name}` and retry, or pass --buildkit-image"),
            )),
        }
    }

    pub fn create(&self, args: Vec<OsString>) -> Result<()> {
        let mut a = os_args(["buildx", "create"]);
        a.extend(args);
        self.run(a).map(|_| ()).map_err(Error::from)
    }

    /// `docker buildx stop NAME`: the builder's BuildKit stops; the next
    /// use (or `inspect --bootstrap`) starts it again.
    pub fn stop(&self, name: &str) -> Result<()> {
        self.run(os_args(["buildx", "stop", name]))
            .map(|_| ())
            .map_err(Error::from)
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        self.run(os_args(["buildx", "rm", name]))
            .map(|_| ())
            .map_err(Error::from)
    }

    /// Run `docker buildx build ARGS`, handing every chunk of its stderr (the
    /// `--progress=rawjson` stream) to `on_stderr` as it arrives.
    /// `metadata_file` is read after the build.
    pub fn build(
        &self,
        args: Vec<OsString>,
        metadata_file: &std::path::Path,
        secrets: &[String],
        on_stderr: &mut dyn FnMut(&[u8]),
    ) -> Result<BuildOutcome> {
        let mut a = os_args(["buildx", "build"]);
        a.extend(args);
        self.stream(a, None, metadata_file, secrets, on_stderr)
    }

    /// Run `docker buildx bake ARGS -f -` with `definition` (JSON) on its
    /// stdin, so nothing of it (cache tokens included) lands on disk; the
    /// progress goes to `on_stderr` as with [`Buildx::build`]. The paths in
    /// the definition are the user's own inputs, so bake's filesystem
    /// entitlement prompt (buildx ≥ 0.19) is turned off for this child.
    pub fn bake(
        &self,
        args: Vec<OsString>,
        definition: Vec<u8>,
        metadata_file: &std::path::Path,
        secrets: &[String],
        on_stderr: &mut dyn FnMut(&[u8]),
    ) -> Result<BuildOutcome> {
        let mut a = os_args(["buildx", "bake"]);
        a.extend(args);
        self.stream(a, Some(definition), metadata_file, secrets, on_stderr)
    }

    fn stream(
        &self,
        a: Vec<OsString>,
        stdin: Option<Vec<u8>>,
        metadata_file: &std::path::Path,
        secrets: &[String],
        on_stderr: &mut dyn FnMut(&[u8]),
    ) -> Result<BuildOutcome> {
        let command = display_command(&self.docker, &a, secrets);
        tracing::debug!(%command, "build");
        let mut cmd = Command::new(&self.docker);
        if stdin.is_some() {
            cmd.env("BUILDX_BAKE_ENTITLEMENTS_FS", "0");
        }
        let mut child = crate::docker::process::die_with_parent(&mut cmd)
            .args(&a)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::env(
                    format!("could not start `{}`: {e}", self.docker),
                    "install the docker CLI or set MBX_DOCKER",
                )
            })?;
        crate::interrupt::register(child.id());
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = pipe.write_all(&bytes);
            });
        }
        let mut stdout = child.stdout.take().expect("piped");
        let out_thread = std::thread::spawn(move || {
            // buildx prints next to nothing here: only the last 64 KiB are kept.
            let (mut s, mut buf) = (Vec::new(), [0u8; 8192]);
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.extend_from_slice(&buf[..n]);
                if s.len() > 128 << 10 {
                    s.drain(..s.len() - (64 << 10));
                }
            }
            s
        });
        let mut stderr = child.stderr.take().expect("piped");
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = match stderr.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::env(
                        format!("reading buildx progress failed: {e}"),
                        "",
                    ))
                }
            };
            on_stderr(&buf[..n]);
        }
        let status = child.wait();
        crate::interrupt::unregister(child.id());
        let status =
            status.map_err(|e| Error::env(format!("waiting for buildx failed: {e}"), ""))?;
        let stdout = out_thread.join().unwrap_or_default();
        // buildx's metadata file: digests, refs and (with provenance) a few MiB at most.
        let metadata = crate::error::read_capped(metadata_file, 64 << 20)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let so = String::from_utf8_lossy(&stdout);
        let stdout_tail = if so.trim().is_empty() {
            Vec::new()
        } else {
            tail(&so, 10, 4096).lines().map(str::to_string).collect()
        };
        Ok(BuildOutcome {
            success: status.success(),
            status: status.code(),
            command,
            metadata,
            stdout_tail,
        })
    }
}

/// The buildx version remembered between runs. The key names the docker CLI
/// and the buildx plugin it runs (the first `docker-buildx` in the CLI's
/// plugin directories) with their size and mtime: an upgrade changes it.
/// No key (no cache) when the plugin cannot be located the way the CLI
/// would find it (extra plugin directories configured).
mod version_cache {
    use std::path::{Path, PathBuf};

    fn state_dir() -> Option<PathBuf> {
        // The same directory as setup's state files.
        let var = |k: &str| std::env::var_os(k).filter(|s| !s.is_empty());
        var("MBX_STATE_DIR")
            .map(PathBuf::from)
            .or_else(|| var("XDG_STATE_HOME").map(|d| PathBuf::from(d).join("mbx")))
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".local/state/mbx")))
    }

    fn stamp(p: &Path) -> Option<String> {
        let m = std::fs::metadata(p).ok()?;
        let mtime = m
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some(format!("{}:{}:{}", p.display(), m.len(), mtime.as_nanos()))
    }

    fn on_path(program: &str) -> Option<PathBuf> {
        if program.contains('/') {
            return Some(PathBuf::from(program));
        }
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    }

    pub fn key(docker: &str) -> Option<String> {
        let config = std::env::var_os("DOCKER_CONFIG")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))?;
        let conf =
            crate::error::read_capped(&config.join("config.json"), crate::error::MAX_CONFIG_BYTES)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
        if conf.contains("cliPluginsExtraDirs")
            || std::env::var_os("DOCKER_CLI_PLUGIN_EXTRA_DIRS").is_some()
        {
            return None;
        }
        let dirs = [
            config.join("cli-plugins"),
            "/usr/local/lib/docker/cli-plugins".into(),
            "/usr/local/libexec/docker/cli-plugins".into(),
            "/usr/lib/docker/cli-plugins".into(),
            "/usr/libexec/docker/cli-plugins".into(),
        ];
        let plugin = dirs
            .iter()
            .map(|d| d.join("docker-buildx"))
            .find(|p| p.is_file())?;
        Some(format!(
            "{}|{}",
            stamp(&on_path(docker)?)?,
            stamp(&std::fs::canonicalize(&plugin).ok()?)?
        ))
    }

    fn file() -> Option<PathBuf> {
        state_dir().map(|d| d.join("buildx-version.json"))
    }

    pub fn get(key: &str) -> Option<String> {
        let bytes = crate::error::read_capped(&file()?, 64 << 10).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        (v["key"] == key).then(|| v["version"].as_str().map(str::to_string))?
    }

    pub fn put(key: &str, version: &str) {
        let Some(f) = file() else { return };
        let body = serde_json::json!({"key": key, "version": version}).to_string();
        let tmp = f.with_extension(format!("{}.tmp", std::process::id()));
        let written = f.parent().map(std::fs::create_dir_all).transpose().is_ok()
            && std::fs::write(&tmp, body).is_ok()
            && std::fs::rename(&tmp, &f).is_ok();
        if !written {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// Parse the text of `docker buildx inspect`.
pub fn parse_inspect(text: &str) -> BuilderInfo {
    let mut info = BuilderInfo::default();
    let mut in_nodes = false;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "Nodes" => in_nodes = true,
            "Name" if !in_nodes => info.name = v.to_string(),
            "Driver" if !in_nodes => info.driver = v.to_string(),
            "Status" => info.status = Some(v.to_string()),
            "BuildKit version" | "Buildkit" | "BuildKit" => {
                info.buildkit_version = Some(v.to_string())
            }
            "Platforms" => {
                info.platforms = v
                    .split(',')
                    .map(|p| p.trim().trim_end_matches('*').to_string())
                    .filter(|p| !p.is_empty())
                    .collect()
            }
            "Driver Options" => {
                info.driver_options = v
                    .split_whitespace()
                    .map(|s| s.trim_matches('"').to_string())
                    .collect()
            }
            _ => {}
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_inspect_output() {
        // Captured from `docker buildx inspect --bootstrap default` on dockerd 26 (shared/samples).
        let text = "Name:          default\nDriver:        docker\nLast Activity: 2026-11-23 18:28:00 +0000 UTC\n\nNodes:\nName:             default\nEndpoint:         default\nStatus:           running\nBuildKit version: v0.0.0+unknown\nPlatforms:        linux/amd64, linux/amd64/v2, linux/arm64*\nLabels:\n org.mobyproject.buildkit.worker.network:              host\n";
        let i = parse_inspect(text);
        assert_eq!(i.name, "default");
        assert_eq!(i.driver, "docker");
        assert_eq!(i.status.as_deref(), Some("running"));
        assert_eq!(i.buildkit_version.as_deref(), Some("v0.0.0+unknown"));
        assert_eq!(
            i.platforms,
            vec!["linux/amd64", "linux/amd64/v2", "linux/arm64"]
        );
    }
}
