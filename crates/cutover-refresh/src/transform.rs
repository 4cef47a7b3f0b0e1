//! Copying one table under its policy: rows read from the source (filtered
//! by the table's `where`), every column passed through its rule in the
//! stream, and written to the target in one all-or-nothing write. Nothing is
//! held in memory beyond the streams' batches.

use std::sync::Arc;

use cutover_db::{Column, Database, LogicalType, NoProgress, Progress, RowStream, Table};
use futures_util::StreamExt;

use crate::error::Result;
use crate::mask::Masker;
use crate::policy::{Action, Policy, Rule};

/// How one copied table's rows are transformed.
#[derive(Debug, Clone)]
pub struct TableCopy {
    /// The table (as the source has it).
    pub table: Table,
    /// The rows kept: the policy's `where` and the kept parents' conditions.
    pub filter: Option<String>,
    /// Joins the filter and expressions name (each parent's kept keys, as
    /// `LEFT JOIN (…) AS alias ON …`), after the table in the FROM clause.
    pub joins: Vec<String>,
    /// One rule per column, in column order.
    pub rules: Vec<Rule>,
    /// For `shift-date`: the index of the column naming the entity.
    pub entities: Vec<Option<usize>>,
    /// Whether each column must stay unique (fakes take their unique form).
    pub unique: Vec<bool>,
    /// Where the rows are read from when not the table itself: one
    /// partition of a partitioned table.
    pub read_from: Option<cutover_db::TableName>,
    /// Read the table's own rows only (`FROM ONLY`: a table other tables
    /// inherit from, whose children are copied as tables of their own).
    pub only: bool,
    /// Select expressions replacing plain column reads (e.g. a reference set
    /// to NULL when its row was removed), by column index.
    pub expressions: Vec<Option<String>>,
}

/// `joins`, each after a space, to follow a table in a FROM clause.
pub(crate) fn joined(joins: &[String]) -> String {
    joins.iter().map(|join| format!(" {join}")).collect()
}

/// Whether a PostgreSQL column holds large-object references (`oid`, or the
/// `lo` extension's domain): its content is copied, masked as a blob.
pub fn is_large_object(column: &Column) -> bool {
    column.logical_type.is_none()
        && matches!(
            column.type_name.rsplit('.').next(),
            Some("oid") | Some("lo")
        )
}

/// The logical type a column's values are copied and masked as: a
/// large-object reference as its content (bytes), anything else as itself.
pub(crate) fn copied_logical_type(column: &Column) -> Option<LogicalType> {
    if is_large_object(column) {
        Some(LogicalType::Bytes)
    } else {
        column.logical_type
    }
}

/// A SELECT expression reading a large object's content; a dangling
/// reference reads as NULL.
pub(crate) fn large_object_content(quoted: &str) -> String {
    format!(
        "CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_largeobject_metadata m WHERE m.oid = {quoted}) \
         THEN pg_catalog.lo_get({quoted}) END"
    )
}

impl TableCopy {
    /// The copy plan of `table` under `policy`; `None` unless its action is
    /// `copy`. Columns without a rule are `keep` here: `check` has refused
    /// such a policy before anything is copied.
    pub fn plan(policy: &Policy, table: &Table) -> Option<TableCopy> {
        let table_policy = crate::check::policy_table(policy, table)?;
        if table_policy.action != Action::Copy {
            return None;
        }
        let rules: Vec<Rule> = table
            .columns
            .iter()
            .map(|column| {
                table_policy
                    .columns
                    .get(&column.name)
                    .cloned()
                    .unwrap_or(Rule::Keep)
            })
            .collect();
        let entities = rules
            .iter()
            .map(|rule| match rule {
                Rule::ShiftDate { by: Some(by), .. } => {
                    table.columns.iter().position(|column| &column.name == by)
                }
                _ => None,
            })
            .collect();
        let unique_columns = crate::unique::unique_columns(table);
        let unique = table
            .columns
            .iter()
            .map(|column| unique_columns.contains(&column.name))
            .collect();
        let mut table = table.clone();
        let mut expressions = vec![None; rules.len()];
        for (column, expression) in table.columns.iter_mut().zip(&mut expressions) {
            if column.logical_type.is_none() && !is_large_object(column) {
                // A type cutover does not read (a composite type, say): kept
                // or nulled as its text.
                let quoted = cutover_db::schema::quote_identifier(&column.name);
                *expression = Some(format!("CAST({quoted} AS text)"));
                column.logical_type = Some(LogicalType::Text);
            }
            if is_large_object(column) {
                // The content, read where the reference resolves (a dangling one reads as NULL).
                let quoted = cutover_db::schema::quote_identifier(&column.name);
                *expression = Some(large_object_content(&quoted));
                column.type_name = "bytea".into();
                column.logical_type = Some(LogicalType::Bytes);
            }
        }
        Some(TableCopy {
            table,
            filter: table_policy.filter.clone(),
            joins: Vec::new(),
            expressions,
            rules,
            entities,
            unique,
            read_from: None,
            only: false,
        })
    }

