//! `cutover refresh --init-policy` and `--check` end to end on SQLite.

use crate::{cutover, regex_escape, settings};

fn production() -> (tempfile::TempDir, String) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("production.db");
    let connection = rusqlite::Connection::open(&path).expect("sqlite");
    connection
        .execute_batch(
            "CREATE TABLE patients (id INTEGER PRIMARY KEY, health_card_number TEXT NOT NULL, first_name TEXT NOT NULL, notes TEXT); \
             CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);",
        )
        .expect("schema");
    let url = format!("sqlite:{}", path.display());
    (directory, url)
}

#[test]
fn init_policy_then_check_then_a_new_column_fails_the_check() {
    let (directory, source) = production();
    let policy = directory.path().join("policy.toml");
    let policy_arg = policy.display().to_string();
    let target = format!(
        "sqlite:{}",
        directory.path().join("acceptance.db").display()
    );
    let run = cutover(&["refresh", "--from", &source, "--init-policy", &policy_arg]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("2 tables, 6 columns, 4 masking guesses to review"),
        "{}",
        run.stdout
    );
    let text = std::fs::read_to_string(&policy).expect("policy file");
    assert!(
        text.contains("first_name         = \"fake:first-name\"  # guess: a person's name"),
        "{text}"
    );

    let run = cutover(&["refresh", "--from", &source, "--init-policy", &policy_arg]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("already exists\nhint:"),
        "{}",
        run.stderr
    );

    let check = || {
        crate::cutover_with_env(
            &[
                "refresh",
                "--from",
                &source,
                "--to",
                &target,
                "--policy",
                &policy_arg,
                "--check",
            ],
            &[("CUTOVER_MASK_SECRET", "test secret")],
        )
    };
    let run = check();
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);

    let connection =
        rusqlite::Connection::open(directory.path().join("production.db")).expect("sqlite");
    connection
        .execute_batch("ALTER TABLE patients ADD COLUMN emergency_contact TEXT; CREATE TABLE audit (id INTEGER PRIMARY KEY)")
        .expect("schema change");
    let run = check();
    assert_eq!(run.code, 1);
    let mut settings = settings();
    settings.add_filter(
        &regex_escape(&directory.path().display().to_string()),
        "[dir]",
    );
    settings.bind(|| insta::assert_snapshot!(run.stdout));
}

