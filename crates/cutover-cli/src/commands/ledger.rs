//! `cutover ledger`: what was sent, acknowledged, verified, missing, replayed
//! or failed, per day and per data stream.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use cutover_tus::Ledger;

use crate::Outcome;
use crate::cli::{Format, GlobalArgs};
use crate::output::{print, print_json, thousands};

const STATES: [&str; 7] = [
    "queued",
    "uploading",
    "acknowledged",
    "verified",
    "missing",
    "replayed",
    "failed",
];

/// Report a delivery ledger per day and per data stream.
///
/// Counts the files of the ledger `cutover send` keeps, by the day each was
/// first recorded (UTC), its data_stream metadata, and its state. Exit code
/// 1 if any file is missing or failed.
///
/// Examples:
///   cutover ledger
///   cutover ledger --ledger /var/lib/sender/cutover-ledger.db --format json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct LedgerArgs {
    /// The ledger file.
    #[arg(long, value_name = "FILE", default_value = "cutover-ledger.db")]
    pub ledger: PathBuf,
}

pub async fn run(args: LedgerArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    if !args.ledger.exists() {
        bail!(
            "{}: no such ledger\nhint: cutover send writes one (--ledger names it)",
            args.ledger.display()
        );
    }
    let ledger = Ledger::open(&args.ledger)?;
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
            ["missing", "failed"].map(|state| states.get(state).copied().unwrap_or(0))
        })
        .sum();
    match global.format {
        Format::Json => print_json(&serde_json::json!({
            "ledger": args.ledger,
            "rows": rows.iter().map(|((day, stream), states)| serde_json::json!({
                "day": day, "data_stream": stream, "states": states,
            })).collect::<Vec<_>>(),
            "missing_or_failed": troubled,
        }))?,
        Format::Text => {
            let mut text = format!("{:<10}  {:<16}", "day", "data stream");
            for state in STATES {
                let _ = write!(text, " {state:>12}");
            }
            text.push('\n');
            for ((day, stream), states) in &rows {
                let _ = write!(
                    text,
                    "{day:<10}  {:<16}",
                    if stream.is_empty() { "-" } else { stream }
                );
                for state in STATES {
                    let _ = write!(
                        text,
                        " {:>12}",
                        thousands(states.get(state).copied().unwrap_or(0))
                    );
                }
                text.push('\n');
            }
            if troubled > 0 {
                let _ = writeln!(text, "{troubled} files are missing or failed");
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
