//! The cases every strategy and engine pair must get exactly right.

use cutover_db::{LogicalType, Numeric, Row, Value};
use cutover_diff::{DiffOptions, GroupBy, Normalise, Source, StrategyChoice, TimestampPrecision};

use crate::support::{Place, diff, diff_error, file_source, findings, write_csv, write_parquet};

const COLUMNS: &[(&str, &str, &str)] = &[
    ("region", "text COLLATE \"C\"", "TEXT"),
    ("id", "integer", "INTEGER"),
    ("note", "text", "TEXT"),
    ("amount", "numeric", "NUMERIC"),
    ("ratio", "double precision", "REAL"),
    ("taken_at", "timestamptz", "TIMESTAMPTZ"),
    ("payload", "bytea", "BLOB"),
];
const NOON: i64 = 1_709_294_400_000_000;

fn row(
    region: &str,
    id: i64,
    note: Option<&str>,
    amount: &str,
    ratio: f64,
    taken_at: i64,
    payload: &[u8],
) -> Row {
    vec![
        Value::Text(region.into()),
        Value::Int(id),
        note.map_or(Value::Null, |note| Value::Text(note.into())),
        Value::Numeric(Numeric::parse(amount).expect("number")),
        Value::Float(ratio),
        Value::TimestampTz(taken_at),
        Value::Bytes(payload.to_vec()),
    ]
}

fn source_rows() -> Vec<Row> {
    vec![
        row("north", 1, Some("same"), "1.0", 0.5, NOON, b"\x00"),
        row("north", 2, None, "2", 0.5, NOON, b"\x00"),
        row("north", 3, Some("x"), "1.0", 0.5, NOON, b"\x00"),
        row("north", 4, Some("x"), "1", 0.5, NOON, b"\x00"),
        row("north", 5, Some("x"), "1", 0.1 + 0.2, NOON, b"\x00"),
        row("north", 6, Some("x"), "1", -0.0, NOON, b"\x00"),
        row("north", 7, Some("x"), "1", 0.5, NOON, b"\x01"),
        row("north", 8, Some("x"), "1", f64::NAN, NOON, b""),
        row("south", 1, Some("gone"), "1", 0.5, NOON, b"\x00"),
        // Keys that sort differently by byte and by language rules.
        row("B", 1, Some("k"), "1", 0.5, NOON, b"\x00"),
        row("a", 1, Some("k"), "1", 0.5, NOON, b"\x00"),
        row("\u{e9}", 1, Some("k"), "1", 0.5, NOON, b"\x00"),
        row("Z", 1, Some("  padded "), "1", 0.5, NOON, b"\x00"),
    ]
}

fn target_rows() -> Vec<Row> {
    vec![
        row("north", 1, Some("same"), "1.00", 0.5, NOON, b"\x00"),
        row("north", 2, Some(""), "2", 0.5, NOON, b"\x00"),
        row("north", 3, Some("x"), "1.01", 0.5, NOON, b"\x00"),
        row("north", 4, Some("x"), "1", 0.5, NOON + 1, b"\x00"),
        row("north", 5, Some("x"), "1", 0.3, NOON, b"\x00"),
        row("north", 6, Some("x"), "1", 0.0, NOON, b"\x00"),
        row("north", 7, Some("x"), "1", 0.5, NOON, b"\x02"),
        row("north", 8, Some("x"), "1", f64::NAN, NOON, b""),
        row("south", 2, Some("new"), "1", 0.5, NOON, b"\x00"),
        row("\u{e9}", 1, Some("K"), "1", 0.5, NOON, b"\x00"),
        row("a", 1, Some("k"), "1", 0.5, NOON, b"\x00"),
        row("B", 1, Some("k"), "1", 0.5, NOON, b"\x00"),
        row("Z", 1, Some("padded"), "1", 0.5, NOON, b"\x00"),
    ]
}

