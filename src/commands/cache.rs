//! `mbx cache usage|prune`: the repository's GitHub Actions cache.

use crate::cli::{CacheCommand, CachePruneArgs, CacheUsageArgs, GitHubArgs};
use crate::error::{Error, Result};
use crate::gha_cache::{self, github::GitHub, prune};
use crate::pipeline::ExitStatus;
use crate::printer;
use crate::report;

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
        printer::out(&report::cache::render_usage(&usage));
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
    let repository = client.repository();
    if args.json {
        let out = report::cache::prune_json(repository, !args.apply, &plan, applied.as_ref());
        printer::outln(&serde_json::to_string_pretty(&out).expect("json"));
    } else {
        printer::out(&report::cache::render_prune(
            repository,
            &plan,
            applied.as_ref(),
        ));
    }
    Ok(ExitStatus::Success)
}
