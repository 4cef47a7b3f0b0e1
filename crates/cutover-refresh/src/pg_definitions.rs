//! The DDL of a PostgreSQL target's staging schema: read from a PostgreSQL
//! source's catalog (names in the schema unqualified, so that they are
//! created in the staging schema), or translated from a SQLite source.

use cutover_db::schema::quote_identifier as quote;
use cutover_db::{Database, LogicalType};

use crate::error::{Error, Result};
use crate::sql::{first_column, literal, texts};

/// The DDL of one schema, in the order it is applied.
#[derive(Debug, Default)]
pub(crate) struct Definitions {
    /// Types, sequences, functions and tables (no constraints), before the data.
    pub(crate) before: Vec<String>,
    /// Keys, unique, exclusion and check constraints and the tables'
    /// indexes, after the data, each with its table: each on one table,
    /// built in parallel, a table's as soon as it is loaded.
    pub(crate) keys: Vec<(String, String)>,
    /// Foreign keys and sequence ownership, after every key.
    pub(crate) constraints: Vec<String>,
    /// Views, materialized views' indexes and triggers, last.
    pub(crate) after: Vec<String>,
    /// Generated columns, per table: never written.
    pub(crate) generated: Vec<(String, String)>,
}

/// Put before a partitioned table's foreign key: PostgreSQL validates it
/// partition by partition with an anti-join whose hash join (before
/// PostgreSQL 16) hashes the whole referenced table again for every
/// partition; a merge join reads the referenced key's index instead (12 s
/// against 2 s for 30 partitions referencing 2 million rows).
pub(crate) const MERGE_VALIDATION: &str = "SET LOCAL enable_hashjoin = off; ";

/// `error` from building `sql` on the staged data, explained when the data
/// violates it (any other error, a lost connection say, as it is).
pub(crate) fn unsatisfied(sql: &str, error: Error) -> Error {
    let violated = matches!(&error,
        Error::Database(cutover_db::Error::Postgres { code: Some(code), .. }) if code.starts_with("23"));
    if !violated {
        return error;
    }
    let sql = sql.strip_prefix(MERGE_VALIDATION).unwrap_or(sql);
    Error::Unsupported(format!(
        "{error}\nhint: the staged data does not satisfy the source's `{}`; \
         a preserved table may reference rows the policy removed",
        sql.chars().take(120).collect::<String>()
    ))
}

const NOT_EXTENSION: &str =
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = {oid} AND d.deptype = 'e')";

pub(crate) fn not_extension(oid: &str) -> String {
    NOT_EXTENSION.replace("{oid}", oid)
}

