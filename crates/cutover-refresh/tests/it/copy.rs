//! Copying tables under a policy, on real SQLite files with scenario D's schema.

use std::sync::Arc;

use cutover_db::{ConnectOptions, Database, IntrospectOptions, TableName};
use cutover_refresh::{Masker, Policy, TableCopy};

const SCENARIO_D: &str = include_str!("../../../../examples/scenario-d-schema.sql");

const POLICY: &str = r#"
[tables.patients]
action = "copy"
[tables.patients.columns]
id = "hash"
health_card_number = "hash"
first_name = "fake:first-name"
last_name = "fake:last-name"
date_of_birth = { rule = "shift-date", max_days = 100 }
email = "fake:email"
phone = "null"
street_address = "null"
city = "keep"
postal_code = { rule = "regex", pattern = "[A-Z]", replacement = "X" }
created_at = "keep"

[tables.assessments]
action = "copy"
where = "assessed_on < '2026-01-01'"
[tables.assessments.columns]
id = "keep"
patient_id = "hash"
assessed_on = { rule = "shift-date", by = "patient_id" }
outcome = "keep"
notes = "null"
"#;

pub(crate) async fn open(path: &std::path::Path, create: bool) -> Database {
    let options = ConnectOptions {
        create_sqlite: create,
        ..ConnectOptions::default()
    };
    Database::connect_str(&format!("sqlite:{}", path.display()), &options)
        .await
        .expect("sqlite")
}

async fn count(database: &Database, sql: &str) -> i64 {
    let column = cutover_db::Column {
        name: "n".into(),
        type_name: "INTEGER".into(),
        logical_type: Some(cutover_db::LogicalType::Integer),
        nullable: true,
        default: None,
    };
    let mut rows = database
        .query(sql, vec![column], "count")
        .await
        .expect("query");
    match rows.next().await.expect("a row").expect("row").first() {
        Some(cutover_db::Value::Int(number)) => *number,
        other => panic!("{other:?}"),
    }
}

/// A whole SQLite refresh of `target` from `production` under `policy`.
pub(crate) async fn refresh_file(
    production: &Database,
    target: &std::path::Path,
    policy: Policy,
) -> cutover_refresh::Result<cutover_refresh::RefreshOutcome> {
    cutover_refresh::refresh_sqlite(
        production,
        target,
        &policy,
        Arc::new(Masker::new(b"secret")),
        Arc::new(cutover_db::NoProgress),
    )
    .await
}

async fn refresh_into(
    production: &Database,
    path: &std::path::Path,
    policy: &Policy,
    masker: &Arc<Masker>,
) -> Database {
    let target = open(path, true).await;
    target
        .execute_batch(SCENARIO_D)
        .await
        .expect("target schema");
    let schema = production
        .introspect(&IntrospectOptions::default())
        .await
        .expect("schema");
    for name in ["patients", "assessments"] {
        let table = schema.table(&TableName::new(name)).expect("table");
        let copy = TableCopy::plan(policy, table).expect("a copied table");
        copy.copy(production, &target, &TableName::new(name), masker.clone())
            .await
            .expect("copy");
    }
    target
}

