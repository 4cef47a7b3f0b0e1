//! `cutover ledger`: what was sent, acknowledged, verified, missing,
//! replayed, undelivered or failed, per day and per data stream; and
//! `cutover ledger reconcile`, the ledger against what the data-exchange
//! service's status API lists.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, Subcommand};
use cutover_tus::Ledger;
use cutover_tus::reconcile::{Reconciliation, Scope, StatusService};

use crate::Outcome;
use crate::cli::{Format, GlobalArgs};
use crate::commands::delivery::SignInArgs;
use crate::output::{print, print_json, thousands};

/// Report a delivery ledger per day and per data stream, or reconcile it with the receiver.
///
/// Counts the files of the ledger `cutover send` keeps, by the day each was
/// first recorded (UTC), its data_stream (or data_stream_id) metadata, and
/// its state. Exit code 1 if any file is missing, undelivered or failed.
///
/// Examples:
///   cutover ledger
///   cutover ledger --ledger /var/lib/sender/cutover-ledger.db --format json
///   cutover ledger reconcile --status-graphql https://dex.example/graphql --data-stream celr --route csv …
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct LedgerArgs {
    /// The ledger file.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "cutover-ledger.db",
        global = true
    )]
    pub ledger: PathBuf,

    #[command(subcommand)]
    pub action: Option<LedgerAction>,
}

#[derive(Debug, Subcommand)]
pub enum LedgerAction {
    Reconcile(ReconcileArgs),
}

/// What I sent against what they hold: the ledger against the data-exchange status service.
///
/// Asks the processing-status GraphQL service (--status-graphql, signed in
/// as for send) for every upload of one data stream and route in a date
/// range (paged), and for the completed uploads it never delivered, then
/// reports per day:
///   strangers     uploads the service holds that the ledger does not know
///   not listed    ledger entries whose upload the service does not list
///   duplicates    one file name in several uploads (a file's replays of its lost uploads excepted)
///   stuck         uploads that never completed
///   undelivered   completed uploads never delivered onwards
/// Uploads the ledger replaced by a replay are counted as replaced, not as
/// discrepancies. Exit code 1 on any discrepancy, 2 if the status service
/// cannot be asked (nothing is concluded then).
///
/// Examples:
///   DEX_PASSWORD=… cutover ledger reconcile --status-graphql https://dex.example/graphql \
///       --data-stream celr --route csv --since 2026-11-01 --until 2026-11-30 \
///       --login https://dex.example/oauth --username svc-lab-sender --password-env DEX_PASSWORD
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ReconcileArgs {
    /// The processing-status service's GraphQL endpoint.
    #[arg(long, value_name = "URL")]
    pub status_graphql: String,

    /// The data stream (data_stream_id).
    #[arg(long, value_name = "ID")]
    pub data_stream: String,

    /// The data stream's route (data_stream_route).
    #[arg(long, value_name = "ROUTE")]
    pub route: String,

    /// The first day, YYYY-MM-DD (UTC; default today).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,

    /// The last day, included, YYYY-MM-DD (UTC; default today).
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,

    #[command(flatten)]
    pub sign_in: SignInArgs,
}

fn open_ledger(path: &Path) -> anyhow::Result<Ledger> {
    if !path.exists() {
        bail!(
            "{}: no such ledger\nhint: cutover send writes one (--ledger names it)",
            path.display()
        );
    }
    Ok(Ledger::open(path)?)
}

pub async fn run(args: LedgerArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    if let Some(LedgerAction::Reconcile(reconcile_args)) = args.action {
        return reconcile(&args.ledger, reconcile_args, global).await;
    }
    let ledger = open_ledger(&args.ledger)?;
    let mut rows: BTreeMap<(String, String), BTreeMap<String, u64>> = BTreeMap::new();
    for (day, stream, state, count) in ledger.report()? {
        *rows
            .entry((day, stream))
            .or_default()
            .entry(state)
            .or_default() += count;
    }
    let troubled: u64 = rows
        .values()
        .flat_map(|states| {
            cutover_tus::State::ALL
                .iter()
                .filter(|state| state.is_problem())
                .map(|state| states.get(state.name()).copied().unwrap_or(0))
        })
        .sum();
    match global.format {
        Format::Json => print_json(&serde_json::json!({
            "ledger": args.ledger,
            "rows": rows.iter().map(|((day, stream), states)| serde_json::json!({
                "day": day, "data_stream": stream, "states": states,
            })).collect::<Vec<_>>(),
            "missing_undelivered_or_failed": troubled,
        }))?,
        Format::Text => {
            let mut text = format!("{:<10}  {:<16}", "day", "data stream");
            for state in cutover_tus::State::ALL {
                let _ = write!(text, " {:>12}", state.name());
            }
            text.push('\n');
            for ((day, stream), states) in &rows {
                let _ = write!(
                    text,
                    "{day:<10}  {:<16}",
                    if stream.is_empty() { "-" } else { stream }
                );
                for state in cutover_tus::State::ALL {
                    let _ = write!(
                        text,
                        " {:>12}",
                        thousands(states.get(state.name()).copied().unwrap_or(0))
                    );
                }
                text.push('\n');
            }
            if troubled > 0 {
                let _ = writeln!(text, "{troubled} files are missing, undelivered or failed");
            }
            print(&text)?;
        }
    }
    Ok(if troubled == 0 {
        Outcome::Success
    } else {
        Outcome::Differences
    })
}

