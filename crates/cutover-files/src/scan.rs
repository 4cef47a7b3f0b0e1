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
use arrow_array::RecordBatch;
use cutover_db::arrow::prepare;
use cutover_db::{Column, LogicalType};
use futures_util::stream::BoxStream;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use tokio::sync::mpsc;

use crate::column_indices;
use crate::error::{Error, Result};
use crate::parquet_file::{parquet_error, projected};

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

/// Which rows of a batch of key columns a selective scan keeps.
pub type SelectFn =
    Arc<dyn Fn(&[ArrayRef]) -> std::result::Result<Vec<bool>, Unreadable> + Send + Sync>;

/// What a selective scan does with each batch of kept rows: their arrays
/// in the wanted columns' order, and each row's 0-based number in the file.
pub type KeptFn<T> =
    Arc<dyn Fn(&[ArrayRef], &[u64]) -> std::result::Result<T, Unreadable> + Send + Sync>;

/// How a worker reads a row group.
enum Work<T> {
    /// Every row, every wanted column.
    All(BatchFn<T>),
    /// The first `key_len` wanted columns of every row, to choose rows;
    /// then every wanted column of the chosen rows only.
    Selected {
        key_len: usize,
        select: SelectFn,
        map: KeptFn<T>,
    },
}

impl<T> Clone for Work<T> {
    fn clone(&self) -> Self {
        match self {
            Work::All(map) => Work::All(map.clone()),
            Work::Selected {
                key_len,
                select,
                map,
            } => Work::Selected {
                key_len: *key_len,
                select: select.clone(),
                map: map.clone(),
            },
        }
    }
}

pub(crate) fn scan<T: Send + 'static>(
    paths: &[PathBuf],
    columns: &[Column],
    jobs: usize,
    map: BatchFn<T>,
) -> Result<BoxStream<'static, Result<T>>> {
    start(paths, columns, jobs, Work::All(map))
}

pub(crate) fn scan_selected<T: Send + 'static>(
    paths: &[PathBuf],
    columns: &[Column],
    key_len: usize,
    jobs: usize,
    select: SelectFn,
    map: KeptFn<T>,
) -> Result<BoxStream<'static, Result<T>>> {
    start(
        paths,
        columns,
        jobs,
        Work::Selected {
            key_len,
            select,
            map,
        },
    )
}

fn start<T: Send + 'static>(
    paths: &[PathBuf],
    columns: &[Column],
    jobs: usize,
    work: Work<T>,
) -> Result<BoxStream<'static, Result<T>>> {
    let parts = paths
        .iter()
        .map(|path| Part::open(path, columns))
        .collect::<Result<Vec<Part>>>()?;
    let units: Vec<(usize, usize)> = parts
        .iter()
        .enumerate()
        .flat_map(|(part, file)| (0..file.first_rows.len()).map(move |group| (part, group)))
        .collect();
    let jobs = jobs.clamp(1, units.len().max(1));
    let scan = Arc::new(Scan {
        parts,
        units,
        next: AtomicUsize::new(0),
    });
    let (sender, receiver) = mpsc::channel::<Result<T>>(2 * jobs);
    for _ in 0..jobs {
        let scan = scan.clone();
        let sender = sender.clone();
        let work = work.clone();
        std::thread::spawn(move || {
            if let Err(error) = scan.work(&work, &sender) {
                let _ = sender.blocking_send(Err(error));
            }
        });
    }
    Ok(Box::pin(futures_util::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) },
    )))
}

/// The row groups of every file, read by whichever thread is free.
struct Scan {
    parts: Vec<Part>,
    /// (file, row group), in file order.
    units: Vec<(usize, usize)>,
    /// The next unit to read.
    next: AtomicUsize,
}

