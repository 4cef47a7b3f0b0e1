//! `cutover inspect URL`: a readable schema summary, or JSON.

use std::fmt::Write as _;

use clap::Args;
use cutover_db::schema::{Schema, Table};
use cutover_db::{Database, DatabaseUrl, IntrospectOptions};

use crate::Outcome;
use crate::cli::{Format, GlobalArgs};
use crate::output::{print, print_json, thousands};

/// Summarise a database's schema, or a file or dataset's columns.
///
/// Shows every table with its row count (the engine's estimate, or exact
/// with --count), columns and their types, primary and unique keys, foreign
/// keys and indexes; then views, sequences with their current values,
/// functions and triggers. Columns whose type cutover cannot compare are
/// marked "unsupported". The database is opened read-only.
///
/// A CSV or Parquet file, a directory or glob of them, or an object-store
/// location (s3://, az://, abfss://) shows its files, partition columns
/// (hive NAME=VALUE directories), columns and row count (exact for
/// Parquet, from the footers; CSV with --count).
///
/// Examples:
///   cutover inspect sqlite:examples/lab-results.db
///   cutover inspect postgres://reader@db.internal/lab --count
///   cutover inspect 'postgres://reader@db.internal/lab#reporting.lab_results' --format json
///   cutover inspect 'sc://spark.internal:15002#lake.lab_results' --count
///   cutover inspect 's3://lab-exports/results/' --format json
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The database: postgres://user@host:port/dbname, sqlite:PATH or sc://host:port (Spark
    /// Connect; its token from CUTOVER_SPARK_TOKEN), optionally ending in #table to show one
    /// table only; or files: a .csv/.parquet file, a directory or quoted glob of them, or
    /// s3://bucket/prefix, az://container/prefix, abfss://container@account.dfs.core.windows.net/prefix.
    #[arg(value_name = "URL")]
    pub url: String,

    /// Count every table's rows exactly (a full scan of each table) instead of showing estimates.
    #[arg(long)]
    pub count: bool,
}

pub async fn run(args: InspectArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    if cutover_files::FileSource::names_files(&args.url) {
        return inspect_files(&args, global).await;
    }
    let url = DatabaseUrl::parse(&args.url)?;
    let options = cutover_db::ConnectOptions {
        read_only: true,
        ..crate::environment::connect_options()
    };
    let database = Database::connect(&url, &options).await?;
    let mut schema = database
        .introspect(&IntrospectOptions {
            exact_counts: false,
        })
        .await?;
    if let Some(wanted) = &url.table {
        // Resolve through the database so that errors (and hints) are the usual ones.
        let table = database.table(wanted).await?;
        schema
            .tables
            .retain(|candidate| candidate.name == table.name);
        schema.views.clear();
        schema.sequences.retain(|sequence| {
            sequence
                .owned_by
                .as_deref()
                .is_some_and(|owner| owner.starts_with(&table.name.to_string()))
        });
        schema.routines.clear();
        schema
            .triggers
            .retain(|trigger| trigger.table == table.name);
    }
    if args.count {
        for table in &mut schema.tables {
            table.row_count = Some(database.count_rows(&table.name).await?);
        }
    }
    match global.format {
        Format::Json => print_json(&schema)?,
        Format::Text => print(&render(&schema))?,
    }
    Ok(Outcome::Success)
}

/// A file, dataset or object-store location: its files, partition
/// columns and columns, and its row count (Parquet footers; CSV with --count).
async fn inspect_files(args: &InspectArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let source = cutover_files::FileSource::open_location(&args.url, None).await?;
    let columns = source.columns()?;
    let mut row_count = source.row_count();
    if row_count.is_none() && args.count {
        let mut rows = source.read(&columns)?;
        let mut count = 0u64;
        while let Some(row) = futures_util::StreamExt::next(&mut rows).await {
            row?;
            count += 1;
        }
        row_count = Some(count);
    }
    let format = match source.format() {
        cutover_files::FileFormat::Csv => "CSV",
        cutover_files::FileFormat::Parquet => "Parquet",
    };
    let mut table = Table::new(cutover_db::TableName::new(source.label()), columns);
    table.row_count = row_count;
    match global.format {
        Format::Json => print_json(&serde_json::json!({
            "location": source.label(),
            "format": format,
            "delta_version": source.delta_version(),
            "files": source.files(),
            "partitions": source.partitions(),
            "table": table,
        }))?,
        Format::Text => {
            let files = source.files().len();
            let delta = source
                .delta_version()
                .map(|version| format!("Delta table at version {version}, "))
                .unwrap_or_default();
            let mut out = format!(
                "{}  ({delta}{format}, {})",
                source.label(),
                plural(files, "file")
            );
            if !source.partitions().is_empty() {
                let _ = write!(out, ", partitioned by {}", source.partitions().join(", "));
            }
            out.push_str("\n\n");
            render_table(&mut out, &table);
            print(&out)?;
        }
    }
    Ok(Outcome::Success)
}

