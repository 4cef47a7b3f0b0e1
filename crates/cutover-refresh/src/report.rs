//! The evidence of a refresh: what was copied, skipped and preserved, and
//! each verification check with its evidence, as JSON and as Markdown.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::sqlite_refresh::TableOutcome;
use crate::verify::{Status, Verification};

/// One refresh (or verification) report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The source, redacted.
    pub source: String,
    /// The target, redacted.
    pub target: String,
    /// The policy file.
    pub policy: String,
    /// The source was opened read-only (`default_transaction_read_only`, or a read-only file).
    pub source_read_only: bool,
    /// When the work started (RFC 3339, UTC).
    pub started_at: String,
    /// Seconds the refresh took (none for a verification alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_seconds: Option<f64>,
    /// Per table, when a refresh ran (or the baseline a verification used).
    pub tables: Vec<TableOutcome>,
    /// The policy's hooks that ran, with their outcome (never their output).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<crate::hooks::HookOutcome>,
    /// What a resumed refresh kept from the killed run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed: Option<crate::pg_resume::Resumed>,
    /// The verification suite's result, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

/// The part of a report's JSON a later verification reads back.
#[derive(Debug, Clone, Deserialize)]
pub struct Baseline {
    /// Per table: the preserved fingerprints.
    pub tables: Vec<BaselineTable>,
}

/// One table of a [`Baseline`].
#[derive(Debug, Clone, Deserialize)]
pub struct BaselineTable {
    /// The table.
    pub table: String,
    /// Its fingerprints, when preserved.
    #[serde(default)]
    pub preserved: Option<crate::fingerprint::Preserved>,
}

impl Baseline {
    /// Reads a report's JSON.
    pub fn parse(text: &str) -> Result<Baseline, String> {
        serde_json::from_str(text).map_err(|error| error.to_string())
    }

    /// As table outcomes (rows and actions unknown).
    pub fn outcomes(&self) -> Vec<TableOutcome> {
        self.tables
            .iter()
            .map(|table| TableOutcome {
                table: table.table.clone(),
                action: if table.preserved.is_some() {
                    "preserve"
                } else {
                    "copy"
                },
                rows: table
                    .preserved
                    .map(|preserved| preserved.after.rows)
                    .unwrap_or_default(),
                preserved: table.preserved,
                masked: Vec::new(),
            })
            .collect()
    }
}

fn status_word(status: Status) -> &'static str {
    match status {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::Skipped => "SKIPPED",
    }
}

impl Report {
    /// Whether the verification (if any) passed.
    pub fn passed(&self) -> bool {
        self.verification.as_ref().is_none_or(Verification::passed)
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut text = String::new();
        let verdict = match &self.verification {
            Some(verification) if verification.passed() => "verified",
            Some(_) => "VERIFICATION FAILED",
            None => "not verified",
        };
        let _ = writeln!(text, "# Refresh of {}: {verdict}\n", self.target);
        let read_only = if self.source_read_only {
            " (opened read-only)"
        } else {
            ""
        };
        let _ = writeln!(text, "- Source: {}{read_only}", self.source);
        let _ = writeln!(text, "- Target: {}", self.target);
        let _ = writeln!(text, "- Policy: {}", self.policy);
        let _ = writeln!(text, "- Started: {}", self.started_at);
        if let Some(seconds) = self.refresh_seconds {
            let _ = writeln!(text, "- Refresh took {seconds:.1} s");
        }
        if let Some(resumed) = &self.resumed {
            let _ = writeln!(text, "- {}", resumed.summary());
        }
        if !self.tables.is_empty() {
            let _ = writeln!(
                text,
                "\n## Tables\n\n| table | action | rows |\n|---|---|---:|"
            );
            for table in &self.tables {
                let _ = writeln!(
                    text,
                    "| {} | {} | {} |",
                    table.table, table.action, table.rows
                );
            }
        }
        if !self.hooks.is_empty() {
            let _ = writeln!(
                text,
                "\n## Hooks\n\n| hook | when | kind | result | seconds |\n|---|---|---|---|---:|"
            );
            for hook in &self.hooks {
                let _ = writeln!(
                    text,
                    "| {} | {} | {} | {} | {:.2} |",
                    hook.name, hook.when, hook.kind, hook.status, hook.seconds
                );
            }
        }
        if let Some(verification) = &self.verification {
            let _ = writeln!(
                text,
                "\n## Verification ({} mode)\n\n| check | result |\n|---|---|",
                verification.mode
            );
            for check in &verification.checks {
                let _ = writeln!(text, "| {} | {} |", check.name, status_word(check.status));
            }
            for check in &verification.checks {
                let _ = writeln!(
                    text,
                    "\n### {}: {}\n",
                    check.name,
                    status_word(check.status)
                );
                for line in &check.evidence {
                    let _ = writeln!(text, "- {line}");
                }
            }
        }
        text
    }
}
