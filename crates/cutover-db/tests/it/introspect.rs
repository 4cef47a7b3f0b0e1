//! Introspection of a schema with composite keys, foreign keys, indexes,
//! views, functions, triggers and sequences, on both engines.

use cutover_db::schema::{ForeignKey, Key};
use cutover_db::{IntrospectOptions, LogicalType, TableName};

use crate::support::{connect, create_sqlite};

const LAB_SCHEMA: &str = "
CREATE TABLE senders (
    sender_id text PRIMARY KEY,
    name text NOT NULL UNIQUE
);
CREATE TABLE lab_results (
    sender_id text NOT NULL REFERENCES senders (sender_id) ON DELETE CASCADE,
    message_id text NOT NULL,
    observation_index integer NOT NULL,
    jurisdiction char(2) NOT NULL,
    value_numeric numeric(12,4),
    reported_at timestamp(3),
    PRIMARY KEY (sender_id, message_id, observation_index)
);
CREATE INDEX lab_results_by_jurisdiction ON lab_results (jurisdiction, reported_at);
CREATE TABLE corrections (
    id bigserial PRIMARY KEY,
    sender_id text NOT NULL,
    message_id text NOT NULL,
    observation_index integer NOT NULL,
    FOREIGN KEY (sender_id, message_id, observation_index)
        REFERENCES lab_results (sender_id, message_id, observation_index)
);
CREATE VIEW results_per_jurisdiction AS
    SELECT jurisdiction, count(*) AS results FROM lab_results GROUP BY jurisdiction;
";

#[tokio::test]
async fn postgres_schema_with_composite_and_foreign_keys() {
    let Some(postgres) = cutover_testing::postgres().await else {
        return;
    };
    cutover_testing::postgres_execute(
        &postgres.url,
        &format!(
            "{LAB_SCHEMA}
             CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
             CREATE TRIGGER corrections_touch BEFORE INSERT ON corrections FOR EACH ROW EXECUTE FUNCTION touch();
             CREATE TABLE odd (id int PRIMARY KEY, spot point);
             INSERT INTO senders VALUES ('LAB1', 'County lab');
             INSERT INTO lab_results VALUES ('LAB1', 'M1', 0, 'NY', 1.5, now());
             INSERT INTO corrections (sender_id, message_id, observation_index) VALUES ('LAB1', 'M1', 0), ('LAB1', 'M1', 0);
             ANALYZE;"
        ),
    )
    .await;
    let database = connect(&postgres.url).await;
    let schema = database
        .introspect(&IntrospectOptions { exact_counts: true })
        .await
        .expect("introspect");
    assert!(schema.server_version.starts_with("PostgreSQL "));
    let names: Vec<String> = schema
        .tables
        .iter()
        .map(|table| table.name.to_string())
        .collect();
    assert_eq!(
        names,
        [
            "public.corrections",
            "public.lab_results",
            "public.odd",
            "public.senders"
        ]
    );

    let results = schema
        .table(&TableName::new("lab_results"))
        .expect("lab_results");
    assert_eq!(
        results.primary_key.as_ref().map(|key| key.columns.clone()),
        Some(vec![
            "sender_id".to_owned(),
            "message_id".to_owned(),
            "observation_index".to_owned()
        ])
    );
    assert_eq!(results.row_count, Some(1));
    assert_eq!(results.row_estimate, Some(1));
    let jurisdiction = results.column("jurisdiction").expect("column");
    assert_eq!(jurisdiction.type_name, "character(2)");
    assert_eq!(jurisdiction.logical_type, Some(LogicalType::Text));
    assert!(!jurisdiction.nullable);
    assert_eq!(
        results.column("value_numeric").expect("column").type_name,
        "numeric(12,4)"
    );
    assert_eq!(
        results.foreign_keys,
        vec![ForeignKey {
            name: Some("lab_results_sender_id_fkey".into()),
            columns: vec!["sender_id".into()],
            referenced_table: TableName::qualified("public", "senders"),
            referenced_columns: vec!["sender_id".into()],
            on_delete: "cascade".into(),
        }]
    );
    let index = results
        .indexes
        .iter()
        .find(|index| index.name == "lab_results_by_jurisdiction")
        .expect("index");
    assert_eq!(index.columns, ["jurisdiction", "reported_at"]);
    assert!(!index.unique);

    let senders = schema.table(&TableName::new("senders")).expect("senders");
    assert_eq!(
        senders.unique_constraints,
        vec![Key {
            name: Some("senders_name_key".into()),
            columns: vec!["name".into()]
        }]
    );
    let corrections = schema
        .table(&TableName::new("corrections"))
        .expect("corrections");
    assert_eq!(corrections.foreign_keys[0].columns.len(), 3);
    assert_eq!(corrections.row_count, Some(2));

    let odd = schema.table(&TableName::new("odd")).expect("odd");
    assert_eq!(
        odd.column("spot").expect("column").logical_type,
        None,
        "point is not in the value model"
    );

    assert_eq!(schema.views.len(), 1);
    assert_eq!(
        schema.views[0].name.to_string(),
        "public.results_per_jurisdiction"
    );
    assert_eq!(schema.routines.len(), 1);
    assert_eq!(schema.routines[0].returns.as_deref(), Some("trigger"));
    assert_eq!(schema.triggers.len(), 1);
    assert_eq!(schema.triggers[0].function.as_deref(), Some("touch"));
    assert_eq!(schema.sequences.len(), 1);
    assert_eq!(schema.sequences[0].current_value, Some(2));
    assert_eq!(
        schema.sequences[0].owned_by.as_deref(),
        Some("public.corrections.id")
    );
}

