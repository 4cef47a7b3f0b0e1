//! Refreshing a PostgreSQL target from PostgreSQL: staging schema, atomic
//! swap, the target's grants kept, and a failed swap leaving the target as it was.

use std::sync::Arc;

use cutover_db::{ConnectOptions, Database, DatabaseUrl};
use cutover_refresh::{Check, Masker, Policy, PostgresRefresh, Status, VerifyOptions};

const SCENARIO_D: &str = include_str!("../../../../examples/scenario-d-schema.sql");
const SCENARIO_D_POLICY: &str = include_str!("../../../../examples/scenario-d-policy.toml");

/// Objects beyond scenario D's tables: a serial key, a generated column, an
/// enum, a function with its trigger, and an expression index.
const EXTRAS: &str = "
CREATE TYPE event_kind AS ENUM ('created', 'changed');
CREATE TABLE events (
    id bigserial PRIMARY KEY,
    patient_id integer REFERENCES patients (id),
    kind event_kind NOT NULL,
    label text,
    label_upper text GENERATED ALWAYS AS (upper(label)) STORED
);
CREATE FUNCTION stamp_label() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.label := coalesce(NEW.label, 'stamped'); RETURN NEW; END $$;
CREATE TRIGGER events_stamp BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION stamp_label();
CREATE INDEX events_by_label ON events (lower(label)) WHERE label IS NOT NULL;
CREATE TABLE letters (id integer PRIMARY KEY, patient_id integer REFERENCES patients (id), body oid, scan oid);
";

const EVENTS_POLICY: &str = r#"
[tables.events]
action = "copy"
[tables.events.columns]
id = "keep"
patient_id = "keep"
kind = "keep"
label = "null"
label_upper = "keep"

[tables.letters]
action = "copy"
[tables.letters.columns]
id = "keep"
patient_id = "keep"
body = "keep"
scan = "redact-blob"
"#;

fn schema_sql() -> String {
    format!("{}{EXTRAS}", SCENARIO_D.replace("BLOB", "bytea"))
}

pub(crate) async fn scalar(url: &str, sql: &str) -> String {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let row = client.query_one(sql, &[]).await.expect(sql);
    row.get::<_, Option<String>>(0).unwrap_or_default()
}

async fn production_and_acceptance()
-> Option<(cutover_testing::TestPostgres, cutover_testing::TestPostgres)> {
    let production = cutover_testing::postgres().await?;
    let acceptance = cutover_testing::postgres().await?;
    cutover_testing::postgres_execute(
        &production.url,
        &format!(
            "{} \
             INSERT INTO patients VALUES (1, 'HC-1', 'Anna', 'Smit', '1970-05-01', 'a@mail.test', '0611', 'Weg 1', 'Ede', '1234 AB', '2024-01-01'), \
                                         (2, 'HC-2', 'Bart', 'Bos', NULL, NULL, NULL, NULL, NULL, NULL, '2024-01-01'); \
             INSERT INTO assessments VALUES (10, 1, '2025-03-01', 'ok', 'private'), (11, 1, '2026-02-01', 'ok', 'recent'), (12, 2, '2025-04-01', 'ok', NULL); \
             INSERT INTO documents VALUES (100, 1, 'scan.pdf', '\\x255044462d'); \
             INSERT INTO examination_reports VALUES (1000, 10, 100, 'fit', '2025-03-02'), (1001, 11, 100, 'unfit', '2026-02-02'); \
             INSERT INTO accounts VALUES (1, 'prod.admin', 'Production Admin', 'prod-hash'); \
             INSERT INTO settings VALUES ('environment', 'production'); \
             INSERT INTO events (patient_id, kind, label) SELECT 1, 'created', 'e' || n FROM generate_series(1, 500) n; \
             INSERT INTO letters VALUES (1, 1, lo_from_bytea(0, 'dear anna'), lo_from_bytea(0, 'scan of anna')), \
                                        (2, 2, lo_from_bytea(0, 'dear bart'), lo_from_bytea(0, 'scan of bart')), (3, 2, NULL, 999999);",
            schema_sql()
        ),
    )
    .await;
    cutover_testing::postgres_execute(
        &acceptance.url,
        &format!(
            "{} \
             INSERT INTO patients VALUES (99, 'HC-OLD', 'Old', 'Data', NULL, NULL, NULL, NULL, NULL, NULL, '2020-01-01'); \
             INSERT INTO accounts VALUES (7, 'tester', 'Acceptance Tester', 'acc-hash'); \
             INSERT INTO second_factor_enrolments VALUES (7, 'totp', 'acc-secret'); \
             INSERT INTO permissions VALUES (7, 'read'); \
             INSERT INTO settings VALUES ('environment', 'acceptance'); \
             INSERT INTO portal_trial_config VALUES (1, 'https://portal.acc.internal', true); \
             DO $$ BEGIN CREATE ROLE cutover_acceptance_reader; \
               EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$; \
             GRANT SELECT ON patients, accounts TO cutover_acceptance_reader; \
             INSERT INTO letters VALUES (9, 99, lo_from_bytea(0, 'old letter'), NULL);",
            schema_sql()
        ),
    )
    .await;
    Some((production, acceptance))
}

