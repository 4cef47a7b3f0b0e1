//! Errors of a refresh. Policy problems are collected and reported together
//! ([`crate::Problem`]); these are the failures that stop before that point.

/// What can go wrong before a policy can even be checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database layer failed.
    #[error(transparent)]
    Database(#[from] cutover_db::Error),
    /// The policy file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Something this version cannot do (yet), or will not do safely.
    #[error("{0}")]
    Unsupported(String),
    /// A PostgreSQL refresh stopped during its copy; what it loaded is kept
    /// in the staging schema for `--resume`.
    #[error(
        "{cause}\nhint: the {pieces} pieces already loaded are kept in schema {stage}: \
         run the same refresh with --resume to keep them"
    )]
    Interrupted {
        /// Why it stopped.
        cause: Box<Error>,
        /// The staging schema.
        stage: String,
        /// Pieces loaded and journaled.
        pieces: usize,
    },
    /// The policy file is not valid TOML or not a policy.
    #[error("{path}: {message}")]
    Policy {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
}

/// A refresh's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
