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

use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, DictionaryArray, Int32Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use cutover_db::arrow::prepare;
use cutover_db::{Column, LogicalType};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use parquet::arrow::arrow_reader::{
    ArrowReaderBuilder, ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::arrow::async_reader::{ParquetRecordBatchStream, SpawnedReader};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use tokio::sync::mpsc;

use crate::column_index;
use crate::csv_file::CsvPart;
use crate::dataset::{DataFile, Place};
use crate::error::{Error, Result};
use crate::parquet_file::{parquet_error, projected};
use crate::store::{ObjectReader, io, scrub};

/// Rows per batch handed to the caller's function.
pub(crate) const SCAN_BATCH_ROWS: usize = 8_192;

/// A cell the caller's function could not read: the row within the batch
/// and the column's position among the wanted columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable {
    /// The row within the batch, 0-based.
    pub row: usize,
    /// The column's position among the wanted columns.
    pub column: usize,
}

/// A cell of `file` that cannot be read as its column's type, named by
/// the 1-based row (or line) it is on.
pub(crate) fn field_error(file: &DataFile, column: &Column, line: u64) -> Error {
    Error::Field {
        path: file.name.clone(),
        line,
        column: column.name.clone(),
        expected: column
            .logical_type
            .map_or("supported value", LogicalType::name)
            .to_owned(),
    }
}

/// Sends what the caller's function made of a batch; false when it failed
/// or the consumer has gone (stop reading).
pub(crate) fn deliver<T>(sender: &mpsc::Sender<Result<T>>, made: Result<T>) -> bool {
    let failed = made.is_err();
    sender.blocking_send(made).is_ok() && !failed
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
    files: &[DataFile],
    shape: Shape<'_>,
    columns: &[Column],
    jobs: usize,
    map: BatchFn<T>,
) -> Result<BoxStream<'static, Result<T>>> {
    start(files, shape, columns, jobs, Work::All(map))
}

pub(crate) fn scan_selected<T: Send + 'static>(
    files: &[DataFile],
    shape: Shape<'_>,
    columns: &[Column],
    key_len: usize,
    jobs: usize,
    select: SelectFn,
    map: KeptFn<T>,
) -> Result<BoxStream<'static, Result<T>>> {
    start(
        files,
        shape,
        columns,
        jobs,
        Work::Selected {
            key_len,
            select,
            map,
        },
    )
}

/// What a scan's files are like.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape<'a> {
    /// The partition columns (from the files' directories).
    pub partitions: &'a [String],
    /// Whether a file may lack a column (a Delta table whose schema grew).
    pub evolving: bool,
    /// CSV files, with their header's names; Parquet otherwise.
    pub csv_header: Option<&'a [String]>,
}

fn start<T: Send + 'static>(
    files: &[DataFile],
    shape: Shape<'_>,
    columns: &[Column],
    jobs: usize,
    work: Work<T>,
) -> Result<BoxStream<'static, Result<T>>> {
    let parts = files
        .iter()
        .map(|file| Part::open(file, shape, columns))
        .collect::<Result<Vec<Part>>>()?;
    let units: Vec<(usize, usize)> = parts
        .iter()
        .enumerate()
        .flat_map(|(part, file)| (0..file.units()).map(move |group| (part, group)))
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

/// Where a wanted column comes from.
#[derive(Clone)]
pub(crate) enum Slot {
    /// The file's column at this index.
    File(usize),
    /// A partition column: one value for every row of the file.
    Constant(Option<String>),
}

/// A wanted column within a decoded batch.
#[derive(Clone)]
pub(crate) enum Placed {
    /// The batch's column at this position.
    Column(usize),
    Constant(Option<String>),
}

/// The file columns to decode for `slots` (sorted, each once), and where
/// each slot is in the decoded batch.
pub(crate) fn placed(slots: &[Slot]) -> (Vec<usize>, Vec<Placed>) {
    let indices: Vec<usize> = slots
        .iter()
        .filter_map(|slot| match slot {
            Slot::File(index) => Some(*index),
            Slot::Constant(_) => None,
        })
        .collect();
    let (projection, positions) = projected(&indices);
    let mut positions = positions.into_iter();
    let placed = slots
        .iter()
        .map(|slot| match slot {
            Slot::File(_) => Placed::Column(positions.next().unwrap_or_default()),
            Slot::Constant(value) => Placed::Constant(value.clone()),
        })
        .collect();
    (projection, placed)
}