pub(crate) fn settings(production: &str, acceptance: &str, jobs: usize) -> PostgresRefresh {
    PostgresRefresh {
        source: DatabaseUrl::parse(production).expect("url"),
        target: DatabaseUrl::parse(acceptance).expect("url"),
        connect: ConnectOptions::default(),
        jobs,
        target_schema: None,
        resume: false,
    }
}

fn policy() -> Policy {
    Policy::parse(&format!("{SCENARIO_D_POLICY}{EVENTS_POLICY}")).expect("policy")
}

#[tokio::test]
async fn a_postgres_target_is_built_in_staging_and_swapped_whole() {
    let Some((production, acceptance)) = production_and_acceptance().await else {
        return;
    };
    let outcome = cutover_refresh::refresh_postgres(
        &settings(&production.url, &acceptance.url, 3),
        &policy(),
        Arc::new(Masker::new(b"secret")),
        Arc::new(cutover_db::NoProgress),
    )
    .await
    .expect("refresh");
    let rows = |table: &str| {
        outcome
            .tables
            .iter()
            .find(|outcome| outcome.table.ends_with(table))
            .map(|outcome| outcome.rows)
    };
    assert_eq!(rows("patients"), Some(2));
    assert_eq!(rows("assessments"), Some(2));
    assert_eq!(rows("examination_reports"), Some(1));
    assert_eq!(rows("documents"), Some(0));
    assert_eq!(rows("events"), Some(500));
    let accounts = outcome
        .tables
        .iter()
        .find(|outcome| outcome.table.ends_with("accounts"))
        .and_then(|outcome| outcome.preserved)
        .expect("a preserved fingerprint");
    assert_eq!(accounts.before, accounts.after);
    assert_eq!(accounts.before.rows, 1);

    let url = &acceptance.url;
    let checks = [
        // Production's patients, masked; acceptance's old patient gone.
        (
            "SELECT count(*)::text FROM patients WHERE id IN (1, 2) AND first_name NOT IN ('Anna', 'Bart')",
            "2",
        ),
        ("SELECT count(*)::text FROM patients WHERE id = 99", "0"),
        (
            "SELECT count(*)::text FROM assessments WHERE notes IS NOT NULL",
            "0",
        ),
        (
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM examination_reports",
            "1000",
        ),
        // Acceptance's own rows.
        ("SELECT string_agg(user_name, ',') FROM accounts", "tester"),
        (
            "SELECT value FROM settings WHERE name = 'environment'",
            "acceptance",
        ),
        (
            "SELECT totp_secret FROM second_factor_enrolments",
            "acc-secret",
        ),
        // The target's grants, kept.
        (
            "SELECT has_table_privilege('cutover_acceptance_reader', 'public.patients', 'SELECT')::text",
            "true",
        ),
        (
            "SELECT has_table_privilege('cutover_acceptance_reader', 'public.accounts', 'SELECT')::text",
            "true",
        ),
        // Structure: keys, the view, the generated column, the trigger, the index, the sequence.
        (
            "SELECT count(*)::text FROM pg_constraint WHERE conrelid = 'public.examination_reports'::regclass AND contype = 'f'",
            "1",
        ),
        (
            "SELECT assessments::text FROM assessments_per_patient WHERE patient_id = 2",
            "1",
        ),
        (
            "SELECT count(*)::text FROM events WHERE label IS NULL AND label_upper IS NULL",
            "500",
        ),
        (
            "SELECT count(*)::text FROM pg_indexes WHERE indexname = 'events_by_label' AND schemaname = 'public'",
            "1",
        ),
        (
            "WITH e AS (INSERT INTO events (patient_id, kind) VALUES (1, 'changed') RETURNING id, label_upper) \
          SELECT id::text || ' ' || label_upper FROM e",
            "501 STAMPED",
        ),
        // Large objects: content copied into new ones, a blob rule applied, a dangling
        // reference read as NULL, and the replaced table's own unlinked.
        (
            "SELECT string_agg(convert_from(lo_get(body), 'UTF8'), ',' ORDER BY id) FROM letters WHERE body IS NOT NULL",
            "dear anna,dear bart",
        ),
        (
            "SELECT count(*)::text FROM letters WHERE length(lo_get(scan)) = 0",
            "2",
        ),
        (
            "SELECT count(*)::text FROM letters WHERE id = 3 AND body IS NULL AND scan IS NULL",
            "1",
        ),
        ("SELECT count(*)::text FROM pg_largeobject_metadata", "4"),
        // Nothing left behind.
        (
            "SELECT count(*)::text FROM pg_namespace WHERE nspname LIKE 'cutover\\_%'",
            "0",
        ),
    ];
    for (sql, expected) in checks {
        assert_eq!(scalar(url, sql).await, expected, "{sql}");
    }

    // The verification suite passes on the fresh target, in full mode...
    cutover_testing::postgres_execute(url, "DELETE FROM events WHERE id = 501").await;
    let masker = Masker::new(b"secret");
    let source = Database::connect_str(&production.url, &ConnectOptions::default())
        .await
        .expect("source");
    let target = Database::connect_str(url, &ConnectOptions::default())
        .await
        .expect("target");
    let options = VerifyOptions {
        full: true,
        forbid_hosts: vec!["*.prod.internal".into()],
        baseline: Some(outcome.tables.clone()),
        ..VerifyOptions::default()
    };
    let verification =
        cutover_refresh::verify(&source, &target, &policy(), Some(&masker), &options)
            .await
            .expect("verify");
    let failed: Vec<&Check> = verification
        .checks
        .iter()
        .filter(|check| check.status == Status::Fail)
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(verification.checks.len(), 9);

    // ...and each kind of damage fails the check made for it, without showing a value.
    cutover_testing::postgres_execute(
        url,
        "INSERT INTO assessments VALUES (11, 1, '2026-02-01', 'ok', NULL); \
         UPDATE patients SET first_name = 'Anna' WHERE id = 1; \
         UPDATE accounts SET display_name = 'changed'; \
         UPDATE portal_trial_config SET endpoint_url = 'https://portal.prod.internal/api'; \
         ALTER TABLE events ADD COLUMN note text; \
         SELECT setval('events_id_seq', 3); \
         CREATE FUNCTION reports_from_production() RETURNS text LANGUAGE sql \
           AS $$ SELECT 'host=db.prod.internal dbname=app' $$;",
    )
    .await;
    let verification =
        cutover_refresh::verify(&source, &target, &policy(), Some(&masker), &options)
            .await
            .expect("verify");
    let status = |name: &str| {
        verification
            .checks
            .iter()
            .find(|check| check.name == name)
            .map(|check| check.status)
    };
    for name in [
        "removed-rows-absent",
        "masked-values-differ",
        "every-column-classified",
        "preserved-tables-identical",
        "row-counts",
        "no-invalid-objects",
        "no-production-references",
    ] {
        assert_eq!(
            status(name),
            Some(Status::Fail),
            "{name}: {verification:#?}"
        );
    }
    let references = verification
        .checks
        .iter()
        .find(|check| check.name == "no-production-references")
        .map(|check| check.evidence.join("\n"))
        .unwrap_or_default();
    assert!(
        references.contains("function reports_from_production()")
            && references.contains("portal_trial_config.endpoint_url"),
        "{references}"
    );
    let evidence = format!("{verification:?}");
    for value in [
        "Anna",
        "changed",
        "portal.prod.internal",
        "db.prod.internal",
    ] {
        assert!(!evidence.contains(value), "{value} in {evidence}");
    }
}

