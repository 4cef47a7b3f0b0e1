//! The whole refresh into a SQLite target: everything is built in a staging
//! file beside the target, and one atomic rename replaces the target, so a
//! reader (or a crash) sees the old database or the complete new one, never a
//! half-way state. The old target (holding the preserved tables) stays intact
//! until that rename.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cutover_db::{
    ConnectOptions, Database, Engine, IntrospectOptions, LogicalType, Progress, ReadRequest,
    TableName, Value,
};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::mask::Masker;
use crate::policy::{Action, HookPoint, Policy};
use crate::sql::text_column;

/// What happened to one table.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TableOutcome {
    /// The table.
    pub table: String,
    /// `copy`, `skip` or `preserve`; for a table only the target had,
    /// `preserve` or `drop` (the policy's `[drift]`).
    pub action: &'static str,
    /// Rows written to the target's table.
    pub rows: u64,
    /// For a preserved table: its fingerprint before and after the refresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preserved: Option<crate::fingerprint::Preserved>,
    /// For a copied table: the columns a rule other than `keep` changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub masked: Vec<String>,
}

/// What a refresh did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RefreshOutcome {
    /// Per table, referenced tables first.
    pub tables: Vec<TableOutcome>,
    /// The policy's hooks that ran, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<crate::hooks::HookOutcome>,
    /// What a resumed PostgreSQL refresh kept from the killed run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed: Option<crate::pg_resume::Resumed>,
}

/// Where a SQLite refresh's hooks run: SQL on `database`, commands told its file.
fn hook_place<'a>(database: Option<&'a Database>, path: &Path) -> crate::hooks::HookPlace<'a> {
    crate::hooks::HookPlace {
        database,
        env: vec![("CUTOVER_TARGET", path.display().to_string())],
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The source's own definitions (tables, then indexes, views, triggers), for a SQLite source.
async fn sqlite_definitions(source: &Database) -> Result<Vec<(String, String)>> {
    definitions(
        source,
        "SELECT type, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' \
         ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 WHEN 'view' THEN 2 ELSE 3 END, rowid",
        "the source schema",
    )
    .await
}

/// The definitions (table first, then its indexes and triggers) of one
/// table of a SQLite database.
async fn object_definitions(database: &Database, table: &str) -> Result<Vec<(String, String)>> {
    let sql = format!(
        "SELECT type, sql FROM sqlite_master WHERE sql IS NOT NULL AND tbl_name = {} \
         ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, rowid",
        crate::sql::literal(table)
    );
    definitions(database, &sql, "the target's own table").await
}

/// Copies a kept table's `columns` from the old target into the staging
/// file, fingerprinted (over `fingerprinted`) before and after.
async fn carry_over(
    database: &Database,
    staged: &Database,
    name: &TableName,
    columns: &[String],
    fingerprinted: &[String],
) -> Result<crate::fingerprint::Preserved> {
    let before = crate::fingerprint::table(database, name, fingerprinted).await?;
    let rows = database
        .read(
            &ReadRequest::table(name.clone())
                .columns(columns.to_vec())
                .unordered(),
        )
        .await?;
    staged.write(name, columns, rows).await?;
    let after = crate::fingerprint::table(staged, name, fingerprinted).await?;
    Ok(crate::fingerprint::Preserved {
        before,
        after,
        changed_by_hooks: false,
    })
}

/// (type, sql) pairs read from `sqlite_master` by `sql`.
async fn definitions(
    database: &Database,
    sql: &str,
    context: &str,
) -> Result<Vec<(String, String)>> {
    let mut rows = database
        .query(sql, vec![text_column("type"), text_column("sql")], context)
        .await?;
    let mut definitions = Vec::new();
    while let Some(row) = rows.next().await {
        let row = row?;
        let text = |index: usize| match row.get(index) {
            Some(Value::Text(text)) => text.clone(),
            _ => String::new(),
        };
        definitions.push((text(0), text(1)));
    }
    Ok(definitions)
}

/// SQLite's declared type for a logical type: one that reads back as the same
/// logical type (`DECIMAL TEXT` keeps exact decimals as text).
fn sqlite_type(logical: Option<LogicalType>) -> &'static str {
    match logical {
        Some(LogicalType::Bool) => "BOOLEAN",
        Some(LogicalType::Integer) => "INTEGER",
        Some(LogicalType::Numeric) => "DECIMAL TEXT",
        Some(LogicalType::Float) => "REAL",
        Some(LogicalType::Bytes) => "BLOB",
        Some(LogicalType::Date) => "DATE",
        Some(LogicalType::Time) => "TIME",
        Some(LogicalType::Timestamp) => "TIMESTAMP",
        Some(LogicalType::TimestampTz) => "TIMESTAMPTZ",
        Some(LogicalType::Interval) => "INTERVAL",
        Some(LogicalType::Uuid) => "UUID",
        Some(LogicalType::Json) => "JSON",
        Some(LogicalType::Array) => "TEXT[]",
        Some(LogicalType::Text) | None => "TEXT",
    }
}

