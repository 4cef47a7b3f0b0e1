//! Errors of a diff. None carries a row value: columns, tables and keys'
//! column names only.

/// What can go wrong in a diff.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database layer failed (connection, SQL, decoding).
    #[error(transparent)]
    Database(#[from] cutover_db::Error),
    /// A CSV or Parquet side failed (unreadable file, malformed line).
    #[error(transparent)]
    File(cutover_files::Error),
    /// A column named on the command line is not on a side.
    #[error("{side}: no column {column}{}", hint_line(.hint))]
    UnknownColumn {
        /// `source` or `target`, with its label.
        side: String,
        /// The column asked for.
        column: String,
        /// What the side has.
        hint: Option<String>,
    },
    /// No key was given and the source has no primary key to default to.
    #[error(
        "{side}: no key to match rows by\nhint: name the key columns with --key, e.g. --key id or --key sender_id,message_id"
    )]
    NoKey {
        /// The side, with its label.
        side: String,
    },
    /// A column's types on the two sides have no common canonical form.
    #[error(
        "column {column}: {source_type} in the source cannot be compared with {target_type} in the target\nhint: leave it out with --exclude {column}, or cast it on one side with --source-query/--target-query"
    )]
    IncompatibleTypes {
        /// The column (source name).
        column: String,
        /// The source's type.
        source_type: String,
        /// The target's type.
        target_type: String,
    },
    /// `--strategy server` was asked for where it cannot work.
    #[error(
        "the server strategy cannot be used: {reason}\nhint: use --strategy client (or leave --strategy out to choose automatically)"
    )]
    ServerStrategyUnavailable {
        /// Why not.
        reason: String,
    },
    /// An option's value makes no sense.
    #[error("{0}")]
    BadOption(String),
    /// The state file belongs to another diff.
    #[error(
        "state file {path} was written by a different diff (other sides, key, columns or options)\nhint: use a new --state file, or delete this one to start over"
    )]
    StateMismatch {
        /// The state file.
        path: String,
    },
    /// The local work database (state file or temporary spill) failed.
    #[error("{context}: {message}")]
    Store {
        /// What was being done.
        context: String,
        /// SQLite's message.
        message: String,
    },
    /// Reading or writing a local file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A bug: an invariant did not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

fn hint_line(hint: &Option<String>) -> String {
    hint.as_ref()
        .map(|hint| format!("\nhint: {hint}"))
        .unwrap_or_default()
}

impl Error {
    pub(crate) fn store(context: impl Into<String>, error: rusqlite::Error) -> Self {
        Error::Store {
            context: context.into(),
            message: error.to_string(),
        }
    }
}

/// A diff's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
