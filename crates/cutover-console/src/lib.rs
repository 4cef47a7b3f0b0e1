//! The migration console (`cutover serve`): a web console over a run
//! journal. Server-rendered pages list the runs and what each waits for,
//! show a run's steps, decisions and records (updated live through
//! server-sent events), and serve its evidence report. People sign in with
//! OpenID Connect ([`signin`]) and approve or reject the approval steps
//! their roles ([`config`]) name; each decision is journaled, hash-chained,
//! with the signed-in identity and the address it came from.
//!
//! [`start`] checks everything (the configuration, the journal, every
//! runbook's approver roles, the issuer) before it listens.

pub mod config;
mod drain;
mod index;
mod live;
pub mod pages;
mod routes;
mod session;
pub mod signin;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};

use cutover_run::Journal;

pub use config::Config;
use config::Read;
use session::Sessions;
use signin::{Identity, Provider};

/// Why the console cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The configuration is wrong.
    #[error("{0}")]
    Config(String),
    /// The issuer cannot be used.
    #[error("{0}")]
    Issuer(String),
    /// The journal cannot be read.
    #[error(transparent)]
    Journal(#[from] cutover_run::JournalError),
    /// The address cannot be listened on, or the certificate read.
    #[error("{0}")]
    Io(String),
}

/// What `cutover serve` was asked for.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The run journal.
    pub journal: PathBuf,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The configuration (default: read-only, no sign-in).
    pub config: Config,
    /// A certificate chain and key (PEM) to serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Trust `X-Forwarded-For` for the address decisions came from (behind
    /// a reverse proxy).
    pub trust_proxy: bool,
    /// Runbooks to check for unmapped approver roles besides the ones the
    /// journal's runs name.
    pub runbooks: Vec<PathBuf>,
    /// How drain sources are connected to (passwords, `.pgpass`).
    pub connect: cutover_db::ConnectOptions,
}

/// The running console's shared state.
pub(crate) struct Console {
    config: Config,
    drains: Vec<drain::Source>,
    /// The console's own journal connection: an async lock, so that readers
    /// wait on the runtime, not in blocked threads.
    journal: Arc<tokio::sync::Mutex<Journal>>,
    /// The index's summaries of runs, read again only where they changed.
    index: Arc<std::sync::Mutex<index::Index>>,
    provider: Option<Provider>,
    sessions: Sessions,
    live: Arc<live::Live>,
    tls: bool,
    trust_proxy: bool,
}

impl Console {
    /// The approver roles `identity` holds.
    fn roles_of(&self, identity: &Identity) -> Vec<String> {
        self.config
            .roles
            .iter()
            .filter(|(_, role)| {
                identity.email.as_ref().is_some_and(|email| {
                    role.emails
                        .iter()
                        .any(|listed| listed.eq_ignore_ascii_case(email))
                }) || identity
                    .groups
                    .iter()
                    .any(|group| role.groups.contains(group))
            })
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// A console that listens.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on.
    pub address: SocketAddr,
    /// Its public address (links, sign-in).
    pub url: String,
    /// Whether people sign in.
    pub sign_in: bool,
    /// Whether reading needs sign-in.
    pub read_needs_sign_in: bool,
    task: tokio::task::JoinHandle<Result<(), std::io::Error>>,
}

impl Running {
    /// Serves until the process ends or the server fails.
    pub async fn wait(self) -> Result<(), ConsoleError> {
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(ConsoleError::Io(error.to_string())),
            Err(error) => Err(ConsoleError::Io(error.to_string())),
        }
    }
}

