//! The one error type of `cutover-db`.
//!
//! Every message names the thing involved and never contains a row value or a
//! credential: database messages of the data-exception and integrity classes
//! are cut at the first colon (that is where PostgreSQL puts the value), and
//! details (`Key (id)=(42) already exists`) are never shown.

use std::fmt;

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the database layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL could not be understood (unknown scheme, malformed, missing parts).
    #[error("{url}: {reason}{}", hint_line(.hint))]
    BadUrl {
        /// The URL, already redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
        /// What to do about it.
        hint: Option<String>,
    },

    /// The server could not be reached.
    #[error("cannot connect to {target}: {reason}{}", hint_line(.hint))]
    Connect {
        /// The redacted URL or host:port.
        target: String,
        /// Why the connection failed.
        reason: String,
        /// What to do about it.
        hint: Option<String>,
    },

    /// The server refused the credentials.
    #[error("authentication failed for user {user} at {target}{}", hint_line(&Some(
        "hint: check the password in the URL, PGPASSWORD or ~/.pgpass".to_owned())))]
    Authentication {
        /// The user name.
        user: String,
        /// The redacted URL.
        target: String,
    },

    /// A SQLite database file does not exist (it is never created on read).
    #[error(
        "{path}: no such SQLite database file\nhint: check the path; cutover never creates a database it was asked to read"
    )]
    MissingSqliteFile {
        /// The path as given.
        path: String,
    },

    /// A table was asked for that the database does not have.
    #[error("table {table} does not exist in {database}{}", hint_line(.hint))]
    UnknownTable {
        /// The table name as given.
        table: String,
        /// The redacted database URL.
        database: String,
        /// Close matches, if any.
        hint: Option<String>,
    },

    /// A column was asked for that the table does not have.
    #[error("table {table}: column {column} does not exist{}", hint_line(.hint))]
    UnknownColumn {
        /// The table.
        table: String,
        /// The missing column.
        column: String,
        /// The columns the table has.
        hint: Option<String>,
    },

    /// The operation needs a primary key and the table has none.
    #[error(
        "table {table} has no primary key\nhint: name the key columns explicitly (e.g. --key id)"
    )]
    NoPrimaryKey {
        /// The table.
        table: String,
    },

    /// A column's type is not in cutover's value model.
    #[error(
        "table {table}: column {column} has unsupported type {type_name}\nhint: leave the column out (with diff: --exclude {column}), or cast it to text in a query"
    )]
    UnsupportedType {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The engine's name for the type.
        type_name: String,
    },

    /// A stored value could not be decoded as its declared type. The value itself is never shown.
    #[error(
        "table {table}: column {column}: a stored value is not a valid {expected} (value withheld)"
    )]
    Decode {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// What the value should have been.
        expected: String,
    },

    /// A value could not be written as the target column's type.
    #[error("column {column}: cannot write a {value_kind} value into type {type_name}")]
    Encode {
        /// The target column.
        column: String,
        /// The kind of value offered.
        value_kind: &'static str,
        /// The target type.
        type_name: String,
    },

    /// A row had a different number of values than there are columns.
    #[error("table {table}: a row has {got} values where {expected} columns were named")]
    RowWidth {
        /// The table.
        table: String,
        /// Values in the row.
        got: usize,
        /// Columns named.
        expected: usize,
    },

    /// An error reported by PostgreSQL.
    #[error("{context}: {message}{}", code.as_ref().map(|code| format!(" (SQLSTATE {code})")).unwrap_or_default())]
    Postgres {
        /// What cutover was doing.
        context: String,
        /// The server's message, scrubbed of values.
        message: String,
        /// The SQLSTATE, when there is one.
        code: Option<String>,
    },

    /// An error reported by Spark (its message with literal values cut out).
    #[error("{context}: {message}")]
    Spark {
        /// What cutover was doing.
        context: String,
        /// Spark's message, scrubbed of values.
        message: String,
    },

    /// An error reported by SQLite.
    #[error("{context}: {message}")]
    Sqlite {
        /// What cutover was doing.
        context: String,
        /// SQLite's message.
        message: String,
    },

    /// TLS could not be set up.
    #[error("tls: {0}")]
    Tls(String),

    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The caller asked for something the engine cannot do.
    #[error("{0}")]
    Unsupported(String),

    /// A row source outside the database layer (a file) failed; the message
    /// names the file and line, never a value.
    #[error("{0}")]
    Source(String),
    /// A background task stopped unexpectedly.
    #[error("internal: {0}")]
    Internal(String),
}

fn hint_line(hint: &Option<String>) -> String {
    match hint {
        Some(hint) if hint.starts_with("hint:") => format!("\n{hint}"),
        Some(hint) => format!("\nhint: {hint}"),
        None => String::new(),
    }
}

impl Error {
    /// Wraps a PostgreSQL error with what cutover was doing, keeping values out of the message.
    pub(crate) fn postgres(context: impl fmt::Display, error: tokio_postgres::Error) -> Self {
        match error.as_db_error() {
            Some(db) => {
                let code = db.code().code().to_owned();
                Error::Postgres {
                    context: context.to_string(),
                    message: scrub_server_message(&code, db.message()),
                    code: Some(code),
                }
            }
            None => {
                let mut message = error.to_string();
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    message.push_str(": ");
                    message.push_str(&cause.to_string());
                    source = cause.source();
                }
                Error::Postgres {
                    context: context.to_string(),
                    message,
                    code: None,
                }
            }
        }
    }

    /// Wraps a SQLite error with what cutover was doing.
    pub(crate) fn sqlite(context: impl fmt::Display, error: rusqlite::Error) -> Self {
        Error::Sqlite {
            context: context.to_string(),
            message: error.to_string(),
        }
    }
}

/// PostgreSQL puts the offending value after a colon in data-exception (22)
/// and integrity-violation (23) messages; cut there.
fn scrub_server_message(code: &str, message: &str) -> String {
    if code.starts_with("22") || code.starts_with("23") {
        match message.split_once(':') {
            Some((head, _)) => format!("{head} (value withheld)"),
            None => message.to_owned(),
        }
    } else {
        message.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_exception_messages_lose_their_values() {
        let scrubbed = scrub_server_message(
            "22P02",
            "invalid input syntax for type integer: \"Jane Doe\"",
        );
        assert_eq!(
            scrubbed,
            "invalid input syntax for type integer (value withheld)"
        );
        assert!(!scrubbed.contains("Jane"));
    }

    #[test]
    fn schema_messages_keep_identifiers() {
        let kept = scrub_server_message("42P01", "relation \"lab_results\" does not exist");
        assert_eq!(kept, "relation \"lab_results\" does not exist");
    }
}
