//! SQLite: a file opened per operation on a blocking thread, rows passed to
//! and from async code in bounded batches over channels.
//!
//! Values are stored by logical type (see ARCHITECTURE.md): integers and
//! booleans as INTEGER, floats as REAL, bytes as BLOB, everything else as
//! canonical text (`2024-03-01 12:00:00.5`, `2024-03-01 12:00:00.5+00`, ISO
//! 8601 intervals, hyphenated UUIDs, canonical JSON).

mod introspect;

use std::path::{Path, PathBuf};

use rusqlite::types::{ToSqlOutput, Value as SqliteValue, ValueRef};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::schema::{Column, Schema, Table, TableName, quote_identifier};
use crate::stream::{Row, RowStream};
use crate::value::{self, LogicalType, Numeric, Value};
use crate::{ConnectOptions, ResolvedRead};

/// Rows per batch between the blocking SQLite thread and async code.
const BATCH_ROWS: usize = 1024;
/// Batches in flight: memory stays at most this many batches per stream.
const BATCHES_IN_FLIGHT: usize = 4;

/// An open SQLite database file.
#[derive(Debug)]
pub struct SqliteDatabase {
    path: PathBuf,
    redacted: String,
    read_only: bool,
    unchecked_references: bool,
}

impl SqliteDatabase {
    pub(crate) async fn open(
        path: &Path,
        redacted: &str,
        options: &ConnectOptions,
    ) -> Result<Self> {
        if !options.create_sqlite && !path.exists() {
            return Err(Error::MissingSqliteFile {
                path: path.display().to_string(),
            });
        }
        let database = SqliteDatabase {
            path: path.to_owned(),
            redacted: redacted.to_owned(),
            read_only: options.read_only,
            unchecked_references: options.sqlite_unchecked_references,
        };
        let create = options.create_sqlite;
        database
            .blocking(move |connection| {
                // Touch the schema so that a file that is not a database fails here.
                connection
                    .query_row("PRAGMA schema_version", [], |row| row.get::<_, i64>(0))
                    .map_err(|error| Error::sqlite("opening the database", error))?;
                if create {
                    connection
                        .pragma_update(None, "journal_mode", "WAL")
                        .map_err(|error| Error::sqlite("opening the database", error))?;
                }
                Ok(())
            })
            .await?;
        Ok(database)
    }

    pub(crate) fn redacted_url(&self) -> &str {
        &self.redacted
    }

    fn connection(&self) -> Result<Connection> {
        open_connection(&self.path, self.read_only, self.unchecked_references)
    }