/// Tables (columns, NOT NULL, keys, foreign keys) and plain-column indexes of
/// another engine's schema, as SQLite definitions. Views, functions and
/// triggers are the other engine's SQL and are not translated.
fn translated_definitions(schema: &cutover_db::Schema) -> Vec<(String, String)> {
    use cutover_db::schema::quote_identifier as quote;
    let list = crate::sql::column_list;
    let mut definitions = Vec::new();
    for table in &schema.tables {
        let mut parts: Vec<String> = table
            .columns
            .iter()
            .map(|column| {
                let not_null = if column.nullable { "" } else { " NOT NULL" };
                let logical = crate::transform::copied_logical_type(column);
                format!("{} {}{not_null}", quote(&column.name), sqlite_type(logical))
            })
            .collect();
        if let Some(key) = &table.primary_key {
            parts.push(format!("PRIMARY KEY ({})", list(&key.columns)));
        }
        for unique in &table.unique_constraints {
            parts.push(format!("UNIQUE ({})", list(&unique.columns)));
        }
        for foreign_key in &table.foreign_keys {
            parts.push(format!(
                "FOREIGN KEY ({}) REFERENCES {} ({})",
                list(&foreign_key.columns),
                quote(&foreign_key.referenced_table.name),
                list(&foreign_key.referenced_columns)
            ));
        }
        definitions.push((
            "table".to_owned(),
            format!(
                "CREATE TABLE {} ({})",
                quote(&table.name.name),
                parts.join(", ")
            ),
        ));
        for index in &table.indexes {
            let plain = index
                .columns
                .iter()
                .all(|column| table.column(column).is_some());
            if index.primary || !plain {
                continue;
            }
            let unique = if index.unique { "UNIQUE " } else { "" };
            definitions.push((
                "index".to_owned(),
                format!(
                    "CREATE {unique}INDEX {} ON {} ({})",
                    quote(&index.name),
                    quote(&table.name.name),
                    list(&index.columns)
                ),
            ));
        }
    }
    definitions
}

/// The staging file for `target`.
pub fn staging_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".cutover-staging");
    PathBuf::from(name)
}

