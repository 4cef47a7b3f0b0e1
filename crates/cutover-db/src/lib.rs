//! The database layer of cutover: connect by URL to PostgreSQL or SQLite,
//! introspect the schema, and stream rows in and out in bounded memory, with
//! every value decoded into one engine-independent model ([`Value`]) whose
//! canonical encoding ([`canonical`]) defines equality across engines.
//!
//! ```no_run
//! # async fn example() -> cutover_db::Result<()> {
//! use cutover_db::{ConnectOptions, Database, DatabaseUrl, ReadRequest};
//! let url = DatabaseUrl::parse("sqlite:examples/lab-results.db#lab_results")?;
//! let database = Database::connect(&url, &ConnectOptions::default()).await?;
//! let mut rows = database.read(&ReadRequest::table(url.require_table()?.clone())).await?;
//! let mut count = 0u64;
//! while let Some(row) = rows.next().await {
//!     let _values = row?;
//!     count += 1;
//! }
//! # Ok(()) }
//! ```

pub mod arrow;
pub mod canonical;
pub mod columnar;
mod error;
pub mod locator;
pub mod pgpass;
mod postgres;
mod progress;
pub mod schema;
mod spark;
mod sqlite;
mod stream;
pub mod value;

use std::ops::Bound;
use std::path::PathBuf;

pub use error::{Error, Result};
pub use locator::{DatabaseUrl, Locator, redact};
pub use progress::{NoProgress, Progress};
pub use schema::{Column, Engine, Schema, Table, TableName};
pub use spark::hash as spark_hash;
pub use stream::{Row, RowStream, from_batches};
pub use value::{Interval, LogicalType, Numeric, Value};

/// What the caller knows from its environment; the library reads no
/// environment variables itself.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// A password to use when the URL has none (the CLI passes `PGPASSWORD`).
    pub password: Option<String>,
    /// The password file to consult when neither the URL nor `password` gives one
    /// (the CLI passes `PGPASSFILE` or `~/.pgpass`).
    pub passfile: Option<PathBuf>,
    /// The user name to use when the URL has none (the CLI passes `PGUSER` or the login name).
    pub default_user: Option<String>,
    /// Open the database read-only: PostgreSQL sessions get
    /// `default_transaction_read_only`, SQLite files are opened read-only.
    pub read_only: bool,
    /// Create a SQLite file that does not exist yet (never done on read).
    pub create_sqlite: bool,
    /// SQLite: connections do not enforce foreign keys (a refresh's staging
    /// file, whose references are checked once everything is loaded).
    pub sqlite_unchecked_references: bool,
    /// A Spark Connect bearer token (the CLI passes `CUTOVER_SPARK_TOKEN`).
    pub spark_token: Option<String>,
    /// The Spark Connect session (a UUID) every Spark connection joins, so
    /// that [`Database::interrupt`] can cancel what the others started; a new
    /// session per connection when `None`.
    pub spark_session: Option<String>,
}

/// What to introspect.
#[derive(Debug, Clone, Default)]
pub struct IntrospectOptions {
    /// Count every table's rows exactly (a full scan each).
    pub exact_counts: bool,
}

/// Which rows to read, in what order, restricted to which columns.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    /// The table.
    pub table: TableName,
    /// The columns to read, in this order; `None` for all, in table order.
    pub columns: Option<Vec<String>>,
    /// The key that orders rows and that `lower`/`upper` refer to; `None` for the primary key.
    pub key: Option<Vec<String>>,
    /// Return rows in key order.
    pub ordered: bool,
    /// Only rows whose key is above this bound.
    pub lower: Bound<Vec<Value>>,
    /// Only rows whose key is below this bound.
    pub upper: Bound<Vec<Value>>,
}

impl ReadRequest {
    /// Every row of `table`, all columns, in primary-key order.
    pub fn table(table: TableName) -> Self {
        ReadRequest {
            table,
            columns: None,
            key: None,
            ordered: true,
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
        }
    }

    /// Restricts the read to these columns.
    pub fn columns(mut self, columns: Vec<String>) -> Self {
        self.columns = Some(columns);
        self
    }

    /// Orders by (and bounds on) these columns instead of the primary key.
    pub fn key(mut self, key: Vec<String>) -> Self {
        self.key = Some(key);
        self
    }

    /// Returns rows in whatever order is cheapest.
    pub fn unordered(mut self) -> Self {
        self.ordered = false;
        self
    }