#[tokio::test]
async fn masked_keys_still_join_deletions_hold_and_masking_is_deterministic() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let production = open(&directory.path().join("production.db"), true).await;
    production.execute_batch(SCENARIO_D).await.expect("schema");
    production
        .execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) \
             INSERT INTO patients SELECT i, 'HC-' || (1000000 + i), 'Given' || i, 'Family' || i, \
               date('1950-01-01', '+' || (i * 37) || ' days'), 'p' || i || '@mail.test', '0612345' || i, \
               'Street ' || i, 'Town', '1234 AB', '2024-01-01 00:00:00' FROM n; \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) \
             INSERT INTO assessments SELECT i, 1 + i % 200, date('2025-06-01', '+' || (i % 400) || ' days'), 'ok', 'private note ' || i FROM n;",
        )
        .await
        .expect("rows");
    let policy = Policy::parse(POLICY).expect("policy");
    let masker = Arc::new(Masker::new(b"acceptance secret"));

    let acceptance = refresh_into(
        &production,
        &directory.path().join("acceptance.db"),
        &policy,
        &masker,
    )
    .await;
    let kept = count(
        &production,
        "SELECT count(*) FROM assessments WHERE assessed_on < '2026-01-01'",
    )
    .await;
    assert!(kept > 0 && kept < 1000);
    assert_eq!(
        count(&acceptance, "SELECT count(*) FROM assessments").await,
        kept
    );
    assert_eq!(
        count(&acceptance, "SELECT count(*) FROM patients").await,
        200
    );
    // Hashed keys still join, one patient per assessment.
    assert_eq!(
        count(
            &acceptance,
            "SELECT count(*) FROM assessments a JOIN patients p ON p.id = a.patient_id"
        )
        .await,
        kept
    );
    assert_eq!(
        count(
            &acceptance,
            "SELECT count(*) FROM patients WHERE id BETWEEN 1 AND 200"
        )
        .await,
        0
    );
    // Nothing protected survives.
    assert_eq!(
        count(&acceptance, "SELECT count(*) FROM patients WHERE health_card_number LIKE 'HC-%' OR first_name LIKE 'Given%' OR email LIKE '%mail.test' OR phone IS NOT NULL").await,
        0
    );
    assert_eq!(
        count(
            &acceptance,
            "SELECT count(*) FROM assessments WHERE notes IS NOT NULL"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &acceptance,
            "SELECT count(*) FROM patients WHERE postal_code <> '1234 XX'"
        )
        .await,
        0
    );
    // A patient's assessments all move by the same number of days: the gaps between them are kept.
    let spread = "SELECT CAST(sum(max_day - min_day) AS INTEGER) FROM (SELECT max(julianday(assessed_on)) AS max_day, \
                  min(julianday(assessed_on)) AS min_day FROM assessments WHERE assessed_on IS NOT NULL GROUP BY patient_id)";
    production
        .execute_batch("DELETE FROM assessments WHERE assessed_on >= '2026-01-01'")
        .await
        .expect("removing what the policy removes, for comparison");
    assert_eq!(
        count(&acceptance, spread).await,
        count(&production, spread).await
    );

    // The same secret gives the same acceptance database, row for row.
    let again = refresh_into(
        &open(&directory.path().join("production.db"), false).await,
        &directory.path().join("again.db"),
        &policy,
        &masker,
    )
    .await;
    let fingerprint = "SELECT sum(id % 1000003) FROM patients";
    assert_eq!(
        count(&again, fingerprint).await,
        count(&acceptance, fingerprint).await
    );
}

const SCENARIO_D_POLICY: &str = include_str!("../../../../examples/scenario-d-policy.toml");

