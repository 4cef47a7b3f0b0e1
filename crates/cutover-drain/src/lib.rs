//! Version coexistence: reads a db-scheduler `scheduled_tasks` table,
//! classifies every pending timer by version and site with a [`Profile`],
//! and forecasts when each version's timers are all gone ([`analyse`]).
//! `task_data` (Java-serialized) is never read.
//!
//! ```
//! let profile = cutover_drain::Profile::default_profile();
//! assert_eq!(profile.versions[0].name, "2.x");
//! assert_eq!(cutover_drain::parse_duration("1h30m"), Some(5_400_000_000));
//! ```

mod analyse;
mod error;
mod profile;

pub use analyse::{DrainReport, Group, Problem, REQUIRED_COLUMNS, VersionSummary, analyse};
pub use error::{Error, Result};
pub use profile::{Profile, SiteRule, VersionRule, format_duration, parse_duration};
