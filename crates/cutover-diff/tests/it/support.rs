//! Fixtures: the same rows written to PostgreSQL and SQLite through cutover-db,
//! and a diff's findings as a comparable set.

use std::collections::BTreeSet;

use cutover_db::{
    Column, ConnectOptions, Database, DatabaseUrl, Engine, Row, RowStream, TableName,
};
use cutover_diff::{DiffOptions, NoProgress, Report, Source};

/// A place to put tables: a fresh PostgreSQL database or a SQLite file.
pub struct Place {
    pub url: String,
    pub engine: Engine,
    _directory: Option<tempfile::TempDir>,
}

impl Place {
    pub async fn postgres() -> Option<Place> {
        let database = cutover_testing::postgres().await?;
        Some(Place {
            url: database.url,
            engine: Engine::Postgres,
            _directory: None,
        })
    }

    pub fn sqlite(name: &str) -> Place {
        let (directory, path) = cutover_testing::sqlite_path(name);
        Place {
            url: format!("sqlite:{}", path.display()),
            engine: Engine::Sqlite,
            _directory: Some(directory),
        }
    }

    pub async fn database(&self) -> Database {
        let options = ConnectOptions {
            create_sqlite: true,
            ..ConnectOptions::default()
        };
        Database::connect_str(&self.url, &options)
            .await
            .expect("connecting to the test database")
    }

    /// Creates `table` from (name, postgres type, sqlite type) columns and writes the rows.
    pub async fn table(
        &self,
        table: &str,
        columns: &[(&str, &str, &str)],
        key: &[&str],
        rows: Vec<Row>,
    ) {
        let database = self.database().await;
        let definitions = columns
            .iter()
            .map(|(name, postgres, sqlite)| {
                format!(
                    "{name} {}",
                    if self.engine == Engine::Postgres {
                        postgres
                    } else {
                        sqlite
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let key = if key.is_empty() {
            String::new()
        } else {
            format!(", PRIMARY KEY ({})", key.join(", "))
        };
        database
            .execute_batch(&format!("CREATE TABLE {table} ({definitions}{key})"))
            .await
            .expect("creating a fixture table");
        let names: Vec<String> = columns
            .iter()
            .map(|(name, _, _)| (*name).to_owned())
            .collect();
        let stream_columns: Vec<Column> = names
            .iter()
            .map(|name| Column {
                name: name.clone(),
                type_name: String::new(),
                logical_type: None,
                nullable: true,
                default: None,
            })
            .collect();
        database
            .write(
                &TableName::new(table),
                &names,
                RowStream::from_rows(stream_columns, rows),
            )
            .await
            .expect("writing fixture rows");
    }

    pub async fn execute(&self, sql: &str) {
        self.database()
            .await
            .execute_batch(sql)
            .await
            .expect("fixture SQL");
    }

    pub fn source(&self, table: &str) -> Source {
        Source::Table {
            url: DatabaseUrl::parse(&self.url).expect("test URL"),
            table: TableName::new(table),
        }
    }
}

/// One finding, comparable: (kind, key as JSON text, changed columns or side).
pub type Finding = (String, String, String);

pub fn findings(list: &[(&str, &str, &str)]) -> BTreeSet<Finding> {
    list.iter()
        .map(|(kind, key, detail)| ((*kind).to_owned(), (*key).to_owned(), (*detail).to_owned()))
        .collect()
}

/// Runs a diff and returns its report and findings.
pub async fn diff(
    source: &Source,
    target: &Source,
    options: &DiffOptions,
) -> (Report, BTreeSet<Finding>) {
    let diff = cutover_diff::run(
        source,
        target,
        &ConnectOptions::default(),
        options,
        &NoProgress,
    )
    .await
    .unwrap_or_else(|error| panic!("diff failed: {error}"));
    let mut found = BTreeSet::new();
    for record in diff.delta().expect("delta") {
        let record = record.expect("record");
        let detail = if record.kind == "duplicate_key" {
            format!(
                "{}x{}",
                record.side.clone().unwrap_or_default(),
                record.count.unwrap_or(0)
            )
        } else {
            record.columns.join(",")
        };
        found.insert((record.kind, record.key.get().to_owned(), detail));
    }
    (diff.report, found)
}

/// Writes rows as CSV with a header, each value in its canonical text form
/// (NULL as an empty field), quoting every field.
pub fn write_csv(path: &std::path::Path, names: &[&str], rows: &[Row]) {
    let mut text = names.join(",");
    text.push('\n');
    for row in rows {
        let fields: Vec<String> = row
            .iter()
            .map(|value| match value.to_text() {
                None => String::new(),
                Some(text) => format!("\"{}\"", text.replace('"', "\"\"")),
            })
            .collect();
        text.push_str(&fields.join(","));
        text.push('\n');
    }
    std::fs::write(path, text).expect("writing a CSV fixture");
}

/// Writes rows as Parquet with the given column types (others as text).
pub fn write_parquet(
    path: &std::path::Path,
    columns: &[(&str, cutover_db::LogicalType)],
    rows: &[Row],
) {
    let columns: Vec<(String, cutover_db::LogicalType)> = columns
        .iter()
        .map(|(name, logical)| ((*name).to_owned(), *logical))
        .collect();
    let mut writer =
        cutover_files::ParquetWriter::create(path, &columns).expect("creating a Parquet fixture");
    for row in rows {
        writer.write(row.clone()).expect("writing a Parquet row");
    }
    writer.finish().expect("finishing a Parquet fixture");
}

pub fn file_source(path: &std::path::Path) -> Source {
    Source::File(cutover_files::FileSource::open(path).expect("fixture file"))
}

/// Runs a diff that must fail and returns its message.
pub async fn diff_error(source: &Source, target: &Source, options: &DiffOptions) -> String {
    cutover_diff::run(
        source,
        target,
        &ConnectOptions::default(),
        options,
        &NoProgress,
    )
    .await
    .expect_err("the diff must fail")
    .to_string()
}
