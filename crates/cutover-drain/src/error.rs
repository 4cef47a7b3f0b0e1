//! Errors of a drain analysis.

/// What can stop an analysis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database layer failed.
    #[error(transparent)]
    Database(#[from] cutover_db::Error),
    /// The rules file is not valid.
    #[error("{path}: {message}")]
    Rules {
        /// The file.
        path: String,
        /// What is wrong, with line and column where the parser knows them.
        message: String,
    },
    /// The table is not a db-scheduler table.
    #[error("{table} is not a db-scheduler timer table: it has no {missing} column{plural}", plural = if missing.contains(',') { "s" } else { "" })]
    NotScheduledTasks {
        /// The table.
        table: String,
        /// The missing columns, comma-separated.
        missing: String,
    },
}

/// A drain's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
