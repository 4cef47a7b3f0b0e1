//! Writing rows into a Spark table: the rows are sent a batch at a time as
//! Arrow (a local relation, shown to Spark as a temporary view of cutover's
//! session), each batch inserted by column name with one `INSERT INTO`.
//! Memory holds one batch.

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use spark_connect_proto as proto;

use super::SparkDatabase;
use crate::error::{Error, Result};
use crate::schema::{Column, Engine, Table};
use crate::stream::RowStream;
use crate::value::{LogicalType, Value};

/// Rows sent per batch (each batch is one insert, so one set of files).
const ROWS_PER_BATCH: usize = 65_536;
/// Bytes of text after which a batch is sent early.
const BYTES_PER_BATCH: usize = 32 << 20;

/// How one column is built into Arrow.
enum Builder {
    Bool(BooleanBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Text(StringBuilder),
}

impl Builder {
    fn for_column(column: &Column, table: &Table) -> Result<(Builder, DataType)> {
        Ok(match column.logical_type {
            Some(LogicalType::Bool) => (Builder::Bool(BooleanBuilder::new()), DataType::Boolean),
            Some(LogicalType::Integer) => (Builder::Int(Int64Builder::new()), DataType::Int64),
            Some(LogicalType::Float) => (Builder::Float(Float64Builder::new()), DataType::Float64),
            Some(LogicalType::Text) => (Builder::Text(StringBuilder::new()), DataType::Utf8),
            _ => {
                return Err(Error::Unsupported(format!(
                    "{}.{}: cutover writes text, integer, float and boolean columns into Spark, not {}",
                    table.name, column.name, column.type_name
                )));
            }
        })
    }

    /// Appends a value; returns the bytes of text it added. A value of
    /// another kind than the column's is an error naming only its kind.
    fn push(&mut self, value: &Value, column: &Column) -> Result<usize> {
        let wrong = || {
            Error::Internal(format!(
                "a {} value for the {} column {}",
                value.kind_name(),
                column.type_name,
                column.name
            ))
        };
        match (self, value) {
            (Builder::Bool(builder), Value::Null) => builder.append_null(),
            (Builder::Int(builder), Value::Null) => builder.append_null(),
            (Builder::Float(builder), Value::Null) => builder.append_null(),
            (Builder::Text(builder), Value::Null) => builder.append_null(),
            (Builder::Bool(builder), Value::Bool(flag)) => builder.append_value(*flag),
            (Builder::Int(builder), Value::Int(number)) => builder.append_value(*number),
            (Builder::Float(builder), Value::Float(number)) => builder.append_value(*number),
            (Builder::Text(builder), Value::Text(text)) => {
                builder.append_value(text);
                return Ok(text.len());
            }
            _ => return Err(wrong()),
        }
        Ok(8)
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Bool(builder) => Arc::new(builder.finish()),
            Builder::Int(builder) => Arc::new(builder.finish()),
            Builder::Float(builder) => Arc::new(builder.finish()),
            Builder::Text(builder) => Arc::new(builder.finish()),
        }
    }
}

impl SparkDatabase {
    /// Appends `rows` to `table`'s `columns`; returns the rows written.
    pub(crate) async fn write(
        &self,
        table: &Table,
        columns: &[Column],
        mut rows: RowStream,
    ) -> Result<u64> {
        let mut builders = Vec::with_capacity(columns.len());
        let mut fields = Vec::with_capacity(columns.len());
        for (index, column) in columns.iter().enumerate() {
            let (builder, data_type) = Builder::for_column(column, table)?;
            builders.push(builder);
            fields.push(Field::new(format!("c{index}"), data_type, true));
        }
        let schema = Arc::new(Schema::new(fields));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default();
        let view = format!("cutover_write_{}_{nanos}", std::process::id());
        let insert = format!(
            "INSERT INTO {} ({}) SELECT {} FROM {view}",
            Engine::Spark.quote_table(&table.name),
            columns
                .iter()
                .map(|column| Engine::Spark.quote(&column.name))
                .collect::<Vec<_>>()
                .join(", "),
            (0..columns.len())
                .map(|index| format!("c{index}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        let context = format!("writing into {}", table.name);
        let (mut written, mut pending, mut bytes) = (0u64, 0usize, 0usize);
        loop {
            let row = rows.next().await.transpose()?;
            if let Some(row) = &row {
                for ((builder, value), column) in builders.iter_mut().zip(row).zip(columns) {
                    bytes += builder.push(value, column)?;
                }
                pending += 1;
            }
            let full = pending >= ROWS_PER_BATCH || bytes >= BYTES_PER_BATCH;
            if pending > 0 && (full || row.is_none()) {
                let arrays: Vec<ArrayRef> = builders.iter_mut().map(Builder::finish).collect();
                let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|error| {
                    Error::Internal(format!("building an Arrow batch: {error}"))
                })?;
                self.insert_batch(&batch, &view, &insert, &context).await?;
                written += pending as u64;
                (pending, bytes) = (0, 0);
            }
            if row.is_none() {
                break;
            }
        }
        self.execute_batch(&format!("DROP VIEW IF EXISTS {view}"))
            .await?;
        Ok(written)
    }

    /// One batch: shown to Spark as the temporary view `view`, then inserted.
    async fn insert_batch(
        &self,
        batch: &RecordBatch,
        view: &str,
        insert: &str,
        context: &str,
    ) -> Result<()> {
        let mut data = Vec::new();
        {
            let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut data, &batch.schema())
                .map_err(|error| {
                Error::Internal(format!("encoding an Arrow batch: {error}"))
            })?;
            writer
                .write(batch)
                .and_then(|()| writer.finish())
                .map_err(|error| Error::Internal(format!("encoding an Arrow batch: {error}")))?;
        }
        let command = proto::Command {
            command_type: Some(proto::command::CommandType::CreateDataframeView(
                proto::CreateDataFrameViewCommand {
                    input: Some(proto::Relation {
                        rel_type: Some(proto::relation::RelType::LocalRelation(
                            proto::LocalRelation {
                                data: Some(data.into()),
                                schema: None,
                            },
                        )),
                        ..proto::Relation::default()
                    }),
                    name: view.to_owned(),
                    is_global: false,
                    replace: true,
                },
            )),
        };
        let mut responses = self
            .execute_plan(proto::plan::OpType::Command(command), context)
            .await?;
        while responses
            .message()
            .await
            .map_err(|error| self.error(context, error))?
            .is_some()
        {}
        self.execute_batch(insert).await
    }
}
