//! `--username/--password-stdin` for the docker CLI and buildx: a docker
//! config of the run's own in which the one registry pushed to answers with
//! these credentials and every other registry as the user's config says.
//!
//! Docker's precedence (docker/cli `configfile.GetCredentialsStore`) is
//! `credHelpers[host]`, else `credsStore`, else `auths`; with a
//! `credsStore`, an `auths` entry's password is never used. So the one way
//! to override one host and keep the user's store for the others (a private
//! base image, a registry cache) is a credential helper for that host alone:
//! `credHelpers[host] = "mbx-PID"`, the program `docker-credential-mbx-PID`
//! being mbx itself (a link in the config's directory, put first on the PATH
//! of the docker processes mbx starts). Asked `get`, it answers from a 0600
//! file in that directory whose path only those processes' environment
//! holds ([`LOGIN_FILE_ENV`]); the secret is never on a command line or in
//! an environment.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// The environment variable naming the login file, set on the docker
/// processes mbx starts while a [`PushLogin`] lives.
pub const LOGIN_FILE_ENV: &str = "MBX_LOGIN_FILE";

/// The credential helper's program name starts with this (then mbx's pid).
pub const HELPER_PREFIX: &str = "docker-credential-mbx-";

/// What the docker-credential-helpers protocol calls "not found": the
/// docker CLI then goes on as if nothing were configured for the host.
const NOT_FOUND: &str = "credentials not found in native keychain";

/// The directory and login file of this run's [`PushLogin`], if any.
static RUN_LOGIN: RwLock<Option<(PathBuf, PathBuf)>> = RwLock::new(None);

/// While a [`PushLogin`] lives, `cmd` (a docker process) sees its docker
/// config, finds its credential helper first on the PATH and knows where
/// the login file is.
pub fn apply(cmd: &mut std::process::Command) {
    let Some((dir, file)) = RUN_LOGIN.read().expect("run login").clone() else {
        return;
    };
    let mut path = std::ffi::OsString::from(dir.join(HELPER_DIR));
    path.push(":");
    // The child's PATH also finds `docker` itself: with none set, the
    // usual directories (where an unset PATH would have looked).
    path.push(
        std::env::var_os("PATH")
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
    );
    cmd.env("DOCKER_CONFIG", &dir)
        .env("PATH", path)
        .env(LOGIN_FILE_ENV, file);
}

/// The docker config of this run, if a [`PushLogin`] lives.
pub fn run_config() -> Option<PathBuf> {
    RUN_LOGIN
        .read()
        .expect("run login")
        .as_ref()
        .map(|l| l.0.clone())
}

/// mbx's own entries in the temporary config directory (the user's entries
/// of the same name, if any, are not linked in).
const HELPER_DIR: &str = ".mbx-credential-helper";
const LOGIN_FILE: &str = ".mbx-login.json";

/// The credentials of `--username/--password-stdin` for the docker CLI and
/// buildx (which hands them to BuildKit for the push) for as long as this
/// lives: a docker config of this run's own, in a private temporary
/// directory, holding the user's config with a credential helper for the
/// pushed host, every other entry of the user's config directory (buildx's
/// builders, contexts, plugins) linked in. Nothing of the user's is
/// changed; the directory is removed on drop, on a stop signal, and (named
/// like a build's scratch directory) by the next run if this one is killed
/// outright.
pub struct PushLogin {
    dir: tempfile::TempDir,
}

impl PushLogin {
    pub fn new(host: &str, username: &str, password: &str) -> Result<PushLogin, String> {
        let user_dir = std::env::var_os("DOCKER_CONFIG")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
            .ok_or("neither DOCKER_CONFIG nor HOME is set")?;
        PushLogin::over(&user_dir, host, username, password)
    }