fn render(schema: &Schema) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}  ({})", schema.database, schema.server_version);
    let _ = writeln!(
        out,
        "{}, {}, {}, {}, {}",
        plural(schema.tables.len(), "table"),
        plural(schema.views.len(), "view"),
        plural(schema.sequences.len(), "sequence"),
        plural(schema.routines.len(), "function"),
        plural(schema.triggers.len(), "trigger")
    );
    for table in &schema.tables {
        out.push('\n');
        render_table(&mut out, table);
    }
    if !schema.views.is_empty() {
        let _ = writeln!(out, "\nviews");
        for view in &schema.views {
            let kind = if view.materialized {
                "  (materialized)"
            } else {
                ""
            };
            let _ = writeln!(out, "  {}{kind}", view.name);
        }
    }
    if !schema.sequences.is_empty() {
        let _ = writeln!(out, "\nsequences");
        for sequence in &schema.sequences {
            let value = sequence
                .current_value
                .map_or_else(|| "unused".to_owned(), |value| format!("at {value}"));
            let owner = sequence
                .owned_by
                .as_deref()
                .map(|owner| format!("  feeds {owner}"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {}  {value}{owner}", sequence.name);
        }
    }
    if !schema.routines.is_empty() {
        let _ = writeln!(out, "\nfunctions");
        for routine in &schema.routines {
            let returns = routine
                .returns
                .as_deref()
                .map(|returns| format!(" → {returns}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {} {}({}){returns}",
                routine.kind, routine.name, routine.arguments
            );
        }
    }
    if !schema.triggers.is_empty() {
        let _ = writeln!(out, "\ntriggers");
        for trigger in &schema.triggers {
            let function = trigger
                .function
                .as_deref()
                .map(|function| format!(" → {function}()"))
                .unwrap_or_default();
            let disabled = if trigger.enabled { "" } else { "  (disabled)" };
            let _ = writeln!(
                out,
                "  {} on {}{function}{disabled}",
                trigger.name, trigger.table
            );
        }
    }
    out
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

fn render_table(out: &mut String, table: &Table) {
    let rows = match (table.row_count, table.row_estimate) {
        (Some(count), _) => format!(
            "{} {}",
            thousands(count),
            if count == 1 { "row" } else { "rows" }
        ),
        (None, Some(estimate)) => format!("~{} rows (estimate)", thousands(estimate)),
        (None, None) => "rows not estimated (use --count)".to_owned(),
    };
    let _ = writeln!(out, "table {}  {rows}", table.name);
    let name_width = table
        .columns
        .iter()
        .map(|column| column.name.len())
        .max()
        .unwrap_or(0);
    let type_width = table
        .columns
        .iter()
        .map(|column| column.type_name.len())
        .max()
        .unwrap_or(0);
    let key_columns: &[String] = table.primary_key.as_ref().map_or(&[], |key| &key.columns);
    for column in &table.columns {
        let mut notes = Vec::new();
        if let Some(position) = key_columns.iter().position(|name| *name == column.name) {
            notes.push(if key_columns.len() > 1 {
                format!("key {}", position + 1)
            } else {
                "key".to_owned()
            });
        }
        if !column.nullable {
            notes.push("not null".to_owned());
        }
        if let Some(default) = &column.default {
            notes.push(format!("default {default}"));
        }
        let logical = match column.logical_type {
            Some(logical) => logical.name().to_owned(),
            None => "unsupported".to_owned(),
        };
        let line = format!(
            "  {:<name_width$}  {:<type_width$}  {:<11}  {}",
            column.name,
            column.type_name,
            logical,
            notes.join(", ")
        );
        // Columns without notes would end in padding.
        let _ = writeln!(out, "{}", line.trim_end());
    }
    match &table.primary_key {
        Some(key) => {
            let _ = writeln!(out, "  primary key ({})", key.columns.join(", "));
        }
        None => {
            let _ = writeln!(out, "  no primary key");
        }
    }
    for key in &table.unique_constraints {
        let _ = writeln!(out, "  unique ({})", key.columns.join(", "));
    }
    for foreign_key in &table.foreign_keys {
        let _ = writeln!(
            out,
            "  foreign key ({}) → {} ({}) on delete {}",
            foreign_key.columns.join(", "),
            foreign_key.referenced_table,
            foreign_key.referenced_columns.join(", "),
            foreign_key.on_delete
        );
    }
    // Indexes that only back the primary key or a unique constraint are shown as those.
    let backs_constraint = |index: &cutover_db::schema::Index| {
        index.primary
            || (index.unique
                && table.unique_constraints.iter().any(|key| {
                    key.columns == index.columns
                        && key.name.as_deref().is_none_or(|name| name == index.name)
                }))
    };
    for index in table
        .indexes
        .iter()
        .filter(|index| !backs_constraint(index))
    {
        let unique = if index.unique { "unique " } else { "" };
        let _ = writeln!(
            out,
            "  {unique}index {} ({})",
            index.name,
            index.columns.join(", ")
        );
    }
}
