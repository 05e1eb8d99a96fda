//! The optional config file: defaults for a machine (e.g. the local test
//! chain's BuildKit image) that flags and environment variables override.
//!
//! Looked up at `$MBX_CONFIG`, else `$XDG_CONFIG_HOME/mbx/config.toml`, else
//! `~/.config/mbx/config.toml`. Example:
//!
//! ```toml
//! [builder]
//! buildkit-image = "127.0.0.1:5000/moby/buildkit:local"
//! buildkitd-config = "/var/lib/mbx-chain/buildkitd.toml"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub builder: BuilderConfig,
    #[serde(default)]
    pub qemu: QemuConfig,
    /// Where the file was read from, for messages.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BuilderConfig {
    pub buildkit_image: Option<String>,
    pub buildkitd_config: Option<PathBuf>,
    #[serde(default)]
    pub driver_opts: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct QemuConfig {
    /// binfmt installer image for `--qemu-from image`.
    pub image: Option<String>,
}

impl Config {
    pub fn load() -> Result<Config> {
        if let Some(p) = std::env::var_os("MBX_CONFIG").filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            if !p.is_file() {
                return Err(Error::input(
                    format!("MBX_CONFIG names `{}`, which is not a file", p.display()),
                    "point MBX_CONFIG at an existing config.toml or unset it",
                ));
            }
            return Config::read(&p);
        }
        let default = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .map(|d| d.join("mbx").join("config.toml"));
        match default {
            Some(p) if p.is_file() => Config::read(&p),
            _ => Ok(Config::default()),
        }
    }

    pub fn read(path: &Path) -> Result<Config> {
        let text = crate::error::read_capped(path, 1 << 20)
            .and_then(|b| {
                String::from_utf8(b)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            })
            .map_err(|e| {
                Error::input(
                    format!("cannot read config file `{}`: {e}", path.display()),
                    "fix its permissions or point MBX_CONFIG elsewhere",
                )
            })?;
        let mut c: Config = toml::from_str(&text).map_err(|e| {
            Error::input(
                format!("config file `{}` is not valid: {e}", path.display()),
                "the file takes a [builder] table with buildkit-image, buildkitd-config, driver-opts and a [qemu] table with image",
            )
        })?;
        c.path = Some(path.to_path_buf());
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_builder_table() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.toml");
        std::fs::write(
            &p,
            "[builder]\nbuildkit-image = \"r/bk:1\"\nbuildkitd-config = \"/x.toml\"\n",
        )
        .unwrap();
        let c = Config::read(&p).unwrap();
        assert_eq!(c.builder.buildkit_image.as_deref(), Some("r/bk:1"));
        assert_eq!(c.builder.buildkitd_config, Some(PathBuf::from("/x.toml")));
    }

    #[test]
    fn unknown_key_is_an_input_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.toml");
        std::fs::write(&p, "[builder]\nbuildkit_imag = \"x\"\n").unwrap();
        let e = Config::read(&p).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("not valid"), "{e}");
    }
}