    /// Only rows with `lower < key` (or `<=`) and `key < upper` (or `<=`).
    pub fn range(mut self, lower: Bound<Vec<Value>>, upper: Bound<Vec<Value>>) -> Self {
        self.lower = lower;
        self.upper = upper;
        self
    }
}

/// A read resolved against the table's schema: the columns to fetch, the key, and where the key sits.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedRead {
    pub table: Table,
    pub columns: Vec<Column>,
    pub key: Vec<String>,
    pub ordered: bool,
    pub lower: Bound<Vec<Value>>,
    pub upper: Bound<Vec<Value>>,
}

impl ResolvedRead {
    fn new(table: Table, request: &ReadRequest) -> Result<Self> {
        let columns = match &request.columns {
            Some(names) => names
                .iter()
                .map(|name| column_of(&table, name).cloned())
                .collect::<Result<Vec<_>>>()?,
            None => table.columns.clone(),
        };
        for column in &columns {
            if column.logical_type.is_none() {
                return Err(Error::UnsupportedType {
                    table: table.name.to_string(),
                    column: column.name.clone(),
                    type_name: column.type_name.clone(),
                });
            }
        }
        let needs_key = request.ordered
            || !matches!(request.lower, Bound::Unbounded)
            || !matches!(request.upper, Bound::Unbounded);
        let key = match &request.key {
            Some(key) => {
                for name in key {
                    column_of(&table, name)?;
                }
                key.clone()
            }
            None if needs_key => match &table.primary_key {
                Some(primary_key) => primary_key.columns.clone(),
                None => {
                    return Err(Error::NoPrimaryKey {
                        table: table.name.to_string(),
                    });
                }
            },
            None => Vec::new(),
        };
        for bound in [&request.lower, &request.upper] {
            if let Bound::Included(values) | Bound::Excluded(values) = bound {
                if values.len() != key.len() {
                    return Err(Error::RowWidth {
                        table: table.name.to_string(),
                        got: values.len(),
                        expected: key.len(),
                    });
                }
            }
        }
        Ok(ResolvedRead {
            table,
            columns,
            key,
            ordered: request.ordered,
            lower: request.lower.clone(),
            upper: request.upper.clone(),
        })
    }

    /// The SELECT for this read and its parameters, in the dialect both engines share:
    /// `table` is the quoted table, `expression` gives each column's select expression,
    /// `placeholder` the n-th parameter's placeholder (`$1` or `?1`).
    fn select_sql(
        &self,
        table: &str,
        expression: impl Fn(&Column) -> String,
        placeholder: impl Fn(usize) -> String,
    ) -> (String, Vec<Value>) {
        let list = self
            .columns
            .iter()
            .map(expression)
            .collect::<Vec<_>>()
            .join(", ");
        let mut sql = format!("SELECT {list} FROM {table}");
        let (condition, parameters) = self.range_condition(placeholder);
        if let Some(condition) = condition {
            sql.push_str(" WHERE ");
            sql.push_str(&condition);
        }
        if self.ordered && !self.key.is_empty() {
            let key = self
                .key
                .iter()
                .map(|name| schema::quote_identifier(name))
                .collect::<Vec<_>>();
            sql.push_str(" ORDER BY ");
            sql.push_str(&key.join(", "));
        }
        (sql, parameters)
    }

    /// The key range as a SQL condition with numbered placeholders, and the parameters in order.
    /// Row-value comparison works in PostgreSQL and in SQLite (3.15+).
    fn range_condition(
        &self,
        placeholder: impl Fn(usize) -> String,
    ) -> (Option<String>, Vec<Value>) {
        let key_list = self
            .key
            .iter()
            .map(|name| schema::quote_identifier(name))
            .collect::<Vec<_>>()
            .join(", ");
        let mut conditions = Vec::new();
        let mut parameters = Vec::new();
        for (bound, strict, inclusive) in [(&self.lower, ">", ">="), (&self.upper, "<", "<=")] {
            let (values, operator) = match bound {
                Bound::Included(values) => (values, inclusive),
                Bound::Excluded(values) => (values, strict),
                Bound::Unbounded => continue,
            };
            let placeholders = values
                .iter()
                .map(|value| {
                    parameters.push(value.clone());
                    placeholder(parameters.len())
                })
                .collect::<Vec<_>>()
                .join(", ");
            conditions.push(format!("({key_list}) {operator} ({placeholders})"));
        }
        let condition = (!conditions.is_empty()).then(|| conditions.join(" AND "));
        (condition, parameters)
    }
}

