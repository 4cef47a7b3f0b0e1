//! `cutover diff SOURCE TARGET`: exact reconciliation of two tables or queries.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use cutover_db::{Column, Database, DatabaseUrl, LogicalType, RowStream, TableName, Value};
use cutover_diff::delta::{DeltaFormat, DeltaRecord};
use cutover_diff::{
    DiffOptions, GroupBy, Normalise, Report, Source, StrategyChoice, TimestampPrecision,
};

use crate::Outcome;
use crate::cli::{Format, GlobalArgs};
use crate::output::{print, print_json, thousands};

/// Reconcile two tables or queries exactly.
///
/// Rows are matched by key (--key, or the source's primary key) and reported
/// as missing (only in the source), extra (only in the target) or changed
/// (some compared column differs), with counts per column and, with
/// --group-by, per group. Duplicate and NULL keys are reported, not fatal.
/// Exit code 1 when anything differs.
///
/// Every difference counts unless you ask otherwise: 1 µs is a difference,
/// NULL is not '', and 1.0 equals 1.00 (numbers compare by value). Rows are
/// bucketed by a hash of their key, never by sort order, so collations cannot
/// disagree. When both sides are PostgreSQL 14+, each server hashes its own
/// rows and only the rows of differing buckets are read (the server
/// strategy); when both are in one Spark, Spark joins them on the key and
/// only differing rows leave it (the pushdown strategy); a Spark side
/// against another engine hashes its rows in Spark and cutover hashes the
/// other side's the same way (the hybrid strategy); otherwise cutover reads
/// and hashes every row (the client strategy).
///
/// Row values are never printed unless --show-values is given; the delta
/// written with --output or --into contains the differing rows' values.
///
/// Examples:
///   cutover diff sqlite:old.db#lab_results sqlite:new.db#lab_results
///   cutover diff postgres://old/lab#public.lab_results postgres://new/lab#public.lab_results \
///       --key sender_id,message_id,observation_index --group-by program,reported_at:month --jobs 4
///   cutover diff postgres://old/lab postgres://new/lab --source-query 'SELECT ...' --target-query 'SELECT ...' --key id
///   cutover diff sqlite:old.db#t sqlite:new.db#t --output delta.jsonl --state diff.state
///   cutover diff sc://spark.internal:15002#lake.lab_results postgres://new/lab#public.lab_results --key message_id
///   cutover diff s3://lab-exports/2024/results/ 'abfss://lake@labdata.dfs.core.windows.net/results@v12' \
///       --key message_id --target-where "month >= '2024-06'"
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct DiffArgs {
    /// The reference side: a database URL with #table (postgres://host/db#schema.table,
    /// sqlite:file.db#table, sc://spark:15002#catalog.schema.table), a URL alone with
    /// --source-query (in that engine's SQL), a .csv or .parquet file, or a dataset read as one
    /// table: a directory or quoted glob of Parquet or CSV files (hive NAME=VALUE directories
    /// become columns), a Delta table's directory (PATH, PATH@vN, PATH@2024-01-31), or the same
    /// in S3 (s3://bucket/prefix) or Azure (az://container/prefix,
    /// abfss://container@account.dfs.core.windows.net/prefix), credentials from the
    /// environment (AWS_*, AZURE_STORAGE_*).
    #[arg(value_name = "SOURCE")]
    pub source: String,

    /// The side checked against the source, given the same way.
    #[arg(value_name = "TARGET")]
    pub target: String,

    /// Key columns that identify a row, comma-separated (default: the source's primary key).
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS")]
    pub key: Vec<String>,

    /// Compare only these columns (default: every column both sides have).
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS")]
    pub columns: Option<Vec<String>>,

    /// Leave these columns out of the comparison.
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS")]
    pub exclude: Vec<String>,

    /// A column renamed in the target: SOURCE_COLUMN=TARGET_COLUMN (repeatable).
    #[arg(long, value_name = "SOURCE=TARGET", value_parser = parse_mapping)]
    pub map: Vec<(String, String)>,

    /// A SQL condition applied to both sides (e.g. "reported_at >= '2024-01-01'"). On a dataset
    /// it may name partition columns only, and prunes files before any is opened.
    #[arg(long = "where", value_name = "SQL")]
    pub where_both: Option<String>,

    /// A SQL condition for the source only.
    #[arg(long, value_name = "SQL")]
    pub source_where: Option<String>,

    /// A SQL condition for the target only.
    #[arg(long, value_name = "SQL")]
    pub target_where: Option<String>,

    /// Read the source from this SELECT instead of a table.
    #[arg(long, value_name = "SQL")]
    pub source_query: Option<String>,

    /// Read the target from this SELECT instead of a table.
    #[arg(long, value_name = "SQL")]
    pub target_query: Option<String>,

    /// Floats within this distance are equal.
    #[arg(long, value_name = "DISTANCE")]
    pub float_tolerance: Option<f64>,

    /// Compare timestamps only to this precision.
    #[arg(long, value_enum, value_name = "PRECISION")]
    pub timestamp_precision: Option<PrecisionArg>,

    /// Ignore leading and trailing whitespace in text.
    #[arg(long)]
    pub trim: bool,

    /// Compare text case-insensitively.
    #[arg(long)]
    pub case_insensitive: bool,

    /// Treat NULL and empty text as equal.
    #[arg(long)]
    pub null_equals_empty: bool,

    /// Where rows are compared: auto (server when both sides are PostgreSQL 14+, pushdown when
    /// both are in one Spark, hybrid when one side is Spark), server (or pushdown, hybrid, on
    /// Spark) or client.
    #[arg(long, value_enum, default_value_t = StrategyArg::Auto)]
    pub strategy: StrategyArg,

    /// Work done at once: partitions of the key-hash space, each over its own
    /// connection per side (server strategy) or as its own join (pushdown),
    /// default 1; and threads reading a Parquet file's row groups, default
    /// the number of cores.
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,

    /// Split the key-hash space into N partitions (rounded up to a power of
    /// two; default: chosen from the row counts). Each is compared on its
    /// own and recorded in --state when done, so a killed run resumes from
    /// the last finished one. On Spark each partition is one join (one per
    /// ~10⁹ rows by default), scanning both sides again.
    #[arg(long, value_name = "N")]
    pub partitions: Option<u32>,

    /// Checkpoint finished partitions (and findings) in this file; a rerun with
    /// the same file resumes instead of starting over.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,

    /// Break findings down by these columns; COLUMN:year, :month or :day truncates dates and timestamps.
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS")]
    pub group_by: Vec<String>,

    /// Stop after this many differences (the counts are then lower bounds).
    #[arg(long, value_name = "N")]
    pub max_diffs: Option<u64>,

    /// Sample keys shown per category.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub samples: usize,

    /// Show the differing values of the sample rows (they may be protected health data).
    #[arg(long)]
    pub show_values: bool,

    /// Write the full delta to this file: .jsonl, .csv or .parquet.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Write the full delta into this table (URL#table; created if missing):
    /// PostgreSQL, SQLite, or a Spark table (sc://…#schema.table, in the
    /// platform's default format).
    #[arg(long, value_name = "URL#TABLE")]
    pub into: Option<String>,
}

