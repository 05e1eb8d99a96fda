//! The buildx builder: create it (docker-container driver, network=host by
//! default) or reuse it, then check its workers list every platform.

use std::ffi::OsString;

use crate::build::buildx::{BuilderInfo, Buildx};
use crate::error::{Error, Result};
use crate::plan::BuilderPlan;
use crate::platform::Platform;
use crate::run::BuilderRecord;

/// Create the builder when absent, reuse it when present, bootstrap it and
/// check the platforms its BuildKit workers report.
pub fn ensure(
    buildx: &Buildx,
    plan: &BuilderPlan,
    platforms: &[Platform],
) -> Result<BuilderRecord> {
    let (info, action) = match buildx.inspect(&plan.name, false)? {
        Some(existing) => {
            if existing.driver != plan.driver {
                return Err(Error::env(
                    format!(
                        "builder `{}` exists with driver `{}`, not `{}`",
                        plan.name, existing.driver, plan.driver
                    ),
                    format!("remove it with `docker buildx rm {}` or pass --builder NAME for another one", plan.name),
                ));
            }
            (buildx.inspect(&plan.name, true)?, "reused")
        }
        None => {
            buildx.create(create_args(plan)).map_err(|e| {
                Error::env(
                    format!("could not create builder `{}`: {e}", plan.name),
                    "check the BuildKit image (--buildkit-image) can be pulled and the buildkitd config is valid",
                )
            })?;
            match buildx.inspect(&plan.name, true) {
                Ok(i) => (i, "created"),
                Err(e) => {
                    // Don't leave a builder behind that cannot start.
                    let _ = buildx.remove(&plan.name);
                    return Err(e);
                }
            }
        }
    };
    let info = info.ok_or_else(|| {
        Error::env(
            format!("builder `{}` vanished while starting", plan.name),
            "run again",
        )
    })?;
    check_platforms(&info, platforms)?;
    Ok(BuilderRecord {
        name: plan.name.clone(),
        driver: info.driver.clone(),
        action: action.into(),
        buildkit_version: info.buildkit_version.clone(),
        platforms: info.platforms.clone(),
    })
}

pub fn create_args(plan: &BuilderPlan) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "--name".into(),
        plan.name.clone().into(),
        "--driver".into(),
        plan.driver.clone().into(),
    ];
    if let Some(img) = &plan.buildkit_image {
        a.push("--driver-opt".into());
        a.push(format!("image={img}").into());
    }
    for o in &plan.driver_opts {
        a.push("--driver-opt".into());
        a.push(o.into());
    }
    if let Some(c) = &plan.buildkitd_config {
        a.push("--buildkitd-config".into());
        a.push(c.into());
    }
    a
}

fn check_platforms(info: &BuilderInfo, platforms: &[Platform]) -> Result<()> {
    let have: Vec<Platform> = info
        .platforms
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect();
    let missing: Vec<String> = platforms
        .iter()
        .filter(|p| !have.contains(p))
        .map(ToString::to_string)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::env(
        format!(
            "builder `{}` cannot build {} (its workers list: {})",
            info.name,
            missing.join(", "),
            if info.platforms.is_empty() { "nothing".into() } else { info.platforms.join(", ") }
        ),
        format!(
            "register QEMU binfmt handlers for them and recreate the builder (`docker buildx rm {}`), or add a native node",
            info.name
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_args_carry_image_opts_and_config() {
        let plan = BuilderPlan {
            name: "ci-builder".into(),
            driver: "docker-container".into(),
            driver_opts: vec!["network=host".into()],
            buildkit_image: Some("127.0.0.1:5000/moby/buildkit:local".into()),
            buildkitd_config: Some("/etc/bk.toml".into()),
        };
        let a: Vec<String> = create_args(&plan)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert_eq!(
            a.join(" "),
            "--name ci-builder --driver docker-container --driver-opt image=127.0.0.1:5000/moby/buildkit:local --driver-opt network=host --buildkitd-config /etc/bk.toml"
        );
    }

    #[test]
    fn missing_platform_is_named() {
        let info = BuilderInfo {
            name: "b".into(),
            platforms: vec!["linux/amd64".into(), "linux/386".into()],
            ..Default::default()
        };
        let want: Vec<Platform> = vec![
            "linux/amd64".parse().unwrap(),
            "linux/arm64".parse().unwrap(),
        ];
        let e = check_platforms(&info, &want).unwrap_err().to_string();
        assert!(e.contains("cannot build linux/arm64"), "{e}");
        assert!(check_platforms(&info, &want[..1]).is_ok());
    }
}
