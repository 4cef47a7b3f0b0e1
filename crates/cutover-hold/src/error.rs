//! Errors of the hold and its replay.

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The journal directory cannot be used.
    #[error("journal {path}: {message}")]
    Journal {
        /// The directory or file.
        path: String,
        /// What failed.
        message: String,
    },
    /// The journal holds a record that is not one of ours.
    #[error("journal {path}: record {index} is damaged ({message})")]
    Damaged {
        /// The file.
        path: String,
        /// The record's position.
        index: u64,
        /// What is wrong.
        message: String,
    },
    /// The listen address or a URL is not usable.
    #[error("{0}")]
    Config(String),
    /// The HTTP server failed.
    #[error("serving: {0}")]
    Serve(String),
}

/// The hold's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
