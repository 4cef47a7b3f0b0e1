//! The quickstart's demo: small synthetic databases in SQLite for every
//! scenario, and the example runbooks rewritten to use them.
//!
//! - `production.db` and `acceptance.db`: scenario D's schema; production
//!   has patients, assessments on both sides of the policy's cutoff, stored
//!   documents, examination reports and its own accounts and settings;
//!   acceptance has its own testers, settings, permissions and a portal
//!   trial configuration pointing at acceptance.
//! - `lab-results.db` and `lab-results-new.db`: scenario A's old and new
//!   feeds (a few records missing, extra or changed).
//! - `app.db`: scenario C's app with a db-scheduler `scheduled_tasks` table
//!   whose 2.x timers have drained and whose 3.x timers are pending.
//!
//! Synthetic data only, the same every time.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

const SCHEMA_D: &str = include_str!("../../../examples/scenario-d-schema.sql");
const POLICY_D: &str = include_str!("../../../examples/scenario-d-policy.toml");
const POLICY_C: &str = include_str!("../../../examples/scenario-c-copy-policy.toml");
const LAB_OLD: &[u8] = include_bytes!("../../../examples/lab-results.db");
const LAB_NEW: &[u8] = include_bytes!("../../../examples/lab-results-new.db");

/// The example runbooks, by file name.
pub const RUNBOOKS: [(&str, &str); 4] = [
    (
        "runbook-a-parallel-run.toml",
        include_str!("../../../examples/runbook-a-parallel-run.toml"),
    ),
    (
        "runbook-b-delivery.toml",
        include_str!("../../../examples/runbook-b-delivery.toml"),
    ),
    (
        "runbook-c-move.toml",
        include_str!("../../../examples/runbook-c-move.toml"),
    ),
    (
        "runbook-d-refresh.toml",
        include_str!("../../../examples/runbook-d-refresh.toml"),
    ),
];

/// Why the demo could not be made.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DemoError {
    path: String,
    message: String,
}

fn fail(path: &Path) -> impl Fn(String) -> DemoError + '_ {
    move |message| DemoError {
        path: path.display().to_string(),
        message,
    }
}

/// The production side of scenario D.
const PRODUCTION_ROWS: &str = "
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
INSERT INTO patients
SELECT i, printf('HC-%08d', 10000000 + i * 7919 % 89999999),
       CASE i % 8 WHEN 0 THEN 'Anna' WHEN 1 THEN 'Jan' WHEN 2 THEN 'Maria' WHEN 3 THEN 'Pieter'
                  WHEN 4 THEN 'Fatima' WHEN 5 THEN 'Liam' WHEN 6 THEN 'Noor' ELSE 'Sem' END,
       CASE i % 7 WHEN 0 THEN 'de Vries' WHEN 1 THEN 'Jansen' WHEN 2 THEN 'Bakker' WHEN 3 THEN 'Visser'
                  WHEN 4 THEN 'Smit' WHEN 5 THEN 'Meijer' ELSE 'Mulder' END,
       date('1940-01-01', '+' || (i * 97 % 25000) || ' days'),
       printf('patient%d@example.org', i), printf('+31 6 %08d', i * 104729 % 100000000),
       printf('%d Canal Street', i % 300 + 1), 'Utrecht', printf('35%02d AB', i % 100),
       datetime('2020-01-01', '+' || (i * 13) || ' days')
FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 480)
INSERT INTO assessments
SELECT i, (i - 1) % 200 + 1, date('2025-06-01', '+' || (i * 11 % 360) || ' days'),
       CASE i % 3 WHEN 0 THEN 'fit' WHEN 1 THEN 'fit with conditions' ELSE 'unfit' END,
       printf('Clinical notes of assessment %d', i)
FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)
INSERT INTO documents SELECT i, i * 3, printf('scan-%d.pdf', i), randomblob(2048) FROM n;
INSERT INTO examination_reports
SELECT id, id, CASE WHEN id <= 60 THEN id END, printf('Conclusion of assessment %d', id), assessed_on
FROM assessments WHERE id % 2 = 0;
INSERT INTO accounts VALUES (1, 'prod.admin', 'Production administrator', '$2b$12$productionhashproductionhash');
INSERT INTO second_factor_enrolments VALUES (1, 'totp', 'PRODSECRET123456');
INSERT INTO settings VALUES ('environment', 'production'), ('mail_relay', 'smtp.prod.internal');
INSERT INTO permissions VALUES (1, 'admin');
INSERT INTO portal_trial_config VALUES (1, 'https://portal.prod.internal/api', 1);
";

