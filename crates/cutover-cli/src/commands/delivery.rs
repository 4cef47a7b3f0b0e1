//! What `send` and `verify` share: the token, the probes, and the
//! verify-then-replay rounds with their report.

use std::sync::Mutex;

use anyhow::bail;
use clap::Args;
use cutover_tus::{Expectation, Ledger, Pass, Probe, Replay, Uploader, Verifier};

use crate::progress::DeliveryBars;

/// How files are checked on the receiver and replayed when missing.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// How to check that a file is on the receiver (repeatable; every check must find it):
    /// tus (a HEAD on the upload: it still exists, offset = length),
    /// receipt[=URL] (a receipt with the file's size and SHA-256; default {origin}/receipts/{upload_id}, as cutover receive offers),
    /// status=URL (a JSON status endpoint; fields per --expect),
    /// data-exchange=URL (the data-exchange upload info endpoint, e.g. https://host/upload/info/{upload_id}).
    /// URLs may use {origin}, {upload_id} and {filename}.
    #[arg(long = "check", value_name = "CHECK", default_values = ["tus", "receipt"], verbatim_doc_comment)]
    pub checks: Vec<String>,

    /// For status checks: a JSON field (dotted; name[] for every element) and
    /// its accepted values, e.g. upload_status.status=Complete or
    /// file_info.size_bytes={size} (repeatable; values separated by |).
    #[arg(long = "expect", value_name = "PATH=VALUE")]
    pub expectations: Vec<String>,

    /// How many times a missing file is replayed (as a new upload) before it is flagged failed.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_replays: u32,
}

impl CheckArgs {
    /// The probes, or a clear error for a malformed one.
    pub fn probes(&self) -> anyhow::Result<Vec<Probe>> {
        let mut expectations = Vec::new();
        for text in &self.expectations {
            let Some(expectation) = Expectation::parse(text) else {
                bail!(
                    "--expect {text}: not PATH=VALUE\nhint: e.g. --expect upload_status.status=Complete"
                );
            };
            expectations.push(expectation);
        }
        let mut probes = Vec::new();
        for check in &self.checks {
            let (kind, template) = match check.split_once('=') {
                Some((kind, template)) => (kind, Some(template.to_owned())),
                None => (check.as_str(), None),
            };
            let needs_url = |template: Option<String>| match template {
                Some(template)
                    if template.starts_with("http://")
                        || template.starts_with("https://")
                        || template.starts_with("{origin}") =>
                {
                    Ok(template)
                }
                _ => Err(anyhow::anyhow!(
                    "--check {check}: name the endpoint's URL\nhint: e.g. --check {kind}=https://receiver.example/upload/info/{{upload_id}}"
                )),
            };
            probes.push(match kind {
                "tus" if template.is_none() => Probe::Tus,
                "receipt" => match template {
                    None => Probe::cutover_receipt(),
                    template => Probe::Receipt {
                        template: needs_url(template)?,
                    },
                },
                "status" => {
                    if expectations.is_empty() {
                        bail!(
                            "--check {check}: a status check needs at least one --expect\nhint: e.g. --expect status=Complete"
                        );
                    }
                    Probe::Status {
                        template: needs_url(template)?,
                        expectations: expectations.clone(),
                    }
                }
                "data-exchange" => {
                    let mut all = cutover_tus::verify::data_exchange_profile();
                    all.extend(expectations.iter().cloned());
                    Probe::Status {
                        template: needs_url(template)?,
                        expectations: all,
                    }
                }
                _ => bail!(
                    "--check {check}: not a check\nhint: use tus, receipt[=URL], status=URL or data-exchange=URL"
                ),
            });
        }
        if probes.is_empty() {
            bail!("name at least one --check");
        }
        Ok(probes)
    }
}

/// The bearer token from `variable` or the first line of `file`, if one
/// was named; never printed.
pub fn token(
    variable: Option<&str>,
    file: Option<&std::path::Path>,
) -> anyhow::Result<Option<String>> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .map_err(|error| anyhow::anyhow!("{}: {error}", file.display()))?;
        return match text
            .lines()
            .next()
            .map(str::trim)
            .filter(|token| !token.is_empty())
        {
            Some(token) => Ok(Some(token.to_owned())),
            None => bail!("{}: the token file is empty", file.display()),
        };
    }
    let Some(variable) = variable else {
        return Ok(None);
    };
    match std::env::var(variable)
        .ok()
        .filter(|token| !token.is_empty())
    {
        Some(token) => Ok(Some(token)),
        None => bail!(
            "{variable} is not set\nhint: put the receiver's token in it, or leave out --token-env"
        ),
    }
}

/// One round of verification and what its replays did.
#[derive(Debug, Default)]
pub struct Round {
    pub pass: Pass,
    pub replays: Vec<(String, Replay)>,
}

