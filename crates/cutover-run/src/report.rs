//! The evidence report of a run: JSON, and one self-contained HTML page
//! (inline CSS and SVG, no scripts, nothing fetched) with the timeline of
//! steps and who approved what, each check with its evidence, and charts:
//! a diff by category and by group, the trend of a runbook's diffs across
//! its runs, drain forecasts and delivery states.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Value, json};

use crate::engine::{Decision, decisions, evidence};
use crate::journal::{Journal, JournalError, Record, RunInfo};

/// One step as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// The step's name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// When it (last) started.
    pub started_at: Option<String>,
    /// When it ended.
    pub ended_at: Option<String>,
    /// How long it ran, in seconds.
    pub seconds: Option<f64>,
    /// passed, failed, differences, green, yellow, red, skipped, waiting, running or not run.
    pub outcome: String,
    /// One line.
    pub summary: String,
    /// Who approved, when, with what note.
    pub approvals: Vec<Value>,
    /// The step's evidence (its command's JSON answer, or what the run recorded).
    pub evidence: Value,
}

/// One point of a runbook's diff trend: a run's diff step.
#[derive(Debug, Clone, Serialize)]
pub struct TrendPoint {
    /// The run.
    pub run: String,
    /// When it started.
    pub started_at: String,
    /// The diff step.
    pub step: String,
    /// Missing, extra and changed rows, and the source's rows.
    pub missing: u64,
    /// Rows only in the target.
    pub extra: u64,
    /// Rows that differ.
    pub changed: u64,
    /// Rows in the source.
    pub source_rows: u64,
    /// (missing + extra + changed) / source rows.
    pub difference_rate: f64,
}

