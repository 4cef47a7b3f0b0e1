//! The whole refresh into a PostgreSQL target. Everything is built in a
//! staging schema of the target database (`cutover_staging_<schema>`):
//! types, sequences and functions, then the tables, loaded with binary COPY
//! (in parallel with `jobs`), then constraints, sequence positions, views,
//! indexes and triggers, then the target's own grants and owners. The swap is
//! one transaction that moves the live objects out and the staged ones in and
//! drops the old ones, so a reader sees the old data or the complete new data,
//! never a half-way state; a crash before the commit leaves the target as it was.
//!
//! The source is read in one REPEATABLE READ snapshot, shared by every job.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use cutover_db::schema::quote_identifier as quote;
use cutover_db::{
    ConnectOptions, Database, DatabaseUrl, Engine, IntrospectOptions, LogicalType, Progress,
    TableName,
};

use crate::error::{Error, Result};
use crate::mask::Masker;
use crate::policy::{Action, Policy};
use crate::sql::{first_column, literal, texts};
use crate::sqlite_refresh::{RefreshOutcome, TableOutcome};
use crate::transform::TableCopy;

/// Where and how to refresh a PostgreSQL target.
#[derive(Debug, Clone)]
pub struct PostgresRefresh {
    /// The production database (opened read-only).
    pub source: DatabaseUrl,
    /// The PostgreSQL database to refresh.
    pub target: DatabaseUrl,
    /// Connection settings for both (TLS, passwords).
    pub connect: ConnectOptions,
    /// Tables copied at once, each over its own pair of connections.
    pub jobs: usize,
    /// The target's schema when the source is SQLite (default `public`).
    pub target_schema: Option<String>,
}

/// The DDL of one schema, in the order it is applied.
#[derive(Debug, Default)]
struct Definitions {
    /// Types, sequences, functions and tables (no constraints), before the data.
    before: Vec<String>,
    /// Constraints and sequence ownership, after the data.
    constraints: Vec<String>,
    /// Views, indexes and triggers, last.
    after: Vec<String>,
    /// Generated columns, per table: never written.
    generated: Vec<(String, String)>,
}

const NOT_EXTENSION: &str =
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = {oid} AND d.deptype = 'e')";

fn not_extension(oid: &str) -> String {
    NOT_EXTENSION.replace("{oid}", oid)
}