#[tokio::test]
async fn a_sqlite_refresh_masks_removes_preserves_and_swaps_whole() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let production_path = directory.path().join("production.db");
    let production = open(&production_path, true).await;
    production.execute_batch(SCENARIO_D).await.expect("schema");
    production
        .execute_batch(
            "INSERT INTO patients VALUES (1, 'HC-1', 'Anna', 'Smit', '1970-05-01', 'a@mail.test', '0611', 'Weg 1', 'Ede', '1234 AB', '2024-01-01 00:00:00'), \
                                         (2, 'HC-2', 'Bart', 'Bos', NULL, NULL, NULL, NULL, NULL, NULL, '2024-01-01 00:00:00'); \
             INSERT INTO assessments VALUES (10, 1, '2025-03-01', 'ok', 'private'), (11, 1, '2026-02-01', 'ok', 'recent'), (12, 2, '2025-04-01', 'ok', NULL); \
             INSERT INTO documents VALUES (100, 1, 'scan.pdf', x'255044462d'); \
             INSERT INTO examination_reports VALUES (1000, 10, 100, 'fit', '2025-03-02'), (1001, 11, 100, 'unfit', '2026-02-02'); \
             INSERT INTO accounts VALUES (1, 'prod.admin', 'Production Admin', 'prod-hash'); \
             INSERT INTO settings VALUES ('environment', 'production'); \
             INSERT INTO portal_trial_config VALUES (1, 'https://portal.prod.internal', 1);",
        )
        .await
        .expect("production rows");
    let target = directory.path().join("acceptance.db");
    let acceptance = open(&target, true).await;
    acceptance.execute_batch(SCENARIO_D).await.expect("schema");
    acceptance
        .execute_batch(
            "INSERT INTO patients VALUES (99, 'HC-OLD', 'Old', 'Data', NULL, NULL, NULL, NULL, NULL, NULL, '2020-01-01 00:00:00'); \
             INSERT INTO accounts VALUES (7, 'tester', 'Acceptance Tester', 'acc-hash'); \
             INSERT INTO second_factor_enrolments VALUES (7, 'totp', 'acc-secret'); \
             INSERT INTO permissions VALUES (7, 'read'); \
             INSERT INTO settings VALUES ('environment', 'acceptance'); \
             INSERT INTO portal_trial_config VALUES (1, 'https://portal.acc.internal', 1);",
        )
        .await
        .expect("acceptance rows");
    drop(acceptance);
    // A staging file left by an interrupted run is replaced, not trusted.
    std::fs::write(cutover_refresh::staging_path(&target), b"half-written").expect("leftover");

    // With the example hooks: they run on the staged data before the swap.
    let policy = Policy::parse(&format!(
        "{SCENARIO_D_POLICY}\n{}",
        include_str!("../../../../examples/refresh-hooks.toml")
    ))
    .expect("example policy with the example hooks");
    let outcome = crate::copy::refresh_file(&production, &target, policy.clone())
        .await
        .expect("refresh");
    assert!(
        outcome.tables.iter().any(|table| table.table == "accounts"
            && table.action == "preserve"
            && table.rows == 1)
    );
    assert!(!cutover_refresh::staging_path(&target).exists());

    let refreshed = open(&target, false).await;
    let checks = [
        ("SELECT count(*) FROM patients", 2),
        ("SELECT count(*) FROM patients WHERE id = 99", 0),
        (
            "SELECT count(*) FROM patients WHERE first_name = 'Anna' OR health_card_number LIKE 'HC-%' OR email LIKE '%mail.test'",
            0,
        ),
        ("SELECT count(*) FROM assessments", 2),
        (
            "SELECT count(*) FROM assessments WHERE notes IS NOT NULL",
            0,
        ),
        ("SELECT count(*) FROM examination_reports", 1),
        (
            "SELECT count(*) FROM examination_reports WHERE conclusion <> 'redacted'",
            0,
        ),
        ("SELECT count(*) FROM documents", 0),
        (
            "SELECT count(*) FROM accounts WHERE user_name = 'tester' AND password_hash = 'acc-hash'",
            1,
        ),
        ("SELECT count(*) FROM accounts", 1),
        ("SELECT count(*) FROM second_factor_enrolments", 1),
        ("SELECT count(*) FROM permissions", 1),
        (
            "SELECT count(*) FROM settings WHERE value = 'acceptance'",
            1,
        ),
        // Re-pointed by the example's after-load hook.
        (
            "SELECT count(*) FROM portal_trial_config WHERE endpoint_url = 'https://portal.acc.internal/api'",
            1,
        ),
        ("SELECT count(*) FROM assessments_per_patient", 2),
        (
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'patients'",
            1,
        ),
    ];
    for (sql, expected) in checks {
        assert_eq!(count(&refreshed, sql).await, expected, "{sql}");
    }
    assert_eq!(outcome.hooks.len(), 4);
    assert!(outcome.hooks.iter().all(|hook| hook.status == "ok"));
    // A preserved table the hooks changed is evidence of it, and verification
    // accepts it as the hooks left it (an untouched one as it was before).
    let changed = |name: &str| {
        outcome
            .tables
            .iter()
            .find(|table| table.table == name)
            .and_then(|table| table.preserved)
            .map(|preserved| preserved.changed_by_hooks)
    };
    assert_eq!(changed("portal_trial_config"), Some(true));
    assert_eq!(changed("permissions"), Some(false));
    let options = cutover_refresh::VerifyOptions {
        baseline: Some(outcome.tables.clone()),
        ..cutover_refresh::VerifyOptions::default()
    };
    let verification = cutover_refresh::verify(
        &production,
        &refreshed,
        &policy,
        Some(&Masker::new(b"secret")),
        &options,
    )
    .await
    .expect("verify");
    let preserved = verification
        .checks
        .iter()
        .find(|check| check.name == "preserved-tables-identical")
        .expect("the check");
    assert_eq!(
        preserved.status,
        cutover_refresh::Status::Pass,
        "{preserved:#?}"
    );
}

