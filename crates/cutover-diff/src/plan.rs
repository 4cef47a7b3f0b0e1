//! Resolving a diff before any row is read: what each side is, which columns
//! pair up, whether their types can be compared, and which strategy runs.

use cutover_db::spark_hash::HashForm;
use cutover_db::{
    Column, ConnectOptions, Database, DatabaseUrl, Engine, LogicalType, RowStream, TableName,
};
use cutover_files::FileSource;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::normalise::comparable;
use crate::{DiffOptions, StrategyChoice};

/// One side of a diff: where its rows come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A table (or view) in a database.
    Table {
        /// The database.
        url: DatabaseUrl,
        /// The table.
        table: TableName,
    },
    /// The rows of a SELECT run on a database.
    Query {
        /// The database.
        url: DatabaseUrl,
        /// The SELECT.
        sql: String,
    },
    /// A CSV or Parquet file.
    File(FileSource),
}

impl Source {
    /// What to call this side in messages and reports (credentials redacted).
    pub fn label(&self) -> String {
        match self {
            Source::Table { url, table } => format!("{}#{table}", url.redacted()),
            Source::Query { url, .. } => format!("{} (query)", url.redacted()),
            Source::File(file) => file.label().to_owned(),
        }
    }
}

/// Where a side's rows come from, resolved.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    /// A database, read with SQL.
    Database {
        url: Box<DatabaseUrl>,
        engine: Engine,
    },
    /// A file, read whole.
    File(FileSource),
}

/// An open side: a database connection or a file.
#[derive(Debug)]
pub(crate) enum Opened {
    Database(Database),
    File(FileSource),
}

/// ` WHERE a AND b`, or nothing without conditions.
pub(crate) fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

/// The strategy a diff runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Both sides are PostgreSQL: each server hashes its own rows and groups
    /// them into buckets; only bucket digests and the rows of mismatching
    /// buckets cross the wire.
    Server,
    /// cutover reads every row and hashes its canonical encoding with xxh3.
    Client,
    /// Both sides are in one Spark: the row-level comparison runs inside
    /// Spark (a null-safe full outer join on the key); only the rows of
    /// keys that differ leave it, to be compared exactly by cutover.
    Pushdown,
    /// A Spark side against another engine (or another Spark): Spark hashes
    /// its rows in Spark SQL, cutover hashes the other side's the same way
    /// ([`cutover_db::spark_hash`]); only the rows of mismatching buckets
    /// are read.
    Hybrid,
}

/// A side resolved: how to read it and what its columns are.
#[derive(Debug, Clone)]
pub(crate) struct SidePlan {
    pub role: &'static str,
    pub label: String,
    pub origin: Origin,
    /// The FROM item: a quoted table, or the query as a subquery (a file's path for files).
    pub from: String,
    pub filter: Option<String>,
    /// Fetched columns in row order: key, then compared, then group-only.
    pub columns: Vec<Column>,
    /// Whether a unique constraint guarantees the key has no duplicates.
    pub key_unique: bool,
    /// Whether some key column may hold NULL.
    pub key_nullable: bool,
    pub row_estimate: Option<u64>,
}

impl SidePlan {
    pub fn engine(&self) -> Option<Engine> {
        match &self.origin {
            Origin::Database { engine, .. } => Some(*engine),
            Origin::File(_) => None,
        }
    }

    pub fn is_file(&self) -> bool {
        matches!(self.origin, Origin::File(_))
    }

    /// Opens the side: connects to its database, or takes its file.
    pub async fn open(&self, options: &ConnectOptions) -> Result<Opened> {
        match &self.origin {
            Origin::Database { .. } => Ok(Opened::Database(self.connect(options).await?)),
            Origin::File(file) => Ok(Opened::File(file.clone())),
        }
    }