/// Acceptance's own data, which the refresh must keep.
const ACCEPTANCE_ROWS: &str = "
INSERT INTO patients VALUES (1, 'HC-OLD', 'Old', 'Copy', '1950-01-01', NULL, NULL, NULL, NULL, NULL, '2019-01-01 00:00:00');
INSERT INTO accounts VALUES (7, 'tester.one', 'Tester One', '$2b$12$acceptancehashacceptance01'),
                            (8, 'tester.two', 'Tester Two', '$2b$12$acceptancehashacceptance02');
INSERT INTO second_factor_enrolments VALUES (7, 'totp', 'ACCSECRET0000001');
INSERT INTO settings VALUES ('environment', 'acceptance'), ('mail_relay', 'smtp.acc.internal');
INSERT INTO permissions VALUES (7, 'tester'), (8, 'tester');
INSERT INTO portal_trial_config VALUES (1, 'https://portal.acc.internal/api', 1);
";

/// Scenario C's app: db-scheduler timers of both versions.
const APP: &str = "
CREATE TABLE scheduled_tasks (
    task_name TEXT NOT NULL, task_instance TEXT NOT NULL, task_data BLOB,
    execution_time TIMESTAMP NOT NULL, picked BOOLEAN NOT NULL, picked_by TEXT,
    last_success TIMESTAMP, last_failure TIMESTAMP, consecutive_failures INT,
    last_heartbeat TIMESTAMP, version BIGINT NOT NULL,
    PRIMARY KEY (task_name, task_instance));
CREATE TABLE launches (id INTEGER PRIMARY KEY, site TEXT NOT NULL, launched_at TIMESTAMP NOT NULL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 24)
INSERT INTO scheduled_tasks
SELECT 'BsaScheduledJob', printf('%d_CHECK_TRIGGER_CODES_%d_%08x-0000-4000-8000-%012x', i, 500 + i, i * 2654435761 % 4294967296, i),
       NULL, datetime('now', '+' || (i * 5) || ' minutes'), 0, NULL, NULL, NULL, 0, NULL, 1
FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)
INSERT INTO launches SELECT i, CASE i % 2 WHEN 0 THEN 'north' ELSE 'south' END, datetime('now', '-' || i || ' hours') FROM n;
";

fn database(path: &Path, sql: &[&str]) -> Result<(), DemoError> {
    let error = fail(path);
    if path.exists() {
        std::fs::remove_file(path).map_err(|e| error(e.to_string()))?;
    }
    let connection = Connection::open(path).map_err(|e| error(e.to_string()))?;
    for script in sql {
        connection
            .execute_batch(script)
            .map_err(|e| error(e.to_string()))?;
    }
    Ok(())
}

/// Creates the demo in `directory` (made if missing; its databases and
/// runbooks are replaced). Returns the paths of the runbooks written, in
/// the order of [`RUNBOOKS`].
pub fn create(directory: &Path) -> Result<Vec<PathBuf>, DemoError> {
    let error = fail(directory);
    std::fs::create_dir_all(directory).map_err(|e| error(e.to_string()))?;
    database(
        &directory.join("production.db"),
        &[SCHEMA_D, PRODUCTION_ROWS],
    )?;
    database(
        &directory.join("acceptance.db"),
        &[SCHEMA_D, ACCEPTANCE_ROWS],
    )?;
    database(&directory.join("app.db"), &[APP])?;
    for (name, bytes) in [("lab-results.db", LAB_OLD), ("lab-results-new.db", LAB_NEW)] {
        std::fs::write(directory.join(name), bytes).map_err(|e| error(e.to_string()))?;
    }
    for (name, text) in [
        ("scenario-d-policy.toml", POLICY_D),
        ("scenario-c-copy-policy.toml", POLICY_C),
    ] {
        std::fs::write(directory.join(name), text).map_err(|e| error(e.to_string()))?;
    }
    let shown = directory.display().to_string();
    let mut written = Vec::new();
    for (name, text) in RUNBOOKS {
        // The examples name their files as the repository and the default demo place them.
        let text = text
            .replace("examples/lab-results", &format!("{shown}/lab-results"))
            .replace(
                "examples/scenario-d-policy.toml",
                &format!("{shown}/scenario-d-policy.toml"),
            )
            .replace(
                "examples/scenario-c-copy-policy.toml",
                &format!("{shown}/scenario-c-copy-policy.toml"),
            )
            .replace("cutover-demo/", &format!("{shown}/"));
        let path = directory.join(name);
        std::fs::write(&path, text).map_err(|e| error(e.to_string()))?;
        written.push(path);
    }
    Ok(written)
}
