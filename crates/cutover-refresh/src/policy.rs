//! The sanitization policy: what happens to every table and every column.
//!
//! ```toml
//! secret_env = "CUTOVER_MASK_SECRET"        # where the masking key comes from
//! forbid_hosts = ["*.prod.internal"]        # the target must not be one of these
//!
//! [tables."public.assessments"]
//! action = "copy"                           # copy | skip | preserve
//! where = "assessed_on < date '2026-01-01'" # rows to keep
//! [tables."public.assessments".columns]
//! id = "keep"
//! patient_id = "hash"
//! notes = "null"
//! assessed_on = { rule = "shift-date", by = "patient_id" }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The whole policy.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The environment variable holding the masking secret (keyed hashes,
    /// fakes and date shifts); the secret itself never appears in the policy.
    #[serde(default = "default_secret_env")]
    pub secret_env: String,
    /// The locale fakes look like (`en-CA`, `fr-CA`, `en-US`; `nl-NL`
    /// when absent, as before locales).
    #[serde(default)]
    pub locale: crate::fakes::Locale,
    /// Host patterns (`*` wildcards) of production: the target must not match
    /// one, and no connection setting left in the target may point at one.
    #[serde(default)]
    pub forbid_hosts: Vec<String>,
    /// Per table (`schema.table`, or `table` for SQLite): what to do.
    #[serde(default)]
    pub tables: BTreeMap<String, TablePolicy>,
    /// What happens to the target's own tables and columns, those the
    /// source lacks (`schema.table` or `schema.table.column`): each must be
    /// decided before a refresh runs.
    #[serde(default)]
    pub drift: BTreeMap<String, DriftDecision>,
    /// SQL or commands run around the refresh, in order within each point.
    #[serde(default)]
    pub hooks: Vec<Hook>,
}

/// A step run around a refresh: SQL on the target (or its staging), or a
/// shell command. Its outcome is reported; its output never is.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    /// A name for the report (default: the point and its position).
    #[serde(default)]
    pub name: Option<String>,
    /// When it runs.
    pub when: HookPoint,
    /// SQL run on the target (`before-copy`, `after-swap`) or on the staged
    /// data (`after-load`: unqualified names are the staged tables).
    #[serde(default)]
    pub sql: Option<String>,
    /// A command run by `sh -c`, with `CUTOVER_HOOK` (the point) and
    /// `CUTOVER_TARGET` (the target's URL without its password, or the SQLite
    /// file: the staging file for `after-load`); on PostgreSQL also
    /// `CUTOVER_SCHEMA` and libpq's `PGHOST`, `PGPORT`, `PGDATABASE`,
    /// `PGUSER`, `PGPASSWORD` (when the URL has one) and `PGOPTIONS` (the
    /// search path: the staging schema for `after-load`), so `psql` connects
    /// where the hook is about.
    #[serde(default)]
    pub command: Option<String>,
}

/// When a hook runs.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum HookPoint {
    /// On the target, before anything is copied (a failure stops the refresh).
    BeforeCopy,
    /// On the loaded staging schema or file, before the swap (a failure
    /// stops the refresh; the target is unchanged).
    AfterLoad,
    /// On the target, after the swap.
    AfterSwap,
}

impl HookPoint {
    /// The point as policies write it.
    pub fn name(self) -> &'static str {
        match self {
            HookPoint::BeforeCopy => "before-copy",
            HookPoint::AfterLoad => "after-load",
            HookPoint::AfterSwap => "after-swap",
        }
    }
}

/// What happens to a table or column only the target has.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DriftDecision {
    /// Kept as the target has it (tables only).
    Preserve,
    /// Dropped by the refresh.
    Drop,
}

fn default_secret_env() -> String {
    "CUTOVER_MASK_SECRET".to_owned()
}

/// What happens to a table.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Copy from the source, applying the column rules and `where`.
    Copy,
    /// Do not copy: the table is left empty (or as the target had it).
    Skip,
    /// Keep the target's own rows: backed up before the refresh, restored after.
    Preserve,
}

impl Action {
    /// The action as the policy writes it.
    pub fn name(self) -> &'static str {
        match self {
            Action::Copy => "copy",
            Action::Skip => "skip",
            Action::Preserve => "preserve",
        }
    }
}

