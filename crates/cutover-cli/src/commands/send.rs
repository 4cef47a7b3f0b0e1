//! `cutover send`: tus uploads recorded in a durable ledger, then verified
//! on the receiver and replayed where missing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, bail};
use clap::Args;
use cutover_tus::{FileToSend, Ledger, Protocol, Sent, Uploader, Verifier};

use crate::Outcome;
use crate::cli::{Format, GlobalArgs};
use crate::commands::delivery::{self, CheckArgs, SignInArgs};
use crate::output::{print, print_json};
use crate::progress::DeliveryBars;

/// Send files with tus 1.0 (or the IETF draft), record each in a durable ledger, and prove each arrived.
///
/// Each file (a directory's files, in name order) is recorded in the ledger
/// (--ledger, default cutover-ledger.db here: SQLite, synced at every state
/// change) with its size, SHA-256 and metadata, then uploaded, --jobs at a
/// time: created with Upload-Length and Upload-Metadata (always filename,
/// plus --meta pairs and any sidecar FILE.meta.json), sent in --chunk-size
/// PATCHes each with an Upload-Checksum (sha256), retried with backoff and
/// resumed from the receiver's offset after any interruption. A file that
/// changes while it is sent fails alone.
///
/// The receiver's 204 only makes a file `acknowledged`. Then every --check
/// asks the receiver independently; a file read back whole is `verified`; a
/// file any check cannot find is `missing` and is replayed as a new upload
/// (metadata replay_of = the lost upload's id; never by resuming the old
/// URL, which sends nothing), up to --max-replays times, then `failed`. If
/// the receiver can show it already holds the same content (cutover
/// receive's receipts by checksum), that copy is adopted instead.
///
/// With a data-exchange check, every file's manifest is checked before
/// anything is sent (the service's required keys; received_filename is the
/// file's name unless given), and a file the service does not show complete
/// and delivered at once is asked about again until --settle has passed:
/// only a file the service does not hold is replayed, and one it holds but
/// never delivered onwards is `undelivered` (not replayed). A manifest the
/// service refuses (400 with validation_errors) fails that file with its
/// reasons, without retries.
///
/// With --parallel-parts N, a file of at least N chunks goes as N partial
/// uploads at once, concatenated by the receiver into one upload, where it
/// offers concatenation (else as one stream): faster over a link with
/// latency. The parts' URLs are in the ledger, so a rerun resumes each part;
/// the file's SHA-256 is read in file order meanwhile; only the final
/// upload is the file's (a part is never counted as a delivered file).
///
/// With --protocol ietf, files go by the IETF "Resumable Uploads for
/// HTTP" draft (interop version 8) instead of tus 1.0: a file of one chunk
/// is sent whole with its creation (Upload-Complete: ?1), a larger one is
/// created with its first chunk and appended to (application/partial-upload)
/// from the receiver's Upload-Offset, the last append completing it. Where
/// the receiver answers the completion with a Repr-Digest (cutover receive
/// does, for either protocol), it must be the file's SHA-256, or the upload
/// is withdrawn and the file fails. The draft has no concatenation, so
/// --parallel-parts is refused with it.
///
/// A rerun continues from the ledger: verified files are not sent again.
/// Tokens, passwords and secrets are never printed. Exit code 1 if any file is
/// missing, undelivered or failed; 2 if the sign-in fails.
///
/// Examples:
///   cutover send outbox/ --to https://receiver.example/files --meta data_stream=eicr --meta jurisdiction=WA
///   CUTOVER_SEND_TOKEN=… cutover send report.xml --to https://receiver.example/files --token-env CUTOVER_SEND_TOKEN
///   cutover send extract-2026-11.parquet --to https://receiver.example/files --parallel-parts 4
///   DEX_PASSWORD=… cutover send outbox/ --to https://dex.example/upload --login https://dex.example/oauth \
///       --username svc-lab-sender --password-env DEX_PASSWORD --check data-exchange={origin}/upload/info/{upload_id} \
///       --meta data_stream_id=celr --meta data_stream_route=csv --meta sender_id=lab-7 \
///       --meta data_producer_id=lab-7 --meta jurisdiction=WA
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct SendArgs {
    /// Files or directories to send.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,

    /// The receiver's tus endpoint (creation URL).
    #[arg(long, value_name = "URL")]
    pub to: String,

    /// The ledger file.
    #[arg(long, value_name = "FILE", default_value = "cutover-ledger.db")]
    pub ledger: PathBuf,

    /// Metadata for every upload, as KEY=VALUE (repeatable); filename is always added.
    /// A sidecar FILE.meta.json ({"key": "value", …}) beside a file adds to it and wins.
    #[arg(long = "meta", value_name = "KEY=VALUE", verbatim_doc_comment)]
    pub metadata: Vec<String>,

    #[command(flatten)]
    pub sign_in: SignInArgs,

    /// Bytes per PATCH.
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
    pub chunk_size: usize,

    /// Files sent (and checked) at a time.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub jobs: usize,

    /// Send each file of at least N chunks as N partial uploads at once,
    /// concatenated into one where the receiver offers concatenation.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel_parts: u16,

    /// The upload protocol: tus (1.0, with the extensions the receiver
    /// offers) or ietf (the IETF resumable-upload draft, interop version 8).
    #[arg(long, value_enum, value_name = "PROTOCOL", default_value_t = ProtocolArg::Tus)]
    pub protocol: ProtocolArg,

    /// Retries of a failed call (with backoff from 100 ms to 10 s) before a file fails.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub retries: u32,

    /// Only send: leave verification to a later `cutover verify`.
    #[arg(long)]
    pub no_verify: bool,

    #[command(flatten)]
    pub checks: CheckArgs,
}