fn day(flag: &str, text: Option<&str>) -> anyhow::Result<chrono::NaiveDate> {
    match text {
        None => Ok(chrono::Utc::now().date_naive()),
        Some(text) => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
            anyhow::anyhow!("{flag} {text}: not a date\nhint: write YYYY-MM-DD, e.g. 2026-11-30")
        }),
    }
}

async fn reconcile(
    path: &Path,
    args: ReconcileArgs,
    global: &GlobalArgs,
) -> anyhow::Result<Outcome> {
    let since = day("--since", args.since.as_deref())?;
    let until = day("--until", args.until.as_deref())?;
    if until < since {
        bail!(
            "--until {until} is before --since {since}\nhint: name the first day with --since and the last with --until"
        );
    }
    if !(args.status_graphql.starts_with("https://") || args.status_graphql.starts_with("http://"))
    {
        bail!(
            "--status-graphql {}: not an http(s) URL\nhint: e.g. https://dex.example/graphql",
            cutover_db::redact(&args.status_graphql)
        );
    }
    let ledger = open_ledger(path)?;
    let scope = Scope {
        data_stream_id: args.data_stream.clone(),
        data_stream_route: args.route.clone(),
        since,
        until,
    };
    let auth = args.sign_in.auth().await?;
    let service = StatusService::new(&args.status_graphql, auth)?;
    let url = cutover_db::redact(&args.status_graphql);
    let asked = async {
        let listed = service.uploads(&scope).await?;
        let undelivered = service.undelivered(&scope).await?;
        Ok::<_, cutover_tus::reconcile::StatusError>((listed, undelivered))
    };
    let (listed, undelivered) = asked.await.map_err(|error| {
        anyhow::anyhow!(
            "{url}: {error}; nothing concluded\nhint: check the URL and that the account may read status, then run again"
        )
    })?;
    let report = cutover_tus::reconcile::reconcile(&ledger, &scope, &listed, &undelivered)?;
    let discrepancies = report.discrepancies();
    match global.format {
        Format::Json => print_json(&serde_json::json!({
            "ledger": path,
            "status_graphql": url,
            "data_stream_id": scope.data_stream_id,
            "data_stream_route": scope.data_stream_route,
            "since": since.to_string(),
            "until": until.to_string(),
            "days": report.days,
            "discrepancies": discrepancies,
        }))?,
        Format::Text => print(&describe(&report, &scope, &url))?,
    }
    Ok(if discrepancies == 0 {
        Outcome::Success
    } else {
        Outcome::Differences
    })
}

/// The reconciliation in words: a table per day, then each finding.
fn describe(report: &Reconciliation, scope: &Scope, url: &str) -> String {
    let mut text = format!(
        "ledger against {url}: {}/{} from {} to {}\n",
        scope.data_stream_id, scope.data_stream_route, scope.since, scope.until
    );
    let columns = [
        "listed",
        "matched",
        "replaced",
        "refused",
        "strangers",
        "not listed",
        "duplicates",
        "stuck",
        "undelivered",
    ];
    let _ = write!(text, "{:<10}", "day");
    for column in columns {
        let _ = write!(text, " {column:>11}");
    }
    text.push('\n');
    for (date, day) in &report.days {
        let counts = [
            day.listed,
            day.matched,
            day.replaced,
            day.refused,
            day.strangers.len() as u64,
            day.not_listed.len() as u64,
            day.duplicates.len() as u64,
            day.stuck.len() as u64,
            day.undelivered.len() as u64,
        ];
        let _ = write!(text, "{date:<10}");
        for count in counts {
            let _ = write!(text, " {:>11}", thousands(count));
        }
        text.push('\n');
    }
    for (date, day) in &report.days {
        for upload in &day.strangers {
            let _ = writeln!(
                text,
                "  {date} stranger {} (upload {}, {})",
                upload.file_name, upload.upload_id, upload.status
            );
        }
        for entry in &day.not_listed {
            let _ = writeln!(
                text,
                "  {date} not listed {} (upload {}, {} in the ledger)",
                entry.path, entry.upload_id, entry.state
            );
        }
        for duplicate in &day.duplicates {
            let _ = writeln!(
                text,
                "  {date} duplicate {} in {} uploads: {}",
                duplicate.file_name,
                duplicate.upload_ids.len(),
                duplicate.upload_ids.join(", ")
            );
        }
        for upload in &day.stuck {
            let percent = upload
                .percent_complete
                .map_or(String::new(), |percent| format!(", {percent:.0}%"));
            let _ = writeln!(
                text,
                "  {date} stuck {} (upload {}{percent})",
                upload.file_name, upload.upload_id
            );
        }
        for upload in &day.undelivered {
            let _ = writeln!(
                text,
                "  {date} undelivered {} (upload {})",
                upload.file_name, upload.upload_id
            );
        }
    }
    let discrepancies = report.discrepancies();
    if discrepancies == 0 {
        text.push_str("no discrepancies\n");
    } else {
        let _ = writeln!(text, "{discrepancies} discrepancies");
    }
    text
}
