//! Schema introspection from `sqlite_schema` and the table pragmas.

use rusqlite::{Connection, OptionalExtension};

use crate::error::{Error, Result};
use crate::schema::{
    Column, Engine, ForeignKey, Index, Key, Schema, Sequence, Table, TableName, Trigger, View,
};

fn failed(what: &str) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |error| Error::sqlite(format!("introspecting {what}"), error)
}

pub(crate) fn schema(connection: &Connection, redacted: &str) -> Result<Schema> {
    let version: String = connection
        .query_row("SELECT sqlite_version()", [], |row| row.get(0))
        .map_err(failed("the version"))?;
    Ok(Schema {
        engine: Engine::Sqlite,
        database: redacted.to_owned(),
        server_version: format!("SQLite {version}"),
        tables: tables(connection, None)?,
        views: names_of_type(connection, "view")?
            .into_iter()
            .map(|name| View {
                name: TableName::new(name),
                materialized: false,
            })
            .collect(),
        sequences: sequences(connection)?,
        routines: Vec::new(),
        triggers: triggers(connection)?,
    })
}

fn names_of_type(connection: &Connection, kind: &str) -> Result<Vec<String>> {
    let mut statement = connection
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = ?1 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )
        .map_err(failed("tables"))?;
    let names = statement
        .query_map([kind], |row| row.get::<_, String>(0))
        .map_err(failed("tables"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(failed("tables"))?;
    Ok(names)
}

pub(crate) fn table_names(connection: &Connection) -> Result<Vec<TableName>> {
    Ok(names_of_type(connection, "table")?
        .into_iter()
        .map(TableName::new)
        .collect())
}

pub(crate) fn tables(connection: &Connection, only: Option<&TableName>) -> Result<Vec<Table>> {
    let names = names_of_type(connection, "table")?;
    let has_stat1 = connection
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'sqlite_stat1'",
            [],
            |_| Ok(()),
        )
        .optional()
        .map_err(failed("statistics"))?
        .is_some();
    let mut tables = Vec::new();
    for name in names {
        if let Some(only) = only {
            let schema_matches = matches!(only.schema.as_deref(), None | Some("main"));
            if !(schema_matches && only.name == name) {
                continue;
            }
        }
        tables.push(table(connection, &name, has_stat1)?);
    }
    Ok(tables)
}

