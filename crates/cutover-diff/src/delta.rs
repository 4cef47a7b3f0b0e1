//! The full delta of a diff, read back from the work database in order of
//! discovery, and written as JSON Lines or CSV.
//!
//! Each record is one finding: `missing` carries the source row, `extra` the
//! target row, `changed` both rows and the names of the columns that differ
//! (row values only if the diff kept them), `duplicate_key` the side and count.

use std::io::Write;
use std::path::Path;

use rusqlite::Connection;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// Records read from the work database per query.
const PAGE: i64 = 4_096;

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct DeltaRecord {
    /// `missing`, `extra`, `changed` or `duplicate_key`.
    pub kind: String,
    /// For `duplicate_key`: `source` or `target`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub side: Option<String>,
    /// The key, as an object of key columns.
    pub key: Box<RawValue>,
    /// For `changed`: the columns that differ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// For `duplicate_key`: how many rows carry the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// The source row (key and compared columns), when values were kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Box<RawValue>>,
    /// The target row, when values were kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Box<RawValue>>,
}

/// Reads findings page by page, in bounded memory.
#[derive(Debug)]
pub struct DeltaReader {
    connection: Connection,
    after: i64,
    page: std::vec::IntoIter<DeltaRecord>,
    finished: bool,
}

impl DeltaReader {
    pub(crate) fn open(connection: Connection) -> Result<DeltaReader> {
        Ok(DeltaReader {
            connection,
            after: 0,
            page: Vec::new().into_iter(),
            finished: false,
        })
    }

    fn fetch(&mut self) -> Result<()> {
        let failed = |error| Error::store("reading the delta", error);
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT id, kind, side, key, columns, count, source, target FROM finding \
                 WHERE id > ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(failed)?;
        let parse = |text: Option<String>| text.and_then(|text| RawValue::from_string(text).ok());
        let records: Vec<(i64, DeltaRecord)> = statement
            .query_map(rusqlite::params![self.after, PAGE], |row| {
                let side: String = row.get(2)?;
                let columns: Option<String> = row.get(4)?;
                Ok((
                    row.get(0)?,
                    DeltaRecord {
                        kind: row.get(1)?,
                        side: (!side.is_empty()).then_some(side),
                        key: crate::report::raw(row.get(3)?),
                        columns: columns
                            .and_then(|columns| serde_json::from_str(&columns).ok())
                            .unwrap_or_default(),
                        count: row.get::<_, Option<i64>>(5)?.map(|count| count as u64),
                        source: parse(row.get(6)?),
                        target: parse(row.get(7)?),
                    },
                ))
            })
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(failed)?;
        if let Some((last, _)) = records.last() {
            self.after = *last;
        }
        if (records.len() as i64) < PAGE {
            self.finished = true;
        }
        self.page = records
            .into_iter()
            .map(|(_, record)| record)
            .collect::<Vec<_>>()
            .into_iter();
        Ok(())
    }
}

impl Iterator for DeltaReader {
    type Item = Result<DeltaRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(record) = self.page.next() {
                return Some(Ok(record));
            }
            if self.finished {
                return None;
            }
            if let Err(error) = self.fetch() {
                self.finished = true;
                return Some(Err(error));
            }
        }
    }
}

/// The formats a delta file can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaFormat {
    /// One JSON object per line.
    JsonLines,
    /// Comma-separated, JSON in the key and row columns.
    Csv,
    /// Parquet, the same columns as CSV (`count` as an integer).
    Parquet,
}

impl DeltaFormat {
    /// The format a file name's extension asks for.
    pub fn from_path(path: &Path) -> Option<DeltaFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" | "json" => Some(DeltaFormat::JsonLines),
            "csv" => Some(DeltaFormat::Csv),
            "parquet" | "pq" => Some(DeltaFormat::Parquet),
            _ => None,
        }
    }
}

/// The delta's columns in CSV and Parquet files.
const COLUMNS: [&str; 7] = [
    "kind", "side", "key", "columns", "count", "source", "target",
];

impl DeltaRecord {
    /// The record as CSV/Parquet fields: JSON text for the key and rows,
    /// `;`-joined changed columns.
    fn fields(&self) -> [Option<String>; 7] {
        [
            Some(self.kind.clone()),
            self.side.clone(),
            Some(self.key.get().to_owned()),
            (!self.columns.is_empty()).then(|| self.columns.join(";")),
            self.count.map(|count| count.to_string()),
            self.source.as_ref().map(|row| row.get().to_owned()),
            self.target.as_ref().map(|row| row.get().to_owned()),
        ]
    }
}

/// Writes every record to `path` (through a temporary file renamed into
/// place, so a failed write leaves nothing half-written). Returns the count.
pub fn write_file(records: DeltaReader, path: &Path, format: DeltaFormat) -> Result<u64> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let directory = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temporary = tempfile::NamedTempFile::new_in(directory).map_err(io)?;
    if format == DeltaFormat::Parquet {
        let columns: Vec<(String, cutover_db::LogicalType)> = COLUMNS
            .iter()
            .map(|name| {
                let logical = if *name == "count" {
                    cutover_db::LogicalType::Integer
                } else {
                    cutover_db::LogicalType::Text
                };
                ((*name).to_owned(), logical)
            })
            .collect();
        let mut writer = cutover_files::ParquetWriter::create(temporary.path(), &columns)
            .map_err(Error::File)?;
        let mut written = 0u64;
        for record in records {
            let record = record?;
            let count = record.count;
            let row = record
                .fields()
                .into_iter()
                .enumerate()
                .map(|(index, field)| match (index, field) {
                    (4, _) => count.map_or(cutover_db::Value::Null, |count| {
                        cutover_db::Value::Int(count as i64)
                    }),
                    (_, Some(text)) => cutover_db::Value::Text(text),
                    (_, None) => cutover_db::Value::Null,
                })
                .collect();
            writer.write(row).map_err(Error::File)?;
            written += 1;
        }
        writer.finish().map_err(Error::File)?;
        temporary.persist(path).map_err(|error| io(error.error))?;
        return Ok(written);
    }
    let mut out = std::io::BufWriter::new(temporary);
    let mut written = 0u64;
    if format == DeltaFormat::Csv {
        writeln!(out, "{}", COLUMNS.join(",")).map_err(io)?;
    }
    for record in records {
        let record = record?;
        match format {
            DeltaFormat::JsonLines => {
                serde_json::to_writer(&mut out, &record)
                    .map_err(|error| io(std::io::Error::other(error)))?;
                writeln!(out).map_err(io)?;
            }
            DeltaFormat::Csv | DeltaFormat::Parquet => {
                let line = record
                    .fields()
                    .iter()
                    .map(|field| csv_field(field.as_deref().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(",");
                writeln!(out, "{line}").map_err(io)?;
            }
        }
        written += 1;
    }
    let temporary = out.into_inner().map_err(|error| io(error.into_error()))?;
    temporary.as_file().sync_all().map_err(io)?;
    temporary.persist(path).map_err(|error| io(error.error))?;
    Ok(written)
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}
