//! Reading real CSV and Parquet files.

use cutover_db::{Column, LogicalType, Row, Value};
use cutover_files::{FileSource, ParquetWriter};

fn column(name: &str, logical: LogicalType) -> Column {
    Column {
        name: name.into(),
        type_name: String::new(),
        logical_type: Some(logical),
        nullable: true,
        default: None,
    }
}

async fn collect(file: &FileSource, columns: &[Column]) -> Result<Vec<Row>, String> {
    let mut rows = file.read(columns).map_err(|error| error.to_string())?;
    let mut all = Vec::new();
    while let Some(row) = rows.next().await {
        all.push(row.map_err(|error| error.to_string())?);
    }
    Ok(all)
}

#[tokio::test]
async fn csv_fields_are_parsed_into_the_asked_types() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("results.csv");
    std::fs::write(
        &path,
        "id,taken_at,amount,note\n1,2024-03-01 13:00:00+01,1.50,\"a, \"\"quoted\"\"\nline\"\n2,,7,\n",
    )
    .expect("fixture");
    let file = FileSource::open(&path).expect("open");
    let header: Vec<String> = file
        .columns()
        .expect("columns")
        .into_iter()
        .map(|column| column.name)
        .collect();
    assert_eq!(header, ["id", "taken_at", "amount", "note"]);
    let columns = [
        column("note", LogicalType::Text),
        column("id", LogicalType::Integer),
        column("taken_at", LogicalType::TimestampTz),
        column("amount", LogicalType::Numeric),
    ];
    let rows = collect(&file, &columns).await.expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][0], Value::Text("a, \"quoted\"\nline".into()));
    assert_eq!(rows[0][1], Value::Int(1));
    assert_eq!(rows[0][2], Value::TimestampTz(1_709_294_400_000_000));
    assert_eq!(rows[0][3].to_text().as_deref(), Some("1.5"));
    assert_eq!(rows[1][0], Value::Null);
    assert_eq!(rows[1][2], Value::Null);
}

#[tokio::test]
async fn csv_errors_name_the_line_and_column_but_not_the_value() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("bad.csv");
    std::fs::write(&path, "id,v\n1,a\n2,b,c\n").expect("fixture");
    let file = FileSource::open(&path).expect("open");
    let error = collect(&file, &[column("id", LogicalType::Integer)])
        .await
        .expect_err("extra field");
    assert!(
        error.ends_with("bad.csv: line 3: expected 2 fields, found 3"),
        "{error}"
    );
    std::fs::write(&path, "id,v\n1,a\nsecret-value,b\n").expect("fixture");
    let error = collect(&file, &[column("id", LogicalType::Integer)])
        .await
        .expect_err("not an integer");
    assert!(
        error.contains("line 3, column id: not a valid integer"),
        "{error}"
    );
    assert!(!error.contains("secret-value"), "{error}");
    let error = collect(&file, &[column("missing", LogicalType::Text)])
        .await
        .expect_err("no such column");
    assert!(error.contains("no column missing"), "{error}");
}

#[tokio::test]
async fn parquet_round_trips_through_the_writer() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("rows.parquet");
    let columns = [
        ("id".to_owned(), LogicalType::Integer),
        ("ratio".to_owned(), LogicalType::Float),
        ("flag".to_owned(), LogicalType::Bool),
        ("taken_at".to_owned(), LogicalType::TimestampTz),
    ];
    let mut writer = ParquetWriter::create(&path, &columns).expect("create");
    let rows = 3_000;
    for index in 0..rows {
        writer
            .write(vec![
                Value::Int(index),
                if index % 7 == 0 {
                    Value::Null
                } else {
                    Value::Float(index as f64 / 4.0)
                },
                Value::Bool(index % 2 == 0),
                Value::TimestampTz(index * 1_000_001),
            ])
            .expect("write");
    }
    writer.finish().expect("finish");
    let file = FileSource::open(&path).expect("open");
    let described = file.columns().expect("columns");
    let types: Vec<Option<LogicalType>> =
        described.iter().map(|column| column.logical_type).collect();
    // Timestamps were written as text: they read as text unless asked for as timestamps.
    assert_eq!(
        types,
        [
            Some(LogicalType::Integer),
            Some(LogicalType::Float),
            Some(LogicalType::Bool),
            Some(LogicalType::Text)
        ]
    );
    let wanted = [
        column("taken_at", LogicalType::TimestampTz),
        column("id", LogicalType::Integer),
        column("ratio", LogicalType::Float),
    ];
    let read = collect(&file, &wanted).await.expect("rows");
    assert_eq!(read.len(), rows as usize);
    assert_eq!(
        read[14],
        vec![Value::TimestampTz(14_000_014), Value::Int(14), Value::Null]
    );
    assert_eq!(read[2999][2], Value::Float(2999.0 / 4.0));
}
