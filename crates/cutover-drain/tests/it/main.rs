//! `analyse` on generated db-scheduler tables of 100,000 timers, in SQLite and PostgreSQL.

use cutover_db::{ConnectOptions, Database, TableName};
use cutover_drain::{DrainReport, Error, Profile, analyse};

/// 2026-01-01T00:00:00Z.
const NOW: i64 = 1_767_225_600_000_000;
const MINUTE: i64 = 60_000_000;

const SQLITE_SCHEMA: &str = "CREATE TABLE scheduled_tasks (
    task_name TEXT NOT NULL, task_instance TEXT NOT NULL, task_data BLOB,
    execution_time TIMESTAMPTZ NOT NULL, picked BOOLEAN NOT NULL, picked_by TEXT,
    last_success TIMESTAMPTZ, last_failure TIMESTAMPTZ, consecutive_failures INTEGER,
    last_heartbeat TIMESTAMPTZ, version INTEGER NOT NULL, priority INTEGER,
    PRIMARY KEY (task_name, task_instance))";

/// 60,000 2.x timers over 5,000 launches (each with an RR_CHECK, the chain's last action),
/// due over the next day, 100 failing 5 times, 50 picked with a two-hour-old heartbeat;
/// 40,000 3.x timers due from 30 minutes ago to 30 minutes ahead (a quarter overdue);
/// 10 timers of a task no version knows.
const SQLITE_ROWS: &str = "
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 59999)
INSERT INTO scheduled_tasks
SELECT 'EICRTask',
       (CASE i % 7 WHEN 0 THEN 'MATCH_TRIGGER' WHEN 1 THEN 'CREATE_EICR' WHEN 2 THEN 'PERIODIC_UPDATE_EICR'
         WHEN 3 THEN 'CLOSE_OUT_EICR' WHEN 4 THEN 'VALIDATE_EICR' WHEN 5 THEN 'SUBMIT_EICR' ELSE 'RR_CHECK' END)
         || '_' || (i % 5000) || '_' || printf('%08x-0000-4000-8000-%012x', i, i),
       x'aced0005',
       strftime('%Y-%m-%d %H:%M:%S+00:00', '2026-01-01 00:00:00', '+' || (i % 1440) || ' minutes'),
       i % 1200 = 3, CASE WHEN i % 1200 = 3 THEN 'old-node' END, NULL, NULL,
       CASE WHEN i % 600 = 7 THEN 5 ELSE 0 END,
       CASE WHEN i % 1200 = 3 THEN '2025-12-31 22:00:00+00:00' END, 1, NULL
FROM n;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 39999)
INSERT INTO scheduled_tasks
SELECT 'BsaScheduledJob', 'A' || i || '_SUBMIT_EICR_ACTION_' || (i % 3000) || '_' || printf('%08x-0000-4000-8000-%012x', i, i),
       x'aced0005',
       strftime('%Y-%m-%d %H:%M:%S+00:00', '2025-12-31 23:30:00', '+' || (i % 60) || ' minutes'),
       0, NULL, NULL, NULL, 0, NULL, 1, NULL
FROM n;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 9)
INSERT INTO scheduled_tasks SELECT 'OtherTask', 'x' || i, NULL, '2026-01-01 01:00:00+00:00', 0, NULL, NULL, NULL, 0, NULL, 1, NULL FROM n;
";

const POSTGRES_ROWS: &str = "
CREATE TABLE scheduled_tasks (
    task_name text NOT NULL, task_instance text NOT NULL, task_data bytea,
    execution_time timestamptz NOT NULL, picked boolean NOT NULL, picked_by text,
    last_success timestamptz, last_failure timestamptz, consecutive_failures int,
    last_heartbeat timestamptz, version bigint NOT NULL, priority smallint, state text,
    PRIMARY KEY (task_name, task_instance));
