//! Apache Spark through Spark Connect (gRPC): schemas from the server's plan
//! analysis, rows as Arrow batches from reattachable executions, decoded
//! into [`Value`](crate::Value)s by [`crate::arrow`] on the way.
//!
//! Every query carries an operation tag (`cutover`), so that a caller can
//! interrupt what it started. A token comes from [`ConnectOptions`] (the
//! CLI reads it from the environment), never from the URL.

use std::io::Cursor;

use arrow_ipc::reader::StreamReader;
use spark_connect_core::{ChannelBuilder, RetryPolicy, SparkConnectClient, SparkError};
use spark_connect_proto as proto;

use crate::error::{Error, Result};
use crate::locator::SparkUrl;
use crate::schema::{Column, Engine, Table, TableName};
use crate::stream::{RowStream, from_batches};
use crate::value::LogicalType;
use crate::{ConnectOptions, ResolvedRead};

pub mod hash;
mod write;

/// The tag every operation of cutover's carries on the server.
pub const OPERATION_TAG: &str = "cutover";

/// An open Spark Connect session.
pub struct SparkDatabase {
    client: SparkConnectClient,
    redacted: String,
}

impl std::fmt::Debug for SparkDatabase {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SparkDatabase")
            .field("url", &self.redacted)
            .finish_non_exhaustive()
    }
}

/// A Spark message with literal values cut out: anything in single quotes
/// (where Spark puts values, e.g. `The value 'x' cannot be cast`) becomes
/// `'…'`; identifiers (backticks) and type names (double quotes) stay.
fn scrub(message: &str) -> String {
    let first_line = message.lines().next().unwrap_or("");
    let mut scrubbed = String::with_capacity(first_line.len());
    let mut quoted = false;
    for character in first_line.chars() {
        match character {
            '\'' if quoted => {
                scrubbed.push_str("…'");
                quoted = false;
            }
            '\'' => {
                scrubbed.push('\'');
                quoted = true;
            }
            _ if quoted => {}
            other => scrubbed.push(other),
        }
    }
    if quoted {
        scrubbed.push_str("…'");
    }
    scrubbed.chars().take(400).collect()
}

impl SparkDatabase {
    fn error(&self, context: impl std::fmt::Display, error: SparkError) -> Error {
        spark_error(&self.redacted, context, error)
    }

    /// Opens a session (lazily: the first call dials) and checks that the
    /// server answers, so that a wrong address fails here, once.
    pub async fn connect(
        url: &SparkUrl,
        redacted: &str,
        options: &ConnectOptions,
    ) -> Result<SparkDatabase> {
        let mut builder =
            ChannelBuilder::parse(&url.connection_string()).map_err(|error| Error::BadUrl {
                url: redacted.to_owned(),
                reason: scrub(&error.to_string()),
                hint: Some("write sc://host:15002/;use_ssl=true".to_owned()),
            })?;
        if let Some(token) = &options.spark_token {
            builder.set("token", token);
        }
        if let Some(session) = &options.spark_session {
            builder.set("session_id", session);
        }
        // Spark keys a session by user and id: every request (and an
        // interrupt) must name the same user.
        if builder.get("user_id").is_none() {
            builder.set("user_id", "cutover");
        }
        let mut client = SparkConnectClient::connect(&builder)
            .await
            .map_err(|error| spark_error(redacted, "connecting", error))?;
        // A server that is down is not waited for for an hour: a few quick tries.
        client.set_retry_policy(RetryPolicy {
            max_retries: Some(3),
            initial_backoff_ms: 200,
            max_backoff_ms: Some(2_000),
            max_retry_exception_elapsed_time_ms: Some(10_000),
            ..RetryPolicy::default()
        });
        let database = SparkDatabase {
            client,
            redacted: redacted.to_owned(),
        };
        database.describe("SELECT 1").await?;
        Ok(database)
    }

    /// Interrupts the operations tagged [`OPERATION_TAG`] in the session of
    /// `options`, from a connection of its own.
    pub async fn interrupt(
        url: &SparkUrl,
        redacted: &str,
        options: &ConnectOptions,
    ) -> Result<usize> {
        let database = SparkDatabase::connect(url, redacted, options).await?;
        let interrupted = database
            .client
            .interrupt_tag(OPERATION_TAG)
            .await
            .map_err(|error| database.error("interrupting cutover's operations", error))?;
        Ok(interrupted.len())
    }

    pub fn redacted_url(&self) -> &str {
        &self.redacted
    }

