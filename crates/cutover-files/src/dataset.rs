//! A file side's files: one file, a directory (at any depth), or a glob,
//! on local disk or in an object store, read as one table. Directories
//! named `NAME=VALUE` (hive partitioning) become columns of every row of
//! the files below them, typed as text until the other side types them.
//! Entries whose names start with `_` or `.` (`_SUCCESS`, `.crc` files,
//! `_delta_log`) are never read as data.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cutover_db::Column;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};

use crate::error::{Error, Result};
use crate::parquet_file::parquet_error;
use crate::store::{self, ObjectReader, Remote, on_io, store_error};
use crate::{FileFormat, delta};

/// The value hive writes for a NULL partition value.
const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

/// Footers fetched at a time from an object store.
const FOOTERS_IN_FLIGHT: usize = 16;

/// Where one file is.
#[derive(Clone)]
pub(crate) enum Place {
    Local(PathBuf),
    Remote {
        store: Arc<dyn ObjectStore>,
        path: ObjectPath,
        size: u64,
    },
}

/// One file of a side.
#[derive(Clone)]
pub(crate) struct DataFile {
    /// Its name in messages (a local path, or a URL without credentials).
    pub name: String,
    pub place: Place,
    /// Its values of the side's partition columns (`None`: NULL).
    pub partition: Vec<Option<String>>,
    /// Its footer (Parquet only).
    pub metadata: Option<ArrowReaderMetadata>,
}

