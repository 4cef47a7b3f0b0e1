//! Running a diff: the layout of partitions and buckets, the two strategies'
//! bucket digests and candidate reads, the whole-table checks, and resuming.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use cutover_db::{Column, ConnectOptions, Database, LogicalType, Row, Value, canonical};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::compare::{Candidates, Shared, compare};
use crate::error::{Error, Result};
use crate::plan::{Opened, Plan, SidePlan, Source, Strategy, plan, where_clause};
use crate::report::{Report, build_report};
use crate::spill::{spill_directory, spill_read, spill_write};
use crate::store::{CHECKS_PARTITION, Store};
use crate::{DiffOptions, Progress};

/// Mismatching buckets asked for per PostgreSQL query in the second pass.
const BUCKETS_PER_QUERY: usize = 50_000;
/// Rows between progress reports.
const PROGRESS_EVERY: u64 = 16_384;
/// Rows assumed when a side's size is unknown.
const DEFAULT_ROWS: u64 = 1_000_000;

/// A finished diff: its report, and the work database its delta can be read from.
#[derive(Debug)]
pub struct Diff {
    /// Counts, per-column and per-group breakdowns, samples.
    pub report: Report,
    store: Store,
}

impl Diff {
    /// Every finding in order of discovery, for writing a delta.
    pub fn delta(&self) -> Result<crate::delta::DeltaReader> {
        crate::delta::DeltaReader::open(self.store.reader()?)
    }
}

/// Partition and bucket layout, fixed for the life of a state file.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub(crate) struct Layout {
    partitions: u32,
    bucket_bits: u32,
    /// Server strategy: each server groups its rows into bucket digests
    /// itself (for tables too large to stream one pair per row per partition).
    #[serde(default)]
    grouped: bool,
}

/// Rows per partition up to which servers stream (key hash, row hash) pairs
/// and cutover sums the buckets; above it partitions multiply full scans, so
/// very large tables are grouped by the servers instead.
const PAIRS_ROWS_PER_PARTITION: u64 = 32 << 20;
/// Most buckets cutover holds per side and partition (12 bytes each).
const MAX_CLIENT_BUCKET_BITS: u32 = 22;

impl Layout {
    fn choose(plan: &Plan, options: &DiffOptions) -> Layout {
        let rows = plan
            .source
            .row_estimate
            .into_iter()
            .chain(plan.target.row_estimate)
            .max()
            .filter(|rows| *rows > 0)
            .unwrap_or(DEFAULT_ROWS);
        let jobs = options.jobs.max(1) as u64;
        let (partitions, max_bits, grouped) = match plan.strategy {
            Strategy::Server if rows > options.grouped_above_rows => {
                let wanted = jobs.max(rows.div_ceil(1 << 30));
                (wanted.next_power_of_two().min(4_096), 30, true)
            }
            Strategy::Server => {
                let wanted = jobs.max(rows.div_ceil(PAIRS_ROWS_PER_PARTITION));
                (wanted.next_power_of_two(), MAX_CLIENT_BUCKET_BITS, false)
            }
            Strategy::Client | Strategy::Pushdown => (1, MAX_CLIENT_BUCKET_BITS - 1, false),
        };
        let per_partition = rows / partitions;
        let buckets = (per_partition / options.rows_per_bucket.max(1))
            .max(1)
            .next_power_of_two();
        Layout {
            partitions: partitions as u32,
            bucket_bits: buckets.trailing_zeros().clamp(8, max_bits),
            grouped,
        }
    }

    pub(crate) fn buckets(self) -> u64 {
        1 << self.bucket_bits
    }

    fn bucket_of(self, key_hash: u64) -> i64 {
        (key_hash & (self.buckets() - 1)) as i64
    }

