//! The hybrid strategy: a Spark side against a side of another engine (or
//! of another Spark server). Each side is hashed where it can be: a Spark
//! side in Spark SQL, streaming one (key hash, row hash) pair per row; any
//! other side by cutover as it reads the rows, with the same hash
//! ([`cutover_db::spark_hash`], Spark's `xxhash64` reproduced bit for bit).
//! Bucket digests are compared; then only the rows of mismatching buckets
//! are read again (from Spark, asked for by bucket when they are few), spilled
//! per side and compared exactly.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use cutover_db::spark_hash::{self, HashForm};
use cutover_db::{ConnectOptions, Engine, Row, Value, canonical};
use futures_util::StreamExt;

use crate::compare::Shared;
use crate::digests::{BucketDigests, compare_digests};
use crate::engine::{Layout, PartitionStats, integer_column};
use crate::error::{Error, Result};
use crate::plan::{Opened, SidePlan, hash_forms, where_clause};
use crate::spill::{SpillSender, spill_and_compare};

/// Most mismatching buckets asked of Spark by name; above it the
/// partition's rows are streamed and cutover keeps those of mismatching buckets.
const BUCKETS_BY_NAME: usize = 10_000;

/// The key hash and row hash as Spark SQL, for a Spark side.
fn spark_hashes(side: &SidePlan, forms: &[HashForm], key_len: usize) -> (String, String) {
    let columns: Vec<(HashForm, String)> = forms
        .iter()
        .zip(&side.columns)
        .map(|(form, column)| (*form, side.fetch_expression(column)))
        .collect();
    (
        spark_hash::spark_sql(&columns[..key_len]),
        spark_hash::spark_sql(&columns[key_len..]),
    )
}

/// The conditions a Spark side's reads carry: its own, and the partition's.
fn spark_conditions(
    side: &SidePlan,
    key_hash: &str,
    key_len: usize,
    layout: Layout,
    partition: i64,
) -> Vec<String> {
    let mut conditions = side.base_conditions(key_len);
    if layout.partitions > 1 {
        conditions.push(format!(
            "(shiftrightunsigned({key_hash}, 48) & {}) = {partition}",
            layout.partitions - 1
        ));
    }
    conditions
}

fn is_spark(side: &SidePlan) -> bool {
    side.engine() == Some(Engine::Spark)
}

/// Pass one for a side: its bucket digests for the partition.
async fn digests(
    shared: &Arc<Shared>,
    side: &SidePlan,
    opened: &Opened,
    forms: &[HashForm],
    layout: Layout,
    partition: i64,
    rows_read: &AtomicU64,
) -> Result<BucketDigests> {
    let key_len = shared.plan.key_len;
    let mut digests = BucketDigests::new(layout);
    match opened {
        Opened::Database(database) if is_spark(side) => {
            let (key_hash, row_hash) = spark_hashes(side, forms, key_len);
            let conditions = spark_conditions(side, &key_hash, key_len, layout, partition);
            let sql = format!(
                "SELECT {key_hash}, {row_hash} FROM {}{}",
                side.from,
                where_clause(&conditions)
            );
            let mut pairs = database.query_int8_pairs(&sql, &side.context()).await?;
            while let Some(batch) = pairs.next().await {
                for (key_hash, row_hash) in batch? {
                    digests.add(layout, key_hash as u64, row_hash as u64, rows_read);
                }
            }
        }
        _ => {
            let mut rows = side.rows(opened, key_len).await?;
            while let Some(row) = rows.next().await {
                let row = row?;
                if row[..key_len].iter().any(Value::is_null) {
                    digests.null_keys += 1;
                    continue;
                }
                let (key_hash, row_hash) = rust_hashes(forms, key_len, &row);
                if layout.partition_of(key_hash) == partition {
                    digests.add(layout, key_hash, row_hash, rows_read);
                }
            }
        }
    }
    digests.flush_progress(rows_read);
    Ok(digests)
}

fn rust_hashes(forms: &[HashForm], key_len: usize, row: &[Value]) -> (u64, u64) {
    (
        spark_hash::hash(&forms[..key_len], &row[..key_len]),
        spark_hash::hash(&forms[key_len..], &row[key_len..forms.len()]),
    )
}

/// What pass two looks for in a partition: the rows of mismatching buckets.
#[derive(Clone)]
struct Wanted {
    shared: Arc<Shared>,
    forms: Arc<Vec<HashForm>>,
    layout: Layout,
    partition: i64,
    mismatched: Arc<Vec<bool>>,
}