    /// Runs `work` with a fresh connection on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let path = self.path.clone();
        let (read_only, unchecked) = (self.read_only, self.unchecked_references);
        tokio::task::spawn_blocking(move || {
            let mut connection = open_connection(&path, read_only, unchecked)?;
            work(&mut connection)
        })
        .await
        .map_err(|error| Error::Internal(format!("sqlite worker stopped: {error}")))?
    }

    pub(crate) async fn introspect(&self) -> Result<Schema> {
        let redacted = self.redacted.clone();
        self.blocking(move |connection| introspect::schema(connection, &redacted))
            .await
    }

    pub(crate) async fn introspect_tables(&self, only: Option<&TableName>) -> Result<Vec<Table>> {
        let only = only.cloned();
        self.blocking(move |connection| introspect::tables(connection, only.as_ref()))
            .await
    }

    pub(crate) async fn table_names(&self) -> Result<Vec<TableName>> {
        self.blocking(|connection| introspect::table_names(connection))
            .await
    }

    pub(crate) async fn count_rows(&self, table: &TableName) -> Result<u64> {
        let table = table.clone();
        self.blocking(move |connection| {
            let sql = format!("SELECT count(*) FROM {}", quote_identifier(&table.name));
            connection
                .query_row(&sql, [], |row| row.get::<_, i64>(0))
                .map(|count| u64::try_from(count).unwrap_or_default())
                .map_err(|error| Error::sqlite(format!("counting rows of {table}"), error))
        })
        .await
    }

    pub(crate) async fn execute_batch(&self, sql: &str) -> Result<()> {
        let sql = sql.to_owned();
        self.blocking(move |connection| {
            connection
                .execute_batch(&sql)
                .map_err(|error| Error::sqlite("running SQL", error))
        })
        .await
    }

    pub(crate) async fn read(&self, read: ResolvedRead) -> Result<RowStream> {
        let (sql, parameters) = read.select_sql(
            &quote_identifier(&read.table.name.name),
            |column| quote_identifier(&column.name),
            |number| format!("?{number}"),
        );
        self.stream(&sql, &parameters, read.columns, read.table.name.to_string())
            .await
    }

    /// The columns a SELECT returns, typed by their declared types.
    pub(crate) async fn describe(&self, sql: &str) -> Result<Vec<Column>> {
        let sql = sql.to_owned();
        self.blocking(move |connection| {
            let statement = connection
                .prepare(&sql)
                .map_err(|error| Error::sqlite("describing a query", error))?;
            Ok(statement
                .columns()
                .map(|column| {
                    let declared = column.decl_type().unwrap_or("").to_owned();
                    Column {
                        name: column.name().to_owned(),
                        logical_type: logical_type(&declared),
                        type_name: declared,
                        nullable: true,
                        default: None,
                    }
                })
                .collect())
        })
        .await
    }

    /// Streams a SELECT's rows, decoded as `columns` say, from a blocking
    /// thread in bounded batches. `label` names the table or query in errors.
    pub(crate) async fn stream(
        &self,
        sql: &str,
        parameters: &[Value],
        columns: Vec<Column>,
        label: String,
    ) -> Result<RowStream> {
        let connection = self.connection()?;
        let (sender, receiver) = mpsc::channel::<Result<Vec<Row>>>(BATCHES_IN_FLIGHT);
        // Prepare on this side so that SQL errors surface from here, not mid-stream.
        let width = connection
            .prepare(sql)
            .map_err(|error| Error::sqlite(format!("reading {label}"), error))?
            .column_count();
        if width != columns.len() {
            return Err(Error::RowWidth {
                table: label,
                got: width,
                expected: columns.len(),
            });
        }
        let sql = sql.to_owned();
        let parameters = parameters.to_vec();
        let stream_columns = columns.clone();
        tokio::task::spawn_blocking(move || {
            let result = stream_rows(
                &connection,
                &sql,
                &parameters,
                &stream_columns,
                &label,
                &sender,
            );
            if let Err(error) = result {
                let _ = sender.blocking_send(Err(error));
            }
        });
        let rows = crate::stream::from_batches(receiver);
        Ok(RowStream::new(columns, rows))
    }

    pub(crate) async fn write(
        &self,
        table: &Table,
        columns: &[Column],
        mut rows: RowStream,
    ) -> Result<u64> {
        if self.read_only {
            return Err(Error::Unsupported(format!(
                "{}: opened read-only, cannot write table {}",
                self.redacted, table.name
            )));
        }
        let mut connection = self.connection()?;
        let (sender, mut receiver) = mpsc::channel::<Result<Vec<Row>>>(BATCHES_IN_FLIGHT);
        let table_name = table.name.clone();
        let columns = columns.to_vec();
        let writer = tokio::task::spawn_blocking(move || -> Result<u64> {
            let context = format!("writing table {table_name}");
            let sql = format!(
                "INSERT INTO {} ({}) VALUES ({})",
                quote_identifier(&table_name.name),
                columns
                    .iter()
                    .map(|column| quote_identifier(&column.name))
                    .collect::<Vec<_>>()
                    .join(", "),
                (1..=columns.len())
                    .map(|number| format!("?{number}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            // One transaction for the whole write: dropped without commit, it rolls back.
            let transaction = connection
                .transaction()
                .map_err(|error| Error::sqlite(&context, error))?;
            let mut written = 0u64;
            {
                let mut statement = transaction
                    .prepare(&sql)
                    .map_err(|error| Error::sqlite(&context, error))?;
                while let Some(batch) = receiver.blocking_recv() {
                    for row in batch? {
                        if row.len() != columns.len() {
                            return Err(Error::RowWidth {
                                table: table_name.to_string(),
                                got: row.len(),
                                expected: columns.len(),
                            });
                        }
                        let parameters: Vec<ToSqlOutput> = row
                            .iter()
                            .zip(&columns)
                            .map(|(value, column)| encode(value, column))
                            .collect::<Result<_>>()?;
                        statement
                            .execute(rusqlite::params_from_iter(parameters))
                            .map_err(|error| Error::sqlite(&context, error))?;
                        written += 1;
                    }
                }
            }
            transaction
                .commit()
                .map_err(|error| Error::sqlite(&context, error))?;
            Ok(written)
        });
        let mut batch = Vec::with_capacity(BATCH_ROWS);
        let mut failure = None;
        while let Some(row) = rows.next().await {
            match row {
                Ok(row) => {
                    batch.push(row);
                    if batch.len() == BATCH_ROWS
                        && sender
                            .send(Ok(std::mem::replace(
                                &mut batch,
                                Vec::with_capacity(BATCH_ROWS),
                            )))
                            .await
                            .is_err()
                    {
                        break;
                    }
                }
                Err(error) => {
                    failure = Some(error);
                    let _ = sender
                        .send(Err(Error::Internal("the row source failed".to_owned())))
                        .await;
                    break;
                }
            }
        }
        if failure.is_none() && !batch.is_empty() {
            let _ = sender.send(Ok(batch)).await;
        }
        drop(sender);
        let written = writer
            .await
            .map_err(|error| Error::Internal(format!("sqlite writer stopped: {error}")))?;
        match failure {
            Some(error) => Err(error),
            None => written,
        }
    }
}

fn open_connection(path: &Path, read_only: bool, unchecked_references: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let connection = Connection::open_with_flags(path, flags)
        .map_err(|error| Error::sqlite(format!("opening {}", path.display()), error))?;
    connection
        .busy_timeout(std::time::Duration::from_secs(30))
        .map_err(|error| Error::sqlite(format!("opening {}", path.display()), error))?;
    if unchecked_references {
        connection
            .pragma_update(None, "foreign_keys", "OFF")
            .map_err(|error| Error::sqlite(format!("opening {}", path.display()), error))?;
    }
    Ok(connection)
}

fn stream_rows(
    connection: &Connection,
    sql: &str,
    parameters: &[Value],
    columns: &[Column],
    table: &str,
    sender: &mpsc::Sender<Result<Vec<Row>>>,
) -> Result<()> {
    let context = format!("reading {table}");
    let mut statement = connection
        .prepare(sql)
        .map_err(|error| Error::sqlite(&context, error))?;
    let bound: Vec<ToSqlOutput> = parameters
        .iter()
        .map(|value| encode_untyped(value))
        .collect();
    let mut rows = statement
        .query(rusqlite::params_from_iter(bound))
        .map_err(|error| Error::sqlite(&context, error))?;
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    while let Some(row) = rows
        .next()
        .map_err(|error| Error::sqlite(&context, error))?
    {
        let mut values = Vec::with_capacity(columns.len());
        for (index, column) in columns.iter().enumerate() {
            let raw = row
                .get_ref(index)
                .map_err(|error| Error::sqlite(&context, error))?;
            values.push(decode(raw, column).ok_or_else(|| Error::Decode {
                table: table.to_owned(),
                column: column.name.clone(),
                expected: column.type_name.clone(),
            })?);
        }
        batch.push(values);
        if batch.len() == BATCH_ROWS
            && sender
                .blocking_send(Ok(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(BATCH_ROWS),
                )))
                .is_err()
        {
            // The reader went away: stop reading.
            return Ok(());
        }
    }
    if !batch.is_empty() {
        let _ = sender.blocking_send(Ok(batch));
    }
    Ok(())
}

/// The logical type for a SQLite declared type; `None` when cutover cannot tell.
pub(crate) fn logical_type(declared: &str) -> Option<LogicalType> {
    let upper = declared.trim().to_ascii_uppercase();
    let base = upper.split('(').next().unwrap_or("").trim();
    if base.ends_with("[]") {
        return Some(LogicalType::Array);
    }
    Some(match base {
        "BOOL" | "BOOLEAN" => LogicalType::Bool,
        "DATE" => LogicalType::Date,
        "TIME" | "TIME WITHOUT TIME ZONE" => LogicalType::Time,
        "DATETIME" | "TIMESTAMP" | "TIMESTAMP WITHOUT TIME ZONE" => LogicalType::Timestamp,
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" | "DATETIMETZ" => LogicalType::TimestampTz,
        "INTERVAL" => LogicalType::Interval,
        "UUID" => LogicalType::Uuid,
        "JSON" | "JSONB" => LogicalType::Json,
        // `DECIMAL TEXT` keeps exact decimals as text (TEXT affinity); plain
        // NUMERIC affinity lets SQLite round beyond 15 significant digits.
        _ if base.starts_with("NUMERIC") || base.starts_with("DECIMAL") || base == "NUMBER" => {
            LogicalType::Numeric
        }
        "BLOB" | "BYTEA" => LogicalType::Bytes,
        // SQLite's own affinity rules, in its order.
        _ if base.contains("INT") => LogicalType::Integer,
        _ if base.contains("CHAR") || base.contains("CLOB") || base.contains("TEXT") => {
            LogicalType::Text
        }
        _ if base.contains("REAL") || base.contains("FLOA") || base.contains("DOUB") => {
            LogicalType::Float
        }
        _ => return None,
    })
}

/// Decodes a stored value as the column's logical type; `None` if it is not one.
fn decode(raw: ValueRef<'_>, column: &Column) -> Option<Value> {
    let logical = column.logical_type?;
    Some(match (raw, logical) {
        (ValueRef::Null, _) => Value::Null,
        (ValueRef::Blob(bytes) | ValueRef::Text(bytes), LogicalType::Bytes) => {
            Value::Bytes(bytes.to_vec())
        }
        (ValueRef::Blob(bytes), LogicalType::Uuid) => Value::Uuid(bytes.try_into().ok()?),
        (ValueRef::Text(bytes), _) => Value::from_text(logical, std::str::from_utf8(bytes).ok()?)?,
        (ValueRef::Integer(0), LogicalType::Bool) => Value::Bool(false),
        (ValueRef::Integer(1), LogicalType::Bool) => Value::Bool(true),
        (ValueRef::Integer(value), LogicalType::Integer) => Value::Int(value),
        (ValueRef::Integer(value), LogicalType::Numeric) => Value::Numeric(Numeric::from(value)),
        (ValueRef::Integer(value), LogicalType::Float) => Value::Float(value as f64),
        (ValueRef::Integer(value), LogicalType::Text) => Value::Text(value.to_string()),
        // INTEGER timestamps are Unix seconds.
        (ValueRef::Integer(seconds), LogicalType::Timestamp) => {
            Value::Timestamp(seconds.checked_mul(1_000_000)?)
        }
        (ValueRef::Integer(seconds), LogicalType::TimestampTz) => {
            Value::TimestampTz(seconds.checked_mul(1_000_000)?)
        }
        (ValueRef::Real(value), LogicalType::Numeric) => {
            Value::Numeric(Numeric::parse(&value::format_float(value))?)
        }
        (ValueRef::Real(value), LogicalType::Float) => Value::Float(value),
        (ValueRef::Real(value), LogicalType::Text) => Value::Text(value::format_float(value)),
        _ => return None,
    })
}

/// Encodes a value for storage in a column of the given logical type.
fn encode<'a>(value: &'a Value, column: &Column) -> Result<ToSqlOutput<'a>> {
    let mismatch = || Error::Encode {
        column: column.name.clone(),
        value_kind: value.kind_name(),
        type_name: column.type_name.clone(),
    };
    let logical = column.logical_type.ok_or_else(mismatch)?;
    let compatible = matches!(
        (value, logical),
        (Value::Null, _)
            | (Value::Bool(_), LogicalType::Bool)
            | (
                Value::Int(_),
                LogicalType::Integer | LogicalType::Numeric | LogicalType::Float
            )
            | (Value::Numeric(_), LogicalType::Numeric | LogicalType::Float)
            | (Value::Float(_), LogicalType::Float | LogicalType::Numeric)
            | (Value::Text(_), LogicalType::Text)
            | (Value::Bytes(_), LogicalType::Bytes)
            | (Value::Date(_), LogicalType::Date)
            | (Value::Time(_), LogicalType::Time)
            | (Value::Timestamp(_), LogicalType::Timestamp)
            | (Value::TimestampTz(_), LogicalType::TimestampTz)
            | (Value::Interval(_), LogicalType::Interval)
            | (Value::Uuid(_), LogicalType::Uuid)
            | (Value::Json(_), LogicalType::Json)
            | (Value::Array(_), LogicalType::Array)
    ) || matches!((value, logical), (Value::Numeric(number), LogicalType::Integer) if number.to_i64().is_some());
    if !compatible {
        return Err(mismatch());
    }
    Ok(match (value, logical) {
        (Value::Numeric(number), LogicalType::Integer) => {
            ToSqlOutput::Owned(SqliteValue::Integer(number.to_i64().ok_or_else(mismatch)?))
        }
        (Value::Numeric(number), LogicalType::Float) => {
            ToSqlOutput::Owned(SqliteValue::Real(number.to_f64()))
        }
        (Value::Int(number), LogicalType::Float) => {
            ToSqlOutput::Owned(SqliteValue::Real(*number as f64))
        }
        _ => encode_untyped(value),
    })
}

