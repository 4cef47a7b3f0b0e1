//! The structural checks: `row-counts` (each copied table's rows against
//! the source's, through the same `where`), `schema-matches` and
//! `no-invalid-objects`.

use cutover_db::schema::quote_identifier as quote;
use cutover_db::{Database, Engine};

use super::{Builder, Check, Pair, VerifyOptions};
use crate::error::Result;
use crate::policy::Action;
use crate::sql::{count, texts};

pub(super) async fn row_counts(
    source: &Database,
    target: &Database,
    pairs: &[Pair<'_>],
    options: &VerifyOptions,
) -> Result<Check> {
    let mut check = Builder::new("row-counts");
    for pair in pairs {
        let Some(target_table) = pair.target else {
            continue;
        };
        let actual = count(
            target,
            &format!("SELECT count(*) FROM {}", target_table.name.quoted()),
            &format!("table {}", target_table.name),
        )
        .await?;
        let expected = match (&pair.action, &pair.copy) {
            (Action::Copy, Some(copy)) => Some(
                count(
                    source,
                    &format!(
                        "SELECT count(*) FROM {}{}{}",
                        pair.source.name.quoted(),
                        copy.joined(),
                        copy.filter
                            .as_ref()
                            .map(|filter| format!(" WHERE ({filter})"))
                            .unwrap_or_default()
                    ),
                    &format!("table {}", pair.source.name),
                )
                .await?,
            ),
            (Action::Skip, _) | (Action::Copy, None) => Some(0),
            (Action::Preserve, _) => options.baseline.as_ref().and_then(|baseline| {
                baseline
                    .iter()
                    .find(|outcome| outcome.table == crate::check::table_key(pair.source))
                    .and_then(|outcome| outcome.preserved.map(|preserved| preserved.before.rows))
            }),
        };
        let source_total = count(
            source,
            &format!("SELECT count(*) FROM {}", pair.source.name.quoted()),
            &format!("table {}", pair.source.name),
        )
        .await?;
        // Why the target may differ from the source, by the policy.
        let why = match (&pair.action, expected) {
            (Action::Copy, Some(expected)) if expected < source_total => format!(
                "the source's {source_total} less {} removed by the policy's where and removed parents",
                source_total - expected
            ),
            (Action::Copy, _) => format!("all of the source's {source_total}"),
            (Action::Skip, _) => format!("skipped by the policy; the source has {source_total}"),
            (Action::Preserve, _) => format!(
                "the target's own rows, preserved; the source's {source_total} are not copied"
            ),
        };
        let action = pair.action.name();
        match expected {
            Some(expected) if expected != actual => check.failures.push(format!(
                "{} ({action}): {actual} rows, expected {expected}: {why}",
                pair.source.name
            )),
            Some(_) => check.notes.push(format!(
                "{} ({action}): {actual} rows, as expected: {why}",
                pair.source.name
            )),
            None => check.notes.push(format!(
                "{} ({action}): {actual} rows: {why}",
                pair.source.name
            )),
        }
    }
    Ok(check.finish())
}

pub(super) fn schema_matches(pairs: &[Pair<'_>]) -> Check {
    let mut check = Builder::new("schema-matches");
    let mut columns = 0;
    for pair in pairs {
        let Some(target_table) = pair.target else {
            check
                .failures
                .push(format!("{}: missing from the target", pair.source.name));
            continue;
        };
        for column in &pair.source.columns {
            columns += 1;
            match target_table.column(&column.name) {
                None => check.failures.push(format!(
                    "{}.{}: missing from the target",
                    pair.source.name, column.name
                )),
                Some(other) if other.logical_type != column.logical_type => {
                    check.failures.push(format!(
                        "{}.{}: {} in the source, {} in the target",
                        pair.source.name, column.name, column.type_name, other.type_name
                    ));
                }
                Some(_) => {}
            }
        }
    }
    check.notes.push(format!(
        "{} tables and {columns} columns compared",
        pairs.len()
    ));
    check.finish()
}

pub(super) async fn invalid_objects(target: &Database) -> Result<Check> {
    let mut check = Builder::new("no-invalid-objects");
    match target.engine() {
        Engine::Postgres => {
            let user_schemas = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'";
            let views = texts(
                target,
                &format!(
                    "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm') AND {user_schemas}"
                ),
                1,
                "the target's views",
            )
            .await?;
            for view in &views {
                if target
                    .execute_batch(&format!("EXPLAIN SELECT * FROM {} LIMIT 0", view[0]))
                    .await
                    .is_err()
                {
                    check
                        .failures
                        .push(format!("view {}: does not run", view[0]));
                }
            }
            let functions = texts(
                target,
                &format!(
                    "SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid) FROM pg_proc p \
                     JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang \
                     WHERE p.prokind IN ('f', 'p') AND l.lanname IN ('sql', 'plpgsql') AND {user_schemas} \
                       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')"
                ),
                2,
                "the target's functions",
            )
            .await?;
            for function in &functions {
                // Recompiled with body checks on, then rolled back.
                let sql = format!(
                    "BEGIN; SET LOCAL check_function_bodies = on; {}; ROLLBACK",
                    function[1]
                );
                if target.execute_batch(&sql).await.is_err() {
                    let _ = target.execute_batch("ROLLBACK").await;
                    check
                        .failures
                        .push(format!("function {}: does not compile", function[0]));
                }
            }
            for row in texts(
                target,
                &format!(
                    "SELECT 'foreign key ' || quote_ident(c.conname) || ' on ' || c.conrelid::regclass::text || ': not validated' \
                     FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
                     WHERE NOT c.convalidated AND {user_schemas} \
                     UNION ALL SELECT 'index ' || i.indexrelid::regclass::text || ': invalid' FROM pg_index i \
                     JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE NOT i.indisvalid AND {user_schemas} \
                     UNION ALL SELECT 'trigger ' || quote_ident(t.tgname) || ' on ' || t.tgrelid::regclass::text || ': disabled' \
                     FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE NOT t.tgisinternal AND t.tgenabled = 'D' AND {user_schemas}"
                ),
                1,
                "the target's constraints",
            )
            .await?
            {
                check.failures.push(row[0].clone());
            }
            let sequences = texts(
                target,
                &format!(
                    "SELECT s.oid::regclass::text, t.oid::regclass::text, quote_ident(a.attname) FROM pg_depend d \
                     JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' JOIN pg_class t ON t.oid = d.refobjid \
                     JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid \
                     JOIN pg_namespace n ON n.oid = s.relnamespace \
                     WHERE d.deptype IN ('a', 'i') AND d.classid = 'pg_class'::regclass AND {user_schemas}"
                ),
                3,
                "the target's sequences",
            )
            .await?;
            for sequence in &sequences {
                let behind = count(
                    target,
                    &format!(
                        "SELECT count(*) FROM {table} WHERE {column}::bigint > \
                         (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {seq})",
                        seq = sequence[0],
                        table = sequence[1],
                        column = sequence[2]
                    ),
                    "a sequence",
                )
                .await?;
                if behind > 0 {
                    check.failures.push(format!(
                        "sequence {}: behind {}.{} ({behind} rows above it)",
                        sequence[0], sequence[1], sequence[2]
                    ));
                }
            }
            check.notes.push(format!(
                "{} views, {} functions, {} sequences checked; constraints, indexes and triggers",
                views.len(),
                functions.len(),
                sequences.len()
            ));
        }
        Engine::Sqlite | Engine::Spark => {
            let integrity = texts(target, "PRAGMA integrity_check", 1, "integrity").await?;
            if integrity.first().map(|row| row[0].as_str()) != Some("ok") {
                check
                    .failures
                    .push(format!("integrity check: {} problems", integrity.len()));
            }
            let dangling = count(
                target,
                "SELECT count(*) FROM pragma_foreign_key_check",
                "foreign keys",
            )
            .await?;
            if dangling > 0 {
                check.failures.push(format!(
                    "foreign keys: {dangling} rows reference a missing row"
                ));
            }
            let views = texts(
                target,
                "SELECT name FROM sqlite_master WHERE type = 'view'",
                1,
                "views",
            )
            .await?;
            for view in &views {
                if target
                    .execute_batch(&format!("SELECT * FROM {} LIMIT 0", quote(&view[0])))
                    .await
                    .is_err()
                {
                    check
                        .failures
                        .push(format!("view {}: does not run", view[0]));
                }
            }
            check.notes.push(format!(
                "integrity, foreign keys and {} views checked",
                views.len()
            ));
        }
    }
    Ok(check.finish())
}