/// Reads the definitions of `schema` from a PostgreSQL source, with names in
/// that schema unqualified so they can be created in the staging schema.
async fn postgres_definitions(source: &Database, schema: &str) -> Result<Definitions> {
    source
        .execute_batch(&format!("SET search_path = {}", quote(schema)))
        .await?;
    let namespace = format!(
        "(SELECT oid FROM pg_namespace WHERE nspname = {})",
        literal(schema)
    );
    let unsupported = first_column(
        source,
        &format!(
            "SELECT CASE c.relkind WHEN 'p' THEN 'partitioned table ' WHEN 'f' THEN 'foreign table ' \
               ELSE 'composite type ' END || quote_ident(c.relname) FROM pg_class c \
             WHERE c.relnamespace = {namespace} AND c.relkind IN ('p', 'f', 'c') AND {} \
             UNION ALL SELECT 'domain ' || quote_ident(t.typname) FROM pg_type t \
             WHERE t.typnamespace = {namespace} AND t.typtype = 'd' AND {} ORDER BY 1",
            not_extension("c.oid"),
            not_extension("t.oid")
        ),
        "the source's object kinds",
    )
    .await?;
    if !unsupported.is_empty() {
        return Err(Error::Unsupported(format!(
            "refreshing a PostgreSQL target does not handle these objects of schema {schema} yet: {}",
            unsupported.join(", ")
        )));
    }
    let mut definitions = Definitions::default();
    definitions.before.extend(
        first_column(
            source,
            &format!(
                "SELECT format('CREATE TYPE %I AS ENUM (%s)', t.typname, \
                   (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder) \
                    FROM pg_enum e WHERE e.enumtypid = t.oid)) \
                 FROM pg_type t WHERE t.typnamespace = {namespace} AND t.typtype = 'e' AND {} ORDER BY t.oid",
                not_extension("t.oid")
            ),
            "the source's enum types",
        )
        .await?,
    );
    // Sequences, except identity columns' (their column creates them).
    definitions.before.extend(
        first_column(
            source,
            &format!(
                "SELECT format('CREATE SEQUENCE %I AS %s INCREMENT BY %s MINVALUE %s MAXVALUE %s START WITH %s CACHE %s%s', \
                   c.relname, format_type(s.seqtypid, NULL), s.seqincrement, s.seqmin, s.seqmax, s.seqstart, \
                   s.seqcache, CASE WHEN s.seqcycle THEN ' CYCLE' ELSE '' END) \
                 FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid \
                 WHERE c.relnamespace = {namespace} AND {} \
                   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'i') \
                 ORDER BY c.oid",
                not_extension("c.oid")
            ),
            "the source's sequences",
        )
        .await?,
    );
    // As the server's own definitions print it (quote_ident quotes only when needed).
    let qualified_prefix = format!(
        "{}.",
        first_column(
            source,
            &format!("SELECT quote_ident({})", literal(schema)),
            "the schema name"
        )
        .await?
        .concat()
    );
    for definition in first_column(
        source,
        &format!(
            "SELECT pg_get_functiondef(p.oid) FROM pg_proc p \
             WHERE p.pronamespace = {namespace} AND p.prokind IN ('f', 'p') AND {} ORDER BY p.oid",
            not_extension("p.oid")
        ),
        "the source's functions",
    )
    .await?
    {
        let unqualified = definition
            .replacen(&format!("FUNCTION {qualified_prefix}"), "FUNCTION ", 1)
            .replacen(&format!("PROCEDURE {qualified_prefix}"), "PROCEDURE ", 1);
        // Never let a definition name the live schema: it would change the target before the swap.
        if unqualified == definition {
            return Err(Error::Unsupported(format!(
                "could not read a function's definition in schema {schema} as an unqualified one"
            )));
        }
        definitions.before.push(unqualified);
    }
    definitions.before.extend(
        first_column(
            source,
            &format!(
                "SELECT format('CREATE TABLE %I (%s)', c.relname, string_agg(format('%I %s%s%s%s', \
                   a.attname, format_type(a.atttypid, a.atttypmod), \
                   (SELECT ' COLLATE ' || quote_ident(cn.nspname) || '.' || quote_ident(co.collname) \
                      FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace \
                      WHERE co.oid = a.attcollation AND a.attcollation <> t.typcollation), \
                   CASE a.attidentity WHEN 'a' THEN ' GENERATED ALWAYS AS IDENTITY' \
                     WHEN 'd' THEN ' GENERATED BY DEFAULT AS IDENTITY' ELSE '' END, \
                   CASE WHEN a.attgenerated = 's' THEN ' GENERATED ALWAYS AS (' || pg_get_expr(ad.adbin, ad.adrelid) || ') STORED' \
                     WHEN ad.adbin IS NOT NULL THEN ' DEFAULT ' || pg_get_expr(ad.adbin, ad.adrelid) ELSE '' END, \
                   CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END), ', ' ORDER BY a.attnum)) \
                 FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                 JOIN pg_type t ON t.oid = a.atttypid \
                 LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum \
                 WHERE c.relnamespace = {namespace} AND c.relkind = 'r' AND {} GROUP BY c.oid, c.relname ORDER BY c.oid",
                not_extension("c.oid")
            ),
            "the source's tables",
        )
        .await?,
    );
    definitions.generated = texts(
        source,
        &format!(
            "SELECT c.relname, a.attname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid \
             WHERE c.relnamespace = {namespace} AND c.relkind = 'r' AND a.attgenerated = 's' AND NOT a.attisdropped"
        ),
        2,
        "the source's generated columns",
    )
    .await?
    .into_iter()
    .map(|row| (row[0].clone(), row[1].clone()))
    .collect();
    definitions.constraints.extend(
        first_column(
            source,
            &format!(
                "SELECT format('ALTER TABLE %I ADD CONSTRAINT %I %s', c.relname, con.conname, pg_get_constraintdef(con.oid)) \
                 FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid \
                 WHERE c.relnamespace = {namespace} AND c.relkind = 'r' AND con.contype IN ('p', 'u', 'x', 'c', 'f') AND {} \
                 ORDER BY CASE con.contype WHEN 'p' THEN 0 WHEN 'u' THEN 1 WHEN 'x' THEN 2 WHEN 'c' THEN 3 ELSE 4 END, con.oid",
                not_extension("c.oid")
            ),
            "the source's constraints",
        )
        .await?,
    );
    definitions.constraints.extend(
        first_column(
            source,
            &format!(
                "SELECT format('ALTER SEQUENCE %I OWNED BY %I.%I', s.relname, t.relname, a.attname) \
                 FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
                 JOIN pg_class t ON t.oid = d.refobjid \
                 JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid \
                 WHERE d.deptype = 'a' AND d.classid = 'pg_class'::regclass AND s.relnamespace = {namespace} \
                   AND t.relnamespace = {namespace}"
            ),
            "the source's sequence owners",
        )
        .await?,
    );
    definitions.after.extend(
        first_column(
            source,
            &format!(
                "SELECT format('CREATE %sVIEW %I AS %s', CASE WHEN c.relkind = 'm' THEN 'MATERIALIZED ' ELSE '' END, \
                   c.relname, rtrim(pg_get_viewdef(c.oid), ';')) \
                 FROM pg_class c WHERE c.relnamespace = {namespace} AND c.relkind IN ('v', 'm') AND {} ORDER BY c.oid",
                not_extension("c.oid")
            ),
            "the source's views",
        )
        .await?,
    );
    definitions.after.extend(
        first_column(
            source,
            &format!(
                "SELECT format('CREATE %sINDEX %I ON %I USING %s', CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END, \
                   ic.relname, c.relname, substring(pg_get_indexdef(i.indexrelid) from ' USING (.*)$')) \
                 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid \
                 WHERE c.relnamespace = {namespace} AND c.relkind IN ('r', 'm') AND {} \
                   AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid \
                     AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x')) \
                 ORDER BY i.indexrelid",
                not_extension("c.oid")
            ),
            "the source's indexes",
        )
        .await?,
    );
    for definition in first_column(
        source,
        &format!(
            "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
             WHERE c.relnamespace = {namespace} AND NOT t.tgisinternal AND {} ORDER BY t.oid",
            not_extension("c.oid")
        ),
        "the source's triggers",
    )
    .await?
    {
        let unqualified = definition
            .replacen(&format!(" ON {qualified_prefix}"), " ON ", 1)
            .replacen(
                &format!("EXECUTE FUNCTION {qualified_prefix}"),
                "EXECUTE FUNCTION ",
                1,
            );
        if unqualified == definition {
            return Err(Error::Unsupported(format!(
                "could not read a trigger's definition in schema {schema} as an unqualified one"
            )));
        }
        definitions.after.push(unqualified);
    }
    source.execute_batch("RESET search_path").await?;
    Ok(definitions)
}

