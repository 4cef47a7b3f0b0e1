//! What `send`, `verify` and `ledger reconcile` share: the sign-in, the
//! probes, and the verify-then-replay rounds with their report.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use cutover_tus::{
    Auth, Expectation, Grant, Ledger, Pass, Probe, Replay, SignIn, Uploader, Verifier,
};

use crate::progress::DeliveryBars;

/// How files are checked on the receiver and replayed when missing.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// How to check that a file is on the receiver (repeatable; every check must find it):
    /// tus (a HEAD on the upload: it still exists, offset = length),
    /// receipt[=URL] (a receipt with the file's size and SHA-256; default {origin}/receipts/{upload_id}, as cutover receive offers),
    /// status=URL (a JSON status endpoint; fields per --expect),
    /// data-exchange=URL (the data-exchange upload info endpoint, e.g. https://host/upload/info/{upload_id}:
    ///   unknown is missing; not complete or not delivered yet is asked again until --settle has passed).
    /// URLs may use {origin}, {upload_id} and {filename}.
    #[arg(long = "check", value_name = "CHECK", default_values = ["tus", "receipt"], verbatim_doc_comment)]
    pub checks: Vec<String>,

    /// How long after its acknowledgement a file may take to settle on the receiver (complete and
    /// delivered onwards) before it is judged: then one not whole is missing (and replayed), one held
    /// but never delivered is undelivered. Default 2m with a data-exchange check, else 0.
    #[arg(long, value_name = "DURATION")]
    pub settle: Option<String>,

    /// For the data-exchange check: a delivery target that must succeed, e.g. edav (repeatable;
    /// without it, every target that appears must).
    #[arg(long = "expect-target", value_name = "NAME")]
    pub expect_targets: Vec<String>,

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
                "data-exchange" => Probe::DataExchange {
                    template: needs_url(template)?,
                    targets: self.expect_targets.clone(),
                    expectations: expectations.clone(),
                },
                _ => bail!(
                    "--check {check}: not a check\nhint: use tus, receipt[=URL], status=URL or data-exchange=URL"
                ),
            });
        }
        if probes.is_empty() {
            bail!("name at least one --check");
        }
        if !self.expect_targets.is_empty()
            && !probes
                .iter()
                .any(|probe| matches!(probe, Probe::DataExchange { .. }))
        {
            bail!(
                "--expect-target is for the data-exchange check\nhint: add --check data-exchange=URL"
            );
        }
        Ok(probes)
    }

    /// Whether a data-exchange check is among the checks.
    pub fn data_exchange(&self) -> bool {
        self.checks
            .iter()
            .any(|check| check.starts_with("data-exchange"))
    }

    /// The settling time: --settle, or the default for the checks given.
    pub fn settle(&self) -> anyhow::Result<Duration> {
        match &self.settle {
            Some(text) => match cutover_drain::parse_duration(text) {
                Some(micros) if micros >= 0 => Ok(Duration::from_micros(micros as u64)),
                _ => bail!("--settle {text}: not a duration\nhint: write e.g. 2m or 90s"),
            },
            None if self.data_exchange() => Ok(Duration::from_secs(120)),
            None => Ok(Duration::ZERO),
        }
    }
}

/// How cutover authorizes itself to the receiver: a fixed token, or a
/// sign-in kept fresh for as long as the command runs.
#[derive(Debug, Args)]
pub struct SignInArgs {
    /// The environment variable holding a fixed bearer token.
    #[arg(long, value_name = "VAR", conflicts_with_all = ["token_file", "login"])]
    pub token_env: Option<String>,

    /// A file holding a fixed bearer token (its first line).
    #[arg(long, value_name = "FILE", conflicts_with = "login")]
    pub token_file: Option<PathBuf>,

    /// Sign in at this token endpoint (e.g. https://dex.example/oauth) with --username and
    /// --password-env (a password grant), or --client-id and --client-secret-env (client
    /// credentials). The token is refreshed at URL/refresh before it expires, renewed by a new
    /// sign-in when that is refused, and once more after any 401.
    #[arg(long, value_name = "URL")]
    pub login: Option<String>,

    /// The account to sign in as (with --login).
    #[arg(
        long,
        value_name = "NAME",
        requires = "login",
        conflicts_with = "client_id"
    )]
    pub username: Option<String>,

    /// The environment variable holding the account's password (never printed).
    #[arg(long, value_name = "VAR", requires = "username")]
    pub password_env: Option<String>,

    /// The OAuth 2.0 client id (with --login as the token URL).
    #[arg(long, value_name = "ID", requires = "login")]
    pub client_id: Option<String>,

    /// The environment variable holding the client secret (never printed).
    #[arg(long, value_name = "VAR", requires = "client_id")]
    pub client_secret_env: Option<String>,
}

/// The value of the environment variable `variable`, named by `flag`.
fn secret_from(flag: &str, variable: &str) -> anyhow::Result<String> {
    match std::env::var(variable)
        .ok()
        .filter(|value| !value.is_empty())
    {
        Some(value) => Ok(value),
        None => bail!(
            "{variable} is not set\nhint: {flag} names the environment variable that holds it"
        ),
    }
}

