//! `mbx cache usage|prune`: the repository's GitHub Actions cache.

use crate::cli::{CacheCommand, CachePruneArgs, CacheUsageArgs, GitHubArgs};
use crate::error::{Error, Result};
use crate::gha_cache::{self, github::GitHub, prune};
use crate::pipeline::ExitStatus;
use crate::printer;
use std::fmt::Write as _;

pub async fn cache(command: CacheCommand) -> Result<ExitStatus> {
    match command {
        CacheCommand::Usage(a) => cache_usage(a).await,
        CacheCommand::Prune(a) => cache_prune(a).await,
    }
}

fn github(a: &GitHubArgs) -> Result<GitHub> {
    GitHub::from_env(a.repo.as_deref(), &a.token_env, &a.api_url)
}

async fn cache_usage(args: CacheUsageArgs) -> Result<ExitStatus> {
    if !(args.limit_gb > 0.0 && args.limit_gb.is_finite()) {
        return Err(Error::input(
            format!("--limit-gb {} is not a size", args.limit_gb),
            "pass a positive number of GB (GitHub's default limit is 10)",
        ));
    }
    let limit = (args.limit_gb * 1024.0 * 1024.0 * 1024.0) as u64;
    let client = github(&args.github)?;
    let usage = gha_cache::usage_for_run(&client, &[], limit).await?;
    if args.json {
        printer::outln(&serde_json::to_string_pretty(&usage).expect("json"));
    } else {
        printer::out(&gha_cache::render(&usage));
    }
    Ok(ExitStatus::Success)
}

async fn cache_prune(args: CachePruneArgs) -> Result<ExitStatus> {
    let older_than = prune::parse_age(&args.older_than).ok_or_else(|| {
        Error::input(
            format!("--older-than `{}` is not an age", args.older_than),
            "pass a number and a unit: 30m, 12h, 7d, 2w",
        )
    })?;
    let client = github(&args.github)?;
    let entries = client.list().await?;
    let filters = prune::Filters {
        older_than,
        git_ref: args.git_ref.as_deref().map(prune::normalize_ref),
        scope: args.scope.clone(),
        now: chrono::Utc::now(),
    };
    let contents = gha_cache::read_contents(&entries).await;
    let plan = prune::plan(&entries, &filters, &contents);
    let applied = if args.apply && !plan.delete.is_empty() {
        Some(prune::apply(&client, &plan).await?)
    } else {
        None
    };
    if args.json {
        let out = serde_json::json!({
            "repository": client.repository(),
            "dry_run": !args.apply,
            "delete": plan.delete,
            "bytes": plan.bytes(),
            "kept_blobs": plan.kept_blobs,
            "kept_blob_bytes": plan.kept_blob_bytes,
            "deleted": applied.as_ref().map_or(0, |a| a.deleted),
        });
        printer::outln(&serde_json::to_string_pretty(&out).expect("json"));
        return Ok(ExitStatus::Success);
    }
    let mut o = String::new();
    for d in &plan.delete {
        let _ = writeln!(
            o,
            "{} {}  {}  {}  ({})",
            if args.apply {
                "deleted"
            } else {
                "would delete"
            },
            d.key,
            d.git_ref,
            gha_cache::human_bytes(d.size_in_bytes),
            d.reason
        );
    }
    if plan.kept_blobs > 0 {
        let _ = writeln!(
            o,
            "kept {} blob(s), {}: an index that stays may use them",
            plan.kept_blobs,
            gha_cache::human_bytes(plan.kept_blob_bytes)
        );
    }
    let _ = match applied {
        Some(a) => writeln!(
            o,
            "deleted {} entries, {} freed in {}",
            a.deleted,
            gha_cache::human_bytes(a.bytes),
            client.repository()
        ),
        None if plan.delete.is_empty() => {
            writeln!(o, "nothing to prune in {}", client.repository())
        }
        None => writeln!(
            o,
            "dry run: {} entries, {} would be freed in {}; pass --apply to delete",
            plan.delete.len(),
            gha_cache::human_bytes(plan.bytes()),
            client.repository()
        ),
    };
    printer::out(&o);
    Ok(ExitStatus::Success)
}
