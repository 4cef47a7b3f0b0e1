//! The console's pages, rendered on the server (no script needed to read
//! or decide; `console.js` only swaps in live updates). Every value from
//! the journal is escaped.

use std::fmt::Write as _;

use cutover_run::engine::standing;
use cutover_run::report::{StepReport, escape, steps_of, tone};
use cutover_run::{Record, RunInfo};

use crate::signin::Identity;

/// An approval step waiting for decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The step.
    pub step: String,
    /// Roles that still have to decide.
    pub missing: Vec<String>,
    /// Whether the run waits live (`cutover run --wait-for-approvals`) and
    /// goes on by itself, rather than having stopped to wait.
    pub live: bool,
}

/// How many of a run's steps have ended (passed, failed, skipped, decided
/// by a checkpoint): not running, waiting or still to run.
pub fn ended(steps: &[StepReport]) -> usize {
    steps
        .iter()
        .filter(|step| !matches!(step.outcome.as_str(), "running" | "not run" | "waiting"))
        .count()
}

/// The approval step a run waits at, if any: the latest `waiting` record
/// of a step that has not ended since, in a run that has not ended, with
/// the roles whose standing decision is not yet an approval.
pub fn waiting(run: &RunInfo, records: &[Record]) -> Option<Waiting> {
    if !matches!(run.status.as_str(), "running" | "waiting") {
        return None;
    }
    let last = records
        .iter()
        .rev()
        .find(|record| record.event == "waiting")?;
    let ended = records.iter().any(|record| {
        record.seq > last.seq
            && record.step == last.step
            && matches!(
                record.event.as_str(),
                "step-finished" | "step-failed" | "step-skipped"
            )
    });
    if ended {
        return None;
    }
    let decided = standing(records, &last.step);
    let missing: Vec<String> = last.detail["missing"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|role| role.as_str())
        .filter(|role| {
            !decided
                .iter()
                .any(|decision| decision.by == *role && !decision.rejected)
        })
        .map(str::to_owned)
        .collect();
    Some(Waiting {
        step: last.step.clone(),
        missing,
        live: run.status == "running",
    })
}

