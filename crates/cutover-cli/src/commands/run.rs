//! `cutover run`, `approve`, `status` and `journal verify`: runbooks,
//! journaled, resumable, with approvals.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use cutover_run::{Journal, RunEnd, RunOptions, RunProgress, Step};

use crate::Outcome;
use crate::cli::{Format, GlobalArgs};
use crate::output::{print, print_json};

/// The journal every run is recorded in.
#[derive(Debug, Args)]
pub struct JournalArg {
    /// The run journal (SQLite; created if missing). Runs keep their files in cutover-runs/ beside it.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "cutover-journal.db",
        global = true
    )]
    pub journal: PathBuf,
}

/// Run a runbook: its steps in order, each journaled, resumable after a crash.
///
/// A runbook (TOML) names steps of these kinds, run in file order or after
/// the steps they name in `after`: approval (named people approve with
/// `cutover approve`; the run waits), notify (stdout, file:PATH or a
/// webhook), check (a shell command, or SQL that must answer a number),
/// refresh, verify-refresh, diff, send, verify, drain, hold (each runs that
/// cutover command with `args`; its JSON answer is the step's evidence),
/// shell, wait-until, and checkpoint (green / yellow / red from rules such
/// as `reconcile.changed_rate < 0.5%`). Variables: [vars] name = "value" or
/// { env = "VAR" } (secrets: { env = "VAR", secret = true }, never written
/// in text), used as ${name}; ${run.id}, ${run.dir} and ${services.NAME}
/// are defined by the run. [[service]] starts `cutover receive` or
/// `cutover hold` for the run's duration.
///
/// Every problem in the runbook is reported with its line and column before
/// anything runs (exit 2). Each step's start, outcome and evidence go into
/// the journal, chained by hash (`cutover journal verify`). Running the
/// same runbook again resumes its unfinished run at the first unfinished
/// step; finished steps are not repeated unless named with --rerun. A
/// notify or shell step cut short by a crash is not repeated blindly: the
/// run stops and asks (--rerun or --skip).
///
/// Exit codes: 0 finished, 1 a step failed or a checkpoint stopped the run,
/// 2 error, 3 waiting for a person (an approval or a decision).
///
/// Examples:
///   cutover run examples/runbook-d-refresh.toml
///   cutover approve acceptance-refresh-20261124-0600 data-owner-permission --as data-owner --note "ticket 4411"
///   cutover status
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct RunArgs {
    /// The runbook file.
    #[arg(value_name = "RUNBOOK")]
    pub runbook: PathBuf,

    #[command(flatten)]
    pub journal: JournalArg,

    /// Only check the runbook; run nothing.
    #[arg(long)]
    pub check: bool,

    /// Start a new run even if this runbook has an unfinished one.
    #[arg(long)]
    pub new: bool,

    /// Run this finished step again (repeatable).
    #[arg(long, value_name = "STEP")]
    pub rerun: Vec<String>,

    /// Mark this interrupted step as done without running it again (repeatable).
    #[arg(long, value_name = "STEP")]
    pub skip: Vec<String>,

    /// Wait this long for missing approvals before stopping (e.g. 10m).
    #[arg(long, value_name = "DURATION", default_value = "0s")]
    pub wait_for_approvals: String,

    /// The address of the console (`cutover serve`) that approvers use:
    /// notifications of a waiting approval and `${run.link}` link to the
    /// run's page there (otherwise to its report file).
    #[arg(long, value_name = "URL", env = "CUTOVER_CONSOLE_URL")]
    pub console_url: Option<String>,
}

/// Record an approval (or a rejection) of a run's approval step.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The run's id (see `cutover status`).
    #[arg(value_name = "RUN")]
    pub run: String,

    /// The approval step.
    #[arg(value_name = "STEP")]
    pub step: String,

    /// Who approves: one of the step's approvers.
    #[arg(long = "as", value_name = "NAME")]
    pub approver: String,

    /// A note kept with the approval (a ticket number, a condition).
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub note: String,

    /// Reject instead: the run stops at this step when it next reads the
    /// journal (a later approval by the same approver replaces it).
    #[arg(long)]
    pub reject: bool,

    #[command(flatten)]
    pub journal: JournalArg,
}