    fn user_context(&self) -> proto::UserContext {
        proto::UserContext {
            user_id: self.client.user_id().unwrap_or("cutover").to_owned(),
            ..proto::UserContext::default()
        }
    }

    fn sql_relation(sql: &str) -> proto::Relation {
        proto::Relation {
            rel_type: Some(proto::relation::RelType::Sql(proto::Sql {
                query: sql.to_owned(),
                ..proto::Sql::default()
            })),
            ..proto::Relation::default()
        }
    }

    fn table_relation(table: &TableName) -> proto::Relation {
        proto::Relation {
            rel_type: Some(proto::relation::RelType::Read(proto::Read {
                read_type: Some(proto::read::ReadType::NamedTable(proto::read::NamedTable {
                    unparsed_identifier: Engine::Spark.quote_table(table),
                    ..proto::read::NamedTable::default()
                })),
                ..proto::Read::default()
            })),
            ..proto::Relation::default()
        }
    }

    /// The columns a relation returns.
    async fn schema_of(&self, relation: proto::Relation, what: &str) -> Result<Vec<Column>> {
        let request = proto::AnalyzePlanRequest {
            session_id: self.client.session_id().to_owned(),
            user_context: Some(self.user_context()),
            client_type: Some("cutover".to_owned()),
            analyze: Some(proto::analyze_plan_request::Analyze::Schema(
                proto::analyze_plan_request::Schema {
                    plan: Some(proto::Plan {
                        op_type: Some(proto::plan::OpType::Root(relation)),
                    }),
                },
            )),
            ..proto::AnalyzePlanRequest::default()
        };
        let answer = self
            .client
            .analyze_plan(request)
            .await
            .map_err(|error| self.error(what, error))?;
        let Some(proto::analyze_plan_response::Result::Schema(schema)) = answer.result else {
            return Err(Error::Unsupported(format!(
                "{}: {what}: the server gave no schema",
                self.redacted
            )));
        };
        let Some(proto::data_type::Kind::Struct(structure)) =
            schema.schema.and_then(|data_type| data_type.kind)
        else {
            return Err(Error::Unsupported(format!(
                "{}: {what}: the schema is not a row type",
                self.redacted
            )));
        };
        Ok(structure
            .fields
            .iter()
            .map(|field| {
                let (type_name, logical_type) = describe_type(field.data_type.as_ref());
                Column {
                    name: field.name.clone(),
                    type_name,
                    logical_type,
                    nullable: field.nullable,
                    default: None,
                }
            })
            .collect())
    }

    /// One table's columns (Spark tables have no primary key or indexes
    /// that it enforces).
    pub async fn introspect_tables(&self, only: Option<&TableName>) -> Result<Vec<Table>> {
        let names = match only {
            // An unqualified name is given the schema SHOW TABLES lists it in,
            // so that it reads the same as in a whole-schema introspection.
            Some(name) if name.schema.is_none() => {
                let listed: Vec<TableName> = self
                    .table_names()
                    .await?
                    .into_iter()
                    .filter(|listed| listed.name.eq_ignore_ascii_case(&name.name))
                    .collect();
                match listed.as_slice() {
                    [one] => vec![one.clone()],
                    _ => vec![name.clone()],
                }
            }
            Some(name) => vec![name.clone()],
            None => self.table_names().await?,
        };
        let mut tables = Vec::with_capacity(names.len());
        for name in names {
            let what = format!("reading the schema of {name}");
            let columns = match self.schema_of(Self::table_relation(&name), &what).await {
                Ok(columns) => columns,
                Err(Error::Spark { message, .. })
                    if message.contains("TABLE_OR_VIEW_NOT_FOUND") =>
                {
                    continue;
                }
                Err(error) => return Err(error),
            };
            tables.push(Table::new(name, columns));
        }
        Ok(tables)
    }

    /// The tables of the current schema.
    pub async fn table_names(&self) -> Result<Vec<TableName>> {
        let columns = vec![
            text_column("namespace"),
            text_column("tableName"),
            Column {
                logical_type: Some(LogicalType::Bool),
                ..text_column("isTemporary")
            },
        ];
        let mut rows = self
            .stream("SHOW TABLES", columns, "listing tables".to_owned())
            .await?;
        let mut names = Vec::new();
        while let Some(row) = rows.next().await {
            let row = row?;
            if let (Some(crate::Value::Text(schema)), Some(crate::Value::Text(name))) =
                (row.first(), row.get(1))
            {
                names.push(if schema.is_empty() {
                    TableName::new(name.clone())
                } else {
                    TableName::qualified(schema.clone(), name.clone())
                });
            }
        }
        Ok(names)
    }

