//! The copy of a PostgreSQL refresh cut into pieces that load in parallel:
//! a partitioned table partition by partition, a large table with an integer
//! key by key range, everything else whole. Each piece commits with its
//! journal row, so a killed run resumes piece by piece.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use cutover_db::schema::quote_identifier as quote;
use cutover_db::{ConnectOptions, Database, LogicalType, Progress, TableName};

use crate::error::{Error, Result};
use crate::mask::Masker;
use crate::pg_refresh::PostgresRefresh;
use crate::sql::{first_column, literal, texts};
use crate::transform::TableCopy;

/// One piece of the copy.
#[derive(Debug, Clone)]
pub(crate) struct Piece {
    /// The table's place in the outcome.
    pub(crate) index: usize,
    /// What is read and how it is masked.
    pub(crate) copy: Box<TableCopy>,
    /// The columns written (generated columns are computed by the target).
    pub(crate) columns: Vec<String>,
}

impl Piece {
    /// The staged relation the piece's rows are written to: its table. A
    /// partition's rows go through the staged parent, which routes them by
    /// their masked partition key, perhaps to another partition.
    pub(crate) fn relation(&self) -> &str {
        &self.copy.table.name.name
    }

    /// The piece's identity in the journal: what it reads (its partition, or
    /// its table) and how.
    pub(crate) fn id(&self, source: &Database) -> String {
        let select = self.copy.select(source);
        let read = self
            .copy
            .read_from
            .as_ref()
            .map_or(self.relation(), |partition| &partition.name);
        format!(
            "copy {read} {}",
            crate::pg_resume::plan_identity(&[&select, &self.columns.join(",")])
        )
    }
}

/// Each copy of a partitioned table becomes one copy per leaf partition
/// (read from that partition, written through the staged parent, so
/// partitions load in parallel); a table other tables inherit from is read
/// `ONLY`.
pub(crate) async fn expand_partitions(
    source: &Database,
    schema: &str,
    copies: VecDeque<Piece>,
) -> Result<VecDeque<Piece>> {
    let namespace = format!(
        "(SELECT oid FROM pg_namespace WHERE nspname = {})",
        literal(schema)
    );
    let leaves = texts(
        source,
        &format!(
            "SELECT p.relname, c.relname, n.nspname FROM pg_class p, LATERAL pg_partition_tree(p.oid) t \
             JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE p.relnamespace = {namespace} AND p.relkind = 'p' AND NOT p.relispartition AND t.isleaf \
             ORDER BY p.relname, c.oid"
        ),
        3,
        "the source's partitions",
    )
    .await?;
    if let Some(elsewhere) = leaves.iter().find(|leaf| leaf[2] != schema) {
        return Err(Error::Unsupported(format!(
            "partition {}.{} of table {schema}.{} is in another schema: a PostgreSQL target is refreshed one schema at a time",
            elsewhere[2], elsewhere[1], elsewhere[0]
        )));
    }
    let inherited = first_column(
        source,
        &format!(
            "SELECT DISTINCT p.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             JOIN pg_class p ON p.oid = i.inhparent WHERE p.relnamespace = {namespace} AND NOT c.relispartition"
        ),
        "the source's inherited tables",
    )
    .await?;
    let mut expanded = VecDeque::new();
    for mut piece in copies {
        let name = piece.copy.table.name.name.clone();
        let partitions: Vec<&Vec<String>> = leaves.iter().filter(|leaf| leaf[0] == name).collect();
        if partitions.is_empty() {
            piece.copy.only = inherited.contains(&name);
            expanded.push_back(piece);
            continue;
        }
        for leaf in partitions {
            let mut part = piece.clone();
            part.copy.read_from = Some(TableName::qualified(&leaf[2], &leaf[1]));
            expanded.push_back(part);
        }
    }
    Ok(expanded)
}

/// Tables with at least this many rows (by the source's estimate) are split
/// into one key range per job.
const SPLIT_ABOVE_ROWS: u64 = 100_000;

/// A key range holds about this many rows at most, so a killed run loses
/// little and a resumed one redoes little.
const PIECE_ROWS: u64 = 250_000;