/// PostgreSQL's type for a logical type read from another engine.
fn postgres_type(logical: Option<LogicalType>) -> &'static str {
    match logical {
        Some(LogicalType::Bool) => "boolean",
        Some(LogicalType::Integer) => "bigint",
        Some(LogicalType::Numeric) => "numeric",
        Some(LogicalType::Float) => "double precision",
        Some(LogicalType::Bytes) => "bytea",
        Some(LogicalType::Date) => "date",
        Some(LogicalType::Time) => "time",
        Some(LogicalType::Timestamp) => "timestamp",
        Some(LogicalType::TimestampTz) => "timestamptz",
        Some(LogicalType::Interval) => "interval",
        Some(LogicalType::Uuid) => "uuid",
        Some(LogicalType::Json) => "jsonb",
        Some(LogicalType::Array) | Some(LogicalType::Text) | None => "text",
    }
}

/// Tables, keys, foreign keys and plain indexes of a SQLite source, as
/// PostgreSQL definitions. SQLite's views and triggers are not translated.
fn translated_definitions(schema: &cutover_db::Schema) -> Definitions {
    let list = crate::sql::column_list;
    let mut definitions = Definitions::default();
    for table in &schema.tables {
        let name = quote(&table.name.name);
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|column| {
                let not_null = if column.nullable { "" } else { " NOT NULL" };
                format!(
                    "{} {}{not_null}",
                    quote(&column.name),
                    postgres_type(column.logical_type)
                )
            })
            .collect();
        definitions
            .before
            .push(format!("CREATE TABLE {name} ({})", columns.join(", ")));
        if let Some(key) = &table.primary_key {
            definitions.constraints.push(format!(
                "ALTER TABLE {name} ADD PRIMARY KEY ({})",
                list(&key.columns)
            ));
        }
        for unique in &table.unique_constraints {
            definitions.constraints.push(format!(
                "ALTER TABLE {name} ADD UNIQUE ({})",
                list(&unique.columns)
            ));
        }
        for index in &table.indexes {
            let plain = index
                .columns
                .iter()
                .all(|column| table.column(column).is_some());
            if index.primary || !plain {
                continue;
            }
            let unique = if index.unique { "UNIQUE " } else { "" };
            definitions.after.push(format!(
                "CREATE {unique}INDEX {} ON {name} ({})",
                quote(&index.name),
                list(&index.columns)
            ));
        }
    }
    // Foreign keys after every key they may reference.
    for table in &schema.tables {
        for foreign_key in &table.foreign_keys {
            definitions.constraints.push(format!(
                "ALTER TABLE {} ADD FOREIGN KEY ({}) REFERENCES {} ({})",
                quote(&table.name.name),
                list(&foreign_key.columns),
                quote(&foreign_key.referenced_table.name),
                list(&foreign_key.referenced_columns)
            ));
        }
    }
    definitions
}

