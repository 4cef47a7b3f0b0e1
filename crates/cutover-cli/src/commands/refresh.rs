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
/// Without --check or --init-policy, the policy is checked and, if it covers
/// the source, the target is refreshed: every table copied (masked, filtered),
/// skipped or preserved (the target's own rows kept) into a staging copy that
/// replaces the target in one atomic swap: for a SQLite target a staging
/// file renamed over it, for PostgreSQL a staging schema whose objects
/// replace the live ones in one transaction, with the target's own grants
/// and owners kept. The source is only ever opened read-only, and read in
/// one consistent snapshot.
///
/// Examples:
///   cutover refresh --from postgres://reader@prod/app --init-policy policy.toml
///   cutover refresh --from postgres://reader@prod/app --to postgres://acc/app --policy policy.toml --check
///   cutover refresh --from sqlite:production.db --to sqlite:acceptance.db --policy policy.toml
///   cutover refresh --from sqlite:production.db --policy policy.toml --preview patients --rows 5
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

    /// Print masked rows of TABLE as acceptance will hold them (its where,
    /// its rules, each column named with the rule that made it) and stop;
    /// nothing is written.
    #[arg(long, value_name = "TABLE", requires = "policy", conflicts_with_all = ["check", "init_policy"])]
    pub preview: Option<String>,

    /// Rows --preview prints (at most 1000).
    #[arg(long, value_name = "N", default_value_t = 10, requires = "preview")]
    pub rows: usize,

    /// Tables copied at once into a PostgreSQL target, each over its own
    /// pair of connections (all reading one snapshot of the source).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub jobs: usize,

    /// Resume a killed PostgreSQL refresh from its staging schema: the
    /// tables, partitions and key ranges it finished (their row counts
    /// checked) are kept, the rest are copied again from a new snapshot of
    /// the source, and the swap is still all or nothing. A staging schema made
    /// under another policy, source schema or secret is not resumed: the run
    /// starts over and says why.
    #[arg(long)]
    pub resume: bool,

    /// The target's schema when the source is SQLite and the target PostgreSQL.
    #[arg(long, value_name = "NAME", default_value = "public")]
    pub target_schema: String,

    #[command(flatten)]
    pub verification: VerificationArgs,
}

/// How the result is verified and where the evidence goes (shared with `verify-refresh`).
#[derive(Debug, Args)]
pub struct VerificationArgs {
    /// Verify every row (full), a random sample per table (sample), or not at all (off).
    #[arg(long = "verify", value_enum, default_value_t = VerifyMode::Sample)]
    pub mode: VerifyMode,

    /// Rows per table in sample mode.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub sample_rows: u64,

    /// A production host pattern (e.g. '*.prod.internal'), in addition to the policy's forbid_hosts.
    #[arg(long = "forbid-host", value_name = "PATTERN")]
    pub forbid_hosts: Vec<String>,

    /// Write the evidence report to FILE: .json or .md (may be given twice).
    #[arg(long, value_name = "FILE")]
    pub report: Vec<PathBuf>,
}