    /// The server's Spark version, e.g. `Spark 4.0.1`.
    pub async fn version(&self) -> Result<String> {
        let version = self
            .first_value(
                "SELECT version()",
                text_column("version"),
                "asking the version",
            )
            .await?;
        Ok(match version {
            Some(crate::Value::Text(version)) => format!(
                "Spark {}",
                version.split_whitespace().next().unwrap_or(&version)
            ),
            _ => "Spark".to_owned(),
        })
    }

    pub async fn count_rows(&self, table: &TableName) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM {}", Engine::Spark.quote_table(table));
        let column = Column {
            logical_type: Some(LogicalType::Integer),
            ..text_column("count")
        };
        match self
            .first_value(&sql, column, &format!("counting {table}"))
            .await?
        {
            Some(crate::Value::Int(count)) => Ok(count as u64),
            _ => Ok(0),
        }
    }

    /// The first value of the first row `sql` answers, read as `column`.
    async fn first_value(
        &self,
        sql: &str,
        column: Column,
        label: &str,
    ) -> Result<Option<crate::Value>> {
        let mut rows = self.stream(sql, vec![column], label.to_owned()).await?;
        Ok(rows
            .next()
            .await
            .transpose()?
            .and_then(|row| row.into_iter().next()))
    }

    /// The columns a SELECT returns.
    pub async fn describe(&self, sql: &str) -> Result<Vec<Column>> {
        self.schema_of(Self::sql_relation(sql), "describing the query")
            .await
    }

    pub(crate) async fn read(&self, read: ResolvedRead) -> Result<RowStream> {
        let mut sql = format!(
            "SELECT {} FROM {}",
            read.columns
                .iter()
                .map(|column| Engine::Spark.quote(&column.name))
                .collect::<Vec<_>>()
                .join(", "),
            Engine::Spark.quote_table(&read.table.name)
        );
        if !matches!(read.lower, std::ops::Bound::Unbounded)
            || !matches!(read.upper, std::ops::Bound::Unbounded)
        {
            return Err(Error::Unsupported(
                "key-range reads are not offered on Spark".to_owned(),
            ));
        }
        if read.ordered && !read.key.is_empty() {
            let key: Vec<String> = read
                .key
                .iter()
                .map(|name| Engine::Spark.quote(name))
                .collect();
            sql.push_str(&format!(" ORDER BY {}", key.join(", ")));
        }
        let label = read.table.name.to_string();
        self.stream(&sql, read.columns, label).await
    }

    /// Runs SQL statements one by one (schema set-up, fixtures).
    pub async fn execute_batch(&self, sql: &str) -> Result<()> {
        for statement in sql
            .split(';')
            .map(str::trim)
            .filter(|text| !text.is_empty())
        {
            let mut rows = self
                .stream_any(statement, "running a statement".to_owned())
                .await?;
            while rows.next().await.transpose()?.is_some() {}
        }
        Ok(())
    }

    async fn execute(
        &self,
        sql: &str,
        context: &str,
    ) -> Result<spark_connect_core::client::ReattachableResponseStream> {
        self.execute_plan(proto::plan::OpType::Root(Self::sql_relation(sql)), context)
            .await
    }

    /// Runs a plan (a relation or a command) under cutover's tag.
    async fn execute_plan(
        &self,
        op_type: proto::plan::OpType,
        context: &str,
    ) -> Result<spark_connect_core::client::ReattachableResponseStream> {
        let request = proto::ExecutePlanRequest {
            session_id: self.client.session_id().to_owned(),
            user_context: Some(self.user_context()),
            client_type: Some("cutover".to_owned()),
            plan: Some(proto::Plan {
                op_type: Some(op_type),
            }),
            tags: vec![OPERATION_TAG.to_owned()],
            ..proto::ExecutePlanRequest::default()
        };
        self.client
            .execute_plan_reattachable(request)
            .await
            .map_err(|error| self.error(context, error))
    }

    /// The rows of `sql`, decoded as `columns` say, in bounded memory: a
    /// task reads the responses and sends rows a batch at a time over a
    /// channel of four batches.
    pub async fn stream(
        &self,
        sql: &str,
        columns: Vec<Column>,
        label: String,
    ) -> Result<RowStream> {
        let responses = self.execute(sql, &label).await?;
        Ok(RowStream::new(
            columns.clone(),
            self.rows(responses, Some(columns), label),
        ))
    }

    /// Like [`SparkDatabase::stream`], with the columns taken from the
    /// answer itself (statements whose output nobody reads).
    async fn stream_any(&self, sql: &str, label: String) -> Result<RowStream> {
        let responses = self.execute(sql, &label).await?;
        Ok(RowStream::new(
            Vec::new(),
            self.rows(responses, None, label),
        ))
    }

    fn rows(
        &self,
        responses: spark_connect_core::client::ReattachableResponseStream,
        columns: Option<Vec<Column>>,
        label: String,
    ) -> futures_util::stream::BoxStream<'static, Result<crate::Row>> {
        let mut rows_before = 0u64;
        let decode_label = label.clone();
        from_batches(self.batches(responses, label, move |record_batch| {
            let wanted = columns.clone().unwrap_or_else(|| {
                record_batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|field| crate::arrow::column(field))
                    .collect()
            });
            let rows =
                crate::arrow::batch_rows(record_batch, &wanted, rows_before).map_err(|cell| {
                    Error::Decode {
                        table: decode_label.clone(),
                        column: cell.column,
                        expected: cell.expected.to_owned(),
                    }
                })?;
            rows_before += rows.len() as u64;
            Ok(rows)
        }))
    }

    /// The two non-NULL bigint columns `sql` answers (hash pairs), a batch
    /// at a time, read straight from the Arrow arrays.
    pub async fn stream_int8_pairs(
        &self,
        sql: &str,
        label: String,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<Vec<(i64, i64)>>>> {
        let responses = self.execute(sql, &label).await?;
        let decode_label = label.clone();
        let receiver = self.batches(responses, label, move |record_batch| {
            let column = |index: usize| {
                record_batch
                    .columns()
                    .get(index)
                    .and_then(|array| array.as_any().downcast_ref::<arrow_array::Int64Array>())
                    .filter(|array| arrow_array::Array::null_count(*array) == 0)
                    .ok_or_else(|| Error::Decode {
                        table: decode_label.clone(),
                        column: format!("#{}", index + 1),
                        expected: "a non-NULL bigint".to_owned(),
                    })
            };
            let (first, second) = (column(0)?, column(1)?);
            Ok(first
                .values()
                .iter()
                .zip(second.values().iter())
                .map(|(first, second)| (*first, *second))
                .collect())
        });
        Ok(Box::pin(futures_util::stream::unfold(
            receiver,
            |mut receiver| async move { receiver.recv().await.map(|batch| (batch, receiver)) },
        )))
    }

    /// Reads the responses on a task and sends each Arrow batch, decoded by
    /// `decode`, over a channel of four batches (bounded memory); an error
    /// ends the stream.
    fn batches<T: Send + 'static>(
        &self,
        mut responses: spark_connect_core::client::ReattachableResponseStream,
        label: String,
        mut decode: impl FnMut(&arrow_array::RecordBatch) -> Result<Vec<T>> + Send + 'static,
    ) -> tokio::sync::mpsc::Receiver<Result<Vec<T>>> {
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let redacted = self.redacted.clone();
        tokio::spawn(async move {
            loop {
                let response = match responses.message().await {
                    Ok(Some(response)) => response,
                    Ok(None) => return,
                    Err(error) => {
                        let _ = sender
                            .send(Err(spark_error(&redacted, &label, error)))
                            .await;
                        return;
                    }
                };
                let Some(proto::execute_plan_response::ResponseType::ArrowBatch(batch)) =
                    response.response_type
                else {
                    continue;
                };
                let reader = match StreamReader::try_new(Cursor::new(batch.data), None) {
                    Ok(reader) => reader,
                    Err(error) => {
                        let _ = sender
                            .send(Err(Error::Source(format!(
                                "{label}: an Arrow batch from the server does not decode: {error}"
                            ))))
                            .await;
                        return;
                    }
                };
                for record_batch in reader {
                    let decoded = match record_batch {
                        Ok(record_batch) => decode(&record_batch),
                        Err(error) => Err(Error::Source(format!(
                            "{label}: an Arrow batch from the server does not decode: {error}"
                        ))),
                    };
                    let failed = decoded.is_err();
                    if sender.send(decoded).await.is_err() || failed {
                        return;
                    }
                }
            }
        });
        receiver
    }
}

