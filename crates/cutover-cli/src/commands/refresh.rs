//! `cutover refresh`: production → lower-environment copy under a sanitization policy.
//! This version checks policies and writes starting policies; copying comes next.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use cutover_db::{Database, DatabaseUrl, IntrospectOptions};
use cutover_refresh::{
    Policy, check, check_filters, forbidden_host, initial_policy, same_database,
};

use crate::Outcome;
use crate::cli::{Format, GlobalArgs};
use crate::output::{print, print_json};

/// Refresh a lower environment from production under a sanitization policy.
///
/// The policy (TOML) says, for every table, copy, skip or preserve, and for
/// every column of a copied table a rule: keep, null, fixed, hash, fake,
/// shift-date, redact-blob or regex. It fails closed: a column without a rule,
/// or a rule for a column the source no longer has, stops the refresh before
/// anything is copied.
///
///   --init-policy FILE  writes a complete starting policy from the source's
///                       schema, with a masking guess for every column that
///                       looks like personal or health data, for review
///   --check             checks the policy against the source (every column
///                       classified, every rule fits its column, every where
///                       condition valid) and the target (not the source, not
///                       a production host); exit code 1 lists the problems
///
/// The source is only ever opened read-only. Copying with the policy (staging,
/// preserved tables, atomic swap, verification) is not in this version yet.
///
/// Examples:
///   cutover refresh --from postgres://reader@prod/app --init-policy policy.toml
///   cutover refresh --from postgres://reader@prod/app --to postgres://acc/app --policy policy.toml --check
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct RefreshArgs {
    /// The production database (read-only).
    #[arg(long, value_name = "URL")]
    pub from: String,

    /// The lower-environment database to refresh.
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,

    /// The sanitization policy (TOML).
    #[arg(long, value_name = "FILE", required_unless_present = "init_policy")]
    pub policy: Option<PathBuf>,

    /// Only check the policy against the source and the target.
    #[arg(long, requires = "policy")]
    pub check: bool,

    /// Write a starting policy for the source's schema to FILE and stop.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["check", "policy"])]
    pub init_policy: Option<PathBuf>,

    /// Overwrite the --init-policy file if it exists.
    #[arg(long, requires = "init_policy")]
    pub force: bool,
}

pub async fn run(args: RefreshArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let source_url = DatabaseUrl::parse(&args.from)?;
    let options = cutover_db::ConnectOptions {
        read_only: true,
        ..crate::environment::connect_options()
    };
    if let Some(path) = &args.init_policy {
        if path.exists() && !args.force {
            bail!(
                "{} already exists\nhint: choose another file, or add --force to overwrite it",
                path.display()
            );
        }
        let source = Database::connect(&source_url, &options).await?;
        let schema = source.introspect(&IntrospectOptions::default()).await?;
        let today = chrono_today();
        let text = initial_policy(&schema, source_url.redacted(), &today);
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
        let guesses = text.matches("# guess:").count();
        let columns: usize = schema.tables.iter().map(|table| table.columns.len()).sum();
        match global.format {
            Format::Json => print_json(&serde_json::json!({
                "policy": path,
                "tables": schema.tables.len(),
                "columns": columns,
                "guesses": guesses,
            }))?,
            Format::Text => print(&format!(
                "wrote {}: {} tables, {columns} columns, {guesses} masking guesses to review\n",
                path.display(),
                schema.tables.len()
            ))?,
        }
        return Ok(Outcome::Success);
    }

    let policy_path = args.policy.as_ref().context("--policy is required")?;
    let policy = Policy::load(policy_path)?;
    if !args.check {
        bail!(
            "copying is not available in this version of cutover\nhint: add --check to check the policy, or use --init-policy to write one"
        );
    }
    let mut problems: Vec<String> = Vec::new();
    if let Some(target) = &args.to {
        let target_url = DatabaseUrl::parse(target)?;
        if same_database(&source_url, &target_url) {
            problems.push(format!(
                "the target {} is the source: refusing to refresh a database from itself",
                target_url.redacted()
            ));
        }
        if let Some(pattern) = forbidden_host(&policy.forbid_hosts, &target_url) {
            problems.push(format!(
                "the target {} matches the production host pattern {pattern}: refusing to write to it",
                target_url.redacted()
            ));
        }
    }
    let source = Database::connect(&source_url, &options).await?;
    let schema = source.introspect(&IntrospectOptions::default()).await?;
    let secret_present = std::env::var(&policy.secret_env).is_ok_and(|value| !value.is_empty());
    problems.extend(
        check(&policy, &schema, secret_present)
            .iter()
            .map(ToString::to_string),
    );
    problems.extend(
        check_filters(&source, &policy, &schema)
            .await
            .iter()
            .map(ToString::to_string),
    );

    match global.format {
        Format::Json => print_json(&serde_json::json!({
            "policy": policy_path,
            "source": source_url.redacted(),
            "tables": schema.tables.len(),
            "problems": problems,
            "ok": problems.is_empty(),
        }))?,
        Format::Text => {
            let mut text = String::new();
            if problems.is_empty() {
                let _ = writeln!(
                    text,
                    "{}: every column of every copied table is classified; {} tables checked against {}",
                    policy_path.display(),
                    schema.tables.len(),
                    source_url.redacted()
                );
            } else {
                let _ = writeln!(
                    text,
                    "{}: {} problems",
                    policy_path.display(),
                    problems.len()
                );
                for problem in &problems {
                    let _ = writeln!(text, "  {problem}");
                }
            }
            print(&text)?;
        }
    }
    Ok(if problems.is_empty() {
        Outcome::Success
    } else {
        Outcome::Differences
    })
}

/// Today's date (UTC) as `YYYY-MM-DD`, for the policy header.
fn chrono_today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() / 86_400)
        .unwrap_or_default();
    i32::try_from(days)
        .ok()
        .and_then(cutover_db::value::date_from_days)
        .map(|date| date.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}
