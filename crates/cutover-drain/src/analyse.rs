//! One pass over the timer table: every timer classified and folded into its
//! version's and site's counts, horizons and problems. Memory grows with the
//! number of open launches, never with the rows.

use std::collections::{BTreeMap, HashMap};

use cutover_db::{Database, ReadRequest, TableName, Value};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::profile::{Profile, VersionRule, format_duration};

/// The columns every db-scheduler timer table has.
pub const REQUIRED_COLUMNS: [&str; 10] = [
    "task_name",
    "task_instance",
    "execution_time",
    "picked",
    "picked_by",
    "last_success",
    "last_failure",
    "consecutive_failures",
    "last_heartbeat",
    "version",
];

/// Columns newer db-scheduler versions add; tolerated, not needed.
const OPTIONAL_COLUMNS: [&str; 2] = ["priority", "state"];

/// db-scheduler deletes timers whose task is no longer known after this long.
const UNRESOLVED_DELETED_AFTER: i64 = 14 * 86_400_000_000;

/// Pending timers of one version at one site.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// The version (or `unclassified`).
    pub version: String,
    /// The site (or `all` when no rule names one).
    pub site: String,
    /// Pending timers.
    pub pending: u64,
    /// Timers currently picked by a scheduler instance.
    pub picked: u64,
    /// Timers past due by more than the profile's `overdue_after`, not picked.
    pub overdue: u64,
    /// Picked timers with no heartbeat for longer than `stale_heartbeat`.
    pub stuck: u64,
    /// Timers failing more than `failure_threshold` times in a row.
    pub failing: u64,
    /// Open launches (distinct `launch` fields).
    pub launches: u64,
    /// The earliest execution time.
    pub next_execution: Option<String>,
    /// The latest execution time.
    pub last_execution: Option<String>,
    /// When the last of these timers (and their launches' follow-ons) should be gone.
    pub drained_by: Option<String>,
    #[serde(skip)]
    drained_by_micros: Option<i64>,
}

/// One version across sites.
#[derive(Debug, Clone, Serialize)]
pub struct VersionSummary {
    /// The version.
    pub name: String,
    /// Pending timers.
    pub pending: u64,
    /// Whether it has no pending timers.
    pub drained: bool,
    /// The forecast: when its last timer should be gone.
    pub drained_by: Option<String>,
    /// The forecast as a duration from now.
    pub drained_in: Option<String>,
    /// Timers that left the table per hour between two polls, when polled twice.
    pub observed_per_hour: Option<f64>,
    /// When the pending timers are gone at the observed rate.
    pub observed_drained_by: Option<String>,
    #[serde(skip)]
    drained_by_micros: Option<i64>,
}

/// Something an operator should look at.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// `stuck`, `failing`, `overdue`, `not-picked`, `unclassified`,
    /// `unparsed`, or `duplicate-table`.
    pub kind: &'static str,
    /// The version it concerns.
    pub version: Option<String>,
    /// Timers concerned.
    pub timers: u64,
    /// What it means.
    pub message: String,
}

/// The whole analysis.
#[derive(Debug, Clone, Serialize)]
pub struct DrainReport {
    /// The table, as named.
    pub table: String,
    /// When it was read.
    pub at: String,
    /// Timers in the table.
    pub timers: u64,
    /// Newer db-scheduler columns found (tolerated).
    pub optional_columns: Vec<String>,
    /// Per version, in the profile's order (then unclassified).
    pub versions: Vec<VersionSummary>,
    /// Per version and site.
    pub groups: Vec<Group>,
    /// Problems, most serious first.
    pub problems: Vec<Problem>,
    #[serde(skip)]
    at_micros: i64,
}

impl DrainReport {
    /// The summary of `version`.
    pub fn version(&self, name: &str) -> Option<&VersionSummary> {
        self.versions.iter().find(|version| version.name == name)
    }

