//! cutover's own files carry their format's version: a file of a newer
//! format is refused, naming both versions, and left as it was.

/// A run journal, a delivery ledger, a diff state file and a hold journal
/// written by a newer cutover (format 2) are each refused with exit 2,
/// before anything is written to them.
#[test]
fn files_of_a_newer_format_are_refused_and_left_unchanged() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let newer = |name: &str| {
        let path = directory.path().join(name);
        let connection = rusqlite::Connection::open(&path).expect("file");
        connection
            .execute_batch("PRAGMA user_version = 2; CREATE TABLE future (value TEXT);")
            .expect("a newer file");
        path.display().to_string()
    };
    let examples = crate::workspace_root().join("examples");
    let journal = newer("journal.db");
    let ledger = newer("ledger.db");
    let state = newer("state.db");
    let source = format!(
        "sqlite:{}#lab_results",
        examples.join("lab-results.db").display()
    );
    let target = format!(
        "sqlite:{}#lab_results",
        examples.join("lab-results-new.db").display()
    );
    for (what, args) in [
        ("run journal", vec!["status", "--journal", journal.as_str()]),
        (
            "delivery ledger",
            vec!["ledger", "--ledger", ledger.as_str()],
        ),
        (
            "diff state file",
            vec![
                "diff",
                &source,
                &target,
                "--key",
                "result_id",
                "--state",
                &state,
            ],
        ),
    ] {
        let run = crate::cutover(&args);
        assert_eq!(run.code, 2, "{what}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "a {what} of format 2, written by a newer cutover; this cutover reads formats 1 to 1"
            )),
            "{what}: {}",
            run.stderr
        );
    }
    // A hold journal is a directory; its format is in a file.
    let held = directory.path().join("held");
    std::fs::create_dir(&held).expect("hold journal");
    std::fs::write(held.join("format"), "2\n").expect("format");
    let run = crate::cutover(&[
        "hold",
        "replay",
        "--journal",
        &held.display().to_string(),
        "--to",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(
            "a hold journal of format 2, written by a newer cutover; this cutover reads formats 1 to 1"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_dir(&held).expect("files").count(), 1);
    for path in [&journal, &ledger, &state] {
        let connection = rusqlite::Connection::open(path).expect("file");
        let tables: Vec<String> = connection
            .prepare("SELECT name FROM sqlite_master ORDER BY name")
            .expect("query")
            .query_map([], |row| row.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("names");
        assert_eq!(tables, ["future"], "{path} was written to");
    }
}

/// A journal written before formats had versions (`user_version` 0) is
/// read, and from then on says format 1.
#[test]
fn a_journal_from_before_versions_is_read_and_stamped() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let journal = directory.path().join("journal.db");
    rusqlite::Connection::open(&journal)
        .expect("journal")
        .execute_batch(
            "CREATE TABLE runs (id TEXT PRIMARY KEY, runbook TEXT NOT NULL, path TEXT NOT NULL, \
               dir TEXT NOT NULL, started_at TEXT NOT NULL, status TEXT NOT NULL);
             CREATE TABLE records (seq INTEGER PRIMARY KEY, run TEXT NOT NULL, at TEXT NOT NULL, \
               step TEXT NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL, prev TEXT NOT NULL, \
               hash TEXT NOT NULL);",
        )
        .expect("an unversioned journal");
    let version = || -> i64 {
        rusqlite::Connection::open(&journal)
            .expect("journal")
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .expect("version")
    };
    assert_eq!(version(), 0);
    let run = crate::cutover(&["status", "--journal", &journal.display().to_string()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(version(), 1);
}