/// A run's evidence report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The run.
    pub run: String,
    /// The runbook's name.
    pub runbook: String,
    /// The runbook file.
    pub runbook_path: String,
    /// When the run started.
    pub started_at: String,
    /// Its status.
    pub status: String,
    /// When the report was made.
    pub generated_at: String,
    /// Whether the whole journal's hash chain holds, and its record count or the break.
    pub journal: Value,
    /// The steps, in order.
    pub steps: Vec<StepReport>,
    /// Every run of the same runbook's diff results, oldest first.
    pub trend: Vec<TrendPoint>,
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The steps of a run as its records tell them.
pub fn steps_of(records: &[Record]) -> Vec<StepReport> {
    let mut names: Vec<(String, String)> = Vec::new();
    if let Some(start) = records.iter().find(|record| record.event == "run-started") {
        for name in start.detail["steps"].as_array().into_iter().flatten() {
            if let Some(name) = name.as_str() {
                names.push((name.to_owned(), String::new()));
            }
        }
    }
    for record in records.iter().filter(|record| !record.step.is_empty()) {
        if !names.iter().any(|(name, _)| *name == record.step) {
            names.push((record.step.clone(), String::new()));
        }
    }
    let evidence = evidence(records);
    names
        .into_iter()
        .map(|(name, _)| {
            let mine: Vec<&Record> = records
                .iter()
                .filter(|record| record.step == name)
                .collect();
            let started = mine
                .iter()
                .rev()
                .find(|record| record.event == "step-started");
            let ended = mine.iter().rev().find(|record| {
                matches!(
                    record.event.as_str(),
                    "step-finished" | "step-failed" | "step-skipped"
                )
            });
            let waiting = mine.iter().rev().find(|record| record.event == "waiting");
            let kind = started
                .map(|record| text(&record.detail, "kind"))
                .filter(|kind| !kind.is_empty())
                .unwrap_or_else(|| {
                    if waiting.is_some()
                        || mine
                            .iter()
                            .any(|record| record.event == "approved" || record.event == "rejected")
                    {
                        "approval".to_owned()
                    } else {
                        String::new()
                    }
                });
            let (outcome, summary) = match (ended, started, waiting) {
                (Some(ended), _, _) if started.is_none_or(|started| started.seq < ended.seq) => (
                    text(&ended.detail, "outcome"),
                    text(&ended.detail, "summary"),
                ),
                (_, Some(_), _) => (
                    "running".to_owned(),
                    "the run stopped during this step".to_owned(),
                ),
                (_, _, Some(waiting)) => (
                    "waiting".to_owned(),
                    format!(
                        "waiting for {}",
                        waiting.detail["missing"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                _ => ("not run".to_owned(), String::new()),
            };
            StepReport {
                kind: if kind.is_empty() && !decisions(records, &name).is_empty() {
                    "approval".to_owned()
                } else {
                    kind
                },
                started_at: started.map(|record| record.at.clone()),
                ended_at: ended.map(|record| record.at.clone()),
                seconds: ended
                    .and_then(|record| record.detail.get("seconds"))
                    .and_then(Value::as_f64),
                outcome,
                summary,
                approvals: decisions(records, &name)
                    .iter()
                    .map(Decision::to_json)
                    .collect(),
                evidence: evidence.get(&name).cloned().unwrap_or(Value::Null),
                name,
            }
        })
        .collect()
}

/// The diff results of every run of `runbook`, oldest first.
pub fn trend(journal: &Journal, runbook: &str) -> Result<Vec<TrendPoint>, JournalError> {
    let mut trend = Vec::new();
    for other in journal
        .runs()?
        .iter()
        .filter(|other| other.runbook == runbook)
    {
        trend.extend(trend_points(other, &journal.records(&other.id)?));
    }
    sort_trend(&mut trend);
    Ok(trend)
}

/// The trend points of one run: each of its finished diff steps, with its
/// reconciliation figures.
pub fn trend_points(run: &RunInfo, records: &[Record]) -> Vec<TrendPoint> {
    let mut points = Vec::new();
    for (step, found) in evidence(records) {
        let Some(summary) = found
            .get("summary")
            .filter(|_| found.get("difference_rate").is_some())
        else {
            continue;
        };
        let number = |key: &str| summary.get(key).and_then(Value::as_u64).unwrap_or(0);
        points.push(TrendPoint {
            run: run.id.clone(),
            started_at: run.started_at.clone(),
            step,
            missing: number("missing"),
            extra: number("extra"),
            changed: number("changed"),
            source_rows: number("source_rows"),
            difference_rate: found["difference_rate"].as_f64().unwrap_or(0.0),
        });
    }
    points
}

/// Puts trend points in the trend's order: by run start, then step.
pub fn sort_trend(trend: &mut [TrendPoint]) {
    trend.sort_by(|a, b| {
        a.started_at
            .cmp(&b.started_at)
            .then_with(|| a.step.cmp(&b.step))
    });
}

/// Builds the report of `run` from the journal.
pub fn build(journal: &Journal, run: &RunInfo) -> Result<Report, JournalError> {
    let records = journal.records(&run.id)?;
    let steps = steps_of(&records);
    let trend = trend(journal, &run.runbook)?;
    let journal_state = match journal.verify()? {
        Ok(records) => json!({"intact": true, "records": records}),
        Err(tampered) => {
            json!({"intact": false, "record": tampered.seq, "reason": tampered.reason})
        }
    };
    Ok(Report {
        run: run.id.clone(),
        runbook: run.runbook.clone(),
        runbook_path: run.path.clone(),
        started_at: run.started_at.clone(),
        status: run.status.clone(),
        generated_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        journal: journal_state,
        steps,
        trend,
    })
}

/// `text` escaped for HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// The badge class of an outcome: good, warn, bad or none.
pub fn tone(outcome: &str) -> &'static str {
    match outcome {
        "passed" | "green" | "approved" | "finished" | "verified" => "good",
        "differences" | "yellow" | "waiting" | "skipped" | "running" | "acknowledged"
        | "replayed" => "warn",
        "failed" | "red" | "missing" | "stopped" | "undelivered" | "rejected" => "bad",
        _ => "none",
    }
}

/// A horizontal bar chart: one bar per (label, value), with a colour class.
fn bars(title: &str, items: &[(String, f64, &str)], unit: &str) -> String {
    let max = items
        .iter()
        .map(|(_, value, _)| *value)
        .fold(0.0_f64, f64::max)
        .max(1e-12);
    let row = 26;
    let height = items.len() * row + 30;
    // Room for the longest label (about 7 px a character at 12 px), then the bars.
    let longest = items
        .iter()
        .map(|(label, _, _)| label.chars().count())
        .max()
        .unwrap_or(0);
    let label_width = (longest * 7 + 16).clamp(120, 420);
    let width = label_width + 460;
    let mut svg = format!(
        r#"<figure class="chart"><figcaption>{}</figcaption><svg role="img" aria-label="{}" viewBox="0 0 {width} {height}" width="{width}" height="{height}">"#,
        escape(title),
        escape(title)
    );
    for (index, (label, value, class)) in items.iter().enumerate() {
        let y = 10 + index * row;
        let bar = (value / max * 360.0).max(if *value > 0.0 { 2.0 } else { 0.0 });
        let shown = if unit == "%" {
            format!("{:.3}%", value * 100.0)
        } else if value.fract() == 0.0 {
            format!("{value:.0}")
        } else {
            format!("{value:.2}")
        };
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end" class="label">{}</text><rect x="{label_width}" y="{y}" width="{bar:.1}" height="18" class="bar {class}"/><text x="{:.1}" y="{}" class="value">{}</text>"#,
            label_width - 10,
            y + 14,
            escape(label),
            label_width as f64 + 6.0 + bar,
            y + 14,
            escape(&shown)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

/// A line chart of values over runs.
fn line(title: &str, points: &[(String, f64)]) -> String {
    let (width, height, left, bottom) = (640.0, 220.0, 60.0, 40.0);
    let max = points
        .iter()
        .map(|(_, value)| *value)
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let step = if points.len() > 1 {
        (width - left - 20.0) / (points.len() - 1) as f64
    } else {
        0.0
    };
    let coordinates: Vec<(f64, f64)> = points
        .iter()
        .enumerate()
        .map(|(index, (_, value))| {
            (
                left + step * index as f64,
                height - bottom - value / max * (height - bottom - 20.0),
            )
        })
        .collect();
    let path: Vec<String> = coordinates
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    let mut svg = format!(
        r#"<figure class="chart"><figcaption>{}</figcaption><svg role="img" aria-label="{}" viewBox="0 0 {width} {height}" width="{width}" height="{height}"><line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" class="axis"/><text x="{:.1}" y="24" text-anchor="end" class="label">{:.3}%</text><text x="{:.1}" y="{:.1}" text-anchor="end" class="label">0%</text><polyline points="{}" class="trend"/>"#,
        escape(title),
        escape(title),
        height - bottom,
        width - 10.0,
        height - bottom,
        left - 6.0,
        max * 100.0,
        left - 6.0,
        height - bottom,
        path.join(" ")
    );
    for ((x, y), (label, value)) in coordinates.iter().zip(points) {
        let _ = write!(
            svg,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="4" class="point"><title>{} {:.3}%</title></circle><text x="{x:.1}" y="{:.1}" text-anchor="middle" class="tick">{}</text>"#,
            escape(label),
            value * 100.0,
            height - bottom + 16.0,
            escape(&label.get(5..16).unwrap_or(label).replace('T', " "))
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn diff_charts(step: &StepReport) -> String {
    let evidence = &step.evidence;
    let number = |key: &str| {
        evidence
            .pointer(&format!("/summary/{key}"))
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    };
    let mut html = bars(
        &format!("{}: rows by category", step.name),
        &[
            ("matched".to_owned(), number("matched"), "good"),
            ("missing".to_owned(), number("missing"), "bad"),
            ("extra".to_owned(), number("extra"), "warn"),
            ("changed".to_owned(), number("changed"), "warn"),
            ("duplicate keys".to_owned(), number("duplicate_keys"), "bad"),
            ("null keys".to_owned(), number("null_keys"), "bad"),
        ],
        "",
    );
    let groups = evidence["groups"].as_array().cloned().unwrap_or_default();
    if !groups.is_empty() {
        let mut items: Vec<(String, f64, &str)> = groups
            .iter()
            .map(|group| {
                let label = group["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|value| match value {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(" / ");
                let total = ["missing", "extra", "changed"]
                    .iter()
                    .map(|key| group[*key].as_f64().unwrap_or(0.0))
                    .sum::<f64>();
                (label, total, "warn")
            })
            .collect();
        items.sort_by(|a, b| b.1.total_cmp(&a.1));
        items.truncate(15);
        let by: Vec<&str> = evidence["group_by"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        html.push_str(&bars(
            &format!("{}: differing rows by {}", step.name, by.join(", ")),
            &items,
            "",
        ));
    }
    let columns = evidence["columns"].as_array().cloned().unwrap_or_default();
    if !columns.is_empty() {
        let items: Vec<(String, f64, &str)> = columns
            .iter()
            .map(|column| {
                (
                    text(column, "column"),
                    column["changed"].as_f64().unwrap_or(0.0),
                    "warn",
                )
            })
            .collect();
        html.push_str(&bars(
            &format!("{}: changed rows per column", step.name),
            &items,
            "",
        ));
    }
    html
}

fn drain_chart(step: &StepReport) -> String {
    let versions = step.evidence["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let items: Vec<(String, f64, &str)> = versions
        .iter()
        .map(|version| {
            let name = text(version, "name");
            let by = text(version, "drained_by");
            let label = if by.is_empty() {
                name
            } else {
                format!("{name} (gone by {by})")
            };
            let pending = version["pending"].as_f64().unwrap_or(0.0);
            (label, pending, if pending == 0.0 { "good" } else { "warn" })
        })
        .collect();
    bars(
        &format!("{}: pending timers per version", step.name),
        &items,
        "",
    )
}

fn delivery_chart(step: &StepReport) -> String {
    let ledger = step.evidence["ledger"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let items: Vec<(String, f64, &str)> = ledger
        .iter()
        .filter_map(|pair| {
            let state = pair.get(0)?.as_str()?.to_owned();
            let count = pair.get(1)?.as_f64()?;
            let class = tone(&state);
            Some((state, count, if class == "none" { "warn" } else { class }))
        })
        .collect();
    bars(
        &format!("{}: files per delivery state", step.name),
        &items,
        "",
    )
}

/// One bar per day: the discrepancies between the ledger and what the
/// receiver lists, labelled with how many uploads it listed.
fn reconcile_chart(step: &StepReport) -> String {
    let days = step.evidence["days"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let items: Vec<(String, f64, &str)> = days
        .iter()
        .map(|(date, day)| {
            let count = |name: &str| day[name].as_array().map_or(0, Vec::len);
            let found = [
                "strangers",
                "not_listed",
                "duplicates",
                "stuck",
                "undelivered",
            ]
            .iter()
            .map(|name| count(name))
            .sum::<usize>();
            let label = format!(
                "{date} ({} listed, {} matched)",
                day["listed"].as_u64().unwrap_or(0),
                day["matched"].as_u64().unwrap_or(0)
            );
            (label, found as f64, if found == 0 { "good" } else { "bad" })
        })
        .collect();
    bars(
        &format!(
            "{}: discrepancies per day, ledger against receiver",
            step.name
        ),
        &items,
        "",
    )
}

/// The report's style sheet, which the console shares.
pub const STYLE: &str = "
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d232b;background:#f6f7f9}
header{background:#1d2b3a;color:#fff;padding:20px 32px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:2px 0;color:#c9d3de}main{padding:20px 32px;max-width:1100px}
section{background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:16px 20px;margin:0 0 18px}
h2{font-size:17px;margin:0 0 12px}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #eceff3;vertical-align:top;font-size:14px}
th{color:#5a6673;font-weight:600}.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.badge.good{background:#dff3e4;color:#1e6b34}.badge.warn{background:#fff1d6;color:#8a5a00}
.badge.bad{background:#fde2e1;color:#a32019}.badge.none{background:#eceff3;color:#4a5561}
.chart{margin:8px 0 16px}.chart figcaption{font-weight:600;margin:0 0 4px;font-size:14px}
svg .label,svg .value,svg .tick{font-size:12px;fill:#3b4652}svg .bar.good{fill:#4caf6d}svg .bar.warn{fill:#e0a030}
svg .bar.bad{fill:#d9534f}svg .bar.none{fill:#9aa5b1}svg .axis{stroke:#9aa5b1}svg .trend{fill:none;stroke:#2f6db5;stroke-width:2}
svg .point{fill:#2f6db5}details pre{background:#f3f5f8;padding:10px;overflow:auto;font-size:12px;max-height:360px}
.integrity.good{color:#1e6b34}.integrity.bad{color:#a32019}
";

/// A line chart per diff step of a runbook's differing rows across its
/// runs (inline SVG).
pub fn trend_charts(trend: &[TrendPoint]) -> String {
    let mut by_step: BTreeMap<&str, Vec<(String, f64)>> = BTreeMap::new();
    for point in trend {
        by_step
            .entry(point.step.as_str())
            .or_default()
            .push((point.started_at.clone(), point.difference_rate));
    }
    let mut charts = String::new();
    for (step, points) in by_step {
        charts.push_str(&line(
            &format!("{step}: differing rows across this runbook's runs"),
            &points,
        ));
    }
    charts
}

/// The report as one self-contained HTML page.
pub fn html(report: &Report) -> String {
    let mut page = String::new();
    let status_tone = tone(&report.status);
    let _ = write!(
        page,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>cutover evidence: {run}</title><style>{STYLE}</style></head><body><header><h1>{runbook}</h1><p>Run <strong id="run-id">{run}</strong> · started {started} · status <span class="badge {status_tone}" id="run-status">{status}</span></p><p>Runbook {path} · report generated {generated}</p></header><main>"#,
        run = escape(&report.run),
        runbook = escape(&report.runbook),
        started = escape(&report.started_at),
        status = escape(&report.status),
        path = escape(&report.runbook_path),
        generated = escape(&report.generated_at),
    );
    let intact = report.journal["intact"].as_bool().unwrap_or(false);
    let integrity = if intact {
        format!(
            "The journal's hash chain holds over all {} records.",
            report.journal["records"].as_u64().unwrap_or(0)
        )
    } else {
        format!(
            "The journal's hash chain is broken at record {}: {}.",
            report.journal["record"].as_i64().unwrap_or(0),
            text(&report.journal, "reason")
        )
    };
    let _ = write!(
        page,
        r#"<section id="integrity"><h2>Journal integrity</h2><p class="integrity {}">{}</p></section>"#,
        if intact { "good" } else { "bad" },
        escape(&integrity)
    );
    page.push_str(r#"<section id="timeline"><h2>Timeline</h2><table><thead><tr><th>Step</th><th>Kind</th><th>Outcome</th><th>Started</th><th>Seconds</th><th>Summary</th><th>Approvals</th></tr></thead><tbody>"#);
    for step in &report.steps {
        let approvals: Vec<String> = step
            .approvals
            .iter()
            .map(|approval| {
                let note = text(approval, "note");
                let identity = approval.get("identity").map_or(String::new(), |identity| {
                    format!(
                        r#" <span class="identity">signed in as {} &lt;{}&gt;, subject {} of {}, from {}</span>"#,
                        escape(&text(identity, "name")),
                        escape(&text(identity, "email")),
                        escape(&text(identity, "subject")),
                        escape(&text(identity, "issuer")),
                        escape(&text(approval, "address")),
                    )
                });
                format!(
                    "{}{} at {}{}{identity}",
                    escape(&text(approval, "by")),
                    if text(approval, "decision") == "rejected" {
                        " <strong>rejected</strong>"
                    } else {
                        ""
                    },
                    escape(&text(approval, "at")),
                    if note.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", escape(&note))
                    }
                )
            })
            .collect();
        let _ = write!(
            page,
            r#"<tr class="step" data-step="{name}"><td>{name}</td><td>{kind}</td><td><span class="badge {tone}">{outcome}</span></td><td>{started}</td><td>{seconds}</td><td>{summary}</td><td>{approvals}</td></tr>"#,
            name = escape(&step.name),
            kind = escape(&step.kind),
            tone = tone(&step.outcome),
            outcome = escape(&step.outcome),
            started = escape(step.started_at.as_deref().unwrap_or("")),
            seconds = step
                .seconds
                .map_or(String::new(), |seconds| format!("{seconds:.2}")),
            summary = escape(&step.summary),
            approvals = approvals.join("<br>"),
        );
    }
    page.push_str("</tbody></table></section>");

    let checks: Vec<&StepReport> = report
        .steps
        .iter()
        .filter(|step| step.kind == "checkpoint")
        .collect();
    if !checks.is_empty() {
        page.push_str(r#"<section id="checks"><h2>Checkpoints</h2>"#);
        for step in checks {
            let _ = write!(
                page,
                r#"<h3>{} <span class="badge {}">{}</span></h3><table><thead><tr><th>Rule</th><th>Colour</th><th>Holds</th></tr></thead><tbody>"#,
                escape(&step.name),
                tone(&step.outcome),
                escape(&step.outcome)
            );
            for colour in ["green", "yellow"] {
                for rule in step.evidence[colour].as_array().into_iter().flatten() {
                    let holds = rule["holds"].as_bool().unwrap_or(false);
                    let error = text(rule, "error");
                    let _ = write!(
                        page,
                        r#"<tr><td><code>{}</code></td><td>{colour}</td><td><span class="badge {}">{}</span>{}</td></tr>"#,
                        escape(&text(rule, "rule")),
                        if holds { "good" } else { "bad" },
                        if holds { "yes" } else { "no" },
                        if error.is_empty() {
                            String::new()
                        } else {
                            format!(" {}", escape(&error))
                        }
                    );
                }
            }
            page.push_str("</tbody></table>");
        }
        page.push_str("</section>");
    }

    let verified: Vec<&StepReport> = report
        .steps
        .iter()
        .filter(|step| step.evidence.pointer("/verification/checks").is_some())
        .collect();
    if !verified.is_empty() {
        page.push_str(r#"<section id="verification"><h2>Verification checks</h2>"#);
        for step in verified {
            let _ = write!(
                page,
                r#"<h3>{}</h3><table><thead><tr><th>Check</th><th>Result</th><th>Evidence</th></tr></thead><tbody>"#,
                escape(&step.name)
            );
            for check in step.evidence["verification"]["checks"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let status = text(check, "status");
                let class = match status.as_str() {
                    "pass" => "good",
                    "fail" => "bad",
                    _ => "none",
                };
                let lines: Vec<String> = check["evidence"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(escape)
                    .collect();
                let _ = write!(
                    page,
                    r#"<tr class="check" data-check="{name}"><td>{name}</td><td><span class="badge {class}">{status}</span></td><td>{}</td></tr>"#,
                    lines.join("<br>"),
                    name = escape(&text(check, "name")),
                    status = escape(&status),
                );
            }
            page.push_str("</tbody></table>");
        }
        page.push_str("</section>");
    }

    let mut charts = String::new();
    for step in &report.steps {
        match step.kind.as_str() {
            "diff" if step.evidence.get("summary").is_some() => charts.push_str(&diff_charts(step)),
            "drain" if step.evidence.get("versions").is_some() => {
                charts.push_str(&drain_chart(step))
            }
            "send" | "verify" if step.evidence.get("ledger").is_some() => {
                charts.push_str(&delivery_chart(step));
            }
            "reconcile" if step.evidence.get("days").is_some() => {
                charts.push_str(&reconcile_chart(step));
            }
            _ => {}
        }
    }
    if report.trend.len() > 1 {
        charts.push_str(&trend_charts(&report.trend));
    }
    if !charts.is_empty() {
        let _ = write!(
            page,
            r#"<section id="charts"><h2>Results</h2>{charts}</section>"#
        );
    }

    page.push_str(r#"<section id="evidence"><h2>Evidence</h2>"#);
    for step in &report.steps {
        if step.evidence.is_null() {
            continue;
        }
        let pretty = serde_json::to_string_pretty(&step.evidence).unwrap_or_default();
        let _ = write!(
            page,
            "<details><summary>{} ({})</summary><pre>{}</pre></details>",
            escape(&step.name),
            escape(&step.kind),
            escape(&pretty)
        );
    }
    page.push_str("</section></main></body></html>\n");
    page
}

/// Writes `report.html` and `report.json` into `directory`; their paths.
pub fn write(
    report: &Report,
    directory: &std::path::Path,
) -> std::io::Result<(std::path::PathBuf, std::path::PathBuf)> {
    std::fs::create_dir_all(directory)?;
    let html_path = directory.join("report.html");
    let json_path = directory.join("report.json");
    let json = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    for (path, bytes) in [(&html_path, html(report).into_bytes()), (&json_path, json)] {
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, bytes)?;
        std::fs::rename(&temporary, path)?;
    }
    Ok((html_path, json_path))
}
