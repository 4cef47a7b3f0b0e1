//! The engine-independent schema model that introspection fills in.

use std::fmt;

use serde::Serialize;

use crate::value::LogicalType;

/// The database engine behind a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// PostgreSQL (or a server speaking its protocol).
    Postgres,
    /// SQLite.
    Sqlite,
    /// Apache Spark, through Spark Connect.
    Spark,
}

impl fmt::Display for Engine {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Engine::Postgres => "postgresql",
            Engine::Sqlite => "sqlite",
            Engine::Spark => "spark",
        })
    }
}

impl Engine {
    /// `name` as an identifier in this engine's SQL: double quotes in
    /// PostgreSQL and SQLite, backticks in Spark SQL (where double quotes
    /// make a string).
    pub fn quote(self, name: &str) -> String {
        match self {
            Engine::Spark => format!("`{}`", name.replace('`', "``")),
            Engine::Postgres | Engine::Sqlite => quote_identifier(name),
        }
    }

    /// How a column is read so that its values mean what cutover's
    /// canonical encoding means: PostgreSQL arrays as their text form, and
    /// Spark strings under a non-binary collation (`UTF8_LCASE`, …) as
    /// binary-collated strings, so that a join or `<=>` never calls 'a' and
    /// 'A' equal.
    pub fn select_expression(self, column: &crate::Column) -> String {
        let quoted = self.quote(&column.name);
        match self {
            Engine::Postgres if column.logical_type == Some(LogicalType::Array) => {
                format!("{quoted}::text")
            }
            Engine::Spark if column.type_name.starts_with("string collate ") => {
                format!("{quoted} COLLATE UTF8_BINARY")
            }
            _ => quoted,
        }
    }

    /// `table` as SQL in this engine (`[catalog.]schema.table` for Spark,
    /// whose schema part may hold the catalog).
    pub fn quote_table(self, table: &TableName) -> String {
        match (self, &table.schema) {
            (Engine::Spark, Some(schema)) => {
                let mut parts: Vec<String> =
                    schema.split('.').map(|part| self.quote(part)).collect();
                parts.push(self.quote(&table.name));
                parts.join(".")
            }
            (Engine::Spark, None) => self.quote(&table.name),
            _ => table.quoted(),
        }
    }
}

/// A possibly schema-qualified name of a table, view, sequence or function.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TableName {
    /// The schema (PostgreSQL) or `None` for the default.
    pub schema: Option<String>,
    /// The object's own name.
    pub name: String,
}

impl TableName {
    /// A name without schema.
    pub fn new(name: impl Into<String>) -> Self {
        TableName {
            schema: None,
            name: name.into(),
        }
    }

    /// A schema-qualified name.
    pub fn qualified(schema: impl Into<String>, name: impl Into<String>) -> Self {
        TableName {
            schema: Some(schema.into()),
            name: name.into(),
        }
    }

    /// Parses `table`, `schema.table` or `"Quoted"."Names"`; in
    /// `catalog.schema.table` (Spark) the schema holds `catalog.schema`.
    pub fn parse(text: &str) -> Self {
        let parts = split_identifier(text);
        match parts.as_slice() {
            [catalog, schema, name] => {
                TableName::qualified(format!("{catalog}.{schema}"), name.clone())
            }
            [schema, name] => TableName::qualified(schema.clone(), name.clone()),
            [name] => TableName::new(name.clone()),
            _ => TableName::new(text),
        }
    }

    /// The name as SQL: `"schema"."table"`, or `"table"` to go by the search path.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(schema) => format!(
                "{}.{}",
                quote_identifier(schema),
                quote_identifier(&self.name)
            ),
            None => quote_identifier(&self.name),
        }
    }

    /// Whether `other` names this object, treating a missing schema as "any".
    pub fn matches(&self, other: &TableName) -> bool {
        self.name == other.name
            && match (&self.schema, &other.schema) {
                (Some(left), Some(right)) => left == right,
                _ => true,
            }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(formatter, "{schema}.{}", self.name),
            None => formatter.write_str(&self.name),
        }
    }
}

fn split_identifier(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        match character {
            '"' if quoted && characters.peek() == Some(&'"') => {
                characters.next();
                current.push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut current)),
            other => current.push(other),
        }
    }
    parts.push(current);
    parts
}

/// Quotes an identifier for SQL (both engines accept double quotes).
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A column of a table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// The engine's own name for the type (e.g. `numeric(10,2)`).
    pub type_name: String,
    /// cutover's logical type, `None` when the type is not supported.
    pub logical_type: Option<LogicalType>,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// The default expression, as the engine shows it.
    pub default: Option<String>,
}

/// A primary key or unique constraint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Key {
    /// The constraint or index name, when it has one.
    pub name: Option<String>,
    /// The key's columns, in key order.
    pub columns: Vec<String>,
}

/// A foreign key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForeignKey {
    /// The constraint name, when it has one.
    pub name: Option<String>,
    /// The referencing columns.
    pub columns: Vec<String>,
    /// The referenced table.
    pub referenced_table: TableName,
    /// The referenced columns.
    pub referenced_columns: Vec<String>,
    /// What happens on delete (`cascade`, `set null`, `restrict`, `no action`, `set default`).
    pub on_delete: String,
}

