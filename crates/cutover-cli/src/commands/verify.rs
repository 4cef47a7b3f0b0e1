//! `cutover verify`: independent proof that every acknowledged file is on
//! the receiver, with replay of what is missing; once or on a schedule.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use cutover_tus::{Ledger, Uploader, Verifier};

use crate::Outcome;
use crate::cli::{Format, GlobalArgs};
use crate::commands::delivery::{self, CheckArgs, SignInArgs};
use crate::commands::send::ProtocolArg;
use crate::output::{print, print_json};

/// Check that every acknowledged file is really on the receiver, and replay what is not.
///
/// For each file the ledger has as acknowledged (or replayed), every --check
/// asks the receiver independently of the upload's own answer: a tus HEAD,
/// cutover receive's receipt (size and SHA-256 must be the file's), or a
/// JSON status endpoint with expected fields. A file read back whole becomes
/// `verified`; a file any check cannot find becomes `missing` and is
/// replayed as a new upload (replay_of = the lost upload's id) to the
/// endpoint it was first sent to, up to --max-replays times, then `failed`.
/// A check that gets no answer leaves the file as it was. With a
/// data-exchange check, a file the service knows but has not completed or
/// delivered yet is asked about again until --settle has passed since it
/// was acknowledged; then one held but never delivered is `undelivered`
/// (reported, not replayed), and a later verification looks again.
///
/// With --every, verification repeats on that schedule (until --passes, or
/// until interrupted). Exit code 1 if anything is missing, undelivered or failed.
///
/// Examples:
///   cutover verify --ledger cutover-ledger.db
///   cutover verify --every 15m --check tus --check data-exchange=https://dex.example/upload/info/{upload_id}
///   cutover verify --protocol ietf       (replays by the IETF draft, as `send --protocol ietf` sent)
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct VerifyArgs {
    /// The ledger file.
    #[arg(long, value_name = "FILE", default_value = "cutover-ledger.db")]
    pub ledger: PathBuf,

    #[command(flatten)]
    pub sign_in: SignInArgs,

    /// Files checked (and replayed) at a time.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub jobs: usize,

    /// Bytes per PATCH when replaying.
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
    pub chunk_size: usize,

    /// The protocol replays are sent by: tus, or ietf (the IETF
    /// resumable-upload draft), as the files were sent.
    #[arg(long, value_enum, value_name = "PROTOCOL", default_value_t = ProtocolArg::Tus)]
    pub protocol: ProtocolArg,

    /// Verify again on this schedule (e.g. 15m, 1h).
    #[arg(long, value_name = "DURATION")]
    pub every: Option<String>,

    /// With --every: stop after this many passes.
    #[arg(long, value_name = "N", requires = "every")]
    pub passes: Option<u64>,

    #[command(flatten)]
    pub checks: CheckArgs,
}

pub async fn run(args: VerifyArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    if !args.ledger.exists() {
        bail!(
            "{}: no ledger here\nhint: name the ledger `cutover send` wrote with --ledger",
            args.ledger.display()
        );
    }
    let every = match &args.every {
        None => None,
        Some(text) => match cutover_drain::parse_duration(text) {
            Some(micros) if micros > 0 => Some(Duration::from_micros(micros as u64)),
            _ => bail!("--every {text}: not a duration\nhint: write e.g. 15m or 1h"),
        },
    };
    let probes = args.checks.probes()?;
    args.checks.settle()?;
    let auth = args.sign_in.auth().await?;
    let verifier = Verifier::new(probes, auth.clone()).map_err(anyhow::Error::msg)?;
    // Replays go to the endpoint each file was first sent to; this one only
    // carries the client, sign-in and chunk size.
    let uploader = Uploader::new("http://localhost/", auth, args.chunk_size)?
        .with_protocol(args.protocol.into());
    let ledger = Mutex::new(Ledger::open(&args.ledger)?);
    let mut pass_number = 0u64;
    loop {
        pass_number += 1;
        let rounds = delivery::verify_and_replay(
            &uploader,
            &verifier,
            &ledger,
            &args.checks,
            args.jobs,
            global.quiet,
        )
        .await?;
        let counts = ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .counts()?;
        let at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        match global.format {
            Format::Json => print_json(&serde_json::json!({
                "pass": pass_number,
                "at": at,
                "rounds": delivery::rounds_json(&rounds),
                "ledger": counts,
            }))?,
            Format::Text => {
                let mut text = format!("pass {pass_number} at {at}\n");
                text.push_str(&delivery::describe_rounds(&rounds));
                text.push_str(&format!(
                    "ledger {}: {}\n",
                    args.ledger.display(),
                    delivery::describe_counts(&counts)
                ));
                print(&text)?;
            }
        }
        let done = match (every, args.passes) {
            (None, _) => true,
            (Some(_), Some(passes)) => pass_number >= passes,
            (Some(_), None) => false,
        };
        if done {
            return Ok(if delivery::ledger_has_problems(&counts) {
                Outcome::Differences
            } else {
                Outcome::Success
            });
        }
        if let Some(every) = every {
            tokio::time::sleep(every).await;
        }
    }
}
