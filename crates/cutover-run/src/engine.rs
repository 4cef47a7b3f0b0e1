//! Running a runbook: services up, then each step in order, journaled
//! before and after it runs, resuming a run that stopped at its first
//! unfinished step.
//!
//! Capability steps (refresh, diff, send, verify, drain, hold) run the
//! `cutover` binary itself with `--format json`: a step does exactly what
//! the command does, and its JSON answer is the step's evidence. Exit code
//! 0 passes; 1 fails the step, except for a diff, whose differences are
//! its result (a checkpoint judges them); 2 is an error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncBufReadExt as _;

use crate::journal::{Journal, JournalError, Record, RunInfo};
use crate::rules::Rule;
use crate::runbook::{Kind, Runbook, Step, Variables};

/// Where a run reports as it goes; the CLI prints it.
pub trait RunProgress: Send + Sync {
    /// A step starts.
    fn step_started(&self, _step: &Step) {}
    /// A step ended: passed, failed, differences, skipped, waiting…
    fn step_ended(&self, _step: &Step, _outcome: &str, _summary: &str) {}
    /// A notification for stdout.
    fn notify(&self, _message: &str) {}
}

/// Reports nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRunProgress;

impl RunProgress for NoRunProgress {}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The `cutover` binary that capability steps and services run.
    pub exe: PathBuf,
    /// Where runs keep their files (`DIR/RUN-ID/`).
    pub runs_dir: PathBuf,
    /// Start a new run even if one of this runbook is unfinished.
    pub new_run: bool,
    /// Steps to run again although they finished.
    pub rerun: Vec<String>,
    /// Interrupted steps to mark done without running them again.
    pub skip: Vec<String>,
    /// How long to wait for approvals before stopping (0: do not wait).
    pub wait_for_approvals: Duration,
    /// The environment passed to steps (never written to the journal).
    pub environment: Vec<(String, String)>,
    /// The console's address (`cutover serve`), for links to a run's page
    /// in approval notifications and `${run.link}`.
    pub console: Option<String>,
}

/// How a run ended this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Every step finished; the last checkpoint's status, if any.
    Finished(Option<String>),
    /// An approval is missing: who still has to approve.
    Waiting {
        /// The approval step.
        step: String,
        /// Approvers still missing.
        missing: Vec<String>,
    },
    /// A step failed or a checkpoint stopped the run.
    Failed {
        /// The step.
        step: String,
        /// Why.
        reason: String,
    },
    /// A step that is not safe to repeat was cut short: an operator decides.
    NeedsDecision {
        /// The step.
        step: String,
        /// What to do.
        reason: String,
    },
}

/// Why a run could not go on at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The journal failed: nothing after it is trusted.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A service or the run directory could not be set up.
    #[error("{0}")]
    Setup(String),
}

/// A step's state from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StepState {
    NotStarted,
    /// Started, and no end recorded: the run stopped in the middle of it.
    Interrupted,
    Finished,
    Failed,
}

fn step_state(records: &[Record], step: &str) -> StepState {
    records
        .iter()
        .rev()
        .filter(|record| record.step == step)
        .find_map(|record| match record.event.as_str() {
            "step-finished" | "step-skipped" => Some(StepState::Finished),
            "step-failed" => Some(StepState::Failed),
            "step-started" => Some(StepState::Interrupted),
            _ => None,
        })
        .unwrap_or(StepState::NotStarted)
}

/// The evidence of each finished step of a run, by step name.
pub fn evidence(records: &[Record]) -> HashMap<String, serde_json::Value> {
    let mut evidence = HashMap::new();
    for record in records {
        if record.event == "step-finished" || record.event == "step-failed" {
            evidence.insert(
                record.step.clone(),
                record
                    .detail
                    .get("evidence")
                    .cloned()
                    .unwrap_or(serde_json::Value::Null),
            );
        }
    }
    evidence
}

/// One decision on an approval step, as the journal recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The approver role it was given for.
    pub by: String,
    /// When.
    pub at: String,
    /// The note given with it.
    pub note: String,
    /// Whether it rejects rather than approves.
    pub rejected: bool,
    /// The signed-in identity that gave it (issuer, subject, name, email),
    /// for decisions given in the console; null for `cutover approve`.
    pub identity: serde_json::Value,
    /// The address it came from (console decisions).
    pub address: String,
}

impl Decision {
    /// As the report and the step's evidence show it.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = json!({
            "by": self.by, "at": self.at, "note": self.note,
            "decision": if self.rejected { "rejected" } else { "approved" },
        });
        if !self.identity.is_null() {
            value["identity"] = self.identity.clone();
            value["address"] = json!(self.address);
        }
        value
    }
}

