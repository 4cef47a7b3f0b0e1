//! Errors reading or writing files. A malformed field is named by line and
//! column, never by its content.

/// What can go wrong with a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A CSV line is malformed (wrong number of fields, invalid quoting or UTF-8).
    #[error("{path}: line {line}: {reason}")]
    Csv {
        /// The file.
        path: String,
        /// The 1-based line number.
        line: u64,
        /// What is wrong, without the line's content.
        reason: String,
    },
    /// A field cannot be read as its column's type.
    #[error(
        "{path}: line {line}, column {column}: not a valid {expected}\nhint: compare the column as text on both sides, or leave it out with --exclude {column}"
    )]
    Field {
        /// The file.
        path: String,
        /// The 1-based line number (the row number for Parquet).
        line: u64,
        /// The column.
        column: String,
        /// The type expected.
        expected: String,
    },
    /// A column is not in the file.
    #[error("{path}: no column {column}\nhint: it has: {available}")]
    UnknownColumn {
        /// The file.
        path: String,
        /// The column asked for.
        column: String,
        /// The columns it has.
        available: String,
    },
    /// The Parquet file is invalid, or has a type cutover cannot read.
    #[error("{path}: {reason}")]
    Parquet {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An object store could not be reached, refused the credentials, or
    /// has no such bucket, container or object.
    #[error("{location}: {reason}")]
    Store {
        /// The location, without query or credentials.
        location: String,
        /// What went wrong, scrubbed of query strings.
        reason: String,
    },
    /// A path or pattern matches no file, or names files cutover cannot
    /// read as one table.
    #[error("{location}: {reason}")]
    Dataset {
        /// The location, without query or credentials.
        location: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A bug: an invariant did not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A file operation's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
