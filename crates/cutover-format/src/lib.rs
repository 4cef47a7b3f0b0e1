//! The versions of cutover's own file formats. A run journal, a delivery
//! ledger and a diff's state file are SQLite files whose `user_version`
//! names their format: a newer cutover reads every earlier format (0 is a
//! new file, or one written before formats had versions, read as format 1),
//! and an older one refuses a newer file, naming both versions, before it
//! writes anything to it.

use std::path::Path;

use rusqlite::Connection;

/// Refuses the SQLite file behind `connection` (a `what` at `path`) when its
/// format is newer than `current`, the newest this cutover writes; the
/// error says what and what to do.
pub fn check_sqlite(
    connection: &Connection,
    path: &Path,
    what: &str,
    current: i64,
) -> Result<(), String> {
    let found: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|error| format!("could not read the format of {}: {error}", path.display()))?;
    if found > current {
        return Err(format!(
            "a {what} of format {found}, written by a newer cutover; this cutover reads \
             formats 1 to {current}\nhint: open it with the cutover that wrote it, or a newer one"
        ));
    }
    Ok(())
}

/// Records `current` as the format of the SQLite file behind `connection`,
/// once its tables are made or brought up to date.
pub fn stamp_sqlite(connection: &Connection, path: &Path, current: i64) -> Result<(), String> {
    connection
        .execute_batch(&format!("PRAGMA user_version = {current}"))
        .map_err(|error| format!("could not record the format of {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_file_is_refused_and_an_older_one_stamped() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("file.db");
        let connection = Connection::open(&path).expect("open");
        assert_eq!(check_sqlite(&connection, &path, "ledger", 1), Ok(()));
        stamp_sqlite(&connection, &path, 1).expect("stamp");
        assert_eq!(check_sqlite(&connection, &path, "ledger", 1), Ok(()));
        stamp_sqlite(&connection, &path, 3).expect("stamp");
        let refused = check_sqlite(&connection, &path, "ledger", 2).expect_err("refused");
        assert!(
            refused.starts_with("a ledger of format 3, written by a newer cutover; this cutover reads formats 1 to 2"),
            "{refused}"
        );
    }
}
