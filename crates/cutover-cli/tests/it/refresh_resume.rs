//! A killed PostgreSQL refresh resumed from its staging schema.

use crate::refresh::{postgres_count, postgres_pair, scenario_d_schema};

/// A month-partitioned results table (24 partitions and a default) beside
/// scenario D; its dates are shifted, so rows read from one partition land
/// in another.
const RESULTS: &str = "
CREATE TABLE results (id bigint NOT NULL, patient_id bigint NOT NULL, taken_on date NOT NULL,
  value text, PRIMARY KEY (id, taken_on)) PARTITION BY RANGE (taken_on);
DO $$ BEGIN FOR m IN 0..23 LOOP
  EXECUTE format('CREATE TABLE results_%s PARTITION OF results FOR VALUES FROM (%L) TO (%L)',
    to_char(date '2024-01-01' + make_interval(months => m), 'YYYY_MM'),
    date '2024-01-01' + make_interval(months => m),
    date '2024-01-01' + make_interval(months => m + 1));
END LOOP; END $$;
CREATE TABLE results_default PARTITION OF results DEFAULT;
CREATE TABLE observations (id bigint PRIMARY KEY, value text NOT NULL);
";

const RESULTS_POLICY: &str = r#"
[tables.results]
action = "copy"
[tables.results.columns]
id = "keep"
patient_id = "keep"
taken_on = { rule = "shift-date", by = "id" }
value = "hash"

[tables.observations]
action = "copy"
[tables.observations.columns]
id = "keep"
value = "hash"
"#;

const ROWS: i64 = 960_000;

/// Rows of the unpartitioned table read in key ranges of at most 250,000.
const OBSERVATIONS: i64 = 600_000;

/// SIGKILLs a PostgreSQL refresh once some of an unpartitioned table's key
/// ranges are loaded (and perhaps some partitions): the live schema is
/// untouched and the staging schema holds them. `--resume` under another
/// secret starts over and says why; killed again and resumed under the same
/// plan, it keeps every finished piece (the table's finished ranges among
/// them), redoes the rest and swaps the whole result in, which full
/// verification passes (every row masked under the one secret).
#[test]
fn a_killed_postgres_refresh_resumes_from_its_staging_schema() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let Some((production, acceptance)) = postgres_pair(&runtime) else {
        return;
    };
    let schema = scenario_d_schema().replace("BLOB", "bytea");
    runtime.block_on(async {
        cutover_testing::postgres_execute(
            &production.url,
            &format!(
                "{schema} {RESULTS} INSERT INTO patients SELECT i, 'HC-' || i, 'Given' || i, 'Family' || i, \
                 '1970-01-01', 'p' || i || '@mail.test', NULL, NULL, NULL, NULL, '2024-01-01' \
                 FROM generate_series(1, 1000) i; \
                 INSERT INTO results SELECT i, 1 + i % 1000, date '2024-01-01' + (i % 731)::int, 'value ' || i \
                 FROM generate_series(1, {ROWS}) i; \
                 INSERT INTO observations SELECT i, 'observation ' || i FROM generate_series(1, {OBSERVATIONS}) i; \
                 ANALYZE observations;"
            ),
        )
        .await;
        cutover_testing::postgres_execute(
            &acceptance.url,
            &format!(
                "{schema} {RESULTS} INSERT INTO patients VALUES (99, 'HC-OLD', 'Old', 'Data', NULL, NULL, NULL, NULL, NULL, NULL, '2020-01-01'); \
                 INSERT INTO accounts VALUES (7, 'tester', 'Tester', 'acc-hash');"
            ),
        )
        .await;
    });
    let directory = tempfile::tempdir().expect("temporary directory");
    let policy = directory.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "{}{RESULTS_POLICY}",
            std::fs::read_to_string(
                crate::workspace_root().join("examples/scenario-d-policy.toml")
            )
            .expect("policy")
        ),
    )
    .expect("policy file");
    let count = |sql: &str| postgres_count(&runtime, &acceptance.url, sql);
    let loaded = "SELECT count(*) FROM cutover_staging_public.cutover_refresh_journal WHERE relation IS NOT NULL";
    let ranges = "SELECT count(*) FROM cutover_staging_public.cutover_refresh_journal WHERE relation = 'observations'";
    let staged = "SELECT count(*) FROM pg_namespace WHERE nspname = 'cutover_staging_public'";
    let kill_after_some_partitions = |secret: &str, live: (i64, i64)| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args([
                "refresh",
                "--from",
                &production.url,
                "--to",
                &acceptance.url,
            ])
            .arg("--policy")
            .arg(&policy)
            .env("CUTOVER_MASK_SECRET", secret)
            .env("CUTOVER_LOG", "off")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting cutover");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            if count(staged) == 1
                && count(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = 'cutover_staging_public' AND tablename = 'cutover_refresh_journal'",
                ) == 1
                && count(ranges) >= 1
            {
                break;
            }
            assert!(
                child.try_wait().expect("child").is_none(),
                "the refresh ended before it could be killed"
            );
            assert!(std::time::Instant::now() < deadline, "no piece was loaded");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        child.kill().expect("kill");
        child.wait().expect("wait");
        // The live schema is untouched; the staging schema holds what was loaded.
        assert_eq!(
            (
                count("SELECT count(*) FROM public.patients"),
                count("SELECT count(*) FROM public.results")
            ),
            live
        );
        let pieces = count(loaded);
        assert!((1..30).contains(&pieces), "{pieces} pieces loaded");
        let ranges = count(ranges);
        assert!((1..3).contains(&ranges), "{ranges} of 3 key ranges loaded");
        pieces
    };
    let resume = |secret: &str| {
        crate::cutover_with_env(
            &[
                "refresh",
                "--from",
                &production.url,
                "--to",
                &acceptance.url,
                "--policy",
                &policy.display().to_string(),
                "--resume",
                "--verify",
                "full",
            ],
            &[("CUTOVER_MASK_SECRET", secret)],
        )
    };

    kill_after_some_partitions("test secret", (1, 0));
    let run = resume("another secret");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(
            "nothing resumed: the staging schema cutover_staging_public was made under another plan"
        ),
        "{}",
        run.stdout
    );

    let pieces = kill_after_some_partitions("test secret", (1000, ROWS));
    let run = resume("test secret");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let kept: usize = run
        .stdout
        .split_once("resumed the run begun ")
        .and_then(|(_, rest)| rest.split_once(": ")?.1.split_once(' '))
        .and_then(|(kept, _)| kept.parse().ok())
        .unwrap_or_else(|| panic!("no resume line in {}", run.stdout));
    assert_eq!(kept, pieces as usize, "{}", run.stdout);
    assert_eq!(count("SELECT count(*) FROM public.results"), ROWS);
    assert_eq!(count("SELECT count(*) FROM public.patients"), 1000);
    assert_eq!(
        count("SELECT count(*) FROM public.observations"),
        OBSERVATIONS
    );
    assert_eq!(
        count("SELECT count(*) FROM public.accounts WHERE user_name = 'tester'"),
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'cutover\\_%'"),
        0
    );
}