INSERT INTO scheduled_tasks
SELECT 'EICRTask',
       (ARRAY['MATCH_TRIGGER','CREATE_EICR','PERIODIC_UPDATE_EICR','CLOSE_OUT_EICR','VALIDATE_EICR','SUBMIT_EICR','RR_CHECK'])[i % 7 + 1]
         || '_' || (i % 5000) || '_' || lpad(to_hex(i), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(i), 12, '0'),
       '\\xaced0005', timestamptz '2026-01-01 00:00:00+00' + (i % 1440) * interval '1 minute',
       i % 1200 = 3, CASE WHEN i % 1200 = 3 THEN 'old-node' END, NULL, NULL,
       CASE WHEN i % 600 = 7 THEN 5 ELSE 0 END,
       CASE WHEN i % 1200 = 3 THEN timestamptz '2025-12-31 22:00:00+00' END, 1, NULL, NULL
FROM generate_series(0, 59999) i;
INSERT INTO scheduled_tasks
SELECT 'BsaScheduledJob', 'A' || i || '_SUBMIT_EICR_ACTION_' || (i % 3000) || '_' || lpad(to_hex(i), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(i), 12, '0'),
       '\\xaced0005', timestamptz '2025-12-31 23:30:00+00' + (i % 60) * interval '1 minute',
       false, NULL, NULL, NULL, 0, NULL, 1, NULL, NULL
FROM generate_series(0, 39999) i;
INSERT INTO scheduled_tasks SELECT 'OtherTask', 'x' || i, NULL, timestamptz '2026-01-01 01:00:00+00', false, NULL, NULL, NULL, 0, NULL, 1, NULL, NULL
FROM generate_series(0, 9) i;
";

fn check(report: &DrainReport, optional: &[&str]) {
    assert_eq!(report.timers, 100_010);
    assert_eq!(report.optional_columns, optional);
    let old = report.version("2.x").expect("2.x");
    let new = report.version("3.x").expect("3.x");
    assert_eq!((old.pending, new.pending), (60_000, 40_000));
    // 2.x: the last timer is due in 1,439 minutes and has 10 retries of 5 minutes left;
    // every launch has reached its chain's last action, so no follow-on is added.
    assert_eq!(old.drained_by_micros(), Some(NOW + 1_489 * MINUTE));
    // 3.x: due 29 minutes ahead at the latest, plus 3 retries.
    assert_eq!(new.drained_by_micros(), Some(NOW + 44 * MINUTE));
    let group = |version: &str| {
        report
            .groups
            .iter()
            .find(|group| group.version == version)
            .expect("a group")
    };
    assert_eq!(group("2.x").launches, 5_000);
    assert_eq!(group("3.x").launches, 3_000);
    assert_eq!(
        (
            group("2.x").stuck,
            group("2.x").failing,
            group("2.x").picked
        ),
        (50, 100, 50)
    );
    // Due 30 to 16 minutes ago: i % 60 in 0..15, 667 timers each.
    assert_eq!(group("3.x").overdue, 10_005);
    assert_eq!(group("2.x").overdue, 0);
    let kinds: Vec<(&str, u64)> = report
        .problems
        .iter()
        .map(|problem| (problem.kind, problem.timers))
        .collect();
    assert_eq!(
        kinds,
        [
            ("stuck", 50),
            ("failing", 100),
            ("overdue", 10_005),
            ("unclassified", 10)
        ]
    );
}

async fn sqlite(sql: &str) -> (tempfile::TempDir, Database) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("app.db");
    let database = Database::connect_str(
        &format!("sqlite:{}", path.display()),
        &ConnectOptions {
            create_sqlite: true,
            ..ConnectOptions::default()
        },
    )
    .await
    .expect("sqlite");
    database.execute_batch(sql).await.expect("fixture");
    (directory, database)
}

#[tokio::test]
async fn timers_are_classified_and_forecast_in_sqlite() {
    let (_directory, database) = sqlite(&format!("{SQLITE_SCHEMA}; {SQLITE_ROWS}")).await;
    let table = TableName::new("scheduled_tasks");
    let profile = Profile::default_profile();
    let report = analyse(&database, &table, &profile, NOW)
        .await
        .expect("analyse");
    check(&report, &["priority"]);

    // An hour later 1,000 2.x timers have fired: the observed rate is 1,000 an hour,
    // which would take 59 more hours for the rest.
    database
        .execute_batch("DELETE FROM scheduled_tasks WHERE rowid IN (SELECT rowid FROM scheduled_tasks WHERE task_name = 'EICRTask' LIMIT 1000)")
        .await
        .expect("delete");
    let mut later = analyse(&database, &table, &profile, NOW + 60 * MINUTE)
        .await
        .expect("analyse");
    later.observe(&report);
    let old = later.version("2.x").expect("2.x");
    assert_eq!(old.observed_per_hour, Some(1_000.0));
    assert_eq!(
        old.observed_drained_by.as_deref(),
        Some("2026-01-03T12:00:00Z")
    );
}

