//! Schema introspection from `pg_catalog` (not `information_schema`, which
//! hides objects the user does not own and is slow on large catalogs).

use std::collections::HashMap;

use tokio_postgres::Client;
use tokio_postgres::types::Oid;

use super::codec;
use crate::error::{Error, Result};
use crate::schema::{
    Column, ForeignKey, Index, Key, Routine, Schema, Sequence, Table, TableName, Trigger, View,
};

const USER_SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

pub(crate) async fn schema(client: &Client, redacted: &str) -> Result<Schema> {
    let version: String = client
        .query_one("SHOW server_version", &[])
        .await
        .map_err(|error| Error::postgres("reading the server version", error))?
        .get(0);
    Ok(Schema {
        engine: crate::schema::Engine::Postgres,
        database: redacted.to_owned(),
        server_version: format!("PostgreSQL {version}"),
        tables: tables(client, None).await?,
        views: views(client).await?,
        sequences: sequences(client).await?,
        routines: routines(client).await?,
        triggers: triggers(client).await?,
    })
}

async fn query(
    client: &Client,
    what: &str,
    sql: &str,
    parameters: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>> {
    client
        .query(sql, parameters)
        .await
        .map_err(|error| Error::postgres(format!("introspecting {what}"), error))
}

pub(crate) async fn table_names(client: &Client) -> Result<Vec<TableName>> {
    let sql = format!(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND {USER_SCHEMAS} ORDER BY 1, 2"
    );
    Ok(query(client, "tables", &sql, &[])
        .await?
        .iter()
        .map(|row| TableName::qualified(row.get::<_, String>(0), row.get::<_, String>(1)))
        .collect())
}

/// All user tables, or the one `only` names (an unqualified name follows the search path).
pub(crate) async fn tables(client: &Client, only: Option<&TableName>) -> Result<Vec<Table>> {
    let schema_filter = only.and_then(|name| name.schema.clone());
    let name_filter = only.map(|name| name.name.clone());
    let sql = format!(
        "SELECT c.oid, n.nspname, c.relname, c.reltuples::float8 \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND {USER_SCHEMAS} \
           AND ($1::text IS NULL OR c.relname = $1) \
           AND (($2::text IS NULL AND ($1::text IS NULL OR pg_table_is_visible(c.oid))) OR n.nspname = $2) \
         ORDER BY n.nspname, c.relname"
    );
    let rows = query(client, "tables", &sql, &[&name_filter, &schema_filter]).await?;
    let mut tables: Vec<(Oid, Table)> = rows
        .iter()
        .map(|row| {
            let estimate: f64 = row.get(3);
            (
                row.get::<_, Oid>(0),
                Table {
                    name: TableName::qualified(row.get::<_, String>(1), row.get::<_, String>(2)),
                    columns: Vec::new(),
                    primary_key: None,
                    unique_constraints: Vec::new(),
                    foreign_keys: Vec::new(),
                    indexes: Vec::new(),
                    row_estimate: (estimate >= 0.0).then_some(estimate as u64),
                    row_count: None,
                },
            )
        })
        .collect();
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let oids: Vec<Oid> = tables.iter().map(|(oid, _)| *oid).collect();
    let position: HashMap<Oid, usize> = oids
        .iter()
        .enumerate()
        .map(|(index, oid)| (*oid, index))
        .collect();

    let columns = query(
        client,
        "columns",
        "SELECT a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, \
                pg_get_expr(d.adbin, d.adrelid), \
                coalesce(bt.typname, t.typname)::text, coalesce(bt.typtype, t.typtype)::text, \
                coalesce(bt.typcategory, t.typcategory)::text \
         FROM pg_attribute a \
         JOIN pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attrelid, a.attnum",
        &[&oids],
    )
    .await?;
    for row in &columns {
        let table = &mut tables[position[&row.get::<_, Oid>(0)]].1;
        let type_name: String = row.get(5);
        let type_type: String = row.get(6);
        let category: String = row.get(7);
        table.columns.push(Column {
            name: row.get(1),
            type_name: row.get(2),
            logical_type: codec::logical_type(&type_name, &type_type, &category),
            nullable: row.get(3),
            default: row.get(4),
        });
    }

    let constraints = query(
        client,
        "constraints",
        "SELECT con.conrelid, con.conname::text, con.contype::text, \
                ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(attnum, position) \
                      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.position), \
                fn.nspname::text, fc.relname::text, \
                ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(attnum, position) \
                      JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.position), \
                con.confdeltype::text \
         FROM pg_constraint con \
         LEFT JOIN pg_class fc ON fc.oid = con.confrelid \
         LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace \
         WHERE con.conrelid = ANY($1) AND con.contype IN ('p', 'u', 'f') \
         ORDER BY con.conrelid, con.conname",
        &[&oids],
    )
    .await?;
    for row in &constraints {
        let table = &mut tables[position[&row.get::<_, Oid>(0)]].1;
        let name: String = row.get(1);
        let kind: String = row.get(2);
        let columns: Vec<String> = row.get(3);
        match kind.as_str() {
            "p" => {
                table.primary_key = Some(Key {
                    name: Some(name),
                    columns,
                })
            }
            "u" => table.unique_constraints.push(Key {
                name: Some(name),
                columns,
            }),
            _ => {
                let on_delete: String = row.get(7);
                table.foreign_keys.push(ForeignKey {
                    name: Some(name),
                    columns,
                    referenced_table: TableName::qualified(
                        row.get::<_, Option<String>>(4).unwrap_or_default(),
                        row.get::<_, Option<String>>(5).unwrap_or_default(),
                    ),
                    referenced_columns: row.get(6),
                    on_delete: match on_delete.as_str() {
                        "c" => "cascade",
                        "n" => "set null",
                        "d" => "set default",
                        "r" => "restrict",
                        _ => "no action",
                    }
                    .to_owned(),
                });
            }
        }
    }

    let indexes = query(
        client,
        "indexes",
        "SELECT i.indrelid, c.relname::text, i.indisunique, i.indisprimary, pg_get_indexdef(i.indexrelid), \
                ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) k ORDER BY k) \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE i.indrelid = ANY($1) ORDER BY i.indrelid, c.relname",
        &[&oids],
    )
    .await?;
    for row in &indexes {
        let table = &mut tables[position[&row.get::<_, Oid>(0)]].1;
        table.indexes.push(Index {
            name: row.get(1),
            unique: row.get(2),
            primary: row.get(3),
            definition: row.get(4),
            columns: row.get(5),
        });
    }
    Ok(tables.into_iter().map(|(_, table)| table).collect())
}

async fn views(client: &Client) -> Result<Vec<View>> {
    let sql = format!(
        "SELECT n.nspname::text, c.relname::text, c.relkind = 'm' FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('v', 'm') AND {USER_SCHEMAS} ORDER BY 1, 2"
    );
    Ok(query(client, "views", &sql, &[])
        .await?
        .iter()
        .map(|row| View {
            name: TableName::qualified(row.get::<_, String>(0), row.get::<_, String>(1)),
            materialized: row.get(2),
        })
        .collect())
}

async fn sequences(client: &Client) -> Result<Vec<Sequence>> {
    let sql = format!(
        "SELECT n.nspname::text, c.relname::text, \
                CASE WHEN has_sequence_privilege(c.oid, 'SELECT') THEN pg_sequence_last_value(c.oid) END, \
                (SELECT tn.nspname || '.' || tc.relname || '.' || a.attname \
                   FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid \
                   JOIN pg_namespace tn ON tn.oid = tc.relnamespace \
                   JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid \
                    AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'S' AND {USER_SCHEMAS} ORDER BY 1, 2"
    );
    Ok(query(client, "sequences", &sql, &[])
        .await?
        .iter()
        .map(|row| Sequence {
            name: TableName::qualified(row.get::<_, String>(0), row.get::<_, String>(1)),
            current_value: row.get(2),
            owned_by: row.get(3),
        })
        .collect())
}

async fn routines(client: &Client) -> Result<Vec<Routine>> {
    let sql = format!(
        "SELECT n.nspname::text, p.proname::text, p.prokind::text, \
                pg_get_function_identity_arguments(p.oid), \
                CASE WHEN p.prokind IN ('f', 'w') THEN pg_get_function_result(p.oid) END \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE {USER_SCHEMAS} \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass \
                           AND d.objid = p.oid AND d.deptype = 'e') \
         ORDER BY 1, 2, 4"
    );
    Ok(query(client, "functions", &sql, &[])
        .await?
        .iter()
        .map(|row| Routine {
            name: TableName::qualified(row.get::<_, String>(0), row.get::<_, String>(1)),
            kind: match row.get::<_, String>(2).as_str() {
                "p" => "procedure",
                "a" => "aggregate",
                "w" => "window",
                _ => "function",
            }
            .to_owned(),
            arguments: row.get(3),
            returns: row.get(4),
        })
        .collect())
}

async fn triggers(client: &Client) -> Result<Vec<Trigger>> {
    let sql = format!(
        "SELECT t.tgname::text, n.nspname::text, c.relname::text, p.proname::text, t.tgenabled <> 'D' \
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_proc p ON p.oid = t.tgfoid \
         WHERE NOT t.tgisinternal AND {USER_SCHEMAS} ORDER BY 2, 3, 1"
    );
    Ok(query(client, "triggers", &sql, &[])
        .await?
        .iter()
        .map(|row| Trigger {
            name: row.get(0),
            table: TableName::qualified(row.get::<_, String>(1), row.get::<_, String>(2)),
            function: row.get(3),
            enabled: row.get(4),
        })
        .collect())
}
