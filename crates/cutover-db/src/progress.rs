//! Progress reporting for long jobs.

/// Where a long job (a diff, a refresh) reports its progress; libraries never
/// print, the caller draws.
pub trait Progress: Send + Sync {
    /// A phase starts; `total` rows if known.
    fn phase(&self, name: &str, total: Option<u64>);
    /// `rows` more rows were read in the current phase.
    fn advance(&self, rows: u64);
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&self, _name: &str, _total: Option<u64>) {}
    fn advance(&self, _rows: u64) {}
}