impl SignInArgs {
    /// The authorization, signed in already where a login was given (so
    /// wrong credentials stop the command before anything is sent).
    pub async fn auth(&self) -> anyhow::Result<Auth> {
        let Some(login) = &self.login else {
            return Ok(token(self.token_env.as_deref(), self.token_file.as_deref())?.into());
        };
        if !(login.starts_with("https://") || login.starts_with("http://")) {
            bail!(
                "--login {}: not an http(s) URL\nhint: name the token endpoint, e.g. https://dex.example/oauth",
                cutover_db::redact(login)
            );
        }
        let grant = match (
            &self.username,
            &self.password_env,
            &self.client_id,
            &self.client_secret_env,
        ) {
            (Some(username), Some(variable), _, _) => Grant::Password {
                username: username.clone(),
                password: secret_from("--password-env", variable)?,
            },
            (_, _, Some(client_id), Some(variable)) => Grant::ClientCredentials {
                client_id: client_id.clone(),
                client_secret: secret_from("--client-secret-env", variable)?,
            },
            _ => bail!(
                "--login needs an account\nhint: add --username NAME --password-env VAR, or --client-id ID --client-secret-env VAR"
            ),
        };
        let hint = match &grant {
            Grant::Password { .. } => format!(
                "check --username and the password in {}",
                self.password_env.as_deref().unwrap_or_default()
            ),
            Grant::ClientCredentials { .. } => format!(
                "check --client-id and the secret in {}",
                self.client_secret_env.as_deref().unwrap_or_default()
            ),
        };
        let url = cutover_db::redact(login);
        Auth::sign_in(SignIn {
            url: login.clone(),
            grant,
        })
        .await
        .map_err(|error| {
            let hint = match error {
                cutover_tus::AuthError::Refused(_) => hint,
                cutover_tus::AuthError::NotTokenEndpoint(_) => {
                    "--login names the token endpoint, e.g. https://dex.example/oauth".to_owned()
                }
                _ => "is the login URL right, and reachable from here?".to_owned(),
            };
            anyhow::anyhow!("signing in at {url}: {error}\nhint: {hint}")
        })
    }
}

/// The bearer token from `variable` or the first line of `file`, if one
/// was named; never printed.
fn token(variable: Option<&str>, file: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
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

/// A delivery error in words, with what to do about a refused sign-in.
pub fn delivery_error(error: cutover_tus::DeliveryError) -> anyhow::Error {
    match error {
        cutover_tus::DeliveryError::Auth(error) => anyhow::anyhow!(
            "{error}; stopped, nothing more sent or replayed\nhint: check that the account may upload and read status; the ledger keeps what was done, and a rerun continues"
        ),
        error => error.into(),
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
    let settle = checks.settle()?;
    let bars = DeliveryBars::new(quiet, 0, "verifying");
    let rounds = rounds(uploader, verifier, ledger, checks, settle, jobs, &bars).await;
    bars.finish();
    rounds.map_err(delivery_error)
}

async fn rounds(
    uploader: &Uploader,
    verifier: &Verifier,
    ledger: &Mutex<Ledger>,
    checks: &CheckArgs,
    settle: Duration,
    jobs: usize,
    progress: &dyn cutover_tus::DeliveryProgress,
) -> Result<Vec<Round>, cutover_tus::DeliveryError> {
    let mut rounds = Vec::new();
    loop {
        let pass = cutover_tus::deliver::verify(verifier, ledger, jobs, settle, progress).await?;
        // Every file the ledger has as missing: this pass's, and any an
        // earlier run left so (a replay cut short, a final upload whose
        // answer was lost).
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
            "verification {}: {} checked, {} verified, {} missing, {} undelivered, {} undecided\n",
            number + 1,
            pass.checked,
            pass.verified,
            pass.missing.len(),
            pass.undelivered.len(),
            pass.undecided.len()
        ));
        for (file, reason) in &pass.missing {
            text.push_str(&format!("  missing {file}: {reason}\n"));
        }
        for (file, reason) in &pass.undelivered {
            text.push_str(&format!("  undelivered at the receiver {file}: {reason}\n"));
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
                    "undelivered": pass.undelivered.iter().map(|(file, reason)| serde_json::json!({"file": file, "reason": reason})).collect::<Vec<_>>(),
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

/// Whether the ledger holds anything missing, undelivered or failed.
pub fn ledger_has_problems(counts: &[(String, u64)]) -> bool {
    counts.iter().any(|(state, count)| {
        *count > 0
            && cutover_tus::State::ALL
                .iter()
                .any(|known| known.name() == state && known.is_problem())
    })
}

/// Files per state, as `3 verified, 1 failed`.
pub fn describe_counts(counts: &[(String, u64)]) -> String {
    counts
        .iter()
        .map(|(state, count)| format!("{count} {state}"))
        .collect::<Vec<_>>()
        .join(", ")
}