    /// Cross-checks the forecast with the rate timers left the table since `earlier`.
    pub fn observe(&mut self, earlier: &DrainReport) {
        let hours = (self.at_micros - earlier.at_micros) as f64 / 3_600_000_000.0;
        if hours <= 0.0 {
            return;
        }
        for version in &mut self.versions {
            let Some(before) = earlier.version(&version.name) else {
                continue;
            };
            let rate = (before.pending as f64 - version.pending as f64) / hours;
            version.observed_per_hour = Some(rate);
            if rate > 0.0 && version.pending > 0 {
                let micros = (version.pending as f64 / rate * 3_600_000_000.0) as i64;
                version.observed_drained_by = timestamp(self.at_micros.saturating_add(micros));
            }
        }
    }
}

/// RFC 3339 (UTC) of microseconds since the epoch.
fn timestamp(micros: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|time| time.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn micros(value: &Value) -> Option<i64> {
    match value {
        Value::Timestamp(micros) | Value::TimestampTz(micros) => Some(*micros),
        _ => None,
    }
}

#[derive(Default)]
struct Launch {
    horizon: i64,
    furthest: Option<usize>,
}

#[derive(Default)]
struct Fold {
    pending: u64,
    picked: u64,
    overdue: u64,
    stuck: u64,
    failing: u64,
    next: Option<i64>,
    last: Option<i64>,
    horizon: Option<i64>,
    oldest_overdue: Option<i64>,
    launches: HashMap<String, Launch>,
}

/// Reads `table` on `database` and classifies its timers under `profile`, as of `now` (µs since the epoch).
pub async fn analyse(
    database: &Database,
    table: &TableName,
    profile: &Profile,
    now: i64,
) -> Result<DrainReport> {
    let resolved = database.table(table).await?;
    let names = resolved.column_names();
    let missing: Vec<&str> = REQUIRED_COLUMNS
        .iter()
        .copied()
        .filter(|column| !names.iter().any(|name| name == column))
        .collect();
    if !missing.is_empty() {
        return Err(Error::NotScheduledTasks {
            table: table.to_string(),
            missing: missing.join(", "),
        });
    }
    let optional_columns: Vec<String> = OPTIONAL_COLUMNS
        .iter()
        .filter(|column| names.iter().any(|name| name == *column))
        .map(|column| (*column).to_owned())
        .collect();
    let columns: Vec<String> = [
        "task_name",
        "task_instance",
        "execution_time",
        "picked",
        "consecutive_failures",
        "last_heartbeat",
    ]
    .iter()
    .map(|column| (*column).to_owned())
    .collect();
    let mut rows = database
        .read(
            &ReadRequest::table(table.clone())
                .columns(columns)
                .unordered(),
        )
        .await?;

    let mut folds: BTreeMap<(usize, String), Fold> = BTreeMap::new();
    let mut unclassified_names: BTreeMap<String, u64> = BTreeMap::new();
    let mut unparsed: HashMap<usize, u64> = HashMap::new();
    let mut timers = 0u64;
    let unclassified = profile.versions.len();
    while let Some(row) = rows.next().await {
        let row = row?;
        timers += 1;
        let text = |index: usize| match &row[index] {
            Value::Text(text) => text.as_str(),
            _ => "",
        };
        let (task_name, instance) = (text(0), text(1));
        let execution = micros(&row[2]).unwrap_or(now);
        let picked = matches!(row[3], Value::Bool(true) | Value::Int(1));
        let failures = match row[4] {
            Value::Int(count) => count,
            _ => 0,
        };
        let heartbeat = micros(&row[5]);

        let version_index = profile
            .versions
            .iter()
            .position(|version| version.task_name == task_name)
            .unwrap_or(unclassified);
        let rule: Option<&VersionRule> = profile.versions.get(version_index);
        let captures = rule.and_then(|rule| rule.instance.captures(instance));
        if rule.is_some() && captures.is_none() {
            *unparsed.entry(version_index).or_default() += 1;
        }
        if rule.is_none() {
            *unclassified_names.entry(task_name.to_owned()).or_default() += 1;
        }
        let field = |name: &str| {
            captures
                .as_ref()
                .and_then(|captures| captures.name(name))
                .map(|found| found.as_str().to_owned())
        };
        let site = profile
            .sites
            .iter()
            .find(|site| {
                site.version
                    .as_ref()
                    .is_none_or(|version| rule.is_some_and(|rule| &rule.name == version))
                    && field(&site.field).is_some_and(|value| site.pattern.is_match(&value))
            })
            .map(|site| site.name.clone())
            .or_else(|| field("site"))
            .unwrap_or_else(|| "all".to_owned());

        let fold = folds.entry((version_index, site)).or_default();
        fold.pending += 1;
        fold.picked += u64::from(picked);
        fold.failing += u64::from(failures > profile.failure_threshold);
        if picked && heartbeat.is_none_or(|beat| now - beat > profile.stale_heartbeat) {
            fold.stuck += 1;
        }
        if !picked && now - execution > profile.overdue_after {
            fold.overdue += 1;
            fold.oldest_overdue = Some(
                fold.oldest_overdue
                    .map_or(execution, |oldest| oldest.min(execution)),
            );
        }
        fold.next = Some(fold.next.map_or(execution, |next| next.min(execution)));
        fold.last = Some(fold.last.map_or(execution, |last| last.max(execution)));
        // The latest this timer can still be here: due now at the earliest,
        // then every retry it has left.
        let remaining = rule.map_or(0, |rule| (i64::from(rule.max_retries) - failures).max(0));
        let delay = rule.map_or(0, |rule| rule.retry_delay);
        let horizon = execution
            .max(now)
            .saturating_add(remaining.saturating_mul(delay));
        fold.horizon = Some(fold.horizon.map_or(horizon, |latest| latest.max(horizon)));
        if let Some(launch) = field("launch") {
            let position = field("action").and_then(|action| {
                rule.and_then(|rule| rule.chain.iter().position(|step| *step == action))
            });
            let entry = fold.launches.entry(launch).or_default();
            entry.horizon = entry.horizon.max(horizon);
            entry.furthest = entry.furthest.max(position);
        }
    }

    let mut groups = Vec::new();
    let mut problems = Vec::new();
    let version_name = |index: usize| {
        profile
            .versions
            .get(index)
            .map_or_else(|| "unclassified".to_owned(), |rule| rule.name.clone())
    };
    for ((index, site), fold) in &folds {
        let rule = profile.versions.get(*index);
        // A launch's follow-ons: one per action left in its chain.
        let follow_on = fold
            .launches
            .values()
            .filter_map(|launch| {
                let rule = rule?;
                let left = rule.chain.len().checked_sub(1 + launch.furthest?)? as i64;
                Some(
                    launch
                        .horizon
                        .saturating_add(left.saturating_mul(rule.follow_on_delay)),
                )
            })
            .max();
        let drained_by = fold.horizon.max(follow_on);
        groups.push(Group {
            version: version_name(*index),
            site: site.clone(),
            pending: fold.pending,
            picked: fold.picked,
            overdue: fold.overdue,
            stuck: fold.stuck,
            failing: fold.failing,
            launches: fold.launches.len() as u64,
            next_execution: fold.next.and_then(timestamp),
            last_execution: fold.last.and_then(timestamp),
            drained_by: drained_by.and_then(timestamp),
            drained_by_micros: drained_by,
        });
    }

    let mut versions = Vec::new();
    for index in 0..=profile.versions.len() {
        let of_version: Vec<&Group> = groups
            .iter()
            .zip(folds.keys())
            .filter(|(_, (group_index, _))| *group_index == index)
            .map(|(group, _)| group)
            .collect();
        if index == unclassified && of_version.is_empty() {
            continue;
        }
        let name = version_name(index);
        let sum = |pick: fn(&Group) -> u64| of_version.iter().map(|group| pick(group)).sum::<u64>();
        let pending = sum(|group| group.pending);
        let drained_by = of_version
            .iter()
            .filter_map(|group| group.drained_by_micros)
            .max();
        let (stuck, failing, overdue, picked) = (
            sum(|group| group.stuck),
            sum(|group| group.failing),
            sum(|group| group.overdue),
            sum(|group| group.picked),
        );
        if stuck > 0 {
            problems.push(Problem {
                kind: "stuck",
                version: Some(name.clone()),
                timers: stuck,
                message: format!(
                    "{stuck} {name} timers were picked and have had no heartbeat for over {}: their scheduler instance is gone or hung (db-scheduler revives them as dead executions)",
                    format_duration(profile.stale_heartbeat)
                ),
            });
        }
        if failing > 0 {
            problems.push(Problem {
                kind: "failing",
                version: Some(name.clone()),
                timers: failing,
                message: format!(
                    "{failing} {name} timers have failed more than {} times in a row",
                    profile.failure_threshold
                ),
            });
        }
        if overdue > 0 && picked == 0 && overdue == pending {
            let oldest = folds
                .iter()
                .filter(|((group_index, _), _)| *group_index == index)
                .filter_map(|(_, fold)| fold.oldest_overdue)
                .min()
                .unwrap_or(now);
            problems.push(Problem {
                kind: "not-picked",
                version: Some(name.clone()),
                timers: overdue,
                message: format!(
                    "no scheduler instance is picking {name}'s timers: all {overdue} are overdue (the oldest since {}). If the version's code is gone, db-scheduler deletes them as unresolved after 14 days, from {} on, and their work is lost",
                    timestamp(oldest).unwrap_or_default(),
                    timestamp(oldest.saturating_add(UNRESOLVED_DELETED_AFTER)).unwrap_or_default()
                ),
            });
        } else if overdue > 0 {
            problems.push(Problem {
                kind: "overdue",
                version: Some(name.clone()),
                timers: overdue,
                message: format!(
                    "{overdue} {name} timers are past due by more than {} and not picked",
                    format_duration(profile.overdue_after)
                ),
            });
        }
        if let Some(count) = unparsed.get(&index) {
            problems.push(Problem {
                kind: "unparsed",
                version: Some(name.clone()),
                timers: *count,
                message: format!(
                    "{count} {name} timers have a task_instance the version's pattern does not match: they are counted, but not per launch"
                ),
            });
        }
        versions.push(VersionSummary {
            drained: pending == 0,
            pending,
            drained_by: drained_by.and_then(timestamp),
            drained_in: drained_by.map(|at| format_duration(at - now)),
            observed_per_hour: None,
            observed_drained_by: None,
            drained_by_micros: drained_by,
            name,
        });
    }
    if !unclassified_names.is_empty() {
        let count: u64 = unclassified_names.values().sum();
        problems.push(Problem {
            kind: "unclassified",
            version: None,
            timers: count,
            message: format!(
                "{count} timers belong to no version of the profile (task names: {})",
                unclassified_names
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    let copy = TableName {
        schema: table.schema.clone(),
        name: format!("{}_v2", table.name),
    };
    if database.table(&copy).await.is_ok() {
        problems.push(Problem {
            kind: "duplicate-table",
            version: None,
            timers: 0,
            message: format!(
                "{copy} also exists: if two scheduler instances poll copies of the same timers, they fire them twice"
            ),
        });
    }
    Ok(DrainReport {
        table: table.to_string(),
        at: timestamp(now).unwrap_or_default(),
        timers,
        optional_columns,
        versions,
        groups,
        problems,
        at_micros: now,
    })
}

impl Group {
    /// When the last timer of this group should be gone, µs since the epoch.
    pub fn drained_by_micros(&self) -> Option<i64> {
        self.drained_by_micros
    }
}

impl VersionSummary {
    /// The forecast, µs since the epoch.
    pub fn drained_by_micros(&self) -> Option<i64> {
        self.drained_by_micros
    }
}