/// An index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Index {
    /// The index name.
    pub name: String,
    /// Indexed columns (expressions as text).
    pub columns: Vec<String>,
    /// Whether it is unique.
    pub unique: bool,
    /// Whether it backs the primary key.
    pub primary: bool,
    /// The full definition, where the engine offers one.
    pub definition: Option<String>,
}

/// A table with everything introspection found about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    /// The table's name.
    pub name: TableName,
    /// Columns in table order.
    pub columns: Vec<Column>,
    /// The primary key, if any.
    pub primary_key: Option<Key>,
    /// Unique constraints (not the primary key).
    pub unique_constraints: Vec<Key>,
    /// Foreign keys.
    pub foreign_keys: Vec<ForeignKey>,
    /// Indexes.
    pub indexes: Vec<Index>,
    /// The engine's row estimate, when it has one.
    pub row_estimate: Option<u64>,
    /// The exact row count, when asked for.
    pub row_count: Option<u64>,
}

impl Table {
    /// A table known by its columns alone: no keys, indexes or row counts
    /// (a Spark table, a file).
    pub fn new(name: TableName, columns: Vec<Column>) -> Table {
        Table {
            name,
            columns,
            primary_key: None,
            unique_constraints: Vec::new(),
            foreign_keys: Vec::new(),
            indexes: Vec::new(),
            row_estimate: None,
            row_count: None,
        }
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|column| column.name == name)
    }

    /// The names of all columns.
    pub fn column_names(&self) -> Vec<String> {
        self.columns
            .iter()
            .map(|column| column.name.clone())
            .collect()
    }
}

/// A view (or materialized view).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct View {
    /// The view's name.
    pub name: TableName,
    /// Whether it is materialized.
    pub materialized: bool,
}

/// A function or procedure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Routine {
    /// The routine's name.
    pub name: TableName,
    /// `function`, `procedure`, `aggregate` or `window`.
    pub kind: String,
    /// Argument types.
    pub arguments: String,
    /// Result type (functions).
    pub returns: Option<String>,
}

/// A trigger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trigger {
    /// The trigger's name.
    pub name: String,
    /// The table it fires on.
    pub table: TableName,
    /// The function it calls (PostgreSQL).
    pub function: Option<String>,
    /// Whether it is enabled.
    pub enabled: bool,
}

/// A sequence and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sequence {
    /// The sequence's name (for SQLite, the table it numbers).
    pub name: TableName,
    /// The last value handed out, `None` if never used.
    pub current_value: Option<i64>,
    /// The column it feeds, as `table.column`, when it is owned by one.
    pub owned_by: Option<String>,
}

/// Everything introspection found in one database.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schema {
    /// The engine.
    pub engine: Engine,
    /// The database, as a redacted URL.
    pub database: String,
    /// The server's version string.
    pub server_version: String,
    /// Tables, sorted by name.
    pub tables: Vec<Table>,
    /// Views, sorted by name.
    pub views: Vec<View>,
    /// Sequences, sorted by name.
    pub sequences: Vec<Sequence>,
    /// Functions and procedures (PostgreSQL).
    pub routines: Vec<Routine>,
    /// Triggers.
    pub triggers: Vec<Trigger>,
}

impl Schema {
    /// The table named `name` (a missing schema matches any one schema).
    pub fn table(&self, name: &TableName) -> Option<&Table> {
        self.tables.iter().find(|table| table.name.matches(name))
    }
}

/// Up to three names from `candidates` that look like `wanted`, for hints.
pub fn close_matches<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let wanted_lower = wanted.to_lowercase();
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|candidate| {
            (
                edit_distance(&wanted_lower, &candidate.to_lowercase()),
                candidate,
            )
        })
        .filter(|(distance, candidate)| *distance <= (candidate.len().max(wanted.len()) / 3).max(2))
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(3)
        .map(|(_, name)| name.to_owned())
        .collect()
}

fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    for (row, left_char) in left.chars().enumerate() {
        let mut current = vec![row + 1; right.len() + 1];
        for (column, right_char) in right.iter().enumerate() {
            let cost = usize::from(left_char != *right_char);
            current[column + 1] = (previous[column] + cost)
                .min(previous[column + 1] + 1)
                .min(current[column] + 1);
        }
        previous = current;
    }
    previous[right.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qualified_and_quoted_names() {
        assert_eq!(
            TableName::parse("lab_results"),
            TableName::new("lab_results")
        );
        assert_eq!(
            TableName::parse("reporting.lab_results"),
            TableName::qualified("reporting", "lab_results")
        );
        assert_eq!(
            TableName::parse("\"Odd.Schema\".\"Table \"\"X\"\"\""),
            TableName::qualified("Odd.Schema", "Table \"X\"")
        );
    }

    #[test]
    fn suggests_close_names() {
        let names = ["lab_results", "lab_senders", "programs"];
        assert_eq!(close_matches("lab_result", names), vec!["lab_results"]);
        assert!(close_matches("zzz", names).is_empty());
    }
}