/// Every decision recorded for a step (approvals and rejections), in order.
pub fn decisions(records: &[Record], step: &str) -> Vec<Decision> {
    records
        .iter()
        .filter(|record| {
            record.step == step && (record.event == "approved" || record.event == "rejected")
        })
        .map(|record| {
            let text = |key: &str| {
                record
                    .detail
                    .get(key)
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            Decision {
                by: text("by"),
                at: record.at.clone(),
                note: text("note"),
                rejected: record.event == "rejected",
                identity: record
                    .detail
                    .get("identity")
                    .cloned()
                    .unwrap_or(serde_json::Value::Null),
                address: text("address"),
            }
        })
        .collect()
}

/// Each role's standing decision on a step: its latest, so that a role
/// that rejected and then approved has approved.
pub fn standing(records: &[Record], step: &str) -> Vec<Decision> {
    let mut latest: Vec<Decision> = Vec::new();
    for decision in decisions(records, step) {
        latest.retain(|earlier| earlier.by != decision.by);
        latest.push(decision);
    }
    latest
}

/// Replaces each secret value in `text` with `[secret]`.
fn redact_secrets(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|secret| secret.len() >= 4) {
        text = text.replace(secret.as_str(), "[secret]");
    }
    text
}

struct Services {
    children: Vec<tokio::process::Child>,
}

impl Services {
    async fn stop(mut self) {
        for child in &mut self.children {
            let _ = child.kill().await;
        }
    }
}

/// Starts the runbook's services; each is ready at its first line of
/// output, whose first URL (or host:port) becomes `services.NAME`.
/// The file in a run's directory listing its services' process ids.
const SERVICE_PIDS: &str = "services.pids";

/// Stops services a killed earlier attempt of this run left behind: each
/// listed process that is still a `cutover` of this run's directory.
fn stop_leftover_services(run_dir: &Path) {
    let list = run_dir.join(SERVICE_PIDS);
    let Ok(text) = std::fs::read_to_string(&list) else {
        return;
    };
    let marker = run_dir.display().to_string();
    for pid in text
        .lines()
        .filter_map(|line| line.trim().parse::<u32>().ok())
    {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("cutover") && cmdline.contains(&marker) {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
    let _ = std::fs::remove_file(list);
}

async fn start_services(
    runbook: &Runbook,
    variables: &mut Variables,
    options: &RunOptions,
    run_dir: &Path,
) -> Result<Services, RunError> {
    stop_leftover_services(run_dir);
    let mut services = Services {
        children: Vec::new(),
    };
    for service in &runbook.services {
        let args: Vec<String> = match service
            .args
            .iter()
            .map(|arg| variables.expand(arg))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(args) => args,
            Err(bad) => {
                services.stop().await;
                return Err(RunError::Setup(format!(
                    "service {}: {}",
                    service.name,
                    bad.join("; ")
                )));
            }
        };
        let spawned = tokio::process::Command::new(&options.exe)
            .args(&args)
            .envs(options.environment.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) => {
                services.stop().await;
                return Err(RunError::Setup(format!(
                    "service {}: {error}",
                    service.name
                )));
            }
        };
        let mut line = String::new();
        let ready = match child.stdout.take() {
            Some(stdout) => {
                let mut reader = tokio::io::BufReader::new(stdout);
                tokio::time::timeout(Duration::from_secs(30), reader.read_line(&mut line))
                    .await
                    .is_ok_and(|read| read.is_ok_and(|bytes| bytes > 0))
            }
            None => false,
        };
        if let Some(pid) = child.id() {
            let listed = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(run_dir.join(SERVICE_PIDS))
                .and_then(|mut file| {
                    std::io::Write::write_all(&mut file, format!("{pid}\n").as_bytes())
                });
            if let Err(error) = listed {
                services.children.push(child);
                services.stop().await;
                return Err(RunError::Setup(format!("{}: {error}", run_dir.display())));
            }
        }
        services.children.push(child);
        if !ready {
            services.stop().await;
            return Err(RunError::Setup(format!(
                "service {} did not start (run `cutover {}` to see why)",
                service.name,
                args.join(" ")
            )));
        }
        let address = line
            .split_whitespace()
            .find(|word| word.starts_with("http://") || word.starts_with("https://"))
            .map(str::to_owned)
            .or_else(|| {
                line.split_whitespace()
                    .find(|word| {
                        word.contains(':')
                            && word
                                .rsplit(':')
                                .next()
                                .is_some_and(|port| port.parse::<u16>().is_ok())
                    })
                    .map(|word| format!("http://{word}"))
            })
            .unwrap_or_default();
        variables.set(&format!("services.{}", service.name), &address);
    }
    Ok(services)
}

