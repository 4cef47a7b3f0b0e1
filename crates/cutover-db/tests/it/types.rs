//! Every type of the value model, PostgreSQL → canonical → SQLite → PostgreSQL,
//! compared on the canonical encoding at each hop.

use cutover_db::{Interval, Numeric, ReadRequest, TableName, Value};

use crate::support::{assert_same_rows, collect, connect, create_sqlite};

const POSTGRES_TABLE: &str = "
CREATE TABLE all_types (
    id integer PRIMARY KEY,
    small smallint,
    big bigint,
    amount numeric(12,4),
    exact_amount numeric,
    ratio double precision,
    single real,
    label text,
    code varchar(10),
    padded char(5),
    flag boolean,
    born date,
    at_time time,
    reported_at timestamp(3),
    collected_at timestamptz,
    duration interval,
    ident uuid,
    doc jsonb,
    raw_doc json,
    blob bytea
);";

const SQLITE_TABLE: &str = "
CREATE TABLE all_types (
    id INTEGER PRIMARY KEY,
    small SMALLINT,
    big BIGINT,
    amount NUMERIC(12,4),
    exact_amount DECIMAL TEXT,
    ratio DOUBLE PRECISION,
    single REAL,
    label TEXT,
    code VARCHAR(10),
    padded CHAR(5),
    flag BOOLEAN,
    born DATE,
    at_time TIME,
    reported_at TIMESTAMP,
    collected_at TIMESTAMPTZ,
    duration INTERVAL,
    ident UUID,
    doc JSONB,
    raw_doc JSON,
    blob BLOB
);";

const ROWS: &str = "
SET TIME ZONE 'America/New_York';
INSERT INTO all_types VALUES
 (1, 7, 9000000000, 12.5, 3.14159, 0.1, 0.5, 'HIV viral load', 'LN-1', 'ab', true,
  '1985-07-14', '08:30:00', '2024-03-01 12:34:56.789', '2024-03-01 12:34:56.123456+02',
  '1 day 02:00:00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"b\": 1, \"a\": [true, null]}',
  '{\"z\": \"x\",  \"a\": 2}', '\\x00ff10'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL),
 (3, -32768, -9223372036854775808, 1.00, -0.000001, -0.0, 'NaN', '', '', '', false,
  '1969-12-31', '23:59:59.999999', 'infinity', '-infinity',
  '1 year 2 mons -3 days 04:05:06.789', '00000000-0000-0000-0000-000000000000', '[]',
  'null', '\\x'),
 (4, 32767, 9223372036854775807, -99999999.9999, 123456789012345678901234567890.123456789,
  1e308, 'Infinity', 'Zürich 東京 🚑', 'x', 'abcde', NULL,
  '0001-01-01', '00:00:00', '1900-01-01 00:00:00.001', '2024-11-03 01:30:00',
  '-00:00:00.000001', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '{\"nested\": {\"k\": [1, 2.5, \"s\"]}}',
  '\"text\"', decode(repeat('ab', 5000), 'hex'));";