#[tokio::test]
async fn timers_are_classified_and_forecast_in_postgres() {
    let Some(postgres) = cutover_testing::postgres().await else {
        return;
    };
    cutover_testing::postgres_execute(&postgres.url, POSTGRES_ROWS).await;
    let database = Database::connect_str(&postgres.url, &ConnectOptions::default())
        .await
        .expect("postgres");
    let report = analyse(
        &database,
        &TableName::new("scheduled_tasks"),
        &Profile::default_profile(),
        NOW,
    )
    .await
    .expect("analyse");
    check(&report, &["priority", "state"]);
}

#[tokio::test]
async fn the_traps_are_named() {
    // Nobody picks 2.x any more: every timer overdue, none picked.
    let (_directory, database) = sqlite(&format!(
        "{SQLITE_SCHEMA}; CREATE TABLE scheduled_tasks_v2 AS SELECT * FROM scheduled_tasks; \
         INSERT INTO scheduled_tasks VALUES ('EICRTask', 'CREATE_EICR_7_00000000-0000-4000-8000-000000000000', NULL, \
           '2025-12-30 00:00:00+00:00', 0, NULL, NULL, NULL, 0, NULL, 1, NULL), \
           ('EICRTask', 'not an instance', NULL, '2025-12-30 00:00:00+00:00', 0, NULL, NULL, NULL, 0, NULL, 1, NULL);"
    ))
    .await;
    let report = analyse(
        &database,
        &TableName::new("scheduled_tasks"),
        &Profile::default_profile(),
        NOW,
    )
    .await
    .expect("analyse");
    let kinds: Vec<&str> = report.problems.iter().map(|problem| problem.kind).collect();
    assert_eq!(kinds, ["not-picked", "unparsed", "duplicate-table"]);
    assert!(
        report.problems[0].message.contains("2026-01-13T00:00:00Z"),
        "{}",
        report.problems[0].message
    );
    assert!(report.version("3.x").expect("3.x").drained);
}

#[tokio::test]
async fn a_table_that_is_not_db_schedulers_is_refused_by_name() {
    let (_directory, database) = sqlite(
        "CREATE TABLE scheduled_tasks (task_name TEXT, task_instance TEXT, execution_time TEXT)",
    )
    .await;
    let error = analyse(
        &database,
        &TableName::new("scheduled_tasks"),
        &Profile::default_profile(),
        NOW,
    )
    .await
    .expect_err("not a timer table");
    assert!(matches!(error, Error::NotScheduledTasks { .. }));
    assert_eq!(
        error.to_string(),
        "scheduled_tasks is not a db-scheduler timer table: it has no picked, picked_by, last_success, \
         last_failure, consecutive_failures, last_heartbeat, version columns"
    );
}

#[test]
fn bad_rules_are_reported_with_what_is_wrong() {
    let error = Profile::parse(
        "[[version]]\nname = \"2.x\"\ntask_name = \"T\"\nretry_delay = \"soon\"\n",
        "rules.toml",
    )
    .expect_err("bad duration");
    assert_eq!(
        error.to_string(),
        "rules.toml: version 2.x: retry_delay = \"soon\" is not a duration (write e.g. 30s, 5m, 1h30m, 2d)"
    );
    let error = Profile::parse(
        "[[version]]\nname = \"2.x\"\ntask_name = \"T\"\ninstance = \"(\"\n",
        "rules.toml",
    )
    .expect_err("bad pattern");
    assert!(
        error
            .to_string()
            .starts_with("rules.toml: version 2.x: instance: regex parse error"),
        "{error}"
    );
    let error = Profile::parse("colour = 1\n", "rules.toml").expect_err("unknown key");
    assert!(
        error.to_string().contains("unknown field `colour`"),
        "{error}"
    );
}
