//! The report of a finished diff, computed from the work database: counts,
//! changes per column, findings per group, and a few sample keys.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value as Json;
use serde_json::value::RawValue;

use crate::DiffOptions;
use crate::engine::PartitionStats;
use crate::error::{Error, Result};
use crate::plan::{Plan, Strategy};
use crate::store::Store;

/// Groups kept in a report; the rest are summed into `groups_truncated`.
const MAX_GROUPS: usize = 1_000;

/// The headline numbers. Field names are the JSON summary's keys.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Rows read from the source (after `--where`).
    pub source_rows: u64,
    /// Rows read from the target.
    pub target_rows: u64,
    /// Keys on both sides with equal rows.
    pub matched: u64,
    /// Keys only in the source.
    pub missing: u64,
    /// Keys only in the target.
    pub extra: u64,
    /// Keys on both sides whose rows differ.
    pub changed: u64,
    /// Keys that appear more than once on a side (each side counted apart).
    pub duplicate_keys: u64,
    /// Rows whose key has a NULL, both sides together; they cannot be matched.
    pub null_keys: u64,
}

/// How many changed rows differ in one column.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ColumnCount {
    /// The column (source name).
    pub column: String,
    /// Changed rows where this column differs.
    pub changed: u64,
}

/// Findings of one group.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GroupCount {
    /// The group's values, in `--group-by` order.
    pub values: Vec<Json>,
    /// Missing rows in the group.
    pub missing: u64,
    /// Extra rows in the group.
    pub extra: u64,
    /// Changed rows in the group.
    pub changed: u64,
}

/// A changed key and its changed columns.
#[derive(Debug, Clone, Serialize)]
pub struct ChangedSample {
    /// The key, as an object of key columns in key order.
    pub key: Box<RawValue>,
    /// The columns that differ.
    pub columns: Vec<String>,
}

/// A duplicated key.
#[derive(Debug, Clone, Serialize)]
pub struct DuplicateSample {
    /// `source` or `target`.
    pub side: String,
    /// The key, as an object of key columns in key order.
    pub key: Box<RawValue>,
    /// How many rows carry it.
    pub count: u64,
}

/// A few keys per category (keys only; row values never appear here).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Samples {
    /// Keys only in the source.
    pub missing: Vec<Box<RawValue>>,
    /// Keys only in the target.
    pub extra: Vec<Box<RawValue>>,
    /// Changed keys.
    pub changed: Vec<ChangedSample>,
    /// Duplicated keys.
    pub duplicate_keys: Vec<DuplicateSample>,
}

/// Columns that are not on both sides.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SchemaDifference {
    /// Columns only the source has (not compared).
    pub only_in_source: Vec<String>,
    /// Columns only the target has (not compared).
    pub only_in_target: Vec<String>,
}

/// Everything a diff found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The source, redacted.
    pub source: String,
    /// The target, redacted.
    pub target: String,
    /// The strategy that ran.
    pub strategy: Strategy,
    /// Key columns.
    pub key: Vec<String>,
    /// Compared columns.
    pub compared_columns: Vec<String>,
    /// Headline numbers.
    pub summary: Summary,
    /// Rows with a NULL key in the source.
    pub source_null_keys: u64,
    /// Rows with a NULL key in the target.
    pub target_null_keys: u64,
    /// Changed rows per column, most first.
    pub columns: Vec<ColumnCount>,
    /// The `--group-by` labels.
    pub group_by: Vec<String>,
    /// Findings per group, largest first.
    pub groups: Vec<GroupCount>,
    /// Groups left out of `groups` (there were more than can be shown).
    pub groups_truncated: u64,
    /// Sample keys.
    pub samples: Samples,
    /// Columns not on both sides.
    pub schema: SchemaDifference,
    /// Partitions of the key-hash space.
    pub partitions: u32,
    /// Buckets per partition.
    pub buckets_per_partition: u64,
    /// `--max-diffs` was reached; counts are lower bounds.
    pub stopped_early: bool,
    /// Wall time in seconds.
    pub seconds: f64,
}

