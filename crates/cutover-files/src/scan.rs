//! Parallel columnar reads of a Parquet file: its row groups shared out to
//! `jobs` threads, each reading only the wanted columns and handing the
//! caller's function each batch's arrays (prepared as
//! [`cutover_db::arrow::prepare`] says) with no value built per cell. What
//! the function makes of a batch is sent over a bounded channel, so memory
//! holds a few batches per thread whatever the file's size. Batches arrive
//! in no particular order.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow_array::ArrayRef;
use cutover_db::arrow::prepare;
use cutover_db::{Column, LogicalType};
use futures_util::stream::BoxStream;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::{column_indices, parquet_file::parquet_error};

/// Rows per batch handed to the caller's function.
const SCAN_BATCH_ROWS: usize = 8_192;

/// A cell the caller's function could not read: the row within the batch
/// and the column's position among the wanted columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable {
    /// The row within the batch, 0-based.
    pub row: usize,
    /// The column's position among the wanted columns.
    pub column: usize,
}

/// What a scan does with each batch: its arrays in the wanted columns'
/// order, and how many rows of the file came before it.
pub type BatchFn<T> =
    Arc<dyn Fn(&[ArrayRef], u64) -> std::result::Result<T, Unreadable> + Send + Sync>;

pub(crate) fn scan<T: Send + 'static>(
    path: &Path,
    columns: &[Column],
    jobs: usize,
    map: BatchFn<T>,
) -> Result<BoxStream<'static, Result<T>>> {
    let file = open(path)?;
    let metadata = ArrowReaderMetadata::load(&file, Default::default())
        .map_err(|error| parquet_error(path, error))?;
    let names: Vec<String> = metadata
        .schema()
        .fields()
        .iter()
        .map(|field| field.name().clone())
        .collect();
    let indices = column_indices(path, &names, columns)?;
    let mut projection = indices.clone();
    projection.sort_unstable();
    projection.dedup();
    let positions: Vec<usize> = indices
        .iter()
        .map(|index| {
            projection
                .iter()
                .position(|kept| kept == index)
                .unwrap_or(0)
        })
        .collect();
    let groups = metadata.metadata().num_row_groups();
    let mut first_rows = Vec::with_capacity(groups);
    let mut before = 0u64;
    for group in metadata.metadata().row_groups() {
        first_rows.push(before);
        before += u64::try_from(group.num_rows()).unwrap_or_default();
    }
    let shared = Arc::new(Shared {
        path: path.to_path_buf(),
        columns: columns.to_vec(),
        metadata,
        projection,
        positions,
        first_rows,
        next: AtomicUsize::new(0),
    });
    let jobs = jobs.clamp(1, groups.max(1));
    let (sender, receiver) = mpsc::channel::<Result<T>>(2 * jobs);
    for _ in 0..jobs {
        let shared = shared.clone();
        let sender = sender.clone();
        let map = map.clone();
        std::thread::spawn(move || {
            if let Err(error) = shared.work(&map, &sender) {
                let _ = sender.blocking_send(Err(error));
            }
        });
    }
    Ok(Box::pin(futures_util::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) },
    )))
}