/// `--timestamp-precision` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrecisionArg {
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
}

/// `--strategy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    /// Server when both sides are PostgreSQL 14+, pushdown when both are in one Spark, else client.
    Auto,
    /// Hash inside PostgreSQL (join inside Spark).
    Server,
    /// Hash in cutover.
    Client,
}

fn parse_mapping(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((from, to)) if !from.trim().is_empty() && !to.trim().is_empty() => {
            Ok((from.trim().to_owned(), to.trim().to_owned()))
        }
        _ => Err(format!("expected SOURCE_COLUMN=TARGET_COLUMN, got {text}")),
    }
}

async fn side(
    role: &str,
    text: &str,
    query: Option<&String>,
    condition: Option<&str>,
) -> anyhow::Result<Source> {
    if cutover_files::FileSource::names_files(text) {
        if query.is_some() {
            bail!(
                "{role} {}: --{role}-query needs a database URL, not files",
                cutover_files::redact(text)
            );
        }
        return Ok(Source::File(
            cutover_files::FileSource::open_location(text, condition).await?,
        ));
    }
    let url = DatabaseUrl::parse(text)?;
    match (query, url.table.clone()) {
        (Some(_), Some(_)) => bail!(
            "{role} {}: give either #table in the URL or --{role}-query, not both",
            url.redacted()
        ),
        (Some(sql), None) => Ok(Source::Query {
            url,
            sql: sql.clone(),
        }),
        (None, Some(table)) => Ok(Source::Table { url, table }),
        (None, None) => bail!(
            "{role} {}: no table\nhint: add #table to the URL (e.g. {}#lab_results), or give --{role}-query",
            url.redacted(),
            url.redacted()
        ),
    }
}

fn combine(both: &Option<String>, one: &Option<String>) -> Option<String> {
    match (both, one) {
        (Some(both), Some(one)) => Some(format!("({both}) AND ({one})")),
        (Some(condition), None) | (None, Some(condition)) => Some(condition.clone()),
        (None, None) => None,
    }
}