#[tokio::test]
async fn a_postgres_source_refreshes_a_sqlite_target() {
    let Some(postgres) = cutover_testing::postgres().await else {
        return;
    };
    cutover_testing::postgres_execute(
        &postgres.url,
        &format!(
            "{} CREATE INDEX patients_by_city ON patients (city); \
             INSERT INTO patients VALUES (1, 'HC-1', 'Anna', 'Smit', '1970-05-01', NULL, NULL, NULL, 'Ede', NULL, '2024-01-01 00:00:00'); \
             INSERT INTO assessments VALUES (10, 1, '2025-03-01', 'ok', 'private'), (11, 1, '2026-02-01', 'ok', NULL); \
             INSERT INTO examination_reports VALUES (1000, 10, NULL, 'fit', '2025-03-02'), (1001, 11, NULL, 'unfit', '2026-02-02');",
            SCENARIO_D.replace("BLOB", "bytea")
        ),
    )
    .await;
    let source = Database::connect_str(
        &postgres.url,
        &ConnectOptions {
            read_only: true,
            ..ConnectOptions::default()
        },
    )
    .await
    .expect("postgres");
    let directory = tempfile::tempdir().expect("temporary directory");
    let target = directory.path().join("acceptance.db");
    let policy = Policy::parse(SCENARIO_D_POLICY).expect("policy");
    crate::copy::refresh_file(&source, &target, policy.clone())
        .await
        .expect("refresh");
    let refreshed = open(&target, false).await;

    assert_eq!(
        count(
            &refreshed,
            "SELECT count(*) FROM patients WHERE first_name <> 'Anna' AND city <> 'Ede' AND id = 1"
        )
        .await,
        1
    );
    assert_eq!(
        count(&refreshed, "SELECT count(*) FROM assessments").await,
        1
    );
    assert_eq!(
        count(&refreshed, "SELECT count(*) FROM examination_reports").await,
        1
    );
    assert_eq!(
        count(
            &refreshed,
            "SELECT count(*) FROM sqlite_master WHERE name = 'patients_by_city'"
        )
        .await,
        1
    );
    let schema = refreshed
        .introspect(&IntrospectOptions::default())
        .await
        .expect("schema");
    let patients = schema.table(&TableName::new("patients")).expect("patients");
    assert_eq!(
        patients.primary_key.as_ref().map(|key| key.columns.clone()),
        Some(vec!["id".to_owned()])
    );
    let types: Vec<Option<cutover_db::LogicalType>> = patients
        .columns
        .iter()
        .map(|column| column.logical_type)
        .collect();
    let source_schema = source
        .introspect(&IntrospectOptions::default())
        .await
        .expect("schema");
    let source_types: Vec<Option<cutover_db::LogicalType>> = source_schema
        .table(&TableName::qualified("public", "patients"))
        .expect("patients")
        .columns
        .iter()
        .map(|column| column.logical_type)
        .collect();
    assert_eq!(types, source_types);
}

/// Fakes on unique columns keep them unique, in the policy's locale: 300
/// clinics whose cities, names and e-mail addresses are each unique would
/// collide at once in the 14 cities of en-CA without the unique form.
#[tokio::test]
async fn fakes_on_unique_columns_stay_unique_in_the_policy_locale() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let schema_sql = "CREATE TABLE clinics (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, \
                      city TEXT NOT NULL, email TEXT, phone TEXT, postal_code TEXT, region TEXT, \
                      UNIQUE (city, email)); \
                      CREATE UNIQUE INDEX clinics_phone ON clinics (phone);";
    let production = open(&directory.path().join("production.db"), true).await;
    production.execute_batch(schema_sql).await.expect("schema");
    production
        .execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) \
             INSERT INTO clinics SELECT i, 'Clinic ' || i, 'Town ' || i, 'c' || i || '@mail.test', \
               '555' || i, 'K1A ' || i, 'R' || i FROM n;",
        )
        .await
        .expect("rows");
    let policy = Policy::parse(
        r#"
locale = "en-CA"
[tables.clinics]
action = "copy"
[tables.clinics.columns]
id = "keep"
name = "fake:full-name"
city = "fake:city"
email = "fake:email"
phone = "fake:phone"
postal_code = "fake:postal-code"
region = "fake:province"
"#,
    )
    .expect("policy");
    let schema = production
        .introspect(&IntrospectOptions::default())
        .await
        .expect("schema");
    assert_eq!(cutover_refresh::check(&policy, &schema, true), []);
    let target = open(&directory.path().join("acceptance.db"), true).await;
    target
        .execute_batch(schema_sql)
        .await
        .expect("target schema");
    let table = schema.table(&TableName::new("clinics")).expect("table");
    let masker = Arc::new(Masker::for_policy(&policy, b"acceptance secret"));
    TableCopy::plan(&policy, table)
        .expect("copied")
        .copy(&production, &target, &TableName::new("clinics"), masker)
        .await
        .expect("the unique columns stay unique through the load");
    for column in ["name", "city", "email", "phone"] {
        assert_eq!(
            count(
                &target,
                &format!("SELECT count(DISTINCT {column}) FROM clinics")
            )
            .await,
            300,
            "{column}"
        );
    }
    // Not unique: drawn from the locale's values, which repeat; in its shape.
    assert!(count(&target, "SELECT count(DISTINCT region) FROM clinics").await <= 10);
    assert_eq!(
        count(
            &target,
            "SELECT count(*) FROM clinics WHERE postal_code GLOB '[A-Z][0-9][A-Z] [0-9][A-Z][0-9]' \
             AND phone GLOB '[0-9][0-9][0-9]-555-01[0-9][0-9] ext. *' AND email LIKE '%@example.ca' \
             AND region IN ('ON', 'MB', 'SK', 'AB', 'BC', 'NS', 'NB', 'PE', 'NL')"
        )
        .await,
        300
    );
}

