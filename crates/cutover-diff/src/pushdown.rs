//! The pushdown strategy: both sides live in one Spark, so the row-level
//! comparison runs there. One query joins the two sides on the key (a full
//! outer join: NULL keys were counted and left out beforehand) and keeps
//! the rows of keys that are only on one side or whose compared columns
//! are not null-safe equal (`<=>`, on the types Spark widens both to: 1.5
//! equals 1.500 across decimal types, int equals bigint, NULL is not '',
//! −0.0 equals 0.0 and NaN equals NaN, as cutover's canonical encoding
//! says), and every row of a key that is not unique on its side. Only those
//! rows leave Spark, each row of a side once however many rows the other
//! side has for its key, and of those rows only the key, the group-by
//! columns and the compared values that differ (all values when the
//! caller keeps them); cutover spills them and compares them exactly,
//! bucket by bucket, as every strategy does (duplicate keys included, so no
//! separate scan looks for them), so a predicate
//! finer than cutover's equality (one ignoring `--trim` or a tolerance)
//! only sends rows that then prove equal, and never hides a difference.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cutover_db::{Column, ConnectOptions, LogicalType, Value, canonical};

use crate::compare::Shared;
use crate::engine::{Layout, PartitionStats, integer_column};
use crate::error::{Error, Result};
use crate::plan::{Plan, SidePlan, where_clause};
use crate::spill::spill_and_compare;

/// A side as a subquery whose columns are `c0`, `c1`, … in plan order,
/// then how many rows share the row's key (`copies`) and the row's place
/// among them (`copy`): the key's partitioning is the join's, so finding
/// duplicate keys here costs no shuffle of its own. `partition` keeps one
/// partition's keys only.
fn side_query(side: &SidePlan, key_len: usize, partition: Option<&str>) -> String {
    let list = side
        .columns
        .iter()
        .enumerate()
        .map(|(index, column)| format!("{} AS c{index}", side.fetch_expression(column)))
        .collect::<Vec<_>>()
        .join(", ");
    let key = key_list(key_len);
    format!(
        "SELECT *, count(*) OVER (PARTITION BY {key}) AS copies, row_number() OVER (PARTITION BY {key} ORDER BY {key}) AS copy \
         FROM (SELECT {list} FROM {}{}) AS side{}",
        side.from,
        where_clause(&side.base_conditions(key_len)),
        partition
            .map(|condition| format!(" WHERE {condition}"))
            .unwrap_or_default()
    )
}