#[test]
fn a_target_that_is_the_source_or_production_is_refused() {
    let (directory, source) = production();
    let policy = directory.path().join("policy.toml");
    std::fs::write(&policy, "forbid_hosts = [\"*.prod.internal\"]\n[tables.patients]\naction = \"skip\"\n[tables.settings]\naction = \"skip\"\n")
        .expect("policy");
    let policy_arg = policy.display().to_string();
    let run = cutover(&[
        "refresh",
        "--from",
        &source,
        "--to",
        &source,
        "--policy",
        &policy_arg,
        "--check",
    ]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("is the source: refusing"),
        "{}",
        run.stdout
    );
    let run = cutover(&[
        "refresh",
        "--from",
        &source,
        "--to",
        "postgres://writer@db2.prod.internal/app",
        "--policy",
        &policy_arg,
        "--check",
    ]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .contains("matches the production host pattern *.prod.internal"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_sqlite_refresh_with_the_scenario_d_policy_and_one_that_is_refused() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let schema = scenario_d_schema();
    let production = directory.path().join("production.db");
    let acceptance = directory.path().join("acceptance.db");
    for (path, rows) in [
        (
            &production,
            "INSERT INTO patients VALUES (1, 'HC-1', 'Anna', 'Smit', '1970-05-01', NULL, NULL, NULL, NULL, NULL, '2024-01-01 00:00:00'); \
             INSERT INTO assessments VALUES (10, 1, '2025-03-01', 'ok', 'private'), (11, 1, '2026-02-01', 'ok', NULL); \
             INSERT INTO accounts VALUES (1, 'prod.admin', 'Admin', 'prod-hash');",
        ),
        (
            &acceptance,
            "INSERT INTO accounts VALUES (7, 'tester', 'Tester', 'acc-hash');",
        ),
    ] {
        let connection = rusqlite::Connection::open(path).expect("sqlite");
        connection.execute_batch(&schema).expect("schema");
        connection.execute_batch(rows).expect("rows");
    }
    let policy = crate::workspace_root()
        .join("examples/scenario-d-policy.toml")
        .display()
        .to_string();
    let from = format!("sqlite:{}", production.display());
    let to = format!("sqlite:{}", acceptance.display());
    let refresh = || {
        crate::cutover_with_env(
            &["refresh", "--from", &from, "--to", &to, "--policy", &policy],
            &[("CUTOVER_MASK_SECRET", "test secret")],
        )
    };
    let run = refresh();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut settings = settings();
    settings.add_filter(
        &regex_escape(&directory.path().display().to_string()),
        "[dir]",
    );
    settings.add_filter(r"in \d+\.\d s", "in [seconds] s");
    settings.bind(|| insta::assert_snapshot!(run.stdout));
    let connection = rusqlite::Connection::open(&acceptance).expect("sqlite");
    let names: String = connection
        .query_row("SELECT group_concat(user_name) FROM accounts", [], |row| {
            row.get(0)
        })
        .expect("accounts");
    assert_eq!(names, "tester");
    drop(connection);

    // A column the policy does not know: refused, and the target is left as it was.
    rusqlite::Connection::open(&production)
        .expect("sqlite")
        .execute_batch("ALTER TABLE patients ADD COLUMN emergency_contact TEXT")
        .expect("new column");
    let before = std::fs::read(&acceptance).expect("target");
    let run = refresh();
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("nothing was copied (1 problem)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("column emergency_contact has no rule"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&acceptance).expect("target"), before);
}

/// Kills `cutover refresh` with SIGKILL at ten points of its run: the target is
/// always the old acceptance database or the complete new one, its preserved
/// rows are never lost, and a rerun completes.
#[test]
fn a_refresh_killed_at_any_point_leaves_the_old_or_the_new_target() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let schema = scenario_d_schema();
    let production = directory.path().join("production.db");
    let acceptance = directory.path().join("acceptance.db");
    let patients = 100_000i64;
    {
        let connection = rusqlite::Connection::open(&production).expect("sqlite");
        connection.execute_batch(&schema).expect("schema");
        connection
            .execute_batch(&format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {patients}) \
                 INSERT INTO patients SELECT i, 'HC-' || i, 'Given' || i, 'Family' || i, '1970-01-01', 'p' || i || '@mail.test', \
                 NULL, NULL, NULL, NULL, '2024-01-01 00:00:00' FROM n;"
            ))
            .expect("rows");
        let connection = rusqlite::Connection::open(&acceptance).expect("sqlite");
        connection.execute_batch(&schema).expect("schema");
        connection
            .execute_batch(
                "INSERT INTO patients VALUES (99, 'HC-OLD', 'Old', 'Data', NULL, NULL, NULL, NULL, NULL, NULL, '2020-01-01 00:00:00'); \
                 INSERT INTO accounts VALUES (7, 'tester', 'Tester', 'acc-hash');",
            )
            .expect("rows");
    }
    let policy = crate::workspace_root().join("examples/scenario-d-policy.toml");
    let (from, to) = (
        format!("sqlite:{}", production.display()),
        format!("sqlite:{}", acceptance.display()),
    );
    let spawn = || spawn_refresh(&from, &to, &policy);
    let state = || -> (i64, i64, i64) {
        let connection = rusqlite::Connection::open(&acceptance).expect("sqlite");
        let integrity: String = connection
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .expect("integrity");
        assert_eq!(integrity, "ok");
        let count = |sql: &str| {
            connection
                .query_row(sql, [], |row| row.get::<_, i64>(0))
                .expect("count")
        };
        (
            count("SELECT count(*) FROM patients"),
            count("SELECT count(*) FROM patients WHERE health_card_number = 'HC-OLD'"),
            count("SELECT count(*) FROM accounts WHERE user_name = 'tester'"),
        )
    };
    kill_at_points(10, 20, 60, &spawn, &state, patients);
    let status = spawn().wait().expect("a full run");
    assert!(status.success());
    assert_eq!(state(), (patients, 0, 1));
}