/// A table or column only the target has stops the refresh, target
/// unchanged, until `[drift]` decides it; then a preserved table keeps its
/// rows and indexes, a dropped one goes, and the report says which.
#[tokio::test]
async fn drift_in_the_target_is_refused_until_the_policy_decides() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let production = open(&directory.path().join("production.db"), true).await;
    production
        .execute_batch(
            "CREATE TABLE patients (id INTEGER PRIMARY KEY, name TEXT); \
             INSERT INTO patients VALUES (1, 'Ann'), (2, 'Bob');",
        )
        .await
        .expect("production");
    let target = directory.path().join("acceptance.db");
    let acceptance = open(&target, true).await;
    acceptance
        .execute_batch(
            "CREATE TABLE patients (id INTEGER PRIMARY KEY, name TEXT, trial_arm TEXT); \
             CREATE TABLE feature_flags (name TEXT PRIMARY KEY, enabled INTEGER); \
             CREATE INDEX feature_flags_enabled ON feature_flags (enabled); \
             CREATE TABLE old_import (id INTEGER); \
             INSERT INTO feature_flags VALUES ('new-portal', 1), ('beta', 0); \
             INSERT INTO old_import VALUES (7);",
        )
        .await
        .expect("acceptance");
    drop(acceptance);
    let before = std::fs::read(&target).expect("target");
    let policy = |drift: &str| {
        Policy::parse(&format!(
            "[tables.patients]\naction = \"copy\"\n[tables.patients.columns]\nid = \"keep\"\nname = \"fake:first-name\"\n{drift}"
        ))
        .expect("policy")
    };
    let refresh = |policy: Policy| refresh_file(&production, &target, policy);
    let error = refresh(policy("")).await.expect_err("undecided drift");
    assert_eq!(
        error.to_string(),
        "table feature_flags exists only in the target (a migration applied there first?): decide under [drift]: \"feature_flags\" = \"preserve\" or \"drop\"; nothing was changed"
    );
    let error = refresh(policy(
        "[drift]\nfeature_flags = \"preserve\"\nold_import = \"drop\"\n\"patients.trial_arm\" = \"preserve\"",
    ))
    .await
    .expect_err("a column cannot be preserved");
    assert!(
        error.to_string().starts_with(
            "column patients.trial_arm exists only in the target and cannot be preserved"
        ),
        "{error}"
    );
    assert_eq!(
        std::fs::read(&target).expect("target"),
        before,
        "the target is unchanged"
    );

    let decided = policy(
        "[drift]\nfeature_flags = \"preserve\"\nold_import = \"drop\"\n\"patients.trial_arm\" = \"drop\"",
    );
    let outcome = refresh(decided.clone())
        .await
        .expect("refresh with every drift decided");
    let acceptance = open(&target, false).await;
    // The preserved target-only table is classified by [drift].
    let verification = cutover_refresh::verify(
        &production,
        &acceptance,
        &decided,
        Some(&Masker::new(b"secret")),
        &cutover_refresh::VerifyOptions::default(),
    )
    .await
    .expect("verify");
    let classified = verification
        .checks
        .iter()
        .find(|check| check.name == "every-column-classified")
        .expect("the check");
    assert_eq!(
        classified.status,
        cutover_refresh::Status::Pass,
        "{classified:#?}"
    );
    assert_eq!(
        count(
            &acceptance,
            "SELECT count(*) FROM feature_flags WHERE enabled = 1"
        )
        .await,
        1
    );
    assert_eq!(
        count(&acceptance, "SELECT count(*) FROM sqlite_master WHERE name IN ('feature_flags_enabled', 'patients') OR name = 'old_import'").await,
        2
    );
    assert_eq!(
        count(
            &acceptance,
            "SELECT count(*) FROM pragma_table_info('patients') WHERE name = 'trial_arm'"
        )
        .await,
        0
    );
    let actions: Vec<(&str, &str)> = outcome
        .tables
        .iter()
        .map(|table| (table.table.as_str(), table.action))
        .collect();
    assert_eq!(
        actions,
        [
            ("patients", "copy"),
            ("feature_flags", "preserve"),
            ("old_import", "drop")
        ]
    );
}

