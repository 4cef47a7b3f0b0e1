//! `cutover inspect` and `cutover diff` on Apache Spark, against the one
//! local Spark Connect server `scripts/test.sh` starts (PyPI's pyspark).
//! Every trap of Spark's types is diffed on Spark and, with the same data,
//! on SQLite through the local path: the findings must be the same.

use cutover_db::{ConnectOptions, Database};

/// Runs `sql` (statements separated by `;`) on the test Spark server.
async fn spark_sql(url: &str, sql: &str) {
    let database = Database::connect_str(url, &ConnectOptions::default())
        .await
        .expect("the test Spark server");
    database.execute_batch(sql).await.expect("Spark set-up");
}

/// The diff's JSON summary and per-column counts, and its exit code.
fn diff_json(source: &str, target: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["diff", source, target, "--key", "id", "--format", "json"];
    args.extend_from_slice(extra);
    let run = crate::cutover(&args);
    assert!(run.code <= 1, "{source} vs {target}: {}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect(&run.stdout);
    (run.code, report)
}

/// What two diffs must agree on: the counts, per column, and the sample
/// keys (in key order: each strategy finds them in its own bucket order).
fn findings(report: &serde_json::Value) -> serde_json::Value {
    let summary = &report["summary"];
    serde_json::json!({
        "missing": summary["missing"],
        "extra": summary["extra"],
        "changed": summary["changed"],
        "duplicate_keys": summary["duplicate_keys"],
        "null_keys": summary["null_keys"],
        "columns": report["columns"],
        "samples": crate::sorted_samples(report),
    })
}

/// One row per trap, the source and the target differing (or not) as the
/// comment says. Rows are (id, name, amount, at, ratio, note).
const TRAPS: &[(&str, &str)] = &[
    // id 1: NULL is not ''.
    (
        "(1, NULL, 1.50, '2024-01-01 00:00:00', 1.0, 'x')",
        "(1, '', 1.50, '2024-01-01 00:00:00', 1.0, 'x')",
    ),
    // id 2: NULLs in different columns of the same row.
    (
        "(2, 'b', NULL, '2024-01-01 00:00:00', 1.0, 'x')",
        "(2, 'b', 2.00, '2024-01-01 00:00:00', 1.0, NULL)",
    ),
    // id 3: 1.5 = 1.500 across decimal types of different precision and scale.
    (
        "(3, 'c', 1.5, '2024-01-01 00:00:00', 1.0, 'x')",
        "(3, 'c', 1.500, '2024-01-01 00:00:00', 1.0, 'x')",
    ),
    // id 4: one microsecond is a change.
    (
        "(4, 'd', 1.00, '2024-01-01 00:00:00', 1.0, 'x')",
        "(4, 'd', 1.00, '2024-01-01 00:00:00.000001', 1.0, 'x')",
    ),
    // id 5: -0.0 = 0.0.
    (
        "(5, 'e', 1.00, '2024-01-01 00:00:00', -0.0, 'x')",
        "(5, 'e', 1.00, '2024-01-01 00:00:00', 0.0, 'x')",
    ),
    // id 6: NaN = NaN.
    (
        "(6, 'f', 1.00, '2024-01-01 00:00:00', NAN, 'x')",
        "(6, 'f', 1.00, '2024-01-01 00:00:00', NAN, 'x')",
    ),
    // id 7: a trailing space is a change (unless --trim).
    (
        "(7, 'g', 1.00, '2024-01-01 00:00:00', 1.0, 'x')",
        "(7, 'g ', 1.00, '2024-01-01 00:00:00', 1.0, 'x')",
    ),
    // id 8: a timestamp written with another offset is the same instant.
    (
        "(8, 'h', 1.00, '2024-01-01 00:00:00', 1.0, 'x')",
        "(8, 'h', 1.00, '2024-01-01 02:00:00+02:00', 1.0, 'x')",
    ),
];

/// Rows only one side has; duplicate keys (10 in the target only; 12 once
/// in the source and twice in the target; 13 twice on both sides); a NULL key.
const SOURCE_ONLY: &[&str] = &[
    "(9, 'i', 1.00, '2024-01-01 00:00:00', 1.0, 'x')",
    "(12, 'm', 1.00, '2024-01-01 00:00:00', 1.0, 'x')",
    "(13, 'n', 1.00, '2024-01-01 00:00:00', 1.0, 'x')",
    "(13, 'n2', 1.00, '2024-01-01 00:00:00', 1.0, 'x')",
];
const TARGET_ONLY: &[&str] = &[
    "(11, 'l', 1.00, '2024-01-01 00:00:00', 1.0, 'x')",
    "(10, 'j', 1.00, '2024-01-01 00:00:00', 1.0, 'x')",
    "(10, 'j2', 1.00, '2024-01-01 00:00:00', 1.0, 'x')",
    "(NULL, 'k', 1.00, '2024-01-01 00:00:00', 1.0, 'x')",
    "(12, 'm', 1.00, '2024-01-01 00:00:00', 1.0, 'x')",
    "(12, 'm2', 1.00, '2024-01-01 00:00:00', 1.0, 'x')",
    "(13, 'n', 1.00, '2024-01-01 00:00:00', 1.0, 'x')",
    "(13, 'n', 1.00, '2024-01-01 00:00:00', 1.0, 'x')",
];

/// The rows of one side, in SQL for `engine` (`spark` or `sqlite`).
fn rows(source: bool, engine: &str) -> String {
    let mut rows: Vec<&str> = TRAPS
        .iter()
        .map(|(left, right)| if source { *left } else { *right })
        .collect();
    if source {
        rows.extend_from_slice(SOURCE_ONLY);
    } else {
        rows.extend_from_slice(TARGET_ONLY);
    }
    let text = rows.join(", ");
    if engine == "spark" {
        // Spark wants typed literals for timestamps and doubles.
        text.replace("NAN", "double('NaN')")
            .replace(", '2024", ", TIMESTAMP'2024")
    } else {
        text.replace("NAN", "'NaN'")
    }
}

/// The rows of one side with every timestamp written in UTC, for engines
/// whose session time zone is not Spark's (SQLite, PostgreSQL).
fn utc_rows(source: bool) -> String {
    rows(source, "sqlite")
        .replace("2024-01-01 00:00:00'", "2024-01-01 00:00:00+00'")
        .replace(".000001'", ".000001+00'")
}

/// Both sides of the traps in Spark (different integer and decimal types on
/// each side) and in a SQLite file; their URLs.
async fn trap_tables(spark: &str, directory: &std::path::Path) -> [String; 4] {
    let source = cutover_testing::unique_name("traps_source");
    let target = cutover_testing::unique_name("traps_target");
    spark_sql(
        spark,
        &format!(
            "CREATE TABLE {source} (id INT, name STRING, amount DECIMAL(10,2), at TIMESTAMP, ratio DOUBLE, note STRING) USING parquet;
             INSERT INTO {source} VALUES {};
             CREATE TABLE {target} (id BIGINT, name STRING, amount DECIMAL(20,3), at TIMESTAMP, ratio DOUBLE, note STRING) USING parquet;
             INSERT INTO {target} VALUES {}",
            rows(true, "spark"),
            rows(false, "spark")
        ),
    )
    .await;
    let sqlite = directory.join("traps.db");
    let connection = rusqlite::Connection::open(&sqlite).expect("sqlite");
    connection
        .execute_batch(&format!(
            "CREATE TABLE source (id INTEGER, name TEXT, amount DECIMAL TEXT, at TIMESTAMPTZ, ratio REAL, note TEXT);
             INSERT INTO source VALUES {};
             CREATE TABLE target (id BIGINT, name TEXT, amount DECIMAL TEXT, at TIMESTAMPTZ, ratio REAL, note TEXT);
             INSERT INTO target VALUES {};",
            utc_rows(true),
            utc_rows(false)
        ))
        .expect("sqlite set-up");
    let local = sqlite.display();
    [
        format!("{spark}#{source}"),
        format!("{spark}#{target}"),
        format!("sqlite:{local}#source"),
        format!("sqlite:{local}#target"),
    ]
}

/// Every trap diffs the same on Spark, on SQLite, and across the two:
/// NULL ≠ '', NULLs in different columns, 1.5 = 1.500 across decimal
/// types, int = bigint, 1 µs, −0.0 = 0.0, NaN = NaN, a trailing space,
/// time zones, missing and extra rows, a duplicate and a NULL key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_trap_diffs_the_same_on_spark_as_on_sqlite() {
    let Some(spark) = cutover_testing::spark_url() else {
        return;
    };
    let directory = tempfile::tempdir().expect("temporary directory");
    let [spark_source, spark_target, sqlite_source, sqlite_target] =
        trap_tables(&spark, directory.path()).await;
    let (code, local) = diff_json(&sqlite_source, &sqlite_target, &[]);
    assert_eq!(code, 1);
    let expected = findings(&local);
    // The expectations themselves, so that agreeing on a wrong answer fails.
    assert_eq!(expected["missing"], 1, "{local}");
    assert_eq!(expected["extra"], 1, "{local}");
    assert_eq!(expected["changed"], 4, "ids 1, 2, 4 and 7: {local}");
    assert_eq!(
        expected["duplicate_keys"], 4,
        "10, 12 and 13 twice: {local}"
    );
    assert_eq!(expected["null_keys"], 1, "{local}");

    // Inside Spark (both sides in one server: the join runs there) …
    let (code, on_spark) = diff_json(&spark_source, &spark_target, &[]);
    assert_eq!(code, 1);
    assert_eq!(on_spark["strategy"], "pushdown");
    assert_eq!(findings(&on_spark), expected, "Spark: {on_spark}");
    // … and with every row read by cutover, on Spark and across engines.
    let (_, read) = diff_json(&spark_source, &spark_target, &["--strategy", "client"]);
    assert_eq!(read["strategy"], "client");
    assert_eq!(findings(&read), expected, "Spark, client strategy: {read}");
    let (_, across) = diff_json(&spark_source, &sqlite_target, &[]);
    assert_eq!(
        findings(&across),
        expected,
        "Spark against SQLite: {across}"
    );

    // Spark against PostgreSQL (its own types: integer, numeric(12,3), timestamptz, float8).
    if let Some(postgres) = cutover_testing::postgres().await {
        cutover_testing::postgres_execute(
            &postgres.url,
            &format!(
                "CREATE TABLE target (id integer, name text, amount numeric(12,3), at timestamptz, ratio float8, note text);
                 INSERT INTO target VALUES {};",
                utc_rows(false)
            ),
        )
        .await;
        let (_, against) = diff_json(&spark_source, &postgres.table_url("target"), &[]);
        assert_eq!(
            findings(&against),
            expected,
            "Spark against PostgreSQL: {against}"
        );
    }

    // With values kept (--output), every value crosses the wire: the delta
    // is the same as the local one, values included.
    let delta = |source: &str, target: &str, name: &str| {
        let path = directory.path().join(name);
        let output = path.display().to_string();
        let run = crate::cutover(&["diff", source, target, "--key", "id", "--output", &output]);
        assert_eq!(run.code, 1, "{}", run.stderr);
        let mut lines: Vec<String> = std::fs::read_to_string(&path)
            .expect("delta")
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    let local_delta = delta(&sqlite_source, &sqlite_target, "local.jsonl");
    assert!(
        local_delta.iter().any(|line| line.contains("\"g \"")),
        "{local_delta:?}"
    );
    assert_eq!(
        delta(&spark_source, &spark_target, "spark.jsonl"),
        local_delta
    );

    // --into a Spark table holds the same delta as --into a SQLite table.
    let into_spark = cutover_testing::unique_name("traps_delta");
    let into_sqlite = directory.path().join("delta.db");
    let flattened = "kind || '|' || coalesce(side, '') || '|' || key || '|' || coalesce(columns, '') || '|' || coalesce(CAST(count AS STRING), '') || '|' || coalesce(source, '') || '|' || coalesce(target, '')";
    for into in [
        format!("{spark}#{into_spark}"),
        format!("sqlite:{}#delta", into_sqlite.display()),
    ] {
        let run = crate::cutover(&[
            "diff",
            &spark_source,
            &spark_target,
            "--key",
            "id",
            "--into",
            &into,
        ]);
        assert_eq!(run.code, 1, "{}", run.stderr);
    }
    let mut in_sqlite: Vec<String> = {
        let connection = rusqlite::Connection::open(&into_sqlite).expect("delta.db");
        let mut statement = connection
            .prepare(&format!(
                "SELECT {} FROM delta",
                flattened.replace("STRING", "TEXT")
            ))
            .expect("reading delta.db");
        statement
            .query_map([], |row| row.get::<_, String>(0))
            .expect("delta rows")
            .map(|row| row.expect("a delta row"))
            .collect()
    };
    let database = Database::connect_str(&spark, &ConnectOptions::default())
        .await
        .expect("the test Spark server");
    let column = cutover_db::Column {
        name: "row".to_owned(),
        type_name: "string".to_owned(),
        logical_type: Some(cutover_db::LogicalType::Text),
        nullable: true,
        default: None,
    };
    let mut rows = database
        .query(
            &format!("SELECT {flattened} FROM {into_spark}"),
            vec![column],
            "delta",
        )
        .await
        .expect("reading the delta in Spark");
    let mut in_spark = Vec::new();
    while let Some(row) = futures_util::StreamExt::next(&mut rows).await {
        match row.expect("a delta row").pop() {
            Some(cutover_db::Value::Text(text)) => in_spark.push(text),
            other => panic!("{other:?}"),
        }
    }
    in_sqlite.sort();
    in_spark.sort();
    assert_eq!(in_spark.len(), 10, "{in_spark:?}");
    assert_eq!(in_spark, in_sqlite);

    // Split into partitions (int and bigint keys hashed as one type), two joins at a time.
    let (_, split) = diff_json(
        &spark_source,
        &spark_target,
        &["--partitions", "4", "--jobs", "2"],
    );
    assert_eq!(split["partitions"], 4, "{split}");
    assert_eq!(findings(&split), expected, "Spark in partitions: {split}");

    // Spark against a Parquet file of the target's rows (written by Spark, one file).
    let parquet_directory = directory.path().join("target-parquet");
    spark_sql(
        &spark,
        &format!(
            "SET spark.sql.parquet.outputTimestampType=TIMESTAMP_MICROS;
             INSERT OVERWRITE DIRECTORY '{}' USING parquet SELECT /*+ COALESCE(1) */ * FROM {}",
            parquet_directory.display(),
            spark_target.rsplit('#').next().unwrap_or_default()
        ),
    )
    .await;
    let part = std::fs::read_dir(&parquet_directory)
        .expect("Spark's Parquet directory")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| {
            path.extension()
                .is_some_and(|extension| extension == "parquet")
        })
        .expect("a Parquet part file");
    let parquet = directory.path().join("target.parquet");
    std::fs::rename(&part, &parquet).expect("moving the part file");
    let (_, against_parquet) = diff_json(&spark_source, &parquet.display().to_string(), &[]);
    assert_eq!(
        findings(&against_parquet),
        expected,
        "Spark against Parquet: {against_parquet}"
    );

    // --where and --columns mean the same on Spark.
    let narrow = ["--where", "id <= 4", "--columns", "name,amount"];
    let (_, narrowed) = diff_json(&spark_source, &spark_target, &narrow);
    let (_, narrowed_locally) = diff_json(&sqlite_source, &sqlite_target, &narrow);
    assert_eq!(narrowed["summary"]["changed"], 2, "ids 1 and 2: {narrowed}");
    assert_eq!(findings(&narrowed), findings(&narrowed_locally));

    // --trim means the same on Spark: the trailing space is no change.
    let (_, trimmed) = diff_json(&spark_source, &spark_target, &["--trim"]);
    let (_, trimmed_locally) = diff_json(&sqlite_source, &sqlite_target, &["--trim"]);
    assert_eq!(trimmed["summary"]["changed"], 3, "{trimmed}");
    assert_eq!(findings(&trimmed), findings(&trimmed_locally));
}