/// Verifies, replays what is missing, and verifies the replays, until
/// nothing is missing or nothing more can be replayed.
pub async fn verify_and_replay(
    uploader: &Uploader,
    verifier: &Verifier,
    ledger: &Mutex<Ledger>,
    checks: &CheckArgs,
    jobs: usize,
    quiet: bool,
) -> anyhow::Result<Vec<Round>> {
    let bars = DeliveryBars::new(quiet, 0, "replaying");
    let rounds = rounds(uploader, verifier, ledger, checks, jobs, &bars).await;
    bars.finish();
    rounds
}

async fn rounds(
    uploader: &Uploader,
    verifier: &Verifier,
    ledger: &Mutex<Ledger>,
    checks: &CheckArgs,
    jobs: usize,
    progress: &dyn cutover_tus::DeliveryProgress,
) -> anyhow::Result<Vec<Round>> {
    let mut rounds = Vec::new();
    loop {
        let pass = cutover_tus::deliver::verify(verifier, ledger, jobs).await?;
        if pass.missing.is_empty() {
            rounds.push(Round {
                pass,
                replays: Vec::new(),
            });
            break;
        }
        let replays = cutover_tus::deliver::replay(
            uploader,
            verifier,
            ledger,
            checks.max_replays,
            jobs,
            progress,
        )
        .await?;
        let sent_again = replays
            .iter()
            .any(|(_, outcome)| matches!(outcome, Replay::Replayed(_)));
        rounds.push(Round { pass, replays });
        if !sent_again {
            // Nothing new on the receiver: another pass would find the same.
            break;
        }
    }
    Ok(rounds)
}

/// The rounds in words.
pub fn describe_rounds(rounds: &[Round]) -> String {
    let mut text = String::new();
    for (number, round) in rounds.iter().enumerate() {
        let pass = &round.pass;
        text.push_str(&format!(
            "verification {}: {} checked, {} verified, {} missing, {} undecided\n",
            number + 1,
            pass.checked,
            pass.verified,
            pass.missing.len(),
            pass.undecided.len()
        ));
        for (file, reason) in &pass.missing {
            text.push_str(&format!("  missing {file}: {reason}\n"));
        }
        for (file, reason) in pass.undecided.iter().take(20) {
            text.push_str(&format!("  undecided {file}: {reason}\n"));
        }
        if pass.undecided.len() > 20 {
            text.push_str(&format!(
                "  … and {} more undecided\n",
                pass.undecided.len() - 20
            ));
        }
        for (file, outcome) in &round.replays {
            let what = match outcome {
                Replay::Replayed(_) => "replayed as a new upload".to_owned(),
                Replay::Adopted(id) => {
                    format!("the receiver already holds it (upload {id}); not sent again")
                }
                Replay::GaveUp(times) => format!(
                    "still missing after {times} {}: failed",
                    if *times == 1 { "replay" } else { "replays" }
                ),
                Replay::Failed(reason) => format!("replay failed: {reason}"),
            };
            text.push_str(&format!("  {file}: {what}\n"));
        }
    }
    text
}

/// The rounds as JSON.
pub fn rounds_json(rounds: &[Round]) -> serde_json::Value {
    serde_json::Value::Array(
        rounds
            .iter()
            .map(|round| {
                let pass = &round.pass;
                serde_json::json!({
                    "checked": pass.checked,
                    "verified": pass.verified,
                    "missing": pass.missing.iter().map(|(file, reason)| serde_json::json!({"file": file, "reason": reason})).collect::<Vec<_>>(),
                    "undecided": pass.undecided.iter().map(|(file, reason)| serde_json::json!({"file": file, "reason": reason})).collect::<Vec<_>>(),
                    "replays": round.replays.iter().map(|(file, outcome)| {
                        let (what, detail) = match outcome {
                            Replay::Replayed(_) => ("replayed", String::new()),
                            Replay::Adopted(id) => ("adopted", id.clone()),
                            Replay::GaveUp(times) => ("gave-up", times.to_string()),
                            Replay::Failed(reason) => ("failed", reason.clone()),
                        };
                        serde_json::json!({"file": file, "outcome": what, "detail": detail})
                    }).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// Whether the ledger holds anything missing or failed.
pub fn ledger_has_problems(counts: &[(String, u64)]) -> bool {
    counts
        .iter()
        .any(|(state, count)| *count > 0 && (state == "missing" || state == "failed"))
}

/// Files per state, as `3 verified, 1 failed`.
pub fn describe_counts(counts: &[(String, u64)]) -> String {
    counts
        .iter()
        .map(|(state, count)| format!("{count} {state}"))
        .collect::<Vec<_>>()
        .join(", ")
}