    /// The login over the user's docker config directory `user_dir`.
    fn over(
        user_dir: &Path,
        host: &str,
        username: &str,
        password: &str,
    ) -> Result<PushLogin, String> {
        // buildx keeps its builders there: it must exist before it is linked.
        let _ = std::fs::create_dir_all(user_dir.join("buildx"));
        let dir = crate::interrupt::scratch_dir("login-")
            .map_err(|e| format!("cannot create a temporary docker config: {e}"))?;
        crate::interrupt::remove_on_exit(dir.path());
        let login = PushLogin { dir };
        let dir = login.dir.path();
        for entry in std::fs::read_dir(user_dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            if !["config.json", HELPER_DIR, LOGIN_FILE]
                .iter()
                .any(|n| name == *n)
            {
                let _ = std::os::unix::fs::symlink(entry.path(), dir.join(&name));
            }
        }
        let helper = format!("mbx-{}", std::process::id());
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find mbx's own program: {e}"))?;
        std::fs::create_dir(dir.join(HELPER_DIR))
            .and_then(|_| {
                std::os::unix::fs::symlink(
                    exe,
                    dir.join(HELPER_DIR)
                        .join(format!("docker-credential-{helper}")),
                )
            })
            .map_err(|e| format!("cannot link the credential helper: {e}"))?;
        let key = server_key(host);
        let secret = serde_json::json!({
            "ServerURL": key, "Username": username, "Secret": password,
        });
        write_private(&dir.join(LOGIN_FILE), &secret.to_string())?;
        let config = crate::error::read_capped(
            &user_dir.join("config.json"),
            crate::error::MAX_CONFIG_BYTES,
        )
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
        let text = with_helper(config, host, &helper).to_string();
        write_private(&dir.join("config.json"), &text)?;
        *RUN_LOGIN.write().expect("run login") = Some((dir.to_path_buf(), dir.join(LOGIN_FILE)));
        Ok(login)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PushLogin {
    fn drop(&mut self) {
        let mut run = RUN_LOGIN.write().expect("run login");
        if run.as_ref().is_some_and(|(d, _)| d == self.dir.path()) {
            *run = None;
        }
        crate::interrupt::keep_on_exit(self.dir.path());
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The key docker looks `host`'s credentials up by (Docker Hub's is its v1 address).
fn server_key(host: &str) -> &str {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "https://index.docker.io/v1/",
        h => h,
    }
}

/// `config` (a docker config.json) with `helper` as the credential helper
/// of `host`, which docker asks before the `credsStore` and `auths`; the
/// host's `auths` entry goes (no stale password in the copy). Every other
/// host's helper, the `credsStore` and the other `auths` stay.
fn with_helper(mut config: serde_json::Value, host: &str, helper: &str) -> serde_json::Value {
    let key = server_key(host);
    let obj = config.as_object_mut().expect("an object");
    if let Some(auths) = obj.get_mut("auths").and_then(|a| a.as_object_mut()) {
        auths.remove(key);
    }
    let helpers = obj
        .entry("credHelpers")
        .or_insert_with(|| serde_json::json!({}));
    if !helpers.is_object() {
        *helpers = serde_json::json!({});
    }
    helpers[key] = serde_json::json!(helper);
    config
}

/// A host as docker-credential-helpers' callers may write it
/// (`https://HOST/`, `HOST`, Docker Hub's aliases) → one form to compare.
fn normalise(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s).to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        _ => host,
    }
}

/// mbx run as `docker-credential-mbx-PID ACTION` (the docker CLI's
/// credential helper protocol): `get` answers the login file's credentials
/// for its host and "not found" for any other; `list` names that host;
/// `store` and `erase` are refused (this login is the run's, read-only).
/// `login` is the login file's text. Returns (exit code, stdout).
pub fn helper(action: Option<&str>, stdin: &str, login: Option<&str>) -> (i32, String) {
    let refuse = |why: String| (1, why);
    let login = match login.map(serde_json::from_str::<serde_json::Value>) {
        Some(Ok(v)) if v["ServerURL"].is_string() => v,
        _ => {
            return refuse(format!(
                "mbx's credential helper runs only under mbx --username/--password-stdin ({LOGIN_FILE_ENV} names no login)"
            ))
        }
    };
    let server = login["ServerURL"].as_str().unwrap_or_default();
    match action {
        Some("get") if normalise(stdin) == normalise(server) => (0, login.to_string()),
        Some("get") => (1, NOT_FOUND.to_string()),
        Some("list") => (0, serde_json::json!({ server: login["Username"] }).to_string()),
        Some("version") => (0, format!("mbx credential helper {}", env!("CARGO_PKG_VERSION"))),
        Some(a @ ("store" | "erase")) => refuse(format!(
            "mbx's login for this run is read-only: `{a}` refused (log in with `docker login` outside mbx)"
        )),
        other => refuse(format!(
            "unknown credential helper action {:?}: expected get, list, store, erase or version",
            other.unwrap_or("")
        )),
    }
}

/// The helper run by the docker CLI: argv\[1\] the action, the server on
/// stdin, the login file from [`LOGIN_FILE_ENV`]. Returns (exit code, stdout).
pub fn helper_main() -> (i32, String) {
    let action = std::env::args().nth(1);
    let mut stdin = String::new();
    if matches!(action.as_deref(), Some("get")) {
        // A server address: a few hundred bytes.
        let _ = std::io::Read::read_to_string(
            &mut std::io::Read::take(std::io::stdin(), 64 << 10),
            &mut stdin,
        );
    }
    let login = std::env::var_os(LOGIN_FILE_ENV)
        .and_then(|p| crate::error::read_capped(Path::new(&p), 1 << 20).ok())
        .and_then(|b| String::from_utf8(b).ok());
    helper(action.as_deref(), &stdin, login.as_deref())
}

