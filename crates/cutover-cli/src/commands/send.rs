//! `cutover send`: tus uploads recorded in a durable ledger.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use cutover_tus::{Ledger, State, Uploader};
use sha2::Digest as _;

use crate::Outcome;
use crate::cli::{Format, GlobalArgs};
use crate::output::{print, print_json};

/// Send files with tus 1.0, recording every file in a durable ledger.
///
/// Each file (a directory's files, in name order) is recorded in the ledger
/// (--ledger, default cutover-ledger.db here: SQLite, synced at every state
/// change) with its size, SHA-256 and metadata, then uploaded: created with
/// Upload-Length and Upload-Metadata (always filename, plus --meta pairs),
/// sent in --chunk-size PATCHes each with an Upload-Checksum (sha256), and
/// resumed from the receiver's offset after any interruption. A file the
/// receiver took whole is `acknowledged`; a rerun skips it and resumes the
/// rest. The token (--token-env) is never printed. Exit code 1 if any file
/// failed.
///
/// Examples:
///   cutover send outbox/ --to https://receiver.example/files --meta data_stream=eicr --meta jurisdiction=WA
///   CUTOVER_SEND_TOKEN=… cutover send report.xml --to https://receiver.example/files --token-env CUTOVER_SEND_TOKEN
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
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub metadata: Vec<String>,

    /// The environment variable holding the receiver's bearer token.
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,

    /// Bytes per PATCH.
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
    pub chunk_size: usize,
}

fn files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        let metadata = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
        if metadata.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("{}", path.display()))?
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|entry| entry.is_file())
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn sha256(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let read = file
            .read(&mut buffer)
            .with_context(|| format!("{}", path.display()))?;
        if read == 0 {
            break;
        }
        size += read as u64;
        hasher.update(&buffer[..read]);
    }
    Ok((
        size,
        hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect(),
    ))
}

pub async fn run(args: SendArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let token = match &args.token_env {
        Some(variable) => match std::env::var(variable)
            .ok()
            .filter(|token| !token.is_empty())
        {
            Some(token) => Some(token),
            None => bail!(
                "{variable} is not set\nhint: put the receiver's token in it, or leave out --token-env"
            ),
        },
        None => None,
    };
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
    let files = files(&args.paths)?;
    let uploader = Uploader::new(&args.to, token, args.chunk_size)?;
    let mut ledger = Ledger::open(&args.ledger)?;
    let mut results = Vec::new();
    for file in &files {
        let name = file.display().to_string();
        let (size, digest) = sha256(file)?;
        let mut metadata = common.clone();
        metadata.insert(
            "filename".to_owned(),
            file.file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let metadata_text = serde_json::to_string(&metadata)?;
        let (state, known_url) = ledger.enqueue(&name, size, &digest, &metadata_text)?;
        if matches!(
            state,
            State::Acknowledged | State::Verified | State::Replayed
        ) {
            results.push((name, "already delivered".to_owned(), true));
            continue;
        }
        // Resume an unfinished upload the receiver still has; otherwise a new one.
        let resumable = match (&state, &known_url) {
            (State::Uploading, Some(url)) => uploader
                .offset(url)
                .await
                .ok()
                .flatten()
                .map(|_| url.clone()),
            _ => None,
        };
        let outcome = async {
            let url = match resumable {
                Some(url) => url,
                None => {
                    let url = uploader.create(size, &metadata).await?;
                    ledger
                        .transition(&name, State::Uploading, Some(&url), None)
                        .map_err(|error| cutover_tus::UploadError::Server(error.to_string()))?;
                    url
                }
            };
            uploader.send(&url, file, size).await
        }
        .await;
        match outcome {
            Ok(()) => {
                ledger.transition(&name, State::Acknowledged, None, None)?;
                results.push((name, "acknowledged".to_owned(), true));
            }
            Err(error) => {
                let reason = error.to_string();
                ledger.transition(&name, State::Failed, None, Some(&reason))?;
                results.push((name, format!("failed: {reason}"), false));
            }
        }
    }
    let failed = results.iter().filter(|(_, _, ok)| !ok).count();
    match global.format {
        Format::Json => print_json(&serde_json::json!({
            "files": results.iter().map(|(file, outcome, _)| serde_json::json!({ "file": file, "outcome": outcome })).collect::<Vec<_>>(),
            "ledger": ledger.counts()?,
        }))?,
        Format::Text => {
            let mut text = String::new();
            for (file, outcome, _) in &results {
                text.push_str(&format!("  {file}: {outcome}\n"));
            }
            let counts: Vec<String> = ledger
                .counts()?
                .iter()
                .map(|(state, count)| format!("{count} {state}"))
                .collect();
            text.push_str(&format!(
                "sent {} files to {} ({failed} failed); ledger {}: {}\n",
                results.len(),
                cutover_db::redact(&args.to),
                args.ledger.display(),
                counts.join(", ")
            ));
            print(&text)?;
        }
    }
    Ok(if failed == 0 {
        Outcome::Success
    } else {
        Outcome::Differences
    })
}
