//! The server strategy (both sides PostgreSQL 14+): each server hashes its
//! own rows with typed hashes (see [`crate::normalise::Normalise::postgres_hash`])
//! and either streams (key hash, row hash) pairs that cutover sums into
//! bucket digests or groups them into digests itself; then only the rows of
//! mismatching buckets are read and compared.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use cutover_db::{ConnectOptions, Database, Row, Value};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::compare::{Candidates, Shared, compare};
use crate::digests::{BucketDigests, compare_digests};
use crate::engine::{Layout, PartitionStats, integer_column};
use crate::error::{Error, Result};
use crate::plan::{SidePlan, where_clause};

/// Mismatching buckets asked for per PostgreSQL query in the second pass.
const BUCKETS_PER_QUERY: usize = 50_000;

/// The key hash and row hash PostgreSQL computes for a side.
///
/// Each is the XOR of one typed hash per column, each with its own seed
/// (see [`crate::normalise::Normalise::postgres_hash`]): the key hash over
/// the key columns, the row hash over the compared columns.
fn server_hashes(shared: &Shared, side: &SidePlan) -> (String, String) {
    let plan = &shared.plan;
    let hashes: Vec<String> = (0..plan.key_len + plan.compared)
        .map(|index| {
            shared.options.normalise.postgres_hash(
                &plan.source.columns[index],
                &plan.target.columns[index],
                &side.columns[index],
                index,
            )
        })
        .collect();
    let key_hash = format!("({})", hashes[..plan.key_len].join(" # "));
    let row_hash = if plan.compared == 0 {
        "0::int8".to_owned()
    } else {
        format!("({})", hashes[plan.key_len..].join(" # "))
    };
    (key_hash, row_hash)
}

fn server_conditions(
    shared: &Shared,
    side: &SidePlan,
    layout: Layout,
    partition: i64,
    key_hash: &str,
) -> Vec<String> {
    let mut conditions = side.base_conditions(shared.plan.key_len);
    if layout.partitions > 1 {
        conditions.push(format!(
            "(({key_hash} >> 48) & {}) = {partition}",
            layout.partitions - 1
        ));
    }
    conditions
}

/// Pass one with the servers grouping: (bucket, rows, digest) from each,
/// merged in bucket order. Returns the counts and the mismatching buckets.
async fn grouped_digests(
    shared: &Shared,
    source_db: &Database,
    target_db: &Database,
    layout: Layout,
    partition: i64,
    rows_read: &AtomicU64,
) -> Result<(PartitionStats, Vec<i64>)> {
    let plan = &shared.plan;
    let (mut source_digests, mut target_digests) = tokio::try_join!(
        server_digests(shared, &plan.source, source_db, layout, partition),
        server_digests(shared, &plan.target, target_db, layout, partition)
    )?;
    let mut stats = PartitionStats::default();
    let mut mismatched: Vec<i64> = Vec::new();
    let as_digest = |row: Row| -> (i64, u64, i64) {
        let int = |index: usize| match row.get(index) {
            Some(Value::Int(value)) => *value,
            _ => 0,
        };
        (int(0), int(1) as u64, int(2))
    };
    let mut next_source = source_digests.next().await.transpose()?.map(as_digest);
    let mut next_target = target_digests.next().await.transpose()?.map(as_digest);
    loop {
        match (next_source, next_target) {
            (None, None) => break,
            (Some(left), Some(right)) if left.0 == right.0 => {
                stats.source_rows += left.1;
                stats.target_rows += right.1;
                if left.1 == right.1 && left.2 == right.2 {
                    stats.matched += left.1;
                } else {
                    mismatched.push(left.0);
                }
                rows_read.fetch_add(left.1 + right.1, Ordering::Relaxed);
                next_source = source_digests.next().await.transpose()?.map(as_digest);
                next_target = target_digests.next().await.transpose()?.map(as_digest);
            }
            (Some(left), right) if right.is_none_or(|right| left.0 < right.0) => {
                stats.source_rows += left.1;
                mismatched.push(left.0);
                rows_read.fetch_add(left.1, Ordering::Relaxed);
                next_source = source_digests.next().await.transpose()?.map(as_digest);
            }
            (_, Some(right)) => {
                stats.target_rows += right.1;
                mismatched.push(right.0);
                rows_read.fetch_add(right.1, Ordering::Relaxed);
                next_target = target_digests.next().await.transpose()?.map(as_digest);
            }
            (Some(_), None) => unreachable_state()?,
        }
    }
    Ok((stats, mismatched))
}

/// Pass one with the servers streaming one (key hash, row hash) pair per
/// row: cutover sums them into bucket digests.
async fn streamed_digests(
    shared: &Shared,
    side: &SidePlan,
    database: &Database,
    layout: Layout,
    partition: i64,
    rows_read: &AtomicU64,
) -> Result<BucketDigests> {
    let (key_hash, row_hash) = server_hashes(shared, side);
    let conditions = server_conditions(shared, side, layout, partition, &key_hash);
    let sql = format!(
        "SELECT {key_hash}, {row_hash} FROM {}{}",
        side.from,
        where_clause(&conditions)
    );
    let mut pairs = database.query_int8_pairs(&sql, &side.context()).await?;
    let mut digests = BucketDigests::new(layout);
    while let Some(batch) = pairs.next().await {
        for (key_hash, row_hash) in batch? {
            digests.add(layout, key_hash as u64, row_hash as u64, rows_read);
        }
    }
    digests.flush_progress(rows_read);
    Ok(digests)
}