/// True when mbx was started as its own credential helper.
pub fn is_helper(argv0: &std::ffi::OsStr) -> bool {
    Path::new(argv0)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(HELPER_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_asks_mbx_for_the_pushed_host_only() {
        let user = serde_json::json!({
            "auths": {"127.0.0.1:5001": {"auth": "b2xkOm9sZA=="}, "ghcr.io": {"auth": "eDp5"}},
            "credHelpers": {"127.0.0.1:5001": "gcloud", "gcr.io": "gcloud"},
            "credsStore": "desktop",
            "cliPluginsExtraDirs": ["/x"],
        });
        let c = with_helper(user, "127.0.0.1:5001", "mbx-7");
        assert_eq!(
            c["credHelpers"],
            serde_json::json!({"127.0.0.1:5001": "mbx-7", "gcr.io": "gcloud"})
        );
        assert_eq!(c["credsStore"], "desktop", "the store kept for the others");
        assert_eq!(c["auths"], serde_json::json!({"ghcr.io": {"auth": "eDp5"}}));
        assert_eq!(c["cliPluginsExtraDirs"][0], "/x");
        assert!(!c.to_string().contains("pw"));
        let hub = with_helper(serde_json::json!({"credHelpers": 3}), "docker.io", "mbx-7");
        assert_eq!(hub["credHelpers"]["https://index.docker.io/v1/"], "mbx-7");
    }

    #[test]
    fn the_helper_speaks_the_credential_helper_protocol() {
        let login = r#"{"ServerURL":"127.0.0.1:5001","Username":"u","Secret":"pw"}"#;
        let (code, out) = helper(Some("get"), "127.0.0.1:5001\n", Some(login));
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            (
                v["ServerURL"].as_str(),
                v["Username"].as_str(),
                v["Secret"].as_str()
            ),
            (Some("127.0.0.1:5001"), Some("u"), Some("pw"))
        );
        assert_eq!(
            helper(Some("get"), "https://127.0.0.1:5001/", Some(login)).0,
            0
        );
        // Another host: "not found", which the docker CLI takes as no login.
        let (code, out) = helper(Some("get"), "127.0.0.1:5000", Some(login));
        assert_eq!((code, out.as_str()), (1, NOT_FOUND));
        let (code, out) = helper(Some("list"), "", Some(login));
        assert_eq!((code, out.as_str()), (0, r#"{"127.0.0.1:5001":"u"}"#));
        for a in ["store", "erase"] {
            let (code, out) = helper(Some(a), "{}", Some(login));
            assert_eq!(code, 1);
            assert!(out.contains("read-only") && !out.contains("pw"), "{out}");
        }
        let (code, out) = helper(Some("get"), "127.0.0.1:5001", None);
        assert_eq!(code, 1);
        assert!(out.contains(LOGIN_FILE_ENV), "{out}");
        assert_eq!(helper(None, "", Some(login)).0, 1);
        let hub = r#"{"ServerURL":"https://index.docker.io/v1/","Username":"u","Secret":"pw"}"#;
        assert_eq!(
            helper(Some("get"), "https://index.docker.io/v1/", Some(hub)).0,
            0
        );
        assert!(is_helper("/tmp/x/docker-credential-mbx-12".as_ref()));
        assert!(!is_helper("mbx".as_ref()));
    }

    #[test]
    fn the_login_lives_in_a_private_directory_gone_on_drop() {
        use std::os::unix::fs::PermissionsExt;
        let user = tempfile::tempdir().unwrap();
        std::fs::write(user.path().join("config.json"), r#"{"credsStore":"x"}"#).unwrap();
        std::fs::create_dir(user.path().join("contexts")).unwrap();
        let login = PushLogin::over(user.path(), "127.0.0.1:5001", "u", "s3cr3t-x").unwrap();
        let dir = login.path().to_path_buf();
        let file = dir.join(LOGIN_FILE);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
        assert!(!config.contains("s3cr3t-x"), "{config}");
        assert!(dir.join("contexts").is_dir() && dir.join("buildx").is_dir());
        assert!(dir
            .join(HELPER_DIR)
            .join(format!("docker-credential-mbx-{}", std::process::id()))
            .exists());
        let mut cmd = std::process::Command::new("env");
        apply(&mut cmd);
        let env = String::from_utf8(cmd.output().unwrap().stdout).unwrap();
        assert!(env.contains(&format!("{LOGIN_FILE_ENV}={}", file.display())));
        assert!(!env.contains("s3cr3t-x"), "the secret in the environment");
        assert!(std::fs::read_to_string(user.path().join("config.json"))
            .unwrap()
            .contains("credsStore"));
        drop(login);
        assert!(!dir.exists());
        assert!(run_config().is_none());
    }
}