/// Pass two for a side: the rows of mismatching buckets, sent to its spill.
async fn spill(wanted: Wanted, side: SidePlan, opened: Opened, sender: SpillSender) -> Result<()> {
    let Wanted {
        shared,
        forms,
        layout,
        partition,
        mismatched,
    } = wanted;
    let key_len = shared.plan.key_len;
    let keep = |bucket: i64| mismatched.get(bucket as usize).copied().unwrap_or(false);
    let mut batch = Vec::with_capacity(1_024);
    let push = |bucket: i64, row: &[Value], batch: &mut Vec<(i64, Vec<u8>)>| {
        let mut encoded = Vec::with_capacity(128);
        canonical::encode_row_into(row, &mut encoded);
        batch.push((bucket, encoded));
    };
    match &opened {
        Opened::Database(database) if is_spark(&side) => {
            let mask = layout.buckets() - 1;
            let (key_hash, _) = spark_hashes(&side, &forms, key_len);
            let mut conditions = spark_conditions(&side, &key_hash, key_len, layout, partition);
            if mismatched.iter().filter(|mismatch| **mismatch).count() <= BUCKETS_BY_NAME {
                let buckets: Vec<String> = mismatched
                    .iter()
                    .enumerate()
                    .filter(|(_, mismatch)| **mismatch)
                    .map(|(bucket, _)| bucket.to_string())
                    .collect();
                conditions.push(format!("({key_hash} & {mask}) IN ({})", buckets.join(",")));
            }
            let sql = format!(
                "SELECT {key_hash} & {mask} AS cutover_bucket, {} FROM {}{}",
                side.fetch_list(&side.columns),
                side.from,
                where_clause(&conditions)
            );
            let mut columns = vec![integer_column("cutover_bucket")];
            columns.extend(side.columns.iter().cloned());
            let mut rows = database.query(&sql, columns, &side.context()).await?;
            while let Some(row) = rows.next().await {
                let row: Row = row?;
                let bucket = match row.first() {
                    Some(Value::Int(bucket)) => *bucket,
                    _ => return Err(Error::Internal("a candidate row without its bucket".into())),
                };
                if keep(bucket) {
                    push(bucket, &row[1..], &mut batch);
                }
                if batch.len() >= 1_024 && sender.send(std::mem::take(&mut batch)).await.is_err() {
                    break;
                }
            }
        }
        _ => {
            let mut rows = side.rows(&opened, key_len).await?;
            while let Some(row) = rows.next().await {
                let row = row?;
                if row[..key_len].iter().any(Value::is_null) {
                    continue;
                }
                let key_hash = spark_hash::hash(&forms[..key_len], &row[..key_len]);
                if layout.partition_of(key_hash) != partition {
                    continue;
                }
                let bucket = layout.bucket_of(key_hash);
                if keep(bucket) {
                    push(bucket, &row, &mut batch);
                }
                if batch.len() >= 1_024 && sender.send(std::mem::take(&mut batch)).await.is_err() {
                    break;
                }
            }
        }
    }
    if !batch.is_empty() {
        let _ = sender.send(batch).await;
    }
    Ok(())
}

/// One partition with the hybrid strategy.
pub(crate) async fn partition(
    shared: &Arc<Shared>,
    connect: &ConnectOptions,
    layout: Layout,
    partition: i64,
    rows_read: &Arc<AtomicU64>,
) -> Result<PartitionStats> {
    let plan = &shared.plan;
    let forms = hash_forms(&plan.source, &plan.target, plan.key_len + plan.compared)
        .ok_or_else(|| Error::Internal("the hybrid strategy without hash forms".into()))?;
    let (source_db, target_db) =
        tokio::try_join!(plan.source.open(connect), plan.target.open(connect))?;
    let (source_digests, target_digests) = tokio::try_join!(
        digests(
            shared,
            &plan.source,
            &source_db,
            &forms,
            layout,
            partition,
            rows_read
        ),
        digests(
            shared,
            &plan.target,
            &target_db,
            &forms,
            layout,
            partition,
            rows_read
        )
    )?;
    let (mut stats, mismatched) = compare_digests(&source_digests, &target_digests);
    tracing::debug!(
        partition,
        mismatched = mismatched.iter().filter(|mismatch| **mismatch).count(),
        "bucket digests compared"
    );
    stats.source_null_keys = source_digests.null_keys;
    stats.target_null_keys = target_digests.null_keys;
    drop((source_digests, target_digests));
    if !mismatched.iter().any(|mismatch| *mismatch) {
        return Ok(stats);
    }
    let wanted = Wanted {
        shared: shared.clone(),
        forms: Arc::new(forms),
        layout,
        partition,
        mismatched: Arc::new(mismatched),
    };
    let side_task = |side: &SidePlan, opened: Opened, sender: SpillSender| {
        tokio::spawn(spill(wanted.clone(), side.clone(), opened, sender))
    };
    let joined = |handle: tokio::task::JoinHandle<Result<()>>| async move {
        handle
            .await
            .map_err(|error| Error::Internal(format!("spill task: {error}")))?
    };
    let compared = spill_and_compare(shared, partition, |source, target| async move {
        tokio::try_join!(
            joined(side_task(&plan.source, source_db, source)),
            joined(side_task(&plan.target, target_db, target))
        )?;
        Ok(())
    })
    .await?;
    stats.matched += compared.matched;
    Ok(stats)
}
