//! `cutover receive`: a tus 1.0 (and IETF draft) receiver that persists before it acknowledges.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use cutover_tus::ReceiverConfig;

use crate::Outcome;
use crate::cli::{Format, GlobalArgs};
use crate::output::{print, print_json};

/// Receive files over tus 1.0 (and the IETF draft), and never acknowledge what is not on disk.
///
/// A tus 1.0 server with every extension: creation, creation-with-upload,
/// creation-defer-length (streams whose length is known only at the end),
/// concatenation (a large file sent as parallel partial uploads, made into
/// one final upload), checksum (crc32, sha256, sha1; 460 on a mismatch, the
/// chunk discarded) and checksum-trailer (the checksum after a chunked body),
/// termination (of open, partial and finished uploads) and expiration;
/// OPTIONS says which. Each chunk is synced before the offset advances; the upload's state is written atomically
/// (temporary file, fsync, rename, directory fsync); the PATCH that completes
/// an upload is answered only after the file is moved into place and its
/// receipt (size, SHA-256, stored-at, metadata) is on disk. Metadata file
/// names are kept in the receipt and never used as paths.
///
/// The IETF resumable-upload draft is answered on the same endpoint: a
/// request with Upload-Draft-Interop-Version 8 (draft -11), 7, or 6 (what
/// tus-js-client and tusd call ietf-draft-05) creates with Upload-Complete,
/// asks with HEAD, appends application/partial-upload at Upload-Offset (409
/// with the right offset otherwise) and completes only on Upload-Complete:
/// ?1, with the same syncs and receipts; a Repr-Digest given at creation
/// must match the finished file or it is not kept, and every completion
/// (tus or draft) is answered with the stored file's Repr-Digest. No 104
/// interim answers are sent: create with an empty body to resume from the
/// first byte.
///
/// Upload URLs (Location) are absolute: --public-url, else, with
/// --trust-proxy, the X-Forwarded-Proto and X-Forwarded-Host a reverse proxy
/// sets, else the request's Host.
///
/// GET /receipts/ID returns a receipt (only while the file is stored whole);
/// GET /receipts?day=YYYY-MM-DD lists a day's, GET /receipts?sha256=HEX the
/// copies of one content. With --token-env, every call needs that bearer
/// token.
///
/// Examples:
///   cutover receive --dir /srv/inbox --listen 0.0.0.0:1080
///   CUTOVER_RECEIVE_TOKEN=… cutover receive --dir /srv/inbox --listen 127.0.0.1:1080 --token-env CUTOVER_RECEIVE_TOKEN
///   cutover receive --dir /srv/inbox --listen 127.0.0.1:1080 --public-url https://inbox.example.org
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ReceiveArgs {
    /// The storage directory (created if missing; refused if it cannot be written).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// The address to listen on (port 0: any free port; the address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:1080")]
    pub listen: String,

    /// The largest upload accepted, in bytes (or with K, M, G suffix).
    #[arg(long, value_name = "SIZE", default_value = "10G")]
    pub max_size: String,

    /// The environment variable holding the bearer token every call must carry.
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,

    /// How long an unfinished upload is kept (e.g. 24h, 7d).
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub expire_after: String,

    /// The receiver's address as senders reach it (e.g. behind a reverse
    /// proxy: https://inbox.example.org); upload URLs are this followed by
    /// /files/ID.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,

    /// Behind a reverse proxy: make upload URLs from the X-Forwarded-Proto
    /// and X-Forwarded-Host it sets (only when the proxy is the sole way in).
    #[arg(long)]
    pub trust_proxy: bool,

    /// Testing only: acknowledge and then lose this percentage of uploads,
    /// as a lying receiver does, to prove a sender's verification.
    #[arg(long, value_name = "PERCENT", default_value_t = 0, hide = true,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub fault_lose_percent: u8,
}

fn size(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let (digits, factor) = match text.chars().last() {
        Some('K' | 'k') => (&text[..text.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&text[..text.len() - 1], 1 << 20),
        Some('G' | 'g') => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    match digits.parse::<u64>() {
        Ok(number) => Ok(number.saturating_mul(factor)),
        Err(_) => bail!("--max-size {text}: not a size\nhint: write bytes, or e.g. 512M or 10G"),
    }
}

pub async fn run(args: ReceiveArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let token = match &args.token_env {
        Some(variable) => match std::env::var(variable)
            .ok()
            .filter(|token| !token.is_empty())
        {
            Some(token) => Some(token),
            None => bail!(
                "{variable} is not set\nhint: put the bearer token in it, or leave out --token-env"
            ),
        },
        None => None,
    };
    let Some(expire) = cutover_drain::parse_duration(&args.expire_after) else {
        bail!(
            "--expire-after {}: not a duration\nhint: write e.g. 24h or 7d",
            args.expire_after
        );
    };
    if let Some(url) = &args.public_url {
        let parsed = reqwest::Url::parse(url).ok().filter(|parsed| {
            matches!(parsed.scheme(), "http" | "https")
                && parsed.host().is_some()
                && parsed.username().is_empty()
                && parsed.password().is_none()
                && parsed.query().is_none()
        });
        if parsed.is_none() {
            bail!(
                "--public-url must be an http or https URL without credentials or a query\nhint: e.g. https://inbox.example.org or https://gateway.example.org/tus"
            );
        }
    }
    let config = ReceiverConfig {
        directory: args.dir.clone(),
        max_size: size(&args.max_size)?,
        token,
        expire_after_seconds: expire / 1_000_000,
        lose_percent: args.fault_lose_percent,
        public_url: args.public_url.clone(),
        trust_proxy: args.trust_proxy,
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr()?;
    match global.format {
        Format::Json => {
            print_json(&serde_json::json!({ "listening": address.to_string(), "dir": args.dir }))?
        }
        Format::Text => print(&format!(
            "receiving on http://{address}/files into {}\n",
            args.dir.display()
        ))?,
    }
    cutover_tus::serve(listener, config)
        .await
        .with_context(|| format!("receiving into {}", args.dir.display()))?;
    Ok(Outcome::Success)
}