#[tokio::test]
async fn a_swap_that_cannot_complete_leaves_the_target_as_it_was() {
    let Some((production, acceptance)) = production_and_acceptance().await else {
        return;
    };
    // The target's own view depends on a table the refresh replaces.
    cutover_testing::postgres_execute(
        &acceptance.url,
        "CREATE SCHEMA reporting; CREATE VIEW reporting.patient_cities AS SELECT city FROM public.patients;",
    )
    .await;
    let error = cutover_refresh::refresh_postgres(
        &settings(&production.url, &acceptance.url, 1),
        &policy(),
        Arc::new(Masker::new(b"secret")),
        Arc::new(cutover_db::NoProgress),
    )
    .await
    .expect_err("the swap must refuse to drop the target's view");
    let message = error.to_string();
    assert!(message.contains("rolled back"), "{message}");
    assert!(!message.contains("Anna"), "{message}");
    let url = &acceptance.url;
    assert_eq!(
        scalar(url, "SELECT string_agg(id::text, ',') FROM patients").await,
        "99"
    );
    assert_eq!(
        scalar(url, "SELECT count(*)::text FROM reporting.patient_cities").await,
        "1"
    );
    assert_eq!(
        scalar(
            url,
            "SELECT count(*)::text FROM pg_namespace WHERE nspname LIKE 'cutover\\_%'"
        )
        .await,
        "0"
    );
}

