//! The verification suite of a refresh: each check a named pass or fail with
//! evidence. Evidence holds counts and object names, never row values.
//!
//! - `removed-rows-absent`: rows the policy removes (its `where`, or a removed
//!   parent) are not in the target, looked up by their masked key;
//! - `masked-values-differ`: a masked column never holds the source's value for
//!   the same key where the policy would have changed it;
//! - `every-column-classified`: every target table and column is in the policy;
//! - `no-sensitive-values`: distinctive values of masked source columns appear
//!   in no text column of the target's copied tables;
//! - `preserved-tables-identical`: preserved tables match their pre-refresh
//!   fingerprint;
//! - `row-counts`: copied tables hold exactly the source's kept rows, skipped
//!   tables none;
//! - `schema-matches`: every source table and column exists in the target with
//!   the same logical type;
//! - `no-invalid-objects`: views that fail, functions that do not compile,
//!   foreign keys not validated, invalid indexes, sequences behind their column;
//! - `no-production-references`: foreign servers, user mappings and the
//!   policy's config tables name no forbidden host.

use std::collections::HashMap;

use cutover_db::schema::quote_identifier as quote;
use cutover_db::{Column, Database, IntrospectOptions, LogicalType, Schema, Table, Value};
use serde::Serialize;

use crate::error::Result;
use crate::mask::Masker;
use crate::policy::{Action, FakeKind, Policy, Rule};
use crate::sql::texts;
use references::production_references;
use structure::{invalid_objects, row_counts, schema_matches};

mod references;
mod structure;
use crate::sqlite_refresh::TableOutcome;
use crate::transform::TableCopy;

/// A check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The check held.
    Pass,
    /// The check found a problem.
    Fail,
    /// The check could not run (its evidence says why).
    Skipped,
}

/// One named check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// A stable name, e.g. `removed-rows-absent`.
    pub name: &'static str,
    /// Pass, fail or skipped.
    pub status: Status,
    /// What was looked at and what was found (counts and names only).
    pub evidence: Vec<String>,
}

/// The whole suite's result.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// Every check, in a fixed order.
    pub checks: Vec<Check>,
    /// `sample` or `full`.
    pub mode: &'static str,
}

impl Verification {
    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|check| check.status != Status::Fail)
    }
}

/// How thoroughly to verify.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Check every row (`true`) or a random sample per table.
    pub full: bool,
    /// Rows per table in sample mode.
    pub sample_rows: u64,
    /// Production host patterns (the policy's and any given on the command line).
    pub forbid_hosts: Vec<String>,
    /// The refresh's own outcome, for preserved tables' fingerprints.
    pub baseline: Option<Vec<TableOutcome>>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            full: false,
            sample_rows: 1_000,
            forbid_hosts: Vec::new(),
            baseline: None,
        }
    }
}

pub(super) struct Builder {
    pub(super) name: &'static str,
    pub(super) failures: Vec<String>,
    pub(super) notes: Vec<String>,
    pub(super) skipped: Option<String>,
}

impl Builder {
    pub(super) fn new(name: &'static str) -> Builder {
        Builder {
            name,
            failures: Vec::new(),
            notes: Vec::new(),
            skipped: None,
        }
    }

    pub(super) fn finish(self) -> Check {
        let status = if !self.failures.is_empty() {
            Status::Fail
        } else if self.skipped.is_some() && self.notes.is_empty() {
            Status::Skipped
        } else {
            Status::Pass
        };
        let mut evidence = self.failures;
        evidence.extend(self.skipped);
        evidence.extend(self.notes);
        Check {
            name: self.name,
            status,
            evidence,
        }
    }
}

/// A key value as a SQL literal both engines read the same way; `None` for
/// key types this check does not look up.
fn key_literal(value: &Value) -> Option<String> {
    match value {
        Value::Int(number) => Some(number.to_string()),
        Value::Text(text) => Some(format!("'{}'", text.replace('\'', "''"))),
        _ => None,
    }
}