/// Reads the definitions of `schema` from a PostgreSQL source, with names in
/// that schema unqualified so they can be created in the staging schema.
pub(crate) async fn postgres_definitions(source: &Database, schema: &str) -> Result<Definitions> {
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
            "SELECT 'foreign table ' || quote_ident(c.relname) FROM pg_class c \
             WHERE c.relnamespace = {namespace} AND c.relkind = 'f' AND {} ORDER BY 1",
            not_extension("c.oid")
        ),
        "the source's object kinds",
    )
    .await?;
    if !unsupported.is_empty() {
        return Err(Error::Unsupported(format!(
            "refreshing a PostgreSQL target does not copy foreign tables ({} in schema {schema}): their data lives on another server\nhint: move them to a schema of their own, or copy their rows into a regular table",
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
    // Domains, with their defaults, NOT NULL and checks.
    definitions.before.extend(
        first_column(
            source,
            &format!(
                "SELECT format('CREATE DOMAIN %I AS %s%s%s%s', t.typname, format_type(t.typbasetype, t.typtypmod), \
                   (SELECT ' COLLATE ' || quote_ident(cn.nspname) || '.' || quote_ident(co.collname) \
                      FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace \
                      JOIN pg_type b ON b.oid = t.typbasetype \
                      WHERE co.oid = t.typcollation AND t.typcollation <> b.typcollation), \
                   CASE WHEN t.typdefault IS NOT NULL THEN ' DEFAULT ' || t.typdefault ELSE '' END, \
                   CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END) \
                   || coalesce((SELECT string_agg(format('; ALTER DOMAIN %I ADD CONSTRAINT %I %s', t.typname, con.conname, \
                        pg_get_constraintdef(con.oid)), '' ORDER BY con.oid) \
                      FROM pg_constraint con WHERE con.contypid = t.oid AND con.contype = 'c'), '') \
                 FROM pg_type t WHERE t.typnamespace = {namespace} AND t.typtype = 'd' AND {} ORDER BY t.oid",
                not_extension("t.oid")
            ),
            "the source's domains",
        )
        .await?,
    );
    // Composite types (not the row types of tables).
    definitions.before.extend(
        first_column(
            source,
            &format!(
                "SELECT format('CREATE TYPE %I AS (%s)', t.typname, string_agg(format('%I %s', a.attname, \
                   format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY a.attnum)) \
                 FROM pg_type t JOIN pg_class c ON c.oid = t.typrelid AND c.relkind = 'c' \
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                 WHERE t.typnamespace = {namespace} AND t.typtype = 'c' AND {} GROUP BY t.oid, t.typname ORDER BY t.oid",
                not_extension("t.oid")
            ),
            "the source's composite types",
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
                "WITH RECURSIVE depth(oid, level) AS ( \
                   SELECT c.oid, 0 FROM pg_class c WHERE c.relnamespace = {namespace} AND c.relkind IN ('r', 'p') \
                     AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid) \
                   UNION ALL SELECT i.inhrelid, d.level + 1 FROM pg_inherits i JOIN depth d ON d.oid = i.inhparent) \
                 SELECT CASE WHEN c.relispartition THEN \
                     format('CREATE TABLE %I PARTITION OF %I %s', c.relname, \
                       (SELECT p.relname FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE i.inhrelid = c.oid), \
                       pg_get_expr(c.relpartbound, c.oid)) \
                   ELSE format('CREATE TABLE %I (%s)%s', c.relname, coalesce(string_agg(format('%I %s%s%s%s%s', \
                   a.attname, format_type(a.atttypid, a.atttypmod), \
                   (SELECT ' COLLATE ' || quote_ident(cn.nspname) || '.' || quote_ident(co.collname) \
                      FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace \
                      WHERE co.oid = a.attcollation AND a.attcollation <> t.typcollation), \
                   CASE a.attidentity WHEN 'a' THEN ' GENERATED ALWAYS AS IDENTITY' \
                     WHEN 'd' THEN ' GENERATED BY DEFAULT AS IDENTITY' ELSE '' END, \
                   CASE WHEN a.attgenerated = 's' THEN ' GENERATED ALWAYS AS (' || pg_get_expr(ad.adbin, ad.adrelid) || ') STORED' \
                     WHEN ad.adbin IS NOT NULL THEN ' DEFAULT ' || pg_get_expr(ad.adbin, ad.adrelid) ELSE '' END, \
                   CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END), ', ' ORDER BY a.attnum) \
                     FILTER (WHERE a.attinhcount = 0), ''), \
                   coalesce(' INHERITS (' || (SELECT string_agg(quote_ident(p.relname), ', ' ORDER BY i.inhseqno) \
                      FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE i.inhrelid = c.oid) || ')', '')) END \
                   || CASE WHEN c.relkind = 'p' THEN ' PARTITION BY ' || pg_get_partkeydef(c.oid) ELSE '' END \
                 FROM pg_class c JOIN (SELECT oid, max(level) AS level FROM depth GROUP BY oid) d ON d.oid = c.oid \
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                 JOIN pg_type t ON t.oid = a.atttypid \
                 LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum \
                 WHERE {} GROUP BY c.oid, c.relname, c.relkind, c.relispartition, c.relpartbound, d.level \
                 ORDER BY d.level, c.oid",
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
             WHERE c.relnamespace = {namespace} AND c.relkind IN ('r', 'p') AND a.attgenerated = 's' AND NOT a.attisdropped"
        ),
        2,
        "the source's generated columns",
    )
    .await?
    .into_iter()
    .map(|row| (row[0].clone(), row[1].clone()))
    .collect();
    let merged = format!(
        "CASE c.relkind WHEN 'p' THEN {} ELSE '' END",
        literal(MERGE_VALIDATION)
    );
    for (keys, types, prefix) in [
        (true, "'p', 'u', 'x', 'c'", "''"),
        (false, "'f'", merged.as_str()),
    ] {
        let found = texts(
            source,
            &format!(
                "SELECT format('%sALTER TABLE %I ADD CONSTRAINT %I %s', {prefix}, c.relname, con.conname, pg_get_constraintdef(con.oid)), c.relname \
                 FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid \
                 WHERE c.relnamespace = {namespace} AND c.relkind IN ('r', 'p') AND con.contype IN ({types}) \
                   AND con.conparentid = 0 AND con.conislocal AND {} \
                 ORDER BY CASE con.contype WHEN 'p' THEN 0 WHEN 'u' THEN 1 WHEN 'x' THEN 2 ELSE 3 END, con.oid",
                not_extension("c.oid")
            ),
            2,
            "the source's constraints",
        )
        .await?
        .into_iter()
        .map(|row| (row[1].clone(), row[0].clone()));
        match keys {
            true => definitions.keys.extend(found),
            false => definitions.constraints.extend(found.map(|(_, sql)| sql)),
        }
    }
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
    for (tables, kinds) in [(true, "'r', 'p'"), (false, "'m'")] {
        let found = texts(
            source,
            &format!(
                "SELECT format('CREATE %sINDEX %I ON %I USING %s', CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END, \
                   ic.relname, c.relname, substring(pg_get_indexdef(i.indexrelid) from ' USING (.*)$')), c.relname \
                 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid \
                 WHERE c.relnamespace = {namespace} AND c.relkind IN ({kinds}) AND {} \
                   AND NOT EXISTS (SELECT 1 FROM pg_inherits inh WHERE inh.inhrelid = i.indexrelid) \
                   AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid \
                     AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x')) \
                 ORDER BY i.indexrelid",
                not_extension("c.oid")
            ),
            2,
            "the source's indexes",
        )
        .await?
        .into_iter()
        .map(|row| (row[1].clone(), row[0].clone()));
        match tables {
            true => definitions.keys.extend(found),
            false => definitions.after.extend(found.map(|(_, sql)| sql)),
        }
    }
    for definition in first_column(
        source,
        &format!(
            "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
             WHERE c.relnamespace = {namespace} AND NOT t.tgisinternal AND t.tgparentid = 0 AND {} ORDER BY t.oid",
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
pub(crate) fn postgres_type(logical: Option<LogicalType>) -> &'static str {
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
pub(crate) fn translated_definitions(schema: &cutover_db::Schema) -> Definitions {
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
            definitions.keys.push((
                table.name.name.clone(),
                format!(
                    "ALTER TABLE {name} ADD PRIMARY KEY ({})",
                    list(&key.columns)
                ),
            ));
        }
        for unique in &table.unique_constraints {
            definitions.keys.push((
                table.name.name.clone(),
                format!("ALTER TABLE {name} ADD UNIQUE ({})", list(&unique.columns)),
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
            definitions.keys.push((
                table.name.name.clone(),
                format!(
                    "CREATE {unique}INDEX {} ON {name} ({})",
                    quote(&index.name),
                    list(&index.columns)
                ),
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