fn key_list(key_len: usize) -> String {
    (0..key_len)
        .map(|index| format!("c{index}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which partition a side's row belongs to: Spark's xxhash64 of the key
/// columns, each cast to the type Spark widens the two sides' columns to
/// (`key_types`), so that an int key and a bigint key, or 1.5 as
/// DECIMAL(10,2) and as DECIMAL(20,3), fall in the same partition, as they
/// meet in the join.
fn partition_condition(key_types: &[String], layout: Layout, partition: i64) -> String {
    let key = key_types
        .iter()
        .enumerate()
        .map(|(index, type_name)| format!("CAST(c{index} AS {type_name})"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "pmod(shiftright(xxhash64({key}), 48), {}) = {partition}",
        layout.partitions
    )
}

/// The types Spark widens each pair of key columns to (those of
/// `coalesce(source, target)`), asked of Spark's analyser without running anything.
async fn key_types(database: &cutover_db::Database, shared: &Shared) -> Result<Vec<String>> {
    let plan = &shared.plan;
    let key_len = plan.key_len;
    let list = (0..key_len)
        .map(|index| format!("coalesce(s.c{index}, t.c{index}) AS k{index}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {list} FROM ({}) AS s CROSS JOIN ({}) AS t",
        side_query(&plan.source, key_len, None),
        side_query(&plan.target, key_len, None)
    );
    let columns = database.describe(&sql).await?;
    if columns.len() != key_len {
        return Err(Error::Internal(
            "Spark described another number of key columns".into(),
        ));
    }
    Ok(columns.into_iter().map(|column| column.type_name).collect())
}

/// The join that keeps only differing keys: bucket, presence on each side,
/// then the source's columns and the target's.
pub(crate) fn differing_rows_sql(
    shared: &Shared,
    layout: Layout,
    partition: Option<&str>,
) -> String {
    let plan = &shared.plan;
    let key_len = plan.key_len;
    let width = plan.source.columns.len();
    let on = (0..key_len)
        .map(|index| format!("s.c{index} = t.c{index}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let mut differs = vec![
        "s.c0 IS NULL".to_owned(),
        "t.c0 IS NULL".to_owned(),
        "s.copies > 1".to_owned(),
        "t.copies > 1".to_owned(),
    ];
    differs.extend(
        (key_len..key_len + plan.compared).map(|index| format!("NOT (s.c{index} <=> t.c{index})")),
    );
    let key = (0..key_len)
        .map(|index| format!("coalesce(s.c{index}, t.c{index})"))
        .collect::<Vec<_>>()
        .join(", ");
    // Without kept values only what a finding needs crosses the wire: the
    // key, the group-by columns, and a compared column's two values only
    // where the sides are not null-safe equal (NULL on both sides stands
    // for "equal", and cutover still judges the values that differ, with
    // --trim and the other leniencies).
    let masked = |index: usize| {
        !shared.options.keep_values
            && (key_len..key_len + plan.compared).contains(&index)
            && !plan.groups.iter().any(|(group, _)| *group == index)
    };
    let columns = |alias: &str| {
        (0..width)
            .map(|index| {
                if masked(index) {
                    format!(
                        "IF(s.c0 IS NULL OR t.c0 IS NULL OR s.c{index} <=> t.c{index}, NULL, {alias}.c{index}) AS {alias}{index}"
                    )
                } else {
                    format!("{alias}.c{index} AS {alias}{index}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "SELECT pmod(xxhash64({key}), {buckets}) AS cutover_bucket, \
                s.c0 IS NOT NULL AND (t.c0 IS NULL OR t.copy = 1) AS cutover_in_source, \
                t.c0 IS NOT NULL AND (s.c0 IS NULL OR s.copy = 1) AS cutover_in_target, {source}, {target} \
         FROM ({source_query}) AS s FULL OUTER JOIN ({target_query}) AS t ON {on} \
         WHERE {differs}",
        buckets = layout.buckets(),
        source = columns("s"),
        target = columns("t"),
        source_query = side_query(&plan.source, key_len, partition),
        target_query = side_query(&plan.target, key_len, partition),
        differs = differs.join(" OR "),
    )
}

/// Rows of each side (with its filter) whose key has no NULL, and rows
/// whose key has one: one scan a side, before the layout is chosen.
pub(crate) async fn count_sides(plan: &Plan, connect: &ConnectOptions) -> Result<PartitionStats> {
    let database = plan.source.connect(connect).await?;
    let mut counts = [(0, 0); 2];
    for (side, counted) in [&plan.source, &plan.target].into_iter().zip(&mut counts) {
        let null_key = if side.key_nullable {
            side.null_key_condition(plan.key_len)
        } else {
            "false".to_owned()
        };
        let conditions: Vec<String> = side
            .filter
            .iter()
            .map(|filter| format!("({filter})"))
            .collect();
        let sql = format!(
            "SELECT count_if(NOT ({null_key})), count_if({null_key}) FROM {}{}",
            side.from,
            where_clause(&conditions)
        );
        let mut rows = database
            .query(
                &sql,
                vec![integer_column("rows"), integer_column("null_keys")],
                &side.context(),
            )
            .await?;
        if let Some(row) = rows.next().await.transpose()? {
            let int = |index: usize| match row.get(index) {
                Some(Value::Int(count)) => *count as u64,
                _ => 0,
            };
            *counted = (int(0), int(1));
        }
    }
    Ok(PartitionStats {
        source_rows: counts[0].0,
        target_rows: counts[1].0,
        source_null_keys: counts[0].1,
        target_null_keys: counts[1].1,
        ..PartitionStats::default()
    })
}

/// One partition of the diff: its differing rows from Spark, spilled per
/// side and compared by cutover. The rows of each side were counted
/// beforehand ([`count_sides`]); a partition reports the rows it proved equal.
pub(crate) async fn partition(
    shared: &Arc<Shared>,
    connect: &ConnectOptions,
    layout: Layout,
    partition: i64,
    rows_read: &Arc<AtomicU64>,
) -> Result<PartitionStats> {
    let plan = &shared.plan;
    let database = plan.source.connect(connect).await?;
    let condition = if layout.partitions > 1 {
        let types = key_types(&database, shared).await?;
        Some(partition_condition(&types, layout, partition))
    } else {
        None
    };

    let flag = |name: &str| Column {
        type_name: "boolean".to_owned(),
        logical_type: Some(LogicalType::Bool),
        ..integer_column(name)
    };
    let mut columns = vec![
        integer_column("cutover_bucket"),
        flag("cutover_in_source"),
        flag("cutover_in_target"),
    ];
    columns.extend(plan.source.columns.iter().cloned());
    columns.extend(plan.target.columns.iter().cloned());
    let sql = differing_rows_sql(shared, layout, condition.as_deref());
    tracing::trace!(%sql, "pushdown query");
    let mut rows = database
        .query(&sql, columns, "the join of source and target")
        .await?;

    let width = plan.source.columns.len();
    let compared = spill_and_compare(
        shared,
        partition,
        |source_sender, target_sender| async move {
            let (mut source_batch, mut target_batch) = (Vec::new(), Vec::new());
            while let Some(row) = rows.next().await {
                let row = row?;
                let bucket = match row.first() {
                    Some(Value::Int(bucket)) => *bucket,
                    _ => return Err(Error::Internal("a pushdown row without its bucket".into())),
                };
                let present = |index: usize| matches!(row.get(index), Some(Value::Bool(true)));
                if present(1) {
                    let mut encoded = Vec::with_capacity(128);
                    canonical::encode_row_into(&row[3..3 + width], &mut encoded);
                    source_batch.push((bucket, encoded));
                }
                if present(2) {
                    let mut encoded = Vec::with_capacity(128);
                    canonical::encode_row_into(&row[3 + width..3 + 2 * width], &mut encoded);
                    target_batch.push((bucket, encoded));
                }
                if source_batch.len() >= 1_024 {
                    let _ = source_sender.send(std::mem::take(&mut source_batch)).await;
                }
                if target_batch.len() >= 1_024 {
                    let _ = target_sender.send(std::mem::take(&mut target_batch)).await;
                }
            }
            for (batch, sender) in [(source_batch, source_sender), (target_batch, target_sender)] {
                if !batch.is_empty() {
                    let _ = sender.send(batch).await;
                }
            }
            Ok(())
        },
    )
    .await?;
    let rows = plan.source.row_estimate.unwrap_or(0) + plan.target.row_estimate.unwrap_or(0);
    rows_read.fetch_add(rows / u64::from(layout.partitions), Ordering::Relaxed);
    Ok(PartitionStats {
        matched: compared.matched,
        ..PartitionStats::default()
    })
}