/// Runs (or resumes) a run of `runbook`.
pub async fn run(
    runbook: &Runbook,
    mut variables: Variables,
    journal: &mut Journal,
    options: &RunOptions,
    progress: &dyn RunProgress,
) -> Result<(RunInfo, RunEnd), RunError> {
    let existing = if options.new_run {
        None
    } else {
        journal.open_run(&runbook.name)?
    };
    let run = match existing {
        Some(run) => {
            journal.append(&run.id, "", "run-resumed", &json!({}))?;
            run
        }
        None => {
            let started = chrono::Utc::now();
            let mut id = format!("{}-{}", runbook.name, started.format("%Y%m%d-%H%M%S"));
            let mut suffix = 1;
            while journal.run(&id)?.is_some() {
                suffix += 1;
                id = format!(
                    "{}-{}-{suffix}",
                    runbook.name,
                    started.format("%Y%m%d-%H%M%S")
                );
            }
            let dir = options.runs_dir.join(&id);
            let run = RunInfo {
                id: id.clone(),
                runbook: runbook.name.clone(),
                path: runbook.path.display().to_string(),
                dir: dir.display().to_string(),
                started_at: started.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                status: "running".to_owned(),
            };
            journal.create_run(&run)?;
            let steps: Vec<&str> = runbook
                .steps
                .iter()
                .map(|step| step.name.as_str())
                .collect();
            journal.append(
                &id,
                "",
                "run-started",
                &json!({"runbook": runbook.name, "path": run.path, "steps": steps}),
            )?;
            run
        }
    };
    std::fs::create_dir_all(&run.dir)
        .map_err(|error| RunError::Setup(format!("{}: {error}", run.dir)))?;
    variables.set("run.id", &run.id);
    variables.set("run.dir", &run.dir);
    variables.set("run.link", &run_link(&run, options));
    journal.set_status(&run.id, "running")?;
    let run_dir = PathBuf::from(&run.dir);
    let services = start_services(runbook, &mut variables, options, &run_dir).await?;
    let end = run_steps(runbook, &variables, journal, options, progress, &run).await;
    services.stop().await;
    let _ = std::fs::remove_file(run_dir.join(SERVICE_PIDS));
    let end = end?;
    let (status, event, detail) = match &end {
        RunEnd::Finished(status) => ("finished", "run-finished", json!({"checkpoint": status})),
        RunEnd::Waiting { step, missing } => (
            "waiting",
            "run-waiting",
            json!({"step": step, "missing": missing}),
        ),
        RunEnd::Failed { step, reason } => (
            "failed",
            "run-stopped",
            json!({"step": step, "reason": reason}),
        ),
        RunEnd::NeedsDecision { step, reason } => (
            "stopped",
            "run-stopped",
            json!({"step": step, "reason": reason}),
        ),
    };
    journal.append(&run.id, "", event, &detail)?;
    journal.set_status(&run.id, status)?;
    let run = journal.run(&run.id)?.unwrap_or(run);
    Ok((run, end))
}