pub async fn run(args: DiffArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let source_where = combine(&args.where_both, &args.source_where);
    let target_where = combine(&args.where_both, &args.target_where);
    let source = side(
        "source",
        &args.source,
        args.source_query.as_ref(),
        source_where.as_deref(),
    )
    .await?;
    let target = side(
        "target",
        &args.target,
        args.target_query.as_ref(),
        target_where.as_deref(),
    )
    .await?;
    let output_format = match &args.output {
        Some(path) => Some(DeltaFormat::from_path(path).with_context(|| {
            format!(
                "--output {}: unknown file type\nhint: name it .jsonl, .csv or .parquet",
                path.display()
            )
        })?),
        None => None,
    };
    let into = match &args.into {
        Some(text) => {
            let url = DatabaseUrl::parse(text)?;
            let table = url.table.clone().with_context(|| {
                format!(
                    "--into {}: no table\nhint: add #table to the URL",
                    url.redacted()
                )
            })?;
            Some((url, table))
        }
        None => None,
    };
    if args.jobs == Some(0) {
        bail!("--jobs must be at least 1");
    }
    if args.partitions == Some(0) {
        bail!("--partitions must be at least 1");
    }
    let options = DiffOptions {
        key: args.key.clone(),
        columns: args.columns.clone(),
        exclude: args.exclude.clone(),
        map: args.map.clone(),
        source_where,
        target_where,
        normalise: Normalise {
            float_tolerance: args.float_tolerance,
            timestamp_precision: args.timestamp_precision.map(|precision| match precision {
                PrecisionArg::Ms => TimestampPrecision::Ms,
                PrecisionArg::S => TimestampPrecision::S,
            }),
            trim: args.trim,
            case_insensitive: args.case_insensitive,
            null_equals_empty: args.null_equals_empty,
        },
        strategy: match args.strategy {
            StrategyArg::Auto => StrategyChoice::Auto,
            StrategyArg::Server => StrategyChoice::Server,
            StrategyArg::Client => StrategyChoice::Client,
        },
        jobs: args.jobs.unwrap_or(1),
        read_threads: args.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        }),
        partitions: args.partitions,
        state: args.state.clone(),
        group_by: args
            .group_by
            .iter()
            .map(|text| GroupBy::parse(text))
            .collect::<Result<_, _>>()?,
        max_diffs: args.max_diffs,
        keep_values: args.show_values || args.output.is_some() || args.into.is_some(),
        samples: args.samples,
        ..DiffOptions::default()
    };
    let connect = crate::environment::connect_options();
    let bar = crate::progress::Bar::new(global.quiet || global.format == Format::Json);
    let result = tokio::select! {
        result = cutover_diff::run(&source, &target, &connect, &options, &bar) => result,
        _ = tokio::signal::ctrl_c() => {
            bar.finish();
            return Err(interrupted(&args, &connect).await);
        }
    };
    bar.finish();
    let diff = result?;

    let mut written = serde_json::Map::new();
    if let (Some(path), Some(format)) = (&args.output, output_format) {
        let records = cutover_diff::delta::write_file(diff.delta()?, path, format)?;
        written.insert(
            "output".into(),
            serde_json::json!({"path": path, "records": records}),
        );
    }
    if let Some((url, table)) = &into {
        let records = write_into(&diff, url, table, &connect).await?;
        written.insert(
            "into".into(),
            serde_json::json!({"table": format!("{}#{table}", url.redacted()), "records": records}),
        );
    }

    let shown: Vec<DeltaRecord> = if args.show_values {
        diff.delta()?
            .filter(|record| {
                record
                    .as_ref()
                    .map_or(true, |record| record.kind == "changed")
            })
            .take(args.samples)
            .collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    match global.format {
        Format::Json => {
            let mut document = serde_json::to_value(&diff.report)?;
            if let Some(object) = document.as_object_mut() {
                object.extend(written);
                if args.show_values {
                    object.insert("changed_values".into(), serde_json::to_value(&shown)?);
                }
            }
            print_json(&document)?;
        }
        Format::Text => print(&render(&diff.report, &shown, &written))?,
    }
    Ok(if diff.report.has_differences() {
        Outcome::Differences
    } else {
        Outcome::Success
    })
}

