//! `cutover drain`: db-scheduler timers per version and site, the bleed-out
//! forecast, and a gate that waits for a version to drain.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use cutover_db::{Database, DatabaseUrl, TableName};
use cutover_drain::{DrainReport, Profile, analyse, parse_duration};

use crate::Outcome;
use crate::cli::{Format, GlobalArgs};
use crate::output::{print, print_json, thousands};

/// Show which version's timers are still pending, and when they will be gone.
///
/// Reads a db-scheduler timer table (default scheduled_tasks; PostgreSQL or
/// SQLite, read-only) and classifies every timer by version and site with a
/// rules file. The built-in rules are scenario C's: EICRTask is 2.x (retried
/// up to 10 times), BsaScheduledJob is 3.x (3 times); see
/// examples/drain-rules.toml. task_data is never read.
///
/// For each version and site: pending, picked, overdue and stuck timers, the
/// next and last execution time, and a forecast of when the last timer is
/// gone (each timer's execution time plus its remaining retries times the
/// retry delay; each open launch's follow-on actions). Problems: timers
/// picked with a stale heartbeat, failing repeatedly, overdue, a version no
/// instance picks any more (db-scheduler deletes such timers after 14 days),
/// unknown task names, and a _v2 copy of the table.
///
/// With --wait VERSION it polls until that version has no pending timers
/// (exit 0) or the deadline passes (exit 1), and cross-checks the forecast
/// with the rate timers leave the table: a gate for a runbook.
///
/// Examples:
///   cutover drain postgres://reader@db/app
///   cutover drain 'sqlite:app.db#scheduled_tasks' --format json
///   cutover drain postgres://reader@db/app --wait 2.x --deadline 30s
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct DrainArgs {
    /// The database, optionally with #table (default table: scheduled_tasks).
    #[arg(value_name = "URL[#TABLE]")]
    pub url: String,

    /// The classification rules (TOML); default: the built-in 2.x/3.x profile.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,

    /// Wait until this version has no pending timers.
    #[arg(long, value_name = "VERSION")]
    pub wait: Option<String>,

    /// Give up waiting after this long (e.g. 30s, 10m, 2h, 3d).
    #[arg(long, value_name = "DURATION", requires = "wait", default_value = "1h")]
    pub deadline: String,

    /// Time between polls while waiting.
    #[arg(long, value_name = "DURATION", requires = "wait", default_value = "5s")]
    pub interval: String,
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

fn duration(flag: &str, text: &str) -> anyhow::Result<std::time::Duration> {
    let Some(micros) = parse_duration(text) else {
        bail!("{flag} {text}: not a duration\nhint: write e.g. 30s, 5m, 1h30m or 2d");
    };
    Ok(std::time::Duration::from_micros(
        u64::try_from(micros).unwrap_or_default(),
    ))
}

pub async fn run(args: DrainArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let profile = match &args.rules {
        Some(path) => Profile::load(path)?,
        None => Profile::default_profile(),
    };
    let url = DatabaseUrl::parse(&args.url)?;
    let table = url
        .table
        .clone()
        .unwrap_or_else(|| TableName::new("scheduled_tasks"));
    let options = cutover_db::ConnectOptions {
        read_only: true,
        ..crate::environment::connect_options()
    };
    let database = Database::connect(&url, &options).await?;
    let Some(wanted) = args.wait.clone() else {
        let report = analyse(&database, &table, &profile, now_micros()).await?;
        show(global, &report, url.redacted(), None)?;
        return Ok(Outcome::Success);
    };
    if !profile
        .versions
        .iter()
        .any(|version| version.name == wanted)
    {
        let names: Vec<&str> = profile
            .versions
            .iter()
            .map(|version| version.name.as_str())
            .collect();
        bail!(
            "--wait {wanted}: the rules name no such version\nhint: the versions are {}",
            names.join(", ")
        );
    }
    let deadline = std::time::Instant::now() + duration("--deadline", &args.deadline)?;
    let interval = duration("--interval", &args.interval)?;
    let first = analyse(&database, &table, &profile, now_micros()).await?;
    let mut report = first.clone();
    loop {
        let pending = report.version(&wanted).map_or(0, |version| version.pending);
        if pending == 0 {
            show(
                global,
                &report,
                url.redacted(),
                Some(format!("{wanted} has drained: no pending timers")),
            )?;
            return Ok(Outcome::Success);
        }
        if std::time::Instant::now() + interval > deadline {
            show(
                global,
                &report,
                url.redacted(),
                Some(format!(
                    "the deadline ({}) passed with {} {wanted} timers pending",
                    args.deadline,
                    thousands(pending)
                )),
            )?;
            return Ok(Outcome::Differences);
        }
        tokio::time::sleep(interval).await;
        report = analyse(&database, &table, &profile, now_micros()).await?;
        report.observe(&first);
    }
}

fn show(
    global: &GlobalArgs,
    report: &DrainReport,
    database: &str,
    verdict: Option<String>,
) -> anyhow::Result<()> {
    if global.format == Format::Json {
        let mut value = serde_json::to_value(report)?;
        if let (Some(verdict), Some(object)) = (&verdict, value.as_object_mut()) {
            object.insert("verdict".into(), verdict.clone().into());
        }
        return print_json(&value);
    }
    let mut text = format!(
        "{} on {database} at {}: {} timers\n",
        report.table,
        report.at,
        thousands(report.timers)
    );
    let _ = writeln!(
        text,
        "  {:<14} {:>10}  {:<22} {:<12} observed",
        "version", "pending", "drained by (forecast)", "in"
    );
    for version in &report.versions {
        let observed = match (version.observed_per_hour, &version.observed_drained_by) {
            (Some(rate), Some(at)) => format!("{rate:.0}/h, gone by {at}"),
            (Some(rate), None) => format!("{rate:.0}/h"),
            _ => String::new(),
        };
        let _ = writeln!(
            text,
            "  {:<14} {:>10}  {:<22} {:<12} {observed}",
            version.name,
            thousands(version.pending),
            if version.drained {
                "drained".to_owned()
            } else {
                version.drained_by.clone().unwrap_or_default()
            },
            version.drained_in.clone().unwrap_or_default(),
        );
    }
    if report.groups.iter().any(|group| group.site != "all") || report.groups.len() > 1 {
        let _ = writeln!(
            text,
            "\n  {:<14} {:<20} {:>9} {:>7} {:>8} {:>6} {:>8} {:>9}  {:<20}  {:<20}",
            "version",
            "site",
            "pending",
            "picked",
            "overdue",
            "stuck",
            "failing",
            "launches",
            "next",
            "last"
        );
        for group in &report.groups {
            let _ = writeln!(
                text,
                "  {:<14} {:<20} {:>9} {:>7} {:>8} {:>6} {:>8} {:>9}  {:<20}  {:<20}",
                group.version,
                group.site,
                thousands(group.pending),
                thousands(group.picked),
                thousands(group.overdue),
                thousands(group.stuck),
                thousands(group.failing),
                thousands(group.launches),
                group.next_execution.clone().unwrap_or_default(),
                group.last_execution.clone().unwrap_or_default()
            );
        }
    }
    if !report.problems.is_empty() {
        let _ = writeln!(text, "\nproblems:");
        for problem in &report.problems {
            let _ = writeln!(text, "  {}: {}", problem.kind, problem.message);
        }
    }
    if let Some(verdict) = verdict {
        let _ = writeln!(text, "\n{verdict}");
    }
    print(&text)
}
