//! A PostgreSQL refresh of the objects real acceptance databases hold:
//! partitioned tables (range, list and hash; a sub-partitioned partition; default
//! partitions), a table other tables inherit from, a domain with its check and a
//! composite type, built in staging, loaded partition by partition and swapped,
//! twice (the second swap replaces the first one's objects).

use std::sync::Arc;

use cutover_db::ConnectOptions;
use cutover_refresh::{Masker, Policy};

use crate::postgres::{scalar, settings};

const SCHEMA: &str = "
CREATE DOMAIN postal_code_ca AS text CHECK (VALUE ~ '^[A-Z][0-9][A-Z] [0-9][A-Z][0-9]$');
CREATE TYPE dose AS (amount numeric, unit text);
CREATE TABLE patients (id integer PRIMARY KEY, name text NOT NULL, postal postal_code_ca);
CREATE TABLE results (
    id bigint NOT NULL, patient_id integer NOT NULL REFERENCES patients (id), observed_on date NOT NULL,
    jurisdiction text NOT NULL, result_text text, dose dose, PRIMARY KEY (id, observed_on, jurisdiction)
) PARTITION BY RANGE (observed_on);
CREATE TABLE results_2024_01 PARTITION OF results FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE results_2024_02 PARTITION OF results FOR VALUES FROM ('2024-02-01') TO ('2024-03-01')
    PARTITION BY LIST (jurisdiction);
CREATE TABLE results_2024_02_on PARTITION OF results_2024_02 FOR VALUES IN ('ON');
CREATE TABLE results_2024_02_other PARTITION OF results_2024_02 DEFAULT;
CREATE TABLE results_default PARTITION OF results DEFAULT;
CREATE INDEX results_by_patient ON results (patient_id);
CREATE TABLE audit_log (id bigint NOT NULL, at timestamptz, detail text) PARTITION BY HASH (id);
CREATE TABLE audit_log_0 PARTITION OF audit_log FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE audit_log_1 PARTITION OF audit_log FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE notes (id integer PRIMARY KEY, body text);
CREATE TABLE clinical_notes (clinician text) INHERITS (notes);
";

const POLICY: &str = r#"
locale = "en-CA"
[tables."public.patients"]
action = "copy"
[tables."public.patients".columns]
id = "keep"
name = "fake:full-name"
postal = "fake:postal-code"

[tables."public.results"]
action = "copy"
where = "observed_on >= '2024-01-15'"
[tables."public.results".columns]
id = "keep"
patient_id = "keep"
observed_on = "keep"
jurisdiction = "keep"
result_text = "null"
dose = "keep"

[tables."public.audit_log"]
action = "copy"
[tables."public.audit_log".columns]
id = "keep"
at = "keep"
detail = "null"

[tables."public.notes"]
action = "copy"
[tables."public.notes".columns]
id = "keep"
body = "null"

[tables."public.clinical_notes"]
action = "copy"
[tables."public.clinical_notes".columns]
id = "keep"
body = "null"
clinician = "fake:full-name"
"#;