/// What a job does with one table.
#[derive(Debug, Clone)]
enum Work {
    Copy(Box<TableCopy>, Vec<String>),
    Skip,
    Preserve(Vec<String>),
}

/// The staging schema for `live` (PostgreSQL names are at most 63 bytes).
pub fn staging_schema(live: &str) -> String {
    let mut name = format!("cutover_staging_{live}");
    while name.len() > 63 {
        name.pop();
    }
    name
}

fn retired_schema(live: &str) -> String {
    let mut name = format!("cutover_retired_{live}");
    while name.len() > 63 {
        name.pop();
    }
    name
}

/// Refreshes a PostgreSQL target from `settings.source` under `policy`
/// (which the caller has checked).
pub async fn refresh_postgres(
    settings: &PostgresRefresh,
    policy: &Policy,
    masker: Arc<Masker>,
    progress: Arc<dyn Progress>,
) -> Result<RefreshOutcome> {
    let read_only = ConnectOptions {
        read_only: true,
        ..settings.connect.clone()
    };
    let source = Database::connect(&settings.source, &read_only).await?;
    let snapshot = if source.engine() == Engine::Postgres {
        source
            .execute_batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        first_column(
            &source,
            "SELECT pg_export_snapshot()",
            "the source snapshot",
        )
        .await?
        .into_iter()
        .next()
    } else {
        None
    };
    let schema = source.introspect(&IntrospectOptions::default()).await?;
    let mut schemas: Vec<String> = schema
        .tables
        .iter()
        .filter_map(|table| table.name.schema.clone())
        .collect();
    schemas.sort();
    schemas.dedup();
    let live = match (source.engine(), schemas.as_slice()) {
        (Engine::Sqlite, _) => settings
            .target_schema
            .clone()
            .unwrap_or_else(|| "public".to_owned()),
        (_, [only]) => only.clone(),
        (_, []) => return Err(Error::Unsupported("the source has no tables".into())),
        (_, several) => {
            return Err(Error::Unsupported(format!(
                "the source has tables in several schemas ({}): a PostgreSQL target is refreshed one schema at a time in this version",
                several.join(", ")
            )));
        }
    };
    let definitions = match source.engine() {
        Engine::Postgres => postgres_definitions(&source, &live).await?,
        Engine::Sqlite => translated_definitions(&schema),
        Engine::Spark => {
            return Err(Error::Unsupported(
                "a refresh reads from PostgreSQL or SQLite, not from Spark".into(),
            ));
        }
    };

    let target = Database::connect(&settings.target, &settings.connect).await?;
    // One refresh per schema at a time. A killed run's server session may
    // hold the lock until the server notices its client is gone: wait a while.
    let locked = target
        .execute_batch(&format!(
            "SET lock_timeout = '60s'; SELECT pg_advisory_lock(hashtext({})); RESET lock_timeout",
            literal(&format!("cutover refresh {live}"))
        ))
        .await;
    if locked.is_err() {
        return Err(Error::Unsupported(format!(
            "another refresh of schema {live} is running on {} (waited 60 s for it)",
            settings.target.redacted()
        )));
    }
    // The target's own tables and columns must each be decided before
    // anything moves.
    let mut live_schema = target.introspect(&IntrospectOptions::default()).await?;
    live_schema
        .tables
        .retain(|table| table.name.schema.as_deref() == Some(live.as_str()));
    let drift = crate::check::drift(policy, &schema, &live_schema);
    if let Some(problem) = drift.problems.first() {
        return Err(Error::Unsupported(format!(
            "{problem}; nothing was changed"
        )));
    }
    let stage = staging_schema(&live);
    target
        .execute_batch(&format!(
            "DROP SCHEMA IF EXISTS {stage} CASCADE; CREATE SCHEMA {stage}; \
             SET search_path = {stage}, {live}; SET check_function_bodies = off",
            stage = quote(&stage),
            live = quote(&live)
        ))
        .await?;
    let result = build_and_swap(
        settings,
        policy,
        masker,
        progress,
        &source,
        snapshot,
        &schema,
        &definitions,
        &target,
        (&live, &stage),
        (&drift, &live_schema),
    )
    .await;
    if result.is_err() {
        // Best effort: the live schema was never touched; drop what was staged.
        let _ = target.execute_batch("ROLLBACK").await;
        let _ = target
            .execute_batch(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quote(&stage)))
            .await;
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn build_and_swap(
    settings: &PostgresRefresh,
    policy: &Policy,
    masker: Arc<Masker>,
    progress: Arc<dyn Progress>,
    source: &Database,
    snapshot: Option<String>,
    schema: &cutover_db::Schema,
    definitions: &Definitions,
    target: &Database,
    (live, stage): (&str, &str),
    (drift, live_schema): (&crate::check::Drift, &cutover_db::Schema),
) -> Result<RefreshOutcome> {
    for sql in &definitions.before {
        target.execute_batch(sql).await?;
    }
    let live_tables: Vec<String> = first_column(
        target,
        &format!(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = {} AND c.relkind = 'r'",
            literal(live)
        ),
        "the target's tables",
    )
    .await?;

    // Plan every table.
    let mut outcome = RefreshOutcome { tables: Vec::new() };
    let mut queue = VecDeque::new();
    for table in crate::subset::load_order(schema) {
        let key = crate::check::table_key(table);
        let action = crate::check::policy_table(policy, table)
            .map(|table_policy| table_policy.action)
            .ok_or_else(|| {
                Error::Unsupported(format!(
                    "table {key} is not in the policy: run --check first"
                ))
            })?;
        let generated: Vec<&str> = definitions
            .generated
            .iter()
            .filter(|(table_name, _)| *table_name == table.name.name)
            .map(|(_, column)| column.as_str())
            .collect();
        let written: Vec<String> = table
            .columns
            .iter()
            .map(|column| column.name.clone())
            .filter(|column| !generated.contains(&column.as_str()))
            .collect();
        let work = match action {
            Action::Copy => match crate::subset::copy_plan(policy, schema, table) {
                Some(copy) => Work::Copy(Box::new(copy), written),
                None => Work::Skip,
            },
            Action::Skip => Work::Skip,
            Action::Preserve => Work::Preserve(written),
        };
        outcome.tables.push(TableOutcome {
            table: key,
            action: action.name(),
            rows: 0,
            preserved: None,
            masked: crate::subset::masked_columns(policy, table),
        });
        queue.push_back((outcome.tables.len() - 1, table.clone(), work));
    }

    // Preserved tables: copied inside the target, from the live table.
    let mut copies = VecDeque::new();
    for (index, table, work) in queue {
        match work {
            Work::Preserve(columns) => {
                if !live_tables.contains(&table.name.name) {
                    continue;
                }
                let live_columns: Vec<String> = first_column(
                    target,
                    &format!(
                        "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = '{}.{}'::regclass \
                         AND a.attnum > 0 AND NOT a.attisdropped",
                        quote(live).replace('\'', "''"),
                        quote(&table.name.name).replace('\'', "''")
                    ),
                    "a preserved table's columns",
                )
                .await?;
                let common: Vec<String> = columns
                    .iter()
                    .filter(|column| live_columns.contains(column))
                    .map(|column| quote(column))
                    .collect();
                let name = quote(&table.name.name);
                let fingerprinted = crate::verify::fingerprint_columns(&table, &live_columns);
                let before = crate::fingerprint::table(
                    target,
                    &TableName::qualified(live, &table.name.name),
                    &fingerprinted,
                )
                .await?;
                target
                    .execute_batch(&format!(
                        "INSERT INTO {}.{name} ({list}) SELECT {list} FROM {}.{name}",
                        quote(stage),
                        quote(live),
                        list = common.join(", ")
                    ))
                    .await?;
                let after = crate::fingerprint::table(
                    target,
                    &TableName::qualified(stage, &table.name.name),
                    &fingerprinted,
                )
                .await?;
                outcome.tables[index].rows = after.rows;
                outcome.tables[index].preserved =
                    Some(crate::fingerprint::Preserved { before, after });
            }
            Work::Copy(copy, columns) => copies.push_back((index, copy, columns)),
            Work::Skip => {}
        }
    }

    // Large-object columns of copied tables hold the content (bytea) while
    // loading; each value becomes a new large object of the target afterwards.
    let mut large_objects = Vec::new();
    for (_, copy, _) in &copies {
        for (column, source_column) in copy.table.columns.iter().zip(
            schema
                .tables
                .iter()
                .find(|table| table.name == copy.table.name)
                .map(|table| table.columns.clone())
                .unwrap_or_default(),
        ) {
            if crate::transform::is_large_object(&source_column) {
                let table = format!("{}.{}", quote(stage), quote(&copy.table.name.name));
                let name = quote(&column.name);
                target
                    .execute_batch(&format!(
                        "ALTER TABLE {table} ALTER COLUMN {name} TYPE bytea USING NULL"
                    ))
                    .await?;
                large_objects.push((
                    copy.table.name.name.clone(),
                    table,
                    name,
                    source_column.type_name,
                ));
            }
        }
    }

    // A large table with an integer key is split into key ranges, one per
    // job, so its masking runs on every core.
    let copies = split_large_tables(source, schema, copies, settings.jobs.max(1)).await?;

    // Copies, over `jobs` pairs of connections sharing the source snapshot.
    progress.phase(
        "copy",
        Some(crate::subset::copied_rows_estimate(policy, schema)),
    );
    let jobs = settings.jobs.max(1).min(copies.len().max(1));
    let queue = Arc::new(Mutex::new(copies));
    let mut workers = Vec::new();
    for _ in 0..jobs {
        let queue = queue.clone();
        let settings = settings.clone();
        let masker = masker.clone();
        let snapshot = snapshot.clone();
        let stage = stage.to_owned();
        let progress = progress.clone();
        workers.push(tokio::spawn(async move {
            copy_worker(&settings, snapshot, &stage, masker, progress, queue).await
        }));
    }
    for worker in workers {
        let counts = worker
            .await
            .map_err(|error| Error::Unsupported(format!("a copy job stopped: {error}")))??;
        for (index, rows) in counts {
            outcome.tables[index].rows += rows;
        }
    }
    drop(source.execute_batch("COMMIT").await);

    for (_, table, name, type_name) in &large_objects {
        target
            .execute_batch(&format!(
                "ALTER TABLE {table} ALTER COLUMN {name} TYPE {type_name} \
                 USING CASE WHEN {name} IS NOT NULL THEN pg_catalog.lo_from_bytea(0, {name}) END"
            ))
            .await?;
    }
    progress.phase("keys", None);
    for sql in &definitions.constraints {
        target.execute_batch(sql).await.map_err(|error| {
            Error::Unsupported(format!(
                "{error}\nhint: the staged data does not satisfy the source's constraint `{}`; \
                 a preserved table may reference rows the policy removed",
                first_words(sql)
            ))
        })?;
    }
    set_sequences(target, schema, stage).await?;
    progress.phase("indexes", None);
    for sql in &definitions.after {
        target.execute_batch(sql).await?;
    }
    restore_privileges(target, live, stage).await?;
    target
        .execute_batch(&format!("ANALYZE {}", {
            let names: Vec<String> = outcome
                .tables
                .iter()
                .filter_map(|table| {
                    schema
                        .tables
                        .iter()
                        .find(|t| t.name.to_string() == table.table)
                })
                .map(|table| format!("{}.{}", quote(stage), quote(&table.name.name)))
                .collect();
            names.join(", ")
        }))
        .await?;
    progress.phase("swap", None);
    let replaced_large_objects: Vec<(String, String)> = large_objects
        .into_iter()
        .map(|(table, _, name, _)| (table, name))
        .collect();
    let dropped: Vec<String> = drift
        .dropped_tables
        .iter()
        .filter_map(|key| {
            live_schema
                .tables
                .iter()
                .find(|table| &table.name.to_string() == key)
        })
        .map(|table| table.name.name.clone())
        .collect();
    swap(target, (live, stage), &replaced_large_objects, &dropped).await?;
    for (keys, action) in [
        (&drift.preserved_tables, "preserve"),
        (&drift.dropped_tables, "drop"),
    ] {
        for key in keys {
            let rows = live_schema
                .tables
                .iter()
                .find(|table| &table.name.to_string() == key)
                .and_then(|table| table.row_count.or(table.row_estimate))
                .unwrap_or_default();
            outcome.tables.push(crate::sqlite_refresh::TableOutcome {
                table: key.clone(),
                action,
                rows,
                preserved: None,
                masked: Vec::new(),
            });
        }
    }
    Ok(outcome)
}

/// Tables with at least this many rows (by the source's estimate) are split.
const SPLIT_ABOVE_ROWS: u64 = 100_000;

/// Splits each large copied table with a single integer key into `jobs` key
/// ranges (read from the source's snapshot), each its own piece of work.
async fn split_large_tables(
    source: &Database,
    schema: &cutover_db::Schema,
    copies: VecDeque<(usize, Box<TableCopy>, Vec<String>)>,
    jobs: usize,
) -> Result<VecDeque<(usize, Box<TableCopy>, Vec<String>)>> {
    let mut split = VecDeque::new();
    for (index, copy, columns) in copies {
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
        let (Some(key), true) = (key, jobs > 1 && estimate >= SPLIT_ABOVE_ROWS) else {
            split.push_back((index, copy, columns));
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
            split.push_back((index, copy, columns));
            continue;
        };
        let step = (high - low) / jobs as i128 + 1;
        for part in 0..jobs as i128 {
            let from = low + part * step;
            let range = if part + 1 == jobs as i128 {
                format!("{name} >= {from}")
            } else {
                format!("{name} >= {from} AND {name} < {}", from + step)
            };
            let mut piece = copy.clone();
            piece.filter = Some(match &copy.filter {
                Some(filter) => format!("({filter}) AND {range}"),
                None => range,
            });
            split.push_back((index, piece, columns.clone()));
        }
    }
    Ok(split)
}

fn first_words(sql: &str) -> String {
    sql.chars().take(120).collect()
}

type CopyQueue = Arc<Mutex<VecDeque<(usize, Box<TableCopy>, Vec<String>)>>>;

async fn copy_worker(
    settings: &PostgresRefresh,
    snapshot: Option<String>,
    stage: &str,
    masker: Arc<Masker>,
    progress: Arc<dyn Progress>,
    queue: CopyQueue,
) -> Result<Vec<(usize, u64)>> {
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
    let mut counts = Vec::new();
    loop {
        let next = queue
            .lock()
            .map_err(|_| Error::Unsupported("a copy job failed".into()))?
            .pop_front();
        let Some((index, copy, columns)) = next else {
            break;
        };
        let mut copy = *copy;
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
        let name = TableName::qualified(stage, &copy.table.name.name);
        let rows = copy
            .copy_with_progress(&source, &target, &name, masker.clone(), progress.clone())
            .await?;
        counts.push((index, rows));
    }
    if snapshot.is_some() {
        source.execute_batch("COMMIT").await?;
    }
    Ok(counts)
}

/// Every sequence in the staging schema set past its column's copied
/// maximum (and never behind the source's position).
async fn set_sequences(target: &Database, schema: &cutover_db::Schema, stage: &str) -> Result<()> {
    let owned = texts(
        target,
        &format!(
            "SELECT s.relname, t.relname, a.attname FROM pg_depend d \
             JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
             JOIN pg_class t ON t.oid = d.refobjid \
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid \
             WHERE d.deptype IN ('a', 'i') AND d.classid = 'pg_class'::regclass \
               AND s.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = {})",
            literal(stage)
        ),
        3,
        "the staged sequences",
    )
    .await?;
    let source_position = |sequence: &str| {
        schema
            .sequences
            .iter()
            .find(|candidate| candidate.name.name == sequence)
            .and_then(|candidate| candidate.current_value)
    };
    let mut statements = Vec::new();
    for row in &owned {
        let (sequence, table, column) = (&row[0], &row[1], &row[2]);
        let floor = source_position(sequence)
            .map(|value| value.to_string())
            .unwrap_or_else(|| "NULL".into());
        statements.push(format!(
            "SELECT setval('{stage}.{sequence}', m) FROM (SELECT greatest(max({column})::bigint, {floor}) AS m \
             FROM {stage}.{table}) x WHERE m IS NOT NULL",
            stage = quote(stage).replace('\'', "''"),
            sequence = quote(sequence).replace('\'', "''"),
            column = quote(column),
            table = quote(table),
        ));
    }
    let staged: Vec<String> = first_column(
        target,
        &format!(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = {} AND c.relkind = 'S'",
            literal(stage)
        ),
        "the staged sequences",
    )
    .await?;
    for sequence in &schema.sequences {
        let owned_here = owned.iter().any(|row| row[0] == sequence.name.name);
        let staged_here = staged.contains(&sequence.name.name);
        if let (false, true, Some(value)) = (owned_here, staged_here, sequence.current_value) {
            statements.push(format!(
                "SELECT setval('{}.{}', {value})",
                quote(stage).replace('\'', "''"),
                quote(&sequence.name.name).replace('\'', "''")
            ));
        }
    }
    for statement in statements {
        target.execute_batch(&statement).await?;
    }
    Ok(())
}