impl std::fmt::Debug for DataFile {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("DataFile")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The files a location names, in name order, and their partition columns.
#[derive(Debug)]
pub(crate) struct Listing {
    pub format: FileFormat,
    pub files: Vec<DataFile>,
    pub partitions: Vec<String>,
    /// The snapshot's version, for a Delta table (whose files may lack
    /// columns the table gained later: NULL there). A plain dataset's files
    /// must agree.
    pub delta_version: Option<u64>,
}

/// A file found under a location: its path relative to the location's
/// fixed part, and where it is.
struct Found {
    relative: String,
    name: String,
    place: Place,
}

/// The fixed part of a location and the glob after it, if any.
fn split_glob(path: &str) -> (String, Option<String>) {
    let segments: Vec<&str> = path.split('/').collect();
    match segments
        .iter()
        .position(|segment| segment.contains(['*', '?', '[', '{']))
    {
        Some(at) => (segments[..at].join("/"), Some(segments[at..].join("/"))),
        None => (path.to_owned(), None),
    }
}

fn dataset_error(location: &str, reason: impl Into<String>) -> Error {
    Error::Dataset {
        location: store::redact(location),
        reason: reason.into(),
    }
}

const DELTA_REFUSED: &str = "this is a Delta table: its directory holds the files of every version, so it is read through its log\nhint: name the table's directory itself (PATH, PATH@vN or PATH@TIMESTAMP), not a glob or a subdirectory of it";

/// Lists what `text` names: a local path or glob, or an object-store URL;
/// with a `condition` on its partition columns, only the files it keeps
/// (their footers alone are read).
pub(crate) async fn list(text: &str, condition: Option<&str>) -> Result<Listing> {
    let (location, version) = delta::split_version(text);
    let remote = if store::is_remote(location) {
        Some(store::connect(location)?)
    } else {
        None
    };
    if version.is_some() || delta::is_table(location, remote.as_ref()).await? {
        let remote_table = remote.is_some();
        let mut listing = delta::list(text, location, remote, version, condition).await?;
        listing.files = if remote_table {
            remote_footers(listing.files).await?
        } else {
            local_footers(listing.files)?
        };
        return Ok(listing);
    }
    // Without a version, the location is the text itself.
    let Some(remote) = remote else {
        return list_local(text, condition);
    };
    let found = find_remote(text, remote).await?;
    let mut listing = assemble(text, found)?;
    if let Some(condition) = condition {
        listing.files = prune(text, &listing, condition)?;
    }
    if listing.format == FileFormat::Parquet {
        listing.files = remote_footers(listing.files).await?;
    }
    Ok(listing)
}

/// Lists what a local path or glob names (the files `condition` keeps).
pub(crate) fn list_local(text: &str, condition: Option<&str>) -> Result<Listing> {
    let mut listing = assemble(text, find_local(text)?)?;
    if let Some(condition) = condition {
        listing.files = prune(text, &listing, condition)?;
    }
    if listing.format == FileFormat::Parquet {
        listing.files = local_footers(listing.files)?;
    }
    Ok(listing)
}

/// The files of `listing` that `condition` (on its partition columns) keeps.
pub(crate) fn prune(location: &str, listing: &Listing, condition: &str) -> Result<Vec<DataFile>> {
    let parsed = crate::prune::parse(condition, &listing.partitions).map_err(|reason| {
        dataset_error(
            location,
            format!(
                "--where on files: {reason}\nhint: on files, --where can name partition columns only (hive NAME=VALUE directories), in =, <>, <, >, IN, IS NULL, AND, OR and NOT; filter other columns on a database side"
            ),
        )
    })?;
    Ok(listing
        .files
        .iter()
        .filter(|file| parsed.keeps(&file.partition) == Some(true))
        .cloned()
        .collect())
}

/// The files found, in name order, with their format and partition columns.
fn assemble(text: &str, mut found: Vec<Found>) -> Result<Listing> {
    found.sort_by(|left, right| left.relative.cmp(&right.relative));
    let format = format_of(text, &found)?;
    let partitions = partition_names(text, &found)?;
    let files = found
        .into_iter()
        .map(|entry| DataFile {
            partition: partition_values(&entry.relative),
            name: entry.name,
            place: entry.place,
            metadata: None,
        })
        .collect();
    Ok(Listing {
        format,
        files,
        partitions,
        delta_version: None,
    })
}

fn find_local(text: &str) -> Result<Vec<Found>> {
    let (base, pattern) = split_glob(text);
    let base_path = if base.is_empty() {
        PathBuf::from(".")
    } else {
        PathBuf::from(&base)
    };
    let metadata = std::fs::metadata(&base_path).map_err(|source| Error::Io {
        path: base_path.display().to_string(),
        source,
    })?;
    if !metadata.is_dir() {
        if pattern.is_some() {
            return Err(dataset_error(text, "a glob must follow a directory"));
        }
        FileFormat::from_path(&base_path)
            .ok_or_else(|| dataset_error(text, "unknown file type: name it .csv or .parquet"))?;
        return Ok(vec![Found {
            relative: String::new(),
            name: base_path.display().to_string(),
            place: Place::Local(base_path),
        }]);
    }
    if base_path.join("_delta_log").is_dir() {
        return Err(dataset_error(text, DELTA_REFUSED));
    }
    let mut found = Vec::new();
    walk(&base_path, "", &mut found)?;
    keep_data_files(text, pattern.as_deref(), found)
}

/// Every file under `directory`, with its path relative to the walk's start.
fn walk(directory: &Path, relative: &str, found: &mut Vec<Found>) -> Result<()> {
    let entries = std::fs::read_dir(directory).map_err(|source| Error::Io {
        path: directory.display().to_string(),
        source,
    })?;
    for entry in entries {
        let path = entry
            .map_err(|source| Error::Io {
                path: directory.display().to_string(),
                source,
            })?
            .path();
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        let inner = if relative.is_empty() {
            name.to_owned()
        } else {
            format!("{relative}/{name}")
        };
        if path.is_dir() {
            walk(&path, &inner, found)?;
        } else {
            found.push(Found {
                relative: inner,
                name: path.display().to_string(),
                place: Place::Local(path),
            });
        }
    }
    Ok(())
}

async fn find_remote(text: &str, remote: Remote) -> Result<Vec<Found>> {
    let (base, pattern) = split_glob(&remote.path);
    let location = text.to_owned();
    on_io(async move {
        let prefix = ObjectPath::parse(&base)
            .map_err(|error| dataset_error(&location, format!("not a valid path: {error}")))?;
        // A path naming one file.
        if pattern.is_none() && FileFormat::from_path(Path::new(&base)).is_some() {
            let meta = remote
                .store
                .head(&prefix)
                .await
                .map_err(|error| store_error(&location, &error))?;
            return Ok(vec![Found {
                relative: String::new(),
                name: remote.name(&meta.location),
                place: Place::Remote {
                    store: remote.store.clone(),
                    path: meta.location,
                    size: meta.size,
                },
            }]);
        }
        let listed: Vec<object_store::ObjectMeta> = remote
            .store
            .list((!base.is_empty()).then_some(&prefix))
            .try_collect()
            .await
            .map_err(|error| store_error(&location, &error))?;
        let skip = if base.is_empty() { 0 } else { base.len() + 1 };
        let mut found = Vec::with_capacity(listed.len());
        for meta in listed {
            let relative = meta
                .location
                .as_ref()
                .get(skip..)
                .unwrap_or_default()
                .to_owned();
            if relative.starts_with("_delta_log/") {
                return Err(dataset_error(&location, DELTA_REFUSED));
            }
            found.push(Found {
                relative,
                name: remote.name(&meta.location),
                place: Place::Remote {
                    store: remote.store.clone(),
                    path: meta.location,
                    size: meta.size,
                },
            });
        }
        keep_data_files(&location, pattern.as_deref(), found)
    })
    .await?
}

/// The data files among `found`: those the glob matches, or (without one)
/// those with a CSV or Parquet extension; never hidden or `_` entries.
fn keep_data_files(location: &str, pattern: Option<&str>, found: Vec<Found>) -> Result<Vec<Found>> {
    let matcher = match pattern {
        Some(pattern) => Some(
            globset::GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .map_err(|error| dataset_error(location, format!("not a valid glob: {error}")))?
                .compile_matcher(),
        ),
        None => None,
    };
    let kept: Vec<Found> = found
        .into_iter()
        .filter(|entry| {
            let hidden = entry
                .relative
                .split('/')
                .any(|segment| segment.starts_with('_') || segment.starts_with('.'));
            let wanted = match &matcher {
                Some(matcher) => matcher.is_match(&entry.relative),
                None => FileFormat::from_path(Path::new(&entry.relative)).is_some(),
            };
            !hidden && wanted
        })
        .collect();
    if kept.is_empty() {
        return Err(dataset_error(
            location,
            match pattern {
                Some(_) => {
                    "the glob matches no file\nhint: quote it so that the shell leaves it alone, and check the directory"
                }
                None => {
                    "no .parquet or .csv file here (a dataset is a directory of Parquet or CSV files)"
                }
            },
        ));
    }
    Ok(kept)
}

/// The one format of every file found.
fn format_of(location: &str, found: &[Found]) -> Result<FileFormat> {
    let format = |entry: &Found| {
        let name = if entry.relative.is_empty() {
            &entry.name
        } else {
            &entry.relative
        };
        FileFormat::from_path(Path::new(name)).ok_or_else(|| {
            dataset_error(
                location,
                format!(
                    "{}: unknown file type: name it .csv or .parquet",
                    entry.name
                ),
            )
        })
    };
    let first = format(&found[0])?;
    for entry in &found[1..] {
        if format(entry)? != first {
            return Err(dataset_error(
                location,
                format!(
                    "{} and {} are of different formats: a dataset is all Parquet or all CSV",
                    found[0].name, entry.name
                ),
            ));
        }
    }
    Ok(first)
}

/// The `NAME=VALUE` directories of a relative path, in order.
fn partition_pairs(relative: &str) -> Vec<(String, Option<String>)> {
    let mut segments: Vec<&str> = relative.split('/').collect();
    segments.pop();
    segments
        .into_iter()
        .filter_map(|segment| segment.split_once('='))
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, value)| {
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned();
            (
                name.to_owned(),
                (value != HIVE_NULL && !value.is_empty()).then_some(value),
            )
        })
        .collect()
}