#[tokio::test]
async fn partitioned_inherited_domain_and_composite_objects_are_refreshed_whole() {
    let Some(production) = cutover_testing::postgres().await else {
        return;
    };
    let Some(acceptance) = cutover_testing::postgres().await else {
        return;
    };
    cutover_testing::postgres_execute(
        &production.url,
        &format!(
            "{SCHEMA} \
             INSERT INTO patients SELECT i, 'Patient ' || i, 'K1A 0B' || (i % 10) FROM generate_series(1, 20) i; \
             INSERT INTO results SELECT i, 1 + i % 20, date '2024-01-01' + (i % 90), \
               CASE WHEN i % 2 = 0 THEN 'ON' ELSE 'QC' END, 'positive', ROW(i * 0.5, 'mg')::dose \
               FROM generate_series(1, 300) i; \
             INSERT INTO audit_log SELECT i, now(), 'login by ' || i FROM generate_series(1, 50) i; \
             INSERT INTO notes SELECT i, 'note ' || i FROM generate_series(1, 5) i; \
             INSERT INTO clinical_notes SELECT i, 'clinical ' || i, 'Dr ' || i FROM generate_series(6, 8) i;"
        ),
    )
    .await;
    let settings = settings(&production.url, &acceptance.url, 3);
    let policy = Policy::parse(POLICY).expect("policy");
    let source = cutover_db::Database::connect(&settings.source, &ConnectOptions::default())
        .await
        .expect("source");
    let schema = source
        .introspect(&cutover_db::IntrospectOptions::default())
        .await
        .expect("schema");
    assert_eq!(cutover_refresh::check(&policy, &schema, true), []);
    let kept = scalar(
        &production.url,
        "SELECT count(*)::text FROM results WHERE observed_on >= '2024-01-15'",
    )
    .await;
    let partition_counts = "SELECT string_agg(tableoid::regclass::text || '=' || n, ',' ORDER BY tableoid::regclass::text) \
                            FROM (SELECT tableoid, count(*) n FROM results WHERE observed_on >= '2024-01-15' GROUP BY tableoid) x";
    let expected_partitions = scalar(&production.url, partition_counts).await;
    assert!(
        expected_partitions.contains("results_2024_02_on="),
        "{expected_partitions}"
    );

    for run in 0..2 {
        let outcome = cutover_refresh::refresh_postgres(
            &settings,
            &policy,
            Arc::new(Masker::for_policy(&policy, b"secret")),
            Arc::new(cutover_db::NoProgress),
        )
        .await
        .unwrap_or_else(|error| panic!("refresh {run}: {error}"));
        let rows = |table: &str| {
            outcome
                .tables
                .iter()
                .find(|outcome| outcome.table == table)
                .map(|outcome| outcome.rows)
        };
        assert_eq!(
            rows("public.results").map(|rows| rows.to_string()),
            Some(kept.clone())
        );
        assert_eq!(rows("public.notes"), Some(5), "the parent's own rows, once");
        assert_eq!(rows("public.clinical_notes"), Some(3));
        let url = &acceptance.url;
        for (sql, expected) in [
            (partition_counts, expected_partitions.as_str()),
            ("SELECT count(*)::text FROM results", kept.as_str()),
            (
                "SELECT count(*)::text FROM pg_inherits WHERE inhparent = 'public.results'::regclass",
                "3",
            ),
            (
                "SELECT pg_get_partkeydef('public.results_2024_02'::regclass)",
                "LIST (jurisdiction)",
            ),
            (
                "SELECT count(*)::text FROM audit_log_0",
                &scalar(&production.url, "SELECT count(*)::text FROM audit_log_0").await,
            ),
            (
                "SELECT count(*)::text FROM audit_log WHERE detail IS NULL",
                "50",
            ),
            ("SELECT count(*)::text FROM ONLY notes", "5"),
            ("SELECT count(*)::text FROM notes", "8"),
            (
                "SELECT count(*)::text FROM clinical_notes WHERE clinician NOT LIKE 'Dr %'",
                "3",
            ),
            // The domain, with its check, and masked values that pass it.
            (
                "SELECT count(*)::text FROM pg_constraint WHERE contypid = 'public.postal_code_ca'::regtype",
                "1",
            ),
            (
                "SELECT count(*)::text FROM patients WHERE postal NOT LIKE 'K1A 0B%'",
                "20",
            ),
            // The composite type, its values copied.
            (
                "SELECT (dose).unit || ' ' || count(*) FROM results GROUP BY (dose).unit",
                &format!("mg {kept}"),
            ),
            // The partitioned index, on every partition; the key and the reference.
            (
                "SELECT count(*)::text FROM pg_indexes WHERE indexdef LIKE '%(patient_id)%' AND tablename LIKE 'results%'",
                "6",
            ),
            (
                "SELECT count(*)::text FROM pg_constraint WHERE conrelid = 'public.results'::regclass AND contype IN ('p', 'f')",
                "2",
            ),
            (
                "SELECT count(*)::text FROM pg_namespace WHERE nspname LIKE 'cutover\\_%'",
                "0",
            ),
        ] {
            assert_eq!(scalar(url, sql).await, expected, "run {run}: {sql}");
        }
        // The verification suite passes over the partitioned tables, in full.
        let target = cutover_db::Database::connect(&settings.target, &ConnectOptions::default())
            .await
            .expect("target");
        let options = cutover_refresh::VerifyOptions {
            full: true,
            baseline: Some(outcome.tables.clone()),
            ..cutover_refresh::VerifyOptions::default()
        };
        let masker = Masker::for_policy(&policy, b"secret");
        let verification =
            cutover_refresh::verify(&source, &target, &policy, Some(&masker), &options)
                .await
                .expect("verify");
        let failed: Vec<_> = verification
            .checks
            .iter()
            .filter(|check| check.status == cutover_refresh::Status::Fail)
            .collect();
        assert!(failed.is_empty(), "run {run}: {failed:#?}");
    }
}