    /// Reads every row of the side (filtered, key first) once.
    pub async fn rows(&self, opened: &Opened, key_len: usize) -> Result<RowStream> {
        match opened {
            Opened::Database(database) => {
                let sql = format!(
                    "SELECT {} FROM {}{}",
                    self.fetch_list(&self.columns),
                    self.from,
                    where_clause(&self.base_conditions(key_len))
                );
                Ok(database
                    .query(&sql, self.columns.clone(), &self.context())
                    .await?)
            }
            Opened::File(file) => Ok(file.read(&self.columns).map_err(Error::File)?),
        }
    }

    /// Connects to the side's database (never called for files).
    pub async fn connect(&self, options: &ConnectOptions) -> Result<Database> {
        let Origin::Database { url, .. } = &self.origin else {
            return Err(Error::Internal(format!(
                "{} {} is a file, not a database",
                self.role, self.label
            )));
        };
        let mut options = options.clone();
        options.read_only = true;
        let database = Database::connect(url, &options).await?;
        if database.engine() == Engine::Postgres {
            // Fixed text forms, so that server-side hashes agree between servers.
            database
                .execute_batch(
                    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; \
                     SET extra_float_digits = 3; SET bytea_output = 'hex'; SET work_mem = '128MB'",
                )
                .await?;
        }
        Ok(database)
    }

    /// How the side is named in errors: `source sqlite:old.db#t`.
    pub fn context(&self) -> String {
        format!("{} {}", self.role, self.label)
    }

    /// `name` as an identifier in this side's SQL dialect.
    pub fn quote(&self, name: &str) -> String {
        self.engine().unwrap_or(Engine::Sqlite).quote(name)
    }

    /// The select list of `columns`.
    pub fn fetch_list(&self, columns: &[Column]) -> String {
        columns
            .iter()
            .map(|column| self.fetch_expression(column))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The select-list expression of a fetched column.
    pub fn fetch_expression(&self, column: &Column) -> String {
        self.engine()
            .unwrap_or(Engine::Sqlite)
            .select_expression(column)
    }

    /// The WHERE conditions every read of this side carries (the user's
    /// filter, and no NULL in the key), joined with AND; `None` if there are none.
    pub fn base_conditions(&self, key_len: usize) -> Vec<String> {
        let mut conditions = Vec::new();
        if let Some(filter) = &self.filter {
            conditions.push(format!("({filter})"));
        }
        if self.key_nullable {
            for column in &self.columns[..key_len] {
                conditions.push(format!("{} IS NOT NULL", self.quote(&column.name)));
            }
        }
        conditions
    }

    /// A condition true for rows with a NULL in the key.
    pub fn null_key_condition(&self, key_len: usize) -> String {
        self.columns[..key_len]
            .iter()
            .map(|column| format!("{} IS NULL", self.quote(&column.name)))
            .collect::<Vec<_>>()
            .join(" OR ")
    }
}

/// Everything decided before reading.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub source: SidePlan,
    pub target: SidePlan,
    /// Column names as reported (the source's names), in row order.
    pub names: Vec<String>,
    pub key_len: usize,
    /// Columns compared, after the key: indices `key_len..key_len + compared`.
    pub compared: usize,
    /// Group-by expressions: index of the fetched column and the truncation.
    pub groups: Vec<(usize, crate::GroupBy)>,
    pub only_in_source: Vec<String>,
    pub only_in_target: Vec<String>,
    pub strategy: Strategy,
}

struct Described {
    label: String,
    origin: Origin,
    from: String,
    columns: Vec<Column>,
    unique_keys: Vec<Vec<String>>,
    primary_key: Option<Vec<String>>,
    row_estimate: Option<u64>,
}