#[tokio::test]
async fn every_type_round_trips_postgres_sqlite_postgres() {
    let Some(postgres) = cutover_testing::postgres().await else {
        return;
    };
    cutover_testing::postgres_execute(&postgres.url, &format!("{POSTGRES_TABLE}{ROWS}")).await;
    let source = connect(&postgres.url).await;
    let table = TableName::new("all_types");
    let from_postgres = collect(
        source
            .read(&ReadRequest::table(table.clone()))
            .await
            .expect("read"),
    )
    .await;
    assert_eq!(from_postgres.len(), 4);

    // Spot checks on the decoded values themselves.
    let typical = &from_postgres[0];
    assert_eq!(
        typical[3],
        Value::Numeric(Numeric::parse("12.5").expect("number"))
    );
    assert_eq!(
        typical[9],
        Value::Text("ab   ".into()),
        "char(5) keeps its padding"
    );
    assert_eq!(
        typical[14].to_text().as_deref(),
        Some("2024-03-01 10:34:56.123456+00"),
        "timestamptz is kept in UTC whatever the session time zone"
    );
    assert_eq!(
        typical[17],
        Value::Json(r#"{"a":[true,null],"b":1}"#.into())
    );
    assert_eq!(typical[18], Value::Json(r#"{"a":2,"z":"x"}"#.into()));
    assert_eq!(typical[19], Value::Bytes(vec![0x00, 0xff, 0x10]));
    assert!(from_postgres[1][1..].iter().all(Value::is_null));
    let edges = &from_postgres[2];
    assert_eq!(
        edges[3],
        Value::Numeric(Numeric::parse("1").expect("number")),
        "1.00 is 1"
    );
    assert_eq!(
        edges[7],
        Value::Text(String::new()),
        "empty string is not NULL"
    );
    assert_eq!(edges[13], Value::Timestamp(i64::MAX));
    assert_eq!(edges[14], Value::TimestampTz(i64::MIN));
    assert_eq!(
        edges[15],
        Value::Interval(Interval {
            months: 14,
            days: -3,
            micros: 14_706_789_000
        })
    );
    assert_eq!(edges[19], Value::Bytes(Vec::new()));
    assert_eq!(
        from_postgres[3][4],
        Value::Numeric(Numeric::parse("123456789012345678901234567890.123456789").expect("number"))
    );

    // PostgreSQL → SQLite.
    let (_directory, path) = cutover_testing::sqlite_path("types.db");
    let sqlite = create_sqlite(&path, SQLITE_TABLE).await;
    let columns = source.table(&table).await.expect("table").column_names();
    let written = sqlite
        .write(
            &table,
            &columns,
            source
                .read(&ReadRequest::table(table.clone()))
                .await
                .expect("read"),
        )
        .await
        .expect("write to SQLite");
    assert_eq!(written, 4);
    let from_sqlite = collect(
        sqlite
            .read(&ReadRequest::table(table.clone()))
            .await
            .expect("read"),
    )
    .await;
    assert_same_rows(&from_sqlite, &from_postgres);

    // SQLite → PostgreSQL, into a fresh table of the same shape.
    cutover_testing::postgres_execute(
        &postgres.url,
        "CREATE TABLE all_types_copy (LIKE all_types INCLUDING ALL);",
    )
    .await;
    let copy = TableName::new("all_types_copy");
    let written = source
        .write(
            &copy,
            &columns,
            sqlite
                .read(&ReadRequest::table(table.clone()))
                .await
                .expect("read"),
        )
        .await
        .expect("write to PostgreSQL");
    assert_eq!(written, 4);
    let back = collect(source.read(&ReadRequest::table(copy)).await.expect("read")).await;
    assert_same_rows(&back, &from_postgres);
}

#[tokio::test]
async fn arrays_and_enums_read_as_text() {
    let Some(postgres) = cutover_testing::postgres().await else {
        return;
    };
    cutover_testing::postgres_execute(
        &postgres.url,
        "CREATE TYPE program AS ENUM ('hiv', 'tb');
         CREATE DOMAIN jurisdiction AS char(2);
         CREATE TABLE t (id int PRIMARY KEY, tags text[], program program, place jurisdiction);
         INSERT INTO t VALUES (1, '{a,\"b c\",NULL}', 'tb', 'NY');",
    )
    .await;
    let database = connect(&postgres.url).await;
    let rows = collect(
        database
            .read(&ReadRequest::table(TableName::new("t")))
            .await
            .expect("read"),
    )
    .await;
    assert_eq!(
        rows,
        vec![vec![
            Value::Int(1),
            Value::Array("{a,\"b c\",NULL}".into()),
            Value::Text("tb".into()),
            Value::Text("NY".into()),
        ]]
    );
}

#[tokio::test]
async fn numeric_scale_and_microseconds_agree_across_engines() {
    let Some(postgres) = cutover_testing::postgres().await else {
        return;
    };
    cutover_testing::postgres_execute(
        &postgres.url,
        "CREATE TABLE r (id int PRIMARY KEY, v numeric(10,3), at timestamptz);
         INSERT INTO r VALUES (1, 1.100, '2024-01-01 00:00:00.000001+00');",
    )
    .await;
    let (_directory, path) = cutover_testing::sqlite_path("r.db");
    let sqlite = create_sqlite(
        &path,
        "CREATE TABLE r (id INTEGER PRIMARY KEY, v NUMERIC, at TIMESTAMPTZ);
         INSERT INTO r VALUES (1, '1.1', '2024-01-01T01:00:00.000001+01:00');",
    )
    .await;
    let postgres_rows = collect(
        connect(&postgres.url)
            .await
            .read(&ReadRequest::table(TableName::new("r")))
            .await
            .expect("read"),
    )
    .await;
    let sqlite_rows = collect(
        sqlite
            .read(&ReadRequest::table(TableName::new("r")))
            .await
            .expect("read"),
    )
    .await;
    assert_same_rows(&postgres_rows, &sqlite_rows);

    sqlite
        .execute_batch("UPDATE r SET at = '2024-01-01T01:00:00.000002+01:00'")
        .await
        .expect("update");
    let changed = collect(
        sqlite
            .read(&ReadRequest::table(TableName::new("r")))
            .await
            .expect("read"),
    )
    .await;
    assert_ne!(
        cutover_db::canonical::encode(&postgres_rows[0][2]),
        cutover_db::canonical::encode(&changed[0][2]),
        "one microsecond is a difference"
    );
}