/// Write a run's evidence report: a self-contained HTML page and JSON.
///
/// The page (inline CSS and SVG; nothing is fetched) shows the timeline of
/// steps with who approved what and when, each checkpoint's rules, charts
/// of diff results by category, group and column, the trend of the
/// runbook's diffs across its runs, drain forecasts and delivery states,
/// every step's evidence, and whether the journal's hash chain holds.
/// `cutover run` writes it at the end of every run too.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ReportArgs {
    /// The run's id (see `cutover status`).
    #[arg(value_name = "RUN")]
    pub run: String,

    /// The directory for report.html and report.json (default: the run's directory).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    #[command(flatten)]
    pub journal: JournalArg,
}

/// Show where each run stands, or one run step by step.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A run's id; all runs when left out.
    #[arg(value_name = "RUN")]
    pub run: Option<String>,

    #[command(flatten)]
    pub journal: JournalArg,
}

/// The run journal.
#[derive(Debug, Args)]
pub struct JournalArgs {
    #[command(subcommand)]
    pub command: JournalCommand,
}

#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Check the journal's hash chain: exit 1 if any record was changed, removed or reordered.
    Verify(JournalVerifyArgs),
}

#[derive(Debug, Args)]
pub struct JournalVerifyArgs {
    #[command(flatten)]
    pub journal: JournalArg,
}

/// Prints each step as it starts and ends, on stderr; notifications on stdout.
pub struct Printer {
    quiet: bool,
    json: bool,
}

impl Printer {
    /// A printer as the global options say.
    pub fn new(global: &GlobalArgs) -> Printer {
        Printer {
            quiet: global.quiet,
            json: global.format == Format::Json,
        }
    }
}

impl RunProgress for Printer {
    fn step_started(&self, step: &Step) {
        if !self.quiet {
            eprint_line(&format!("→ {} ({})", step.name, step.kind.name()));
        }
    }

    fn step_ended(&self, step: &Step, outcome: &str, summary: &str) {
        if !self.quiet {
            eprint_line(&format!("  {} {outcome}: {summary}", step.name));
        }
    }

    fn notify(&self, message: &str) {
        if !self.json {
            let _ = print(&format!("{message}\n"));
        }
    }
}

#[allow(clippy::print_stderr)]
fn eprint_line(text: &str) {
    eprintln!("{text}");
}

fn environment() -> Vec<(String, String)> {
    std::env::vars().collect()
}

