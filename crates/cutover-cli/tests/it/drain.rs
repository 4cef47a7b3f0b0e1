//! `cutover drain` end to end on SQLite: the report, the gate's exit codes, bad input.

use crate::cutover;

const SCHEMA: &str = "CREATE TABLE scheduled_tasks (
    task_name TEXT NOT NULL, task_instance TEXT NOT NULL, task_data BLOB,
    execution_time TIMESTAMPTZ NOT NULL, picked BOOLEAN NOT NULL, picked_by TEXT,
    last_success TIMESTAMPTZ, last_failure TIMESTAMPTZ, consecutive_failures INTEGER,
    last_heartbeat TIMESTAMPTZ, version INTEGER NOT NULL,
    PRIMARY KEY (task_name, task_instance))";

/// A database with two 3.x timers due in a day, and no 2.x timers.
fn database() -> (tempfile::TempDir, String) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("app.db");
    let connection = rusqlite::Connection::open(&path).expect("sqlite");
    connection.execute_batch(SCHEMA).expect("schema");
    connection
        .execute_batch(
            "INSERT INTO scheduled_tasks VALUES \
             ('BsaScheduledJob', 'A1_SUBMIT_EICR_ACTION_17_00000000-0000-4000-8000-000000000001', x'aced', \
              strftime('%Y-%m-%d %H:%M:%S+00:00', 'now', '+1 day'), 0, NULL, NULL, NULL, 0, NULL, 1), \
             ('BsaScheduledJob', 'A2_CHECK_RESPONSE_17_00000000-0000-4000-8000-000000000002', x'aced', \
              strftime('%Y-%m-%d %H:%M:%S+00:00', 'now', '+1 day'), 0, NULL, NULL, NULL, 0, NULL, 1);",
        )
        .expect("timers");
    let url = format!("sqlite:{}", path.display());
    (directory, url)
}

#[test]
fn drain_reports_versions_and_gates_on_one() {
    let (_directory, url) = database();
    let run = cutover(&["drain", &url]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("scheduled_tasks on sqlite:"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("2.x                     0  drained"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("3.x                     2"),
        "{}",
        run.stdout
    );

    let run = cutover(&["drain", &url, "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(report["versions"][1]["pending"], 2);
    assert_eq!(report["groups"][0]["launches"], 1);

    // 2.x has drained: the gate opens at once.
    let run = cutover(&["drain", &url, "--wait", "2.x", "--deadline", "5s"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("2.x has drained"), "{}", run.stdout);

    // 3.x has not: the deadline passes, exit 1, and the reason says so.
    let run = cutover(&[
        "drain",
        &url,
        "--wait",
        "3.x",
        "--deadline",
        "2s",
        "--interval",
        "1s",
    ]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("the deadline (2s) passed with 2 3.x timers pending"),
        "{}",
        run.stdout
    );
}

#[test]
fn drain_refuses_bad_input_with_a_reason() {
    let (directory, url) = database();
    let run = cutover(&["drain", &url, "--wait", "4.x"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("--wait 4.x: the rules name no such version"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("the versions are 2.x, 3.x"),
        "{}",
        run.stderr
    );

    let run = cutover(&["drain", &url, "--wait", "3.x", "--deadline", "soon"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("--deadline soon: not a duration"),
        "{}",
        run.stderr
    );

    let other = directory.path().join("other.db");
    rusqlite::Connection::open(&other)
        .expect("sqlite")
        .execute_batch("CREATE TABLE scheduled_tasks (task_name TEXT, task_instance TEXT)")
        .expect("table");
    let run = cutover(&["drain", &format!("sqlite:{}", other.display())]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("is not a db-scheduler timer table: it has no execution_time, picked"),
        "{}",
        run.stderr
    );

    let rules = directory.path().join("rules.toml");
    std::fs::write(&rules, "[[version]]\nname = \"old\"\n").expect("rules");
    let run = cutover(&["drain", &url, "--rules", &rules.display().to_string()]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("missing field `task_name`"),
        "{}",
        run.stderr
    );
}