    fn partition_of(self, key_hash: u64) -> i64 {
        ((key_hash >> 48) & u64::from(self.partitions - 1)) as i64
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct PartitionStats {
    #[serde(default)]
    pub source_rows: u64,
    #[serde(default)]
    pub target_rows: u64,
    #[serde(default)]
    pub matched: u64,
    #[serde(default)]
    pub source_null_keys: u64,
    #[serde(default)]
    pub target_null_keys: u64,
}

/// Runs a diff of `source` against `target`.
pub async fn run(
    source: &Source,
    target: &Source,
    connect: &ConnectOptions,
    options: &DiffOptions,
    progress: &dyn Progress,
) -> Result<Diff> {
    let started = Instant::now();
    if let Some(tolerance) = options.normalise.float_tolerance {
        if !(tolerance.is_finite() && tolerance > 0.0) {
            return Err(Error::BadOption(
                "--float-tolerance must be a positive number".into(),
            ));
        }
    }
    let plan = plan(source, target, connect, options).await?;
    let fingerprint = fingerprint(&plan, options);
    let (store, done) = Store::open(options.state.as_deref(), &fingerprint)?;
    let layout = layout(&store, &plan, options, &done)?;
    tracing::debug!(strategy = ?plan.strategy, partitions = layout.partitions, buckets = layout.buckets(), "diff layout");

    let writer = store.writer()?;
    let shared = Arc::new(Shared {
        plan: plan.clone(),
        options: options.clone(),
        writer: writer.handle()?,
        differences: AtomicU64::new(0),
        stopped: AtomicBool::new(false),
    });
    // Differences already recorded by an interrupted run count towards --max-diffs.
    shared
        .differences
        .store(recorded_differences(&store)?, Ordering::Relaxed);

    let result = async {
        if !done.contains(&CHECKS_PARTITION) {
            let stats = whole_table_checks(&shared, connect).await?;
            shared
                .writer
                .done(CHECKS_PARTITION, serde_json::to_string(&stats).unwrap_or_default())
                .await?;
        }
        let total = plan
            .source
            .row_estimate
            .unwrap_or(0)
            .saturating_add(plan.target.row_estimate.unwrap_or(0));
        progress.phase("comparing", (total > 0).then_some(total));
        let jobs = options.jobs.max(1);
        let rows_read = Arc::new(AtomicU64::new(0));
        let mut reported = 0u64;
        let mut pending = (0..i64::from(layout.partitions)).filter(|partition| !done.contains(partition));
        let mut tasks = tokio::task::JoinSet::new();
        let mut ticker = tokio::time::interval(std::time::Duration::from_millis(200));
        loop {
            while tasks.len() < jobs && !shared.stopped.load(Ordering::Relaxed) {
                let Some(partition) = pending.next() else { break };
                let shared = shared.clone();
                let connect = connect.clone();
                let rows_read = rows_read.clone();
                tasks.spawn(async move {
                    let stats = match shared.plan.strategy {
                        Strategy::Server => {
                            server_partition(&shared, &connect, layout, partition, &rows_read).await?
                        }
                        Strategy::Client => {
                            client_partition(&shared, &connect, layout, partition, &rows_read).await?
                        }
                        Strategy::Pushdown => {
                            crate::pushdown::partition(&shared, &connect, layout, &rows_read).await?
                        }
                    };
                    if !shared.stopped.load(Ordering::Relaxed) {
                        shared
                            .writer
                            .done(partition, serde_json::to_string(&stats).unwrap_or_default())
                            .await?;
                    }
                    Ok::<_, Error>(())
                });
            }
            if tasks.is_empty() {
                break;
            }
            tokio::select! {
                joined = tasks.join_next() => {
                    if let Some(joined) = joined {
                        joined.map_err(|error| Error::Internal(format!("partition task: {error}")))??;
                    }
                }
                _ = ticker.tick() => {}
            }
            let now = rows_read.load(Ordering::Relaxed);
            progress.advance(now.saturating_sub(reported));
            reported = now;
        }
        Ok::<_, Error>(())
    }
    .await;
    drop(shared);
    let finished = writer.finish().await;
    result?;
    finished?;
    let stopped = options
        .max_diffs
        .is_some_and(|limit| recorded_differences(&store).unwrap_or(0) >= limit)
        && done_partitions(&store)? < u64::from(layout.partitions) + 1;
    let report = build_report(
        &store,
        &plan,
        options,
        layout.partitions,
        layout.buckets(),
        stopped,
        started.elapsed(),
    )?;
    Ok(Diff { report, store })
}

/// What makes two runs the same diff (a state file only resumes its own).
fn fingerprint(plan: &Plan, options: &DiffOptions) -> String {
    serde_json::json!({
        "source": plan.source.label,
        "target": plan.target.label,
        "source_from": plan.source.from,
        "target_from": plan.target.from,
        "columns": plan.names,
        "key": plan.key_len,
        "compared": plan.compared,
        "source_where": plan.source.filter,
        "target_where": plan.target.filter,
        "strategy": plan.strategy,
        "normalise": options.normalise,
        "group_by": options.group_by,
        "keep_values": options.keep_values,
    })
    .to_string()
}

/// The layout recorded in the state file, or a new one (recorded).
fn layout(
    store: &Store,
    plan: &Plan,
    options: &DiffOptions,
    done: &HashSet<i64>,
) -> Result<Layout> {
    let connection = store.reader()?;
    let recorded: Option<String> = connection
        .query_row("SELECT value FROM meta WHERE name = 'layout'", [], |row| {
            row.get(0)
        })
        .ok();
    if let Some(layout) = recorded.and_then(|text| serde_json::from_str::<Layout>(&text).ok()) {
        return Ok(layout);
    }
    if !done.is_empty() {
        return Err(Error::Internal(
            "state file has finished partitions but no layout".into(),
        ));
    }
    let layout = Layout::choose(plan, options);
    connection
        .execute(
            "INSERT OR REPLACE INTO meta (name, value) VALUES ('layout', ?1)",
            [serde_json::to_string(&layout).unwrap_or_default()],
        )
        .map_err(|error| Error::store("recording the layout", error))?;
    Ok(layout)
}

fn recorded_differences(store: &Store) -> Result<u64> {
    store
        .reader()?
        .query_row(
            "SELECT count(*) FROM finding WHERE kind IN ('missing', 'extra', 'changed')",
            [],
            |row| row.get::<_, i64>(0),
        )
        .map(|count| count as u64)
        .map_err(|error| Error::store("counting findings", error))
}

fn done_partitions(store: &Store) -> Result<u64> {
    store
        .reader()?
        .query_row("SELECT count(*) FROM partition_done", [], |row| {
            row.get::<_, i64>(0)
        })
        .map(|count| count as u64)
        .map_err(|error| Error::store("counting finished partitions", error))
}

/// The number a `SELECT count(*) …` answers.
pub(crate) async fn count(database: &Database, sql: &str, label: &str) -> Result<u64> {
    let mut rows = database
        .query(sql, vec![integer_column("count")], label)
        .await?;
    Ok(match rows.next().await.transpose()? {
        Some(row) => match row.first() {
            Some(Value::Int(count)) => *count as u64,
            _ => 0,
        },
        None => 0,
    })
}

pub(crate) fn integer_column(name: &str) -> Column {
    Column {
        name: name.to_owned(),
        type_name: "int8".to_owned(),
        logical_type: Some(LogicalType::Integer),
        nullable: true,
        default: None,
    }
}

/// NULL keys counted and duplicate keys listed, on each side whose key is not
/// guaranteed unique, over the whole (filtered) table.
async fn whole_table_checks(
    shared: &Arc<Shared>,
    connect: &ConnectOptions,
) -> Result<PartitionStats> {
    let plan = &shared.plan;
    let mut stats = PartitionStats::default();
    for side in [&plan.source, &plan.target] {
        // Files are checked for NULL keys as they are read; duplicates show where they differ.
        if side.is_file() || (!side.key_nullable && side.key_unique) {
            continue;
        }
        let database = side.connect(connect).await?;
        if side.key_nullable {
            let mut conditions = Vec::new();
            if let Some(filter) = &side.filter {
                conditions.push(format!("({filter})"));
            }
            conditions.push(format!("({})", side.null_key_condition(plan.key_len)));
            let sql = format!(
                "SELECT count(*) FROM {}{}",
                side.from,
                where_clause(&conditions)
            );
            let count = count(&database, &sql, &side.context()).await?;
            if side.role == "source" {
                stats.source_null_keys = count;
            } else {
                stats.target_null_keys = count;
            }
        }
        // The pushdown join finds duplicate keys itself, without a scan of its own.
        if !side.key_unique && shared.plan.strategy != Strategy::Pushdown {
            let keys = &side.columns[..plan.key_len];
            let key_list = keys
                .iter()
                .map(|column| side.quote(&column.name))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT {}, count(*) FROM {}{} GROUP BY {key_list} HAVING count(*) > 1",
                side.fetch_list(keys),
                side.from,
                where_clause(&side.base_conditions(plan.key_len)),
            );
            let mut columns = keys.to_vec();
            columns.push(integer_column("count"));
            let mut rows = database.query(&sql, columns, &side.context()).await?;
            while let Some(row) = rows.next().await {
                let row = row?;
                let count = match row.last() {
                    Some(Value::Int(count)) => *count as u64,
                    _ => 0,
                };
                shared
                    .duplicate(CHECKS_PARTITION, side.role, &row[..plan.key_len], count)
                    .await?;
            }
        }
    }
    Ok(stats)
}

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

/// A bucket's share of a row: the row hash mixed with its key hash, so that
/// two keys swapping their rows changes the bucket's digest.
fn mix(key_hash: u64, row_hash: u64) -> u64 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&key_hash.to_le_bytes());
    bytes[8..].copy_from_slice(&row_hash.to_le_bytes());
    xxhash_rust::xxh3::xxh3_64(&bytes)
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