/// After Ctrl-C: cancels what the diff started in Spark, and says so.
async fn interrupted(args: &DiffArgs, connect: &cutover_db::ConnectOptions) -> anyhow::Error {
    let mut cancelled = 0;
    let mut failures = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for side in [&args.source, &args.target] {
        let Ok(url) = DatabaseUrl::parse(side) else {
            continue;
        };
        if seen.insert(url.redacted().to_owned()) {
            match Database::interrupt(&url, connect).await {
                Ok(count) => cancelled += count,
                Err(error) => failures.push(error.to_string()),
            }
        }
    }
    let mut what = String::new();
    if cancelled > 0 {
        let (plural, verb) = if cancelled == 1 {
            ("", "was")
        } else {
            ("s", "were")
        };
        what.push_str(&format!(
            "; the {cancelled} Spark operation{plural} it started {verb} cancelled"
        ));
    }
    for failure in failures {
        what.push_str(&format!("; cancelling in Spark failed: {failure}"));
    }
    anyhow::anyhow!(
        "interrupted{what}\nhint: run it again; with --state FILE, finished partitions are kept"
    )
}

/// Writes the delta into a table: kind, side, key, columns, count, source, target.
async fn write_into(
    diff: &cutover_diff::Diff,
    url: &DatabaseUrl,
    table: &TableName,
    connect: &cutover_db::ConnectOptions,
) -> anyhow::Result<u64> {
    let options = cutover_db::ConnectOptions {
        create_sqlite: true,
        ..connect.clone()
    };
    let database = Database::connect(url, &options).await?;
    let engine = database.engine();
    let (text, integer) = match engine {
        cutover_db::Engine::Postgres => ("TEXT", "bigint"),
        cutover_db::Engine::Sqlite => ("TEXT", "INTEGER"),
        // The platform's default table format (Delta on Databricks).
        cutover_db::Engine::Spark => ("STRING", "BIGINT"),
    };
    database
        .execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {} (kind {text} NOT NULL, side {text}, key {text} NOT NULL, columns {text}, count {integer}, source {text}, target {text})",
            engine.quote_table(table)
        ))
        .await?;
    let names = [
        "kind", "side", "key", "columns", "count", "source", "target",
    ];
    let columns: Vec<Column> = names
        .iter()
        .map(|name| Column {
            name: (*name).to_owned(),
            type_name: "text".to_owned(),
            logical_type: Some(if *name == "count" {
                LogicalType::Integer
            } else {
                LogicalType::Text
            }),
            nullable: true,
            default: None,
        })
        .collect();
    let text = |value: Option<String>| value.map(Value::Text).unwrap_or(Value::Null);
    let rows = diff.delta()?.map(move |record| {
        let record = record.map_err(|error| cutover_db::Error::Internal(error.to_string()))?;
        Ok(vec![
            Value::Text(record.kind),
            text(record.side),
            Value::Text(record.key.get().to_owned()),
            text((!record.columns.is_empty()).then(|| record.columns.join(";"))),
            record
                .count
                .map(|count| Value::Int(count as i64))
                .unwrap_or(Value::Null),
            text(record.source.map(|value| value.get().to_owned())),
            text(record.target.map(|value| value.get().to_owned())),
        ])
    });
    let stream = RowStream::new(columns, futures_util::stream::iter(rows));
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    Ok(database.write(table, &names, stream).await?)
}

