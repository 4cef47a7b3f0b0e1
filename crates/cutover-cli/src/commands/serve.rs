//! `cutover serve`: the migration console over a run journal.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use cutover_console::{Config, ServeOptions};

use crate::Outcome;
use crate::cli::{Format, GlobalArgs};
use crate::output::{print, print_json};

/// The migration console: runs, approvals in a browser behind sign-in, live updates.
///
/// Serves web pages over a run journal: every run with its state and what
/// it waits for; a run's steps, decisions and journal records, updated live
/// as the run goes (server-sent events; the pages work without JavaScript
/// too); its evidence report; the reconciliation trend of each runbook.
///
/// Without --config the console is read-only and anyone who reaches the
/// address may read it. With a console file, people sign in with OpenID
/// Connect (the authorization code flow with PKCE against your issuer) and
/// approve or reject the approval steps their roles allow; the journal
/// records each decision with the issuer and subject, the name, the time
/// and the address, hash-chained like every record. A run waiting with
/// `cutover run --wait-for-approvals` goes on at once.
///
/// The console file (TOML):
///
///   public_url = "https://console.example.org"   # default: the listen address
///   read = "signed-in"                            # or "anyone"
///   session = "8h"                                # how long a sign-in lasts
///   ledgers = ["/srv/cutover/ledger.db"]          # delivery ledgers to show
///   [[drain]]                                     # db-scheduler tables to forecast
///   url = "postgres://reader@db/app#scheduled_tasks"
///   rules = "drain-rules.toml"
///   [sign_in]
///   issuer = "https://login.example.org/realms/health"
///   client_id = "cutover-console"
///   client_secret_env = "CUTOVER_OIDC_SECRET"     # leave out for a public client
///   scopes = ["email", "profile"]                 # besides openid
///   groups_claim = "groups"
///   [roles.data-owner]
///   emails = ["owner@example.org"]
///   [roles.change-management]
///   groups = ["change-board"]
///
/// Before it listens the console checks the file, reads the issuer's
/// discovery document and keys (an unreachable issuer stops it), and
/// refuses to start when a runbook of the journal names an approver role
/// the file does not map. The client's redirect URI at the issuer is
/// PUBLIC_URL/auth/callback.
///
/// Sign-in needs HTTPS (--tls-cert and --tls-key) or a reverse proxy that
/// terminates TLS (then set public_url to its https address, and
/// --trust-proxy to record the X-Forwarded-For address); plain http is
/// accepted only on loopback.
///
/// Examples:
///   cutover serve --journal cutover-demo/journal.db
///   cutover serve --journal /srv/cutover/journal.db --config console.toml --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ServeArgs {
    /// The run journal (`cutover run --journal`).
    #[arg(long, value_name = "FILE", default_value = "cutover-journal.db")]
    pub journal: PathBuf,

    /// The address to listen on (port 0: any free port; the address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8480")]
    pub listen: SocketAddr,

    /// The console file: sign-in, roles, who may read (default: read-only, no sign-in).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// A PEM certificate chain, to serve HTTPS (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The certificate's PEM private key.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Behind a reverse proxy: record the X-Forwarded-For address with decisions.
    #[arg(long)]
    pub trust_proxy: bool,

    /// A delivery ledger (`cutover send --ledger`) to show per day and
    /// stream on the Deliveries page; repeat for several (added to the
    /// console file's `ledgers`).
    #[arg(long, value_name = "FILE")]
    pub ledger: Vec<PathBuf>,

    /// A db-scheduler table (`URL#TABLE`, as `cutover drain` takes it) whose
    /// drain forecast the Drain page shows, read-only; repeat for several
    /// (added to the console file's `[[drain]]`, which can also name rules).
    #[arg(long, value_name = "URL")]
    pub drain: Vec<String>,

    /// A runbook whose approver roles must be mapped too (besides those of
    /// the journal's runs); repeat for several.
    #[arg(long, value_name = "FILE")]
    pub runbook: Vec<PathBuf>,
}

pub async fn run(args: ServeArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    if !args.journal.is_file() {
        bail!(
            "{}: no journal here\nhint: name the journal `cutover run` writes with --journal (cutover quickstart writes cutover-demo/journal.db)",
            args.journal.display()
        );
    }
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    config.ledgers.extend(args.ledger.iter().cloned());
    config.drain.extend(
        args.drain
            .iter()
            .map(|url| cutover_console::config::DrainSource {
                url: url.clone(),
                rules: None,
            }),
    );
    let options = ServeOptions {
        journal: args.journal.clone(),
        listen: args.listen,
        config,
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
        trust_proxy: args.trust_proxy,
        runbooks: args.runbook.clone(),
        connect: crate::environment::connect_options(),
    };
    let running = cutover_console::start(options)
        .await
        .with_context(|| format!("serving {}", args.journal.display()))?;
    match global.format {
        Format::Json => print_json(&serde_json::json!({
            "listening": running.address.to_string(), "url": running.url,
            "sign_in": running.sign_in, "read_needs_sign_in": running.read_needs_sign_in,
        }))?,
        Format::Text => print(&format!(
            "console on {} ({}) over {}\n",
            running.url,
            match (running.sign_in, running.read_needs_sign_in) {
                (true, true) => "sign-in to read and to approve",
                (true, false) => "anyone reads; sign-in to approve",
                _ => "read-only, no sign-in",
            },
            args.journal.display()
        ))?,
    }
    tokio::select! {
        served = running.wait() => served?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(Outcome::Success)
}