/// Refreshes the SQLite file `target` from the SQLite `source` under
/// `policy` (which the caller has checked). Returns per-table counts.
pub async fn refresh_sqlite(
    source: &Database,
    target: &Path,
    policy: &Policy,
    masker: Arc<Masker>,
    progress: Arc<dyn Progress>,
) -> Result<RefreshOutcome> {
    let mut wal = target.as_os_str().to_owned();
    wal.push("-wal");
    if std::fs::metadata(&wal).is_ok_and(|metadata| metadata.len() > 0) {
        return Err(Error::Unsupported(format!(
            "{} is open in WAL mode with unwritten changes: close its users (or checkpoint it) first",
            target.display()
        )));
    }
    let schema = source.introspect(&IntrospectOptions::default()).await?;
    let definitions = if source.engine() == Engine::Sqlite {
        sqlite_definitions(source).await?
    } else {
        translated_definitions(&schema)
    };
    // Subsetting follows the policy's declared references; no constraint is made of them.
    let schema = crate::subset::with_declared_references(policy, &schema);

    let staging = staging_path(target);
    for leftover in [
        staging.clone(),
        PathBuf::from(format!("{}-journal", staging.display())),
    ] {
        if leftover.exists() {
            std::fs::remove_file(&leftover).map_err(io(&leftover))?;
        }
    }
    let create = ConnectOptions {
        create_sqlite: true,
        ..ConnectOptions::default()
    };
    // References are checked once everything is loaded: tables that
    // reference each other in a cycle cannot be loaded one after the other.
    let unchecked = ConnectOptions {
        sqlite_unchecked_references: true,
        ..create.clone()
    };
    let staged =
        Database::connect_str(&format!("sqlite:{}", staging.display()), &unchecked).await?;
    for (kind, sql) in &definitions {
        if kind == "table" {
            staged.execute_batch(sql).await?;
        }
    }
    let previous = if target.exists() {
        let read_only = ConnectOptions {
            read_only: true,
            ..ConnectOptions::default()
        };
        Some(Database::connect_str(&format!("sqlite:{}", target.display()), &read_only).await?)
    } else {
        None
    };
    let previous_schema = match &previous {
        Some(database) => Some(database.introspect(&IntrospectOptions::default()).await?),
        None => None,
    };

    // The target's own tables and columns must each be decided.
    let drift = match &previous_schema {
        Some(previous_schema) => crate::check::drift(policy, &schema, previous_schema),
        None => crate::check::Drift::default(),
    };
    if let Some(problem) = drift.problems.first() {
        return Err(Error::Unsupported(format!(
            "{problem}; nothing was changed"
        )));
    }
    let mut hooks = Vec::new();
    if policy
        .hooks
        .iter()
        .any(|hook| hook.when == HookPoint::BeforeCopy)
    {
        let writable = match target.exists() {
            true => Some(
                Database::connect_str(
                    &format!("sqlite:{}", target.display()),
                    &ConnectOptions::default(),
                )
                .await?,
            ),
            false => None,
        };
        crate::hooks::run_hooks(
            policy,
            HookPoint::BeforeCopy,
            &hook_place(writable.as_ref(), target),
            &mut hooks,
        )
        .await?;
    }

    progress.phase(
        "copy",
        Some(crate::subset::copied_rows_estimate(policy, &schema)),
    );
    let mut outcome = RefreshOutcome {
        tables: Vec::new(),
        hooks,
        resumed: None,
    };
    // Preserved tables' fingerprinted columns, taken again after the after-load hooks.
    let mut fingerprinted_tables: Vec<(usize, TableName, Vec<String>)> = Vec::new();
    for table in crate::subset::load_order(&schema) {
        let key = crate::check::table_key(table);
        let action = crate::check::policy_table(policy, table)
            .map(|table_policy| table_policy.action)
            .ok_or_else(|| {
                Error::Unsupported(format!(
                    "table {key} is not in the policy: run --check first"
                ))
            })?;
        let name = TableName::new(table.name.name.clone());
        let mut preserved = None;
        let rows = match action {
            Action::Copy => match crate::subset::copy_plan(policy, &schema, table) {
                Some(copy) => {
                    copy.copy_with_progress(
                        source,
                        &staged,
                        &name,
                        masker.clone(),
                        progress.clone(),
                    )
                    .await?
                }
                None => 0,
            },
            Action::Skip => 0,
            Action::Preserve => {
                let kept = previous_schema
                    .as_ref()
                    .and_then(|schema| schema.table(&name));
                match (&previous, kept) {
                    (Some(database), Some(kept)) => {
                        let kept_names = kept.column_names();
                        let columns: Vec<String> = table
                            .column_names()
                            .into_iter()
                            .filter(|column| kept_names.contains(column))
                            .collect();
                        let fingerprinted = crate::verify::fingerprint_columns(table, &kept_names);
                        let kept =
                            carry_over(database, &staged, &name, &columns, &fingerprinted).await?;
                        fingerprinted_tables.push((
                            outcome.tables.len(),
                            name.clone(),
                            fingerprinted,
                        ));
                        preserved = Some(kept);
                        kept.after.rows
                    }
                    _ => 0,
                }
            }
        };
        outcome.tables.push(TableOutcome {
            table: key,
            action: action.name(),
            rows,
            preserved,
            masked: crate::subset::masked_columns(policy, table),
        });
    }

    let dangling = crate::sql::count(
        &staged,
        "SELECT count(*) FROM pragma_foreign_key_check",
        "the staged references",
    )
    .await?;
    if dangling > 0 {
        return Err(Error::Unsupported(format!(
            "{dangling} references in the staged tables point at rows that are not there; the target is unchanged\nhint: a preserved table may reference rows the policy removed"
        )));
    }
    progress.phase("indexes", None);
    for (kind, sql) in &definitions {
        if kind != "table" {
            staged.execute_batch(sql).await?;
        }
    }
    // The target's own tables the policy preserves, with their own
    // definitions, indexes and triggers; those it drops are left behind.
    if let (Some(database), Some(previous_schema)) = (&previous, &previous_schema) {
        for key in &drift.preserved_tables {
            let name = TableName::new(key.clone());
            let Some(table) = previous_schema.table(&name) else {
                continue;
            };
            let own = object_definitions(database, &table.name.name).await?;
            for (_, sql) in own.iter().filter(|(kind, _)| kind == "table") {
                staged.execute_batch(sql).await?;
            }
            let columns = table.column_names();
            let fingerprinted = crate::verify::fingerprint_columns(table, &columns);
            let kept = carry_over(database, &staged, &name, &columns, &fingerprinted).await?;
            fingerprinted_tables.push((outcome.tables.len(), name.clone(), fingerprinted));
            for (_, sql) in own.iter().filter(|(kind, _)| kind != "table") {
                staged.execute_batch(sql).await?;
            }
            outcome.tables.push(TableOutcome {
                table: key.clone(),
                action: "preserve",
                rows: kept.after.rows,
                preserved: Some(kept),
                masked: Vec::new(),
            });
        }
        for key in &drift.dropped_tables {
            outcome.tables.push(TableOutcome {
                table: key.clone(),
                action: "drop",
                rows: 0,
                preserved: None,
                masked: Vec::new(),
            });
        }
    }
    crate::hooks::run_hooks(
        policy,
        HookPoint::AfterLoad,
        &hook_place(Some(&staged), &staging),
        &mut outcome.hooks,
    )
    .await?;
    if outcome
        .hooks
        .iter()
        .any(|hook| hook.when == HookPoint::AfterLoad.name())
    {
        for (index, name, columns) in &fingerprinted_tables {
            let now = crate::fingerprint::table(&staged, name, columns).await?;
            crate::fingerprint::after_hooks(&mut outcome.tables[*index], now);
        }
    }
    drop(staged);
    drop(previous);
    std::fs::File::open(&staging)
        .and_then(|file| file.sync_all())
        .map_err(io(&staging))?;
    // The swap: one rename, atomic on POSIX file systems.
    std::fs::rename(&staging, target).map_err(io(target))?;
    if let Some(directory) = target
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::File::open(directory)
            .and_then(|file| file.sync_all())
            .map_err(io(directory))?;
    }
    if policy
        .hooks
        .iter()
        .any(|hook| hook.when == HookPoint::AfterSwap)
    {
        let refreshed = Database::connect_str(
            &format!("sqlite:{}", target.display()),
            &ConnectOptions::default(),
        )
        .await?;
        crate::hooks::run_hooks(
            policy,
            HookPoint::AfterSwap,
            &hook_place(Some(&refreshed), target),
            &mut outcome.hooks,
        )
        .await?;
    }
    Ok(outcome)
}