async fn run_steps(
    runbook: &Runbook,
    variables: &Variables,
    journal: &mut Journal,
    options: &RunOptions,
    progress: &dyn RunProgress,
    run: &RunInfo,
) -> Result<RunEnd, RunError> {
    let mut last_checkpoint = None;
    for step in &runbook.steps {
        let records = journal.records(&run.id)?;
        let state = step_state(&records, &step.name);
        let rerun = options.rerun.contains(&step.name);
        if state == StepState::Finished && !rerun {
            if step.kind == Kind::Checkpoint {
                last_checkpoint = evidence(&records)
                    .get(&step.name)
                    .and_then(|evidence| evidence.get("status"))
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned);
            }
            continue;
        }
        if state == StepState::Interrupted && options.skip.contains(&step.name) {
            journal.append(
                &run.id,
                &step.name,
                "step-skipped",
                &json!({"outcome": "skipped", "summary": "marked done by the operator"}),
            )?;
            progress.step_ended(step, "skipped", "marked done by the operator");
            continue;
        }
        if state == StepState::Interrupted && !step.kind.idempotent() && !rerun {
            let reason = format!(
                "step {} ({}) was running when the run stopped and may have happened; run again with --rerun {} to repeat it, or --skip {} if it did",
                step.name,
                step.kind.name(),
                step.name,
                step.name
            );
            progress.step_ended(step, "stopped", &reason);
            return Ok(RunEnd::NeedsDecision {
                step: step.name.clone(),
                reason,
            });
        }
        if step.kind == Kind::Approval {
            let step = &step.expanded(variables).unwrap_or_else(|_| step.clone());
            match approval(step, journal, run, options, progress).await? {
                Approval::Given(evidence) => {
                    let summary = format!(
                        "approved by {}",
                        evidence["approved_by"].as_array().map_or(0, Vec::len)
                    );
                    journal.append(
                        &run.id,
                        &step.name,
                        "step-finished",
                        &json!({"outcome": "passed", "summary": summary, "evidence": evidence}),
                    )?;
                    progress.step_ended(step, "approved", &summary);
                    continue;
                }
                Approval::Rejected(rejection, evidence) => {
                    let who = rejection
                        .identity
                        .get("name")
                        .and_then(serde_json::Value::as_str)
                        .map_or(String::new(), |name| format!(" ({name})"));
                    let summary = format!(
                        "rejected by {}{who}{}",
                        rejection.by,
                        if rejection.note.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", rejection.note)
                        }
                    );
                    journal.append(
                        &run.id,
                        &step.name,
                        "step-failed",
                        &json!({"outcome": "rejected", "summary": summary, "evidence": evidence}),
                    )?;
                    progress.step_ended(step, "rejected", &summary);
                    return Ok(RunEnd::Failed {
                        step: step.name.clone(),
                        reason: summary,
                    });
                }
                Approval::Missing(missing) => {
                    progress.step_ended(
                        step,
                        "waiting",
                        &format!("waiting for {}", missing.join(", ")),
                    );
                    return Ok(RunEnd::Waiting {
                        step: step.name.clone(),
                        missing,
                    });
                }
            }
        }
        progress.step_started(step);
        journal.append(
            &run.id,
            &step.name,
            "step-started",
            &json!({"kind": step.kind.name(), "rerun": rerun}),
        )?;
        let records = journal.records(&run.id)?;
        let outcome = match step.expanded(variables) {
            Ok(step) => execute(&step, options, run, &records, progress, &runbook.secrets).await,
            Err(bad) => Outcome {
                outcome: "failed".to_owned(),
                failed: true,
                summary: bad.join("; "),
                evidence: json!({}),
                seconds: 0.0,
            },
        };
        let summary = redact_secrets(&outcome.summary, &runbook.secrets);
        let detail = json!({
            "outcome": outcome.outcome,
            "summary": summary,
            "evidence": outcome.evidence,
            "seconds": outcome.seconds,
        });
        let event = if outcome.failed {
            "step-failed"
        } else {
            "step-finished"
        };
        journal.append(&run.id, &step.name, event, &detail)?;
        progress.step_ended(step, &outcome.outcome, &summary);
        if step.kind == Kind::Checkpoint {
            last_checkpoint = Some(outcome.outcome.clone());
        }
        if outcome.failed {
            return Ok(RunEnd::Failed {
                step: step.name.clone(),
                reason: summary,
            });
        }
    }
    Ok(RunEnd::Finished(last_checkpoint))
}

/// Where an approval step stands.
enum Approval {
    /// Every approver approved: the step's evidence.
    Given(serde_json::Value),
    /// These approvers are still missing.
    Missing(Vec<String>),
    /// An approver rejected: who, the note, and the step's evidence.
    Rejected(Decision, serde_json::Value),
}

