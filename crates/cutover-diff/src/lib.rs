//! Exact reconciliation of two tables or queries, on PostgreSQL and SQLite,
//! in bounded memory whatever their size.
//!
//! Rows are matched by key, never by the engines' sort order. Each row's key
//! is hashed and the hash picks a bucket; each side sums its buckets into
//! digests (inside PostgreSQL with the server strategy, in cutover with the
//! client strategy); only buckets whose digests differ are read again, row by
//! row, and only their rows are compared column by column. Findings go to a
//! work database (the `--state` file), partition by partition, so a killed run
//! resumes where it stopped.
//!
//! ```no_run
//! # async fn example() -> cutover_diff::Result<()> {
//! use cutover_db::{ConnectOptions, DatabaseUrl, TableName};
//! use cutover_diff::{DiffOptions, NoProgress, Source};
//! let side = |path: &str| -> cutover_diff::Result<Source> {
//!     Ok(Source::Table { url: DatabaseUrl::parse(path)?, table: TableName::new("lab_results") })
//! };
//! let options = DiffOptions { key: vec!["result_id".into()], ..DiffOptions::default() };
//! let diff = cutover_diff::run(&side("sqlite:old.db")?, &side("sqlite:new.db")?,
//!     &ConnectOptions::default(), &options, &NoProgress).await?;
//! println!("{} changed", diff.report.summary.changed);
//! # Ok(()) }
//! ```

mod client;
mod columnar;
mod compare;
pub mod delta;
mod digests;
mod engine;
mod error;
mod hybrid;
mod json;
mod kept;
mod normalise;
mod pairs;
mod plan;
mod pushdown;
mod report;
mod server;
mod spill;
mod store;

use std::path::PathBuf;

pub use engine::{Diff, run};
pub use error::{Error, Result};
pub use normalise::{Normalise, TimestampPrecision};
pub use plan::{Source, Strategy};
pub use report::{ColumnCount, GroupCount, Report, Samples, SchemaDifference, Summary};

/// Which strategy to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StrategyChoice {
    /// The server strategy when both sides are PostgreSQL 14+, else the client strategy.
    #[default]
    Auto,
    /// Hash inside PostgreSQL (both sides must be PostgreSQL 14+).
    Server,
    /// Hash in cutover (any sides).
    Client,
}

/// How findings are grouped: a column, optionally truncated to a period.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupBy {
    /// The (source) column.
    pub column: String,
    /// For dates and timestamps: group by this period instead of the value.
    pub period: Option<Period>,
}

/// A period dates and timestamps are truncated to for grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// `2024`.
    Year,
    /// `2024-03`.
    Month,
    /// `2024-03-01`.
    Day,
}

impl GroupBy {
    /// Parses `column` or `column:year|month|day`.
    pub fn parse(text: &str) -> Result<GroupBy> {
        let (column, period) = match text.rsplit_once(':') {
            Some((column, period)) => {
                let period = match period.to_ascii_lowercase().as_str() {
                    "year" => Period::Year,
                    "month" => Period::Month,
                    "day" => Period::Day,
                    other => {
                        return Err(Error::BadOption(format!(
                            "--group-by {text}: unknown period {other}\nhint: use COLUMN, COLUMN:year, COLUMN:month or COLUMN:day"
                        )));
                    }
                };
                (column, Some(period))
            }
            None => (text, None),
        };
        if column.is_empty() {
            return Err(Error::BadOption(format!("--group-by {text}: no column")));
        }
        Ok(GroupBy {
            column: column.to_owned(),
            period,
        })
    }

    /// The group's name in reports: `reported_at:month` or `program`.
    pub fn label(&self) -> String {
        match self.period {
            Some(Period::Year) => format!("{}:year", self.column),
            Some(Period::Month) => format!("{}:month", self.column),
            Some(Period::Day) => format!("{}:day", self.column),
            None => self.column.clone(),
        }
    }
}

/// Everything that shapes a diff.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Key columns (source names); empty for the source's primary key.
    pub key: Vec<String>,
    /// Columns to compare (source names); `None` for every column both sides have.
    pub columns: Option<Vec<String>>,
    /// Columns left out.
    pub exclude: Vec<String>,
    /// Renamed columns: (source name, target name).
    pub map: Vec<(String, String)>,
    /// A SQL condition on source rows.
    pub source_where: Option<String>,
    /// A SQL condition on target rows.
    pub target_where: Option<String>,
    /// Normalisation before comparison.
    pub normalise: Normalise,
    /// Which strategy.
    pub strategy: StrategyChoice,
    /// Partitions processed at once, each over its own connections.
    pub jobs: usize,
    /// Threads reading a file's row groups (Parquet).
    pub read_threads: usize,
    /// Partitions of the key-hash space (rounded up to a power of two);
    /// `None` chooses from the row counts and the strategy.
    pub partitions: Option<u32>,
    /// Keep findings and finished partitions in this file and resume from it.
    pub state: Option<PathBuf>,
    /// Group findings by these columns.
    pub group_by: Vec<GroupBy>,
    /// Stop after this many differences (missing + extra + changed).
    pub max_diffs: Option<u64>,
    /// Keep the values of differing rows (for a delta file or `--show-values`).
    pub keep_values: bool,
    /// Sample keys kept per category in the report.
    pub samples: usize,
    /// Rows per bucket aimed at; fewer means more, smaller buckets.
    pub rows_per_bucket: u64,
    /// Server strategy: tables with more rows than this are grouped into
    /// bucket digests by the servers instead of streamed as hash pairs.
    pub grouped_above_rows: u64,
    /// Two files read by columns with more rows than this (the larger side)
    /// compare every row's hashes through disk instead of bucket digests.
    pub pairs_above_rows: u64,
    /// Bytes of rows a first pass over files read by columns may keep on
    /// disk for the second pass, both sides together (`None`: a quarter of
    /// the memory available, so that they stay in the page cache; 0: none).
    pub kept_bytes: Option<u64>,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            key: Vec::new(),
            columns: None,
            exclude: Vec::new(),
            map: Vec::new(),
            source_where: None,
            target_where: None,
            normalise: Normalise::default(),
            strategy: StrategyChoice::Auto,
            jobs: 1,
            read_threads: 1,
            partitions: None,
            state: None,
            group_by: Vec::new(),
            max_diffs: None,
            keep_values: false,
            samples: 5,
            rows_per_bucket: 2,
            grouped_above_rows: 256 << 20,
            pairs_above_rows: 16 << 20,
            kept_bytes: None,
        }
    }
}

/// Where a diff reports its progress (shared with the other long jobs).
pub use cutover_db::{NoProgress, Progress};
