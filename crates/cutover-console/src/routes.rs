//! The console's HTTP routes: pages, the live event stream, reports,
//! sign-in and sign-out, and decisions on approval steps. No write is
//! anonymous: a decision needs a live session, its CSRF token, a request
//! from the console's own origin, a step that waits, and a role that the
//! signed-in identity holds and that has still to decide.

// A refusal is an axum `Response`, returned by value as handlers do.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use futures_util::{Stream, StreamExt as _};
use serde::Deserialize;
use serde_json::json;

use cutover_run::{Journal, Record, RunInfo};

use crate::config::Read;
use crate::pages::{self, Viewer};
use crate::session::{Lookup, SESSION, SIGN_IN, Session, jar, same_secret};
use crate::{Console, live};

pub(crate) type Shared = State<Arc<Console>>;

/// What a request's cookies say about who sends it.
pub(crate) struct Caller {
    session: Option<(String, Session)>,
    roles: Vec<String>,
}

impl Caller {
    pub(crate) fn viewer<'a>(&'a self, console: &Console) -> Viewer<'a> {
        Viewer {
            identity: self.session.as_ref().map(|(_, session)| &session.identity),
            roles: &self.roles,
            csrf: self
                .session
                .as_ref()
                .map(|(_, session)| session.csrf.as_str()),
            sign_in: console.provider.is_some(),
        }
    }
}

pub(crate) fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn anonymous(console: &Console) -> Viewer<'static> {
    Viewer {
        identity: None,
        roles: &[],
        csrf: None,
        sign_in: console.provider.is_some(),
    }
}

/// A local path to come back to after signing in (never another site).
fn local(path: &str) -> String {
    if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') {
        path.to_owned()
    } else {
        "/".to_owned()
    }
}

