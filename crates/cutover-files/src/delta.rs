//! Delta Lake tables: a directory (or object-store prefix) holding
//! `_delta_log/`. delta-rs (`deltalake-core`, without its query engine)
//! replays the log to a snapshot (the current one, `PATH@vN`, or the one
//! current at `PATH@TIMESTAMP`, the shorthand Databricks uses); the
//! snapshot's data files are then read like any dataset's Parquet files,
//! their partition values (from the log) as text columns.
//!
//! Refused, named, rather than read wrong: deletion vectors (rows a file
//! still holds but the table no longer has) and column mapping (names in
//! the files that are not the table's).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use deltalake_core::DeltaTableBuilder;
use deltalake_core::logstore::{LogStoreFactory, logstore_factories};
use object_store::path::Path as ObjectPath;
use url::Url;

use crate::FileFormat;
use crate::dataset::{DataFile, Listing, Place};
use crate::error::{Error, Result};
use crate::store::{self, Remote, on_io};

/// Which snapshot of a table to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Version {
    Number(u64),
    /// RFC 3339, or a date (midnight UTC).
    Timestamp(String),
}

/// `PATH@vN` or `PATH@TIMESTAMP`: the path and the snapshot it names.
/// An `@` elsewhere (`abfss://container@account…`) is part of the path.
pub(crate) fn split_version(text: &str) -> (&str, Option<Version>) {
    let last = text.rfind('/').map_or(0, |slash| slash + 1);
    let Some(at) = text[last..].rfind('@').map(|at| last + at) else {
        return (text, None);
    };
    let (path, suffix) = (&text[..at], &text[at + 1..]);
    if let Some(number) = suffix.strip_prefix(['v', 'V'])
        && let Ok(number) = number.parse::<u64>()
    {
        return (path, Some(Version::Number(number)));
    }
    let looks_like_time = suffix.len() >= 10
        && suffix.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && suffix.as_bytes()[4] == b'-';
    if looks_like_time {
        let timestamp = if suffix.len() == 10 {
            format!("{suffix}T00:00:00Z")
        } else {
            suffix.to_owned()
        };
        return (path, Some(Version::Timestamp(timestamp)));
    }
    (text, None)
}

/// Whether `location` (in `remote`'s store, or on disk) holds a Delta log.
pub(crate) async fn is_table(location: &str, remote: Option<&Remote>) -> Result<bool> {
    let Some(remote) = remote.cloned() else {
        return Ok(Path::new(location).join("_delta_log").is_dir());
    };
    let prefix = format!("{}/_delta_log", remote.path.trim_end_matches('/'));
    let location = location.to_owned();
    on_io(async move {
        use futures_util::StreamExt;
        let prefix =
            ObjectPath::parse(prefix.trim_start_matches('/')).map_err(|error| Error::Dataset {
                location: store::redact(&location),
                reason: format!("not a valid path: {error}"),
            })?;
        match remote.store.list(Some(&prefix)).next().await {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(error)) => Err(store::store_error(&location, &error)),
        }
    })
    .await?
}

/// The default log store serves reads on every scheme cutover's stores
/// have (delta-rs registers only `file://` and `memory://` itself).
fn register_schemes() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        let registry = logstore_factories();
        let Ok(file) = Url::parse("file://") else {
            return;
        };
        let Some(default) = registry.get(&file).map(|factory| factory.value().clone()) else {
            return;
        };
        for scheme in ["s3", "s3a", "az", "azure", "abfs", "abfss", "adl"] {
            if let Ok(url) = Url::parse(&format!("{scheme}://")) {
                registry.insert(url, default.clone() as Arc<dyn LogStoreFactory>);
            }
        }
    });
}

