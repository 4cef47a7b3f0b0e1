//! Runbooks: a TOML file of named steps (approvals, notifications, checks,
//! refreshes, diffs, deliveries, drains, hold switches, waits and
//! checkpoints) run in order, each journaled before and after it runs in a
//! hash-chained SQLite journal, so a run that stops resumes at its first
//! unfinished step and any tampering with the record is detected.
//!
//! [`runbook`] reads and checks the file (every problem with its line and
//! column, before anything runs), [`journal`] keeps the record, [`rules`]
//! are the checkpoints' conditions, [`engine`] runs the steps, and
//! [`report`] turns a run's record into evidence (HTML and JSON).
//!
//! ```text
//! name = "lab-feed-parallel-run"
//! [[step]]
//! name = "reconcile"
//! kind = "diff"
//! args = ["sqlite:old.db#lab_results", "sqlite:new.db#lab_results"]
//! [[step]]
//! name = "go-no-go"
//! kind = "checkpoint"
//! green = ["reconcile.difference_rate < 0.5%"]
//! ```

pub mod demo;
pub mod engine;
pub mod journal;
pub mod report;
pub mod rules;
pub mod runbook;

pub use engine::{NoRunProgress, RunEnd, RunError, RunOptions, RunProgress, run};
pub use journal::{Journal, JournalError, Record, RunInfo, Tampered};
pub use runbook::{Kind, Problem, Runbook, RunbookError, Service, Step, Variables, load};