/// How thoroughly a refresh is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerifyMode {
    /// Every row of every table.
    Full,
    /// A random sample of rows per table.
    Sample,
    /// No verification.
    Off,
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
    if !args.check && args.preview.is_none() && args.to.is_none() {
        bail!(
            "--to is required to refresh\nhint: name the target database, e.g. --to sqlite:acceptance.db"
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
        let mut patterns = policy.forbid_hosts.clone();
        patterns.extend(args.verification.forbid_hosts.iter().cloned());
        if let Some(pattern) = forbidden_host(&patterns, &target_url) {
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
    if args.check
        && let Some(target) = &args.to
    {
        problems.extend(target_drift(&policy, &schema, target, &args.target_schema).await);
    }

    if let Some(table) = &args.preview {
        return preview(&args, global, &policy, &source, &schema, table, problems).await;
    }
    if !args.check {
        return copy(&args, global, &policy, &source, problems).await;
    }
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
                    "{}: {}",
                    policy_path.display(),
                    count_problems(problems.len())
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

/// `--check` with a target: its tables and columns the source lacks, each
/// needing a `[drift]` decision (a SQLite file not there yet has none).
async fn target_drift(
    policy: &Policy,
    schema: &cutover_db::Schema,
    target: &str,
    target_schema: &str,
) -> Vec<String> {
    let Ok(url) = DatabaseUrl::parse(target) else {
        return Vec::new();
    };
    if let cutover_db::Locator::Sqlite(path) = &url.locator
        && !path.exists()
    {
        return Vec::new();
    }
    let options = cutover_db::ConnectOptions {
        read_only: true,
        ..crate::environment::connect_options()
    };
    let introspected = match Database::connect(&url, &options).await {
        Ok(database) => database.introspect(&IntrospectOptions::default()).await,
        Err(error) => Err(error),
    };
    let mut live = match introspected {
        Ok(live) => live,
        Err(error) => {
            return vec![format!(
                "the target {} could not be read to compare its tables with the source's: {error}",
                url.redacted()
            )];
        }
    };
    // A PostgreSQL target is refreshed one schema at a time: the source's.
    let mut schemas: Vec<String> = schema
        .tables
        .iter()
        .filter_map(|table| table.name.schema.clone())
        .collect();
    if schemas.is_empty() {
        schemas.push(target_schema.to_owned());
    }
    live.tables.retain(|table| {
        table
            .name
            .schema
            .as_ref()
            .is_none_or(|name| schemas.contains(name))
    });
    cutover_refresh::drift(policy, schema, &live)
        .problems
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// `--preview`: masked rows of one table, each column with its rule.
async fn preview(
    args: &RefreshArgs,
    global: &GlobalArgs,
    policy: &Policy,
    source: &Database,
    schema: &cutover_db::Schema,
    table: &str,
    problems: Vec<String>,
) -> anyhow::Result<Outcome> {
    if !problems.is_empty() {
        bail!(
            "the policy does not cover the source, so nothing is previewed ({}):\n  {}\nhint: fix the policy (see --check)",
            count_problems(problems.len()),
            problems.join("\n  ")
        );
    }
    let secret = std::env::var(&policy.secret_env).unwrap_or_default();
    let masker = cutover_refresh::Masker::for_policy(policy, secret.as_bytes());
    let preview =
        cutover_refresh::preview(source, policy, schema, table, args.rows, &masker).await?;
    match global.format {
        Format::Json => print_json(&serde_json::to_value(&preview)?)?,
        Format::Text => {
            let mut text = format!(
                "{}: {} masked rows as acceptance will hold them (values made by the rules; nothing else of the source)\n",
                preview.table,
                preview.rows.len()
            );
            let name_width = preview
                .columns
                .iter()
                .map(|column| column.name.len())
                .max()
                .unwrap_or(0);
            let rule_width = preview
                .columns
                .iter()
                .map(|column| column.rule.len())
                .max()
                .unwrap_or(0);
            for (index, row) in preview.rows.iter().enumerate() {
                let _ = writeln!(text, "-- row {}", index + 1);
                for (column, value) in preview.columns.iter().zip(row) {
                    let _ = writeln!(
                        text,
                        "  {:<name_width$}  {:<rule_width$}  {}",
                        column.name,
                        column.rule,
                        value.as_deref().unwrap_or("NULL")
                    );
                }
            }
            print(&text)?;
        }
    }
    Ok(Outcome::Success)
}

/// The refresh itself, after a clean check: SQLite targets in this version.
async fn copy(
    args: &RefreshArgs,
    global: &GlobalArgs,
    policy: &Policy,
    source: &Database,
    problems: Vec<String>,
) -> anyhow::Result<Outcome> {
    if !problems.is_empty() {
        let mut message = format!(
            "the policy does not cover the source; nothing was copied ({}):",
            count_problems(problems.len())
        );
        for problem in &problems {
            message.push_str("\n  ");
            message.push_str(problem);
        }
        message.push_str(
            "\nhint: fix the policy (see --check), or write a fresh one with --init-policy",
        );
        bail!(message);
    }
    let target_url = DatabaseUrl::parse(args.to.as_deref().unwrap_or_default())?;
    let secret = std::env::var(&policy.secret_env).unwrap_or_default();
    let masker = std::sync::Arc::new(cutover_refresh::Masker::for_policy(
        policy,
        secret.as_bytes(),
    ));
    let started = std::time::Instant::now();
    let bar = std::sync::Arc::new(crate::progress::Bar::new(global.quiet));
    let progress: std::sync::Arc<dyn cutover_db::Progress> = bar.clone();
    let outcome = match &target_url.locator {
        cutover_db::Locator::Sqlite(_) if args.resume => bail!(
            "--resume is for PostgreSQL targets: a SQLite refresh builds its new file beside the target and starts over\nhint: run it again without --resume"
        ),
        cutover_db::Locator::Sqlite(target_path) => {
            cutover_refresh::refresh_sqlite(source, target_path, policy, masker, progress).await
        }
        cutover_db::Locator::Postgres(_) => {
            let settings = cutover_refresh::PostgresRefresh {
                source: DatabaseUrl::parse(&args.from)?,
                target: target_url.clone(),
                connect: crate::environment::connect_options(),
                jobs: args.jobs,
                target_schema: Some(args.target_schema.clone()),
                resume: args.resume,
            };
            cutover_refresh::refresh_postgres(&settings, policy, masker, progress).await
        }
        cutover_db::Locator::Spark(_) => bail!(
            "{}: a refresh writes into PostgreSQL or SQLite, not into Spark\nhint: name a postgres:// or sqlite: target with --to",
            target_url.redacted()
        ),
    };
    bar.finish();
    let outcome = outcome?;
    let seconds = started.elapsed().as_secs_f64();
    let verification = if args.verification.mode == VerifyMode::Off {
        None
    } else {
        let target = Database::connect(&target_url, &crate::environment::connect_options()).await?;
        let masker = cutover_refresh::Masker::for_policy(policy, secret.as_bytes());
        Some(
            cutover_refresh::verify(
                source,
                &target,
                policy,
                Some(&masker),
                &verify_options(&args.verification, policy, Some(outcome.tables.clone())),
            )
            .await?,
        )
    };
    let report = cutover_refresh::Report {
        source: cutover_db::redact(&args.from),
        target: target_url.redacted().to_owned(),
        policy: args
            .policy
            .as_ref()
            .map(|path| path.display().to_string())
            .unwrap_or_default(),
        source_read_only: true,
        started_at: started_at(),
        refresh_seconds: Some(seconds),
        tables: outcome.tables.clone(),
        hooks: outcome.hooks.clone(),
        resumed: outcome.resumed.clone(),
        verification,
    };
    let mut text = format!(
        "refreshed {} from {} in {seconds:.1} s (the source was opened read-only)\n",
        target_url.redacted(),
        cutover_db::redact(&args.from)
    );
    if let Some(resumed) = &outcome.resumed {
        let _ = writeln!(text, "  {}", resumed.summary());
    }
    let width = outcome
        .tables
        .iter()
        .map(|table| table.table.len())
        .max()
        .unwrap_or(0);
    for table in &outcome.tables {
        let _ = writeln!(
            text,
            "  {:<width$}  {:<8}  {:>10} rows",
            table.table,
            table.action,
            crate::output::thousands(table.rows)
        );
    }
    for hook in &outcome.hooks {
        let _ = writeln!(
            text,
            "  hook {} ({}, {}): {} in {:.1} s",
            hook.name, hook.when, hook.kind, hook.status, hook.seconds
        );
    }
    finish(global, &args.verification.report, &report, text)
}

/// Writes the report files, prints the report (JSON, or `text` followed by
/// the verification), and maps the verification to the exit code.
pub fn finish(
    global: &GlobalArgs,
    files: &[PathBuf],
    report: &cutover_refresh::Report,
    mut text: String,
) -> anyhow::Result<Outcome> {
    write_reports(files, report)?;
    match global.format {
        Format::Json => print_json(report)?,
        Format::Text => {
            if let Some(verification) = &report.verification {
                text.push_str(&render_verification(verification));
            }
            print(&text)?;
        }
    }
    Ok(if report.passed() {
        Outcome::Success
    } else {
        Outcome::Differences
    })
}

/// The verification settings from the flags and the policy.
pub fn verify_options(
    args: &VerificationArgs,
    policy: &Policy,
    baseline: Option<Vec<cutover_refresh::TableOutcome>>,
) -> cutover_refresh::VerifyOptions {
    let mut forbid_hosts = policy.forbid_hosts.clone();
    forbid_hosts.extend(args.forbid_hosts.iter().cloned());
    cutover_refresh::VerifyOptions {
        full: args.mode == VerifyMode::Full,
        sample_rows: args.sample_rows,
        forbid_hosts,
        baseline,
    }
}

/// Writes the report to each file (.json or .md), each through a temporary file renamed into place.
pub fn write_reports(paths: &[PathBuf], report: &cutover_refresh::Report) -> anyhow::Result<()> {
    for path in paths {
        let text = match path.extension().and_then(|extension| extension.to_str()) {
            Some("json") => serde_json::to_string_pretty(report)? + "\n",
            Some("md") => report.markdown(),
            _ => bail!(
                "{}: a report is .json or .md\nhint: e.g. --report refresh.md --report refresh.json",
                path.display()
            ),
        };
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        std::fs::write(&temporary, text).with_context(|| format!("writing {}", path.display()))?;
        std::fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The verification as text: a summary line, then one line per check and the evidence of failures.
pub fn render_verification(verification: &cutover_refresh::Verification) -> String {
    use cutover_refresh::Status;
    let count = |status| {
        verification
            .checks
            .iter()
            .filter(|check| check.status == status)
            .count()
    };
    let mut text = format!(
        "verification ({}): {} passed, {} failed, {} skipped\n",
        verification.mode,
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Skipped)
    );
    for check in &verification.checks {
        let word = match check.status {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::Skipped => "skip",
        };
        let _ = writeln!(text, "  {word:<4}  {}", check.name);
        if check.status != Status::Pass {
            for line in &check.evidence {
                let _ = writeln!(text, "          {line}");
            }
        }
    }
    text
}

/// Now, as RFC 3339 UTC.
pub fn started_at() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = now.as_secs();
    let date = i32::try_from(seconds / 86_400)
        .ok()
        .and_then(cutover_db::value::date_from_days)
        .map(|date| date.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    let time = seconds % 86_400;
    format!(
        "{date}T{:02}:{:02}:{:02}Z",
        time / 3600,
        time / 60 % 60,
        time % 60
    )
}

fn count_problems(count: usize) -> String {
    if count == 1 {
        "1 problem".to_owned()
    } else {
        format!("{count} problems")
    }
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