fn column_of<'a>(table: &'a Table, name: &str) -> Result<&'a Column> {
    table.column(name).ok_or_else(|| Error::UnknownColumn {
        table: table.name.to_string(),
        column: name.to_owned(),
        hint: Some(format!(
            "the table has: {}",
            table.column_names().join(", ")
        )),
    })
}

/// An open connection to one database.
#[derive(Debug)]
pub enum Database {
    /// A PostgreSQL server.
    Postgres(postgres::PostgresDatabase),
    /// A SQLite file.
    Sqlite(sqlite::SqliteDatabase),
    /// A Spark Connect session.
    Spark(Box<spark::SparkDatabase>),
}

impl Database {
    /// Connects to the database a URL names.
    pub async fn connect(url: &DatabaseUrl, options: &ConnectOptions) -> Result<Database> {
        match &url.locator {
            Locator::Postgres(target) => Ok(Database::Postgres(
                postgres::PostgresDatabase::connect(target, url.redacted(), options).await?,
            )),
            Locator::Sqlite(path) => Ok(Database::Sqlite(
                sqlite::SqliteDatabase::open(path, url.redacted(), options).await?,
            )),
            Locator::Spark(target) => Ok(Database::Spark(Box::new(
                spark::SparkDatabase::connect(target, url.redacted(), options).await?,
            ))),
        }
    }

    /// Cancels every operation cutover started in the Spark session of
    /// `options` on the server `url` names (operations carry the tag
    /// `cutover`); nothing to do for other engines, whose work ends with
    /// their connections. Returns how many operations were interrupted.
    pub async fn interrupt(url: &DatabaseUrl, options: &ConnectOptions) -> Result<usize> {
        match &url.locator {
            Locator::Spark(target) if options.spark_session.is_some() => {
                spark::SparkDatabase::interrupt(target, url.redacted(), options).await
            }
            _ => Ok(0),
        }
    }

    /// Connects to a URL given as text.
    pub async fn connect_str(url: &str, options: &ConnectOptions) -> Result<Database> {
        Self::connect(&DatabaseUrl::parse(url)?, options).await
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        match self {
            Database::Postgres(_) => Engine::Postgres,
            Database::Sqlite(_) => Engine::Sqlite,
            Database::Spark(_) => Engine::Spark,
        }
    }

    /// The redacted URL of this database.
    pub fn redacted_url(&self) -> &str {
        match self {
            Database::Postgres(database) => database.redacted_url(),
            Database::Sqlite(database) => database.redacted_url(),
            Database::Spark(database) => database.redacted_url(),
        }
    }

    /// Introspects the whole schema.
    pub async fn introspect(&self, options: &IntrospectOptions) -> Result<Schema> {
        let mut schema = match self {
            Database::Postgres(database) => database.introspect().await?,
            Database::Sqlite(database) => database.introspect().await?,
            Database::Spark(database) => Schema {
                engine: Engine::Spark,
                database: database.redacted_url().to_owned(),
                server_version: database.version().await?,
                tables: database.introspect_tables(None).await?,
                views: Vec::new(),
                sequences: Vec::new(),
                routines: Vec::new(),
                triggers: Vec::new(),
            },
        };
        if options.exact_counts {
            for table in &mut schema.tables {
                table.row_count = Some(self.count_rows(&table.name).await?);
            }
        }
        Ok(schema)
    }