pub async fn run(args: RunArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let lookup = |name: &str| std::env::var(name).ok();
    let (runbook, variables) = cutover_run::load(&args.runbook, &lookup)?;
    if args.check {
        let text = format!(
            "{}: runbook {} is valid: {} steps ({})\n",
            args.runbook.display(),
            runbook.name,
            runbook.steps.len(),
            runbook
                .steps
                .iter()
                .map(|step| step.name.as_str())
                .collect::<Vec<_>>()
                .join(" → ")
        );
        print(&text)?;
        return Ok(Outcome::Success);
    }
    let Some(wait) = cutover_drain::parse_duration(&args.wait_for_approvals) else {
        bail!(
            "--wait-for-approvals {}: not a duration\nhint: write e.g. 10m",
            args.wait_for_approvals
        );
    };
    for name in args.rerun.iter().chain(&args.skip) {
        if !runbook.steps.iter().any(|step| &step.name == name) {
            bail!("{name}: the runbook has no such step");
        }
    }
    let mut journal = Journal::open(&args.journal.journal)?;
    let options = RunOptions {
        exe: std::env::current_exe().context("finding the cutover binary")?,
        runs_dir: cutover_run::engine::default_runs_dir(&args.journal.journal),
        new_run: args.new,
        rerun: args.rerun.clone(),
        skip: args.skip.clone(),
        wait_for_approvals: Duration::from_micros(wait.max(0) as u64),
        environment: environment(),
        console: args.console_url.clone(),
    };
    let printer = Printer::new(global);
    let (run, end) =
        cutover_run::run(&runbook, variables, &mut journal, &options, &printer).await?;
    let report = cutover_run::report::build(&journal, &run)?;
    let (report_html, _) = cutover_run::report::write(&report, std::path::Path::new(&run.dir))
        .with_context(|| format!("writing the report into {}", run.dir))?;
    let (outcome, text, state) = match &end {
        RunEnd::Finished(status) => (
            Outcome::Success,
            match status {
                Some(status) => format!("run {} finished; last checkpoint {status}", run.id),
                None => format!("run {} finished", run.id),
            },
            "finished",
        ),
        RunEnd::Waiting { step, missing } => (
            Outcome::Waiting,
            format!(
                "run {} waits at {step} for {}\nhint: cutover approve {} {step} --as NAME --note TEXT, then run it again",
                run.id,
                missing.join(", "),
                run.id
            ),
            "waiting",
        ),
        RunEnd::Failed { step, reason } => (
            Outcome::Differences,
            format!("run {} stopped at {step}: {reason}", run.id),
            "failed",
        ),
        RunEnd::NeedsDecision { step, reason } => (
            Outcome::Waiting,
            format!("run {} stopped at {step}: {reason}", run.id),
            "stopped",
        ),
    };
    match global.format {
        Format::Json => print_json(&serde_json::json!({
            "run": run.id, "state": state, "dir": run.dir, "message": text,
            "report": report_html,
        }))?,
        Format::Text => print(&format!("{text}\nreport: {}\n", report_html.display()))?,
    }
    Ok(outcome)
}

pub async fn report(args: ReportArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let journal = open_existing(&args.journal.journal)?;
    let Some(run) = journal.run(&args.run)? else {
        bail!(
            "{}: no such run\nhint: cutover status lists the runs",
            args.run
        );
    };
    let report = cutover_run::report::build(&journal, &run)?;
    let directory = args.out.clone().unwrap_or_else(|| PathBuf::from(&run.dir));
    let (html, json) = cutover_run::report::write(&report, &directory)
        .with_context(|| format!("writing the report into {}", directory.display()))?;
    match global.format {
        Format::Json => print_json(&serde_json::json!({"html": html, "json": json}))?,
        Format::Text => print(&format!("{}\n{}\n", html.display(), json.display()))?,
    }
    Ok(Outcome::Success)
}

pub async fn approve(args: ApproveArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let mut journal = open_existing(&args.journal.journal)?;
    let Some(run) = journal.run(&args.run)? else {
        bail!(
            "{}: no such run\nhint: cutover status lists the runs",
            args.run
        );
    };
    let lookup = |name: &str| std::env::var(name).ok();
    let (runbook, _) = cutover_run::load(std::path::Path::new(&run.path), &lookup)
        .with_context(|| format!("reading the runbook of {}", run.id))?;
    let Some(step) = runbook.steps.iter().find(|step| step.name == args.step) else {
        bail!("{}: the runbook has no such step", args.step);
    };
    if step.kind != cutover_run::Kind::Approval {
        bail!(
            "{}: not an approval step (it is {})",
            args.step,
            step.kind.name()
        );
    }
    if !step.approvers.contains(&args.approver) {
        bail!(
            "{} is not an approver of {} (approvers: {})",
            args.approver,
            args.step,
            step.approvers.join(", ")
        );
    }
    if run.status == "finished" {
        bail!("{}: the run has finished", run.id);
    }
    let decision = if args.reject { "rejected" } else { "approved" };
    let record = journal.append(
        &run.id,
        &args.step,
        decision,
        &serde_json::json!({"by": args.approver, "note": args.note}),
    )?;
    match global.format {
        Format::Json => print_json(&serde_json::json!({
            "run": run.id, "step": args.step, "by": args.approver, "at": record.at,
            "decision": decision,
        }))?,
        Format::Text => print(&format!(
            "{} {decision} {} of {} at {}\n",
            args.approver, args.step, run.id, record.at
        ))?,
    }
    Ok(Outcome::Success)
}