/// The storage form of a value on its own (also used for key-range parameters).
fn encode_untyped(value: &Value) -> ToSqlOutput<'_> {
    match value {
        Value::Null => ToSqlOutput::Owned(SqliteValue::Null),
        Value::Bool(value) => ToSqlOutput::Owned(SqliteValue::Integer(i64::from(*value))),
        Value::Int(value) => ToSqlOutput::Owned(SqliteValue::Integer(*value)),
        // SQLite turns a NaN REAL into NULL; keep it as text.
        Value::Float(value) if value.is_nan() => ToSqlOutput::Borrowed(ValueRef::Text(b"NaN")),
        Value::Float(value) => ToSqlOutput::Owned(SqliteValue::Real(*value)),
        Value::Bytes(bytes) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
        Value::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
        other => ToSqlOutput::Owned(SqliteValue::Text(other.to_text().unwrap_or_default())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_map_to_logical_types() {
        for (declared, expected) in [
            ("INTEGER", Some(LogicalType::Integer)),
            ("bigint", Some(LogicalType::Integer)),
            ("INTERVAL", Some(LogicalType::Interval)),
            ("NUMERIC(10,2)", Some(LogicalType::Numeric)),
            ("DECIMAL TEXT", Some(LogicalType::Numeric)),
            ("VARCHAR(20)", Some(LogicalType::Text)),
            ("character varying", Some(LogicalType::Text)),
            ("TIMESTAMPTZ", Some(LogicalType::TimestampTz)),
            ("timestamp with time zone", Some(LogicalType::TimestampTz)),
            ("DOUBLE PRECISION", Some(LogicalType::Float)),
            ("text[]", Some(LogicalType::Array)),
            ("", None),
            ("GEOMETRY", None),
        ] {
            assert_eq!(logical_type(declared), expected, "{declared}");
        }
    }
}