/// How many key ranges a table of `estimate` rows is read in by `jobs` jobs.
fn ranges(estimate: u64, jobs: usize) -> u64 {
    let per_job = if estimate >= SPLIT_ABOVE_ROWS {
        jobs as u64
    } else {
        1
    };
    per_job.max(estimate.div_ceil(PIECE_ROWS))
}

/// Splits each large copied table with a single integer key into key ranges
/// (read from the source's snapshot), each its own piece of work: one per
/// job at least, and at most about [`PIECE_ROWS`] rows each. Partitions are
/// pieces already and are not split.
pub(crate) async fn split_large_tables(
    source: &Database,
    schema: &cutover_db::Schema,
    copies: VecDeque<Piece>,
    jobs: usize,
) -> Result<VecDeque<Piece>> {
    let mut split = VecDeque::new();
    for piece in copies {
        let copy = &piece.copy;
        let table = schema
            .tables
            .iter()
            .find(|table| table.name == copy.table.name);
        let estimate = table
            .and_then(|table| table.row_count.or(table.row_estimate))
            .unwrap_or(0);
        let key = table
            .and_then(|table| table.primary_key.as_ref())
            .filter(|key| key.columns.len() == 1)
            .and_then(|key| table.and_then(|table| table.column(&key.columns[0])))
            .filter(|column| column.logical_type == Some(LogicalType::Integer));
        let parts = ranges(estimate, jobs);
        let (Some(key), true, None) = (key, parts > 1, &copy.read_from) else {
            split.push_back(piece);
            continue;
        };
        let name = quote(&key.name);
        let bounds = texts(
            source,
            &format!(
                "SELECT min({name})::text, max({name})::text FROM {}",
                copy.table.name.quoted()
            ),
            2,
            &format!("table {}", copy.table.name),
        )
        .await?;
        let parsed = bounds
            .first()
            .and_then(|row| Some((row[0].parse::<i128>().ok()?, row[1].parse::<i128>().ok()?)));
        let Some((low, high)) = parsed.filter(|(low, high)| high > low) else {
            split.push_back(piece);
            continue;
        };
        let parts = i128::from(parts);
        let step = (high - low) / parts + 1;
        for part in 0..parts {
            let from = low + part * step;
            let range = if part + 1 == parts {
                format!("{name} >= {from}")
            } else {
                format!("{name} >= {from} AND {name} < {}", from + step)
            };
            let mut part = piece.clone();
            part.copy.filter = Some(match &copy.filter {
                Some(filter) => format!("({filter}) AND {range}"),
                None => range,
            });
            split.push_back(part);
        }
    }
    Ok(split)
}

/// Pieces waiting for a job, each with the statement that journals it and commits.
pub(crate) type CopyQueue = Arc<Mutex<CopyQueueItems>>;

/// One journaled step: its id, its SQL, and its SQL with its journal row.
pub(crate) type KeyStep = (String, String, String);

/// The statistics, keys and indexes of each table being copied, built by
/// the job that loads the table's last piece while other pieces still load
/// (so a killed run keeps them too).
#[derive(Debug, Default)]
pub(crate) struct EarlyKeys {
    /// What each job's target session sets first (the staging search path).
    pub(crate) session: String,
    /// Per staged table: its pieces still to load, and its steps.
    pub(crate) tables: Mutex<std::collections::HashMap<String, (usize, Vec<KeyStep>)>>,
}

impl EarlyKeys {
    /// The steps to run now that a piece of `relation` is loaded: all of
    /// its table's once its last piece is.
    fn loaded(&self, relation: &str) -> Vec<KeyStep> {
        let Ok(mut tables) = self.tables.lock() else {
            return Vec::new();
        };
        match tables.get_mut(relation) {
            Some((pending, steps)) => {
                *pending = pending.saturating_sub(1);
                match pending {
                    0 => std::mem::take(steps),
                    _ => Vec::new(),
                }
            }
            None => Vec::new(),
        }
    }
}