/// A partition column's value for `rows` rows: a dictionary of one value
/// (or NULL keys), so that no text is copied per row.
fn constant(value: Option<&str>, rows: usize) -> std::result::Result<ArrayRef, ArrowError> {
    let keys = match value {
        Some(_) => Int32Array::from(vec![0; rows]),
        None => Int32Array::new_null(rows),
    };
    let values = StringArray::from_iter_values(value);
    Ok(Arc::new(DictionaryArray::<Int32Type>::try_new(
        keys,
        Arc::new(values),
    )?))
}

/// The file's reader metadata with the text columns that are
/// dictionary-encoded in every row group read as Arrow dictionaries (each
/// row a key into the row group's values, no text copied per row). A flat
/// schema only; anything unexpected keeps the file's own.
fn dictionary_hinted(metadata: &ArrowReaderMetadata, slots: &[Slot]) -> ArrowReaderMetadata {
    let schema = metadata.schema();
    let parquet = metadata.metadata();
    if parquet.file_metadata().schema_descr().num_columns() != schema.fields().len() {
        return metadata.clone();
    }
    let dictionary_everywhere = |index: usize| {
        parquet
            .row_groups()
            .iter()
            .all(|group| group.column(index).dictionary_page_offset().is_some())
    };
    let mut changed = false;
    let fields: Vec<Arc<Field>> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let wanted = slots
                .iter()
                .any(|slot| matches!(slot, Slot::File(at) if *at == index));
            let text = matches!(field.data_type(), DataType::Utf8 | DataType::LargeUtf8);
            if wanted && text && dictionary_everywhere(index) {
                changed = true;
                Arc::new(
                    Field::new(
                        field.name(),
                        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                        field.is_nullable(),
                    )
                    .with_metadata(field.metadata().clone()),
                )
            } else {
                field.clone()
            }
        })
        .collect();
    if !changed {
        return metadata.clone();
    }
    let hinted = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    ArrowReaderMetadata::try_new(
        parquet.clone(),
        ArrowReaderOptions::new().with_schema(hinted),
    )
    .unwrap_or_else(|_| metadata.clone())
}

/// A row group's batches, decoded on the calling thread: from a local
/// file, or from an object store (its requests waited for on the IO runtime).
enum Batches {
    Local(ParquetRecordBatchReader),
    Remote(Box<ParquetRecordBatchStream<SpawnedReader<ObjectReader>>>),
}

impl Iterator for Batches {
    type Item = std::result::Result<RecordBatch, String>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Batches::Local(reader) => reader
                .next()
                .map(|batch| batch.map_err(|error| error.to_string())),
            Batches::Remote(stream) => match io() {
                Ok(runtime) => runtime
                    .block_on(stream.next())
                    .map(|batch| batch.map_err(|error| scrub(&error.to_string()))),
                Err(error) => Some(Err(error.to_string())),
            },
        }
    }
}

/// One file of a scan.
enum Part {
    Parquet(ParquetPart),
    Csv(CsvPart),
}

impl Part {
    fn open(file: &DataFile, shape: Shape<'_>, columns: &[Column]) -> Result<Part> {
        Ok(match shape.csv_header {
            Some(names) => Part::Csv(CsvPart::open(file, names, shape, columns)?),
            None => Part::Parquet(ParquetPart::open(file, shape, columns)?),
        })
    }

    /// The units its rows are read in: row groups, or the whole CSV file.
    fn units(&self) -> usize {
        match self {
            Part::Parquet(part) => part.first_rows.len(),
            Part::Csv(_) => 1,
        }
    }

    fn all<T>(
        &self,
        unit: usize,
        map: &BatchFn<T>,
        sender: &mpsc::Sender<Result<T>>,
    ) -> Result<bool> {
        match self {
            Part::Parquet(part) => part.all(unit, map, sender),
            Part::Csv(part) => part.all(map, sender),
        }
    }