/// Hooks run at their points on SQLite: a command before the copy, SQL on
/// the staging file after the load (its change is in the swapped target), a
/// command after the swap; a failing after-load hook stops before the swap.
#[tokio::test]
async fn hooks_run_around_a_sqlite_refresh_and_a_failing_one_stops_it() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let production = open(&directory.path().join("production.db"), true).await;
    production
        .execute_batch(
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, user_name TEXT, password_hash TEXT); \
             INSERT INTO accounts VALUES (1, 'svc-portal', 'prod-hash'), (2, 'ann', 'ann-hash');",
        )
        .await
        .expect("production");
    let target = directory.path().join("acceptance.db");
    open(&target, true)
        .await
        .execute_batch(
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, user_name TEXT, password_hash TEXT)",
        )
        .await
        .expect("acceptance");
    let marks = directory.path().join("marks.txt");
    let policy = |after_load: &str| {
        Policy::parse(&format!(
            r#"
[tables.accounts]
action = "copy"
[tables.accounts.columns]
id = "keep"
user_name = "keep"
password_hash = {{ rule = "fixed", value = "disabled" }}

[[hooks]]
name = "note the start"
when = "before-copy"
command = "echo $CUTOVER_HOOK >> '{marks}'"

[[hooks]]
name = "reset the service account"
when = "after-load"
sql = "{after_load}"

[[hooks]]
when = "after-swap"
command = "echo $CUTOVER_HOOK $(basename $CUTOVER_TARGET) >> '{marks}'"
"#,
            marks = marks.display()
        ))
        .expect("policy")
    };
    let refresh = |policy: Policy| refresh_file(&production, &target, policy);
    let outcome = refresh(policy(
        "UPDATE accounts SET password_hash = 'acceptance-hash' WHERE user_name = 'svc-portal'",
    ))
    .await
    .expect("refresh");
    assert_eq!(
        std::fs::read_to_string(&marks).expect("marks"),
        "before-copy\nafter-swap acceptance.db\n"
    );
    let hooks: Vec<(&str, &str, &str)> = outcome
        .hooks
        .iter()
        .map(|hook| (hook.name.as_str(), hook.when, hook.status))
        .collect();
    assert_eq!(
        hooks,
        [
            ("note the start", "before-copy", "ok"),
            ("reset the service account", "after-load", "ok"),
            ("after-swap #3", "after-swap", "ok"),
        ]
    );
    let acceptance = open(&target, false).await;
    assert_eq!(
        count(
            &acceptance,
            "SELECT count(*) FROM accounts WHERE password_hash = 'acceptance-hash'"
        )
        .await,
        1
    );
    drop(acceptance);

    let before = std::fs::read(&target).expect("target");
    let error = refresh(policy("UPDATE no_such_table SET x = 1"))
        .await
        .expect_err("a failing after-load hook");
    assert!(
        error
            .to_string()
            .starts_with("hook reset the service account (after-load) failed: ")
            && error
                .to_string()
                .ends_with("the refresh stopped before the swap; the target is unchanged"),
        "{error}"
    );
    assert_eq!(std::fs::read(&target).expect("target"), before);
    assert_eq!(
        std::fs::read_to_string(&marks).expect("marks"),
        "before-copy\nafter-swap acceptance.db\nbefore-copy\n",
        "no after-swap hook after a failed load"
    );

    // A hook with both sql and command is refused by the check.
    let mut both = policy("SELECT 1");
    both.hooks[0].sql = Some("SELECT 1".into());
    let schema = production
        .introspect(&IntrospectOptions::default())
        .await
        .expect("schema");
    assert_eq!(
        cutover_refresh::check(&both, &schema, true)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["hook note the start: give it either sql or command, not both"]
    );
}