const CONSOLE_STYLE: &str = "
nav{background:#14202c;padding:8px 32px;color:#c9d3de;font-size:14px}nav a{color:#fff;margin-right:16px}
nav form{display:inline}nav button{background:none;border:1px solid #5a6673;color:#fff;border-radius:4px;cursor:pointer}
.decide{border-color:#e0a030}.decide textarea{width:100%;min-height:60px;font:inherit}
.decide button{font:inherit;padding:6px 14px;margin:8px 8px 0 0;border-radius:6px;border:1px solid #9aa5b1;cursor:pointer}
.decide button.approve{background:#1e6b34;color:#fff;border-color:#1e6b34}.decide button.reject{background:#fff;color:#a32019;border-color:#a32019}
.running{font-weight:600}.muted{color:#5a6673}.error{border-color:#a32019}code{background:#f3f5f8;padding:1px 4px;border-radius:3px}
";

/// Who is looking at a page.
#[derive(Debug)]
pub struct Viewer<'a> {
    /// The signed-in person, if any.
    pub identity: Option<&'a Identity>,
    /// Their roles.
    pub roles: &'a [String],
    /// Their session's CSRF token.
    pub csrf: Option<&'a str>,
    /// Whether sign-in is configured at all.
    pub sign_in: bool,
}

/// A whole page around `body`.
pub fn page(title: &str, viewer: &Viewer<'_>, body: &str, refresh: bool) -> String {
    let mut out = String::with_capacity(body.len() + 4096);
    let _ = write!(
        out,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{title} · cutover</title>{refresh}<style>{}{CONSOLE_STYLE}</style><script src="/static/console.js" defer></script></head><body><nav><a href="/">Runs</a><a href="/deliveries">Deliveries</a><a href="/drain">Drain</a>"#,
        cutover_run::report::STYLE,
        title = escape(title),
        refresh = if refresh {
            r#"<noscript><meta http-equiv="refresh" content="10"></noscript>"#
        } else {
            ""
        },
    );
    match (viewer.identity, viewer.csrf) {
        (Some(identity), Some(csrf)) => {
            let _ = write!(
                out,
                r#"<span>Signed in as {}{}</span> <form method="post" action="/sign-out"><input type="hidden" name="csrf" value="{}"><button type="submit">Sign out</button></form>"#,
                escape(&identity.name),
                if viewer.roles.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", escape(&viewer.roles.join(", ")))
                },
                escape(csrf)
            );
        }
        _ if viewer.sign_in => out.push_str(r#"<a href="/sign-in">Sign in</a>"#),
        _ => out.push_str(r#"<span class="muted">read-only console</span>"#),
    }
    out.push_str("</nav>");
    out.push_str(body);
    out.push_str("</body></html>");
    out
}

/// A page that says what went wrong.
pub fn problem(title: &str, message: &str, viewer: &Viewer<'_>) -> String {
    page(
        title,
        viewer,
        &format!(
            r#"<header><h1>{}</h1></header><main><section class="error"><p>{}</p><p><a href="/">Back to the runs</a></p></section></main>"#,
            escape(title),
            escape(message)
        ),
        false,
    )
}

/// One run in the list: the run, and what it waits for.
#[derive(Debug)]
pub struct Listed {
    /// The run.
    pub run: RunInfo,
    /// Its approval wait, if any.
    pub waiting: Option<Waiting>,
    /// Steps finished of the steps the run started with.
    pub done: usize,
    /// Steps in all.
    pub steps: usize,
}

/// The list of runs, newest first, and each runbook's reconciliation trend.
pub fn index(listed: &[Listed], trends: &[(String, String)], viewer: &Viewer<'_>) -> String {
    let mut body = String::from(
        r#"<header><h1>Runs</h1><p>Every run in the journal, newest first, with what it waits for.</p></header><main><section><table><thead><tr><th>Run</th><th>Runbook</th><th>Started</th><th>Status</th><th>Steps</th><th>Waits for</th></tr></thead><tbody>"#,
    );
    for item in listed.iter().rev() {
        let waits = item.waiting.as_ref().map_or(String::new(), |waiting| {
            format!(
                r##"<a href="/runs/{}#step-{}">{}</a>: {}"##,
                escape(&item.run.id),
                escape(&waiting.step),
                escape(&waiting.step),
                escape(&waiting.missing.join(", "))
            )
        });
        let _ = write!(
            body,
            r#"<tr><td><a href="/runs/{id}">{id}</a></td><td>{runbook}</td><td>{started}</td><td><span class="badge {tone}">{status}</span></td><td>{done}/{steps}</td><td>{waits}</td></tr>"#,
            id = escape(&item.run.id),
            runbook = escape(&item.run.runbook),
            started = escape(&item.run.started_at),
            tone = tone(&item.run.status),
            status = escape(&item.run.status),
            done = item.done,
            steps = item.steps,
        );
    }
    if listed.is_empty() {
        body.push_str(r#"<tr><td colspan="6" class="muted">No runs yet: <code>cutover run RUNBOOK --journal</code> this journal.</td></tr>"#);
    }
    body.push_str("</tbody></table></section>");
    for (runbook, charts) in trends {
        let _ = write!(
            body,
            r#"<section><h2>Reconciliation trend: {}</h2>{charts}</section>"#,
            escape(runbook)
        );
    }
    body.push_str("</main>");
    page("Runs", viewer, &body, false)
}

/// The part of a run's page that live updates replace: the same for every
/// viewer, so it is rendered once per change. `data-state` names the
/// approval wait, so that the page reloads (for the viewer's own forms)
/// when that changes.
pub fn live(run: &RunInfo, records: &[Record], now: chrono::DateTime<chrono::Utc>) -> String {
    let steps = steps_of(records);
    let wait = waiting(run, records);
    let state = format!(
        "{}|{}",
        run.status,
        wait.as_ref().map_or(String::new(), |wait| format!(
            "{}:{}",
            wait.step,
            wait.missing.join(",")
        ))
    );
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        r#"<div id="live" data-events="/runs/{id}/events" data-state="{state}"><section><h2>Status</h2><p><span class="badge {tone}">{status}</span> {done} of {total} steps ended; journal record {last}.</p></section><section><h2>Steps</h2><table><thead><tr><th>Step</th><th>Kind</th><th>Outcome</th><th>Started</th><th>Seconds</th><th>Summary</th><th>Decisions</th></tr></thead><tbody>"#,
        id = escape(&run.id),
        state = escape(&state),
        tone = tone(&run.status),
        status = escape(&run.status),
        done = ended(&steps),
        total = steps.len(),
        last = records.last().map_or(0, |record| record.seq),
    );
    for step in &steps {
        step_row(&mut out, step, now);
    }
    out.push_str("</tbody></table></section></div>");
    out
}

/// Every journal record of a run (at page load; live updates leave it out,
/// so that an update stays small however long the run).
pub fn records_table(records: &[Record]) -> String {
    let mut out = String::with_capacity(200 * records.len() + 512);
    let _ = write!(
        out,
        r#"<section><details><summary>Journal records of this run ({})</summary><table><thead><tr><th>#</th><th>At</th><th>Step</th><th>Event</th><th>Detail</th></tr></thead><tbody>"#,
        records.len()
    );
    for record in records {
        let detail = ["outcome", "summary", "by", "note", "missing", "reason"]
            .iter()
            .filter_map(|key| {
                let value = record.detail.get(*key)?;
                let text = match value {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                Some(format!("{key}: {text}"))
            })
            .collect::<Vec<_>>()
            .join("; ");
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            record.seq,
            escape(&record.at),
            escape(&record.step),
            escape(&record.event),
            escape(&detail)
        );
    }
    out.push_str("</tbody></table></details></section>");
    out
}

fn step_row(out: &mut String, step: &StepReport, now: chrono::DateTime<chrono::Utc>) {
    let seconds = match (step.seconds, step.outcome.as_str(), &step.started_at) {
        (Some(seconds), _, _) => format!("{seconds:.2}"),
        (None, "running", Some(started)) => chrono::DateTime::parse_from_rfc3339(started)
            .map(|started| {
                format!(
                    r#"<span class="running">{:.0} so far</span>"#,
                    (now - started.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0
                )
            })
            .unwrap_or_default(),
        _ => String::new(),
    };
    let decisions: Vec<String> = step
        .approvals
        .iter()
        .map(|decision| {
            let text = |value: &serde_json::Value, key: &str| {
                value
                    .get(key)
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let who = decision.get("identity").map_or(String::new(), |identity| {
                format!(
                    " by {} ({})",
                    escape(&text(identity, "name")),
                    escape(&text(identity, "issuer"))
                )
            });
            let note = text(decision, "note");
            format!(
                "{} <strong>{}</strong>{who} at {}{}",
                escape(&text(decision, "by")),
                escape(&text(decision, "decision")),
                escape(&text(decision, "at")),
                if note.is_empty() {
                    String::new()
                } else {
                    format!(": {}", escape(&note))
                }
            )
        })
        .collect();
    let _ = write!(
        out,
        r#"<tr id="step-{name}"><td>{name}</td><td>{kind}</td><td><span class="badge {tone}">{outcome}</span></td><td>{started}</td><td>{seconds}</td><td>{summary}</td><td>{decisions}</td></tr>"#,
        name = escape(&step.name),
        kind = escape(&step.kind),
        tone = tone(&step.outcome),
        outcome = escape(&step.outcome),
        started = escape(step.started_at.as_deref().unwrap_or("")),
        summary = escape(&step.summary),
        decisions = decisions.join("<br>"),
    );
}

/// A run's page: its header, the viewer's decision forms, and the live part.
pub fn run_page(
    run: &RunInfo,
    records: &[Record],
    live_part: &str,
    viewer: &Viewer<'_>,
    approvable: &[String],
) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<header><h1>{runbook}</h1><p>Run {id}, started {started}</p><p><a href="/runs/{id}/report" style="color:#fff">Evidence report</a> · <a href="/runs/{id}/report.json" style="color:#fff">JSON</a></p></header><main>"#,
        runbook = escape(&run.runbook),
        id = escape(&run.id),
        started = escape(&run.started_at),
    );
    if let Some(wait) = waiting(run, records) {
        let _ = write!(
            body,
            r#"<section class="decide" id="decide"><h2>Waiting for approval: {step}</h2><p>Still to decide: {missing}.{how}</p>"#,
            step = escape(&wait.step),
            missing = escape(&wait.missing.join(", ")),
            how = if wait.live {
                " The run is waiting and goes on as soon as every approver has approved."
            } else {
                " The run stopped to wait: once every approver has approved, <code>cutover run</code> it again."
            },
        );
        match (viewer.identity, viewer.csrf) {
            (Some(_), Some(csrf)) if !approvable.is_empty() => {
                for role in approvable {
                    let _ = write!(
                        body,
                        r#"<form method="post" action="/runs/{id}/steps/{step}/decision"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="role" value="{role}"><label>Note as {role}<textarea name="note" maxlength="2000" placeholder="A ticket number, a condition"></textarea></label><button class="approve" type="submit" name="decision" value="approve">Approve as {role}</button><button class="reject" type="submit" name="decision" value="reject">Reject as {role}</button></form>"#,
                        id = escape(&run.id),
                        step = escape(&wait.step),
                        csrf = escape(csrf),
                        role = escape(role),
                    );
                }
            }
            (Some(_), Some(_)) => body.push_str(
                r#"<p class="muted">You hold none of the roles still to decide here.</p>"#,
            ),
            _ if viewer.sign_in => {
                let _ = write!(
                    body,
                    r#"<p><a href="/sign-in?return=/runs/{}">Sign in</a> to decide.</p>"#,
                    escape(&run.id)
                );
            }
            _ => {
                let _ = write!(
                    body,
                    r#"<p class="muted">Approving here needs sign-in: give <code>cutover serve --config FILE</code> a <code>[sign_in]</code> issuer and <code>[roles]</code>. Meanwhile, on the command line: <code>cutover approve {} {} --as ROLE --note TEXT</code>.</p>"#,
                    escape(&run.id),
                    escape(&wait.step)
                );
            }
        }
        body.push_str("</section>");
    }
    body.push_str(live_part);
    body.push_str(&records_table(records));
    body.push_str("</main>");
    let refresh = matches!(run.status.as_str(), "running");
    page(&run.id, viewer, &body, refresh)
}

/// The script that swaps in live updates (served as a file: the pages'
/// content security policy allows no inline script).
pub const SCRIPT: &str = r#"(function () {
  var live = document.getElementById('live');
  if (!live || !window.EventSource) { return; }
  var source = new EventSource(live.getAttribute('data-events'));
  source.addEventListener('update', function (event) {
    var holder = document.createElement('div');
    holder.innerHTML = event.data;
    var fresh = holder.firstElementChild;
    var current = document.getElementById('live');
    if (!fresh || !current) { return; }
    if (fresh.getAttribute('data-state') !== current.getAttribute('data-state')) {
      source.close();
      window.location.reload();
      return;
    }
    current.replaceWith(fresh);
  });
})();
"#;

/// One delivery ledger as the deliveries page shows it: its files per
/// state, and per day, data stream and state; or why it cannot be read.
pub type LedgerView = Result<(Vec<(String, u64)>, Vec<(String, String, String, u64)>), String>;

/// The deliveries page: each configured ledger per day and stream.
pub fn ledgers(found: &[(String, LedgerView)], viewer: &Viewer<'_>) -> String {
    let mut body = String::from(
        r#"<header><h1>Deliveries</h1><p>Each delivery ledger's files per day (first recorded, UTC) and data stream, by state.</p></header><main>"#,
    );
    if found.is_empty() {
        body.push_str(r#"<section><p class="muted">No ledgers: name them with <code>cutover serve --ledger FILE</code> or <code>ledgers = [...]</code> in the console file.</p></section>"#);
    }
    for (path, view) in found {
        let _ = write!(body, "<section><h2>{}</h2>", escape(path));
        match view {
            Err(message) => {
                let _ = write!(body, r#"<p class="muted">{}</p>"#, escape(message));
            }
            Ok((counts, rows)) => {
                body.push_str("<p>");
                for (state, count) in counts {
                    let _ = write!(
                        body,
                        r#"<span class="badge {}">{} {count}</span> "#,
                        tone(state),
                        escape(state)
                    );
                }
                body.push_str("</p>");
                let mut states: Vec<&str> = rows.iter().map(|row| row.2.as_str()).collect();
                states.sort_unstable();
                states.dedup();
                body.push_str("<table><thead><tr><th>Day</th><th>Stream</th>");
                for state in &states {
                    let _ = write!(body, "<th>{}</th>", escape(state));
                }
                body.push_str("</tr></thead><tbody>");
                let mut index = 0;
                while index < rows.len() {
                    let (day, stream) = (&rows[index].0, &rows[index].1);
                    let _ = write!(
                        body,
                        "<tr><td>{}</td><td>{}</td>",
                        escape(day),
                        escape(if stream.is_empty() { "(none)" } else { stream })
                    );
                    let group: Vec<&(String, String, String, u64)> = rows[index..]
                        .iter()
                        .take_while(|row| &row.0 == day && &row.1 == stream)
                        .collect();
                    for state in &states {
                        let count = group
                            .iter()
                            .find(|row| row.2 == *state)
                            .map_or(0, |row| row.3);
                        let _ = write!(body, "<td>{count}</td>");
                    }
                    body.push_str("</tr>");
                    index += group.len();
                }
                body.push_str("</tbody></table>");
            }
        }
        body.push_str("</section>");
    }
    body.push_str("</main>");
    page("Deliveries", viewer, &body, false)
}