fn table(connection: &Connection, name: &str, has_stat1: bool) -> Result<Table> {
    let what = format!("table {name}");
    let mut columns = Vec::new();
    let mut primary_key: Vec<(i64, String)> = Vec::new();
    {
        let mut statement = connection
            .prepare("SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?1) ORDER BY cid")
            .map_err(failed(&what))?;
        let mut rows = statement.query([name]).map_err(failed(&what))?;
        while let Some(row) = rows.next().map_err(failed(&what))? {
            let hidden: i64 = row.get(5).map_err(failed(&what))?;
            if hidden == 1 {
                continue;
            }
            let column_name: String = row.get(0).map_err(failed(&what))?;
            let declared: String = row
                .get::<_, Option<String>>(1)
                .map_err(failed(&what))?
                .unwrap_or_default();
            let not_null: bool = row.get(2).map_err(failed(&what))?;
            let position: i64 = row.get(4).map_err(failed(&what))?;
            if position > 0 {
                primary_key.push((position, column_name.clone()));
            }
            columns.push(Column {
                logical_type: super::logical_type(&declared),
                name: column_name,
                type_name: if declared.is_empty() {
                    "(none)".to_owned()
                } else {
                    declared
                },
                nullable: !not_null && position == 0,
                default: row.get(3).map_err(failed(&what))?,
            });
        }
    }
    primary_key.sort();

    let mut unique_constraints = Vec::new();
    let mut indexes = Vec::new();
    {
        let mut statement = connection
            .prepare("SELECT name, \"unique\", origin FROM pragma_index_list(?1) ORDER BY name")
            .map_err(failed(&what))?;
        let listed = statement
            .query_map([name], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, bool>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })
            .map_err(failed(&what))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(failed(&what))?;
        for (index_name, unique, origin) in listed {
            let mut info = connection
                .prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
                .map_err(failed(&what))?;
            let index_columns = info
                .query_map([&index_name], |row| {
                    Ok(row
                        .get::<_, Option<String>>(0)?
                        .unwrap_or_else(|| "(expression)".to_owned()))
                })
                .map_err(failed(&what))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(failed(&what))?;
            let definition: Option<String> = connection
                .query_row(
                    "SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?1",
                    [&index_name],
                    |row| row.get(0),
                )
                .optional()
                .map_err(failed(&what))?
                .flatten();
            if origin == "u" {
                unique_constraints.push(Key {
                    name: None,
                    columns: index_columns.clone(),
                });
            }
            indexes.push(Index {
                name: index_name,
                columns: index_columns,
                unique,
                primary: origin == "pk",
                definition,
            });
        }
    }

    let mut foreign_keys: Vec<ForeignKey> = Vec::new();
    {
        let mut statement = connection
            .prepare("SELECT id, \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list(?1) ORDER BY id, seq")
            .map_err(failed(&what))?;
        let rows = statement
            .query_map([name], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, String>(4)?,
                ))
            })
            .map_err(failed(&what))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(failed(&what))?;
        let mut last_id = None;
        for (id, referenced, from, to, on_delete) in rows {
            if last_id != Some(id) {
                foreign_keys.push(ForeignKey {
                    name: None,
                    columns: Vec::new(),
                    referenced_table: TableName::new(referenced),
                    referenced_columns: Vec::new(),
                    on_delete: on_delete.to_ascii_lowercase(),
                });
                last_id = Some(id);
            }
            if let Some(key) = foreign_keys.last_mut() {
                key.columns.push(from);
                // An omitted target column means the referenced table's primary key.
                key.referenced_columns.push(to.unwrap_or_default());
            }
        }
    }

    let row_estimate = if has_stat1 {
        connection
            .query_row(
                "SELECT stat FROM sqlite_stat1 WHERE tbl = ?1 ORDER BY idx IS NOT NULL LIMIT 1",
                [name],
                |row| row.get::<_, String>(0),
            )
            .optional()
            .map_err(failed(&what))?
            .and_then(|stat| {
                stat.split_whitespace()
                    .next()
                    .and_then(|count| count.parse().ok())
            })
    } else {
        None
    };

    Ok(Table {
        name: TableName::new(name),
        columns,
        primary_key: (!primary_key.is_empty()).then(|| Key {
            name: None,
            columns: primary_key.into_iter().map(|(_, column)| column).collect(),
        }),
        unique_constraints,
        foreign_keys,
        indexes,
        row_estimate,
        row_count: None,
    })
}

fn sequences(connection: &Connection) -> Result<Vec<Sequence>> {
    let exists = connection
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'sqlite_sequence'",
            [],
            |_| Ok(()),
        )
        .optional()
        .map_err(failed("sequences"))?
        .is_some();
    if !exists {
        return Ok(Vec::new());
    }
    let mut statement = connection
        .prepare("SELECT name, seq FROM sqlite_sequence ORDER BY name")
        .map_err(failed("sequences"))?;
    let sequences = statement
        .query_map([], |row| {
            let table: String = row.get(0)?;
            Ok(Sequence {
                name: TableName::new(table.clone()),
                current_value: row.get(1)?,
                owned_by: Some(table),
            })
        })
        .map_err(failed("sequences"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(failed("sequences"))?;
    Ok(sequences)
}

fn triggers(connection: &Connection) -> Result<Vec<Trigger>> {
    let mut statement = connection
        .prepare("SELECT name, tbl_name FROM sqlite_schema WHERE type = 'trigger' ORDER BY tbl_name, name")
        .map_err(failed("triggers"))?;
    let triggers = statement
        .query_map([], |row| {
            Ok(Trigger {
                name: row.get(0)?,
                table: TableName::new(row.get::<_, String>(1)?),
                function: None,
                enabled: true,
            })
        })
        .map_err(failed("triggers"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(failed("triggers"))?;
    Ok(triggers)
}