/// Loads pieces from `queue` until it is empty, each in its own transaction
/// ended by its journal row, and builds the keys of each table whose last
/// piece it loads (`keys`). Returns the rows per table and the steps run.
pub(crate) async fn copy_worker(
    settings: &PostgresRefresh,
    snapshot: Option<String>,
    stage: &str,
    (masker, progress): (Arc<Masker>, Arc<dyn Progress>),
    queue: CopyQueue,
    keys: Arc<EarlyKeys>,
) -> Result<(Vec<(usize, u64)>, Vec<String>)> {
    let read_only = ConnectOptions {
        read_only: true,
        ..settings.connect.clone()
    };
    let source = Database::connect(&settings.source, &read_only).await?;
    if let Some(snapshot) = &snapshot {
        source
            .execute_batch(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                literal(snapshot)
            ))
            .await?;
    }
    let target = Database::connect(&settings.target, &settings.connect).await?;
    target.execute_batch(&keys.session).await?;
    let (mut counts, mut ran) = (Vec::new(), Vec::new());
    loop {
        let next = queue
            .lock()
            .map_err(|_| Error::Unsupported("a copy job failed".into()))?
            .pop_front();
        let Some((piece, done)) = next else {
            break;
        };
        let (index, columns, mut copy) = (piece.index, piece.columns, *piece.copy);
        if columns.len() != copy.table.columns.len() {
            // Generated columns are computed by the target, never written.
            let keep: Vec<bool> = copy
                .table
                .columns
                .iter()
                .map(|column| columns.contains(&column.name))
                .collect();
            copy.retain_columns(&keep);
        }
        // A partition's rows go through its staged parent, which routes them.
        let name = TableName::qualified(stage, &copy.table.name.name);
        target.execute_batch("BEGIN").await?;
        let rows = copy
            .copy_with_progress(&source, &target, &name, masker.clone(), progress.clone())
            .await?;
        target.execute_batch(&done.commit_sql(rows)).await?;
        counts.push((index, rows));
        for (id, sql, journaled) in keys.loaded(&copy.table.name.name) {
            target
                .execute_batch(&journaled)
                .await
                .map_err(|error| crate::pg_definitions::unsatisfied(&sql, error.into()))?;
            ran.push(id);
        }
    }
    if snapshot.is_some() {
        source.execute_batch("COMMIT").await?;
    }
    Ok((counts, ran))
}

/// The pieces still to load, each with its journal row. On resume, the
/// pieces a killed run finished are kept, their rows counted into `outcome`
/// and `progress`, when every piece the journal lists for their table is
/// still planned and the staged table (with its partitions) holds the rows
/// the journal says (an unfinished piece's rows were never committed); a
/// table that fails either test is emptied and redone.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn keep_finished(
    target: &Database,
    source: &Database,
    stage: &str,
    copies: VecDeque<Piece>,
    journal: &mut crate::pg_resume::Journal,
    outcome: &mut crate::sqlite_refresh::RefreshOutcome,
    resumed: Option<&mut crate::pg_resume::Resumed>,
    progress: &dyn Progress,
) -> Result<CopyQueueItems> {
    let all_copied = journal.done("copies");
    let mut relations: Vec<(String, Vec<(Piece, String)>)> = Vec::new();
    for piece in copies {
        let id = piece.id(source);
        let relation = piece.relation().to_owned();
        match relations.iter_mut().find(|(name, _)| *name == relation) {
            Some((_, pieces)) => pieces.push((piece, id)),
            None => relations.push((relation, vec![(piece, id)])),
        }
    }
    let mut queue = VecDeque::new();
    let (mut kept_pieces, mut kept_rows, mut redone_pieces) = (0, 0, 0);
    for (relation, pieces) in relations {
        let done = journal.pieces(&relation).to_vec();
        let finished = |id: &str| done.iter().find(|piece| piece.id == id);
        if !done.is_empty() {
            let rows: u64 = done.iter().map(|piece| piece.rows).sum();
            let still_planned = done
                .iter()
                .all(|piece| pieces.iter().any(|(_, id)| *id == piece.id));
            // A partitioned table's rows are in its partitions; an inheritance
            // parent's own rows, in it alone.
            let only = match pieces[0].0.copy.read_from {
                Some(_) => "",
                None => "ONLY ",
            };
            let staged = format!("{}.{}", quote(stage), quote(&relation));
            if (all_copied || still_planned)
                && first_column(
                    target,
                    &format!("SELECT count(*)::text FROM {only}{staged}"),
                    "a staged table's rows",
                )
                .await?
                .first()
                .and_then(|count| count.parse::<u64>().ok())
                    == Some(rows)
            {
                kept_pieces += done.len();
                kept_rows += rows;
                progress.advance(rows);
                if all_copied {
                    outcome.tables[pieces[0].0.index].rows += rows;
                    continue;
                }
                for (piece, id) in pieces {
                    match finished(&id) {
                        Some(piece_done) => outcome.tables[piece.index].rows += piece_done.rows,
                        None => queue.push_back((piece, journal.piece(id, &relation))),
                    }
                }
                continue;
            }
            redone_pieces += done.len();
            target
                .execute_batch(&format!("TRUNCATE {only}{staged}"))
                .await?;
            journal.forget(target, &relation).await?;
        }
        for (piece, id) in pieces {
            let record = journal.piece(id, &relation);
            queue.push_back((piece, record));
        }
    }
    if let Some(resumed) = resumed {
        resumed.kept_pieces = kept_pieces;
        resumed.kept_rows = kept_rows;
        resumed.redone_pieces = redone_pieces;
    }
    Ok(queue)
}