impl Report {
    /// Whether anything differs (rows, keys or the column sets).
    pub fn has_differences(&self) -> bool {
        let summary = &self.summary;
        summary.missing
            + summary.extra
            + summary.changed
            + summary.duplicate_keys
            + summary.null_keys
            > 0
            || !self.schema.only_in_source.is_empty()
            || !self.schema.only_in_target.is_empty()
    }
}

fn failed(context: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |error| Error::store(context, error)
}

/// Stored JSON text kept as written (key columns stay in key order).
pub(crate) fn raw(text: Option<String>) -> Box<RawValue> {
    text.and_then(|text| RawValue::from_string(text).ok())
        .unwrap_or_else(|| RawValue::from_string("null".into()).unwrap_or_default())
}

fn json(text: Option<String>) -> Json {
    text.and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Json::Null)
}

pub(crate) fn build_report(
    store: &Store,
    plan: &Plan,
    options: &DiffOptions,
    partitions: u32,
    buckets_per_partition: u64,
    stopped_early: bool,
    elapsed: Duration,
) -> Result<Report> {
    let connection = store.reader()?;
    let mut totals = PartitionStats::default();
    {
        let mut statement = connection
            .prepare("SELECT stats FROM partition_done")
            .map_err(failed("reading partition results"))?;
        let rows = statement
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(failed("reading partition results"))?;
        for row in rows {
            let stats: PartitionStats =
                serde_json::from_str(&row.map_err(failed("reading partition results"))?)
                    .unwrap_or_default();
            totals.source_rows += stats.source_rows;
            totals.target_rows += stats.target_rows;
            totals.matched += stats.matched;
            totals.source_null_keys += stats.source_null_keys;
            totals.target_null_keys += stats.target_null_keys;
        }
    }
    let count = |kind: &str| -> Result<u64> {
        connection
            .query_row(
                "SELECT count(*) FROM finding WHERE kind = ?1",
                [kind],
                |row| row.get::<_, i64>(0),
            )
            .map(|count| count as u64)
            .map_err(failed("counting findings"))
    };
    let duplicated_source_rows: u64 = connection
        .query_row(
            "SELECT coalesce(sum(count), 0) FROM finding WHERE kind = 'duplicate_key' AND side = 'source'",
            [],
            |row| row.get::<_, i64>(0),
        )
        .map(|count| count as u64)
        .map_err(failed("counting findings"))?;
    let mut summary = Summary {
        source_rows: totals.source_rows + totals.source_null_keys,
        target_rows: totals.target_rows + totals.target_null_keys,
        matched: totals.matched,
        missing: count("missing")?,
        extra: count("extra")?,
        changed: count("changed")?,
        duplicate_keys: count("duplicate_key")?,
        null_keys: totals.source_null_keys + totals.target_null_keys,
    };
    if !stopped_early {
        // Every source row is exactly one of: matched, missing, changed, under a
        // duplicated key, or under a NULL key. Identical duplicates on both sides
        // leave their bucket's digests equal, so the buckets alone would count
        // them as matched.
        summary.matched = summary.source_rows.saturating_sub(
            summary.missing + summary.changed + duplicated_source_rows + totals.source_null_keys,
        );
    }

    let columns = {
        let mut statement = connection
            .prepare(
                "SELECT j.value, count(*) FROM finding, json_each(finding.columns) AS j \
                 WHERE finding.kind = 'changed' GROUP BY j.value ORDER BY 2 DESC, 1",
            )
            .map_err(failed("counting changes per column"))?;
        statement
            .query_map([], |row| {
                Ok(ColumnCount {
                    column: row.get(0)?,
                    changed: row.get::<_, i64>(1)? as u64,
                })
            })
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(failed("counting changes per column"))?
    };

    let (groups, groups_truncated) = if plan.groups.is_empty() {
        (Vec::new(), 0)
    } else {
        let mut statement = connection
            .prepare(
                "SELECT groups, sum(kind = 'missing'), sum(kind = 'extra'), sum(kind = 'changed') FROM finding \
                 WHERE kind IN ('missing', 'extra', 'changed') GROUP BY groups ORDER BY count(*) DESC, groups",
            )
            .map_err(failed("grouping findings"))?;
        let mut rows = statement.query([]).map_err(failed("grouping findings"))?;
        let mut groups = Vec::new();
        let mut truncated = 0u64;
        while let Some(row) = rows.next().map_err(failed("grouping findings"))? {
            if groups.len() == MAX_GROUPS {
                truncated += 1;
                continue;
            }
            let values = match json(row.get(0).map_err(failed("grouping findings"))?) {
                Json::Array(values) => values,
                other => vec![other],
            };
            let number = |index: usize| row.get::<_, i64>(index).map(|value| value as u64);
            groups.push(GroupCount {
                values,
                missing: number(1).map_err(failed("grouping findings"))?,
                extra: number(2).map_err(failed("grouping findings"))?,
                changed: number(3).map_err(failed("grouping findings"))?,
            });
        }
        (groups, truncated)
    };

    let limit = options.samples as i64;
    let keys = |kind: &str| -> Result<Vec<Box<RawValue>>> {
        let mut statement = connection
            .prepare("SELECT key FROM finding WHERE kind = ?1 ORDER BY id LIMIT ?2")
            .map_err(failed("reading samples"))?;
        statement
            .query_map(rusqlite::params![kind, limit], |row| {
                row.get::<_, String>(0)
            })
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
            .map(|keys| keys.into_iter().map(|key| raw(Some(key))).collect())
            .map_err(failed("reading samples"))
    };
    let changed = {
        let mut statement = connection
            .prepare("SELECT key, columns FROM finding WHERE kind = 'changed' ORDER BY id LIMIT ?1")
            .map_err(failed("reading samples"))?;
        statement
            .query_map([limit], |row| {
                let columns: Option<String> = row.get(1)?;
                Ok(ChangedSample {
                    key: raw(row.get(0)?),
                    columns: columns
                        .and_then(|columns| serde_json::from_str(&columns).ok())
                        .unwrap_or_default(),
                })
            })
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(failed("reading samples"))?
    };
    let duplicate_keys = {
        let mut statement = connection
            .prepare("SELECT side, key, count FROM finding WHERE kind = 'duplicate_key' ORDER BY id LIMIT ?1")
            .map_err(failed("reading samples"))?;
        statement
            .query_map([limit], |row| {
                Ok(DuplicateSample {
                    side: row.get(0)?,
                    key: raw(row.get(1)?),
                    count: row.get::<_, Option<i64>>(2)?.unwrap_or_default() as u64,
                })
            })
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(failed("reading samples"))?
    };

    Ok(Report {
        source: plan.source.label.clone(),
        target: plan.target.label.clone(),
        strategy: plan.strategy,
        key: plan.names[..plan.key_len].to_vec(),
        compared_columns: plan.names[plan.key_len..plan.key_len + plan.compared].to_vec(),
        summary,
        source_null_keys: totals.source_null_keys,
        target_null_keys: totals.target_null_keys,
        columns,
        group_by: options.group_by.iter().map(crate::GroupBy::label).collect(),
        groups,
        groups_truncated,
        samples: Samples {
            missing: keys("missing")?,
            extra: keys("extra")?,
            changed,
            duplicate_keys,
        },
        schema: SchemaDifference {
            only_in_source: plan.only_in_source.clone(),
            only_in_target: plan.only_in_target.clone(),
        },
        partitions,
        buckets_per_partition,
        stopped_early,
        seconds: elapsed.as_secs_f64(),
    })
}
