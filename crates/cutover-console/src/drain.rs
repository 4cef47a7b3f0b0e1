//! The drain page: each configured db-scheduler table's forecast, read
//! (read-only) when the page is asked for, as `cutover drain` reads it.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use cutover_db::{Database, DatabaseUrl, TableName};
use cutover_drain::{DrainReport, Profile};
use cutover_run::report::{escape, tone};

use crate::routes::{Shared, caller, html};
use crate::{Config, ConsoleError, pages};

/// A drain source, checked at start.
pub(crate) struct Source {
    url: DatabaseUrl,
    profile: Profile,
    connect: cutover_db::ConnectOptions,
}

/// The configured sources: every URL parsed and every rules file read
/// before the console starts.
pub(crate) fn sources(
    config: &Config,
    connect: &cutover_db::ConnectOptions,
) -> Result<Vec<Source>, ConsoleError> {
    config
        .drain
        .iter()
        .map(|source| {
            let url = DatabaseUrl::parse(&source.url).map_err(|error| {
                ConsoleError::Config(format!(
                    "drain source {}: {error}",
                    cutover_db::redact(&source.url)
                ))
            })?;
            let profile = match &source.rules {
                Some(path) => Profile::load(path)
                    .map_err(|error| ConsoleError::Config(format!("drain rules: {error}")))?,
                None => Profile::default_profile(),
            };
            Ok(Source {
                url,
                profile,
                connect: cutover_db::ConnectOptions {
                    read_only: true,
                    ..connect.clone()
                },
            })
        })
        .collect()
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

async fn read(source: &Source) -> Result<DrainReport, String> {
    let table = source
        .url
        .table
        .clone()
        .unwrap_or_else(|| TableName::new("scheduled_tasks"));
    let database = Database::connect(&source.url, &source.connect)
        .await
        .map_err(|error| error.to_string())?;
    cutover_drain::analyse(&database, &table, &source.profile, now_micros())
        .await
        .map_err(|error| error.to_string())
}

fn section(out: &mut String, name: &str, report: &Result<DrainReport, String>) {
    let _ = write!(out, "<section><h2>{}</h2>", escape(name));
    match report {
        Err(message) => {
            let _ = write!(
                out,
                r#"<p class="muted">Could not be read: {}</p>"#,
                escape(message)
            );
        }
        Ok(report) => {
            let _ = write!(
                out,
                r#"<p>{} timers in {}, read at {}.</p><table><thead><tr><th>Version</th><th>Pending</th><th>State</th><th>Drained by</th><th>In</th></tr></thead><tbody>"#,
                report.timers,
                escape(&report.table),
                escape(&report.at)
            );
            for version in &report.versions {
                let state = if version.drained {
                    "drained"
                } else {
                    "pending"
                };
                let _ = write!(
                    out,
                    r#"<tr><td>{}</td><td>{}</td><td><span class="badge {}">{state}</span></td><td>{}</td><td>{}</td></tr>"#,
                    escape(&version.name),
                    version.pending,
                    if version.drained {
                        tone("passed")
                    } else {
                        tone("waiting")
                    },
                    escape(version.drained_by.as_deref().unwrap_or("")),
                    escape(version.drained_in.as_deref().unwrap_or("")),
                );
            }
            out.push_str("</tbody></table>");
            if !report.problems.is_empty() {
                out.push_str("<h3>To look at</h3><ul>");
                for problem in &report.problems {
                    let _ = write!(
                        out,
                        "<li><strong>{}</strong> ({} timers): {}</li>",
                        escape(problem.kind),
                        problem.timers,
                        escape(&problem.message)
                    );
                }
                out.push_str("</ul>");
            }
        }
    }
    out.push_str("</section>");
}

pub(crate) async fn page(State(console): Shared, headers: HeaderMap) -> Response {
    let caller = match caller(&console, &headers, "/drain") {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let mut body = String::from(
        r#"<header><h1>Drain</h1><p>Pending db-scheduler timers per version, and when each version should have drained.</p></header><main>"#,
    );
    if console.drains.is_empty() {
        body.push_str(r#"<section><p class="muted">No drain sources: name them with <code>cutover serve --drain URL#TABLE</code> or <code>[[drain]]</code> in the console file.</p></section>"#);
    }
    for source in &console.drains {
        let report = read(source).await;
        section(&mut body, source.url.redacted(), &report);
    }
    body.push_str("</main>");
    html(
        StatusCode::OK,
        pages::page("Drain", &caller.viewer(&console), &body, false),
    )
}
