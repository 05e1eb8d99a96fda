//! Loading an image into the Docker image store (`docker load`), and asking
//! whether that store holds multi-platform images (the containerd image
//! store does; the classic graph-driver store keeps one platform per name).

use std::ffi::OsString;
use std::path::Path;

use crate::docker::process::run_captured;
use crate::docker::Buildx;
use crate::error::{Error, Result};

impl Buildx {
    /// Does the daemon use the containerd image store (`docker info`'s
    /// DriverStatus names the containerd snapshotter)?
    pub fn multi_platform_store(&self) -> Result<bool> {
        let args: Vec<OsString> = ["info", "--format", "{{json .DriverStatus}}"]
            .map(Into::into)
            .to_vec();
        let out = run_captured(&self.docker, &args).map_err(|e| {
            Error::env(
                format!("cannot ask Docker which image store it uses: {e}"),
                "start the Docker daemon, or drop load/type=docker",
            )
        })?;
        Ok(String::from_utf8_lossy(&out.stdout).contains("io.containerd.snapshotter"))
    }

    /// `docker load --input TAR`; what it printed (`Loaded image: …`).
    pub fn load(&self, tar: &Path) -> Result<String> {
        let args: Vec<OsString> = vec!["load".into(), "--input".into(), tar.into()];
        let out = run_captured(&self.docker, &args).map_err(|e| {
            Error::env(
                format!("loading the image into Docker failed: {e}"),
                "check the Docker daemon's free space and logs; the build itself succeeded",
            )
        })?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}