/// Starts `cutover refresh` from `from` to `to` with `policy`, output discarded.
fn spawn_refresh(from: &str, to: &str, policy: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["refresh", "--from", from, "--to", to])
        .arg("--policy")
        .arg(policy)
        .env("CUTOVER_MASK_SECRET", "test secret")
        .env("CUTOVER_LOG", "off")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting cutover")
}

/// Kills a refresh with SIGKILL at `points` moments (`first_ms`, then every
/// `step_ms`), each time checking the target through `state` (patients,
/// old-marker rows, preserved accounts): the old target or the complete
/// new one, and the preserved account always there.
fn kill_at_points(
    points: u64,
    first_ms: u64,
    step_ms: u64,
    spawn: &dyn Fn() -> std::process::Child,
    state: &dyn Fn() -> (i64, i64, i64),
    patients: i64,
) {
    for point in 0..points {
        let mut child = spawn();
        std::thread::sleep(std::time::Duration::from_millis(first_ms + point * step_ms));
        let _ = child.kill();
        let _ = child.wait();
        let (rows, old_marker, accounts) = state();
        let old = rows == 1 && old_marker == 1;
        let new = rows == patients && old_marker == 0;
        assert!(
            old || new,
            "kill point {point}: a half-way target ({rows} patients)"
        );
        assert_eq!(
            accounts, 1,
            "kill point {point}: the preserved account was lost"
        );
    }
}

/// Scenario D's schema (SQLite's dialect).
pub(crate) fn scenario_d_schema() -> String {
    std::fs::read_to_string(crate::workspace_root().join("examples/scenario-d-schema.sql"))
        .expect("schema")
}

/// Two new PostgreSQL databases (production and acceptance), or none where
/// the tests have no PostgreSQL.
pub(crate) fn postgres_pair(
    runtime: &tokio::runtime::Runtime,
) -> Option<(cutover_testing::TestPostgres, cutover_testing::TestPostgres)> {
    runtime.block_on(async {
        Some((
            cutover_testing::postgres().await?,
            cutover_testing::postgres().await?,
        ))
    })
}

pub(crate) fn postgres_count(runtime: &tokio::runtime::Runtime, url: &str, sql: &str) -> i64 {
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
            .query_one(sql, &[])
            .await
            .expect("count")
            .get::<_, i64>(0)
    })
}

/// The same with a PostgreSQL source and target: the swap is one transaction,
/// so a kill anywhere leaves the old schema or the new one, never a staging
/// schema in its place, and the next run clears what the killed one staged.
#[test]
fn a_postgres_refresh_killed_at_any_point_leaves_the_old_or_the_new_target() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let Some((production, acceptance)) = postgres_pair(&runtime) else {
        return;
    };
    let schema = scenario_d_schema().replace("BLOB", "bytea");
    let patients = 200_000i64;
    runtime.block_on(async {
        cutover_testing::postgres_execute(
            &production.url,
            &format!(
                "{schema} INSERT INTO patients SELECT i, 'HC-' || i, 'Given' || i, 'Family' || i, '1970-01-01', \
                 'p' || i || '@mail.test', NULL, NULL, NULL, NULL, '2024-01-01' FROM generate_series(1, {patients}) i;"
            ),
        )
        .await;
        cutover_testing::postgres_execute(
            &acceptance.url,
            &format!(
                "{schema} INSERT INTO patients VALUES (99, 'HC-OLD', 'Old', 'Data', NULL, NULL, NULL, NULL, NULL, NULL, '2020-01-01'); \
                 INSERT INTO accounts VALUES (7, 'tester', 'Tester', 'acc-hash');"
            ),
        )
        .await;
    });
    let policy = crate::workspace_root().join("examples/scenario-d-policy.toml");
    let spawn = || spawn_refresh(&production.url, &acceptance.url, &policy);
    let state = || {
        let count = |sql: &str| postgres_count(&runtime, &acceptance.url, sql);
        (
            count("SELECT count(*) FROM patients"),
            count("SELECT count(*) FROM patients WHERE health_card_number = 'HC-OLD'"),
            count("SELECT count(*) FROM accounts WHERE user_name = 'tester'"),
        )
    };
    kill_at_points(8, 50, 150, &spawn, &state, patients);
    let run = crate::cutover_with_env(
        &[
            "refresh",
            "--from",
            &production.url,
            "--to",
            &acceptance.url,
            "--policy",
            &policy.display().to_string(),
        ],
        &[("CUTOVER_MASK_SECRET", "test secret")],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(state(), (patients, 0, 1));
    assert_eq!(
        postgres_count(
            &runtime,
            &acceptance.url,
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'cutover\\_%'"
        ),
        0
    );
}