#[tokio::test]
async fn sqlite_schema_with_composite_and_foreign_keys() {
    let (_directory, path) = cutover_testing::sqlite_path("lab.db");
    let sqlite_schema = LAB_SCHEMA
        .replace("bigserial PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT")
        .replace("timestamp(3)", "TIMESTAMP");
    let database = create_sqlite(
        &path,
        &format!(
            "{sqlite_schema}
             CREATE TRIGGER corrections_touch AFTER INSERT ON corrections BEGIN SELECT 1; END;
             INSERT INTO senders VALUES ('LAB1', 'County lab');
             INSERT INTO lab_results VALUES ('LAB1', 'M1', 0, 'NY', 1.5, '2024-01-01 00:00:00');
             INSERT INTO corrections (sender_id, message_id, observation_index) VALUES ('LAB1', 'M1', 0), ('LAB1', 'M1', 0);"
        ),
    )
    .await;
    let schema = database
        .introspect(&IntrospectOptions { exact_counts: true })
        .await
        .expect("introspect");
    assert!(schema.server_version.starts_with("SQLite "));
    let names: Vec<String> = schema
        .tables
        .iter()
        .map(|table| table.name.to_string())
        .collect();
    assert_eq!(names, ["corrections", "lab_results", "senders"]);
    let results = schema
        .table(&TableName::new("lab_results"))
        .expect("lab_results");
    assert_eq!(
        results.primary_key.as_ref().map(|key| key.columns.clone()),
        Some(vec![
            "sender_id".to_owned(),
            "message_id".to_owned(),
            "observation_index".to_owned()
        ])
    );
    assert_eq!(results.row_count, Some(1));
    assert_eq!(
        results
            .column("value_numeric")
            .expect("column")
            .logical_type,
        Some(LogicalType::Numeric)
    );
    assert_eq!(results.foreign_keys.len(), 1);
    assert_eq!(
        results.foreign_keys[0].referenced_table,
        TableName::new("senders")
    );
    assert_eq!(results.foreign_keys[0].on_delete, "cascade");
    assert!(
        results
            .indexes
            .iter()
            .any(|index| index.name == "lab_results_by_jurisdiction"
                && index.columns == ["jurisdiction", "reported_at"])
    );
    let corrections = schema
        .table(&TableName::new("corrections"))
        .expect("corrections");
    assert_eq!(
        corrections.foreign_keys[0].columns,
        ["sender_id", "message_id", "observation_index"]
    );
    let senders = schema.table(&TableName::new("senders")).expect("senders");
    assert_eq!(senders.unique_constraints.len(), 1);
    assert_eq!(schema.views.len(), 1);
    assert_eq!(schema.triggers.len(), 1);
    assert_eq!(schema.sequences.len(), 1);
    assert_eq!(schema.sequences[0].current_value, Some(2));
}
