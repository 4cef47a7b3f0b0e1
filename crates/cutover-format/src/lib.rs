//! The versions of cutover's own file formats. A run journal, a delivery
//! ledger and a diff's state file are SQLite files whose `user_version`
//! names their format; a hold journal is a directory whose `format` file
//! does: a newer cutover reads every earlier format (0 is a
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
        return Err(newer(what, found, current));
    }
    Ok(())
}

/// Opens the SQLite file at `path` (a `what`, such as a run journal) that
/// must already exist, read-only or for writing, never creating it; refuses
/// a newer format than `current`; waits up to 10 seconds for a writer's lock.
pub fn open_existing_sqlite(
    path: &Path,
    what: &str,
    current: i64,
    read_only: bool,
) -> Result<Connection, String> {
    use rusqlite::OpenFlags;
    if !path.is_file() {
        return Err(format!("no {what} here"));
    }
    let access = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    };
    let connection = Connection::open_with_flags(path, access | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|error| error.to_string())?;
    check_sqlite(&connection, path, what, current)?;
    connection
        .busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|error| error.to_string())?;
    Ok(connection)
}

/// Records `current` as the format of the SQLite file behind `connection`,
/// once its tables are made or brought up to date.
pub fn stamp_sqlite(connection: &Connection, path: &Path, current: i64) -> Result<(), String> {
    connection
        .execute_batch(&format!("PRAGMA user_version = {current}"))
        .map_err(|error| format!("could not record the format of {}: {error}", path.display()))
}

/// The file naming the format of a journal kept as a directory of files.
pub const DIRECTORY_FORMAT_FILE: &str = "format";

/// Refuses the directory `directory` (a `what`) when its format file names
/// a format newer than `current`; a directory without one (new, or written
/// before formats had versions) is format 1.
pub fn check_directory(directory: &Path, what: &str, current: i64) -> Result<(), String> {
    let path = directory.join(DIRECTORY_FORMAT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(format!("could not read {}: {error}", path.display())),
    };
    let found: i64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{} does not name a format version", path.display()))?;
    if found > current {
        return Err(newer(what, found, current));
    }
    Ok(())
}

/// Records `current` as the format of `directory` (written beside, synced,
/// then renamed into place).
pub fn stamp_directory(directory: &Path, current: i64) -> Result<(), String> {
    let path = directory.join(DIRECTORY_FORMAT_FILE);
    let partial = directory.join(format!(".{DIRECTORY_FORMAT_FILE}.partial"));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&partial)?;
        std::io::Write::write_all(&mut file, format!("{current}\n").as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&partial, &path)?;
        std::fs::File::open(directory)?.sync_all()
    };
    write().map_err(|error| {
        format!(
            "could not record the format of {}: {error}",
            directory.display()
        )
    })
}

fn newer(what: &str, found: i64, current: i64) -> String {
    format!(
        "a {what} of format {found}, written by a newer cutover; this cutover reads \
         formats 1 to {current}\nhint: open it with the cutover that wrote it, or a newer one"
    )
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

    #[test]
    fn a_directory_says_its_format_in_a_file() {
        let directory = tempfile::tempdir().expect("temporary directory");
        assert_eq!(check_directory(directory.path(), "hold journal", 1), Ok(()));
        stamp_directory(directory.path(), 1).expect("stamp");
        assert_eq!(check_directory(directory.path(), "hold journal", 1), Ok(()));
        stamp_directory(directory.path(), 2).expect("stamp");
        let refused = check_directory(directory.path(), "hold journal", 1).expect_err("refused");
        assert!(
            refused.starts_with("a hold journal of format 2"),
            "{refused}"
        );
        std::fs::write(directory.path().join(DIRECTORY_FORMAT_FILE), "two").expect("write");
        assert!(check_directory(directory.path(), "hold journal", 1).is_err());
    }
}
