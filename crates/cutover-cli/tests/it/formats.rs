//! cutover's own files carry their format's version: a file of a newer
//! format is refused, naming both versions, and left as it was.

/// A run journal, a delivery ledger, a diff state file and a hold journal
/// written by a newer cutover (format 2) are each refused with exit 2,
/// before anything is written to them.
#[test]
fn files_of_a_newer_format_are_refused_and_left_unchanged() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let newer = |name: &str, version: i64| {
        let path = directory.path().join(name);
        let connection = rusqlite::Connection::open(&path).expect("file");
        connection
            .execute_batch(&format!(
                "PRAGMA user_version = {version}; CREATE TABLE future (value TEXT);"
            ))
            .expect("a newer file");
        path.display().to_string()
    };
    let examples = crate::workspace_root().join("examples");
    // One format past what this cutover writes of each.
    let journal = newer("journal.db", 2);
    let ledger = newer("ledger.db", 3);
    let state = newer("state.db", 2);
    let source = format!(
        "sqlite:{}#lab_results",
        examples.join("lab-results.db").display()
    );
    let target = format!(
        "sqlite:{}#lab_results",
        examples.join("lab-results-new.db").display()
    );
    for (what, found, current, args) in [
        (
            "run journal",
            2,
            1,
            vec!["status", "--journal", journal.as_str()],
        ),
        (
            "delivery ledger",
            3,
            2,
            vec!["ledger", "--ledger", ledger.as_str()],
        ),
        (
            "diff state file",
            2,
            1,
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
                "a {what} of format {found}, written by a newer cutover; this cutover reads formats 1 to {current}"
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

/// Copies a directory tree (the fixtures are never opened in place: opening
/// a file may stamp or append to it).
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("a copy's directory");
    for entry in std::fs::read_dir(from).expect("fixtures") {
        let entry = entry.expect("a fixture");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("its type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("a copy");
        }
    }
}

/// Runs `cutover` in `directory` (a report is written beside the runs
/// the journal names, relative to where it was made).
fn cutover_in(directory: &std::path::Path, args: &[&str]) -> crate::Run {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .env("CUTOVER_LOG", "off")
        .current_dir(directory)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running cutover");
    crate::Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The files cutover 0.1.0 wrote (tests/fixtures/formats/0.1.0, made as its
/// README says) are read by this cutover: the journal's runs, hash chain and
/// reports, the ledger's states, the diff state file resumed, and the held
/// calls replayed.
#[test]
fn files_written_by_cutover_0_1_0_are_read() {
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats/0.1.0");
    let directory = tempfile::tempdir().expect("temporary directory");
    let old = directory.path();
    copy_tree(&fixtures, old);

    let run = cutover_in(old, &["status", "--journal", "journal.db"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let runs: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(runs.len(), 3, "{}", run.stdout);
    assert!(runs[0].starts_with("acceptance-refresh-"), "{runs:?}");
    assert!(
        run.stdout.lines().all(|line| line.ends_with("finished")),
        "{}",
        run.stdout
    );
    let run = cutover_in(old, &["journal", "verify", "--journal", "journal.db"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("hash chain intact"), "{}", run.stdout);
    let run = cutover_in(old, &["report", "--journal", "journal.db", runs[0]]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(old.join(format!("demo/cutover-runs/{}/report.json", runs[0])))
            .expect("the report"),
    )
    .expect("JSON");
    assert_eq!(report["journal"]["intact"], true);
    assert_eq!(report["steps"].as_array().map(Vec::len), Some(10));

    let run = cutover_in(
        old,
        &["--format", "json", "ledger", "--ledger", "ledger.db"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let ledger: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(ledger["rows"][0]["data_stream"], "celr", "{ledger}");
    assert_eq!(ledger["rows"][0]["states"]["verified"], 3, "{ledger}");

    // The state file resumes the diff it was made by (from the workspace
    // root, with the same sides): a format or fingerprint that changed
    // would refuse it.
    let state = old.join("diff-state.db").display().to_string();
    let run = crate::cutover(&[
        "--format",
        "json",
        "diff",
        "sqlite:examples/lab-results.db#lab_results",
        "sqlite:examples/lab-results-new.db#lab_results",
        "--jobs",
        "2",
        "--state",
        &state,
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let diff: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(
        (
            &diff["summary"]["missing"],
            &diff["summary"]["extra"],
            &diff["summary"]["changed"]
        ),
        (&4.into(), &2.into(), &5.into()),
        "{diff}"
    );

    // The held calls go to a new backend (another hold, accepting every call).
    let (mut backend, address) = crate::spawn_announcing(
        std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["hold", "--listen", "127.0.0.1:0", "--journal"])
            .arg(old.join("new-app"))
            .args(["--backend", "http://127.0.0.1:9", "--mode", "hold"])
            .env("CUTOVER_LOG", "off"),
        2,
    );
    let run = cutover_in(
        old,
        &[
            "hold",
            "replay",
            "--journal",
            "held",
            "--to",
            &format!("http://{address}"),
        ],
    );
    let _ = backend.kill();
    let _ = backend.wait();
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("replayed 2 held calls") && run.stdout.contains("2 delivered now"),
        "{}",
        run.stdout
    );
}