impl Scan {
    /// Reads row groups until none is left or the consumer has gone.
    fn work<T>(&self, work: &Work<T>, sender: &mpsc::Sender<Result<T>>) -> Result<()> {
        loop {
            let Some((part, group)) = self.units.get(self.next.fetch_add(1, Ordering::Relaxed))
            else {
                return Ok(());
            };
            let part = &self.parts[*part];
            let going = match work {
                Work::All(map) => part.all(*group, map, sender)?,
                Work::Selected {
                    key_len,
                    select,
                    map,
                } => part.selected(*group, *key_len, select, map, sender)?,
            };
            if !going {
                return Ok(());
            }
        }
    }
}

fn open(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

/// One file of a scan: its metadata, and where the wanted columns are.
struct Part {
    path: PathBuf,
    columns: Vec<Column>,
    metadata: ArrowReaderMetadata,
    /// The file column index of each wanted column.
    indices: Vec<usize>,
    projection: Vec<usize>,
    /// Position of each wanted column within the projected batch.
    positions: Vec<usize>,
    /// Rows before each row group.
    first_rows: Vec<u64>,
}

impl Part {
    fn open(path: &Path, columns: &[Column]) -> Result<Part> {
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
        let (projection, positions) = projected(&indices);
        let mut first_rows = Vec::with_capacity(metadata.metadata().num_row_groups());
        let mut before = 0u64;
        for group in metadata.metadata().row_groups() {
            first_rows.push(before);
            before += u64::try_from(group.num_rows()).unwrap_or_default();
        }
        Ok(Part {
            path: path.to_path_buf(),
            columns: columns.to_vec(),
            metadata,
            indices,
            projection,
            positions,
            first_rows,
        })
    }

    /// A reader of row group `group`'s `projection` (file column indices),
    /// of the rows `selection` keeps.
    fn batches(
        &self,
        group: usize,
        projection: &[usize],
        selection: Option<RowSelection>,
    ) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader> {
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(
            open(&self.path)?,
            self.metadata.clone(),
        );
        let mask = ProjectionMask::roots(builder.parquet_schema(), projection.iter().copied());
        let mut builder = builder
            .with_projection(mask)
            .with_row_groups(vec![group])
            .with_batch_size(SCAN_BATCH_ROWS);
        if let Some(selection) = selection {
            builder = builder.with_row_selection(selection);
        }
        builder
            .build()
            .map_err(|error| parquet_error(&self.path, error))
    }

    /// A batch's arrays for `positions` (within the projected batch), prepared.
    fn arrays(&self, batch: &RecordBatch, positions: &[usize]) -> Result<Vec<ArrayRef>> {
        positions
            .iter()
            .map(|position| {
                prepare(batch.column(*position)).map_err(|error| parquet_error(&self.path, error))
            })
            .collect()
    }

    fn unreadable(&self, unreadable: Unreadable, row: u64) -> Error {
        let column = &self.columns[unreadable.column];
        Error::Field {
            path: self.path.display().to_string(),
            line: row + 1,
            column: column.name.clone(),
            expected: column
                .logical_type
                .map_or("supported value", LogicalType::name)
                .to_owned(),
        }
    }

    /// Every row of a row group; false when the consumer has gone or failed.
    fn all<T>(
        &self,
        group: usize,
        map: &BatchFn<T>,
        sender: &mpsc::Sender<Result<T>>,
    ) -> Result<bool> {
        let mut before = self.first_rows[group];
        for batch in self.batches(group, &self.projection, None)? {
            let batch = batch.map_err(|error| parquet_error(&self.path, error))?;
            let arrays = self.arrays(&batch, &self.positions)?;
            let made = map(&arrays, before)
                .map_err(|unreadable| self.unreadable(unreadable, before + unreadable.row as u64));
            let failed = made.is_err();
            if sender.blocking_send(made).is_err() || failed {
                return Ok(false);
            }
            before += batch.num_rows() as u64;
        }
        Ok(true)
    }

    /// The key columns of a row group to choose rows, then every wanted
    /// column of the chosen rows only (Parquet skips the others' values).
    fn selected<T>(
        &self,
        group: usize,
        key_len: usize,
        select: &SelectFn,
        map: &KeptFn<T>,
        sender: &mpsc::Sender<Result<T>>,
    ) -> Result<bool> {
        let (key_projection, key_positions) = projected(&self.indices[..key_len]);
        let mut selectors: Vec<RowSelector> = Vec::new();
        let mut kept_rows: Vec<u64> = Vec::new();
        let mut before = self.first_rows[group];
        for batch in self.batches(group, &key_projection, None)? {
            let batch = batch.map_err(|error| parquet_error(&self.path, error))?;
            let arrays = self.arrays(&batch, &key_positions)?;
            let keep = match select(&arrays) {
                Ok(keep) => keep,
                Err(unreadable) => {
                    let error = self.unreadable(unreadable, before + unreadable.row as u64);
                    let _ = sender.blocking_send(Err(error));
                    return Ok(false);
                }
            };
            for (row, kept) in keep.iter().enumerate() {
                match selectors.last_mut() {
                    Some(last) if last.skip != *kept => last.row_count += 1,
                    _ => selectors.push(if *kept {
                        RowSelector::select(1)
                    } else {
                        RowSelector::skip(1)
                    }),
                }
                if *kept {
                    kept_rows.push(before + row as u64);
                }
            }
            before += batch.num_rows() as u64;
        }
        if kept_rows.is_empty() {
            return Ok(true);
        }
        let mut done = 0;
        for batch in self.batches(group, &self.projection, Some(RowSelection::from(selectors)))? {
            let batch = batch.map_err(|error| parquet_error(&self.path, error))?;
            let arrays = self.arrays(&batch, &self.positions)?;
            let rows = &kept_rows[done..(done + batch.num_rows()).min(kept_rows.len())];
            let made = map(&arrays, rows).map_err(|unreadable| {
                self.unreadable(
                    unreadable,
                    rows.get(unreadable.row).copied().unwrap_or_default(),
                )
            });
            let failed = made.is_err();
            if sender.blocking_send(made).is_err() || failed {
                return Ok(false);
            }
            done += batch.num_rows();
        }
        Ok(true)
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
            .map(|id| {
                if *id == 700 {
                    "bad".to_owned()
                } else {
                    id.to_string()
                }
            })
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
            let placed = values
                .first()
                .is_none_or(|first| *first as u64 == before + 1);
            Ok((values, placed && ids.null_count() == 0))
        });
        let columns = [column("id", LogicalType::Integer)];
        let mut batches = scan(std::slice::from_ref(&path), &columns, 3, map).expect("scan");
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
        let mut batches = scan(std::slice::from_ref(&path), &columns, 2, map).expect("scan");
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

    #[tokio::test]
    async fn a_selective_scan_reads_the_chosen_rows_and_numbers_them() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("groups.parquet");
        fixture(&path);
        // Every seventh id, and the whole of row group 3 (ids 193..=256) left out.
        let select: SelectFn = Arc::new(|arrays| {
            let ids = arrays[0]
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("ids");
            Ok(ids
                .values()
                .iter()
                .map(|id| id % 7 == 0 && !(193..=256).contains(id))
                .collect())
        });
        let map: KeptFn<Vec<(i64, u64, String)>> = Arc::new(|arrays, rows| {
            let ids = arrays[0]
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("ids");
            let texts = arrays[1]
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("texts");
            Ok((0..ids.len())
                .map(|row| (ids.value(row), rows[row], texts.value(row).to_owned()))
                .collect())
        });
        let columns = [
            column("id", LogicalType::Integer),
            column("text", LogicalType::Text),
        ];
        let mut batches =
            scan_selected(std::slice::from_ref(&path), &columns, 1, 3, select, map).expect("scan");
        let mut seen = Vec::new();
        while let Some(batch) = batches.next().await {
            seen.extend(batch.expect("a batch"));
        }
        seen.sort_unstable();
        let expected: Vec<(i64, u64, String)> = (1..=1_000i64)
            .filter(|id| id % 7 == 0 && !(193..=256).contains(id))
            .map(|id| {
                (
                    id,
                    (id - 1) as u64,
                    if id == 700 {
                        "bad".to_owned()
                    } else {
                        id.to_string()
                    },
                )
            })
            .collect();
        assert_eq!(seen, expected);
    }
}