fn to_sign_in(return_to: &str, clear: bool, console: &Console) -> Response {
    let mut response = Redirect::to(&format!(
        "/sign-in?return={}",
        url::form_urlencoded::byte_serialize(local(return_to).as_bytes()).collect::<String>()
    ))
    .into_response();
    if clear {
        if let Ok(value) = HeaderValue::from_str(&console.sessions.set_cookie(SESSION, None, None))
        {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// Who calls, or the answer for a caller who may not read: a tampered
/// cookie is refused, an ended session is sent to sign in again, and an
/// anonymous caller is sent to sign in when reading needs it.
pub(crate) fn caller(
    console: &Console,
    headers: &HeaderMap,
    path: &str,
) -> Result<Caller, Response> {
    let cookies = headers
        .get(header::COOKIE)
        .and_then(|value| value.to_str().ok());
    match console.sessions.current(&jar(cookies)) {
        Lookup::Valid(id, session) => {
            let roles = console.roles_of(&session.identity);
            Ok(Caller {
                session: Some((id, session)),
                roles,
            })
        }
        Lookup::Tampered => {
            let mut response = html(
                StatusCode::UNAUTHORIZED,
                pages::problem(
                    "Session refused",
                    "The session cookie was changed or was not made by this console. Sign in again.",
                    &anonymous(console),
                ),
            );
            if let Ok(value) =
                HeaderValue::from_str(&console.sessions.set_cookie(SESSION, None, None))
            {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            Err(response)
        }
        Lookup::Expired if console.provider.is_some() => Err(to_sign_in(path, true, console)),
        Lookup::None if console.config.read == Read::SignedIn => {
            Err(to_sign_in(path, false, console))
        }
        Lookup::Expired | Lookup::None => Ok(Caller {
            session: None,
            roles: Vec::new(),
        }),
    }
}

/// Runs `work` on the console's journal connection, off the async threads.
async fn with_journal<T: Send + 'static>(
    console: &Arc<Console>,
    work: impl FnOnce(&Journal) -> Result<T, cutover_run::JournalError> + Send + 'static,
) -> Result<T, Response> {
    let journal = console.journal.clone().lock_owned().await;
    tokio::task::spawn_blocking(move || work(&journal))
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())?
        .map_err(|error| {
            html(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::problem(
                    "Journal unavailable",
                    &error.to_string(),
                    &anonymous(console),
                ),
            )
        })
}

pub async fn index(State(console): Shared, headers: HeaderMap) -> Response {
    let caller = match caller(&console, &headers, "/") {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let index = console.index.clone();
    let found = with_journal(&console, move |journal| {
        index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .load(journal)
    })
    .await;
    match found {
        Ok((listed, trends)) => html(
            StatusCode::OK,
            pages::index(&listed, &trends, &caller.viewer(&console)),
        ),
        Err(response) => response,
    }
}

/// A run and its records, or a 404 page.
async fn load_run(
    console: &Arc<Console>,
    id: &str,
    viewer: &Viewer<'_>,
) -> Result<(RunInfo, Vec<Record>), Response> {
    let wanted = id.to_owned();
    let found = with_journal(console, move |journal| {
        let Some(run) = journal.run(&wanted)? else {
            return Ok(None);
        };
        let records = journal.records(&run.id)?;
        Ok(Some((run, records)))
    })
    .await?;
    found.ok_or_else(|| {
        html(
            StatusCode::NOT_FOUND,
            pages::problem(
                "No such run",
                &format!("The journal has no run {id}."),
                viewer,
            ),
        )
    })
}

pub async fn run_page(
    State(console): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let caller = match caller(&console, &headers, &format!("/runs/{id}")) {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let viewer = caller.viewer(&console);
    let (run, records) = match load_run(&console, &id, &viewer).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let live_part = pages::live(&run, &records, chrono::Utc::now());
    let approvable: Vec<String> = pages::waiting(&run, &records)
        .map(|wait| {
            wait.missing
                .into_iter()
                .filter(|role| caller.roles.contains(role))
                .collect()
        })
        .unwrap_or_default();
    html(
        StatusCode::OK,
        pages::run_page(&run, &records, &live_part, &viewer, &approvable),
    )
}

pub async fn events(
    State(console): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Response> {
    if let Err(response) = caller(&console, &headers, &format!("/runs/{id}")) {
        // An event stream cannot follow a redirect: refuse plainly.
        return Err(if response.status().is_redirection() {
            StatusCode::UNAUTHORIZED.into_response()
        } else {
            response
        });
    }
    let receiver = console.live.subscribe(&id);
    let first = match console.live.cached(&id) {
        Some(first) => first,
        None => {
            let wanted = id.clone();
            let rendered =
                with_journal(&console, move |journal| Ok(live::render(journal, &wanted))).await?;
            let Some(first) = rendered else {
                return Err(StatusCode::NOT_FOUND.into_response());
            };
            console.live.keep_first(&id, &first)
        }
    };
    let updates = futures_util::stream::unfold(
        (receiver, console.clone(), id),
        |(mut receiver, console, id)| async move {
            loop {
                match receiver.recv().await {
                    Ok(update) => return Some((update, (receiver, console, id))),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // Too slow for every update: the latest is enough.
                        let wanted = id.clone();
                        if let Ok(Some(update)) = with_journal(&console, move |journal| {
                            Ok(live::render(journal, &wanted))
                        })
                        .await
                        {
                            return Some((update, (receiver, console, id)));
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    let stream = futures_util::stream::once(async move { first })
        .chain(updates)
        .map(|update| Ok(Event::default().event("update").data(&*update)));
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

pub async fn report_html(console: Shared, id: Path<String>, headers: HeaderMap) -> Response {
    report(console, id, headers, false).await
}

pub async fn report_json(console: Shared, id: Path<String>, headers: HeaderMap) -> Response {
    report(console, id, headers, true).await
}

async fn report(
    State(console): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    json: bool,
) -> Response {
    let caller = match caller(&console, &headers, &format!("/runs/{id}/report")) {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let wanted = id.clone();
    let built = with_journal(&console, move |journal| {
        let Some(run) = journal.run(&wanted)? else {
            return Ok(None);
        };
        cutover_run::report::build(journal, &run).map(Some)
    })
    .await;
    match built {
        Ok(Some(report)) if json => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string_pretty(&report).unwrap_or_default(),
        )
            .into_response(),
        Ok(Some(report)) => html(StatusCode::OK, cutover_run::report::html(&report)),
        Ok(None) => html(
            StatusCode::NOT_FOUND,
            pages::problem(
                "No such run",
                &format!("The journal has no run {id}."),
                &caller.viewer(&console),
            ),
        ),
        Err(response) => response,
    }
}

pub async fn deliveries(State(console): Shared, headers: HeaderMap) -> Response {
    let caller = match caller(&console, &headers, "/deliveries") {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let paths = console.config.ledgers.clone();
    let found = tokio::task::spawn_blocking(move || {
        paths
            .iter()
            .map(|path| {
                let view = cutover_tus::Ledger::open_read_only(path)
                    .and_then(|ledger| Ok((ledger.counts()?, ledger.report()?)))
                    .map_err(|error| error.to_string());
                (path.display().to_string(), view)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    html(
        StatusCode::OK,
        pages::ledgers(&found, &caller.viewer(&console)),
    )
}

pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        pages::SCRIPT,
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct SignInQuery {
    #[serde(default, rename = "return")]
    return_to: Option<String>,
}

pub async fn sign_in(State(console): Shared, Query(query): Query<SignInQuery>) -> Response {
    let Some(provider) = &console.provider else {
        return html(
            StatusCode::NOT_FOUND,
            pages::problem(
                "Sign-in is not configured",
                "This console is read-only: give cutover serve --config FILE a [sign_in] issuer and [roles] to approve here.",
                &anonymous(&console),
            ),
        );
    };
    let (url, state) = provider.begin(&local(query.return_to.as_deref().unwrap_or("/")));
    let mut response = Redirect::to(&url).into_response();
    if let Ok(value) = HeaderValue::from_str(&console.sessions.set_cookie(
        SIGN_IN,
        Some(&state),
        Some(std::time::Duration::from_secs(600)),
    )) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
pub struct Callback {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

pub async fn callback(
    State(console): Shared,
    Query(answer): Query<Callback>,
    headers: HeaderMap,
) -> Response {
    let refused = |message: String| {
        html(
            StatusCode::UNAUTHORIZED,
            pages::problem(
                "Sign-in refused",
                &format!("{message}. Nothing was approved."),
                &anonymous(&console),
            ),
        )
    };
    let Some(provider) = &console.provider else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(error) = answer.error {
        return refused(format!(
            "the issuer answered {error}{}",
            answer
                .error_description
                .map_or(String::new(), |text| format!(" ({text})"))
        ));
    }
    let (Some(code), Some(state)) = (answer.code, answer.state) else {
        return refused("the issuer's answer has no code or state".to_owned());
    };
    let cookies = headers
        .get(header::COOKIE)
        .and_then(|value| value.to_str().ok());
    let cookie_state = console.sessions.verified(&jar(cookies), SIGN_IN);
    match provider
        .finish(cookie_state.as_deref(), &state, &code)
        .await
    {
        Ok((identity, return_to)) => {
            let (id, _) = console.sessions.start(identity);
            let mut response = Redirect::to(&local(&return_to)).into_response();
            for cookie in [
                console.sessions.set_cookie(SESSION, Some(&id), None),
                console.sessions.set_cookie(SIGN_IN, None, None),
            ] {
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
            }
            response
        }
        Err(message) => refused(message),
    }
}

#[derive(Deserialize)]
pub struct SignOut {
    #[serde(default)]
    csrf: String,
}

pub async fn sign_out(
    State(console): Shared,
    headers: HeaderMap,
    Form(form): Form<SignOut>,
) -> Response {
    let caller = match caller(&console, &headers, "/") {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    if let Err(response) = same_origin(&console, &headers) {
        return response;
    }
    if let Some((id, session)) = &caller.session {
        if !same_secret(&form.csrf, &session.csrf) {
            return forbidden(
                &console,
                "The form's token is missing or wrong (CSRF). Nothing was done.",
            );
        }
        console.sessions.end(id);
    }
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&console.sessions.set_cookie(SESSION, None, None)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn forbidden(console: &Console, message: &str) -> Response {
    html(
        StatusCode::FORBIDDEN,
        pages::problem("Refused", message, &anonymous(console)),
    )
}

/// A form must come from the console's own pages: when the browser names
/// the origin, it must be the console's.
fn same_origin(console: &Console, headers: &HeaderMap) -> Result<(), Response> {
    let Some(origin) = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
    else {
        return Ok(());
    };
    let expected = match &console.config.public_url {
        Some(url) => url.origin().ascii_serialization(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            format!("{}://{host}", if console.tls { "https" } else { "http" })
        }
    };
    if origin == expected {
        Ok(())
    } else {
        Err(forbidden(
            console,
            "The form was sent from another site. Nothing was done.",
        ))
    }
}

#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    note: String,
}

pub async fn decide(
    State(console): Shared,
    Path((id, step)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<DecisionForm>,
) -> Response {
    let path = format!("/runs/{id}");
    let caller = match caller(&console, &headers, &path) {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let Some((_, session)) = &caller.session else {
        // No anonymous write, ever.
        return to_sign_in(&path, false, &console);
    };
    if !same_secret(&form.csrf, &session.csrf) {
        return forbidden(
            &console,
            "The form's token is missing or wrong (CSRF). Nothing was done.",
        );
    }
    if let Err(response) = same_origin(&console, &headers) {
        return response;
    }
    let rejected = match form.decision.as_str() {
        "approve" => false,
        "reject" => true,
        _ => {
            return html(
                StatusCode::BAD_REQUEST,
                pages::problem(
                    "Refused",
                    "The decision is neither approve nor reject.",
                    &caller.viewer(&console),
                ),
            );
        }
    };
    if form.note.chars().count() > 2000 {
        return html(
            StatusCode::BAD_REQUEST,
            pages::problem(
                "Refused",
                "The note is longer than 2,000 characters.",
                &caller.viewer(&console),
            ),
        );
    }
    if !caller.roles.contains(&form.role) {
        return forbidden(
            &console,
            &format!(
                "{} does not hold the role {}. Nothing was approved.",
                session.identity.name, form.role
            ),
        );
    }
    let address = if console.trust_proxy {
        headers
            .get("x-forwarded-for")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .map(|value| value.trim().to_owned())
            .unwrap_or_else(|| peer.ip().to_string())
    } else {
        peer.ip().to_string()
    };
    let identity = &session.identity;
    let detail = json!({
        "by": form.role,
        "note": form.note,
        "identity": {
            "issuer": identity.issuer, "subject": identity.subject,
            "name": identity.name, "email": identity.email,
        },
        "address": address,
        "via": "console",
    });
    let role = form.role.clone();
    let event = if rejected { "rejected" } else { "approved" };
    let wanted = (id.clone(), step.clone());
    // The check and the record under one lock, so that two decisions for
    // one role cannot both pass.
    let mut journal = console.journal.clone().lock_owned().await;
    let outcome = tokio::task::spawn_blocking(move || {
        let Some(run) = journal.run(&wanted.0)? else {
            return Ok(Err(StatusCode::NOT_FOUND));
        };
        let records = journal.records(&run.id)?;
        let waits = pages::waiting(&run, &records)
            .is_some_and(|wait| wait.step == wanted.1 && wait.missing.contains(&role));
        if !waits {
            return Ok(Err(StatusCode::CONFLICT));
        }
        journal.append(&run.id, &wanted.1, event, &detail).map(Ok)
    })
    .await;
    match outcome {
        Ok(Ok(Ok(_))) => {
            console.live.wake.notify_one();
            Redirect::to(&format!("{path}#step-{step}")).into_response()
        }
        Ok(Ok(Err(status))) => html(
            status,
            pages::problem(
                "Nothing to decide",
                &format!(
                    "Run {id} does not wait for {} at {step}: it was decided already, the run moved on, or there is no such step.",
                    form.role
                ),
                &caller.viewer(&console),
            ),
        ),
        Ok(Err(error)) => html(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::problem(
                "Not recorded",
                &format!("{error}. Nothing was approved."),
                &caller.viewer(&console),
            ),
        ),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