    fn selected<T>(
        &self,
        unit: usize,
        key_len: usize,
        select: &SelectFn,
        map: &KeptFn<T>,
        sender: &mpsc::Sender<Result<T>>,
    ) -> Result<bool> {
        match self {
            Part::Parquet(part) => part.selected(unit, key_len, select, map, sender),
            Part::Csv(part) => part.selected(key_len, select, map, sender),
        }
    }
}

/// Where each wanted column of a file comes from, the file's columns being
/// `names`: a file column, or a constant (a partition's value, or NULL for
/// a column an evolving table's older file lacks).
pub(crate) fn slots(
    file: &DataFile,
    names: &[String],
    shape: Shape<'_>,
    columns: &[Column],
) -> Result<Vec<Slot>> {
    let name = PathBuf::from(&file.name);
    columns
        .iter()
        .map(|column| {
            match shape
                .partitions
                .iter()
                .position(|partition| partition == &column.name)
            {
                Some(at) => Ok(Slot::Constant(file.partition.get(at).cloned().flatten())),
                None => match column_index(&name, names, column) {
                    Ok(index) => Ok(Slot::File(index)),
                    // A column the table gained after this file was written: NULL here.
                    Err(_) if shape.evolving => Ok(Slot::Constant(None)),
                    Err(error) => Err(error),
                },
            }
        })
        .collect()
}

/// A batch's arrays for `placed` wanted columns, prepared.
pub(crate) fn arrays(
    batch: &RecordBatch,
    placed: &[Placed],
) -> std::result::Result<Vec<ArrayRef>, ArrowError> {
    placed
        .iter()
        .map(|placed| match placed {
            Placed::Column(position) => prepare(batch.column(*position)),
            Placed::Constant(value) => constant(value.as_deref(), batch.num_rows()),
        })
        .collect()
}

/// One Parquet file of a scan: its metadata, and where the wanted columns are.
struct ParquetPart {
    file: DataFile,
    name: PathBuf,
    columns: Vec<Column>,
    metadata: ArrowReaderMetadata,
    /// Where each wanted column comes from.
    slots: Vec<Slot>,
    projection: Vec<usize>,
    /// Each wanted column within the projected batch.
    placed: Vec<Placed>,
    /// Rows before each row group.
    first_rows: Vec<u64>,
}