/// What a side has; a file side's files are pruned by `filter` (on its
/// partition columns only).
async fn describe(
    source: &Source,
    options: &ConnectOptions,
    filter: Option<&str>,
) -> Result<Described> {
    let (url, what) = match source {
        Source::File(file) => {
            let file = match filter {
                Some(condition) => &file.prune(condition).map_err(Error::File)?,
                None => file,
            };
            let columns = file.columns().map_err(Error::File)?;
            return Ok(Described {
                label: source.label(),
                origin: Origin::File(file.clone()),
                from: file.label().to_owned(),
                columns,
                unique_keys: Vec::new(),
                primary_key: None,
                row_estimate: file.row_count(),
            });
        }
        Source::Table { url, table } => (url, Ok(table)),
        Source::Query { url, sql } => (url, Err(sql)),
    };
    let mut options = options.clone();
    options.read_only = true;
    let database = Database::connect(url, &options).await?;
    let origin = Origin::Database {
        url: Box::new(url.clone()),
        engine: database.engine(),
    };
    match what {
        Ok(table) => {
            let table = database.table(table).await?;
            let mut unique_keys: Vec<Vec<String>> = table
                .unique_constraints
                .iter()
                .map(|key| key.columns.clone())
                .collect();
            unique_keys.extend(
                table
                    .indexes
                    .iter()
                    .filter(|index| index.unique)
                    .map(|index| index.columns.clone()),
            );
            if let Some(primary) = &table.primary_key {
                unique_keys.push(primary.columns.clone());
            }
            Ok(Described {
                label: source.label(),
                origin,
                from: database.engine().quote_table(&table.name),
                primary_key: table.primary_key.as_ref().map(|key| key.columns.clone()),
                columns: table.columns,
                unique_keys,
                row_estimate: table.row_count.or(table.row_estimate),
            })
        }
        Err(sql) => {
            let sql = sql.trim().trim_end_matches(';');
            let columns = database.describe(sql).await?;
            Ok(Described {
                label: source.label(),
                origin,
                from: format!("({sql}) AS cutover_query"),
                columns,
                unique_keys: Vec::new(),
                primary_key: None,
                row_estimate: None,
            })
        }
    }
}