fn expected_by_default() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("changed", r#"{"region":"north","id":2}"#, "note"),
        ("changed", r#"{"region":"north","id":3}"#, "amount"),
        ("changed", r#"{"region":"north","id":4}"#, "taken_at"),
        ("changed", r#"{"region":"north","id":5}"#, "ratio"),
        ("changed", r#"{"region":"north","id":7}"#, "payload"),
        ("changed", r#"{"region":"é","id":1}"#, "note"),
        ("changed", r#"{"region":"Z","id":1}"#, "note"),
        ("missing", r#"{"region":"south","id":1}"#, ""),
        ("extra", r#"{"region":"south","id":2}"#, ""),
    ]
}

async fn fixture(source: &Place, target: &Place) {
    source
        .table("cases", COLUMNS, &["region", "id"], source_rows())
        .await;
    target
        .table("cases", COLUMNS, &["region", "id"], target_rows())
        .await;
}

fn options(strategy: StrategyChoice) -> DiffOptions {
    DiffOptions {
        strategy,
        ..DiffOptions::default()
    }
}

async fn every_case_is_exact(source: Place, target: Place, strategy: StrategyChoice) {
    fixture(&source, &target).await;
    let (report, found) = diff(
        &source.source("cases"),
        &target.source("cases"),
        &options(strategy),
    )
    .await;
    assert_eq!(found, findings(&expected_by_default()));
    assert_eq!(report.summary.source_rows, 13);
    assert_eq!(report.summary.target_rows, 13);
    assert_eq!(report.summary.matched, 5);
    assert_eq!(
        (
            report.summary.missing,
            report.summary.extra,
            report.summary.changed
        ),
        (1, 1, 7)
    );
    assert!(report.has_differences());

    // The same data against itself: nothing.
    let (report, found) = diff(
        &source.source("cases"),
        &source.source("cases"),
        &options(strategy),
    )
    .await;
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(report.summary.matched, 13);
    assert!(!report.has_differences());

    // Normalisation removes exactly what it names.
    let relaxed = DiffOptions {
        normalise: Normalise {
            float_tolerance: Some(1e-9),
            timestamp_precision: Some(TimestampPrecision::Ms),
            trim: true,
            case_insensitive: true,
            null_equals_empty: true,
        },
        ..options(strategy)
    };
    let (_, found) = diff(&source.source("cases"), &target.source("cases"), &relaxed).await;
    assert_eq!(
        found,
        findings(&[
            ("changed", r#"{"region":"north","id":3}"#, "amount"),
            ("changed", r#"{"region":"north","id":7}"#, "payload"),
            ("missing", r#"{"region":"south","id":1}"#, ""),
            ("extra", r#"{"region":"south","id":2}"#, ""),
        ])
    );
}

#[tokio::test]
async fn postgres_server_strategy_is_exact() {
    let (Some(source), Some(target)) = (Place::postgres().await, Place::postgres().await) else {
        return;
    };
    every_case_is_exact(source, target, StrategyChoice::Server).await;
}

#[tokio::test]
async fn postgres_server_strategy_grouping_on_the_servers_is_exact() {
    let (Some(source), Some(target)) = (Place::postgres().await, Place::postgres().await) else {
        return;
    };
    fixture(&source, &target).await;
    let options = DiffOptions {
        grouped_above_rows: 0,
        ..options(StrategyChoice::Server)
    };
    let (report, found) = diff(&source.source("cases"), &target.source("cases"), &options).await;
    assert_eq!(found, findings(&expected_by_default()));
    assert_eq!(report.summary.matched, 5);
}

#[tokio::test]
async fn postgres_client_strategy_is_exact() {
    let (Some(source), Some(target)) = (Place::postgres().await, Place::postgres().await) else {
        return;
    };
    every_case_is_exact(source, target, StrategyChoice::Client).await;
}

#[tokio::test]
async fn sqlite_is_exact() {
    every_case_is_exact(
        Place::sqlite("source.db"),
        Place::sqlite("target.db"),
        StrategyChoice::Auto,
    )
    .await;
}

#[tokio::test]
async fn postgres_against_sqlite_is_exact() {
    let Some(source) = Place::postgres().await else {
        return;
    };
    every_case_is_exact(source, Place::sqlite("target.db"), StrategyChoice::Auto).await;
}

#[tokio::test]
async fn sqlite_against_postgres_is_exact() {
    let Some(target) = Place::postgres().await else {
        return;
    };
    every_case_is_exact(Place::sqlite("source.db"), target, StrategyChoice::Auto).await;
}

#[tokio::test]
async fn the_same_instant_in_two_time_zones_is_equal_and_a_microsecond_is_not() {
    let (Some(source), Some(target)) = (Place::postgres().await, Place::postgres().await) else {
        return;
    };
    source
        .execute(
            "SET TimeZone = 'UTC'; CREATE TABLE t (id int PRIMARY KEY, at timestamptz, local timestamp); \
             INSERT INTO t VALUES (1, '2024-03-01 12:00:00+00', '2024-03-01 12:00:00'), \
                                  (2, '2024-03-01 12:00:00.000001+00', '2024-03-01 12:00:00.000001')",
        )
        .await;
    target
        .execute(
            "SET TimeZone = 'America/Regina'; CREATE TABLE t (id int PRIMARY KEY, at timestamptz, local timestamp); \
             INSERT INTO t VALUES (1, '2024-03-01 13:00:00+01', '2024-03-01 12:00:00'), \
                                  (2, '2024-03-01 12:00:00+00', '2024-03-01 12:00:00')",
        )
        .await;
    for strategy in [StrategyChoice::Server, StrategyChoice::Client] {
        let (_, found) = diff(&source.source("t"), &target.source("t"), &options(strategy)).await;
        assert_eq!(
            found,
            findings(&[("changed", r#"{"id":2}"#, "at,local")]),
            "{strategy:?}"
        );
    }
}

#[tokio::test]
async fn null_vs_empty_string_is_a_change_in_both_directions() {
    let source = Place::sqlite("source.db");
    let target = Place::sqlite("target.db");
    for (place, first, second) in [(&source, "NULL", "''"), (&target, "''", "NULL")] {
        place
            .execute(&format!(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, {first}), (2, {second}), (3, 'NULL')"
            ))
            .await;
    }
    let (_, found) = diff(
        &source.source("t"),
        &target.source("t"),
        &DiffOptions::default(),
    )
    .await;
    assert_eq!(
        found,
        findings(&[
            ("changed", r#"{"id":1}"#, "v"),
            ("changed", r#"{"id":2}"#, "v")
        ])
    );
}

async fn duplicates_are_findings(source: Place, target: Place) {
    source
        .execute("CREATE TABLE t (id integer, v text); INSERT INTO t VALUES (1, 'a'), (1, 'a'), (2, 'b'), (3, 'c'), (3, 'c'), (NULL, 'n')")
        .await;
    target
        .execute("CREATE TABLE t (id integer, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c'), (3, 'c')")
        .await;
    let options = DiffOptions {
        key: vec!["id".into()],
        ..DiffOptions::default()
    };
    let (report, found) = diff(&source.source("t"), &target.source("t"), &options).await;
    assert_eq!(
        found,
        findings(&[
            ("duplicate_key", r#"{"id":1}"#, "sourcex2"),
            ("duplicate_key", r#"{"id":3}"#, "sourcex2"),
            ("duplicate_key", r#"{"id":3}"#, "targetx2"),
        ])
    );
    assert_eq!(report.summary.duplicate_keys, 3);
    assert_eq!(report.summary.null_keys, 1);
    assert_eq!(report.source_null_keys, 1);
    assert_eq!(report.summary.source_rows, 6);
    assert_eq!(report.summary.matched, 1);
}

#[tokio::test]
async fn duplicate_and_null_keys_are_findings_on_sqlite() {
    duplicates_are_findings(Place::sqlite("source.db"), Place::sqlite("target.db")).await;
}

#[tokio::test]
async fn duplicate_and_null_keys_are_findings_on_postgres() {
    let (Some(source), Some(target)) = (Place::postgres().await, Place::postgres().await) else {
        return;
    };
    duplicates_are_findings(source, target).await;
}

#[tokio::test]
async fn empty_tables() {
    let source = Place::sqlite("source.db");
    let target = Place::sqlite("target.db");
    source
        .execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .await;
    target
        .execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .await;
    let (report, found) = diff(
        &source.source("t"),
        &target.source("t"),
        &DiffOptions::default(),
    )
    .await;
    assert!(found.is_empty());
    assert!(!report.has_differences());
    target.execute("INSERT INTO t VALUES (1, 'x')").await;
    let (report, found) = diff(
        &source.source("t"),
        &target.source("t"),
        &DiffOptions::default(),
    )
    .await;
    assert_eq!(found, findings(&[("extra", r#"{"id":1}"#, "")]));
    assert_eq!(report.summary.target_rows, 1);
}

#[tokio::test]
async fn renamed_excluded_and_one_sided_columns() {
    let source = Place::sqlite("source.db");
    let target = Place::sqlite("target.db");
    source
        .execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, noise TEXT, old_only TEXT); INSERT INTO t VALUES (1, 'a', 'x', 'o')")
        .await;
    target
        .execute("CREATE TABLE t (id INTEGER PRIMARY KEY, full_name TEXT, noise TEXT, new_only TEXT); INSERT INTO t VALUES (1, 'b', 'y', 'n')")
        .await;
    let options = DiffOptions {
        map: vec![("name".into(), "full_name".into())],
        exclude: vec!["noise".into()],
        ..DiffOptions::default()
    };
    let (report, found) = diff(&source.source("t"), &target.source("t"), &options).await;
    assert_eq!(found, findings(&[("changed", r#"{"id":1}"#, "name")]));
    assert_eq!(report.schema.only_in_source, vec!["old_only".to_owned()]);
    assert_eq!(report.schema.only_in_target, vec!["new_only".to_owned()]);
}

#[tokio::test]
async fn groups_count_findings_by_column_and_month() {
    let source = Place::sqlite("source.db");
    let target = Place::sqlite("target.db");
    source
        .execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, program TEXT, reported_at TIMESTAMP, v TEXT); \
             INSERT INTO t VALUES (1, 'HIV', '2024-01-05 10:00:00', 'a'), (2, 'HIV', '2024-02-05 10:00:00', 'a'), \
             (3, 'TB', '2024-01-06 10:00:00', 'a'), (4, 'TB', '2024-01-07 10:00:00', 'a')",
        )
        .await;
    target
        .execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, program TEXT, reported_at TIMESTAMP, v TEXT); \
             INSERT INTO t VALUES (1, 'HIV', '2024-01-05 10:00:00', 'b'), (3, 'TB', '2024-01-06 10:00:00', 'b'), \
             (4, 'TB', '2024-01-07 10:00:00', 'b'), (5, 'TB', '2024-03-01 00:00:00', 'a')",
        )
        .await;
    let options = DiffOptions {
        group_by: vec![
            GroupBy::parse("program").expect("group"),
            GroupBy::parse("reported_at:month").expect("group"),
        ],
        ..DiffOptions::default()
    };
    let (report, _) = diff(&source.source("t"), &target.source("t"), &options).await;
    let groups: Vec<(String, u64, u64, u64)> = report
        .groups
        .iter()
        .map(|group| {
            (
                group
                    .values
                    .iter()
                    .map(|value| value.as_str().unwrap_or("?"))
                    .collect::<Vec<_>>()
                    .join(" "),
                group.missing,
                group.extra,
                group.changed,
            )
        })
        .collect();
    assert_eq!(
        groups,
        vec![
            ("TB 2024-01".to_owned(), 0, 0, 2),
            ("HIV 2024-01".to_owned(), 0, 0, 1),
            ("HIV 2024-02".to_owned(), 1, 0, 0),
            ("TB 2024-03".to_owned(), 0, 1, 0),
        ]
    );
    assert_eq!(
        report.group_by,
        vec!["program".to_owned(), "reported_at:month".to_owned()]
    );
}

#[tokio::test]
async fn max_diffs_stops_early_and_says_so() {
    let source = Place::sqlite("source.db");
    let target = Place::sqlite("target.db");
    source
        .execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .await;
    target
        .execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .await;
    source
        .execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) INSERT INTO t SELECT i, 'a' FROM n")
        .await;
    target
        .execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) INSERT INTO t SELECT i, 'b' FROM n")
        .await;
    let options = DiffOptions {
        max_diffs: Some(10),
        ..DiffOptions::default()
    };
    let (report, found) = diff(&source.source("t"), &target.source("t"), &options).await;
    assert_eq!(found.len(), 10);
    assert_eq!(report.summary.changed, 10);
    assert!(report.stopped_early);
}

#[tokio::test]
async fn queries_can_be_compared_with_tables() {
    let Some(source) = Place::postgres().await else {
        return;
    };
    source
        .execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        .await;
    let target = Place::sqlite("target.db");
    target
        .execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'B'), (3, 'c')")
        .await;
    let query = cutover_diff::Source::Query {
        url: cutover_db::DatabaseUrl::parse(&source.url).expect("url"),
        sql: "SELECT id, v FROM t WHERE id < 3".into(),
    };
    let options = DiffOptions {
        key: vec!["id".into()],
        target_where: Some("id < 3".into()),
        ..DiffOptions::default()
    };
    let (_, found) = diff(&query, &target.source("t"), &options).await;
    assert_eq!(found, findings(&[("changed", r#"{"id":2}"#, "v")]));
}

#[tokio::test]
async fn type_equalities_looser_than_canonical_are_still_differences() {
    let (Some(source), Some(target)) = (Place::postgres().await, Place::postgres().await) else {
        return;
    };
    let create = "CREATE TABLE t (id int PRIMARY KEY, span interval, code char(4), label varchar(8), \
                  amount numeric, ratio float8, at timestamp, day date, clock time, tag uuid, flag bool, doc jsonb);";
    source
        .execute(&format!(
            "{create} INSERT INTO t VALUES \
             (1, '1 mon', 'ab', 'ab', 'NaN', 'Infinity', 'infinity', '2024-01-01', '10:00', '00000000-0000-0000-0000-000000000001', true, '{{\"a\": 1}}'), \
             (2, '1 day', 'ab', 'ab ', 1, 1, '2024-01-01', '2024-01-01', '10:00', '00000000-0000-0000-0000-000000000001', true, '{{\"a\": 1, \"b\": 2}}'), \
             (3, '1 day', 'ab', 'ab', 1, 1, '2024-01-01', '2024-01-01', '10:00:00.000001', '00000000-0000-0000-0000-000000000001', false, '[]'), \
             (4, '1 day', 'ab', 'ab', 1, 1, '2024-01-01', '2024-01-02', '10:00', '00000000-0000-0000-0000-000000000002', true, '{{}}')"
        ))
        .await;
    target
        .execute(&format!(
            "{create} INSERT INTO t VALUES \
             (1, '30 days', 'ab  ', 'ab', 'NaN', 'Infinity', 'infinity', '2024-01-01', '10:00', '00000000-0000-0000-0000-000000000001', true, '{{\"a\": 1}}'), \
             (2, '1 day', 'ab', 'ab', 1, 1, '2024-01-01', '2024-01-01', '10:00', '00000000-0000-0000-0000-000000000001', true, '{{\"b\": 2, \"a\": 1}}'), \
             (3, '1 day', 'ab', 'ab', 1, 1, '2024-01-01', '2024-01-01', '10:00', '00000000-0000-0000-0000-000000000001', true, '[]'), \
             (4, '1 day', 'ab', 'ab', 1, 1, '2024-01-01', '2024-01-01', '10:00', '00000000-0000-0000-0000-000000000001', true, '{{}}')"
        ))
        .await;
    for strategy in [StrategyChoice::Server, StrategyChoice::Client] {
        let (_, found) = diff(&source.source("t"), &target.source("t"), &options(strategy)).await;
        assert_eq!(
            found,
            findings(&[
                ("changed", r#"{"id":1}"#, "span"),
                ("changed", r#"{"id":2}"#, "label"),
                ("changed", r#"{"id":3}"#, "clock,flag"),
                ("changed", r#"{"id":4}"#, "day,tag"),
            ]),
            "{strategy:?}"
        );
    }
}

/// The case columns as written to Parquet fixtures: typed where Parquet has
/// the type, the rest as text (parsed into the other side's types).
const PARQUET_TYPES: &[(&str, LogicalType)] = &[
    ("region", LogicalType::Text),
    ("id", LogicalType::Integer),
    ("note", LogicalType::Text),
    ("amount", LogicalType::Text),
    ("ratio", LogicalType::Float),
    ("taken_at", LogicalType::Text),
    ("payload", LogicalType::Text),
];

async fn files_against(target: Place) {
    target
        .table("cases", COLUMNS, &["region", "id"], target_rows())
        .await;
    let directory = tempfile::tempdir().expect("temporary directory");
    let names: Vec<&str> = COLUMNS.iter().map(|(name, _, _)| *name).collect();
    let csv = directory.path().join("cases.csv");
    write_csv(&csv, &names, &source_rows());
    let parquet = directory.path().join("cases.parquet");
    write_parquet(&parquet, PARQUET_TYPES, &source_rows());
    let options = DiffOptions {
        key: vec!["region".into(), "id".into()],
        ..DiffOptions::default()
    };
    for file in [&csv, &parquet] {
        let (report, found) = diff(&file_source(file), &target.source("cases"), &options).await;
        assert_eq!(
            found,
            findings(&expected_by_default()),
            "{}",
            file.display()
        );
        assert_eq!(report.summary.matched, 5, "{}", file.display());
        // And the other way round: the file as the target.
        let (_, found) = diff(&target.source("cases"), &file_source(file), &options).await;
        assert_eq!(
            found.len(),
            expected_by_default().len(),
            "{}",
            file.display()
        );
    }
    // A file against itself in the other format.
    let (report, found) = diff(&file_source(&csv), &file_source(&parquet), &options).await;
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(report.summary.matched, 13);
}

#[tokio::test]
async fn csv_and_parquet_against_sqlite_are_exact() {
    files_against(Place::sqlite("target.db")).await;
}

#[tokio::test]
async fn csv_and_parquet_against_postgres_are_exact() {
    let Some(target) = Place::postgres().await else {
        return;
    };
    files_against(target).await;
}

#[tokio::test]
async fn a_malformed_csv_line_is_named_by_number() {
    let target = Place::sqlite("target.db");
    target
        .execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .await;
    let directory = tempfile::tempdir().expect("temporary directory");
    let csv = directory.path().join("t.csv");
    std::fs::write(&csv, "id,v\n1,a\n2,b,extra\n").expect("fixture");
    let error = diff_error(
        &file_source(&csv),
        &target.source("t"),
        &DiffOptions {
            key: vec!["id".into()],
            ..DiffOptions::default()
        },
    )
    .await;
    assert!(
        error.contains("line 3: expected 2 fields, found 3"),
        "{error}"
    );
    std::fs::write(&csv, "id,v\n1,a\nx,b\n").expect("fixture");
    let error = diff_error(
        &file_source(&csv),
        &target.source("t"),
        &DiffOptions {
            key: vec!["id".into()],
            ..DiffOptions::default()
        },
    )
    .await;
    assert!(
        error.contains("line 3, column id: not a valid integer"),
        "{error}"
    );
}

#[tokio::test]
async fn keys_that_sort_differently_in_two_collations_still_match() {
    let (Some(source), Some(target)) = (Place::postgres().await, Place::postgres().await) else {
        return;
    };
    source
        .execute("CREATE TABLE t (k text COLLATE \"C\" PRIMARY KEY, v int); INSERT INTO t VALUES ('a', 1), ('B', 2), ('\u{e9}', 3), ('Z', 4), ('b', 5)")
        .await;
    // A linguistic collation orders a < b < B < é < Z; "C" orders B < Z < a < b < é.
    target
        .execute("CREATE TABLE t (k text COLLATE \"und-x-icu\" PRIMARY KEY, v int); INSERT INTO t VALUES ('a', 1), ('B', 2), ('\u{e9}', 30), ('Z', 4), ('c', 6)")
        .await;
    let sqlite = Place::sqlite("target.db");
    sqlite
        .execute("CREATE TABLE t (k TEXT COLLATE NOCASE PRIMARY KEY, v INTEGER); INSERT INTO t VALUES ('a', 1), ('B', 2), ('\u{e9}', 30), ('Z', 4), ('c', 6)")
        .await;
    let expected = findings(&[
        ("changed", r#"{"k":"é"}"#, "v"),
        ("missing", r#"{"k":"b"}"#, ""),
        ("extra", r#"{"k":"c"}"#, ""),
    ]);
    for strategy in [StrategyChoice::Server, StrategyChoice::Client] {
        let (_, found) = diff(&source.source("t"), &target.source("t"), &options(strategy)).await;
        assert_eq!(found, expected, "{strategy:?}");
    }
    let (_, found) = diff(
        &source.source("t"),
        &sqlite.source("t"),
        &DiffOptions::default(),
    )
    .await;
    assert_eq!(found, expected);
}

#[tokio::test]
async fn types_that_cannot_be_compared_are_named_with_a_hint() {
    let source = Place::sqlite("source.db");
    let target = Place::sqlite("target.db");
    source
        .execute("CREATE TABLE t (id INTEGER PRIMARY KEY, seen TIMESTAMP)")
        .await;
    target
        .execute("CREATE TABLE t (id INTEGER PRIMARY KEY, seen INTEGER)")
        .await;
    let error = diff_error(
        &source.source("t"),
        &target.source("t"),
        &DiffOptions::default(),
    )
    .await;
    assert_eq!(
        error,
        "column seen: TIMESTAMP in the source cannot be compared with INTEGER in the target\n\
         hint: leave it out with --exclude seen, or cast it on one side with --source-query/--target-query"
    );
}

/// A directory of Parquet files (an export in parts, with a marker file and
/// a hidden file beside them) reads as one table: the same findings as one
/// file, by columns on several threads and row by row (with a leniency);
/// a part whose schema differs is named.
#[tokio::test]
async fn a_directory_of_parquet_files_is_one_table() {
    let target = Place::sqlite("target.db");
    target
        .table("cases", COLUMNS, &["region", "id"], target_rows())
        .await;
    let directory = tempfile::tempdir().expect("temporary directory");
    let dataset = directory.path().join("export");
    let types = PARQUET_TYPES;
    let rows = source_rows();
    for (part, chunk) in rows.chunks(rows.len().div_ceil(3)).enumerate() {
        let folder = dataset.join(format!("month=2024-0{}", part + 1));
        std::fs::create_dir_all(&folder).expect("a partition folder");
        write_parquet(&folder.join("part-0.parquet"), types, chunk);
    }
    std::fs::write(dataset.join("_SUCCESS"), "").expect("marker");
    std::fs::write(dataset.join(".part-0.parquet.crc"), "x").expect("hidden file");
    let source = file_source(&dataset);
    let Source::File(file) = &source else {
        panic!("a file source");
    };
    assert_eq!(file.files().len(), 3);
    for (threads, trim) in [(3, false), (1, true)] {
        let options = DiffOptions {
            key: vec!["region".into(), "id".into()],
            read_threads: threads,
            normalise: Normalise {
                trim,
                ..Normalise::default()
            },
            ..DiffOptions::default()
        };
        let (report, found) = diff(&source, &target.source("cases"), &options).await;
        if !trim {
            assert_eq!(found, findings(&expected_by_default()));
        }
        assert_eq!(report.summary.source_rows, rows.len() as u64);
    }
    // Against the target's rows as one Parquet file: through bucket digests
    // with the rows kept on disk by the first pass (unlimited, none, and so
    // few bytes that a side gives up keeping midway and reads its file
    // again), and through every row's hashes on disk (as for tens of
    // millions of rows).
    let parquet = directory.path().join("target.parquet");
    write_parquet(&parquet, types, &target_rows());
    for (pairs_above_rows, kept_bytes) in [
        (u64::MAX, None),
        (u64::MAX, Some(0)),
        (u64::MAX, Some(400)),
        (0, None),
    ] {
        let options = DiffOptions {
            key: vec!["region".into(), "id".into()],
            read_threads: 2,
            pairs_above_rows,
            kept_bytes,
            ..DiffOptions::default()
        };
        let case = format!("{pairs_above_rows} {kept_bytes:?}");
        let (report, found) = diff(&source, &file_source(&parquet), &options).await;
        assert_eq!(found, findings(&expected_by_default()), "{case}");
        assert_eq!(report.summary.matched, 5, "{case}");
    }

    // A part with another schema is named, with the column.
    std::fs::create_dir_all(dataset.join("month=2024-04")).expect("a partition folder");
    write_parquet(
        &dataset.join("month=2024-04").join("odd.parquet"),
        &[
            ("region", LogicalType::Text),
            ("identifier", LogicalType::Integer),
        ],
        &[],
    );
    let error = cutover_files::FileSource::open(&dataset)
        .expect_err("parts of two schemas")
        .to_string();
    assert!(error.contains("odd.parquet"), "{error}");
    assert!(error.contains("column id"), "{error}");
    // A Delta table's directory (files of every version) is refused, not read as parts.
    std::fs::create_dir_all(dataset.join("_delta_log")).expect("a Delta log");
    let refused = cutover_files::FileSource::open(&dataset).expect_err("a Delta table");
    assert!(refused.to_string().contains("Delta table"), "{refused}");
}
