use cutover_db::{ConnectOptions, Database, Row, RowStream};

pub async fn connect(url: &str) -> Database {
    Database::connect_str(url, &ConnectOptions::default())
        .await
        .unwrap_or_else(|error| panic!("connecting to {url}: {error}"))
}

pub async fn create_sqlite(path: &std::path::Path, sql: &str) -> Database {
    let options = ConnectOptions {
        create_sqlite: true,
        ..ConnectOptions::default()
    };
    let database = Database::connect_str(&format!("sqlite:{}", path.display()), &options)
        .await
        .expect("creating a SQLite file");
    database.execute_batch(sql).await.expect("SQLite fixture");
    database
}

/// Collects a (small) stream; tests only.
pub async fn collect(mut stream: RowStream) -> Vec<Row> {
    let mut rows = Vec::new();
    while let Some(row) = stream.next().await {
        rows.push(row.expect("row"));
    }
    rows
}

/// Asserts that two row lists are equal value by value on the canonical
/// encoding, naming the first row and column that differ (synthetic data only).
pub fn assert_same_rows(left: &[Row], right: &[Row]) {
    assert_eq!(left.len(), right.len(), "row counts differ");
    for (index, (left_row, right_row)) in left.iter().zip(right).enumerate() {
        assert_eq!(
            left_row.len(),
            right_row.len(),
            "row {index}: widths differ"
        );
        for (column, (left_value, right_value)) in left_row.iter().zip(right_row).enumerate() {
            assert!(
                cutover_db::canonical::encode(left_value)
                    == cutover_db::canonical::encode(right_value),
                "row {index}, column {column}: {left_value:?} != {right_value:?}"
            );
        }
    }
}
