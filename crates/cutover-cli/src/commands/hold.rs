//! `cutover hold`: a durable hold-and-replay proxy for a migration window.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use cutover_hold::{HoldConfig, Journal, Mode, ReplayOptions};

use crate::Outcome;
use crate::cli::{Format, GlobalArgs};
use crate::output::{print, print_json};

/// Hold API calls during a migration window, and replay them afterwards.
///
/// `cutover hold --listen ADDR --journal DIR --backend URL` is an HTTP reverse
/// proxy. In forward mode (the default) it passes every call to the backend.
/// In hold mode it appends each call (method, path, headers without
/// hop-by-hop ones and those named by --strip-header, body) to the journal
/// in DIR, syncs it to disk (calls arriving together share one sync), and
/// only then answers 202 Accepted with {"hold_id": N}. --hold-path limits
/// holding to some paths (e.g. the launch APIs); other calls are forwarded.
/// A body over --max-body is refused with 413 and nothing is journaled. A
/// journal directory that cannot be written and synced stops the start.
///
/// The mode is switched with `cutover hold mode hold|forward --admin URL`, or
/// POST /_cutover/mode with the body hold or forward; GET /_cutover/status
/// shows the mode and the calls held. Both need the bearer token from the
/// environment variable named by --admin-token-env (default CUTOVER_HOLD_TOKEN).
///
/// `cutover hold replay --journal DIR --to URL` sends the held calls in
/// arrival order to the new backend. Each outcome is recorded durably: a
/// rerun never resends a call that was answered 2xx, 4xx answers are
/// recorded and listed (not retried), and a run of 5xx answers or refused
/// connections stops the replay so an operator can look.
///
/// Examples:
///   CUTOVER_HOLD_TOKEN=… cutover hold --listen 0.0.0.0:8080 --journal /var/lib/hold --backend http://old:8080 \
///       --hold-path /api/launchPatient --hold-path /api/relaunchPatient --hold-path /api/systemLaunch
///   CUTOVER_HOLD_TOKEN=… cutover hold mode hold --admin http://proxy:8080
///   cutover hold replay --journal /var/lib/hold --to http://new:8080 --rate 200 --idempotency-header Idempotency-Key
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct HoldArgs {
    #[command(subcommand)]
    pub command: Option<HoldCommand>,

    /// The address to listen on, e.g. 127.0.0.1:8080 (port 0: any free port; the address is printed).
    #[arg(long, value_name = "ADDR", required = true)]
    pub listen: Option<String>,

    /// The journal directory.
    #[arg(long, value_name = "DIR", required = true)]
    pub journal: Option<PathBuf>,

    /// The current backend's base URL (forward mode).
    #[arg(long, value_name = "URL", required = true)]
    pub backend: Option<String>,

    /// The mode at start.
    #[arg(long, value_enum, default_value_t = ModeArg::Forward)]
    pub mode: ModeArg,

    /// Hold only calls to this path (repeatable); others are always forwarded.
    #[arg(long = "hold-path", value_name = "PATH")]
    pub paths: Vec<String>,

    /// The largest body accepted, in bytes (or with K, M suffix).
    #[arg(long, value_name = "SIZE", default_value = "10M")]
    pub max_body: String,

    /// A header never journaled (repeatable), e.g. Authorization.
    #[arg(long = "strip-header", value_name = "NAME")]
    pub strip_headers: Vec<String>,

    /// The environment variable holding the admin token.
    #[arg(long, value_name = "VAR", default_value = "CUTOVER_HOLD_TOKEN")]
    pub admin_token_env: String,
}

#[derive(Debug, Subcommand)]
pub enum HoldCommand {
    /// Replay the held calls, in arrival order, to the new backend.
    Replay(ReplayArgs),
    /// Switch a running hold between hold and forward mode.
    Mode(ModeArgs),
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The journal directory.
    #[arg(long, value_name = "DIR")]
    pub journal: PathBuf,
    /// The new backend's base URL.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Calls per second at the most (0: as fast as the backend answers).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub rate: u32,
    /// A header carrying each call's hold id, for the backend to deduplicate on.
    #[arg(long, value_name = "NAME")]
    pub idempotency_header: Option<String>,
    /// Stop after this many failed attempts (5xx or no answer) in a row.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub stop_after_failures: u32,
}

#[derive(Debug, Args)]
pub struct ModeArgs {
    /// The mode to switch to.
    #[arg(value_enum)]
    pub mode: ModeArg,
    /// The running hold's base URL.
    #[arg(long, value_name = "URL")]
    pub admin: String,
    /// The environment variable holding the admin token.
    #[arg(long, value_name = "VAR", default_value = "CUTOVER_HOLD_TOKEN")]
    pub admin_token_env: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Pass calls to the backend.
    Forward,
    /// Journal calls and answer 202.
    Hold,
}