fn text_column(name: &str) -> Column {
    Column {
        name: name.to_owned(),
        type_name: "string".to_owned(),
        logical_type: Some(LogicalType::Text),
        nullable: true,
        default: None,
    }
}

/// A Spark error as cutover's: unreachable servers and refused tokens as
/// connection errors with a hint, everything else with its values cut out.
fn spark_error(redacted: &str, context: impl std::fmt::Display, error: SparkError) -> Error {
    let message = scrub(&error.to_string());
    tracing::debug!(code = ?error.grpc_code, %message, "Spark Connect error");
    let lower = message.to_ascii_lowercase();
    let connect = |reason: &str, hint: &str| Error::Connect {
        target: redacted.to_owned(),
        reason: reason.to_owned(),
        hint: Some(hint.to_owned()),
    };
    if lower.contains("certificate") || lower.contains("handshake") {
        return connect(
            "the TLS handshake failed (the server's certificate is not trusted, or does not name this host)",
            "trust the certificate's CA in the system's store or with SSL_CERT_FILE=ca.pem; or drop use_ssl=true for a plaintext server",
        );
    }
    match error.grpc_code {
        // UNAUTHENTICATED
        Some(16) => {
            return connect(
                "the server refused the token",
                "check the token in CUTOVER_SPARK_TOKEN",
            );
        }
        // PERMISSION_DENIED
        Some(7) => {
            return connect(
                "the server refused the call (permission denied)",
                "check the token in CUTOVER_SPARK_TOKEN and the connection string's parameters (a platform may need one, e.g. x-databricks-cluster-id=…)",
            );
        }
        _ => {}
    }
    if lower.contains("unavailable")
        || lower.contains("connection refused")
        || lower.contains("transport error")
        || lower.contains("dns error")
    {
        return connect(
            "the Spark Connect server does not answer",
            "check the host and port (Spark Connect listens on 15002 by default), that the server runs Spark Connect, and use_ssl=true if it speaks TLS",
        );
    }
    Error::Spark {
        context: context.to_string(),
        message,
    }
}