fn open_existing(path: &std::path::Path) -> anyhow::Result<Journal> {
    if !path.exists() {
        bail!(
            "{}: no journal here\nhint: name the journal `cutover run` wrote with --journal",
            path.display()
        );
    }
    Ok(Journal::open(path)?)
}

pub async fn status(args: StatusArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let journal = open_existing(&args.journal.journal)?;
    let runs = match &args.run {
        Some(id) => match journal.run(id)? {
            Some(run) => vec![run],
            None => bail!("{id}: no such run\nhint: cutover status lists the runs"),
        },
        None => journal.runs()?,
    };
    let mut described = Vec::new();
    for run in &runs {
        let records = journal.records(&run.id)?;
        let mut steps: Vec<(String, String, String, String)> = Vec::new();
        for record in &records {
            if record.step.is_empty() {
                continue;
            }
            let state = match record.event.as_str() {
                "step-started" => "running".to_owned(),
                "step-finished" | "step-failed" | "step-skipped" => record
                    .detail
                    .get("outcome")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("done")
                    .to_owned(),
                "waiting" => "waiting".to_owned(),
                "approved" | "rejected" => continue,
                other => other.to_owned(),
            };
            let summary = record
                .detail
                .get("summary")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned();
            match steps.iter_mut().find(|step| step.0 == record.step) {
                Some(step) => {
                    step.1 = state;
                    step.2 = summary;
                    step.3 = record.at.clone();
                }
                None => steps.push((record.step.clone(), state, summary, record.at.clone())),
            }
        }
        described.push((run, steps));
    }
    match global.format {
        Format::Json => print_json(&serde_json::json!(
            described
                .iter()
                .map(|(run, steps)| serde_json::json!({
                    "run": run.id, "runbook": run.runbook, "started_at": run.started_at,
                    "status": run.status, "dir": run.dir,
                    "steps": steps.iter().map(|(name, state, summary, at)| serde_json::json!({
                        "step": name, "state": state, "summary": summary, "at": at,
                    })).collect::<Vec<_>>(),
                }))
                .collect::<Vec<_>>()
        ))?,
        Format::Text => {
            let mut text = String::new();
            for (run, steps) in &described {
                text.push_str(&format!(
                    "{}  {}  started {}  {}\n",
                    run.id, run.runbook, run.started_at, run.status
                ));
                if args.run.is_some() || runs.len() == 1 {
                    for (name, state, summary, at) in steps {
                        text.push_str(&format!("  {name:<28} {state:<12} {at}  {summary}\n"));
                    }
                }
            }
            if described.is_empty() {
                text.push_str("no runs yet\n");
            }
            print(&text)?;
        }
    }
    Ok(Outcome::Success)
}

pub async fn journal(args: JournalArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let JournalCommand::Verify(verify) = args.command;
    let journal = open_existing(&verify.journal.journal)?;
    let result = journal.verify()?;
    let (outcome, text, json) = match result {
        Ok(records) => (
            Outcome::Success,
            format!(
                "{}: {records} records, hash chain intact\n",
                verify.journal.journal.display()
            ),
            serde_json::json!({"intact": true, "records": records}),
        ),
        Err(tampered) => (
            Outcome::Differences,
            format!(
                "{}: tampered at record {}: {}\n",
                verify.journal.journal.display(),
                tampered.seq,
                tampered.reason
            ),
            serde_json::json!({"intact": false, "record": tampered.seq, "reason": tampered.reason}),
        ),
    };
    match global.format {
        Format::Json => print_json(&json)?,
        Format::Text => print(&text)?,
    }
    Ok(outcome)
}
