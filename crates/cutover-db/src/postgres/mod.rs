//! PostgreSQL: connection, introspection from `pg_catalog`, reads through
//! `COPY … TO STDOUT (FORMAT binary)` (or a bound query when a key range
//! needs parameters), writes through `COPY … FROM STDIN (FORMAT binary)`.

mod codec;
mod introspect;
mod tls;

use std::sync::Arc;

use futures_util::{StreamExt, pin_mut};
use tokio_postgres::binary_copy::{BinaryCopyInWriter, BinaryCopyOutStream};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config};

use crate::error::{Error, Result};
use crate::locator::{PostgresHost, PostgresUrl, SslMode};
use crate::schema::{Column, Schema, Table, TableName, quote_identifier};
use crate::stream::{Row, RowStream};
use crate::value::{LogicalType, Value};
use crate::{ConnectOptions, ResolvedRead};

use codec::{Param, RawField};

/// An open PostgreSQL connection.
#[derive(Debug)]
pub struct PostgresDatabase {
    client: Client,
    redacted: String,
}

impl PostgresDatabase {
    pub(crate) async fn connect(
        target: &PostgresUrl,
        redacted: &str,
        options: &ConnectOptions,
    ) -> Result<Self> {
        let user = target
            .user
            .clone()
            .or_else(|| options.default_user.clone())
            .unwrap_or_else(|| "postgres".to_owned());
        let dbname = target.dbname.clone().unwrap_or_else(|| user.clone());
        let host_text = match &target.host {
            PostgresHost::Tcp(host) => host.clone(),
            PostgresHost::Unix(path) => path.display().to_string(),
        };
        let password = target
            .password
            .clone()
            .or_else(|| options.password.clone())
            .or_else(|| {
                options.passfile.as_ref().and_then(|file| {
                    crate::pgpass::lookup(file, &host_text, target.port, &dbname, &user)
                })
            });

        let mut config = Config::new();
        config.user(&user).dbname(&dbname).port(target.port);
        match &target.host {
            PostgresHost::Tcp(host) => config.host(host),
            PostgresHost::Unix(path) => config.host_path(path),
        };
        if let Some(password) = &password {
            config.password(password);
        }
        config.connect_timeout(target.connect_timeout);
        if let Some(name) = &target.application_name {
            config.application_name(name);
        }
        let mut server_options = target.options.clone().unwrap_or_default();
        if options.read_only {
            server_options.push_str(" -c default_transaction_read_only=on");
        }
        if !server_options.trim().is_empty() {
            config.options(server_options.trim());
        }
        config.ssl_mode(match target.ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        let tls = tls::connector(target)?;
        let (client, connection) = config
            .connect(tls)
            .await
            .map_err(|error| connect_error(error, redacted, &user, &dbname, password.is_some()))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "postgresql connection ended");
            }
        });
        Ok(PostgresDatabase {
            client,
            redacted: redacted.to_owned(),
        })
    }

    pub(crate) fn redacted_url(&self) -> &str {
        &self.redacted
    }

    pub(crate) async fn introspect(&self) -> Result<Schema> {
        introspect::schema(&self.client, &self.redacted).await
    }

    pub(crate) async fn introspect_tables(&self, only: Option<&TableName>) -> Result<Vec<Table>> {
        introspect::tables(&self.client, only).await
    }

    pub(crate) async fn table_names(&self) -> Result<Vec<TableName>> {
        introspect::table_names(&self.client).await
    }

    pub(crate) async fn count_rows(&self, table: &TableName) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM {}", qualified(table));
        let row = self
            .client
            .query_one(&sql, &[])
            .await
            .map_err(|error| Error::postgres(format!("counting rows of {table}"), error))?;
        let count: i64 = row.get(0);
        Ok(u64::try_from(count).unwrap_or_default())
    }

    pub(crate) async fn execute_batch(&self, sql: &str) -> Result<()> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|error| Error::postgres("running SQL", error))
    }

    pub(crate) async fn read(&self, read: ResolvedRead) -> Result<RowStream> {
        let (sql, parameters) = read.select_sql(
            &qualified(&read.table.name),
            |column| match column.logical_type {
                Some(LogicalType::Array) => format!("{}::text", quote_identifier(&column.name)),
                _ => quote_identifier(&column.name),
            },
            |number| format!("${number}"),
        );
        self.stream(&sql, &parameters, read.columns, read.table.name.to_string())
            .await
    }

    /// The columns a SELECT returns, with their logical types.
    pub(crate) async fn describe(&self, sql: &str) -> Result<Vec<Column>> {
        let statement = self
            .client
            .prepare(sql)
            .await
            .map_err(|error| Error::postgres("describing a query", error))?;
        Ok(statement
            .columns()
            .iter()
            .map(|column| {
                let base = codec::base_type(column.type_());
                let logical = match base.kind() {
                    // Arrays are read as text; a query must cast them itself.
                    postgres_types::Kind::Array(_) => None,
                    postgres_types::Kind::Enum(_) => Some(LogicalType::Text),
                    _ => codec::logical_type(base.name(), "b", ""),
                };
                Column {
                    name: column.name().to_owned(),
                    type_name: column.type_().name().to_owned(),
                    logical_type: logical,
                    nullable: true,
                    default: None,
                }
            })
            .collect())
    }

    /// Streams a SELECT's rows, decoded as `columns` say. `label` names the
    /// table or query in errors.
    pub(crate) async fn stream(
        &self,
        sql: &str,
        parameters: &[Value],
        columns: Vec<Column>,
        label: String,
    ) -> Result<RowStream> {
        let context = format!("reading {label}");
        let statement = self
            .client
            .prepare(sql)
            .await
            .map_err(|error| Error::postgres(&context, error))?;
        if statement.columns().len() != columns.len() {
            return Err(Error::RowWidth {
                table: label,
                got: statement.columns().len(),
                expected: columns.len(),
            });
        }
        let decoder = Arc::new(RowDecoder {
            table: label,
            types: statement
                .columns()
                .iter()
                .map(|column| column.type_().clone())
                .collect(),
            columns: columns.clone(),
        });
        if parameters.is_empty() {
            let copy = self
                .client
                .copy_out(&format!("COPY ({sql}) TO STDOUT (FORMAT binary)"))
                .await
                .map_err(|error| Error::postgres(&context, error))?;
            let rows = BinaryCopyOutStream::new(copy, &decoder.types);
            let rows = rows.map(move |row| {
                let row = row.map_err(|error| Error::postgres(&context, error))?;
                decoder.decode(|index| row.try_get::<RawField>(index))
            });
            Ok(RowStream::new(columns, rows))
        } else {
            let rows = self
                .client
                .query_raw(&statement, parameters.iter().map(Param))
                .await
                .map_err(|error| Error::postgres(&context, error))?;
            let rows = rows.map(move |row| {
                let row = row.map_err(|error| Error::postgres(&context, error))?;
                decoder.decode(|index| row.try_get::<_, RawField>(index))
            });
            Ok(RowStream::new(columns, rows))
        }
    }

    /// Streams a SELECT of two non-NULL `int8` columns in batches, parsing
    /// binary COPY directly: no per-row allocation (hash pairs, counts).
    pub(crate) async fn stream_int8_pairs(&self, sql: &str, label: String) -> Result<PairStream> {
        let context = format!("reading {label}");
        let copy = self
            .client
            .copy_out(&format!("COPY ({sql}) TO STDOUT (FORMAT binary)"))
            .await
            .map_err(|error| Error::postgres(&context, error))?;
        let state = (Box::pin(copy), PairParser::default(), context);
        let stream =
            futures_util::stream::unfold(state, |(mut copy, mut parser, context)| async move {
                if parser.done {
                    return None;
                }
                // One COPY message per row: gather many rows before yielding.
                let mut batch = Vec::with_capacity(PAIR_BATCH);
                while batch.len() < PAIR_BATCH {
                    match copy.next().await {
                        Some(Ok(chunk)) => {
                            if parser.feed(&chunk, &mut batch).is_err() {
                                let error = Error::Decode {
                                    table: context.clone(),
                                    column: "int8 pair".into(),
                                    expected: "two non-NULL int8 columns".into(),
                                };
                                return Some((Err(error), (copy, PairParser::finished(), context)));
                            }
                        }
                        Some(Err(error)) => {
                            let error = Error::postgres(&context, error);
                            return Some((Err(error), (copy, PairParser::finished(), context)));
                        }
                        None => {
                            parser.done = true;
                            break;
                        }
                    }
                }
                Some((Ok(batch), (copy, parser, context)))
            });
        Ok(Box::pin(stream))
    }

    /// The server's version as a number (`150004` for 15.4).
    pub(crate) async fn server_version(&self) -> Result<u32> {
        let row = self
            .client
            .query_one("SELECT current_setting('server_version_num')::int4", &[])
            .await
            .map_err(|error| Error::postgres("reading the server version", error))?;
        let version: i32 = row.get(0);
        Ok(u32::try_from(version).unwrap_or_default())
    }

    pub(crate) async fn write(
        &self,
        table: &Table,
        columns: &[Column],
        mut rows: RowStream,
    ) -> Result<u64> {
        if let Some(column) = columns
            .iter()
            .find(|column| column.logical_type == Some(LogicalType::Array))
        {
            return Err(Error::Unsupported(format!(
                "table {}: column {}: writing array columns is not supported yet",
                table.name, column.name
            )));
        }
        let context = format!("writing table {}", table.name);
        let column_list = columns
            .iter()
            .map(|column| quote_identifier(&column.name))
            .collect::<Vec<_>>()
            .join(", ");
        let probe = self
            .client
            .prepare(&format!(
                "SELECT {column_list} FROM {} LIMIT 0",
                qualified(&table.name)
            ))
            .await
            .map_err(|error| Error::postgres(&context, error))?;
        let types: Vec<Type> = probe
            .columns()
            .iter()
            .map(|column| column.type_().clone())
            .collect();
        let sink = self
            .client
            .copy_in(&format!(
                "COPY {} ({column_list}) FROM STDIN (FORMAT binary)",
                qualified(&table.name)
            ))
            .await
            .map_err(|error| Error::postgres(&context, error))?;
        // Dropping the writer before `finish` aborts the COPY: nothing is left half-written.
        let writer = BinaryCopyInWriter::new(sink, &types);
        pin_mut!(writer);
        while let Some(row) = rows.next().await {
            let row = row?;
            if row.len() != columns.len() {
                return Err(Error::RowWidth {
                    table: table.name.to_string(),
                    got: row.len(),
                    expected: columns.len(),
                });
            }
            let parameters: Vec<Param> = row.iter().map(Param).collect();
            let references: Vec<&(dyn ToSql + Sync)> = parameters
                .iter()
                .map(|parameter| parameter as &(dyn ToSql + Sync))
                .collect();
            writer
                .as_mut()
                .write(&references)
                .await
                .map_err(|error| Error::postgres(&context, error))?;
        }
        writer
            .finish()
            .await
            .map_err(|error| Error::postgres(&context, error))
    }
}