/// A table and a column only the PostgreSQL target has stop the refresh
/// before anything moves; decided in `[drift]`, the table is preserved or
/// dropped in the swap and the column goes with its replaced table.
#[tokio::test]
async fn drift_in_a_postgres_target_is_refused_then_carried_out_as_decided() {
    let Some((production, acceptance)) = production_and_acceptance().await else {
        return;
    };
    let target = Database::connect_str(&acceptance.url, &ConnectOptions::default())
        .await
        .expect("acceptance");
    target
        .execute_batch(
            "CREATE TABLE feature_flags (name text PRIMARY KEY); INSERT INTO feature_flags VALUES ('beta'); \
             CREATE TABLE old_import (id int); ALTER TABLE patients ADD COLUMN trial_arm text;",
        )
        .await
        .expect("drift");
    let refresh = |policy: Policy| {
        let settings = settings(&production.url, &acceptance.url, 2);
        async move {
            cutover_refresh::refresh_postgres(
                &settings,
                &policy,
                Arc::new(Masker::new(b"secret")),
                Arc::new(cutover_db::NoProgress),
            )
            .await
        }
    };
    let error = refresh(policy()).await.expect_err("undecided drift");
    assert!(
        error
            .to_string()
            .starts_with("table public.feature_flags exists only in the target"),
        "{error}"
    );
    let url = &acceptance.url;
    assert_eq!(
        scalar(
            url,
            "SELECT count(*)::text FROM information_schema.columns WHERE column_name = 'trial_arm'"
        )
        .await,
        "1"
    );
    let decided = Policy::parse(&format!(
        "{SCENARIO_D_POLICY}{EVENTS_POLICY}\n[drift]\n\"public.feature_flags\" = \"preserve\"\n\"public.old_import\" = \"drop\"\n\"public.patients.trial_arm\" = \"drop\"\n"
    ))
    .expect("policy");
    let outcome = refresh(decided).await.expect("refresh");
    assert!(
        outcome
            .tables
            .iter()
            .any(|table| table.table == "public.old_import" && table.action == "drop")
    );
    for (sql, expected) in [
        ("SELECT string_agg(name, ',') FROM feature_flags", "beta"),
        (
            "SELECT coalesce(to_regclass('public.old_import')::text, 'gone')",
            "gone",
        ),
        (
            "SELECT count(*)::text FROM information_schema.columns WHERE column_name = 'trial_arm'",
            "0",
        ),
    ] {
        assert_eq!(scalar(url, sql).await, expected, "{sql}");
    }
}
