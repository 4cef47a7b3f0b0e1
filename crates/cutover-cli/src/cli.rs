//! The command line: global options and one subcommand per capability.

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands::diff::DiffArgs;
use crate::commands::drain::DrainArgs;
use crate::commands::hold::HoldArgs;
use crate::commands::inspect::InspectArgs;
use crate::commands::ledger::LedgerArgs;
use crate::commands::manual::{CompletionsArgs, ManArgs};
use crate::commands::quickstart::QuickstartArgs;
use crate::commands::receive::ReceiveArgs;
use crate::commands::refresh::RefreshArgs;
use crate::commands::run::{ApproveArgs, JournalArgs, ReportArgs, RunArgs, StatusArgs};
use crate::commands::send::SendArgs;
use crate::commands::serve::ServeArgs;
use crate::commands::verify::VerifyArgs;
use crate::commands::verify_refresh::VerifyRefreshArgs;

/// Move health data between systems and environments, and prove that it moved right.
///
/// Databases are named by URL: postgres://user@host:port/dbname (passwords
/// from the URL, PGPASSWORD or ~/.pgpass; never printed) or sqlite:PATH.
/// Add #table (or #schema.table) where a command works on one table.
///
/// Exit codes: 0 success, 1 differences found or verification failed, 2 error,
/// 3 a run waits for a person.
#[derive(Debug, Parser)]
#[command(
    name = "cutover",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Output format: human-readable text, or JSON for machines.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// More log output on stderr (-v info, -vv debug, -vvv trace). Row values are never logged.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Readable summary.
    Text,
    /// One JSON document on stdout.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Try cutover with no server: demo databases in SQLite, and two runbooks run end to end.
    Quickstart(QuickstartArgs),
    /// Summarise a database's schema: tables with row counts, keys, foreign keys, indexes, views, sequences.
    Inspect(InspectArgs),
    /// Reconcile two tables or queries exactly: rows missing, extra or changed, per column and per group.
    Diff(Box<DiffArgs>),
    /// Refresh a lower environment from production: masked in flight, own data kept, swapped atomically, verified.
    Refresh(Box<RefreshArgs>),
    /// Verify a refreshed lower environment against production and the policy.
    VerifyRefresh(Box<VerifyRefreshArgs>),
    /// Show db-scheduler timers per version and site, forecast when a version drains, or wait for it.
    Drain(DrainArgs),
    /// Hold API calls durably during a migration window (a proxy), and replay them afterwards.
    Hold(Box<HoldArgs>),
    /// Receive files over tus 1.0 or the IETF resumable-upload draft, persisting each before acknowledging it, with receipts.
    Receive(ReceiveArgs),
    /// Send files with tus 1.0 (or the IETF resumable-upload draft), each recorded in a durable delivery ledger, verified on the receiver and replayed if missing.
    Send(Box<SendArgs>),
    /// Check independently that every acknowledged file is on the receiver; replay what is missing (once or --every).
    Verify(Box<VerifyArgs>),
    /// Report a delivery ledger: files sent, acknowledged, verified, missing, replayed, failed, per day and stream.
    Ledger(LedgerArgs),
    /// Run a runbook: ordered steps with approvals, gates and checkpoints, journaled and resumable.
    Run(Box<RunArgs>),
    /// Record an approval (or a rejection) of a run's approval step.
    Approve(ApproveArgs),
    /// The migration console: runs, approvals in a browser behind sign-in, live updates.
    Serve(ServeArgs),
    /// Show where each run stands, or one run step by step.
    Status(StatusArgs),
    /// Write a run's evidence report: a self-contained HTML page and JSON.
    Report(ReportArgs),
    /// Check the run journal's hash chain.
    Journal(JournalArgs),
    /// Print a shell's completion script (bash, zsh, fish, powershell, elvish).
    Completions(CompletionsArgs),
    /// Write man pages: cutover.1 and one per command.
    Man(ManArgs),
}
