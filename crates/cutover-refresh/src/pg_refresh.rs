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
//! Every step is journaled in the staging schema (`pg_resume`), so a killed
//! run resumes with `resume`: finished steps and pieces are kept, the rest
//! redone (from a new snapshot), and the swap is still all or nothing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use cutover_db::schema::quote_identifier as quote;
use cutover_db::{
    ConnectOptions, Database, DatabaseUrl, Engine, IntrospectOptions, LogicalType, Progress,
    TableName,
};

use crate::error::{Error, Result};
use crate::mask::Masker;
use crate::pg_definitions::{Definitions, postgres_definitions, translated_definitions};
use crate::pg_pieces::{Piece, copy_worker, expand_partitions, split_large_tables};
use crate::pg_resume::{Journal, Resumed};
use crate::pg_swap::{restore_privileges, set_sequences, swap};
use crate::policy::{Action, HookPoint, Policy};
use crate::sql::{first_column, literal};
use crate::sqlite_refresh::{RefreshOutcome, TableOutcome};

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
    /// Resume a killed run from its staging schema (when it was made under
    /// the same plan; otherwise start over and say why).
    pub resume: bool,
}

/// What a job does with one table.
#[derive(Debug, Clone)]
enum Work {
    Copy(Piece),
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
    // Subsetting follows the policy's declared references; no constraint is made of them.
    let schema = crate::subset::with_declared_references(policy, &schema);

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
    let mut hooks = Vec::new();
    if policy
        .hooks
        .iter()
        .any(|hook| hook.when == HookPoint::BeforeCopy)
    {
        target
            .execute_batch(&format!("SET search_path = {}", quote(&live)))
            .await?;
        crate::hooks::run_hooks(
            policy,
            HookPoint::BeforeCopy,
            &hook_place(&target, settings, &live),
            &mut hooks,
        )
        .await?;
    }
    let stage = staging_schema(&live);
    let plan = crate::pg_resume::plan_identity(&[
        &format!("{policy:?}"),
        &format!("{definitions:?}"),
        settings.source.redacted(),
        &live,
        &masker.key_identity(),
    ]);
    let (journal, resumed) = if settings.resume {
        match Journal::resume(&target, &stage, &plan).await? {
            Ok((journal, started)) => {
                let kept_steps = journal.steps_done();
                (journal, Some(Resumed::from_run(started, kept_steps)))
            }
            Err(reason) => (
                Journal::fresh(&target, &stage, &plan).await?,
                Some(Resumed::started_over(reason)),
            ),
        }
    } else {
        (Journal::fresh(&target, &stage, &plan).await?, None)
    };
    target
        .execute_batch(&format!(
            "SET search_path = {stage}, {live}; SET check_function_bodies = off",
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
        hooks,
        (journal, resumed),
    )
    .await;
    if let Err(error) = result {
        let _ = target.execute_batch("ROLLBACK").await;
        // A copy stopped by a lost connection or server keeps what it loaded
        // for --resume.
        if matches!(error, Error::Interrupted { .. }) {
            return Err(error);
        }
        // Best effort: the live schema was never touched; drop what was staged.
        let _ = target
            .execute_batch(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quote(&stage)))
            .await;
        return Err(explained(error));
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
    hooks: Vec<crate::hooks::HookOutcome>,
    (mut journal, mut resumed): (Journal, Option<Resumed>),
) -> Result<RefreshOutcome> {
    for (number, sql) in definitions.before.iter().enumerate() {
        journal
            .step(target, &format!("definition {number}"), sql)
            .await?;
    }
    let live_tables: Vec<String> = first_column(
        target,
        &format!(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = {} AND c.relkind IN ('r', 'p')",
            literal(live)
        ),
        "the target's tables",
    )
    .await?;

    // Plan every table.
    let mut outcome = RefreshOutcome {
        tables: Vec::new(),
        hooks,
        resumed: None,
    };
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
                Some(copy) => Work::Copy(Piece {
                    index: outcome.tables.len(),
                    copy: Box::new(copy),
                    columns: written,
                }),
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

    // Preserved tables: copied inside the target, from the live table
    // (fingerprinted again after the after-load hooks).
    let mut fingerprinted_tables: Vec<(usize, TableName, Vec<String>)> = Vec::new();
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
                journal
                    .step(
                        target,
                        &format!("preserve {}", table.name.name),
                        &format!(
                            "INSERT INTO {}.{name} ({list}) SELECT {list} FROM {}.{name}",
                            quote(stage),
                            quote(live),
                            list = common.join(", ")
                        ),
                    )
                    .await?;
                let after = crate::fingerprint::table(
                    target,
                    &TableName::qualified(stage, &table.name.name),
                    &fingerprinted,
                )
                .await?;
                outcome.tables[index].rows = after.rows;
                outcome.tables[index].preserved = Some(crate::fingerprint::Preserved {
                    before,
                    after,
                    changed_by_hooks: false,
                });
                fingerprinted_tables.push((
                    index,
                    TableName::qualified(stage, &table.name.name),
                    fingerprinted,
                ));
            }
            Work::Copy(piece) => copies.push_back(piece),
            Work::Skip => {}
        }
    }

    // Columns of types cutover does not read (composite types, arrays) are
    // kept or nulled as text while loading, then turned back into their type.
    let mut as_text = Vec::new();
    if source.engine() == Engine::Postgres {
        for piece in copies.iter_mut() {
            let copy = &mut piece.copy;
            let table = format!("{}.{}", quote(stage), quote(&copy.table.name.name));
            let source_table = schema
                .tables
                .iter()
                .find(|table| table.name == copy.table.name);
            for (column, expression) in copy.table.columns.iter_mut().zip(&mut copy.expressions) {
                // Read as text by the copy plan (a type cutover does not read), or an array.
                let unread = source_table
                    .and_then(|table| table.column(&column.name))
                    .is_some_and(|source| {
                        source.logical_type.is_none() && !crate::transform::is_large_object(source)
                    });
                if !unread && column.logical_type != Some(LogicalType::Array) {
                    continue;
                }
                let name = quote(&column.name);
                journal
                    .step(
                        target,
                        &format!("as text {table} {name}"),
                        &format!("ALTER TABLE {table} ALTER COLUMN {name} TYPE text USING NULL"),
                    )
                    .await?;
                let type_name = source_table
                    .and_then(|table| table.column(&column.name))
                    .map_or(&column.type_name, |source| &source.type_name);
                let type_name = type_name
                    .strip_prefix(&format!("{}.", quote(live)))
                    .unwrap_or(type_name)
                    .to_owned();
                as_text.push((table.clone(), name.clone(), type_name));
                *expression = Some(format!("{name}::text"));
                column.type_name = "text".into();
                column.logical_type = Some(LogicalType::Text);
            }
        }
    }

    // Large-object columns of copied tables hold the content (bytea) while
    // loading; each value becomes a new large object of the target afterwards.
    let mut large_objects = Vec::new();
    for Piece { copy, .. } in &copies {
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
                journal
                    .step(
                        target,
                        &format!("as bytea {table} {name}"),
                        &format!("ALTER TABLE {table} ALTER COLUMN {name} TYPE bytea USING NULL"),
                    )
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

    // A partitioned table is copied partition by partition; a table others
    // inherit from, its own rows only.
    let copies = if source.engine() == Engine::Postgres {
        expand_partitions(source, live, copies).await?
    } else {
        copies
    };
    // A large table with an integer key is split into key ranges, one per
    // job, so its masking runs on every core.
    let copies = split_large_tables(source, schema, copies, settings.jobs.max(1)).await?;

    // Copies, over `jobs` pairs of connections sharing the source snapshot;
    // on resume, the relations a killed run finished are kept.
    progress.phase(
        "copy",
        Some(crate::subset::copied_rows_estimate(policy, schema)),
    );
    let copies = match crate::pg_pieces::keep_finished(
        target,
        source,
        stage,
        copies,
        &mut journal,
        &mut outcome,
        resumed.as_mut(),
        progress.as_ref(),
    )
    .await
    {
        Ok(copies) => copies,
        Err(error) => return Err(journal.interrupted(target, stage, error).await),
    };
    let session = format!(
        "SET search_path = {}, {}; SET check_function_bodies = off",
        quote(stage),
        quote(live)
    );
    let retyped: Vec<String> = copies
        .iter()
        .map(|(piece, _)| piece.relation().to_owned())
        .filter(|name| {
            let staged = format!("{}.{}", quote(stage), quote(name));
            large_objects.iter().any(|(table, ..)| table == name)
                || as_text.iter().any(|(table, ..)| *table == staged)
        })
        .collect();
    let early = Arc::new(crate::pg_pieces::early_keys(
        &copies,
        crate::pg_pieces::key_steps(&outcome, schema, definitions, stage),
        &retyped,
        &journal,
        session.clone(),
    ));
    let jobs = settings.jobs.max(1).min(copies.len().max(1));
    let queue = Arc::new(Mutex::new(copies));
    let mut workers = Vec::new();
    for _ in 0..jobs {
        let queue = queue.clone();
        let settings = settings.clone();
        let work = (masker.clone(), progress.clone());
        let snapshot = snapshot.clone();
        let stage = stage.to_owned();
        let early = early.clone();
        workers.push(tokio::spawn(async move {
            copy_worker(&settings, snapshot, &stage, work, queue, early).await
        }));
    }
    let mut failed = None;
    for worker in workers {
        let counts = match worker.await {
            Ok(Ok((counts, ran))) => {
                journal.ran(ran);
                counts
            }
            Ok(Err(error)) => {
                failed.get_or_insert(error);
                continue;
            }
            Err(error) => {
                failed.get_or_insert(Error::Unsupported(format!("a copy job stopped: {error}")));
                continue;
            }
        };
        for (index, rows) in counts {
            outcome.tables[index].rows += rows;
        }
    }
    if let Some(error) = failed {
        return Err(journal.interrupted(target, stage, error).await);
    }
    journal.mark(target, "copies").await?;
    drop(source.execute_batch("COMMIT").await);

    for (_, table, name, type_name) in &large_objects {
        journal
            .step(
                target,
                &format!("large objects {table} {name}"),
                &format!(
                    "ALTER TABLE {table} ALTER COLUMN {name} TYPE {type_name} \
                     USING CASE WHEN {name} IS NOT NULL THEN pg_catalog.lo_from_bytea(0, {name}) END"
                ),
            )
            .await?;
    }
    for (table, name, type_name) in &as_text {
        journal
            .step(
                target,
                &format!("retyped {table} {name}"),
                &format!(
                    "ALTER TABLE {table} ALTER COLUMN {name} TYPE {type_name} USING {name}::{type_name}"
                ),
            )
            .await?;
    }
    // The statistics, keys and indexes the copy jobs did not build, over
    // `jobs` connections.
    progress.phase("keys", None);
    let keys = crate::pg_pieces::key_steps(&outcome, schema, definitions, stage)
        .into_iter()
        .map(|(_, id, sql)| (id, sql))
        .collect();
    let connect = || async {
        let connection = Database::connect(&settings.target, &settings.connect).await?;
        connection.execute_batch(&session).await?;
        Ok(connection)
    };
    journal
        .steps_in_parallel(connect, keys, settings.jobs)
        .await
        .map_err(|(sql, error)| crate::pg_definitions::unsatisfied(&sql, error))?;
    for (number, sql) in definitions.constraints.iter().enumerate() {
        let id = format!("constraint {number}");
        journal
            .step(target, &id, sql)
            .await
            .map_err(|error| crate::pg_definitions::unsatisfied(sql, error))?;
    }
    set_sequences(target, schema, stage).await?;
    progress.phase("indexes", None);
    for (number, sql) in definitions.after.iter().enumerate() {
        journal
            .step(target, &format!("after {number}"), sql)
            .await?;
    }
    restore_privileges(target, live, stage).await?;
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
    crate::hooks::run_hooks(
        policy,
        HookPoint::AfterLoad,
        &hook_place(target, settings, stage),
        &mut outcome.hooks,
    )
    .await?;
    if outcome
        .hooks
        .iter()
        .any(|hook| hook.when == HookPoint::AfterLoad.name())
    {
        for (index, name, columns) in &fingerprinted_tables {
            let now = crate::fingerprint::table(target, name, columns).await?;
            crate::fingerprint::after_hooks(&mut outcome.tables[*index], now);
        }
    }
    journal.drop_table(target).await?;
    swap(target, (live, stage), &replaced_large_objects, &dropped).await?;
    if policy
        .hooks
        .iter()
        .any(|hook| hook.when == HookPoint::AfterSwap)
    {
        target
            .execute_batch(&format!("SET search_path = {}", quote(live)))
            .await?;
        crate::hooks::run_hooks(
            policy,
            HookPoint::AfterSwap,
            &hook_place(target, settings, live),
            &mut outcome.hooks,
        )
        .await?;
    }
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
            outcome.tables.push(TableOutcome {
                table: key.clone(),
                action,
                rows,
                preserved: None,
                masked: Vec::new(),
            });
        }
    }
    outcome.resumed = resumed;
    Ok(outcome)
}

