//! A durable hold-and-replay queue for API calls during a migration window.
//!
//! [`serve`] runs an HTTP reverse proxy. In `forward` mode it passes calls to
//! the backend; in `hold` mode it appends each call to the [`Journal`] and
//! answers `202 Accepted` with a hold id only once the call is on disk
//! (fdatasync, shared by every call that arrived meanwhile: group commit).
//! [`replay`] sends the held calls, in arrival order, to the new backend,
//! exactly once: each outcome is recorded durably, and a rerun skips the
//! calls already answered.

mod error;
mod journal;
mod replay;
mod server;

pub use error::{Error, Result};
pub use journal::{Call, Journal, JournalReader, Outcomes};
pub use replay::{ReplayOptions, ReplayReport, replay};
pub use server::{HoldConfig, Mode, serve};