/// The target's own grants and owners on the objects being replaced, given
/// to their staged successors.
async fn restore_privileges(target: &Database, live: &str, stage: &str) -> Result<()> {
    let (live, stage) = (literal(live), literal(stage));
    let kinds = "CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'v' THEN 'VIEW' \
                 WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'SEQUENCE' END";
    let pairs = format!(
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = {live} \
         JOIN pg_class s ON s.relname = c.relname AND s.relkind = c.relkind \
         JOIN pg_namespace sn ON sn.oid = s.relnamespace AND sn.nspname = {stage} \
         LEFT JOIN LATERAL aclexplode(c.relacl) a ON true \
         WHERE c.relkind IN ('r', 'v', 'm', 'S')"
    );
    let grants = first_column(
        target,
        &format!(
            "SELECT format('GRANT %s ON %s %I.%I TO %s%s', a.privilege_type, {kinds}, sn.nspname, s.relname, \
               CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END, \
               CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END) \
             {pairs} AND c.relacl IS NOT NULL AND a.grantee <> c.relowner"
        ),
        "the target's grants",
    )
    .await?;
    let owners = first_column(
        target,
        &format!(
            "SELECT DISTINCT format('ALTER %s %I.%I OWNER TO %I', {kinds}, sn.nspname, s.relname, pg_get_userbyid(c.relowner)) \
             {pairs} AND c.relowner <> s.relowner \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = s.oid AND d.deptype IN ('a', 'i'))"
        ),
        "the target's owners",
    )
    .await?;
    for sql in grants.iter().chain(&owners) {
        target.execute_batch(sql).await?;
    }
    Ok(())
}