/// Where a PostgreSQL refresh's hooks run: SQL on `target` (whose search
/// path names `schema` first), commands told the target and the schema.
fn hook_place<'a>(
    target: &'a Database,
    settings: &PostgresRefresh,
    schema: &str,
) -> crate::hooks::HookPlace<'a> {
    let mut env = vec![
        ("CUTOVER_TARGET", settings.target.redacted().to_owned()),
        ("CUTOVER_SCHEMA", schema.to_owned()),
        ("PGOPTIONS", format!("-c search_path={}", quote(schema))),
    ];
    if let cutover_db::Locator::Postgres(url) = &settings.target.locator {
        env.push((
            "PGHOST",
            match &url.host {
                cutover_db::locator::PostgresHost::Tcp(host) => host.clone(),
                cutover_db::locator::PostgresHost::Unix(directory) => {
                    directory.display().to_string()
                }
            },
        ));
        env.push(("PGPORT", url.port.to_string()));
        env.extend(url.dbname.clone().map(|name| ("PGDATABASE", name)));
        env.extend(url.user.clone().map(|user| ("PGUSER", user)));
        env.extend(
            url.password
                .clone()
                .map(|password| ("PGPASSWORD", password)),
        );
    }
    crate::hooks::HookPlace {
        database: Some(target),
        env,
    }
}

/// `error` with a hint where the cause is a known pitfall.
fn explained(error: Error) -> Error {
    match &error {
        Error::Database(cutover_db::Error::Postgres {
            code: Some(code),
            message,
            ..
        }) if code == "23514" && message.contains("no partition") => Error::Unsupported(format!(
            "{error}\nhint: a rule moved a partition key out of every partition (shift-date or fake:date \
             on the key?): keep the key column, or give the table a DEFAULT partition; nothing was changed"
        )),
        _ => error,
    }
}