impl ParquetPart {
    fn open(file: &DataFile, shape: Shape<'_>, columns: &[Column]) -> Result<ParquetPart> {
        let name = PathBuf::from(&file.name);
        let metadata = file
            .metadata
            .clone()
            .ok_or_else(|| Error::Internal(format!("{}: footer not read", file.name)))?;
        let names: Vec<String> = metadata
            .schema()
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect();
        let slots = slots(file, &names, shape, columns)?;
        let metadata = dictionary_hinted(&metadata, &slots);
        let (projection, placed) = placed(&slots);
        let mut first_rows = Vec::with_capacity(metadata.metadata().num_row_groups());
        let mut before = 0u64;
        for group in metadata.metadata().row_groups() {
            first_rows.push(before);
            before += u64::try_from(group.num_rows()).unwrap_or_default();
        }
        Ok(ParquetPart {
            file: file.clone(),
            name,
            columns: columns.to_vec(),
            metadata,
            slots,
            projection,
            placed,
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
    ) -> Result<Batches> {
        fn configure<I>(
            builder: ArrowReaderBuilder<I>,
            group: usize,
            projection: &[usize],
            selection: Option<RowSelection>,
        ) -> ArrowReaderBuilder<I> {
            let mask = ProjectionMask::roots(builder.parquet_schema(), projection.iter().copied());
            let builder = builder
                .with_projection(mask)
                .with_row_groups(vec![group])
                .with_batch_size(SCAN_BATCH_ROWS);
            match selection {
                Some(selection) => builder.with_row_selection(selection),
                None => builder,
            }
        }
        match &self.file.place {
            Place::Local(path) => {
                let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(
                    open(path)?,
                    self.metadata.clone(),
                );
                configure(builder, group, projection, selection)
                    .build()
                    .map(Batches::Local)
                    .map_err(|error| parquet_error(&self.name, error))
            }
            Place::Remote { store, path, size } => {
                let reader = SpawnedReader::new(
                    ObjectReader {
                        store: store.clone(),
                        path: path.clone(),
                        size: *size,
                    },
                    io()?.handle().clone(),
                );
                let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(
                    reader,
                    self.metadata.clone(),
                );
                configure(builder, group, projection, selection)
                    .build()
                    .map(|stream| Batches::Remote(Box::new(stream)))
                    .map_err(|error| parquet_error(&self.name, error))
            }
        }
    }

    /// A batch's arrays for `placed` wanted columns, prepared.
    fn arrays(&self, batch: &RecordBatch, placed: &[Placed]) -> Result<Vec<ArrayRef>> {
        arrays(batch, placed).map_err(|error| parquet_error(&self.name, error))
    }

    fn unreadable(&self, unreadable: Unreadable, row: u64) -> Error {
        field_error(&self.file, &self.columns[unreadable.column], row + 1)
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
            let batch = batch.map_err(|error| parquet_error(&self.name, error))?;
            let arrays = self.arrays(&batch, &self.placed)?;
            let made = map(&arrays, before)
                .map_err(|unreadable| self.unreadable(unreadable, before + unreadable.row as u64));
            if !deliver(sender, made) {
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
        let (key_projection, key_placed) = placed(&self.slots[..key_len]);
        let mut selectors: Vec<RowSelector> = Vec::new();
        let mut kept_rows: Vec<u64> = Vec::new();
        let mut before = self.first_rows[group];
        for batch in self.batches(group, &key_projection, None)? {
            let batch = batch.map_err(|error| parquet_error(&self.name, error))?;
            let arrays = self.arrays(&batch, &key_placed)?;
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
            let batch = batch.map_err(|error| parquet_error(&self.name, error))?;
            let arrays = self.arrays(&batch, &self.placed)?;
            let rows = &kept_rows[done..(done + batch.num_rows()).min(kept_rows.len())];
            let made = map(&arrays, rows).map_err(|unreadable| {
                self.unreadable(
                    unreadable,
                    rows.get(unreadable.row).copied().unwrap_or_default(),
                )
            });
            if !deliver(sender, made) {
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

    /// A text column's values, however the scan hands them over (plain, or
    /// as a dictionary where the file's column is dictionary-encoded).
    fn texts(array: &ArrayRef) -> Vec<String> {
        (0..array.len())
            .map(|row| match cutover_db::arrow::cell(array, row, None) {
                Some(cutover_db::Value::Text(text)) => text,
                other => panic!("text expected, got {other:?}"),
            })
            .collect()
    }

    /// 1,000 rows in row groups of 64: (id, text), the text `"bad"` at id 700.
    fn fixture(path: &Path) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("text", DataType::Utf8, true),
        ]));
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(64))
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
        let mut batches = crate::FileSource::open(&path)
            .expect("open")
            .scan(&columns, 3, map)
            .expect("scan");
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
            let texts = texts(&arrays[1]);
            match (0..texts.len()).find(|row| texts[*row].parse::<i64>().is_err()) {
                Some(row) => Err(Unreadable { row, column: 1 }),
                None => Ok(()),
            }
        });
        let columns = [
            column("id", LogicalType::Integer),
            column("text", LogicalType::Integer),
        ];
        let mut batches = crate::FileSource::open(&path)
            .expect("open")
            .scan(&columns, 2, map)
            .expect("scan");
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
            let texts = texts(&arrays[1]);
            Ok((0..ids.len())
                .map(|row| (ids.value(row), rows[row], texts[row].clone()))
                .collect())
        });
        let columns = [
            column("id", LogicalType::Integer),
            column("text", LogicalType::Text),
        ];
        let mut batches = crate::FileSource::open(&path)
            .expect("open")
            .scan_selected(&columns, 1, 3, select, map)
            .expect("scan");
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