/// Spark's name for a type and cutover's logical type for it (`None`:
/// cutover cannot compare it, e.g. maps and structs).
fn describe_type(data_type: Option<&proto::DataType>) -> (String, Option<LogicalType>) {
    use proto::data_type::Kind;
    let Some(kind) = data_type.and_then(|data_type| data_type.kind.as_ref()) else {
        return ("unknown".to_owned(), None);
    };
    let (name, logical): (String, Option<LogicalType>) = match kind {
        Kind::Boolean(_) => ("boolean".into(), Some(LogicalType::Bool)),
        Kind::Byte(_) => ("tinyint".into(), Some(LogicalType::Integer)),
        Kind::Short(_) => ("smallint".into(), Some(LogicalType::Integer)),
        Kind::Integer(_) => ("int".into(), Some(LogicalType::Integer)),
        Kind::Long(_) => ("bigint".into(), Some(LogicalType::Integer)),
        Kind::Float(_) => ("float".into(), Some(LogicalType::Float)),
        Kind::Double(_) => ("double".into(), Some(LogicalType::Float)),
        Kind::Decimal(decimal) => (
            format!(
                "decimal({},{})",
                decimal.precision.unwrap_or(10),
                decimal.scale.unwrap_or(0)
            ),
            Some(LogicalType::Numeric),
        ),
        Kind::String(string) => (
            match string.collation.as_str() {
                "" | "UTF8_BINARY" => "string".into(),
                collation => format!("string collate {collation}"),
            },
            Some(LogicalType::Text),
        ),
        Kind::Char(char_type) => (
            format!("char({})", char_type.length),
            Some(LogicalType::Text),
        ),
        Kind::VarChar(varchar) => (
            format!("varchar({})", varchar.length),
            Some(LogicalType::Text),
        ),
        Kind::Binary(_) => ("binary".into(), Some(LogicalType::Bytes)),
        Kind::Date(_) => ("date".into(), Some(LogicalType::Date)),
        Kind::Timestamp(_) => ("timestamp".into(), Some(LogicalType::TimestampTz)),
        Kind::TimestampNtz(_) => ("timestamp_ntz".into(), Some(LogicalType::Timestamp)),
        Kind::Array(_) => ("array".into(), None),
        Kind::Map(_) => ("map".into(), None),
        Kind::Struct(_) => ("struct".into(), None),
        other => {
            let debug = format!("{other:?}");
            let name = debug
                .split(['(', ' ', '{'])
                .next()
                .unwrap_or("unknown")
                .to_ascii_lowercase();
            (name, None)
        }
    };
    (name, logical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_spark_messages_are_cut_out() {
        assert_eq!(
            scrub(
                "[CAST_INVALID_INPUT] The value 'HC-12345' of the type \"STRING\" cannot be cast to `id`.\nstack"
            ),
            "[CAST_INVALID_INPUT] The value '…' of the type \"STRING\" cannot be cast to `id`."
        );
        assert_eq!(scrub("open 'quote"), "open '…'");
    }
}