fn partition_values(relative: &str) -> Vec<Option<String>> {
    partition_pairs(relative)
        .into_iter()
        .map(|(_, value)| value)
        .collect()
}

/// The partition columns every file shares.
fn partition_names(location: &str, found: &[Found]) -> Result<Vec<String>> {
    let names = |entry: &Found| -> Vec<String> {
        partition_pairs(&entry.relative)
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    };
    let first = names(&found[0]);
    for entry in &found[1..] {
        let other = names(entry);
        if other != first {
            return Err(dataset_error(
                location,
                format!(
                    "{} is partitioned by ({}) but {} by ({}): every file of a dataset must sit under the same partition directories",
                    found[0].name,
                    first.join(", "),
                    entry.name,
                    other.join(", ")
                ),
            ));
        }
    }
    Ok(first)
}

/// Every local file's footer.
fn local_footers(files: Vec<DataFile>) -> Result<Vec<DataFile>> {
    files
        .into_iter()
        .map(|mut file| {
            let Place::Local(path) = &file.place else {
                return Err(Error::Internal("a remote file among local ones".to_owned()));
            };
            let handle = std::fs::File::open(path).map_err(|source| Error::Io {
                path: file.name.clone(),
                source,
            })?;
            file.metadata = Some(
                ArrowReaderMetadata::load(&handle, ArrowReaderOptions::default())
                    .map_err(|error| parquet_error(path, error))?,
            );
            Ok(file)
        })
        .collect()
}