/// A table diffed against itself and against an empty copy: zero
/// differences, then every row missing; its schema through inspect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_tables_are_inspected_and_diffed_against_themselves_and_empty_ones() {
    let Some(spark) = cutover_testing::spark_url() else {
        return;
    };
    let table = cutover_testing::unique_name("results");
    let empty = cutover_testing::unique_name("results_empty");
    spark_sql(
        &spark,
        &format!(
            "CREATE TABLE {table} (id BIGINT, code CHAR(4), flag BOOLEAN, born DATE, local TIMESTAMP_NTZ, raw BINARY, tags MAP<STRING, STRING>) USING parquet;
             INSERT INTO {table} SELECT id, 'ab', id % 2 = 0, DATE'2020-01-01' + CAST(id AS INT), TIMESTAMP_NTZ'2024-01-01 00:00:00', X'00FF', map('k', 'v') FROM range(1, 501);
             CREATE TABLE {empty} (id BIGINT, code CHAR(4), flag BOOLEAN, born DATE, local TIMESTAMP_NTZ, raw BINARY, tags MAP<STRING, STRING>) USING parquet"
        ),
    )
    .await;
    let run = crate::cutover(&[
        "inspect",
        &format!("{spark}#{table}"),
        "--format",
        "json",
        "--count",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let schema: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(schema["engine"], "spark");
    let columns = &schema["tables"][0]["columns"];
    let types: Vec<(String, serde_json::Value)> = columns
        .as_array()
        .expect("columns")
        .iter()
        .map(|column| {
            (
                column["type_name"].as_str().unwrap_or_default().to_owned(),
                column["logical_type"].clone(),
            )
        })
        .collect();
    let expected: Vec<(String, serde_json::Value)> = [
        ("bigint", "integer"),
        // Spark analyses CHAR(n) columns of a table as strings.
        ("string", "text"),
        ("boolean", "bool"),
        ("date", "date"),
        ("timestamp_ntz", "timestamp"),
        ("binary", "bytes"),
    ]
    .iter()
    .map(|(name, logical)| ((*name).to_owned(), serde_json::json!(logical)))
    .chain([("map".to_owned(), serde_json::Value::Null)])
    .collect();
    assert_eq!(types, expected);
    assert_eq!(schema["tables"][0]["row_count"], 500);

    let (source, target) = (format!("{spark}#{table}"), format!("{spark}#{empty}"));
    // A map cannot be compared: named, with what to do.
    let refused = crate::cutover(&["diff", &source, &source, "--key", "id"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("tags"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--exclude"), "{}", refused.stderr);
    let (code, same) = diff_json(&source, &source, &["--exclude", "tags"]);
    assert_eq!(code, 0, "{same}");
    assert_eq!(same["summary"]["matched"], 500, "{same}");
    let (code, gone) = diff_json(&source, &target, &["--exclude", "tags"]);
    assert_eq!(code, 1);
    assert_eq!(gone["summary"]["missing"], 500, "{gone}");
}

/// Text keys and values under two collations: Spark's case-insensitive
/// `UTF8_LCASE` calls 'a' and 'A' equal, cutover never does. The same rows
/// on both sides in `UTF8_LCASE`, and in `UTF8_LCASE` against the default
/// binary collation (which Spark refuses to join without an explicit
/// collation), diff as SQLite's `NOCASE` tables do through the local path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_keys_under_two_collations_diff_by_their_bytes() {
    let Some(spark) = cutover_testing::spark_url() else {
        return;
    };
    let source_rows = "('a', 'X'), ('B', 'y'), ('\u{e9}', 'z'), ('Z', 'w')";
    let target_rows = "('A', 'x'), ('B', 'Y'), ('\u{e9}', 'z'), ('Z', 'w')";
    let lower = cutover_testing::unique_name("collated_source");
    let upper = cutover_testing::unique_name("collated_target");
    let binary = cutover_testing::unique_name("binary_target");
    spark_sql(
        &spark,
        &format!(
            "CREATE TABLE {lower} (id STRING COLLATE UTF8_LCASE, v STRING COLLATE UTF8_LCASE) USING parquet;
             INSERT INTO {lower} VALUES {source_rows};
             CREATE TABLE {upper} (id STRING COLLATE UTF8_LCASE, v STRING COLLATE UTF8_LCASE) USING parquet;
             INSERT INTO {upper} VALUES {target_rows};
             CREATE TABLE {binary} (id STRING, v STRING) USING parquet;
             INSERT INTO {binary} VALUES {target_rows}"
        ),
    )
    .await;
    let directory = tempfile::tempdir().expect("temporary directory");
    let sqlite = directory.path().join("collated.db");
    rusqlite::Connection::open(&sqlite)
        .expect("sqlite")
        .execute_batch(&format!(
            "CREATE TABLE source (id TEXT COLLATE NOCASE PRIMARY KEY, v TEXT COLLATE NOCASE);
             INSERT INTO source VALUES {source_rows};
             CREATE TABLE target (id TEXT COLLATE NOCASE PRIMARY KEY, v TEXT COLLATE NOCASE);
             INSERT INTO target VALUES {target_rows};"
        ))
        .expect("sqlite set-up");
    let local = sqlite.display();
    let (code, expected) = diff_json(
        &format!("sqlite:{local}#source"),
        &format!("sqlite:{local}#target"),
        &[],
    );
    assert_eq!(code, 1);
    let expected = findings(&expected);
    assert_eq!(
        (
            &expected["missing"],
            &expected["extra"],
            &expected["changed"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(1),
            &serde_json::json!(1)
        ),
        "'a' missing, 'A' extra, 'B' changed: {expected}"
    );
    let run = crate::cutover(&["inspect", &format!("{spark}#{lower}"), "--format", "json"]);
    assert!(
        run.stdout.contains("string collate UTF8_LCASE"),
        "{}",
        run.stdout
    );
    for target in [&upper, &binary] {
        let (code, on_spark) = diff_json(
            &format!("{spark}#{lower}"),
            &format!("{spark}#{target}"),
            &[],
        );
        assert_eq!(code, 1, "{on_spark}");
        assert_eq!(on_spark["strategy"], "pushdown");
        assert_eq!(
            findings(&on_spark),
            expected,
            "against {target}: {on_spark}"
        );
    }
}

/// A diff inside Spark split into partitions, each one join recorded in
/// --state when done: keys of two decimal types meet in the same
/// partition, and a run that stopped before its last partition resumes with
/// that partition alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_spark_diff_resumes_from_its_state_file() {
    let Some(spark) = cutover_testing::spark_url() else {
        return;
    };
    let source = cutover_testing::unique_name("split_source");
    let target = cutover_testing::unique_name("split_target");
    let changed = |every: u32| {
        format!(
            "SELECT CAST(id / 4 AS DECIMAL(20,3)) AS id, CASE WHEN id % {every} = 0 THEN 'b' ELSE 'a' END AS v FROM range(1, 2001)"
        )
    };
    spark_sql(
        &spark,
        &format!(
            "CREATE TABLE {source} USING parquet AS SELECT CAST(id / 4 AS DECIMAL(10,2)) AS id, 'a' AS v FROM range(1, 2001);
             CREATE TABLE {target} USING parquet AS {}",
            changed(100)
        ),
    )
    .await;
    let directory = tempfile::tempdir().expect("temporary directory");
    let state = directory.path().join("diff.state");
    let state_arg = state.display().to_string();
    let (source_url, target_url) = (format!("{spark}#{source}"), format!("{spark}#{target}"));
    let split = ["--partitions", "4", "--jobs", "2", "--state", &state_arg];
    let (code, first) = diff_json(&source_url, &target_url, &split);
    assert_eq!(code, 1);
    assert_eq!(first["partitions"], 4, "{first}");
    assert_eq!(
        (
            &first["summary"]["changed"],
            &first["summary"]["missing"],
            &first["summary"]["matched"]
        ),
        (
            &serde_json::json!(20),
            &serde_json::json!(0),
            &serde_json::json!(1980)
        ),
        "{first}"
    );

    // Stopped before its last partition was recorded; meanwhile the target changed everywhere.
    let connection = rusqlite::Connection::open(&state).expect("state file");
    connection
        .execute("DELETE FROM partition_done WHERE partition = 3", [])
        .expect("forgetting a partition");
    drop(connection);
    spark_sql(
        &spark,
        &format!("INSERT OVERWRITE TABLE {target} {}", changed(50)),
    )
    .await;
    let (_, resumed) = diff_json(&source_url, &target_url, &split);
    let (_, fresh) = diff_json(&source_url, &target_url, &["--partitions", "4"]);
    assert_eq!(fresh["summary"]["changed"], 40, "{fresh}");
    // Only partition 3 saw the new changes: its share of the 40 instead of the 20.
    let resumed_changed = resumed["summary"]["changed"].as_i64().unwrap_or_default();
    assert!(resumed_changed > 20 && resumed_changed < 40, "{resumed}");
    assert_eq!(resumed["summary"]["source_rows"], 2000, "{resumed}");
}

/// Spark's hashes of rows (Spark SQL) and cutover's of the same rows (in
/// Rust, from the values it reads) are the same, for every hash form, with
/// NULLs, −0.0, NaN, decimal scales and time zones: otherwise a Spark side
/// and a side of another engine would never have a matching bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_and_cutover_hash_rows_alike() {
    use cutover_db::spark_hash::{self, HashForm};
    let Some(spark) = cutover_testing::spark_url() else {
        return;
    };
    let table = cutover_testing::unique_name("hashed");
    spark_sql(
        &spark,
        &format!(
            "CREATE TABLE {table} (i INT, l BIGINT, d DECIMAL(10,2), w DECIMAL(38,10), f FLOAT, x DOUBLE, s STRING, c STRING COLLATE UTF8_LCASE, b BINARY, t BOOLEAN, day DATE, at TIMESTAMP, local TIMESTAMP_NTZ) USING parquet;
             INSERT INTO {table} VALUES
               (1, 1, 1.50, 1.5, 1.5, 1.5, 'a', 'A', X'00FF', true, DATE'2024-01-01', TIMESTAMP'2024-01-01 00:00:00.000001', TIMESTAMP_NTZ'2024-01-01 00:00:00'),
               (-7, -9000000000, -0.50, -123456789012.0000000001, -0.0, -0.0, '', '\u{e9}', X'', false, DATE'1969-12-31', TIMESTAMP'1969-12-31 23:59:59', TIMESTAMP_NTZ'1900-01-01 00:00:00'),
               (0, 0, 0.00, 0, 0.0, double('NaN'), 'x y ', 'b', X'01', true, DATE'2000-02-29', TIMESTAMP'2024-06-01 12:00:00', TIMESTAMP_NTZ'2024-06-01 12:00:00'),
               (100, 100, 100.00, 100.0000000000, float('NaN'), 1e300, 'NULL', NULL, NULL, NULL, NULL, NULL, NULL),
               (NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'c', X'02', false, DATE'2024-01-01', TIMESTAMP'2024-01-01 00:00:00', TIMESTAMP_NTZ'2024-01-01 00:00:00')"
        ),
    )
    .await;
    let database = Database::connect_str(&spark, &ConnectOptions::default())
        .await
        .expect("the test Spark server");
    let columns = database
        .table(&cutover_db::TableName::new(table.clone()))
        .await
        .expect("the table")
        .columns;
    let forms: Vec<HashForm> = columns
        .iter()
        .map(|column| {
            let form =
                HashForm::for_pair(column.logical_type, column.logical_type).expect("a hash form");
            // Integers are hashed as decimals against an exact-number column.
            if column.name == "l" {
                HashForm::Decimal
            } else {
                form
            }
        })
        .collect();
    let expressions: Vec<(HashForm, String)> = forms
        .iter()
        .zip(&columns)
        .map(|(form, column)| (*form, cutover_db::Engine::Spark.select_expression(column)))
        .collect();
    let mut wanted = columns.clone();
    wanted.push(cutover_db::Column {
        name: "hash".to_owned(),
        type_name: "bigint".to_owned(),
        logical_type: Some(cutover_db::LogicalType::Integer),
        nullable: false,
        default: None,
    });
    let sql = format!(
        "SELECT *, {} FROM {table}",
        spark_hash::spark_sql(&expressions)
    );
    let mut rows = database
        .query(&sql, wanted, "hashes")
        .await
        .expect("hashes");
    let mut seen = 0;
    while let Some(row) = futures_util::StreamExt::next(&mut rows).await {
        let row = row.expect("a row");
        let Some(cutover_db::Value::Int(in_spark)) = row.last() else {
            panic!("no hash");
        };
        let in_cutover = spark_hash::hash(&forms, &row[..forms.len()]) as i64;
        assert_eq!(in_cutover, *in_spark, "row {seen}: {:?}", &row[..2]);
        seen += 1;
    }
    assert_eq!(seen, 5);
}

/// A Spark table against a PostgreSQL table of other types (bigint against
/// int, DECIMAL(10,2) against numeric(12,3), timestamp against
/// timestamptz): each side hashed where it lives, only the buckets of the
/// changed rows mismatch, and the findings are exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_against_postgres_reads_only_the_buckets_that_differ() {
    let Some(spark) = cutover_testing::spark_url() else {
        return;
    };
    let Some(postgres) = cutover_testing::postgres().await else {
        return;
    };
    let table = cutover_testing::unique_name("hybrid");
    spark_sql(
        &spark,
        &format!(
            "CREATE TABLE {table} USING parquet AS SELECT id, CAST(id / 4 AS DECIMAL(10,2)) AS amount, concat('r', id) AS note, TIMESTAMP'2024-01-01 00:00:00' + make_interval(0, 0, 0, 0, 0, 0, id) AS at FROM range(1, 2001)"
        ),
    )
    .await;
    cutover_testing::postgres_execute(
        &postgres.url,
        "CREATE TABLE hybrid (id int PRIMARY KEY, amount numeric(12,3), note text, at timestamptz);
         INSERT INTO hybrid SELECT i, CASE WHEN i % 250 = 0 THEN 0 ELSE round(i / 4.0, 3) END, 'r' || i, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second' FROM generate_series(1, 2000) i;
         DELETE FROM hybrid WHERE id = 7;
         ANALYZE hybrid",
    )
    .await;
    let source = format!("{spark}#{table}");
    let target = postgres.table_url("hybrid");
    let run = crate::cutover_with_env(
        &[
            "diff",
            &source,
            &target,
            "--key",
            "id",
            "--format",
            "json",
            "--samples",
            "20",
        ],
        &[("CUTOVER_LOG", "cutover_diff=debug")],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(report["strategy"], "hybrid", "{report}");
    assert_eq!(
        (
            &report["summary"]["changed"],
            &report["summary"]["missing"],
            &report["summary"]["matched"]
        ),
        (
            &serde_json::json!(8),
            &serde_json::json!(1),
            &serde_json::json!(1991)
        ),
        "{report}"
    );
    let mismatched: Vec<u64> = run
        .stderr
        .lines()
        .filter(|line| line.contains("bucket digests compared"))
        .filter_map(|line| {
            // The line without its colours, then the number after `mismatched=`.
            let mut plain = String::new();
            let mut escape = false;
            for character in line.chars() {
                match (escape, character) {
                    (false, '\u{1b}') => escape = true,
                    (true, 'm') => escape = false,
                    (false, character) => plain.push(character),
                    (true, _) => {}
                }
            }
            plain
                .split("mismatched=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .collect();
    assert_eq!(mismatched.len(), 1, "{}", run.stderr);
    assert!(mismatched[0] <= 9, "{}", run.stderr);
    // The same with every row read by cutover.
    let (_, read) = diff_json(
        &source,
        &target,
        &["--strategy", "client", "--samples", "20"],
    );
    assert_eq!(findings(&read), findings(&report));
}

/// Spark behind a TLS gateway that wants a bearer token and a cluster
/// header on every call, as a platform's endpoint does: `use_ssl=true`, the
/// token from CUTOVER_SPARK_TOKEN, the header from the connection string's
/// parameters; each missing part is one clear error, and the token is
/// never printed.
#[test]
fn spark_behind_tls_with_a_token_and_a_cluster_header() {
    let (Some(spark), Some(ca)) = (
        cutover_testing::spark_url(),
        cutover_testing::postgres_certificate(),
    ) else {
        return;
    };
    let Some(interop) = crate::interop_with("graphql") else {
        return;
    };
    // The test PostgreSQL's server certificate (localhost, 127.0.0.1) and its CA.
    let directory = ca.parent().expect("the certificates' directory");
    let upstream = spark.trim_start_matches("sc://").to_owned();
    let (mut gateway, port) = crate::spawn_announcing(
        std::process::Command::new("node")
            .arg(interop.join("grpc-gateway.js"))
            .args([
                "--upstream",
                &upstream,
                "--token",
                "tok-s3cret",
                "--header",
                "x-databricks-cluster-id=cluster-7",
            ])
            .arg("--cert")
            .arg(directory.join("server.crt"))
            .arg("--key")
            .arg(directory.join("server.key")),
        1,
    );
    let ca = ca.display().to_string();
    let url = format!("sc://localhost:{port}/;use_ssl=true;x-databricks-cluster-id=cluster-7");
    let inspect = |url: &str, environment: &[(&str, &str)]| {
        crate::cutover_with_env(&["inspect", url, "--format", "json"], environment)
    };
    let good = [
        ("CUTOVER_SPARK_TOKEN", "tok-s3cret"),
        ("SSL_CERT_FILE", ca.as_str()),
    ];
    let run = inspect(&url, &good);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("\"engine\": \"spark\""),
        "{}",
        run.stdout
    );

    let wrong_token = inspect(
        &url,
        &[
            ("CUTOVER_SPARK_TOKEN", "tok-wrong"),
            ("SSL_CERT_FILE", ca.as_str()),
        ],
    );
    assert_eq!(wrong_token.code, 2);
    assert!(
        wrong_token.stderr.contains("refused the token"),
        "{}",
        wrong_token.stderr
    );
    assert!(
        !wrong_token.stderr.contains("tok-wrong"),
        "{}",
        wrong_token.stderr
    );

    let no_header = inspect(&format!("sc://localhost:{port}/;use_ssl=true"), &good);
    assert_eq!(no_header.code, 2);
    assert!(
        no_header.stderr.contains("x-databricks-cluster-id"),
        "{}",
        no_header.stderr
    );

    let untrusted = inspect(&url, &[("CUTOVER_SPARK_TOKEN", "tok-s3cret")]);
    assert_eq!(untrusted.code, 2);
    assert!(
        untrusted.stderr.contains("TLS handshake failed"),
        "{}",
        untrusted.stderr
    );
    assert!(
        !untrusted.stderr.contains("tok-s3cret"),
        "{}",
        untrusted.stderr
    );

    let _ = gateway.kill();
    let _ = gateway.wait();
}

/// Bad input: an unreachable server, a table that does not exist, a token
/// in the URL (refused, never echoed): one clear error each, exit 2.
#[test]
fn bad_spark_input_is_one_clear_error() {
    let unreachable = crate::cutover(&["inspect", "sc://127.0.0.1:9#results"]);
    assert_eq!(unreachable.code, 2);
    assert!(
        unreachable
            .stderr
            .contains("the Spark Connect server does not answer"),
        "{}",
        unreachable.stderr
    );
    let token = crate::cutover(&["inspect", "sc://127.0.0.1:9/;token=s3cret-token#results"]);
    assert_eq!(token.code, 2);
    assert!(
        token.stderr.contains("CUTOVER_SPARK_TOKEN"),
        "{}",
        token.stderr
    );
    assert!(!token.stderr.contains("s3cret-token"), "{}", token.stderr);
    let Some(spark) = cutover_testing::spark_url() else {
        return;
    };
    let missing = crate::cutover(&["inspect", &format!("{spark}#no_such_table_here")]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("no_such_table_here does not exist"),
        "{}",
        missing.stderr
    );
}

/// A runbook whose reconciliation runs inside Spark: the diff step's
/// evidence says pushdown, the checkpoint judges it, and the report shows
/// the diff's charts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runbook_reconciles_inside_spark_and_reports_it() {
    let Some(spark) = cutover_testing::spark_url() else {
        return;
    };
    let old = cutover_testing::unique_name("feed_old");
    let new = cutover_testing::unique_name("feed_new");
    spark_sql(
        &spark,
        &format!(
            "CREATE TABLE {old} USING parquet AS SELECT id AS message_id, concat('P', id % 3) AS program, CAST(id % 7 AS DECIMAL(9,2)) AS result FROM range(1, 1001);
             CREATE TABLE {new} USING parquet AS SELECT id AS message_id, concat('P', id % 3) AS program, CAST(CASE WHEN id % 200 = 0 THEN 99 ELSE id % 7 END AS DECIMAL(9,2)) AS result FROM range(1, 1001)"
        ),
    )
    .await;
    let directory = tempfile::tempdir().expect("temporary directory");
    let runbook = directory.path().join("spark-run.toml");
    std::fs::write(
        &runbook,
        format!(
            r#"name = "spark-parallel-run"
[vars]
old_feed = "{spark}#{old}"
new_feed = "{spark}#{new}"
[[step]]
name = "reconcile"
kind = "diff"
args = ["${{old_feed}}", "${{new_feed}}", "--key", "message_id", "--group-by", "program"]
[[step]]
name = "go-no-go"
kind = "checkpoint"
green = ["reconcile.difference_rate < 0.1%"]
yellow = ["reconcile.difference_rate < 1%"]
"#
        ),
    )
    .expect("runbook");
    let journal = directory.path().join("journal.db");
    let (runbook_arg, journal_arg) = (runbook.display().to_string(), journal.display().to_string());
    let run = crate::cutover_async(&["run", &runbook_arg, "--journal", &journal_arg]).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("checkpoint yellow"), "{}", run.stdout);
    let status = crate::cutover(&["status", "--journal", &journal_arg, "--format", "json"]);
    let runs: serde_json::Value = serde_json::from_str(&status.stdout).expect("status json");
    let directory = runs[0]["dir"].as_str().expect("run directory");
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(std::path::Path::new(directory).join("report.json")).expect("report.json"),
    )
    .expect("report json");
    let evidence = &report["steps"][0]["evidence"];
    assert_eq!(evidence["strategy"], "pushdown", "{evidence}");
    assert_eq!(evidence["summary"]["changed"], 5, "{evidence}");
    let html = std::fs::read_to_string(std::path::Path::new(directory).join("report.html"))
        .expect("report.html");
    assert!(
        html.contains("reconcile: rows by category"),
        "the diff chart"
    );
}

/// Ctrl-C during a diff inside Spark cancels the Spark operations it
/// started (they carry cutover's tag in cutover's session) and says so.
#[test]
fn ctrl_c_cancels_what_the_diff_started_in_spark() {
    let Some(spark) = cutover_testing::spark_url() else {
        return;
    };
    // Three billion rows a side: long enough to be interrupted mid-way.
    let query = "SELECT id, id % 7 AS value FROM range(0, 3000000000)";
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args([
            "diff",
            &spark,
            &spark,
            "--source-query",
            query,
            "--target-query",
            query,
            "--key",
            "id",
        ])
        .env("CUTOVER_LOG", "off")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting cutover");
    // Long enough for the diff to be inside its first query over the rows, even on a busy machine.
    std::thread::sleep(std::time::Duration::from_secs(10));
    let pid = child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let started = std::time::Instant::now();
    let output = child.wait_with_output().expect("cutover");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the diff went on after Ctrl-C"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("it started was cancelled") || stderr.contains("it started were cancelled"),
        "{stderr}"
    );
}
