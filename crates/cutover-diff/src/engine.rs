//! Running a diff: the layout of partitions and buckets, the two strategies'
//! bucket digests and candidate reads, the whole-table checks, and resuming.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use cutover_db::{Column, ConnectOptions, Database, LogicalType, Value};
use serde::{Deserialize, Serialize};

use crate::compare::Shared;
use crate::error::{Error, Result};
use crate::plan::{Plan, Source, Strategy, plan, where_clause};
use crate::report::{Report, build_report};
use crate::store::{CHECKS_PARTITION, Store};
use crate::{DiffOptions, Progress};

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
    pub(crate) partitions: u32,
    bucket_bits: u32,
    /// Server strategy: each server groups its rows into bucket digests
    /// itself (for tables too large to stream one pair per row per partition).
    #[serde(default)]
    pub(crate) grouped: bool,
}

/// Rows per partition up to which servers stream (key hash, row hash) pairs
/// and cutover sums the buckets; above it partitions multiply full scans, so
/// very large tables are grouped by the servers instead.
const PAIRS_ROWS_PER_PARTITION: u64 = 32 << 20;
/// Rows per partition of the pushdown join (see [`Layout::choose`]).
const PUSHDOWN_ROWS_PER_PARTITION: u64 = 1 << 30;
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
            // One join per partition, each scanning both sides again: a
            // partition per ~10⁹ rows keeps a killed run's loss to one of
            // them (--state) and each join's shuffle to a size a cluster
            // handles, at the price of one more scan per partition.
            Strategy::Pushdown => (
                rows.div_ceil(PUSHDOWN_ROWS_PER_PARTITION)
                    .next_power_of_two()
                    .min(1_024),
                MAX_CLIENT_BUCKET_BITS - 1,
                false,
            ),
            Strategy::Client | Strategy::Hybrid => (1, MAX_CLIENT_BUCKET_BITS - 1, false),
        };
        let partitions = match options.partitions {
            Some(wanted) => u64::from(wanted.clamp(1, 4_096)).next_power_of_two(),
            None => partitions,
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

    pub(crate) fn bucket_of(self, key_hash: u64) -> i64 {
        (key_hash & (self.buckets() - 1)) as i64
    }

    pub(crate) fn partition_of(self, key_hash: u64) -> i64 {
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
    let mut plan = plan(source, target, connect, options).await?;
    // The pushdown counts each side first: the counts choose its layout.
    let counted = if plan.strategy == Strategy::Pushdown {
        let stats = crate::pushdown::count_sides(&plan, connect).await?;
        plan.source.row_estimate = Some(stats.source_rows);
        plan.target.row_estimate = Some(stats.target_rows);
        Some(stats)
    } else {
        None
    };
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
            let stats = match &counted {
                Some(stats) => stats.clone(),
                None => whole_table_checks(&shared, connect).await?,
            };
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
                            crate::server::server_partition(&shared, &connect, layout, partition, &rows_read).await?
                        }
                        Strategy::Client => {
                            crate::client::client_partition(&shared, &connect, layout, partition, &rows_read).await?
                        }
                        Strategy::Hybrid => {
                            crate::hybrid::partition(&shared, &connect, layout, partition, &rows_read).await?
                        }
                        Strategy::Pushdown => {
                            crate::pushdown::partition(&shared, &connect, layout, partition, &rows_read).await?
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
/// guaranteed unique, over the whole (filtered) table (not for the pushdown:
/// it counts NULL keys with the rows, and its join finds duplicate keys).
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
        if !side.key_unique {
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