/// Every remote file's footer, fetched a few at a time.
async fn remote_footers(files: Vec<DataFile>) -> Result<Vec<DataFile>> {
    on_io(async move {
        futures_util::stream::iter(files)
            .map(|mut file| async move {
                if let Place::Remote { store, path, size } = &file.place {
                    let mut reader = ObjectReader {
                        store: store.clone(),
                        path: path.clone(),
                        size: *size,
                    };
                    let metadata =
                        ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::default())
                            .await
                            .map_err(|error| Error::Parquet {
                                path: file.name.clone(),
                                reason: store::scrub(&error.to_string()),
                            })?;
                    file.metadata = Some(metadata);
                }
                Ok::<DataFile, Error>(file)
            })
            .buffered(FOOTERS_IN_FLIGHT)
            .try_collect::<Vec<DataFile>>()
            .await
    })
    .await?
}

/// The columns of a Parquet file's footer.
pub(crate) fn footer_columns(metadata: &ArrowReaderMetadata) -> Vec<Column> {
    metadata
        .schema()
        .fields()
        .iter()
        .map(|field| cutover_db::arrow::column(field))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_split_at_their_first_wild_segment() {
        assert_eq!(
            split_glob("a/b/*.parquet"),
            ("a/b".to_owned(), Some("*.parquet".to_owned()))
        );
        assert_eq!(
            split_glob("a/m=*/x"),
            ("a".to_owned(), Some("m=*/x".to_owned()))
        );
        assert_eq!(split_glob("a/b"), ("a/b".to_owned(), None));
        assert_eq!(
            split_glob("**/*.pq"),
            (String::new(), Some("**/*.pq".to_owned()))
        );
    }

    #[test]
    fn partition_directories_give_names_and_decoded_values() {
        assert_eq!(
            partition_pairs("month=2024-01/site=a%2Fb/part-0.parquet"),
            vec![
                ("month".to_owned(), Some("2024-01".to_owned())),
                ("site".to_owned(), Some("a/b".to_owned()))
            ]
        );
        assert_eq!(
            partition_pairs("x/site=__HIVE_DEFAULT_PARTITION__/p.parquet"),
            vec![("site".to_owned(), None)]
        );
        assert!(partition_pairs("p.parquet").is_empty());
    }
}