/// A source table, its target counterpart and its copy plan.
pub(super) struct Pair<'a> {
    pub(super) source: &'a Table,
    pub(super) target: Option<&'a Table>,
    pub(super) action: Action,
    pub(super) copy: Option<TableCopy>,
}

/// Runs the verification suite on `target` after a refresh from `source`
/// under `policy`. `masker` is `None` when the masking secret is not set:
/// the checks that need masked keys are then skipped.
pub async fn verify(
    source: &Database,
    target: &Database,
    policy: &Policy,
    masker: Option<&Masker>,
    options: &VerifyOptions,
) -> Result<Verification> {
    let source_schema = source.introspect(&IntrospectOptions::default()).await?;
    let target_schema = target.introspect(&IntrospectOptions::default()).await?;
    // What the refresh kept follows the policy's declared references too.
    let subset_schema = crate::subset::with_declared_references(policy, &source_schema);
    let mut pairs = Vec::new();
    for (table, declared) in source_schema.tables.iter().zip(&subset_schema.tables) {
        let Some(table_policy) = crate::check::policy_table(policy, table) else {
            continue;
        };
        pairs.push(Pair {
            source: table,
            target: target_schema.table(&cutover_db::TableName::new(table.name.name.clone())),
            action: table_policy.action,
            copy: crate::subset::copy_plan(policy, &subset_schema, declared),
        });
    }
    let checks = vec![
        removed_rows(source, target, &pairs, masker, options).await?,
        masked_values(source, target, &pairs, masker, options).await?,
        classified(policy, &target_schema),
        sensitive_values(source, target, &pairs, options).await?,
        preserved(target, &pairs, options).await?,
        row_counts(source, target, &pairs, options).await?,
        schema_matches(&pairs),
        invalid_objects(target).await?,
        production_references(target, policy, &pairs, options).await?,
    ];
    Ok(Verification {
        checks,
        mode: if options.full { "full" } else { "sample" },
    })
}