fn render(
    report: &Report,
    shown: &[DeltaRecord],
    written: &serde_json::Map<String, serde_json::Value>,
) -> String {
    let summary = &report.summary;
    let mut text = String::new();
    let strategy = match report.strategy {
        cutover_diff::Strategy::Server => "server",
        cutover_diff::Strategy::Client => "client",
        cutover_diff::Strategy::Pushdown => "pushdown",
        cutover_diff::Strategy::Hybrid => "hybrid",
    };
    let _ = writeln!(text, "source  {}", report.source);
    let _ = writeln!(text, "target  {}", report.target);
    let _ = writeln!(
        text,
        "key     {}  ({} compared columns, {strategy} strategy, {:.1} s)",
        report.key.join(", "),
        report.compared_columns.len(),
        report.seconds
    );
    text.push('\n');
    let rows = [
        ("source rows", summary.source_rows, ""),
        ("target rows", summary.target_rows, ""),
        ("matched", summary.matched, ""),
        ("missing", summary.missing, "only in the source"),
        ("extra", summary.extra, "only in the target"),
        ("changed", summary.changed, "in both, some column differs"),
        (
            "duplicate keys",
            summary.duplicate_keys,
            "keys on more than one row of a side",
        ),
        (
            "null keys",
            summary.null_keys,
            "rows with a NULL in the key, not compared",
        ),
    ];
    let width = rows
        .iter()
        .map(|(_, value, _)| thousands(*value).len())
        .max()
        .unwrap_or(1);
    for (label, value, note) in rows {
        if (label == "duplicate keys" || label == "null keys") && value == 0 {
            continue;
        }
        let line = format!("  {label:<15}{:>width$}  {note}", thousands(value));
        let _ = writeln!(text, "{}", line.trim_end());
    }
    if report.stopped_early {
        let _ = writeln!(
            text,
            "\nstopped after --max-diffs differences: the counts above are lower bounds"
        );
    }
    if !report.schema.only_in_source.is_empty() {
        let _ = writeln!(
            text,
            "\ncolumns only in the source (not compared): {}",
            report.schema.only_in_source.join(", ")
        );
    }
    if !report.schema.only_in_target.is_empty() {
        let _ = writeln!(
            text,
            "\ncolumns only in the target (not compared): {}",
            report.schema.only_in_target.join(", ")
        );
    }
    if !report.columns.is_empty() {
        let _ = writeln!(text, "\nchanged rows per column");
        let width = report
            .columns
            .iter()
            .map(|count| count.column.len())
            .max()
            .unwrap_or(0);
        for count in &report.columns {
            let _ = writeln!(
                text,
                "  {:<width$}  {}",
                count.column,
                thousands(count.changed)
            );
        }
    }
    if !report.group_by.is_empty() && !report.groups.is_empty() {
        let _ = writeln!(text, "\nby {}", report.group_by.join(", "));
        let mut table: Vec<Vec<String>> = vec![
            report
                .group_by
                .iter()
                .cloned()
                .chain(["missing".into(), "extra".into(), "changed".into()])
                .collect(),
        ];
        for group in &report.groups {
            let mut line: Vec<String> = group
                .values
                .iter()
                .map(|value| match value {
                    serde_json::Value::String(text) => text.clone(),
                    serde_json::Value::Null => "(null)".into(),
                    other => other.to_string(),
                })
                .collect();
            line.extend([
                thousands(group.missing),
                thousands(group.extra),
                thousands(group.changed),
            ]);
            table.push(line);
        }
        let columns = table[0].len();
        let widths: Vec<usize> = (0..columns)
            .map(|index| {
                table
                    .iter()
                    .map(|line| line[index].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for line in &table {
            let mut out = String::from(" ");
            for (index, cell) in line.iter().enumerate() {
                let numeric = index >= columns - 3;
                if numeric {
                    let _ = write!(out, " {cell:>width$}", width = widths[index]);
                } else {
                    let _ = write!(out, " {cell:<width$}", width = widths[index]);
                }
            }
            let _ = writeln!(text, "{}", out.trim_end());
        }
        if report.groups_truncated > 0 {
            let _ = writeln!(
                text,
                "  … and {} more groups (see --format json or --output)",
                thousands(report.groups_truncated)
            );
        }
    }
    let samples = &report.samples;
    if !samples.missing.is_empty()
        || !samples.extra.is_empty()
        || !samples.changed.is_empty()
        || !samples.duplicate_keys.is_empty()
    {
        let _ = writeln!(text, "\nsample keys");
        for key in &samples.missing {
            let _ = writeln!(text, "  missing        {key}");
        }
        for key in &samples.extra {
            let _ = writeln!(text, "  extra          {key}");
        }
        for sample in &samples.changed {
            let _ = writeln!(
                text,
                "  changed        {}  ({})",
                sample.key,
                sample.columns.join(", ")
            );
        }
        for sample in &samples.duplicate_keys {
            let _ = writeln!(
                text,
                "  duplicate key  {}  ({} rows in the {})",
                sample.key, sample.count, sample.side
            );
        }
    }
    if !shown.is_empty() {
        let _ = writeln!(text, "\nchanged values");
        for record in shown {
            let _ = writeln!(text, "  {}", record.key);
            for column in &record.columns {
                let value = |row: &Option<Box<serde_json::value::RawValue>>| {
                    row.as_ref()
                        .and_then(|row| serde_json::from_str::<serde_json::Value>(row.get()).ok())
                        .and_then(|row| row.get(column).map(|value| value.to_string()))
                        .unwrap_or_default()
                };
                let _ = writeln!(
                    text,
                    "    {column}: {} → {}",
                    value(&record.source),
                    value(&record.target)
                );
            }
        }
    }
    for (name, value) in written {
        let records = value
            .get("records")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let place = value
            .get("path")
            .or_else(|| value.get("table"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        let _ = writeln!(
            text,
            "\n{name}: {} records written to {place}",
            thousands(records)
        );
    }
    if !report.has_differences() {
        let _ = writeln!(text, "\nno differences");
    }
    text
}
