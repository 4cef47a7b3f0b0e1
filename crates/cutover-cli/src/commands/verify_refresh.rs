//! `cutover verify-refresh`: the refresh's verification suite on its own.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use cutover_db::{Database, DatabaseUrl};
use cutover_refresh::{Baseline, Policy};

use crate::Outcome;
use crate::cli::GlobalArgs;
use crate::commands::refresh::{VerificationArgs, finish, started_at, verify_options};

/// Verify a refreshed lower environment against production and the policy.
///
/// Runs the checks `cutover refresh` runs after a refresh, each a named pass,
/// fail or skip with evidence (counts and names, never row values):
///
///   removed-rows-absent         rows the policy removes are not in the target
///   masked-values-differ        masked columns never hold the source's value for the same key
///   every-column-classified     every target table and column is in the policy
///   no-sensitive-values         distinctive values of masked columns appear nowhere in the copied tables
///   preserved-tables-identical  preserved tables match their fingerprint from before the refresh
///                               (needs --baseline: the refresh's JSON report)
///   row-counts                  copied tables hold exactly the source's kept rows
///   schema-matches              every source table and column exists with the same type
///   no-invalid-objects          views, functions, foreign keys, indexes and sequences are sound
///   no-production-references    foreign servers and config tables name no production host
///
/// The masking secret comes from the policy's secret_env variable, as for the
/// refresh. Exit code 1 when any check fails.
///
/// Examples:
///   cutover verify-refresh --from postgres://reader@prod/app --to postgres://acc/app --policy policy.toml
///   cutover verify-refresh --from sqlite:prod.db --to sqlite:acc.db --policy policy.toml \
///       --verify full --baseline refresh.json --report verify.md
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct VerifyRefreshArgs {
    /// The production database (read-only).
    #[arg(long, value_name = "URL")]
    pub from: String,

    /// The refreshed database.
    #[arg(long, value_name = "URL")]
    pub to: String,

    /// The sanitization policy the refresh used.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,

    /// The refresh's JSON report, for the preserved tables' fingerprints.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    #[command(flatten)]
    pub verification: VerificationArgs,
}

pub async fn run(args: VerifyRefreshArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let policy = Policy::load(&args.policy)?;
    if args.verification.mode == crate::commands::refresh::VerifyMode::Off {
        anyhow::bail!(
            "--verify off leaves nothing to do\nhint: use --verify sample or --verify full"
        );
    }
    let baseline = match &args.baseline {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let baseline = Baseline::parse(&text).map_err(|error| {
                anyhow::anyhow!(
                    "{}: not a refresh report: {error}\nhint: pass the file written by cutover refresh --report FILE.json",
                    path.display()
                )
            })?;
            Some(baseline.outcomes())
        }
        None => None,
    };
    let source_url = DatabaseUrl::parse(&args.from)?;
    let target_url = DatabaseUrl::parse(&args.to)?;
    let read_only = cutover_db::ConnectOptions {
        read_only: true,
        ..crate::environment::connect_options()
    };
    let source = Database::connect(&source_url, &read_only).await?;
    let target = Database::connect(&target_url, &crate::environment::connect_options()).await?;
    let secret = std::env::var(&policy.secret_env)
        .ok()
        .filter(|secret| !secret.is_empty());
    let masker =
        secret.map(|secret| cutover_refresh::Masker::for_policy(&policy, secret.as_bytes()));
    let started = started_at();
    let verification = cutover_refresh::verify(
        &source,
        &target,
        &policy,
        masker.as_ref(),
        &verify_options(&args.verification, &policy, baseline.clone()),
    )
    .await?;
    let report = cutover_refresh::Report {
        source: source_url.redacted().to_owned(),
        target: target_url.redacted().to_owned(),
        policy: args.policy.display().to_string(),
        source_read_only: true,
        started_at: started,
        refresh_seconds: None,
        tables: baseline.unwrap_or_default(),
        hooks: Vec::new(),
        resumed: None,
        verification: Some(verification),
    };
    let text = format!(
        "{} against {}\n",
        target_url.redacted(),
        source_url.redacted()
    );
    finish(global, &args.verification.report, &report, text)
}