/// The swap, in one transaction: live objects that have a staged successor
/// move to a retired schema, the staged objects move in, and the retired
/// ones are dropped (RESTRICT: an object of the target's own that depends on
/// a replaced one stops the swap instead of being dropped with it).
async fn swap(
    target: &Database,
    (live, stage): (&str, &str),
    large_objects: &[(String, String)],
    dropped: &[String],
) -> Result<()> {
    let retired = retired_schema(live);
    let objects = |schema: &str| {
        format!(
            "SELECT kind, name, key FROM ( \
               SELECT CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' \
                 ELSE 'SEQUENCE' END AS kind, quote_ident(c.relname) AS name, c.relname AS key, c.relkind::text AS sort \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = {schema} \
               WHERE c.relkind IN ('r', 'v', 'm', 'S') \
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')) \
               UNION ALL SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, \
                 quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')', \
                 p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', 'f' \
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname = {schema} \
               WHERE p.prokind IN ('f', 'p') AND {ext_p} \
               UNION ALL SELECT 'TYPE', quote_ident(t.typname), t.typname, 't' \
               FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace AND n.nspname = {schema} \
               WHERE t.typtype = 'e' AND {ext_t} \
             ) o ORDER BY sort, key",
            schema = literal(schema),
            ext_p = not_extension("p.oid"),
            ext_t = not_extension("t.oid"),
        )
    };
    let staged = texts(target, &objects(stage), 3, "the staged objects").await?;
    let live_objects = texts(target, &objects(live), 3, "the live objects").await?;
    let replaced: Vec<&Vec<String>> = live_objects
        .iter()
        .filter(|object| staged.contains(object))
        .collect();
    let (live_q, stage_q, retired_q) = (quote(live), quote(stage), quote(&retired));
    let mut sql = format!(
        "BEGIN; SET LOCAL lock_timeout = '60s'; DROP SCHEMA IF EXISTS {retired_q} CASCADE; CREATE SCHEMA {retired_q};"
    );
    for object in &replaced {
        sql.push_str(&format!(
            " ALTER {} {live_q}.{} SET SCHEMA {retired_q};",
            object[0], object[1]
        ));
    }
    // The target's own tables the policy's [drift] drops.
    for table in dropped {
        sql.push_str(&format!(
            " ALTER TABLE {live_q}.{} SET SCHEMA {retired_q};",
            quote(table)
        ));
    }
    for object in &staged {
        sql.push_str(&format!(
            " ALTER {} {stage_q}.{} SET SCHEMA {live_q};",
            object[0], object[1]
        ));
    }
    // The replaced tables' large objects go with them (the new ones are the staged tables' own).
    for (table, column) in large_objects {
        if replaced
            .iter()
            .any(|object| object[0] == "TABLE" && object[2] == *table)
        {
            sql.push_str(&format!(
                " SELECT pg_catalog.lo_unlink(l.{column}) FROM {retired_q}.{} l \
                 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_largeobject_metadata m WHERE m.oid = l.{column});",
                quote(table)
            ));
        }
    }
    for kind in [
        "VIEW",
        "MATERIALIZED VIEW",
        "TABLE",
        "SEQUENCE",
        "FUNCTION",
        "PROCEDURE",
        "TYPE",
    ] {
        let mut names: Vec<String> = replaced
            .iter()
            .filter(|object| object[0] == kind)
            .map(|object| format!("{retired_q}.{}", object[1]))
            .collect();
        if kind == "TABLE" {
            names.extend(
                dropped
                    .iter()
                    .map(|table| format!("{retired_q}.{}", quote(table))),
            );
        }
        if !names.is_empty() {
            sql.push_str(&format!(" DROP {kind} {} RESTRICT;", names.join(", ")));
        }
    }
    sql.push_str(&format!(
        " DROP SCHEMA {retired_q}; DROP SCHEMA {stage_q}; COMMIT;"
    ));
    target.execute_batch(&sql).await.map_err(|error| {
        Error::Unsupported(format!(
            "the swap into schema {live} was rolled back, the target is unchanged: {error}\n\
             hint: an object the refresh does not replace may depend on one it does"
        ))
    })?;
    Ok(())
}
