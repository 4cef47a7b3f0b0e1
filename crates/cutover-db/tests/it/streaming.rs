//! Streaming: two million rows through a counter on each engine in bounded
//! memory, key ranges, and column restriction.

use std::ops::Bound;

use cutover_db::{Database, ReadRequest, TableName, Value};

use crate::support::{collect, connect, create_sqlite};

const ROWS: i64 = 2_000_000;

/// Resident memory of this test process, from /proc (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

async fn stream_everything(database: &Database) {
    let before = resident_bytes();
    let mut rows = database
        .read(&ReadRequest::table(TableName::new("big")))
        .await
        .expect("read");
    let mut count = 0i64;
    let mut id_sum = 0i64;
    let mut previous = 0i64;
    let mut peak_growth = 0u64;
    while let Some(row) = rows.next().await {
        let row = row.expect("row");
        let Value::Int(id) = row[0] else {
            panic!("id is an integer")
        };
        assert!(id > previous, "rows come in key order");
        previous = id;
        count += 1;
        id_sum += id;
        if count % 250_000 == 0 {
            if let (Some(before), Some(now)) = (before, resident_bytes()) {
                peak_growth = peak_growth.max(now.saturating_sub(before));
            }
        }
    }
    assert_eq!(count, ROWS);
    assert_eq!(id_sum, ROWS * (ROWS + 1) / 2);
    // Collected, two million rows of three values would take hundreds of MB.
    assert!(
        peak_growth < 96 * 1024 * 1024,
        "memory grew by {} MB while streaming",
        peak_growth / (1024 * 1024)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_streams_two_million_rows_in_bounded_memory() {
    let Some(postgres) = cutover_testing::postgres().await else {
        return;
    };
    cutover_testing::postgres_execute(
        &postgres.url,
        &format!(
            "CREATE TABLE big (id bigint PRIMARY KEY, label text, at timestamptz);
             INSERT INTO big SELECT g, 'result ' || g, '2024-01-01'::timestamptz + g * interval '1 second'
             FROM generate_series({ROWS}, 1, -1) g;"
        ),
    )
    .await;
    stream_everything(&connect(&postgres.url).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_streams_two_million_rows_in_bounded_memory() {
    let (_directory, path) = cutover_testing::sqlite_path("big.db");
    let database = create_sqlite(
        &path,
        &format!(
            "CREATE TABLE big (id INTEGER PRIMARY KEY, label TEXT, at TIMESTAMPTZ);
             WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {ROWS})
             INSERT INTO big SELECT n, 'result ' || n, '2024-01-01 00:00:00+00' FROM g;"
        ),
    )
    .await;
    stream_everything(&database).await;
}

async fn check_ranges(database: &Database) {
    let request = ReadRequest::table(TableName::new("results"))
        .columns(vec!["observation_index".into(), "message_id".into()])
        .range(
            Bound::Excluded(vec![Value::Text("A".into()), Value::Int(2)]),
            Bound::Included(vec![Value::Text("B".into()), Value::Int(1)]),
        );
    let rows = collect(database.read(&request).await.expect("read")).await;
    assert_eq!(
        rows,
        vec![
            vec![Value::Int(3), Value::Text("A".into())],
            vec![Value::Int(1), Value::Text("B".into())],
        ]
    );
    let everything_after = ReadRequest::table(TableName::new("results")).range(
        Bound::Included(vec![Value::Text("B".into()), Value::Int(2)]),
        Bound::Unbounded,
    );
    assert_eq!(
        collect(database.read(&everything_after).await.expect("read"))
            .await
            .len(),
        2
    );
}

const RANGE_FIXTURE: &str = "
CREATE TABLE results (message_id TEXT, observation_index INTEGER, value TEXT, PRIMARY KEY (message_id, observation_index));
INSERT INTO results VALUES ('A', 1, 'x'), ('A', 2, 'x'), ('A', 3, 'x'), ('B', 1, 'x'), ('B', 2, 'x'), ('B', 3, 'x');";

#[tokio::test]
async fn postgres_reads_a_composite_key_range() {
    let Some(postgres) = cutover_testing::postgres().await else {
        return;
    };
    cutover_testing::postgres_execute(&postgres.url, RANGE_FIXTURE).await;
    check_ranges(&connect(&postgres.url).await).await;
}

#[tokio::test]
async fn sqlite_reads_a_composite_key_range() {
    let (_directory, path) = cutover_testing::sqlite_path("ranges.db");
    check_ranges(&create_sqlite(&path, RANGE_FIXTURE).await).await;
}