    /// Introspects one table; a clear error if it does not exist.
    pub async fn table(&self, name: &TableName) -> Result<Table> {
        let schema = match self {
            Database::Postgres(database) => database.introspect_tables(Some(name)).await?,
            Database::Sqlite(database) => database.introspect_tables(Some(name)).await?,
            Database::Spark(database) => database.introspect_tables(Some(name)).await?,
        };
        let matching: Vec<&Table> = schema
            .iter()
            .filter(|table| table.name.matches(name))
            .collect();
        match matching.as_slice() {
            [table] => Ok((*table).clone()),
            [] => {
                let all = match self {
                    Database::Postgres(database) => database.table_names().await?,
                    Database::Sqlite(database) => database.table_names().await?,
                    Database::Spark(database) => database.table_names().await?,
                };
                let suggestions =
                    schema::close_matches(&name.name, all.iter().map(|table| table.name.as_str()));
                Err(Error::UnknownTable {
                    table: name.to_string(),
                    database: self.redacted_url().to_owned(),
                    hint: (!suggestions.is_empty())
                        .then(|| format!("did you mean {}?", suggestions.join(", "))),
                })
            }
            several => Err(Error::UnknownTable {
                table: name.to_string(),
                database: self.redacted_url().to_owned(),
                hint: Some(format!(
                    "the name is ambiguous; qualify it with its schema: {}",
                    several
                        .iter()
                        .map(|table| table.name.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }),
        }
    }

    /// Counts a table's rows exactly.
    pub async fn count_rows(&self, table: &TableName) -> Result<u64> {
        match self {
            Database::Postgres(database) => database.count_rows(table).await,
            Database::Sqlite(database) => database.count_rows(table).await,
            Database::Spark(database) => database.count_rows(table).await,
        }
    }

    /// Streams rows as the request says, in bounded memory.
    pub async fn read(&self, request: &ReadRequest) -> Result<RowStream> {
        let table = self.table(&request.table).await?;
        let resolved = ResolvedRead::new(table, request)?;
        match self {
            Database::Postgres(database) => database.read(resolved).await,
            Database::Sqlite(database) => database.read(resolved).await,
            Database::Spark(database) => database.read(resolved).await,
        }
    }

    /// The columns a SELECT returns, with their logical types (PostgreSQL's
    /// from the statement's description, SQLite's from declared types).
    /// A column whose type cutover cannot read has `logical_type: None`.
    pub async fn describe(&self, sql: &str) -> Result<Vec<Column>> {
        match self {
            Database::Postgres(database) => database.describe(sql).await,
            Database::Sqlite(database) => database.describe(sql).await,
            Database::Spark(database) => database.describe(sql).await,
        }
    }

    /// Streams the rows of a SELECT written by the caller, decoded as
    /// `columns` say (one per output column, in order). `label` names what is
    /// read in errors (never a row value). PostgreSQL reads through binary COPY.
    pub async fn query(&self, sql: &str, columns: Vec<Column>, label: &str) -> Result<RowStream> {
        for column in &columns {
            if column.logical_type.is_none() {
                return Err(Error::UnsupportedType {
                    table: label.to_owned(),
                    column: column.name.clone(),
                    type_name: column.type_name.clone(),
                });
            }
        }
        match self {
            Database::Postgres(database) => {
                database.stream(sql, &[], columns, label.to_owned()).await
            }
            Database::Sqlite(database) => {
                database.stream(sql, &[], columns, label.to_owned()).await
            }
            Database::Spark(database) => database.stream(sql, columns, label.to_owned()).await,
        }
    }

    /// Streams a SELECT that returns two non-NULL `int8` columns (hash pairs,
    /// counts) in batches, without building a row per tuple. PostgreSQL and Spark.
    pub async fn query_int8_pairs(
        &self,
        sql: &str,
        label: &str,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<Vec<(i64, i64)>>>> {
        match self {
            Database::Postgres(database) => {
                Ok(database.stream_int8_pairs(sql, label.to_owned()).await?)
            }
            Database::Spark(database) => {
                Ok(database.stream_int8_pairs(sql, label.to_owned()).await?)
            }
            Database::Sqlite(_) => Err(Error::Unsupported(
                "int8 pair streams are read from PostgreSQL and Spark only".into(),
            )),
        }
    }

    /// PostgreSQL's version number (`150004` for 15.4); `None` for SQLite.
    pub async fn server_version(&self) -> Result<Option<u32>> {
        match self {
            Database::Postgres(database) => Ok(Some(database.server_version().await?)),
            Database::Sqlite(_) | Database::Spark(_) => Ok(None),
        }
    }

    /// Appends rows to `table` in one transaction: either every row is written or none is.
    /// Returns the number of rows written.
    pub async fn write(
        &self,
        table: &TableName,
        columns: &[String],
        rows: RowStream,
    ) -> Result<u64> {
        let resolved = self.table(table).await?;
        let columns = columns
            .iter()
            .map(|name| column_of(&resolved, name).cloned())
            .collect::<Result<Vec<_>>>()?;
        match self {
            Database::Postgres(database) => database.write(&resolved, &columns, rows).await,
            Database::Sqlite(database) => database.write(&resolved, &columns, rows).await,
            Database::Spark(database) => database.write(&resolved, &columns, rows).await,
        }
    }

    /// Runs SQL statements (schema set-up, fixtures). Returns nothing.
    pub async fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Database::Postgres(database) => database.execute_batch(sql).await,
            Database::Sqlite(database) => database.execute_batch(sql).await,
            Database::Spark(database) => database.execute_batch(sql).await,
        }
    }
}
