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
use tokio::sync::mpsc;

use crate::compare::{Shared, compare};
use crate::engine::{Layout, PartitionStats, count, integer_column};
use crate::error::{Error, Result};
use crate::plan::{SidePlan, where_clause};
use crate::spill::{spill_directory, spill_read, spill_write};

/// A side as a subquery whose columns are `c0`, `c1`, … in plan order,
/// then how many rows share the row's key (`copies`) and the row's place
/// among them (`copy`): the key's partitioning is the join's, so finding
/// duplicate keys here costs no shuffle of its own.
fn side_query(side: &SidePlan, key_len: usize) -> String {
    let list = side
        .columns
        .iter()
        .enumerate()
        .map(|(index, column)| format!("{} AS c{index}", side.fetch_expression(column)))
        .collect::<Vec<_>>()
        .join(", ");
    let key = (0..key_len)
        .map(|index| format!("c{index}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT *, count(*) OVER (PARTITION BY {key}) AS copies, row_number() OVER (PARTITION BY {key} ORDER BY {key}) AS copy \
         FROM (SELECT {list} FROM {}{}) AS side",
        side.from,
        where_clause(&side.base_conditions(key_len))
    )
}

/// The join that keeps only differing keys: bucket, presence on each side,
/// then the source's columns and the target's.
pub(crate) fn differing_rows_sql(shared: &Shared, layout: Layout) -> String {
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
        source_query = side_query(&plan.source, key_len),
        target_query = side_query(&plan.target, key_len),
        differs = differs.join(" OR "),
    )
}

/// Rows of a side with its key and filter, counted inside Spark.
async fn side_rows(
    database: &cutover_db::Database,
    side: &SidePlan,
    key_len: usize,
) -> Result<u64> {
    let sql = format!(
        "SELECT count(*) FROM {}{}",
        side.from,
        where_clause(&side.base_conditions(key_len))
    );
    count(database, &sql, &side.context()).await
}

/// The whole diff in one partition: the differing rows from Spark, spilled
/// per side and compared by cutover.
pub(crate) async fn partition(
    shared: &Arc<Shared>,
    connect: &ConnectOptions,
    layout: Layout,
    rows_read: &Arc<AtomicU64>,
) -> Result<PartitionStats> {
    let plan = &shared.plan;
    let key_len = plan.key_len;
    let database = plan.source.connect(connect).await?;
    let source_rows = side_rows(&database, &plan.source, key_len).await?;
    let target_rows = side_rows(&database, &plan.target, key_len).await?;
    rows_read.fetch_add(source_rows + target_rows, Ordering::Relaxed);

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
    let sql = differing_rows_sql(shared, layout);
    tracing::trace!(%sql, "pushdown query");
    let mut rows = database
        .query(&sql, columns, "the join of source and target")
        .await?;

    let directory = spill_directory()?;
    let source_path = directory.path().join("source.db");
    let target_path = directory.path().join("target.db");
    let (source_sender, source_receiver) = mpsc::channel::<Vec<(i64, Vec<u8>)>>(4);
    let (target_sender, target_receiver) = mpsc::channel::<Vec<(i64, Vec<u8>)>>(4);
    let source_writer = {
        let path = source_path.clone();
        tokio::task::spawn_blocking(move || spill_write(&path, source_receiver))
    };
    let target_writer = {
        let path = target_path.clone();
        tokio::task::spawn_blocking(move || spill_write(&path, target_receiver))
    };
    let width = plan.source.columns.len();
    let (mut source_batch, mut target_batch) = (Vec::new(), Vec::new());
    let mut source_candidates = 0u64;
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
            source_candidates += 1;
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
    for writer in [source_writer, target_writer] {
        writer
            .await
            .map_err(|error| Error::Internal(format!("spill writer: {error}")))??;
    }
    let compared = compare(shared, 0, spill_read(source_path), spill_read(target_path)).await?;
    Ok(PartitionStats {
        source_rows,
        target_rows,
        matched: source_rows.saturating_sub(source_candidates) + compared.matched,
        ..PartitionStats::default()
    })
}