/// Batches of `(i64, i64)` rows.
pub(crate) type PairStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Vec<(i64, i64)>>> + Send>>;

/// Incremental parser of binary COPY holding two non-NULL int8 fields per row.
#[derive(Debug, Default)]
struct PairParser {
    pending: Vec<u8>,
    header_done: bool,
    done: bool,
}

/// Bytes of one (int8, int8) tuple: field count, then length and value twice.
const PAIR_TUPLE: usize = 2 + 2 * (4 + 8);
/// Pairs per batch handed to the caller.
const PAIR_BATCH: usize = 8_192;

impl PairParser {
    fn finished() -> PairParser {
        PairParser {
            done: true,
            ..PairParser::default()
        }
    }

    /// Appends what is complete to `batch`; keeps a partial tuple for the next chunk.
    fn feed(&mut self, chunk: &[u8], batch: &mut Vec<(i64, i64)>) -> std::result::Result<(), ()> {
        if self.done {
            return Ok(());
        }
        let owned;
        let mut input: &[u8] = if self.pending.is_empty() {
            chunk
        } else {
            self.pending.extend_from_slice(chunk);
            owned = std::mem::take(&mut self.pending);
            &owned
        };
        if !self.header_done {
            // Signature (11 bytes), flags (4), extension length (4) and extension.
            if input.len() < 19 {
                self.pending = input.to_vec();
                return Ok(());
            }
            if &input[..11] != b"PGCOPY\n\xff\r\n\0" {
                return Err(());
            }
            let extension =
                u32::from_be_bytes([input[15], input[16], input[17], input[18]]) as usize;
            if input.len() < 19 + extension {
                self.pending = input.to_vec();
                return Ok(());
            }
            input = &input[19 + extension..];
            self.header_done = true;
        }
        while input.len() >= 2 {
            let fields = i16::from_be_bytes([input[0], input[1]]);
            if fields == -1 {
                self.done = true;
                return Ok(());
            }
            if fields != 2 {
                return Err(());
            }
            if input.len() < PAIR_TUPLE {
                break;
            }
            let length = |at: usize| {
                i32::from_be_bytes([input[at], input[at + 1], input[at + 2], input[at + 3]])
            };
            if length(2) != 8 || length(14) != 8 {
                return Err(());
            }
            let value = |at: usize| {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&input[at..at + 8]);
                i64::from_be_bytes(bytes)
            };
            batch.push((value(6), value(18)));
            input = &input[PAIR_TUPLE..];
        }
        if !input.is_empty() {
            self.pending = input.to_vec();
        }
        Ok(())
    }
}

