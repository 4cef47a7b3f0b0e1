//! Refreshing a lower environment from production, fail-closed. This crate
//! holds the sanitization [`Policy`] (TOML), its [`check`] against the
//! source's schema (every column of every copied table must be classified,
//! every rule must fit its column), and [`initial_policy`], a complete
//! starting policy guessed from the schema.
//!
//! ```
//! use cutover_refresh::Policy;
//! let policy = Policy::parse(r#"
//!     [tables.patients]
//!     action = "copy"
//!     [tables.patients.columns]
//!     id = "keep"
//!     name = "fake:full-name"
//! "#).expect("a valid policy");
//! assert_eq!(policy.tables["patients"].columns.len(), 2);
//! ```

mod check;
mod error;
mod fakes;
mod fingerprint;
mod hooks;
mod init;
mod mask;
mod pg_definitions;
mod pg_pieces;
mod pg_refresh;
mod pg_resume;
mod pg_swap;
mod policy;
mod preview;
mod report;
mod sql;
mod sqlite_refresh;
mod subset;
mod targets;
mod transform;
mod unique;
mod verify;

pub use check::{Drift, Problem, check, check_filters, drift, table_key};
pub use error::{Error, Result};
pub use fakes::Locale;
pub use fingerprint::{Fingerprint, Preserved};
pub use hooks::HookOutcome;
pub use init::initial_policy;
pub use mask::{MaskError, Masker};
pub use pg_refresh::{PostgresRefresh, refresh_postgres, staging_schema};
pub use pg_resume::Resumed;
pub use policy::{
    Action, DEFAULT_SHIFT_DAYS, DriftDecision, FakeKind, Hook, HookPoint, OnRemovedParent, Policy,
    Rule, TablePolicy,
};
pub use preview::{MAX_PREVIEW_ROWS, Preview, PreviewColumn, preview};
pub use report::{Baseline, BaselineTable, Report};
pub use sqlite_refresh::{RefreshOutcome, TableOutcome, refresh_sqlite, staging_path};
pub use targets::{forbidden_host, host_of, matches_pattern, same_database};
pub use transform::{TableCopy, is_large_object};
pub use verify::{Check, Status, Verification, VerifyOptions, verify};