/// The approvals a step has, a rejection, or who is still missing; waits up
/// to `wait_for_approvals`, reading the journal again each second. The wait
/// is journaled (`waiting`, with who is missing and the link) when it
/// begins, and notified to the step's `to` targets, so that a console and
/// the approvers know at once.
async fn approval(
    step: &Step,
    journal: &mut Journal,
    run: &RunInfo,
    options: &RunOptions,
    progress: &dyn RunProgress,
) -> Result<Approval, RunError> {
    let deadline = tokio::time::Instant::now() + options.wait_for_approvals;
    let mut announced = false;
    loop {
        let records = journal.records(&run.id)?;
        let given = standing(&records, &step.name);
        let evidence = |given: &[Decision]| {
            json!({
                "approved_by": given.iter().filter(|decision| !decision.rejected).map(Decision::to_json).collect::<Vec<_>>(),
                "rejected_by": given.iter().filter(|decision| decision.rejected).map(Decision::to_json).collect::<Vec<_>>(),
                "message": step.message,
            })
        };
        if let Some(rejection) = given
            .iter()
            .find(|decision| decision.rejected && step.approvers.contains(&decision.by))
        {
            return Ok(Approval::Rejected(rejection.clone(), evidence(&given)));
        }
        let missing: Vec<String> = step
            .approvers
            .iter()
            .filter(|approver| !given.iter().any(|decision| decision.by == **approver))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(Approval::Given(evidence(&given)));
        }
        if !announced {
            announced = true;
            let link = format!("{}#step-{}", run_link(run, options), step.name);
            let mut detail = json!({"missing": missing, "link": link});
            if !step.to.is_empty() {
                let message = format!(
                    "{} waits for approval by {}{}: {link}",
                    step.name,
                    missing.join(", "),
                    step.message
                        .as_deref()
                        .map_or(String::new(), |message| format!(" ({message})")),
                );
                let mut notice = step.clone();
                notice.message = Some(message);
                let (_, failed, summary, _) = notify(&notice, run, progress).await;
                detail["notified"] = json!(summary);
                detail["notified_ok"] = json!(!failed);
            }
            journal.append(&run.id, &step.name, "waiting", &detail)?;
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(Approval::Missing(missing));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Where people look at a run: its page in the console when one is
/// configured (`RunOptions::console`), else its report file.
pub fn run_link(run: &RunInfo, options: &RunOptions) -> String {
    match &options.console {
        Some(console) => format!(
            "{}/runs/{}",
            console.trim_end_matches('/'),
            percent_encode(&run.id)
        ),
        None => PathBuf::from(&run.dir)
            .join("report.html")
            .display()
            .to_string(),
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

struct Outcome {
    outcome: String,
    failed: bool,
    summary: String,
    evidence: serde_json::Value,
    seconds: f64,
}

async fn execute(
    step: &Step,
    options: &RunOptions,
    run: &RunInfo,
    records: &[Record],
    progress: &dyn RunProgress,
    secrets: &[String],
) -> Outcome {
    let started = std::time::Instant::now();
    let (outcome, failed, summary, evidence) = match step.kind {
        Kind::Notify => notify(step, run, progress).await,
        Kind::Shell => shell(step.command.as_deref().unwrap_or_default(), options, run).await,
        Kind::Check => match (&step.command, &step.sql, &step.url) {
            (Some(command), _, _) => shell(command, options, run).await,
            (None, Some(sql), Some(url)) => sql_check(sql, url, step.expect.unwrap_or(0)).await,
            _ => (
                "failed".to_owned(),
                true,
                "nothing to check".to_owned(),
                json!({}),
            ),
        },
        Kind::WaitUntil => wait_until(step, records).await,
        Kind::Checkpoint => checkpoint(step, records),
        Kind::Approval => ("passed".to_owned(), false, String::new(), json!({})),
        _ => capability(step, options, run, secrets).await,
    };
    Outcome {
        outcome,
        failed,
        summary,
        evidence,
        seconds: started.elapsed().as_secs_f64(),
    }
}

type Done = (String, bool, String, serde_json::Value);

fn passed(summary: String, evidence: serde_json::Value) -> Done {
    ("passed".to_owned(), false, summary, evidence)
}

fn failed(summary: String, evidence: serde_json::Value) -> Done {
    ("failed".to_owned(), true, summary, evidence)
}

async fn notify(step: &Step, run: &RunInfo, progress: &dyn RunProgress) -> Done {
    let message = step.message.clone().unwrap_or_default();
    let at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut delivered = Vec::new();
    let mut problems = Vec::new();
    for target in &step.to {
        if target == "stdout" {
            progress.notify(&message);
            delivered.push(target.clone());
        } else if let Some(path) = target.strip_prefix("file:") {
            let line = format!("{at} [{}] {}: {message}\n", run.id, step.name);
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut file| {
                    std::io::Write::write_all(&mut file, line.as_bytes())?;
                    file.sync_data()
                });
            match written {
                Ok(()) => delivered.push(target.clone()),
                Err(error) => problems.push(format!("{target}: {error}")),
            }
        } else {
            let body = json!({"runbook": run.runbook, "run": run.id, "step": step.name, "message": message, "at": at});
            let answer = reqwest::Client::new()
                .post(target)
                .timeout(Duration::from_secs(30))
                .json(&body)
                .send()
                .await;
            let shown = cutover_db::redact(target);
            match answer {
                Ok(answer) if answer.status().is_success() => delivered.push(shown),
                Ok(answer) => {
                    problems.push(format!("{shown}: status {}", answer.status().as_u16()))
                }
                Err(_) => problems.push(format!("{shown}: unreachable")),
            }
        }
    }
    let evidence = json!({"message": message, "delivered": delivered, "problems": problems});
    if problems.is_empty() {
        passed(format!("sent to {}", delivered.join(", ")), evidence)
    } else {
        failed(problems.join("; "), evidence)
    }
}

async fn shell(command: &str, options: &RunOptions, run: &RunInfo) -> Done {
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .envs(options.environment.iter().map(|(key, value)| (key, value)))
        .env("CUTOVER_RUN_ID", &run.id)
        .env("CUTOVER_RUN_DIR", &run.dir)
        .stdin(Stdio::null())
        .output()
        .await;
    match output {
        // Output is not kept: a command may print anything, health data included.
        Ok(output) => {
            let code = output.status.code().unwrap_or(-1);
            let evidence = json!({"exit_code": code, "output_bytes": output.stdout.len() + output.stderr.len()});
            if output.status.success() {
                passed("exit code 0".to_owned(), evidence)
            } else {
                failed(format!("the command exited with code {code}"), evidence)
            }
        }
        Err(error) => failed(format!("the command could not start: {error}"), json!({})),
    }
}

async fn sql_check(sql: &str, url: &str, expect: i64) -> Done {
    let shown = cutover_db::redact(url);
    let result = async {
        let options = cutover_db::ConnectOptions {
            read_only: true,
            ..cutover_db::ConnectOptions::default()
        };
        let database = cutover_db::Database::connect_str(url, &options).await?;
        let (wrapped, type_name) = if url.starts_with("sqlite:") {
            (format!("SELECT CAST(({sql}) AS INTEGER)"), "INTEGER")
        } else {
            (format!("SELECT ({sql})::int8"), "int8")
        };
        let column = cutover_db::Column {
            name: "value".to_owned(),
            type_name: type_name.to_owned(),
            logical_type: Some(cutover_db::LogicalType::Integer),
            nullable: true,
            default: None,
        };
        let mut rows = database
            .query(&wrapped, vec![column], "the check's query")
            .await?;
        let value = match rows.next().await {
            Some(row) => match row?.first() {
                Some(cutover_db::Value::Int(value)) => Some(*value),
                _ => None,
            },
            None => None,
        };
        Ok::<_, cutover_db::Error>(value)
    }
    .await;
    match result {
        Ok(Some(value)) => {
            let evidence = json!({"database": shown, "value": value, "expect": expect});
            if value == expect {
                passed(format!("the query answered {value}"), evidence)
            } else {
                failed(
                    format!("the query answered {value}, not {expect}"),
                    evidence,
                )
            }
        }
        Ok(None) => failed(
            "the query answered no number".to_owned(),
            json!({"database": shown}),
        ),
        Err(error) => failed(error.to_string(), json!({"database": shown})),
    }
}

async fn wait_until(step: &Step, records: &[Record]) -> Done {
    let text = step.until.clone().unwrap_or_default();
    let first_start = records
        .iter()
        .find(|record| record.step == step.name && record.event == "step-started")
        .and_then(|record| chrono::DateTime::parse_from_rfc3339(&record.at).ok())
        .map_or_else(chrono::Utc::now, |at| at.with_timezone(&chrono::Utc));
    let target = match text.strip_prefix('+') {
        Some(duration) => match cutover_drain::parse_duration(duration) {
            Some(micros) => first_start + chrono::Duration::microseconds(micros),
            None => return failed(format!("{text}: not a duration"), json!({})),
        },
        None => match chrono::DateTime::parse_from_rfc3339(&text) {
            Ok(at) => at.with_timezone(&chrono::Utc),
            Err(_) => {
                return failed(
                    format!("{text}: not an RFC 3339 time or +DURATION"),
                    json!({}),
                );
            }
        },
    };
    let now = chrono::Utc::now();
    if target > now {
        let wait = (target - now).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
    }
    let until = target.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    passed(format!("waited until {until}"), json!({"until": until}))
}

fn checkpoint(step: &Step, records: &[Record]) -> Done {
    let evidence = evidence(records);
    let judge = |rules: &[String]| -> (bool, Vec<serde_json::Value>) {
        let mut all = true;
        let mut results = Vec::new();
        for text in rules {
            let result = Rule::parse(text).and_then(|rule| {
                let found = evidence
                    .get(&rule.step)
                    .ok_or_else(|| format!("{text}: step {} has no evidence yet", rule.step))?;
                rule.holds(found)
            });
            let (holds, error) = match result {
                Ok(holds) => (holds, None),
                Err(error) => (false, Some(error)),
            };
            all &= holds;
            results.push(json!({"rule": text, "holds": holds, "error": error}));
        }
        (all, results)
    };
    let (green, green_results) = judge(&step.green);
    let (yellow, yellow_results) = if step.yellow.is_empty() {
        (false, Vec::new())
    } else {
        judge(&step.yellow)
    };
    let status = if green {
        "green"
    } else if yellow {
        "yellow"
    } else {
        "red"
    };
    let stops = match step.stop_on.as_str() {
        "yellow" => status != "green",
        "never" => false,
        _ => status == "red",
    };
    let held: usize = green_results
        .iter()
        .filter(|result| result["holds"] == true)
        .count();
    let summary = format!(
        "{status}: {held} of {} green rules hold",
        green_results.len()
    );
    (
        status.to_owned(),
        stops,
        summary,
        json!({"status": status, "green": green_results, "yellow": yellow_results}),
    )
}

async fn capability(step: &Step, options: &RunOptions, run: &RunInfo, secrets: &[String]) -> Done {
    let Some(subcommand) = step.kind.subcommand() else {
        return failed("not a capability step".to_owned(), json!({}));
    };
    let output = tokio::process::Command::new(&options.exe)
        .args(subcommand.split(' '))
        .args(&step.args)
        .args(["--format", "json", "--quiet"])
        .envs(options.environment.iter().map(|(key, value)| (key, value)))
        .env("CUTOVER_RUN_ID", &run.id)
        .env("CUTOVER_RUN_DIR", &run.dir)
        .stdin(Stdio::null())
        .output()
        .await;
    let output = match output {
        Ok(output) => output,
        Err(error) => {
            return failed(
                format!("cutover {subcommand} could not start: {error}"),
                json!({}),
            );
        }
    };
    let code = output.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Several JSON documents (a repeated verify): the last is the result.
    let mut evidence = serde_json::Deserializer::from_str(&stdout)
        .into_iter::<serde_json::Value>()
        .filter_map(Result::ok)
        .last()
        .unwrap_or_else(|| json!({}));
    if step.kind == Kind::Diff {
        derive_diff_rates(&mut evidence);
        // Sample keys identify records: the journal and its reports keep counts only.
        if let Some(object) = evidence.as_object_mut() {
            object.remove("samples");
        }
    }
    if matches!(step.kind, Kind::Send | Kind::Verify) {
        derive_states(&mut evidence);
    }
    if matches!(step.kind, Kind::Refresh | Kind::VerifyRefresh) {
        derive_checks(&mut evidence);
    }
    if let Some(object) = evidence.as_object_mut() {
        object.insert("exit_code".to_owned(), json!(code));
    }
    let stderr = redact_secrets(&String::from_utf8_lossy(&output.stderr), secrets);
    let reason = stderr
        .lines()
        .find(|line| line.starts_with("error:"))
        .map(|line| line.trim_start_matches("error:").trim().to_owned())
        .unwrap_or_else(|| stderr.lines().last().unwrap_or_default().to_owned());
    match (code, step.kind) {
        (0, Kind::Diff) => passed("no differences".to_owned(), evidence),
        (0, _) => passed(summarize(step.kind, &evidence), evidence),
        (1, Kind::Diff) => {
            let summary = diff_summary(&evidence);
            ("differences".to_owned(), false, summary, evidence)
        }
        (1, _) => failed(
            if reason.is_empty() {
                format!("cutover {subcommand} found problems (exit code 1)")
            } else {
                reason
            },
            evidence,
        ),
        _ => failed(
            if reason.is_empty() {
                format!("cutover {subcommand} failed (exit code {code})")
            } else {
                reason
            },
            evidence,
        ),
    }
}

/// Adds `checks_passed`, `checks_failed` and `checks_skipped` from a
/// refresh's verification, for rules such as `verify.checks_failed == 0`.
fn derive_checks(evidence: &mut serde_json::Value) {
    let checks = evidence
        .pointer("/verification/checks")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default();
    let count = |status: &str| {
        checks
            .iter()
            .filter(|check| check["status"] == status)
            .count()
    };
    let (passed, failed, skipped) = (count("pass"), count("fail"), count("skipped"));
    if let Some(object) = evidence.as_object_mut() {
        object.insert("checks_passed".to_owned(), json!(passed));
        object.insert("checks_failed".to_owned(), json!(failed));
        object.insert("checks_skipped".to_owned(), json!(skipped));
    }
}

/// One line from a capability step's JSON answer (counts and names only).
fn summarize(kind: Kind, evidence: &serde_json::Value) -> String {
    let number = |pointer: &str| {
        evidence
            .pointer(pointer)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    match kind {
        Kind::Refresh | Kind::VerifyRefresh => {
            let tables = evidence["tables"].as_array().cloned().unwrap_or_default();
            let rows: u64 = tables
                .iter()
                .filter_map(|table| table["rows"].as_u64())
                .sum();
            let checks =
                number("/checks_passed") + number("/checks_failed") + number("/checks_skipped");
            let mut parts = Vec::new();
            if rows > 0 {
                parts.push(format!("{} tables, {rows} rows", tables.len()));
            }
            if checks > 0 {
                parts.push(format!(
                    "{} of {checks} checks passed, {} skipped",
                    number("/checks_passed"),
                    number("/checks_skipped")
                ));
            }
            if parts.is_empty() {
                "the policy checks out".to_owned()
            } else {
                parts.join("; ")
            }
        }
        Kind::Send | Kind::Verify => {
            let states = evidence["states"].as_object().cloned().unwrap_or_default();
            let parts: Vec<String> = states
                .iter()
                .filter(|(_, count)| count.as_u64().unwrap_or(0) > 0)
                .map(|(state, count)| format!("{count} {state}"))
                .collect();
            format!(
                "ledger: {}",
                if parts.is_empty() {
                    "empty".to_owned()
                } else {
                    parts.join(", ")
                }
            )
        }
        Kind::Reconcile => {
            let days = evidence["days"].as_object().map_or(0, serde_json::Map::len);
            let listed: u64 = evidence["days"]
                .as_object()
                .into_iter()
                .flat_map(|days| days.values())
                .map(|day| day["listed"].as_u64().unwrap_or(0))
                .sum();
            format!(
                "{} discrepancies; {listed} uploads listed over {days} {}",
                number("/discrepancies"),
                if days == 1 { "day" } else { "days" }
            )
        }
        Kind::Drain => {
            let versions = evidence["versions"].as_array().cloned().unwrap_or_default();
            let parts: Vec<String> = versions
                .iter()
                .map(|version| {
                    format!(
                        "{}: {} pending",
                        version["name"].as_str().unwrap_or("?"),
                        version["pending"].as_u64().unwrap_or(0)
                    )
                })
                .collect();
            if parts.is_empty() {
                "no timers".to_owned()
            } else {
                parts.join(", ")
            }
        }
        Kind::Hold if evidence.get("delivered").is_some() => format!(
            "{} of {} held calls delivered",
            number("/delivered") + number("/already_delivered"),
            number("/held")
        ),
        Kind::Hold => format!(
            "mode {} ({} calls held)",
            evidence["mode"].as_str().unwrap_or("?"),
            number("/held")
        ),
        _ => format!("cutover {} passed", kind.subcommand().unwrap_or("?")),
    }
}

/// Adds `states` (files per delivery state, every state present) from a
/// send's or verify's `ledger` pairs, for rules such as
/// `verify.states.missing == 0`.
fn derive_states(evidence: &mut serde_json::Value) {
    let mut states = serde_json::Map::new();
    for state in [
        "queued",
        "uploading",
        "acknowledged",
        "verified",
        "missing",
        "replayed",
        "undelivered",
        "failed",
    ] {
        states.insert(state.to_owned(), json!(0));
    }
    for pair in evidence["ledger"].as_array().into_iter().flatten() {
        if let (Some(state), Some(count)) = (pair[0].as_str(), pair[1].as_u64()) {
            states.insert(state.to_owned(), json!(count));
        }
    }
    if let Some(object) = evidence.as_object_mut() {
        object.insert("states".to_owned(), serde_json::Value::Object(states));
    }
}

/// Adds `missing_rate`, `extra_rate`, `changed_rate` and `difference_rate`
/// (fractions of the source's rows) to a diff's evidence.
fn derive_diff_rates(evidence: &mut serde_json::Value) {
    let Some(summary) = evidence.get("summary").cloned() else {
        return;
    };
    let number = |key: &str| {
        summary
            .get(key)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0)
    };
    let rows = number("source_rows").max(1.0);
    let (missing, extra, changed) = (number("missing"), number("extra"), number("changed"));
    if let Some(object) = evidence.as_object_mut() {
        object.insert("missing_rate".to_owned(), json!(missing / rows));
        object.insert("extra_rate".to_owned(), json!(extra / rows));
        object.insert("changed_rate".to_owned(), json!(changed / rows));
        object.insert(
            "difference_rate".to_owned(),
            json!((missing + extra + changed) / rows),
        );
    }
}

fn diff_summary(evidence: &serde_json::Value) -> String {
    let number = |key: &str| {
        evidence
            .pointer(&format!("/summary/{key}"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    format!(
        "{} missing, {} extra, {} changed of {} rows",
        number("missing"),
        number("extra"),
        number("changed"),
        number("source_rows")
    )
}

/// Where a runbook's runs keep their files by default: beside the journal.
pub fn default_runs_dir(journal: &Path) -> PathBuf {
    journal
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .map_or_else(
            || PathBuf::from("cutover-runs"),
            |parent| parent.join("cutover-runs"),
        )
}