fn loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Checks everything and starts listening.
pub async fn start(options: ServeOptions) -> Result<Running, ConsoleError> {
    let journal = Journal::open_existing(&options.journal)?;
    let config = options.config.clone();
    let tls = options.tls.is_some();
    let listener = std::net::TcpListener::bind(options.listen)
        .map_err(|error| ConsoleError::Io(format!("listening on {}: {error}", options.listen)))?;
    listener
        .set_nonblocking(true)
        .map_err(|error| ConsoleError::Io(error.to_string()))?;
    let address = listener
        .local_addr()
        .map_err(|error| ConsoleError::Io(error.to_string()))?;
    let public = match &config.public_url {
        Some(url) => url.clone(),
        None => {
            let host = if address.ip().is_unspecified()
                || (address.ip().is_loopback() && address.is_ipv4())
            {
                "localhost".to_owned()
            } else {
                address.ip().to_string()
            };
            url::Url::parse(&format!(
                "{}://{host}:{}/",
                if tls { "https" } else { "http" },
                address.port()
            ))
            .map_err(|error| ConsoleError::Config(error.to_string()))?
        }
    };
    let provider = match &config.sign_in {
        Some(settings) => {
            if public.scheme() != "https" && !loopback(&public) {
                return Err(ConsoleError::Config(format!(
                    "sign-in over plain http to {} would send session cookies in the clear (and browsers drop Secure cookies there): serve HTTPS with --tls-cert and --tls-key, or set public_url = \"https://…\" behind a reverse proxy that terminates TLS",
                    public.host_str().unwrap_or_default()
                )));
            }
            let mut runbooks = Vec::new();
            let mut paths: Vec<PathBuf> = journal
                .runs()?
                .into_iter()
                .map(|run| PathBuf::from(run.path))
                .collect();
            paths.extend(options.runbooks.iter().cloned());
            paths.sort();
            paths.dedup();
            for path in paths.iter().filter(|path| path.is_file()) {
                // Only the approvers are read: every variable is taken as set.
                if let Ok((runbook, _)) = cutover_run::load(path, &|_| Some("-".to_owned())) {
                    runbooks.push(runbook);
                }
            }
            let unmapped = config.unmapped(&runbooks);
            if !unmapped.is_empty() {
                let named: Vec<String> = unmapped
                    .iter()
                    .map(|(role, runbook, step)| format!("{role} (step {step} of {runbook})"))
                    .collect();
                return Err(ConsoleError::Config(format!(
                    "approver roles with no mapping in [roles]: {}; nobody could approve them\nhint: add [roles.NAME] with emails = [...] or groups = [...]",
                    named.join(", ")
                )));
            }
            let redirect = public
                .join("auth/callback")
                .map_err(|error| ConsoleError::Config(error.to_string()))?;
            Some(Provider::start(settings.clone(), redirect.as_str()).await?)
        }
        None => None,
    };
    let rustls_config = match &options.tls {
        Some((cert, key)) => Some(tls_config(cert, key).await?),
        None => None,
    };
    let drains = drain::sources(&config, &options.connect)?;
    let live = Arc::new(live::Live::default());
    tokio::spawn(live::watch(options.journal.clone(), live.clone()));
    let console = Arc::new(Console {
        sessions: Sessions::new(config.session),
        drains,
        config,
        journal: Arc::new(tokio::sync::Mutex::new(journal)),
        index: Arc::default(),
        provider,
        live,
        tls,
        trust_proxy: options.trust_proxy,
    });
    let sign_in = console.provider.is_some();
    let read_needs_sign_in = console.config.read == Read::SignedIn;
    let app = router(console);
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let task = match rustls_config {
        Some(rustls_config) => tokio::spawn(async move {
            axum_server::from_tcp_rustls(listener, rustls_config)?
                .serve(service)
                .await
        }),
        None => {
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(|error| ConsoleError::Io(error.to_string()))?;
            tokio::spawn(async move { axum::serve(listener, service).await })
        }
    };
    Ok(Running {
        address,
        url: public.to_string(),
        sign_in,
        read_needs_sign_in,
        task,
    })
}

async fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<axum_server::tls_rustls::RustlsConfig, ConsoleError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|error| ConsoleError::Io(format!("{}: {error}", path.display())))
    };
    let (cert_pem, key_pem) = (read(cert)?, read(key)?);
    let chain: Vec<rustls::pki_types::CertificateDer<'static>> =
        rustls_pemfile::certs(&mut cert_pem.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|error| ConsoleError::Io(format!("{}: {error}", cert.display())))?;
    if chain.is_empty() {
        return Err(ConsoleError::Io(format!(
            "{}: no certificate in it",
            cert.display()
        )));
    }
    let private = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|error| ConsoleError::Io(format!("{}: {error}", key.display())))?
        .ok_or_else(|| ConsoleError::Io(format!("{}: no private key in it", key.display())))?;
    let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| ConsoleError::Io(error.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, private)
    .map_err(|error| ConsoleError::Io(format!("{}: {error}", key.display())))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(axum_server::tls_rustls::RustlsConfig::from_config(
        Arc::new(server),
    ))
}

/// Headers on every answer: no framing, no sniffing, scripts only from the
/// console itself, no referrer to other sites, nothing cached.
async fn guard(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(routes::index))
        .route("/runs/{id}", get(routes::run_page))
        .route("/runs/{id}/events", get(routes::events))
        .route("/runs/{id}/report", get(routes::report_html))
        .route("/runs/{id}/report.json", get(routes::report_json))
        .route("/runs/{id}/steps/{step}/decision", post(routes::decide))
        .route("/deliveries", get(routes::deliveries))
        .route("/drain", get(drain::page))
        .route("/static/console.js", get(routes::script))
        .route("/sign-in", get(routes::sign_in))
        .route("/auth/callback", get(routes::callback))
        .route("/sign-out", post(routes::sign_out))
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::middleware::map_response(guard))
        .with_state(console)
}