fn find<'a>(described: &'a Described, role: &str, name: &str) -> Result<&'a Column> {
    described
        .columns
        .iter()
        .find(|column| column.name == name)
        .or_else(|| {
            let mut folded = described
                .columns
                .iter()
                .filter(|column| column.name.eq_ignore_ascii_case(name));
            match (folded.next(), folded.next()) {
                (Some(column), None) => Some(column),
                _ => None,
            }
        })
        .ok_or_else(|| Error::UnknownColumn {
            side: format!("{role} {}", described.label),
            column: name.to_owned(),
            hint: Some(format!(
                "it has: {}",
                described
                    .columns
                    .iter()
                    .map(|column| column.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        })
}

pub(crate) async fn plan(
    source: &Source,
    target: &Source,
    connect: &ConnectOptions,
    options: &DiffOptions,
) -> Result<Plan> {
    let (source_described, target_described) = tokio::try_join!(
        describe(source, connect, options.source_where.as_deref()),
        describe(target, connect, options.target_where.as_deref())
    )?;
    let renamed = |name: &str| -> String {
        options
            .map
            .iter()
            .find(|(from, _)| from == name)
            .map(|(_, to)| to.clone())
            .unwrap_or_else(|| name.to_owned())
    };

    let key: Vec<String> = if options.key.is_empty() {
        source_described
            .primary_key
            .clone()
            .ok_or_else(|| Error::NoKey {
                side: format!("source {}", source_described.label),
            })?
    } else {
        options.key.clone()
    };

    // Pairs of (source column, target column), key first.
    let mut pairs: Vec<(Column, Column)> = Vec::new();
    for name in &key {
        let source_column = find(&source_described, "source", name)?.clone();
        let target_column = find(&target_described, "target", &renamed(name))?.clone();
        pairs.push((source_column, target_column));
    }
    let is_key = |name: &str| key.iter().any(|key| key.eq_ignore_ascii_case(name));
    for name in &options.exclude {
        find(&source_described, "source", name)?;
    }
    let excluded = |name: &str| {
        options
            .exclude
            .iter()
            .any(|excluded| excluded.eq_ignore_ascii_case(name))
    };

    let mut only_in_source = Vec::new();
    let mut only_in_target = Vec::new();
    match &options.columns {
        Some(columns) => {
            for name in columns {
                if is_key(name) {
                    continue;
                }
                let source_column = find(&source_described, "source", name)?.clone();
                let target_column = find(&target_described, "target", &renamed(name))?.clone();
                pairs.push((source_column, target_column));
            }
        }
        None => {
            let mut matched_target = Vec::new();
            for column in &source_described.columns {
                if is_key(&column.name) || excluded(&column.name) {
                    continue;
                }
                match find(&target_described, "target", &renamed(&column.name)) {
                    Ok(target_column) => {
                        matched_target.push(target_column.name.clone());
                        pairs.push((column.clone(), target_column.clone()));
                    }
                    Err(_) => only_in_source.push(column.name.clone()),
                }
            }
            for column in &target_described.columns {
                let is_paired = pairs.iter().any(|(_, target)| target.name == column.name);
                let excluded_by_source_name = options
                    .map
                    .iter()
                    .any(|(from, to)| to == &column.name && excluded(from))
                    || excluded(&column.name);
                if !is_paired && !excluded_by_source_name {
                    only_in_target.push(column.name.clone());
                }
            }
        }
    }
    let compared = pairs.len() - key.len();

    // A file's text column takes the other side's type: its fields are parsed into it.
    for (source_column, target_column) in &mut pairs {
        adopt_type(&source_described, source_column, target_column);
        adopt_type(&target_described, target_column, source_column);
    }
    for (source_column, target_column) in &pairs {
        for (role, described, column) in [
            ("source", &source_described, source_column),
            ("target", &target_described, target_column),
        ] {
            if column.logical_type.is_none() {
                return Err(Error::Database(cutover_db::Error::UnsupportedType {
                    table: format!("{role} {}", described.label),
                    column: column.name.clone(),
                    type_name: column.type_name.clone(),
                }));
            }
        }
        let (Some(left), Some(right)) = (source_column.logical_type, target_column.logical_type)
        else {
            continue;
        };
        if !comparable(left, right) {
            return Err(Error::IncompatibleTypes {
                column: source_column.name.clone(),
                source_type: source_column.type_name.clone(),
                target_type: target_column.type_name.clone(),
            });
        }
    }

    // Group-by columns: compared or key columns are reused, others fetched in addition.
    let mut groups = Vec::new();
    for group in &options.group_by {
        let index = match pairs
            .iter()
            .position(|(source, _)| source.name.eq_ignore_ascii_case(&group.column))
        {
            Some(index) => index,
            None => {
                let source_column = find(&source_described, "source", &group.column)?.clone();
                let target_column =
                    find(&target_described, "target", &renamed(&group.column))?.clone();
                pairs.push((source_column, target_column));
                pairs.len() - 1
            }
        };
        groups.push((index, group.clone()));
    }

    let key_unique = |described: &Described, columns: &[&Column]| {
        described.unique_keys.iter().any(|unique| {
            unique
                .iter()
                .all(|name| columns.iter().any(|column| &column.name == name))
                && columns.iter().all(|column| !column.nullable)
        })
    };
    let source_key: Vec<&Column> = pairs[..key.len()]
        .iter()
        .map(|(source, _)| source)
        .collect();
    let target_key: Vec<&Column> = pairs[..key.len()]
        .iter()
        .map(|(_, target)| target)
        .collect();
    let source_plan = SidePlan {
        role: "source",
        label: source_described.label.clone(),
        origin: source_described.origin.clone(),
        from: source_described.from.clone(),
        filter: options.source_where.clone(),
        key_unique: key_unique(&source_described, &source_key),
        key_nullable: source_key.iter().any(|column| column.nullable),
        columns: pairs.iter().map(|(source, _)| source.clone()).collect(),
        row_estimate: source_described.row_estimate,
    };
    let target_plan = SidePlan {
        role: "target",
        label: target_described.label.clone(),
        origin: target_described.origin.clone(),
        from: target_described.from.clone(),
        filter: options.target_where.clone(),
        key_unique: key_unique(&target_described, &target_key),
        key_nullable: target_key.iter().any(|column| column.nullable),
        columns: pairs.iter().map(|(_, target)| target.clone()).collect(),
        row_estimate: target_described.row_estimate,
    };

    let strategy = choose_strategy(
        &source_plan,
        &target_plan,
        key.len() + compared,
        connect,
        options,
    )
    .await?;
    Ok(Plan {
        names: pairs
            .iter()
            .map(|(source, _)| source.name.clone())
            .collect(),
        key_len: key.len(),
        compared,
        groups,
        only_in_source,
        only_in_target,
        source: source_plan,
        target: target_plan,
        strategy,
    })
}

/// A file column read as text takes `other`'s type (its fields are parsed into it).
fn adopt_type(described: &Described, column: &mut Column, other: &Column) {
    let is_file = matches!(described.origin, Origin::File(_));
    if is_file && column.logical_type == Some(LogicalType::Text) && other.logical_type.is_some() {
        column.logical_type = other.logical_type;
    }
}

/// Whether both sides are read from one Spark Connect server, so that one
/// session can join them.
fn one_spark(source: &SidePlan, target: &SidePlan) -> bool {
    match (&source.origin, &target.origin) {
        (
            Origin::Database {
                url: source_url,
                engine: Engine::Spark,
            },
            Origin::Database {
                url: target_url,
                engine: Engine::Spark,
            },
        ) => source_url.redacted() == target_url.redacted(),
        _ => false,
    }
}

/// How each of the first `hashed` column pairs (key, then compared) is
/// hashed when Spark hashes a side; `None` if some pair has no common form.
pub(crate) fn hash_forms(
    source: &SidePlan,
    target: &SidePlan,
    hashed: usize,
) -> Option<Vec<HashForm>> {
    source.columns[..hashed]
        .iter()
        .zip(&target.columns[..hashed])
        .map(|(source, target)| HashForm::for_pair(source.logical_type, target.logical_type))
        .collect()
}

async fn choose_strategy(
    source: &SidePlan,
    target: &SidePlan,
    hashed: usize,
    connect: &ConnectOptions,
    options: &DiffOptions,
) -> Result<Strategy> {
    let server_possible = async {
        for side in [source, target] {
            if side.engine() != Some(Engine::Postgres) {
                return Err(format!("the {} is not PostgreSQL", side.role));
            }
            let database = side
                .connect(connect)
                .await
                .map_err(|error| error.to_string())?;
            let version = database
                .server_version()
                .await
                .map_err(|error| error.to_string())?
                .unwrap_or_default();
            if version < 140_000 {
                return Err(format!(
                    "the {} runs PostgreSQL {} and the server strategy needs 14 or later (bit_xor)",
                    side.role,
                    version / 10_000
                ));
            }
        }
        Ok(())
    };
    if options.strategy != StrategyChoice::Client {
        if one_spark(source, target) {
            return Ok(Strategy::Pushdown);
        }
        let spark = |side: &SidePlan| side.engine() == Some(Engine::Spark);
        if (spark(source) || spark(target)) && hash_forms(source, target, hashed).is_some() {
            return Ok(Strategy::Hybrid);
        }
    }
    match options.strategy {
        StrategyChoice::Client => Ok(Strategy::Client),
        StrategyChoice::Server => match server_possible.await {
            Ok(()) => Ok(Strategy::Server),
            Err(reason) => Err(Error::ServerStrategyUnavailable { reason }),
        },
        StrategyChoice::Auto => Ok(match server_possible.await {
            Ok(()) => Strategy::Server,
            Err(_) => Strategy::Client,
        }),
    }
}