/// Hooks on PostgreSQL: SQL before the copy on the live schema, SQL after
/// the load on the staged tables (unqualified names), a `psql` command after
/// the swap (libpq's environment points it at the target); a failing
/// after-load hook leaves the target as it was.
#[tokio::test]
async fn hooks_run_around_a_postgres_refresh() {
    let Some(production) = cutover_testing::postgres().await else {
        return;
    };
    let Some(acceptance) = cutover_testing::postgres().await else {
        return;
    };
    let schema =
        "CREATE TABLE accounts (id integer PRIMARY KEY, user_name text, password_hash text);";
    cutover_testing::postgres_execute(
        &production.url,
        &format!(
            "{schema} INSERT INTO accounts VALUES (1, 'svc-portal', 'prod'), (2, 'ann', 'prod');"
        ),
    )
    .await;
    cutover_testing::postgres_execute(
        &acceptance.url,
        &format!("{schema} CREATE TABLE hook_log (point text); INSERT INTO accounts VALUES (9, 'old', 'old');"),
    )
    .await;
    let policy = |after_load: &str| {
        Policy::parse(&format!(
            r#"
[tables."public.accounts"]
action = "copy"
[tables."public.accounts".columns]
id = "keep"
user_name = "keep"
password_hash = {{ rule = "fixed", value = "disabled" }}
[drift]
"public.hook_log" = "preserve"
[[hooks]]
when = "before-copy"
sql = "INSERT INTO hook_log VALUES ('before-copy')"
[[hooks]]
name = "reset the service account"
when = "after-load"
sql = "{after_load}"
[[hooks]]
when = "after-swap"
command = "psql -q -c \"INSERT INTO hook_log VALUES ('$CUTOVER_HOOK')\""
"#
        ))
        .expect("policy")
    };
    let settings = settings(&production.url, &acceptance.url, 1);
    let refresh = |policy: Policy| {
        let settings = settings.clone();
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
    let error = refresh(policy("UPDATE no_such_table SET x = 1"))
        .await
        .expect_err("a failing after-load hook");
    assert!(
        error.to_string().contains("the target is unchanged"),
        "{error}"
    );
    let url = &acceptance.url;
    assert_eq!(
        scalar(url, "SELECT string_agg(user_name, ',') FROM accounts").await,
        "old"
    );
    let outcome = refresh(policy(
        "UPDATE accounts SET password_hash = 'acceptance' WHERE user_name = 'svc-portal'",
    ))
    .await
    .expect("refresh");
    assert_eq!(outcome.hooks.len(), 3);
    for (sql, expected) in [
        (
            "SELECT string_agg(point, ',' ORDER BY point) FROM hook_log",
            "after-swap,before-copy,before-copy",
        ),
        (
            "SELECT string_agg(user_name || '=' || password_hash, ',' ORDER BY id) FROM accounts",
            "svc-portal=acceptance,ann=disabled",
        ),
        (
            "SELECT count(*)::text FROM pg_namespace WHERE nspname LIKE 'cutover\\_%'",
            "0",
        ),
    ] {
        assert_eq!(scalar(url, sql).await, expected, "{sql}");
    }
}

/// What would reach production from acceptance: the starting policy skips
/// timer tables; verification fails copied timer rows, a subscription to a
/// production host, a pg_cron job (a table of pg_cron's shape) pointing
/// there, and, in full mode, a production URL in an ordinary text column,
/// naming table and column but never the value.
#[tokio::test]
async fn copied_jobs_subscriptions_and_production_urls_fail_verification() {
    let Some(production) = cutover_testing::postgres().await else {
        return;
    };
    let Some(acceptance) = cutover_testing::postgres().await else {
        return;
    };
    let schema = "CREATE TABLE scheduled_tasks (task_name text, task_instance text, execution_time timestamptz NOT NULL, \
                    picked boolean NOT NULL DEFAULT false, PRIMARY KEY (task_name, task_instance)); \
                  CREATE TABLE integrations (id integer PRIMARY KEY, name text, callback text);";
    cutover_testing::postgres_execute(
        &production.url,
        &format!(
            "{schema} INSERT INTO scheduled_tasks VALUES ('send-reminders', 'recurring', now(), false), ('purge', '42', now(), false); \
             INSERT INTO integrations VALUES (1, 'lab feed', 'https://api.prod.internal/lab/callback'), (2, 'portal', 'https://portal.acc.internal');"
        ),
    )
    .await;
    cutover_testing::postgres_execute(&acceptance.url, schema).await;
    let source = cutover_db::Database::connect_str(&production.url, &ConnectOptions::default())
        .await
        .expect("source");
    let source_schema = source
        .introspect(&cutover_db::IntrospectOptions::default())
        .await
        .expect("schema");
    let starting = cutover_refresh::initial_policy(&source_schema, "production", "today");
    assert!(
        starting.contains(
            "[tables.\"public.scheduled_tasks\"]\naction = \"skip\"  # guess: db-scheduler timers"
        ),
        "{starting}"
    );
    // A policy that copies the timers anyway.
    let policy = Policy::parse(
        r#"
forbid_hosts = ["*.prod.internal"]
[tables."public.scheduled_tasks"]
action = "copy"
[tables."public.scheduled_tasks".columns]
task_name = "keep"
task_instance = "keep"
execution_time = "keep"
picked = "keep"
[tables."public.integrations"]
action = "copy"
[tables."public.integrations".columns]
id = "keep"
name = "keep"
callback = "keep"
"#,
    )
    .expect("policy");
    let settings = settings(&production.url, &acceptance.url, 1);
    let outcome = cutover_refresh::refresh_postgres(
        &settings,
        &policy,
        Arc::new(Masker::new(b"secret")),
        Arc::new(cutover_db::NoProgress),
    )
    .await
    .expect("refresh");
    cutover_testing::postgres_execute(
        &acceptance.url,
        "CREATE PUBLICATION everything FOR ALL TABLES; \
         CREATE SUBSCRIPTION from_production CONNECTION 'host=db.prod.internal dbname=app' \
           PUBLICATION everything WITH (connect = false); \
         CREATE SCHEMA cron; CREATE TABLE cron.job (jobid bigint, schedule text, command text, nodename text, \
           nodeport integer, database text, username text, active boolean, jobname text); \
         INSERT INTO cron.job VALUES (1, '* * * * *', 'SELECT 1', 'db.prod.internal', 5432, 'app', 'app', true, 'sync');",
    )
    .await;
    let target = cutover_db::Database::connect_str(&acceptance.url, &ConnectOptions::default())
        .await
        .expect("target");
    let verify = |full: bool| {
        let options = cutover_refresh::VerifyOptions {
            full,
            forbid_hosts: policy.forbid_hosts.clone(),
            baseline: Some(outcome.tables.clone()),
            ..cutover_refresh::VerifyOptions::default()
        };
        let (source, target, policy) = (&source, &target, &policy);
        async move {
            let verification = cutover_refresh::verify(source, target, policy, None, &options)
                .await
                .expect("verify");
            verification
                .checks
                .into_iter()
                .find(|check| check.name == "no-production-references")
                .expect("the check")
        }
    };
    let sample = verify(false).await;
    assert_eq!(sample.status, cutover_refresh::Status::Fail);
    let evidence = sample.evidence.join("\n");
    for expected in [
        "scheduled_tasks: 2 db-scheduler timer rows copied from production would fire in acceptance (set the table's action to skip, or keep_timers = true where production moved)",
        "subscription from_production: names a host matching *.prod.internal",
        "pg_cron job 1: names a host matching *.prod.internal",
    ] {
        assert!(evidence.contains(expected), "{expected}\n{evidence}");
    }
    assert!(!evidence.contains("integrations.callback"), "{evidence}");
    let full = verify(true).await.evidence.join("\n");
    assert!(
        full.contains("integrations.callback: 1 rows name a host matching *.prod.internal"),
        "{full}"
    );
    assert!(
        !full.contains("api.prod.internal") && !full.contains("db.prod.internal"),
        "{full}"
    );
    cutover_testing::postgres_execute(
        &acceptance.url,
        "ALTER SUBSCRIPTION from_production SET (slot_name = NONE); DROP SUBSCRIPTION from_production",
    )
    .await;
}