/// Pieces with their journal rows.
pub(crate) type CopyQueueItems = VecDeque<(Piece, crate::pg_resume::PieceRecord)>;

/// The statistics, keys and indexes of the staged tables, as (table, journal
/// id, SQL): each table's statistics first (foreign keys are validated with
/// plans made from them), then its keys and indexes.
pub(crate) fn key_steps(
    outcome: &crate::sqlite_refresh::RefreshOutcome,
    schema: &cutover_db::Schema,
    definitions: &crate::pg_definitions::Definitions,
    stage: &str,
) -> Vec<(String, String, String)> {
    let analyzed = outcome.tables.iter().filter_map(|table| {
        let table = schema
            .tables
            .iter()
            .find(|t| t.name.to_string() == table.table)?;
        let staged = format!("{}.{}", quote(stage), quote(&table.name.name));
        Some((
            table.name.name.clone(),
            format!("analyze {staged}"),
            format!("ANALYZE {staged}"),
        ))
    });
    let keys = definitions
        .keys
        .iter()
        .enumerate()
        .map(|(number, (table, sql))| (table.clone(), format!("key {number}"), sql.clone()));
    analyzed.chain(keys).collect()
}

/// The steps of `steps` the copy jobs build as each table's last piece
/// loads: those of tables in `copies` that are not `retyped` after the copy
/// (a large object or a column held as text), and not finished already.
pub(crate) fn early_keys(
    copies: &CopyQueueItems,
    steps: Vec<(String, String, String)>,
    retyped: &[String],
    journal: &crate::pg_resume::Journal,
    session: String,
) -> EarlyKeys {
    let mut tables: std::collections::HashMap<String, (usize, Vec<KeyStep>)> =
        std::collections::HashMap::new();
    for (piece, _) in copies {
        tables.entry(piece.relation().to_owned()).or_default().0 += 1;
    }
    for (table, id, sql) in steps {
        if retyped.contains(&table) || journal.done(&id) {
            continue;
        }
        if let Some((_, early)) = tables.get_mut(&table) {
            let journaled = journal.step_sql(&id, &sql);
            early.push((id, sql, journaled));
        }
    }
    EarlyKeys {
        session,
        tables: tables.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::ranges;

    #[test]
    fn a_large_table_is_read_in_ranges_of_at_most_a_quarter_million_rows() {
        assert_eq!(ranges(50_000, 2), 1);
        assert_eq!(ranges(100_000, 2), 2);
        assert_eq!(ranges(100_000, 1), 1);
        assert_eq!(ranges(600_000, 1), 3);
        assert_eq!(ranges(2_000_000, 2), 8);
        assert_eq!(ranges(2_000_000, 16), 16);
    }
}