/// What happens to rows that reference a row the policy removed.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OnRemovedParent {
    /// Remove them too.
    Remove,
    /// Keep them with the reference set to NULL.
    Null,
}

/// One table's policy.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TablePolicy {
    /// Copy, skip or preserve.
    pub action: Action,
    /// For `copy`: a SQL condition on source rows; rows that fail it are not copied.
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    /// For `copy`: rows referencing a removed row are removed (default) or nulled.
    #[serde(default)]
    pub on_removed_parent: Option<OnRemovedParent>,
    /// The table holds connection settings: after the refresh none may point at a forbidden host.
    #[serde(default)]
    pub config: bool,
    /// A job or timer table whose copied rows are meant to fire (production
    /// moved, not refreshed): verification does not fail them.
    #[serde(default)]
    pub keep_timers: bool,
    /// References the schema does not declare, followed by subsetting like
    /// foreign keys: the referencing columns (comma-separated) → the
    /// referenced `table(column, …)`, e.g. `patient_id = "patients(id)"`.
    #[serde(default)]
    pub references: BTreeMap<String, String>,
    /// For `copy`: a rule for every column.
    #[serde(default)]
    pub columns: BTreeMap<String, Rule>,
}

/// Realistic values `fake` produces, deterministic per input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeKind {
    /// A given name.
    FirstName,
    /// A family name.
    LastName,
    /// Given and family name.
    FullName,
    /// An e-mail address at an example domain.
    Email,
    /// A phone number in a reserved fictional range.
    Phone,
    /// A street address.
    Address,
    /// A city.
    City,
    /// A postal code.
    PostalCode,
    /// A date near the original.
    Date,
    /// A province or state code (`ON`, `QC`, `WA`).
    Province,
    /// A health-card number in the locale's provincial shape, of a form no
    /// real card has (`en-CA`: Ontario; `fr-CA`: Québec).
    HealthCard,
}

impl FakeKind {
    /// The label that keys this kind's digests apart from every other use.
    pub(crate) fn label(self) -> &'static str {
        match self {
            FakeKind::FirstName => "fake:first-name",
            FakeKind::LastName => "fake:last-name",
            FakeKind::FullName => "fake:full-name",
            FakeKind::Email => "fake:email",
            FakeKind::Phone => "fake:phone",
            FakeKind::Address => "fake:address",
            FakeKind::City => "fake:city",
            FakeKind::PostalCode => "fake:postal-code",
            FakeKind::Date => "fake:date",
            FakeKind::Province => "fake:province",
            FakeKind::HealthCard => "fake:health-card",
        }
    }
}

impl FakeKind {
    fn parse(text: &str) -> Option<FakeKind> {
        Some(match text {
            "first-name" => FakeKind::FirstName,
            "last-name" => FakeKind::LastName,
            "full-name" | "name" => FakeKind::FullName,
            "email" => FakeKind::Email,
            "phone" => FakeKind::Phone,
            "address" => FakeKind::Address,
            "city" => FakeKind::City,
            "postal-code" => FakeKind::PostalCode,
            "date" => FakeKind::Date,
            "province" | "state" => FakeKind::Province,
            "health-card" => FakeKind::HealthCard,
            _ => return None,
        })
    }

    /// The name used in policies.
    pub fn name(self) -> &'static str {
        match self {
            FakeKind::FirstName => "first-name",
            FakeKind::LastName => "last-name",
            FakeKind::FullName => "full-name",
            FakeKind::Email => "email",
            FakeKind::Phone => "phone",
            FakeKind::Address => "address",
            FakeKind::City => "city",
            FakeKind::PostalCode => "postal-code",
            FakeKind::Date => "date",
            FakeKind::Province => "province",
            FakeKind::HealthCard => "health-card",
        }
    }
}