fn delta_error(location: &str, version: Option<&Version>, error: &impl std::fmt::Display) -> Error {
    let text = store::scrub(&error.to_string());
    // The newest version, when the log says it ("LogSegment end version N not the same as …").
    let latest = text
        .split("LogSegment end version ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse::<u64>().ok());
    let missing = text.contains("Invalid table version")
        || latest.is_some()
        || (text.contains("not found") && version.is_some());
    let reason = if missing && version.is_some() {
        match (version, latest) {
            (Some(Version::Number(number)), Some(latest)) => {
                format!("version {number} of the table does not exist: the newest is {latest}")
            }
            (Some(Version::Number(number)), None) => format!(
                "version {number} of the table does not exist\nhint: cutover inspect PATH shows the current snapshot"
            ),
            (Some(Version::Timestamp(timestamp)), _) => format!(
                "the table has no version at {timestamp} (it is older than the table, or the log was cleaned up)"
            ),
            (None, _) => text,
        }
    } else if text.contains("Invalid datetime") {
        "not a timestamp: give PATH@vN, PATH@2024-01-31 or PATH@2024-01-31T12:00:00Z".to_owned()
    } else {
        format!(
            "the Delta log cannot be read: {}\nhint: check that the table is complete (its _delta_log holds every commit since the last checkpoint)",
            text.lines().next().unwrap_or_default()
        )
    };
    Error::Dataset {
        location: store::redact(location),
        reason,
    }
}

/// The data files of a Delta table's snapshot (those `condition`, on the
/// partition columns, keeps), with the table's partition columns.
pub(crate) async fn list(
    text: &str,
    location: &str,
    remote: Option<Remote>,
    version: Option<Version>,
    condition: Option<&str>,
) -> Result<Listing> {
    register_schemes();
    let (url, local_root) = match &remote {
        Some(remote) => (
            Url::parse(&format!("{}{}", remote.root, remote.path)).map_err(|error| {
                Error::Dataset {
                    location: store::redact(location),
                    reason: format!("not a valid URL: {error}"),
                }
            })?,
            None,
        ),
        None => {
            let root = std::fs::canonicalize(location).map_err(|source| Error::Io {
                path: location.to_owned(),
                source,
            })?;
            let url = Url::from_directory_path(&root).map_err(|()| Error::Dataset {
                location: location.to_owned(),
                reason: "not an absolute directory".to_owned(),
            })?;
            (url, Some(root))
        }
    };
    let failed = |error: &dyn std::fmt::Display| delta_error(location, version.as_ref(), &error);
    let mut builder = DeltaTableBuilder::from_url(url.clone()).map_err(|error| failed(&error))?;
    if let Some(remote) = &remote {
        builder = builder.with_storage_backend(remote.store.clone(), url);
    }
    builder = match &version {
        Some(Version::Number(number)) => builder.with_version(*number),
        Some(Version::Timestamp(timestamp)) => builder
            .with_datestring(timestamp)
            .map_err(|error| failed(&error))?,
        None => builder,
    };
    let table = on_io(builder.load())
        .await?
        .map_err(|error| failed(&error))?;
    let snapshot = table.snapshot().map_err(|error| failed(&error))?;
    if let Some(Version::Timestamp(timestamp)) = &version {
        // delta-rs gives the first version for a time before it; there was no table then.
        let wanted = chrono::DateTime::parse_from_rfc3339(timestamp)
            .map(|time| time.timestamp_millis())
            .map_err(|error| failed(&error))?;
        let first = snapshot.version_timestamp(snapshot.version());
        if snapshot.version() == 0 && first.is_some_and(|first| first > wanted) {
            return Err(delta_error(
                location,
                version.as_ref(),
                &"Invalid table version: before the first commit",
            ));
        }
    }
    let metadata = snapshot.metadata();
    if let Some(mode) = metadata.configuration().get("delta.columnMapping.mode")
        && mode != "none"
    {
        return Err(Error::Dataset {
            location: store::redact(text),
            reason: format!(
                "the table uses column mapping (delta.columnMapping.mode = {mode}), which cutover does not read yet\nhint: read it through Spark (sc://…), or export the version to compare as Parquet"
            ),
        });
    }
    let partitions: Vec<String> = metadata.partition_columns().to_vec();
    let mut files = Vec::new();
    for view in snapshot.log_data().iter() {
        if view.deletion_vector_descriptor().is_some() {
            return Err(Error::Dataset {
                location: store::redact(text),
                reason: format!(
                    "{} has a deletion vector (rows deleted without rewriting the file), which cutover does not read yet\nhint: run OPTIMIZE or REORG TABLE … APPLY (PURGE) on the table, read it through Spark (sc://…), or export the version to compare as Parquet",
                    view.path()
                ),
            });
        }
        let relative = view.object_store_path();
        let values = view.partition_values_map();
        let partition = partitions
            .iter()
            .map(|name| values.get(name).cloned().flatten())
            .collect();
        let size = u64::try_from(view.size()).unwrap_or_default();
        let (name, place) = match (&remote, &local_root) {
            (Some(remote), _) => {
                let path = if remote.path.is_empty() {
                    relative.to_string()
                } else {
                    format!("{}/{relative}", remote.path.trim_matches('/'))
                };
                let path =
                    ObjectPath::parse(&path).unwrap_or_else(|_| ObjectPath::from(path.as_str()));
                (
                    remote.name(&path),
                    Place::Remote {
                        store: remote.store.clone(),
                        path,
                        size,
                    },
                )
            }
            (None, Some(root)) => {
                let path: PathBuf = relative
                    .parts()
                    .fold(root.clone(), |path, part| path.join(part.as_ref()));
                (path.display().to_string(), Place::Local(path))
            }
            (None, None) => return Err(Error::Internal("a Delta table with no root".to_owned())),
        };
        files.push(DataFile {
            name,
            place,
            partition,
            metadata: None,
        });
    }
    files.sort_by(|left, right| left.name.cmp(&right.name));
    let mut listing = Listing {
        format: FileFormat::Parquet,
        files,
        partitions,
        delta_version: Some(snapshot.version()),
    };
    if let Some(condition) = condition {
        listing.files = crate::dataset::prune(text, &listing, condition)?;
    }
    Ok(listing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_timestamps_follow_the_last_at_sign() {
        assert_eq!(
            split_version("lake/results@v3"),
            ("lake/results", Some(Version::Number(3)))
        );
        assert_eq!(
            split_version("s3://b/results@2024-01-31"),
            (
                "s3://b/results",
                Some(Version::Timestamp("2024-01-31T00:00:00Z".to_owned()))
            )
        );
        assert_eq!(
            split_version("lake/results@2024-01-31T12:00:00Z"),
            (
                "lake/results",
                Some(Version::Timestamp("2024-01-31T12:00:00Z".to_owned()))
            )
        );
        assert_eq!(
            split_version("abfss://c@account.dfs.core.windows.net/results"),
            ("abfss://c@account.dfs.core.windows.net/results", None)
        );
        assert_eq!(
            split_version("exports/user@host"),
            ("exports/user@host", None)
        );
    }
}