/// `verify-refresh` on its own: a clean target passes with the refresh's
/// report as baseline; a damaged one fails, by check, and the Markdown and
/// JSON reports say so without a row value.
#[test]
fn verify_refresh_passes_a_clean_target_and_names_what_is_wrong_with_a_damaged_one() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let schema = scenario_d_schema();
    let production = directory.path().join("production.db");
    let acceptance = directory.path().join("acceptance.db");
    for (path, rows) in [
        (
            &production,
            "INSERT INTO patients VALUES (1, 'HC-1', 'Anna', 'Smit', '1970-05-01', 'anna@mail.test', NULL, NULL, NULL, NULL, '2024-01-01 00:00:00'); \
             INSERT INTO assessments VALUES (10, 1, '2025-03-01', 'ok', 'private'), (11, 1, '2026-02-01', 'ok', NULL);",
        ),
        (
            &acceptance,
            "INSERT INTO accounts VALUES (7, 'tester', 'Tester', 'acc-hash'); \
             INSERT INTO portal_trial_config VALUES (1, 'https://portal.acc.internal', 1);",
        ),
    ] {
        let connection = rusqlite::Connection::open(path).expect("sqlite");
        connection.execute_batch(&schema).expect("schema");
        connection.execute_batch(rows).expect("rows");
    }
    let policy = crate::workspace_root()
        .join("examples/scenario-d-policy.toml")
        .display()
        .to_string();
    let from = format!("sqlite:{}", production.display());
    let to = format!("sqlite:{}", acceptance.display());
    let baseline = directory.path().join("refresh.json");
    let secret = [("CUTOVER_MASK_SECRET", "test secret")];
    let run = crate::cutover_with_env(
        &[
            "refresh",
            "--from",
            &from,
            "--to",
            &to,
            "--policy",
            &policy,
            "--verify",
            "full",
            "--report",
            &baseline.display().to_string(),
        ],
        &secret,
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "verify-refresh",
            "--from",
            &from,
            "--to",
            &to,
            "--policy",
            &policy,
            "--verify",
            "full",
        ];
        args.extend_from_slice(extra);
        crate::cutover_with_env(&args, &secret)
    };
    let baseline_arg = baseline.display().to_string();
    let run = verify(&["--baseline", &baseline_arg]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("9 passed, 0 failed"), "{}", run.stdout);

    let connection = rusqlite::Connection::open(&acceptance).expect("sqlite");
    connection
        .execute_batch(
            "INSERT INTO assessments VALUES (11, 1, '2026-02-01', 'ok', NULL); \
             UPDATE patients SET email = 'anna@mail.test'; \
             UPDATE accounts SET display_name = 'Someone'; \
             UPDATE portal_trial_config SET endpoint_url = 'https://portal.prod.internal';",
        )
        .expect("damage");
    drop(connection);
    let markdown = directory.path().join("verify.md");
    let json = directory.path().join("verify.json");
    let run = verify(&[
        "--baseline",
        &baseline_arg,
        "--report",
        &markdown.display().to_string(),
        "--report",
        &json.display().to_string(),
    ]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let mut settings = settings();
    settings.add_filter(
        &regex_escape(&directory.path().display().to_string()),
        "[dir]",
    );
    settings.add_filter(r"hash [0-9a-f]{16}", "hash [hash]");
    settings.add_filter(r"with [0-9a-f]{16}", "with [hash]");
    settings.bind(|| insta::assert_snapshot!(run.stdout));
    let markdown = std::fs::read_to_string(&markdown).expect("markdown report");
    let json = std::fs::read_to_string(&json).expect("json report");
    assert!(
        markdown.contains("| removed-rows-absent | FAIL |"),
        "{markdown}"
    );
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(parsed["verification"]["checks"][0]["status"], "fail");
    for value in ["anna@mail.test", "Someone", "portal.prod.internal", "Anna"] {
        assert!(
            !markdown.contains(value) && !json.contains(value) && !run.stdout.contains(value),
            "{value}"
        );
    }

    // Bad input: a baseline that is not a report.
    let run = verify(&["--baseline", &policy]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("not a refresh report"),
        "{}",
        run.stderr
    );
}