/// What happens to a column's values.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// Copied as is.
    Keep,
    /// Set to NULL.
    Null,
    /// Set to this value (text, parsed into the column's type).
    Fixed(String),
    /// Replaced by a keyed hash of the value, of the same type: the same input
    /// maps to the same output in every table and run with the same secret.
    Hash,
    /// Replaced by a realistic value, deterministic per input.
    Fake(FakeKind),
    /// Moved by a per-entity offset of up to `max_days` days (the entity is
    /// the value of column `by`, or the row's key).
    ShiftDate {
        /// The column naming the entity (e.g. `patient_id`).
        by: Option<String>,
        /// The largest shift either way.
        max_days: u32,
    },
    /// Blob content replaced by nothing (an empty value of the type).
    RedactBlob,
    /// Text with every match of `pattern` replaced.
    Regex {
        /// The pattern (Rust regex syntax).
        pattern: String,
        /// The replacement (`$1` refers to groups).
        replacement: String,
    },
}

impl Rule {
    /// The rule's name as written in policies.
    pub fn name(&self) -> &'static str {
        match self {
            Rule::Keep => "keep",
            Rule::Null => "null",
            Rule::Fixed(_) => "fixed",
            Rule::Hash => "hash",
            Rule::Fake(_) => "fake",
            Rule::ShiftDate { .. } => "shift-date",
            Rule::RedactBlob => "redact-blob",
            Rule::Regex { .. } => "regex",
        }
    }

    /// Whether the rule needs the masking secret.
    pub fn needs_secret(&self) -> bool {
        matches!(self, Rule::Hash | Rule::Fake(_) | Rule::ShiftDate { .. })
    }
}

/// The largest date shift unless a rule says otherwise.
pub const DEFAULT_SHIFT_DAYS: u32 = 30;

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRule {
    Name(String),
    Detailed(DetailedRule),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DetailedRule {
    rule: String,
    #[serde(default)]
    value: Option<toml::Value>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    max_days: Option<u32>,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    replacement: Option<String>,
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Rule, D::Error> {
        use serde::de::Error as _;
        let raw = RawRule::deserialize(deserializer)?;
        let detailed = match raw {
            RawRule::Name(name) => {
                let (rule, kind) = match name.split_once(':') {
                    Some((rule, kind)) => (rule.to_owned(), Some(kind.to_owned())),
                    None => (name, None),
                };
                DetailedRule {
                    rule,
                    value: None,
                    kind,
                    by: None,
                    max_days: None,
                    pattern: None,
                    replacement: None,
                }
            }
            RawRule::Detailed(detailed) => detailed,
        };
        let missing =
            |field: &str| D::Error::custom(format!("rule {} needs `{field}`", detailed.rule));
        Ok(match detailed.rule.as_str() {
            "keep" => Rule::Keep,
            "null" => Rule::Null,
            "hash" => Rule::Hash,
            "redact-blob" => Rule::RedactBlob,
            "fixed" => Rule::Fixed(
                match detailed.value.as_ref().ok_or_else(|| missing("value"))? {
                    toml::Value::String(text) => text.clone(),
                    other => other.to_string(),
                },
            ),
            "fake" => {
                let kind = detailed.kind.as_deref().ok_or_else(|| missing("kind"))?;
                Rule::Fake(FakeKind::parse(kind).ok_or_else(|| {
                    D::Error::custom(format!(
                        "unknown fake kind {kind}: use first-name, last-name, full-name, email, phone, address, city, province, postal-code, health-card or date"
                    ))
                })?)
            }
            "shift-date" => Rule::ShiftDate {
                by: detailed.by.clone(),
                max_days: detailed.max_days.unwrap_or(DEFAULT_SHIFT_DAYS),
            },
            "regex" => Rule::Regex {
                pattern: detailed.pattern.clone().ok_or_else(|| missing("pattern"))?,
                replacement: detailed.replacement.clone().unwrap_or_default(),
            },
            other => {
                return Err(D::Error::custom(format!(
                    "unknown rule {other}: use keep, null, fixed, hash, fake, shift-date, redact-blob or regex"
                )));
            }
        })
    }
}

impl Policy {
    /// Reads and parses a policy file.
    pub fn load(path: &Path) -> Result<Policy> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Policy::parse(&text).map_err(|message| Error::Policy {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses policy text; the error names the line and column.
    pub fn parse(text: &str) -> std::result::Result<Policy, String> {
        toml::from_str(text).map_err(|error| {
            let message = error.message().to_owned();
            match error.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}: {message}")
                }
                None => message,
            }
        })
    }
}