/// The target rows whose key is among `keys` (canonical key encoding → row).
async fn lookup(
    target: &Database,
    table: &Table,
    key_columns: &[usize],
    columns: &[usize],
    keys: &[Vec<Value>],
) -> Result<Option<HashMap<Vec<u8>, Vec<Value>>>> {
    let mut literals = Vec::new();
    for key in keys {
        let parts: Option<Vec<String>> = key.iter().map(key_literal).collect();
        let Some(parts) = parts else {
            return Ok(None);
        };
        literals.push(if parts.len() == 1 {
            parts[0].clone()
        } else {
            format!("({})", parts.join(", "))
        });
    }
    let key_list = key_columns
        .iter()
        .map(|index| quote(&table.columns[*index].name))
        .collect::<Vec<_>>();
    let selected: Vec<usize> = key_columns.iter().chain(columns).copied().collect();
    // Large objects are compared by content, as they were copied.
    let select = selected
        .iter()
        .map(|index| {
            let column = &table.columns[*index];
            let quoted = quote(&column.name);
            if crate::transform::is_large_object(column) {
                crate::transform::large_object_content(&quoted)
            } else {
                quoted
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let left = if key_list.len() == 1 {
        key_list[0].clone()
    } else {
        format!("({})", key_list.join(", "))
    };
    let in_list = if key_list.len() == 1 {
        format!("({})", literals.join(", "))
    } else {
        format!("(VALUES {})", literals.join(", "))
    };
    let sql = format!(
        "SELECT {select} FROM {} WHERE {left} IN {in_list}",
        table.name.quoted()
    );
    let types = selected
        .iter()
        .map(|index| {
            let mut column = table.columns[*index].clone();
            if crate::transform::is_large_object(&column) {
                column.type_name = "bytea".into();
                column.logical_type = Some(LogicalType::Bytes);
            }
            column
        })
        .collect();
    let mut rows = target
        .query(&sql, types, &format!("table {}", table.name))
        .await?;
    let mut found = HashMap::new();
    while let Some(row) = rows.next().await {
        let row = row?;
        let mut key = Vec::new();
        cutover_db::canonical::encode_row_into(&row[..key_columns.len()], &mut key);
        found.insert(key, row[key_columns.len()..].to_vec());
    }
    Ok(Some(found))
}

/// Source rows of a copy plan's table: kept (`kept = true`) or removed, all
/// or a random sample.
fn rows_sql(copy: &TableCopy, source: &Database, kept: bool, options: &VerifyOptions) -> String {
    let condition = match (&copy.filter, kept) {
        (Some(filter), true) => Some(format!("({filter})")),
        (Some(filter), false) => Some(format!("({filter}) IS NOT TRUE")),
        (None, true) => None,
        (None, false) => Some("1 = 0".to_owned()),
    };
    let mut sql = copy.select_where(source, condition.as_deref());
    if !options.full {
        sql.push_str(&format!(" ORDER BY random() LIMIT {}", options.sample_rows));
    }
    sql
}

/// The target table's columns at the source table's column positions.
fn target_positions(source: &Table, target: &Table) -> Vec<Option<usize>> {
    source
        .columns
        .iter()
        .map(|column| {
            target
                .columns
                .iter()
                .position(|candidate| candidate.name == column.name)
        })
        .collect()
}

const BATCH: usize = 500;

/// Where a source table's key and checked columns are, in the source and the target.
struct KeyMap {
    source_key: Vec<usize>,
    target_key: Vec<usize>,
    target_columns: Vec<usize>,
}

/// The key map of a pair for `columns` (source positions): `None` when the
/// source has no primary key, `Some(Err)` when the target lacks one of them.
/// Why the checks that need masked keys did not run.
const NO_SECRET: &str = "not run: the masking secret is not set";

/// The table's key map, or `None` after noting why it cannot be checked:
/// `no_key` when the source has no primary key (a note), `missing` when
/// the target lacks the key or a column (a failure).
fn usable_key_map(
    check: &mut Builder,
    pair: &Pair<'_>,
    target: &Table,
    columns: &[usize],
    no_key: &str,
    missing: &str,
) -> Option<KeyMap> {
    match key_map(pair, target, columns) {
        None => {
            check.notes.push(format!("{}: {no_key}", pair.source.name));
            None
        }
        Some(Err(())) => {
            check
                .failures
                .push(format!("{}: {missing}", pair.source.name));
            None
        }
        Some(Ok(map)) => Some(map),
    }
}

fn key_map(pair: &Pair<'_>, target: &Table, columns: &[usize]) -> Option<Result<KeyMap, ()>> {
    let key = pair.source.primary_key.as_ref()?;
    let source_key: Vec<usize> = key
        .columns
        .iter()
        .filter_map(|name| pair.source.columns.iter().position(|c| &c.name == name))
        .collect();
    let positions = target_positions(pair.source, target);
    let target_key: Option<Vec<usize>> = source_key.iter().map(|i| positions[*i]).collect();
    let target_columns: Option<Vec<usize>> = columns.iter().map(|i| positions[*i]).collect();
    Some(match (target_key, target_columns) {
        (Some(target_key), Some(target_columns)) => Ok(KeyMap {
            source_key,
            target_key,
            target_columns,
        }),
        _ => Err(()),
    })
}

/// Streams the source rows `sql` selects, masks each as the refresh did, and
/// looks it up in the target by its masked key, a batch at a time;
/// `visit(original, expected, found)` sees every row (`found`: the target's
/// values of the map's columns). `false` when the key cannot be looked up.
#[allow(clippy::too_many_arguments)]
async fn each_row_in_target(
    source: &Database,
    target: &Database,
    copy: &TableCopy,
    target_table: &Table,
    map: &KeyMap,
    sql: &str,
    masker: &Masker,
    mut visit: impl FnMut(&[Value], &[Value], Option<&Vec<Value>>),
) -> Result<bool> {
    let mut rows = source
        .query(
            sql,
            copy.table.columns.clone(),
            &format!("table {}", copy.table.name),
        )
        .await?;
    let mut batch: Vec<(Vec<Value>, Vec<Value>)> = Vec::new();
    let mut done = false;
    while !done {
        match rows.next().await {
            Some(row) => {
                let original = row?;
                let expected = copy.transform(masker, original.clone())?;
                batch.push((original, expected));
                if batch.len() < BATCH {
                    continue;
                }
            }
            None => done = true,
        }
        if batch.is_empty() {
            continue;
        }
        let keys: Vec<Vec<Value>> = batch
            .iter()
            .map(|(_, expected)| {
                map.source_key
                    .iter()
                    .map(|i| expected[*i].clone())
                    .collect()
            })
            .collect();
        let Some(found) = lookup(
            target,
            target_table,
            &map.target_key,
            &map.target_columns,
            &keys,
        )
        .await?
        else {
            return Ok(false);
        };
        for ((original, expected), key) in batch.iter().zip(&keys) {
            let mut encoded = Vec::new();
            cutover_db::canonical::encode_row_into(key, &mut encoded);
            visit(original, expected, found.get(&encoded));
        }
        batch.clear();
    }
    Ok(true)
}

async fn removed_rows(
    source: &Database,
    target: &Database,
    pairs: &[Pair<'_>],
    masker: Option<&Masker>,
    options: &VerifyOptions,
) -> Result<Check> {
    let mut check = Builder::new("removed-rows-absent");
    let Some(masker) = masker else {
        check.skipped = Some(NO_SECRET.into());
        return Ok(check.finish());
    };
    let mut tables = 0;
    for pair in pairs {
        let (Some(copy), Some(target_table)) = (&pair.copy, pair.target) else {
            continue;
        };
        if copy.filter.is_none() {
            continue;
        }
        let Some(map) = usable_key_map(
            &mut check,
            pair,
            target_table,
            &[],
            "no primary key, covered by row-counts only",
            "the target lacks its key",
        ) else {
            continue;
        };
        tables += 1;
        let (mut checked, mut present) = (0u64, 0u64);
        let sql = rows_sql(copy, source, false, options);
        let looked_up = each_row_in_target(
            source,
            target,
            copy,
            target_table,
            &map,
            &sql,
            masker,
            |_, _, found| {
                checked += 1;
                present += u64::from(found.is_some());
            },
        )
        .await?;
        if !looked_up {
            check.notes.push(format!(
                "{}: key type not looked up, covered by row-counts only",
                pair.source.name
            ));
        } else if present > 0 {
            check.failures.push(format!(
                "{}: {present} of {checked} removed rows checked are in the target",
                pair.source.name
            ));
        } else {
            check.notes.push(format!(
                "{}: {checked} removed rows checked, none in the target",
                pair.source.name
            ));
        }
    }
    if tables == 0 && check.failures.is_empty() {
        check.skipped = Some("no copied table removes rows".into());
    }
    Ok(check.finish())
}

async fn masked_values(
    source: &Database,
    target: &Database,
    pairs: &[Pair<'_>],
    masker: Option<&Masker>,
    options: &VerifyOptions,
) -> Result<Check> {
    let mut check = Builder::new("masked-values-differ");
    let Some(masker) = masker else {
        check.skipped = Some(NO_SECRET.into());
        return Ok(check.finish());
    };
    for pair in pairs {
        let (Some(copy), Some(target_table)) = (&pair.copy, pair.target) else {
            continue;
        };
        let masked_columns: Vec<usize> = copy
            .rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| !matches!(rule, Rule::Keep))
            .map(|(index, _)| index)
            .collect();
        if masked_columns.is_empty() {
            continue;
        }
        let Some(map) = usable_key_map(
            &mut check,
            pair,
            target_table,
            &masked_columns,
            "no primary key, not checked",
            "the target lacks a key or masked column",
        ) else {
            continue;
        };
        let mut leaks: HashMap<usize, u64> = HashMap::new();
        let (mut checked, mut missing, mut coincidences) = (0u64, 0u64, 0u64);
        let sql = rows_sql(copy, source, true, options);
        let looked_up = each_row_in_target(
            source,
            target,
            copy,
            target_table,
            &map,
            &sql,
            masker,
            |original, expected, found| {
                checked += 1;
                let Some(values) = found else {
                    missing += 1;
                    return;
                };
                for (slot, index) in masked_columns.iter().enumerate() {
                    let source_value = &original[*index];
                    if source_value.is_null() || values[slot] != *source_value {
                        continue;
                    }
                    // Where the mask itself gives the source's value, equal is no leak.
                    if expected[*index] == *source_value {
                        coincidences += 1;
                    } else {
                        *leaks.entry(*index).or_default() += 1;
                    }
                }
            },
        )
        .await?;
        if !looked_up {
            check
                .notes
                .push(format!("{}: key type not looked up", pair.source.name));
            continue;
        }
        let mut columns: Vec<(&usize, &u64)> = leaks.iter().collect();
        columns.sort();
        for (index, rows) in columns {
            check.failures.push(format!(
                "{}.{}: {rows} of {checked} rows checked hold the source's value",
                pair.source.name, pair.source.columns[*index].name
            ));
        }
        let mut note = format!(
            "{}: {checked} rows checked, {} masked columns",
            pair.source.name,
            masked_columns.len()
        );
        if missing > 0 {
            note.push_str(&format!(", {missing} not found in the target"));
        }
        if coincidences > 0 {
            note.push_str(&format!(
                ", {coincidences} values where the mask gives the source's value by chance"
            ));
        }
        check.notes.push(note);
    }
    if check.notes.is_empty() && check.failures.is_empty() {
        check.skipped = Some("no copied table masks a column".into());
    }
    Ok(check.finish())
}

fn classified(policy: &Policy, target: &Schema) -> Check {
    let mut check = Builder::new("every-column-classified");
    let mut columns = 0;
    for table in &target.tables {
        let Some(table_policy) = crate::check::policy_table(policy, table) else {
            // A table only the target has, kept by the policy's [drift].
            let kept = [crate::check::table_key(table), table.name.name.clone()]
                .iter()
                .any(|key| policy.drift.get(key) == Some(&crate::policy::DriftDecision::Preserve));
            if !kept {
                check
                    .failures
                    .push(format!("{}: the table is not in the policy", table.name));
            }
            continue;
        };
        if table_policy.action != Action::Copy {
            continue;
        }
        for column in &table.columns {
            columns += 1;
            if !table_policy.columns.contains_key(&column.name) {
                check.failures.push(format!(
                    "{}.{}: the column has no rule",
                    table.name, column.name
                ));
            }
        }
    }
    check.notes.push(format!(
        "{} target tables, {columns} columns of copied tables",
        target.tables.len()
    ));
    check.finish()
}

/// Whether a rule's output could equal real values by chance often (small
/// vocabularies): such columns are not scanned for.
fn distinctive(rule: &Rule) -> bool {
    match rule {
        Rule::Keep | Rule::ShiftDate { .. } => false,
        Rule::Fake(kind) => matches!(kind, FakeKind::Email | FakeKind::Phone | FakeKind::Address),
        _ => true,
    }
}

async fn sensitive_values(
    source: &Database,
    target: &Database,
    pairs: &[Pair<'_>],
    options: &VerifyOptions,
) -> Result<Check> {
    let per_column = if options.full { 2_000 } else { 200 };
    let mut check = Builder::new("no-sensitive-values");
    // A random sample of distinctive values (6 characters or more) from masked text columns.
    let mut needles: Vec<String> = Vec::new();
    let mut scanned = Vec::new();
    for pair in pairs {
        let Some(copy) = &pair.copy else { continue };
        for (index, rule) in copy.rules.iter().enumerate() {
            let column = &copy.table.columns[index];
            if !distinctive(rule) || column.logical_type != Some(LogicalType::Text) {
                continue;
            }
            let name = quote(&column.name);
            let sql = format!(
                "SELECT x FROM (SELECT DISTINCT {name} AS x FROM {} WHERE length({name}) >= 6) d \
                 ORDER BY random() LIMIT {per_column}",
                copy.table.name.quoted()
            );
            let values = texts(source, &sql, 1, &format!("table {}", copy.table.name)).await?;
            scanned.push(format!("{}.{}", pair.source.name.name, column.name));
            needles.extend(values.into_iter().filter_map(|row| row.into_iter().next()));
        }
    }
    if needles.is_empty() {
        check.skipped = Some("no masked text column holds distinctive values".into());
        return Ok(check.finish());
    }
    needles.sort();
    needles.dedup();
    let values = needles
        .iter()
        .map(|value| format!("('{}')", value.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ");
    for pair in pairs {
        let (Some(_), Some(target_table)) = (&pair.copy, pair.target) else {
            continue;
        };
        let text_columns: Vec<&Column> = target_table
            .columns
            .iter()
            .filter(|column| column.logical_type == Some(LogicalType::Text))
            .collect();
        if text_columns.is_empty() {
            continue;
        }
        let sums = text_columns
            .iter()
            .map(|column| {
                format!(
                    "CAST(coalesce(sum(CASE WHEN CAST({} AS text) IN (SELECT x FROM needles) THEN 1 ELSE 0 END), 0) AS text)",
                    quote(&column.name)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "WITH needles(x) AS (VALUES {values}) SELECT {sums} FROM {}",
            target_table.name.quoted()
        );
        let rows = texts(
            target,
            &sql,
            text_columns.len(),
            &format!("table {}", target_table.name),
        )
        .await?;
        for (column, hits) in text_columns
            .iter()
            .zip(rows.first().cloned().unwrap_or_default())
        {
            let hits: u64 = hits.parse().unwrap_or_default();
            if hits > 0 {
                check.failures.push(format!(
                    "{}.{}: {hits} rows hold a value of a masked source column",
                    target_table.name.name, column.name
                ));
            }
        }
    }
    check.notes.push(format!(
        "{} distinct values from {} masked columns ({}) searched in every text column of the copied tables",
        needles.len(),
        scanned.len(),
        scanned.join(", ")
    ));
    Ok(check.finish())
}

/// The fingerprint's columns: the source's, in its order, that the target
/// table has and that can be read as values (a large-object reference is
/// the target's own and is left out).
pub(crate) fn fingerprint_columns(source: &Table, target: &[String]) -> Vec<String> {
    source
        .columns
        .iter()
        .filter(|column| column.logical_type.is_some())
        .map(|column| column.name.clone())
        .filter(|column| target.contains(column))
        .collect()
}

async fn preserved(
    target: &Database,
    pairs: &[Pair<'_>],
    options: &VerifyOptions,
) -> Result<Check> {
    let mut check = Builder::new("preserved-tables-identical");
    let Some(baseline) = &options.baseline else {
        check.skipped = Some("not run: no fingerprint from before the refresh (run it as part of refresh, or pass --baseline)".into());
        return Ok(check.finish());
    };
    for pair in pairs.iter().filter(|pair| pair.action == Action::Preserve) {
        let Some(target_table) = pair.target else {
            check
                .failures
                .push(format!("{}: missing from the target", pair.source.name));
            continue;
        };
        let Some(before) = baseline
            .iter()
            .find(|outcome| outcome.table == crate::check::table_key(pair.source))
            .and_then(|outcome| outcome.preserved)
        else {
            check.notes.push(format!(
                "{}: the target had no such table before",
                pair.source.name
            ));
            continue;
        };
        let columns = fingerprint_columns(pair.source, &target_table.column_names());
        let now = crate::fingerprint::table(target, &target_table.name, &columns).await?;
        if now == before.before {
            check.notes.push(format!(
                "{}: {} rows, content hash {:016x}, as before the refresh",
                pair.source.name, now.rows, now.hash
            ));
        } else if before.changed_by_hooks && now == before.after {
            check.notes.push(format!(
                "{}: {} rows, content hash {:016x}, as the refresh's after-load hooks left it (before the refresh {} rows with {:016x})",
                pair.source.name, now.rows, now.hash, before.before.rows, before.before.hash
            ));
        } else {
            check.failures.push(format!(
                "{}: {} rows with content hash {:016x}; before the refresh {} rows with {:016x}",
                pair.source.name, now.rows, now.hash, before.before.rows, before.before.hash
            ));
        }
    }
    Ok(check.finish())
}