fn open(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

struct Shared {
    path: PathBuf,
    columns: Vec<Column>,
    metadata: ArrowReaderMetadata,
    projection: Vec<usize>,
    /// Position of each wanted column within the projected batch.
    positions: Vec<usize>,
    /// Rows before each row group.
    first_rows: Vec<u64>,
    /// The next row group to read.
    next: AtomicUsize,
}

impl Shared {
    /// Reads row groups until none is left or the consumer has gone.
    fn work<T>(&self, map: &BatchFn<T>, sender: &mpsc::Sender<Result<T>>) -> Result<()> {
        loop {
            let group = self.next.fetch_add(1, Ordering::Relaxed);
            if group >= self.first_rows.len() {
                return Ok(());
            }
            let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(
                open(&self.path)?,
                self.metadata.clone(),
            );
            let mask =
                ProjectionMask::roots(builder.parquet_schema(), self.projection.iter().copied());
            let batches = builder
                .with_projection(mask)
                .with_row_groups(vec![group])
                .with_batch_size(SCAN_BATCH_ROWS)
                .build()
                .map_err(|error| parquet_error(&self.path, error))?;
            let mut before = self.first_rows[group];
            for batch in batches {
                let batch = batch.map_err(|error| parquet_error(&self.path, error))?;
                let arrays = self
                    .positions
                    .iter()
                    .map(|position| {
                        prepare(batch.column(*position))
                            .map_err(|error| parquet_error(&self.path, error))
                    })
                    .collect::<Result<Vec<ArrayRef>>>()?;
                let made = map(&arrays, before).map_err(|unreadable| {
                    let column = &self.columns[unreadable.column];
                    Error::Field {
                        path: self.path.display().to_string(),
                        line: before + unreadable.row as u64 + 1,
                        column: column.name.clone(),
                        expected: column
                            .logical_type
                            .map_or("supported value", LogicalType::name)
                            .to_owned(),
                    }
                });
                let failed = made.is_err();
                if sender.blocking_send(made).is_err() || failed {
                    return Ok(());
                }
                before += batch.num_rows() as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use futures_util::StreamExt;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::*;

    /// 1,000 rows in row groups of 64: (id, text), the text `"bad"` at id 700.
    fn fixture(path: &Path) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("text", DataType::Utf8, true),
        ]));
        let properties = WriterProperties::builder()
            .set_max_row_group_size(64)
            .build();
        let file = std::fs::File::create(path).expect("fixture");
        let mut writer =
            ArrowWriter::try_new(file, schema.clone(), Some(properties)).expect("writer");
        let ids: Vec<i64> = (1..=1_000).collect();
        let texts: Vec<String> = ids
            .iter()
            .map(|id| if *id == 700 { "bad".to_owned() } else { id.to_string() })
            .collect();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(texts)),
            ],
        )
        .expect("batch");
        writer.write(&batch).expect("write");
        writer.close().expect("close");
    }

    fn column(name: &str, logical: LogicalType) -> Column {
        Column {
            name: name.to_owned(),
            type_name: String::new(),
            logical_type: Some(logical),
            nullable: true,
            default: None,
        }
    }

    #[tokio::test]
    async fn every_row_group_is_read_once_on_several_threads_and_errors_name_the_row() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("groups.parquet");
        fixture(&path);
        // Each batch: the ids it holds, and whether its first row number is the first id's.
        let map: BatchFn<(Vec<i64>, bool)> = Arc::new(|arrays, before| {
            let ids = arrays[0]
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("ids");
            let values: Vec<i64> = ids.values().to_vec();
            let placed = values.first().is_none_or(|first| *first as u64 == before + 1);
            Ok((values, placed && ids.null_count() == 0))
        });
        let columns = [column("id", LogicalType::Integer)];
        let mut batches = scan(&path, &columns, 3, map).expect("scan");
        let mut seen = Vec::new();
        while let Some(batch) = batches.next().await {
            let (ids, placed) = batch.expect("a batch");
            assert!(placed);
            seen.extend(ids);
        }
        seen.sort_unstable();
        assert_eq!(seen, (1..=1_000).collect::<Vec<i64>>());

        // The text column read as integers: row 700 cannot be, and the error says so.
        let map: BatchFn<()> = Arc::new(|arrays, _| {
            let texts = arrays[1]
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("texts");
            match (0..texts.len()).find(|row| texts.value(*row).parse::<i64>().is_err()) {
                Some(row) => Err(Unreadable { row, column: 1 }),
                None => Ok(()),
            }
        });
        let columns = [
            column("id", LogicalType::Integer),
            column("text", LogicalType::Integer),
        ];
        let mut batches = scan(&path, &columns, 2, map).expect("scan");
        let mut failure = None;
        while let Some(batch) = batches.next().await {
            if let Err(error) = batch {
                failure = Some(error.to_string());
            }
        }
        let failure = failure.expect("an error");
        assert!(failure.contains("line 700, column text"), "{failure}");
        assert!(!failure.contains("bad"), "{failure}");
    }
}