/// Compares two sides' bucket digests: counts, and which buckets differ.
fn compare_digests(source: &BucketDigests, target: &BucketDigests) -> (PartitionStats, Vec<bool>) {
    let mut stats = PartitionStats {
        source_rows: source.rows,
        target_rows: target.rows,
        ..PartitionStats::default()
    };
    let mismatched = source
        .counts
        .iter()
        .zip(&target.counts)
        .zip(source.digests.iter().zip(&target.digests))
        .map(
            |((source_count, target_count), (source_digest, target_digest))| {
                let equal = source_count == target_count && source_digest == target_digest;
                if equal {
                    stats.matched += u64::from(*source_count);
                }
                !equal
            },
        )
        .collect();
    (stats, mismatched)
}

/// One partition with the server strategy: bucket digests from both servers,
/// then the rows of mismatching buckets.
async fn server_partition(
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

/// Key hash and row hash of a row as the client strategy computes them.
fn client_hashes(shared: &Shared, row: &[Value], buffer: &mut Vec<u8>) -> (u64, u64) {
    let plan = &shared.plan;
    buffer.clear();
    for value in &row[..plan.key_len] {
        canonical::encode_into(&shared.options.normalise.for_hash(value), buffer);
    }
    let key_hash = xxhash_rust::xxh3::xxh3_64(buffer);
    for value in &row[plan.key_len..plan.key_len + plan.compared] {
        canonical::encode_into(&shared.options.normalise.for_hash(value), buffer);
    }
    (key_hash, xxhash_rust::xxh3::xxh3_64(buffer))
}

/// One side's bucket digests for a partition: rows per bucket, and the XOR of
/// each row's [`mix`] of key hash and row hash.
struct BucketDigests {
    counts: Vec<u32>,
    digests: Vec<u64>,
    rows: u64,
    /// Rows skipped for a NULL in the key (files; databases filter them in SQL).
    null_keys: u64,
}

impl BucketDigests {
    fn new(layout: Layout) -> BucketDigests {
        let buckets = layout.buckets() as usize;
        BucketDigests {
            counts: vec![0; buckets],
            digests: vec![0; buckets],
            rows: 0,
            null_keys: 0,
        }
    }

    fn add(&mut self, layout: Layout, key_hash: u64, row_hash: u64, rows_read: &AtomicU64) {
        let bucket = layout.bucket_of(key_hash) as usize;
        self.counts[bucket] = self.counts[bucket].wrapping_add(1);
        self.digests[bucket] ^= mix(key_hash, row_hash);
        self.rows += 1;
        if self.rows % PROGRESS_EVERY == 0 {
            rows_read.fetch_add(PROGRESS_EVERY, Ordering::Relaxed);
        }
    }

    fn flush_progress(&self, rows_read: &AtomicU64) {
        rows_read.fetch_add(self.rows % PROGRESS_EVERY, Ordering::Relaxed);
    }
}

/// One partition with the client strategy: each side read and hashed by
/// cutover into bucket digests, then read again keeping only the rows of
/// mismatching buckets, which are spilled to disk and compared in bucket order.
async fn client_partition(
    shared: &Arc<Shared>,
    connect: &ConnectOptions,
    layout: Layout,
    partition: i64,
    rows_read: &Arc<AtomicU64>,
) -> Result<PartitionStats> {
    let plan = &shared.plan;
    let (source_db, target_db) =
        tokio::try_join!(plan.source.open(connect), plan.target.open(connect))?;
    let source_db = Arc::new(source_db);
    let target_db = Arc::new(target_db);
    let key_len = plan.key_len;
    let digest_side = |side: SidePlan, opened: Arc<Opened>| {
        let shared = shared.clone();
        let rows_read = rows_read.clone();
        tokio::spawn(async move {
            let mut rows = side.rows(&opened, key_len).await?;
            let mut digests = BucketDigests::new(layout);
            let mut buffer = Vec::with_capacity(256);
            while let Some(row) = rows.next().await {
                let row = row?;
                if row[..key_len].iter().any(Value::is_null) {
                    digests.null_keys += 1;
                    continue;
                }
                let (key_hash, row_hash) = client_hashes(&shared, &row, &mut buffer);
                if layout.partition_of(key_hash) != partition {
                    continue;
                }
                digests.add(layout, key_hash, row_hash, &rows_read);
            }
            digests.flush_progress(&rows_read);
            Ok::<_, Error>(digests)
        })
    };
    let joined = |handle: tokio::task::JoinHandle<Result<BucketDigests>>| async move {
        handle
            .await
            .map_err(|error| Error::Internal(format!("hashing task: {error}")))?
    };
    let (source_digests, target_digests) = tokio::try_join!(
        joined(digest_side(plan.source.clone(), source_db.clone())),
        joined(digest_side(plan.target.clone(), target_db.clone()))
    )?;
    let (mut stats, mismatched) = compare_digests(&source_digests, &target_digests);
    stats.source_null_keys = source_digests.null_keys;
    stats.target_null_keys = target_digests.null_keys;
    drop((source_digests, target_digests));
    if !mismatched.iter().any(|mismatch| *mismatch) {
        return Ok(stats);
    }
    let mismatched = Arc::new(mismatched);
    let spill_directory = spill_directory()?;
    let spill_side = |side: SidePlan, opened: Arc<Opened>, path: PathBuf| {
        let shared = shared.clone();
        let mismatched = mismatched.clone();
        tokio::spawn(async move {
            let mut rows = side.rows(&opened, key_len).await?;
            let (sender, receiver) = mpsc::channel::<Vec<(i64, Vec<u8>)>>(4);
            let writer = tokio::task::spawn_blocking(move || spill_write(&path, receiver));
            let mut buffer = Vec::with_capacity(256);
            let mut batch = Vec::with_capacity(1_024);
            while let Some(row) = rows.next().await {
                let row = row?;
                if row[..key_len].iter().any(Value::is_null) {
                    continue;
                }
                let (key_hash, _) = client_hashes(&shared, &row, &mut buffer);
                if layout.partition_of(key_hash) != partition {
                    continue;
                }
                let bucket = layout.bucket_of(key_hash);
                if !mismatched[bucket as usize] {
                    continue;
                }
                let mut encoded = Vec::with_capacity(128);
                canonical::encode_row_into(&row, &mut encoded);
                batch.push((bucket, encoded));
                if batch.len() == 1_024 && sender.send(std::mem::take(&mut batch)).await.is_err() {
                    break;
                }
            }
            if !batch.is_empty() {
                let _ = sender.send(batch).await;
            }
            drop(sender);
            writer
                .await
                .map_err(|error| Error::Internal(format!("spill writer: {error}")))?
        })
    };
    let source_path = spill_directory.path().join("source.db");
    let target_path = spill_directory.path().join("target.db");
    let joined = |handle: tokio::task::JoinHandle<Result<()>>| async move {
        handle
            .await
            .map_err(|error| Error::Internal(format!("spill task: {error}")))?
    };
    tokio::try_join!(
        joined(spill_side(
            plan.source.clone(),
            source_db,
            source_path.clone()
        )),
        joined(spill_side(
            plan.target.clone(),
            target_db,
            target_path.clone()
        ))
    )?;
    let compared = compare(
        shared,
        partition,
        spill_read(source_path),
        spill_read(target_path),
    )
    .await?;
    stats.matched += compared.matched;
    Ok(stats)
}
