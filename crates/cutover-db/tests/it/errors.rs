//! Bad input gets one clear line, never a panic, and nothing is written.

use cutover_db::{
    Column, ConnectOptions, Database, Error, LogicalType, ReadRequest, RowStream, TableName, Value,
};

use crate::support::{collect, connect, create_sqlite};

async fn connect_error(url: &str) -> Error {
    Database::connect_str(url, &ConnectOptions::default())
        .await
        .expect_err("must not connect")
}

#[tokio::test]
async fn unreachable_server_says_what_to_check() {
    let message = connect_error("postgres://someone:topsecret@127.0.0.1:1/lab?connect_timeout=2")
        .await
        .to_string();
    assert!(
        message.starts_with("cannot connect to postgres://someone:***@127.0.0.1:1/lab"),
        "{message}"
    );
    assert!(
        message.contains("hint: check the host and port"),
        "{message}"
    );
    assert!(!message.contains("topsecret"), "{message}");
}

#[tokio::test]
async fn wrong_password_is_an_authentication_error_without_the_password() {
    let Some(postgres) = cutover_testing::postgres().await else {
        return;
    };
    cutover_testing::postgres_execute(
        &postgres.admin_url,
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cutover_auth') THEN
             CREATE ROLE cutover_auth LOGIN PASSWORD 'right-password';
           END IF;
         END $$;",
    )
    .await;
    let url = postgres.url.replace(
        "postgres://postgres@",
        "postgres://cutover_auth:wrong-password@",
    );
    let error = connect_error(&url).await;
    assert!(matches!(error, Error::Authentication { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("authentication failed for user cutover_auth"),
        "{message}"
    );
    assert!(message.contains("PGPASSWORD"), "{message}");
    assert!(!message.contains("wrong-password"), "{message}");

    let right = postgres.url.replace(
        "postgres://postgres@",
        "postgres://cutover_auth:right-password@",
    );
    connect(&right).await;
}

#[tokio::test]
async fn missing_sqlite_file_is_not_created() {
    let (directory, path) = cutover_testing::sqlite_path("absent.db");
    let error = connect_error(&format!("sqlite:{}", path.display())).await;
    assert!(
        matches!(error, Error::MissingSqliteFile { .. }),
        "{error:?}"
    );
    assert!(!path.exists());
    assert_eq!(
        std::fs::read_dir(directory.path()).expect("list").count(),
        0
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused() {
    let (_directory, path) = cutover_testing::sqlite_path("notes.db");
    std::fs::write(
        &path,
        "these are not the rows you are looking for, not at all",
    )
    .expect("write");
    let message = connect_error(&format!("sqlite:{}", path.display()))
        .await
        .to_string();
    assert!(message.contains("not a database"), "{message}");
}

#[tokio::test]
async fn unknown_table_suggests_close_names() {
    let (_directory, path) = cutover_testing::sqlite_path("lab.db");
    let database = create_sqlite(&path, "CREATE TABLE lab_results (id INTEGER PRIMARY KEY);").await;
    let error = database
        .read(&ReadRequest::table(TableName::new("lab_result")))
        .await
        .expect_err("no such table");
    let message = error.to_string();
    assert!(
        message.starts_with("table lab_result does not exist in sqlite:"),
        "{message}"
    );
    assert!(message.contains("did you mean lab_results?"), "{message}");
}

#[tokio::test]
async fn unknown_postgres_table_is_clear() {
    let Some(postgres) = cutover_testing::postgres().await else {
        return;
    };
    let database = connect(&postgres.url).await;
    let error = database
        .table(&TableName::parse("reporting.nothing"))
        .await
        .expect_err("no such table");
    assert!(matches!(error, Error::UnknownTable { .. }), "{error:?}");
}

#[tokio::test]
async fn ordered_read_without_primary_key_says_to_name_one() {
    let (_directory, path) = cutover_testing::sqlite_path("nokey.db");
    let database = create_sqlite(
        &path,
        "CREATE TABLE loose (a TEXT, b TEXT); INSERT INTO loose VALUES ('x', 'y');",
    )
    .await;
    let error = database
        .read(&ReadRequest::table(TableName::new("loose")))
        .await
        .expect_err("needs a key");
    assert_eq!(
        error.to_string(),
        "table loose has no primary key\nhint: name the key columns explicitly (e.g. --key id)"
    );
    // Unordered reads need no key.
    let rows = collect(
        database
            .read(&ReadRequest::table(TableName::new("loose")).unordered())
            .await
            .expect("read"),
    )
    .await;
    assert_eq!(rows.len(), 1);
}

#[tokio::test]
async fn unsupported_type_names_table_column_and_type() {
    let Some(postgres) = cutover_testing::postgres().await else {
        return;
    };
    cutover_testing::postgres_execute(
        &postgres.url,
        "CREATE TABLE places (id int PRIMARY KEY, spot point);",
    )
    .await;
    let database = connect(&postgres.url).await;
    let error = database
        .read(&ReadRequest::table(TableName::new("places")))
        .await
        .expect_err("point is unsupported");
    assert_eq!(
        error.to_string(),
        "table public.places: column spot has unsupported type point\nhint: leave the column out (with diff: --exclude spot), or cast it to text in a query"
    );
    // Leaving it out works.
    let request = ReadRequest::table(TableName::new("places")).columns(vec!["id".into()]);
    assert!(
        collect(database.read(&request).await.expect("read"))
            .await
            .is_empty()
    );
}

fn failing_rows(columns: Vec<Column>) -> RowStream {
    let rows = vec![
        Ok(vec![Value::Int(1), Value::Text("first".into())]),
        Ok(vec![Value::Int(2), Value::Text("second".into())]),
        Err(Error::Internal("the source went away".into())),
    ];
    RowStream::new(columns, futures_util::stream::iter(rows))
}

fn two_columns() -> Vec<Column> {
    ["id", "label"]
        .into_iter()
        .map(|name| Column {
            name: name.into(),
            type_name: "text".into(),
            logical_type: Some(LogicalType::Text),
            nullable: true,
            default: None,
        })
        .collect()
}

#[tokio::test]
async fn a_failed_write_leaves_nothing_behind() {
    let columns = vec!["id".to_owned(), "label".to_owned()];
    let (_directory, path) = cutover_testing::sqlite_path("target.db");
    let sqlite = create_sqlite(
        &path,
        "CREATE TABLE target (id INTEGER PRIMARY KEY, label TEXT);",
    )
    .await;
    let table = TableName::new("target");
    sqlite
        .write(&table, &columns, failing_rows(two_columns()))
        .await
        .expect_err("source failed");
    assert_eq!(sqlite.count_rows(&table).await.expect("count"), 0);

    let Some(postgres) = cutover_testing::postgres().await else {
        return;
    };
    cutover_testing::postgres_execute(
        &postgres.url,
        "CREATE TABLE target (id int PRIMARY KEY, label text);",
    )
    .await;
    let database = connect(&postgres.url).await;
    database
        .write(&table, &columns, failing_rows(two_columns()))
        .await
        .expect_err("source failed");
    assert_eq!(database.count_rows(&table).await.expect("count"), 0);
}

#[tokio::test]
async fn a_value_that_does_not_fit_is_refused_without_showing_it() {
    let Some(postgres) = cutover_testing::postgres().await else {
        return;
    };
    cutover_testing::postgres_execute(
        &postgres.url,
        "CREATE TABLE target (id int PRIMARY KEY, label text);",
    )
    .await;
    let database = connect(&postgres.url).await;
    let rows = RowStream::from_rows(
        two_columns(),
        vec![
            vec![Value::Int(1), Value::Text("ok".into())],
            vec![Value::Text("Jane Doe".into()), Value::Text("x".into())],
        ],
    );
    let message = database
        .write(
            &TableName::new("target"),
            &["id".into(), "label".into()],
            rows,
        )
        .await
        .expect_err("text into int")
        .to_string();
    assert!(
        message.contains("cannot write a text value into type int4"),
        "{message}"
    );
    assert!(!message.contains("Jane"), "{message}");
    assert_eq!(
        database
            .count_rows(&TableName::new("target"))
            .await
            .expect("count"),
        0
    );
}