#[test]
fn preview_prints_masked_rows_with_their_rules_and_writes_nothing() {
    let (directory, source) = production();
    let connection =
        rusqlite::Connection::open(directory.path().join("production.db")).expect("sqlite");
    connection
        .execute_batch(
            "INSERT INTO patients VALUES (1, 'HC-111', 'Wilhelmina', 'private'), (2, 'HC-222', 'Gerrit', NULL), \
             (3, 'HC-333', 'Bartholomeus', 'x'); INSERT INTO settings VALUES ('environment', 'production');",
        )
        .expect("rows");
    let policy = directory.path().join("policy.toml");
    std::fs::write(
        &policy,
        r#"locale = "en-CA"
[tables.patients]
action = "copy"
where = "id < 3"
[tables.patients.columns]
id = "keep"
health_card_number = "fake:health-card"
first_name = "fake:first-name"
notes = "null"
[tables.settings]
action = "preserve"
"#,
    )
    .expect("policy");
    let policy_arg = policy.display().to_string();
    let preview = |table: &str, json: bool| {
        let mut args = vec![
            "refresh",
            "--from",
            &source,
            "--policy",
            &policy_arg,
            "--preview",
            table,
            "--rows",
            "5",
        ];
        if json {
            args.extend(["--format", "json"]);
        }
        crate::cutover_with_env(&args, &[("CUTOVER_MASK_SECRET", "test secret")])
    };
    let run = preview("patients", false);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("patients: 2 masked rows"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("first_name          fake:first-name"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("notes               null"),
        "{}",
        run.stdout
    );
    for source_value in ["Wilhelmina", "Gerrit", "HC-111", "private"] {
        assert!(!run.stdout.contains(source_value), "{}", run.stdout);
    }
    let run = preview("patients", true);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(json["rows"].as_array().map(Vec::len), Some(2));
    assert_eq!(json["columns"][1]["rule"], "fake:health-card");
    // An Ontario shape, e.g. 1234-567-890-AB.
    let card = json["rows"][0][1].as_str().expect("a card");
    assert_eq!(card.len(), 15, "{card}");

    let run = preview("settings", false);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("table settings is not copied (its action is preserve)"),
        "{}",
        run.stderr
    );
    let run = preview("nope", false);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("table nope is not in the source"),
        "{}",
        run.stderr
    );
}

#[test]
fn check_names_the_targets_own_tables_until_the_policy_decides_them() {
    let (directory, source) = production();
    let target_path = directory.path().join("acceptance.db");
    rusqlite::Connection::open(&target_path)
        .expect("sqlite")
        .execute_batch(
            "CREATE TABLE patients (id INTEGER PRIMARY KEY, health_card_number TEXT NOT NULL, first_name TEXT NOT NULL, notes TEXT, trial_arm TEXT); \
             CREATE TABLE feature_flags (name TEXT PRIMARY KEY);",
        )
        .expect("acceptance");
    let target = format!("sqlite:{}", target_path.display());
    let policy = directory.path().join("policy.toml");
    let base = r#"
[tables.patients]
action = "copy"
[tables.patients.columns]
id = "keep"
health_card_number = "hash"
first_name = "fake:first-name"
notes = "null"
[tables.settings]
action = "preserve"
"#;
    let check = |drift: &str| {
        std::fs::write(&policy, format!("{base}{drift}")).expect("policy");
        let policy_arg = policy.display().to_string();
        crate::cutover_with_env(
            &[
                "refresh",
                "--from",
                &source,
                "--to",
                &target,
                "--policy",
                &policy_arg,
                "--check",
            ],
            &[("CUTOVER_MASK_SECRET", "test secret")],
        )
    };
    let run = check("");
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("table feature_flags exists only in the target")
            && run
                .stdout
                .contains("column patients.trial_arm exists only in the target"),
        "{}",
        run.stdout
    );
    let run = check("[drift]\nfeature_flags = \"preserve\"\n\"patients.trial_arm\" = \"drop\"\n");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}