/// `--protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtocolArg {
    /// tus 1.0.
    Tus,
    /// The IETF resumable-upload draft.
    Ietf,
}

impl From<ProtocolArg> for Protocol {
    fn from(protocol: ProtocolArg) -> Protocol {
        match protocol {
            ProtocolArg::Tus => Protocol::Tus,
            ProtocolArg::Ietf => Protocol::Ietf,
        }
    }
}

fn files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        let metadata = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
        if metadata.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("{}", path.display()))?
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|entry| entry.is_file() && !is_sidecar(entry))
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn is_sidecar(path: &std::path::Path) -> bool {
    path.to_string_lossy().ends_with(".meta.json")
}

/// A file's sidecar metadata (FILE.meta.json: an object of strings), if any.
fn sidecar(path: &std::path::Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut name = path.as_os_str().to_owned();
    name.push(".meta.json");
    let sidecar = PathBuf::from(name);
    if !sidecar.exists() {
        return Ok(BTreeMap::new());
    }
    let text =
        std::fs::read_to_string(&sidecar).with_context(|| format!("{}", sidecar.display()))?;
    let values: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a JSON object of metadata", sidecar.display()))?;
    values
        .into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(text) => Ok((key, text)),
            serde_json::Value::Number(number) => Ok((key, number.to_string())),
            serde_json::Value::Bool(flag) => Ok((key, flag.to_string())),
            _ => bail!("{}: {key} is not a string", sidecar.display()),
        })
        .collect()
}

/// Stops before anything is recorded or sent when a file's manifest lacks
/// what the data-exchange service requires, listing every such file.
fn refuse_incomplete_manifests(sends: &[FileToSend]) -> anyhow::Result<()> {
    let refused: Vec<String> = sends
        .iter()
        .filter_map(|send| {
            let problems = cutover_tus::exchange::manifest_problems(&send.metadata);
            (!problems.is_empty())
                .then(|| format!("  {}: {}", send.path.display(), problems.join(", ")))
        })
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = refused.iter().take(50).map(String::as_str).collect();
    let more = if refused.len() > shown.len() {
        format!("\n  … and {} more", refused.len() - shown.len())
    } else {
        String::new()
    };
    bail!(
        "{} of {} files lack manifest keys the data-exchange service requires; nothing was sent:\n{}{more}\nhint: add them with --meta KEY=VALUE for all files or a FILE.meta.json sidecar per file (required: {})",
        refused.len(),
        sends.len(),
        shown.join("\n"),
        cutover_tus::exchange::REQUIRED_KEYS.join(", ")
    )
}