    /// Drops the columns whose `keep` is false (e.g. generated columns,
    /// which the target computes).
    pub fn retain_columns(&mut self, keep: &[bool]) {
        fn pick<T>(values: &mut Vec<T>, keep: &[bool]) {
            let mut position = 0;
            values.retain(|_| {
                position += 1;
                keep.get(position - 1).copied().unwrap_or(true)
            });
        }
        // Where each kept column lands; a dropped shift-date entity is no longer read.
        let mut next = 0;
        let moved: Vec<Option<usize>> = keep
            .iter()
            .map(|keep| {
                keep.then(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect();
        for entity in &mut self.entities {
            *entity = entity.and_then(|entity| moved.get(entity).copied().flatten());
        }
        pick(&mut self.entities, keep);
        pick(&mut self.rules, keep);
        pick(&mut self.unique, keep);
        pick(&mut self.expressions, keep);
        pick(&mut self.table.columns, keep);
    }

    pub(crate) fn select(&self, source: &Database) -> String {
        self.select_where(
            source,
            self.filter
                .as_deref()
                .map(|filter| format!("({filter})"))
                .as_deref(),
        )
    }

    /// The SELECT of this table's columns (with their expressions) under
    /// `condition` instead of the plan's own filter.
    pub(crate) fn select_where(&self, source: &Database, condition: Option<&str>) -> String {
        let columns = self
            .table
            .columns
            .iter()
            .zip(&self.expressions)
            .map(|(column, expression)| {
                let quoted = cutover_db::schema::quote_identifier(&column.name);
                if let Some(expression) = expression {
                    expression.clone()
                } else if source.engine() == cutover_db::Engine::Postgres
                    && column.logical_type == Some(LogicalType::Array)
                {
                    format!("{quoted}::text")
                } else {
                    quoted
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let table = self.table.name.quoted();
        let joins = self.joined();
        let (relation, columns, joins, condition) = match &self.read_from {
            // References to the table in conditions and expressions name the partition.
            Some(partition) => {
                let (from, to) = (format!("{table}."), format!("{}.", partition.quoted()));
                (
                    partition.quoted(),
                    columns.replace(&from, &to),
                    joins.replace(&from, &to),
                    condition.map(|condition| condition.replace(&from, &to)),
                )
            }
            None if self.only => (
                format!("ONLY {table}"),
                columns,
                joins,
                condition.map(str::to_owned),
            ),
            None => (table, columns, joins, condition.map(str::to_owned)),
        };
        let mut sql = format!("SELECT {columns} FROM {relation}{joins}");
        if let Some(condition) = condition {
            sql.push_str(&format!(" WHERE {condition}"));
        }
        sql
    }

    /// The plan's joins, each after a space, to follow the table in a FROM clause.
    pub(crate) fn joined(&self) -> String {
        joined(&self.joins)
    }

    /// Streams the table from `source` into `target_table` on `target`,
    /// transformed; returns the rows written. The write is all or nothing.
    pub async fn copy(
        &self,
        source: &Database,
        target: &Database,
        target_table: &cutover_db::TableName,
        masker: Arc<Masker>,
    ) -> Result<u64> {
        self.copy_with_progress(source, target, target_table, masker, Arc::new(NoProgress))
            .await
    }

    /// [`TableCopy::copy`], advancing `progress` as rows are read.
    pub async fn copy_with_progress(
        &self,
        source: &Database,
        target: &Database,
        target_table: &cutover_db::TableName,
        masker: Arc<Masker>,
        progress: Arc<dyn Progress>,
    ) -> Result<u64> {
        const REPORT_EVERY: u64 = 4_096;
        let columns: Vec<Column> = self.table.columns.clone();
        let label = format!("table {}", self.table.name);
        let rows = source
            .query(&self.select(source), columns.clone(), &label)
            .await?;
        let plan = Arc::new(self.clone());
        let mut unreported = 0;
        let transformed = rows.map(move |row| {
            unreported += 1;
            if unreported == REPORT_EVERY {
                progress.advance(unreported);
                unreported = 0;
            }
            let row = row?;
            plan.transform(&masker, row)
        });
        let names: Vec<String> = columns.iter().map(|column| column.name.clone()).collect();
        Ok(target
            .write(target_table, &names, RowStream::new(columns, transformed))
            .await?)
    }

    /// Applies every column's rule to one row. Kept values are moved, never
    /// copied.
    pub fn transform(
        &self,
        masker: &Masker,
        mut row: cutover_db::Row,
    ) -> cutover_db::Result<cutover_db::Row> {
        // Rules read the row as the source has it (a shift-date's entity), so
        // the masked values replace the row's only once all are made.
        let mut masked = Vec::new();
        for (index, value) in row.iter().enumerate() {
            let rule = &self.rules[index];
            if matches!(rule, Rule::Keep) {
                continue;
            }
            let column = &self.table.columns[index];
            let logical = column.logical_type.unwrap_or(LogicalType::Text);
            let entity = self.entities[index].and_then(|entity| row.get(entity));
            let output = masker
                .apply_to_column(rule, value, logical, entity, self.unique[index])
                .map_err(|error| {
                    cutover_db::Error::Source(format!(
                        "table {}: column {}: {error}",
                        self.table.name, column.name
                    ))
                })?;
            masked.push((index, output));
        }
        for (index, output) in masked {
            row[index] = output;
        }
        Ok(row)
    }
}