/// Turns wire fields into values for one read.
struct RowDecoder {
    table: String,
    types: Vec<Type>,
    columns: Vec<Column>,
}

impl RowDecoder {
    fn decode<'a>(
        &self,
        get: impl Fn(usize) -> std::result::Result<RawField<'a>, tokio_postgres::Error>,
    ) -> Result<Row> {
        let mut row = Vec::with_capacity(self.columns.len());
        for (index, column) in self.columns.iter().enumerate() {
            let decode_error = || Error::Decode {
                table: self.table.clone(),
                column: column.name.clone(),
                expected: column.type_name.clone(),
            };
            let raw = get(index).map_err(|_| decode_error())?;
            let value = match raw.0 {
                None => Value::Null,
                Some(bytes) => {
                    let logical = column.logical_type.ok_or_else(decode_error)?;
                    codec::decode(logical, &self.types[index], bytes).ok_or_else(decode_error)?
                }
            };
            row.push(value);
        }
        Ok(row)
    }
}

/// `"schema"."table"`, or `"table"` to go by the search path.
pub(crate) fn qualified(table: &TableName) -> String {
    table.quoted()
}

fn connect_error(
    error: tokio_postgres::Error,
    redacted: &str,
    user: &str,
    dbname: &str,
    had_password: bool,
) -> Error {
    if let Some(db) = error.as_db_error() {
        let code = db.code();
        if *code == SqlState::INVALID_PASSWORD {
            return Error::Authentication {
                user: user.to_owned(),
                target: redacted.to_owned(),
            };
        }
        if *code == SqlState::INVALID_CATALOG_NAME {
            return Error::Connect {
                target: redacted.to_owned(),
                reason: format!("database {dbname} does not exist"),
                hint: Some("check the database name in the URL, or create it first".to_owned()),
            };
        }
        return Error::Connect {
            target: redacted.to_owned(),
            reason: db.message().to_owned(),
            hint: (*code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
                .then(|| "the server's pg_hba.conf does not let this user in from here".to_owned()),
        };
    }
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !reason.contains(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        source = cause.source();
    }
    let reason = reason
        .trim_start_matches("error connecting to server: ")
        .to_owned();
    let hint = if reason.contains("password missing") {
        if had_password {
            None
        } else {
            Some(
                "the server asks for a password: put it in the URL, PGPASSWORD or ~/.pgpass"
                    .to_owned(),
            )
        }
    } else if reason.contains("refused")
        || reason.contains("timed out")
        || reason.contains("No such file")
    {
        Some(
            "check the host and port, and that the server is running and accepts connections"
                .to_owned(),
        )
    } else if reason.contains("lookup")
        || reason.contains("resolve")
        || reason.contains("Name or service")
    {
        Some("check the host name".to_owned())
    } else {
        None
    };
    Error::Connect {
        target: redacted.to_owned(),
        reason,
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::PairParser;

    fn copy_bytes(pairs: &[(i64, i64)]) -> Vec<u8> {
        let mut bytes = b"PGCOPY\n\xff\r\n\0".to_vec();
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes.extend_from_slice(&0u32.to_be_bytes());
        for (left, right) in pairs {
            bytes.extend_from_slice(&2i16.to_be_bytes());
            for value in [left, right] {
                bytes.extend_from_slice(&8i32.to_be_bytes());
                bytes.extend_from_slice(&value.to_be_bytes());
            }
        }
        bytes.extend_from_slice(&(-1i16).to_be_bytes());
        bytes
    }

    #[test]
    fn pairs_parse_whatever_the_chunk_boundaries() {
        let pairs: Vec<(i64, i64)> = (0..50)
            .map(|index| (index * 7 - 100, i64::MIN + index))
            .collect();
        let bytes = copy_bytes(&pairs);
        for chunk_size in [1, 3, 25, 26, 27, 1000] {
            let mut parser = PairParser::default();
            let mut parsed = Vec::new();
            for chunk in bytes.chunks(chunk_size) {
                parser.feed(chunk, &mut parsed).expect("valid COPY");
            }
            assert_eq!(parsed, pairs, "chunks of {chunk_size}");
            assert!(parser.done);
        }
    }

    #[test]
    fn a_null_or_a_third_field_is_an_error() {
        let mut bytes = copy_bytes(&[(1, 2)]);
        bytes[19 + 2..19 + 6].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(PairParser::default().feed(&bytes, &mut Vec::new()).is_err());
        let mut bytes = copy_bytes(&[(1, 2)]);
        bytes[19..21].copy_from_slice(&3i16.to_be_bytes());
        assert!(PairParser::default().feed(&bytes, &mut Vec::new()).is_err());
    }
}