/// One partition with the server strategy: bucket digests from both servers,
/// then the rows of mismatching buckets.
pub(crate) async fn server_partition(
    shared: &Arc<Shared>,
    connect: &ConnectOptions,
    layout: Layout,
    partition: i64,
    rows_read: &AtomicU64,
) -> Result<PartitionStats> {
    let plan = &shared.plan;
    let started = Instant::now();
    let (source_db, target_db) =
        tokio::try_join!(plan.source.connect(connect), plan.target.connect(connect))?;
    let (mut stats, mismatched) = if layout.grouped {
        grouped_digests(shared, &source_db, &target_db, layout, partition, rows_read).await?
    } else {
        let (source_digests, target_digests) = tokio::try_join!(
            streamed_digests(
                shared,
                &plan.source,
                &source_db,
                layout,
                partition,
                rows_read
            ),
            streamed_digests(
                shared,
                &plan.target,
                &target_db,
                layout,
                partition,
                rows_read
            )
        )?;
        let (stats, mismatched) = compare_digests(&source_digests, &target_digests);
        let list: Vec<i64> = mismatched
            .iter()
            .enumerate()
            .filter(|(_, mismatch)| **mismatch)
            .map(|(bucket, _)| bucket as i64)
            .collect();
        (stats, list)
    };
    tracing::debug!(partition, mismatched = mismatched.len(), elapsed = ?started.elapsed(), "bucket digests compared");

    for chunk in mismatched.chunks(BUCKETS_PER_QUERY) {
        if shared.stopped.load(Ordering::Relaxed) {
            break;
        }
        let list = chunk
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let (source_rows, target_rows) = tokio::try_join!(
            server_candidates(shared, &plan.source, &source_db, layout, partition, &list),
            server_candidates(shared, &plan.target, &target_db, layout, partition, &list)
        )?;
        stats.matched += compare(shared, partition, source_rows, target_rows)
            .await?
            .matched;
    }
    tracing::debug!(partition, elapsed = ?started.elapsed(), "mismatching buckets compared");
    Ok(stats)
}

/// Pass one on a server: (bucket, rows, digest) in bucket order.
async fn server_digests(
    shared: &Shared,
    side: &SidePlan,
    database: &Database,
    layout: Layout,
    partition: i64,
) -> Result<cutover_db::RowStream> {
    let mask = layout.buckets() - 1;
    let (key_hash, row_hash) = server_hashes(shared, side);
    let conditions = server_conditions(shared, side, layout, partition, &key_hash);
    let sql = format!(
        "SELECT ({key_hash} & {mask}) AS bucket, count(*), bit_xor(hashint8extended({row_hash}, {key_hash})) FROM {}{} GROUP BY 1 ORDER BY 1",
        side.from,
        where_clause(&conditions)
    );
    let columns = vec![
        integer_column("bucket"),
        integer_column("count"),
        integer_column("digest"),
    ];
    Ok(database.query(&sql, columns, &side.context()).await?)
}

/// Pass two on a server: the rows of the listed buckets, in bucket order.
async fn server_candidates(
    shared: &Shared,
    side: &SidePlan,
    database: &Database,
    layout: Layout,
    partition: i64,
    list: &str,
) -> Result<Candidates> {
    let mask = layout.buckets() - 1;
    let (key_hash, _) = server_hashes(shared, side);
    let mut conditions = server_conditions(shared, side, layout, partition, &key_hash);
    conditions.push(format!("({key_hash} & {mask}) = ANY('{{{list}}}'::int8[])"));
    let sql = format!(
        "SELECT ({key_hash} & {mask}) AS cutover_bucket, {} FROM {}{} ORDER BY 1",
        side.fetch_list(&side.columns),
        side.from,
        where_clause(&conditions)
    );
    let mut columns = vec![integer_column("cutover_bucket")];
    columns.extend(side.columns.iter().cloned());
    tracing::trace!(%sql, "candidate query");
    let rows = database.query(&sql, columns, &side.context()).await?;
    Ok(with_bucket(rows.boxed()))
}

fn unreachable_state() -> Result<()> {
    Err(Error::Internal(
        "bucket merge reached an impossible state".into(),
    ))
}

/// Splits the leading bucket column off each row.
fn with_bucket(rows: BoxStream<'static, cutover_db::Result<Row>>) -> Candidates {
    rows.map(|row| {
        let mut row = row?;
        if row.is_empty() {
            return Err(Error::Internal("candidate row without a bucket".into()));
        }
        let bucket = match row.remove(0) {
            Value::Int(bucket) => bucket,
            _ => return Err(Error::Internal("candidate bucket is not an integer".into())),
        };
        Ok((bucket, row))
    })
    .boxed()
}