fn size(text: &str) -> anyhow::Result<usize> {
    let text = text.trim();
    let (digits, factor) = match text.char_indices().last() {
        Some((at, 'K' | 'k')) => (&text[..at], 1024),
        Some((at, 'M' | 'm')) => (&text[..at], 1024 * 1024),
        _ => (text, 1),
    };
    match digits.parse::<usize>() {
        Ok(number) => Ok(number.saturating_mul(factor)),
        Err(_) => bail!("--max-body {text}: not a size\nhint: write bytes, or e.g. 512K or 10M"),
    }
}

fn token(variable: &str) -> Option<String> {
    std::env::var(variable)
        .ok()
        .filter(|token| !token.is_empty())
}

pub async fn run(args: HoldArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    match args.command {
        Some(HoldCommand::Replay(replay)) => return run_replay(replay, global).await,
        Some(HoldCommand::Mode(mode)) => return run_mode(mode, global).await,
        None => {}
    }
    let (Some(listen), Some(journal), Some(backend)) = (args.listen, args.journal, args.backend)
    else {
        bail!("--listen, --journal and --backend are required");
    };
    let config = HoldConfig {
        backend,
        mode: match args.mode {
            ModeArg::Forward => Mode::Forward,
            ModeArg::Hold => Mode::Hold,
        },
        admin_token: token(&args.admin_token_env),
        paths: args.paths,
        max_body: size(&args.max_body)?,
        strip_headers: args
            .strip_headers
            .iter()
            .map(|name| name.to_ascii_lowercase())
            .collect(),
    };
    let journal = Journal::open(&journal)?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let address = listener.local_addr()?;
    let mode = if config.mode == Mode::Hold {
        "hold"
    } else {
        "forward"
    };
    match global.format {
        Format::Json => print_json(&serde_json::json!({
            "listening": address.to_string(),
            "mode": mode,
            "journal": journal.directory(),
            "held": journal.held(),
        }))?,
        Format::Text => print(&format!(
            "listening on {address} in {mode} mode; journal {} ({} calls held){}\n",
            journal.directory().display(),
            journal.held(),
            if config.admin_token.is_some() {
                ""
            } else {
                "; admin calls disabled (no token)"
            }
        ))?,
    }
    cutover_hold::serve(listener, journal, config).await?;
    Ok(Outcome::Success)
}

async fn run_replay(args: ReplayArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let report = cutover_hold::replay(
        &args.journal,
        &ReplayOptions {
            to: args.to.clone(),
            rate: args.rate,
            idempotency_header: args.idempotency_header,
            stop_after_failures: args.stop_after_failures,
        },
    )
    .await?;
    match global.format {
        Format::Json => print_json(&report)?,
        Format::Text => {
            let mut text = format!(
                "replayed {} held calls to {}: {} delivered now, {} delivered before, {} rejected\n",
                report.held,
                cutover_db::redact(&args.to),
                report.delivered,
                report.already_delivered,
                report.rejected.len()
            );
            for (id, status) in &report.rejected {
                text.push_str(&format!("  hold id {id}: status {status}\n"));
            }
            if let Some(reason) = &report.stopped {
                text.push_str(&format!("stopped: {reason}\n"));
            }
            print(&text)?;
        }
    }
    Ok(if report.stopped.is_none() && report.rejected.is_empty() {
        Outcome::Success
    } else {
        Outcome::Differences
    })
}

async fn run_mode(args: ModeArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let Some(token) = token(&args.admin_token_env) else {
        bail!(
            "{} is not set\nhint: the admin token of the running hold goes in that variable",
            args.admin_token_env
        );
    };
    let mode = match args.mode {
        ModeArg::Forward => "forward",
        ModeArg::Hold => "hold",
    };
    let answer = reqwest::Client::new()
        .post(format!(
            "{}/_cutover/mode",
            args.admin.trim_end_matches('/')
        ))
        .bearer_auth(token)
        .body(mode)
        .send()
        .await
        .with_context(|| format!("reaching {}", cutover_db::redact(&args.admin)))?;
    let status = answer.status();
    let body: serde_json::Value = answer
        .bytes()
        .await
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    if !status.is_success() {
        bail!(
            "{} refused the switch ({status}): {}",
            cutover_db::redact(&args.admin),
            body["error"].as_str().unwrap_or("no reason given")
        );
    }
    match global.format {
        Format::Json => print_json(&body)?,
        Format::Text => print(&format!(
            "{} is in {} mode ({} calls held)\n",
            cutover_db::redact(&args.admin),
            body["mode"].as_str().unwrap_or(mode),
            body["held"]
        ))?,
    }
    Ok(Outcome::Success)
}