pub async fn run(args: SendArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let probes = args.checks.probes()?;
    args.checks.settle()?;
    let mut common = BTreeMap::new();
    for pair in &args.metadata {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("--meta {pair}: not KEY=VALUE\nhint: e.g. --meta data_stream=eicr");
        };
        if key.is_empty() || key.contains([' ', ',']) {
            bail!("--meta {pair}: a key has no spaces or commas");
        }
        common.insert(key.to_owned(), value.to_owned());
    }
    let mut sends = Vec::new();
    for path in files(&args.paths)? {
        let mut metadata = common.clone();
        metadata.extend(sidecar(&path)?);
        if args.checks.data_exchange() && !metadata.contains_key("received_filename") {
            if let Some(name) = path.file_name() {
                metadata.insert(
                    "received_filename".to_owned(),
                    name.to_string_lossy().into_owned(),
                );
            }
        }
        sends.push(FileToSend { path, metadata });
    }
    if args.checks.data_exchange() {
        refuse_incomplete_manifests(&sends)?;
    }
    if args.protocol == ProtocolArg::Ietf && args.parallel_parts > 1 {
        bail!(
            "--parallel-parts needs --protocol tus: the IETF draft has no concatenation \
             (one upload is one stream)"
        );
    }
    let auth = args.sign_in.auth().await?;
    let uploader = Uploader::new(&args.to, auth.clone(), args.chunk_size)?
        .with_retries(args.retries)
        .with_parallel_parts(usize::from(args.parallel_parts))
        .with_protocol(args.protocol.into());
    let verifier = Verifier::new(probes, auth).map_err(anyhow::Error::msg)?;
    let ledger = Mutex::new(Ledger::open(&args.ledger)?);
    let bars = DeliveryBars::new(global.quiet, sends.len() as u64, "sending");
    let total = sends.len();
    let results = cutover_tus::deliver::send(&uploader, &ledger, sends, args.jobs, &bars).await;
    bars.finish();
    let results = results.map_err(delivery::delivery_error)?;
    let rounds = if args.no_verify {
        Vec::new()
    } else {
        delivery::verify_and_replay(
            &uploader,
            &verifier,
            &ledger,
            &args.checks,
            args.jobs,
            global.quiet,
        )
        .await?
    };
    let ledger = ledger
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let counts = ledger.counts()?;
    let failed = results
        .iter()
        .filter(|(_, sent)| matches!(sent, Sent::Failed(_)))
        .count();
    let describe = |sent: &Sent| match sent {
        Sent::Acknowledged => "acknowledged".to_owned(),
        Sent::AlreadyDelivered(cutover_tus::State::Undelivered) => {
            "already sent (the receiver holds it, undelivered)".to_owned()
        }
        Sent::AlreadyDelivered(state) => format!("already delivered ({})", state.name()),
        Sent::Failed(reason) => format!("failed: {reason}"),
        Sent::Unconfirmed(reason) => format!("unconfirmed ({reason}): verification decides"),
    };
    match global.format {
        Format::Json => print_json(&serde_json::json!({
            "files": results.iter().map(|(file, sent)| serde_json::json!({ "file": file, "outcome": describe(sent) })).collect::<Vec<_>>(),
            "verification": delivery::rounds_json(&rounds),
            "ledger": counts,
        }))?,
        Format::Text => {
            let mut text = String::new();
            for (file, sent) in &results {
                text.push_str(&format!("  {file}: {}\n", describe(sent)));
            }
            text.push_str(&format!(
                "sent {total} files to {} ({failed} failed)\n",
                cutover_db::redact(&args.to),
            ));
            text.push_str(&delivery::describe_rounds(&rounds));

            text.push_str(&format!(
                "ledger {}: {}\n",
                args.ledger.display(),
                delivery::describe_counts(&counts)
            ));
            print(&text)?;
        }
    }
    Ok(if failed == 0 && !delivery::ledger_has_problems(&counts) {
        Outcome::Success
    } else {
        Outcome::Differences
    })
}
