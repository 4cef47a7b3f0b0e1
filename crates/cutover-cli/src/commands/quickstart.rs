//! `cutover quickstart`: a synthetic production and acceptance pair (and
//! the other scenarios' data) in SQLite, and examples D and A run end to end.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use cutover_run::{Journal, RunEnd, RunOptions};

use crate::Outcome;
use crate::cli::GlobalArgs;
use crate::commands::run::Printer;
use crate::output::print;

/// Try cutover with no server: demo databases in SQLite, and two runbooks run end to end.
///
/// Creates --dir (default cutover-demo/) with synthetic data for every
/// scenario: production.db and acceptance.db (scenario D), lab-results.db
/// and lab-results-new.db (scenario A), app.db (scenario C), the policies,
/// and the four example runbooks rewritten to use them. Then it runs
/// example D (an acceptance refresh from production: approvals, a
/// notification, the refresh masked in flight, its verification, a check,
/// a checkpoint, the sign-off), recording each approval as the demo's
/// approvers, and example A (a parallel-run reconciliation with a go/no-go
/// checkpoint) twice, as two days of a parallel run. It prints where each
/// run's HTML evidence report is.
///
/// The demo's masking key and hold token are made up for the demo when
/// CUTOVER_MASK_SECRET and CUTOVER_HOLD_TOKEN are not set.
///
/// Examples:
///   cutover quickstart
///   cutover quickstart --serve        # then the console at http://localhost:8480/
///   cutover quickstart --setup-only && CUTOVER_HOLD_TOKEN=any-demo-token cutover run cutover-demo/runbook-c-move.toml
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct QuickstartArgs {
    /// Where the demo goes (its databases and runbooks are replaced).
    #[arg(long, value_name = "DIR", default_value = "cutover-demo")]
    pub dir: PathBuf,

    /// Only create the demo files; run nothing.
    #[arg(long)]
    pub setup_only: bool,

    /// Then serve the console on the demo journal (read-only, no sign-in;
    /// the demo's timers on its Drain page) at 127.0.0.1:8480 until Ctrl-C.
    #[arg(long, conflicts_with = "setup_only")]
    pub serve: bool,
}

/// A made-up key for the demo, different on every machine.
fn demo_key() -> String {
    let mut bytes = [0u8; 16];
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

pub async fn run(args: QuickstartArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let runbooks = cutover_run::demo::create(&args.dir)?;
    let shown = args.dir.display().to_string();
    if args.setup_only {
        let names: Vec<String> = runbooks
            .iter()
            .map(|path| format!("  cutover run {}", path.display()))
            .collect();
        print(&format!(
            "demo databases, policies and runbooks written to {shown}/; run one with\n{}\n",
            names.join("\n")
        ))?;
        return Ok(Outcome::Success);
    }
    let mut environment: Vec<(String, String)> = std::env::vars().collect();
    for variable in ["CUTOVER_MASK_SECRET", "CUTOVER_HOLD_TOKEN"] {
        if std::env::var(variable).map_or(true, |value| value.is_empty()) {
            environment.push((variable.to_owned(), demo_key()));
        }
    }
    let lookup = |name: &str| {
        environment
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let journal_path = args.dir.join("journal.db");
    let mut journal = Journal::open(&journal_path)?;
    let options = RunOptions {
        exe: std::env::current_exe().context("finding the cutover binary")?,
        runs_dir: args.dir.join("cutover-runs"),
        new_run: true,
        rerun: Vec::new(),
        skip: Vec::new(),
        wait_for_approvals: Duration::ZERO,
        environment: environment.clone(),
        console: None,
    };
    let printer = Printer::new(global);
    let mut reports = Vec::new();
    let plan = [
        (
            "runbook-d-refresh.toml",
            "scenario D: refresh acceptance from production",
        ),
        (
            "runbook-a-parallel-run.toml",
            "scenario A: parallel run, day 1",
        ),
        (
            "runbook-a-parallel-run.toml",
            "scenario A: parallel run, day 2",
        ),
    ];
    for (file, title) in plan {
        print(&format!("\n== {title}\n"))?;
        let (runbook, variables) = cutover_run::load(&args.dir.join(file), &lookup)?;
        let mut options = options.clone();
        let mut attempts = 0;
        let (run, end) = loop {
            attempts += 1;
            let (run, end) = cutover_run::run(
                &runbook,
                variables.clone(),
                &mut journal,
                &options,
                &printer,
            )
            .await?;
            // Resume this run from now on, not a new one.
            options.new_run = false;
            match &end {
                RunEnd::Waiting { step, missing } if attempts < 10 => {
                    for approver in missing {
                        journal.append(
                            &run.id,
                            step,
                            "approved",
                            &serde_json::json!({"by": approver, "note": "recorded by cutover quickstart for the demo"}),
                        )?;
                        print(&format!("  (demo) {approver} approves {step}\n"))?;
                    }
                }
                _ => break (run, end),
            }
        };
        let report = cutover_run::report::build(&journal, &run)?;
        let (html, _) = cutover_run::report::write(&report, std::path::Path::new(&run.dir))?;
        match end {
            RunEnd::Finished(status) => {
                print(&format!(
                    "run {} finished{}\n",
                    run.id,
                    status.map_or(String::new(), |status| format!("; checkpoint {status}"))
                ))?;
            }
            RunEnd::Failed { step, reason } | RunEnd::NeedsDecision { step, reason } => {
                bail!(
                    "the demo run {} stopped at {step}: {reason}\nreport: {}",
                    run.id,
                    html.display()
                );
            }
            RunEnd::Waiting { step, .. } => {
                bail!("the demo run {} still waits at {step}", run.id);
            }
        }
        reports.push(html);
    }
    let lines: Vec<String> = reports
        .iter()
        .map(|path| format!("  {}", path.display()))
        .collect();
    let journal_shown = journal_path.display();
    print(&format!(
        "\nevidence reports (open in a browser):\n{}\njournal: {journal_shown} (cutover status --journal {journal_shown}; cutover journal verify --journal {journal_shown})\nconsole: cutover serve --journal {journal_shown} (read-only; open http://localhost:8480/)\nmore: CUTOVER_HOLD_TOKEN=any-demo-token cutover run {shown}/runbook-c-move.toml --journal {journal_shown}\n      ({shown}/runbook-b-delivery.toml delivers to a data-exchange service: its header says how)\n",
        lines.join("\n"),
    ))?;
    if args.serve {
        let serve = crate::commands::serve::ServeArgs {
            journal: journal_path,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8480)),
            config: None,
            tls_cert: None,
            tls_key: None,
            trust_proxy: false,
            ledger: Vec::new(),
            drain: vec![format!(
                "sqlite:{}#scheduled_tasks",
                args.dir.join("app.db").display()
            )],
            runbook: Vec::new(),
        };
        return crate::commands::serve::run(serve, global).await;
    }
    Ok(Outcome::Success)
}
