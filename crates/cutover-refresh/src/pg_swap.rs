//! The end of a PostgreSQL refresh: sequences set past the copied data, the
//! target's grants and owners given to the staged objects, and the swap.

use cutover_db::Database;
use cutover_db::schema::quote_identifier as quote;

use crate::error::{Error, Result};
use crate::pg_definitions::not_extension;
use crate::sql::{first_column, literal, texts};

pub(crate) fn retired_schema(live: &str) -> String {
    let mut name = format!("cutover_retired_{live}");
    while name.len() > 63 {
        name.pop();
    }
    name
}

/// Every sequence in the staging schema set past its column's copied
/// maximum (and never behind the source's position).
pub(crate) async fn set_sequences(
    target: &Database,
    schema: &cutover_db::Schema,
    stage: &str,
) -> Result<()> {
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
pub(crate) async fn restore_privileges(target: &Database, live: &str, stage: &str) -> Result<()> {
    let (live, stage) = (literal(live), literal(stage));
    let kinds = "CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'TABLE' WHEN 'v' THEN 'VIEW' \
                 WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'SEQUENCE' END";
    let pairs = format!(
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = {live} \
         JOIN pg_class s ON s.relname = c.relname AND s.relkind = c.relkind \
         JOIN pg_namespace sn ON sn.oid = s.relnamespace AND sn.nspname = {stage} \
         LEFT JOIN LATERAL aclexplode(c.relacl) a ON true \
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S')"
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
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = s.oid AND d.refobjid <> s.oid \
                 AND d.deptype IN ('a', 'i'))"
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
pub(crate) async fn swap(
    target: &Database,
    (live, stage): (&str, &str),
    large_objects: &[(String, String)],
    dropped: &[String],
) -> Result<()> {
    let retired = retired_schema(live);
    let objects = |schema: &str| {
        format!(
            "SELECT kind, name, key FROM ( \
               SELECT CASE WHEN c.relkind IN ('r', 'p') THEN 'TABLE' WHEN c.relkind = 'v' THEN 'VIEW' \
                 WHEN c.relkind = 'm' THEN 'MATERIALIZED VIEW' \
                 ELSE 'SEQUENCE' END AS kind, quote_ident(c.relname) AS name, c.relname AS key, c.relkind::text AS sort \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = {schema} \
               WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND (c.relispartition \
                 OR NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.refobjid <> c.oid \
                   AND d.deptype IN ('a', 'i'))) \
               UNION ALL SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, \
                 quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')', \
                 p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', 'f' \
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname = {schema} \
               WHERE p.prokind IN ('f', 'p') AND {ext_p} \
               UNION ALL SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, quote_ident(t.typname), \
                 CASE t.typtype WHEN 'c' THEN 'composite:' ELSE '' END || t.typname, 't' \
               FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace AND n.nspname = {schema} \
               WHERE (t.typtype IN ('e', 'd') OR (t.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_class r \
                   WHERE r.oid = t.typrelid AND r.relkind = 'c'))) AND {ext_t} \
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
    // Composite types before the domains they may use, domains before the
    // enums they may be over.
    let composite = |object: &&&Vec<String>| object[2].starts_with("composite:");
    for (kind, composites) in [
        ("VIEW", false),
        ("MATERIALIZED VIEW", false),
        ("TABLE", false),
        ("SEQUENCE", false),
        ("FUNCTION", false),
        ("PROCEDURE", false),
        ("TYPE", true),
        ("DOMAIN", false),
        ("TYPE", false),
    ] {
        let mut names: Vec<String> = replaced
            .iter()
            .filter(|object| object[0] == kind && composite(object) == composites)
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
