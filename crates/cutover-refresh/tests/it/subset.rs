//! Subsetting on real schemas, on SQLite files: a multi-column reference to
//! a parent whose `where` removes rows removes (or nulls) its children, and a
//! cycle of references a `where` cuts into is refused unless one of its
//! references can be nulled.

use cutover_db::{Database, IntrospectOptions};
use cutover_refresh::Policy;

use crate::copy::open;

async fn scalar(database: &Database, sql: &str) -> String {
    let column = cutover_db::Column {
        name: "v".into(),
        type_name: "TEXT".into(),
        logical_type: Some(cutover_db::LogicalType::Text),
        nullable: true,
        default: None,
    };
    let mut rows = database
        .query(sql, vec![column], "scalar")
        .await
        .expect(sql);
    match rows.next().await.expect("a row").expect("row").first() {
        Some(cutover_db::Value::Text(text)) => text.clone(),
        other => format!("{other:?}"),
    }
}

const SCHEMA: &str = "
CREATE TABLE sites (site TEXT NOT NULL, code TEXT NOT NULL, region TEXT, PRIMARY KEY (site, code));
CREATE TABLE visits (id INTEGER PRIMARY KEY, site TEXT, code TEXT, FOREIGN KEY (site, code) REFERENCES sites (site, code));
CREATE TABLE wards (id INTEGER PRIMARY KEY, head_id INTEGER REFERENCES staff (id), closed INTEGER);
CREATE TABLE staff (id INTEGER PRIMARY KEY, ward_id INTEGER NOT NULL REFERENCES wards (id));
INSERT INTO sites VALUES ('north', 'A', 'north'), ('east', 'A', 'east'), ('east', 'B', 'east');
INSERT INTO visits VALUES (1, 'north', 'A'), (2, 'east', 'A'), (3, 'east', 'B'), (4, NULL, 'A');
INSERT INTO wards VALUES (1, NULL, 0), (2, NULL, 1);
INSERT INTO staff VALUES (10, 1), (20, 2);
UPDATE wards SET head_id = id * 10;
";

fn policy(visits: &str, wards: &str) -> Policy {
    Policy::parse(&format!(
        r#"
[tables.sites]
action = "copy"
where = "region = 'east'"
[tables.sites.columns]
site = "keep"
code = "keep"
region = "keep"
[tables.visits]
action = "copy"
{visits}
[tables.visits.columns]
id = "keep"
site = "keep"
code = "keep"
[tables.wards]
action = "copy"
where = "closed = 0"
{wards}
[tables.wards.columns]
id = "keep"
head_id = "keep"
closed = "keep"
[tables.staff]
action = "copy"
[tables.staff.columns]
id = "keep"
ward_id = "keep"
"#
    ))
    .expect("policy")
}

#[tokio::test]
async fn multi_column_references_follow_their_parent_and_cycles_need_a_nullable_break() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let production = open(&directory.path().join("production.db"), true).await;
    production.execute_batch(SCHEMA).await.expect("production");
    let schema = production
        .introspect(&IntrospectOptions::default())
        .await
        .expect("schema");

    // The wards ⇄ staff cycle, cut by wards' where, with no nulled reference: refused.
    let problems: Vec<String> = cutover_refresh::check(&policy("", ""), &schema, true)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        problems,
        [
            "tables staff, wards reference each other in a cycle and a where removes rows from it: the rows to keep cannot be followed around it; set on_removed_parent = \"null\" on one of them whose reference is nullable, or remove the where"
        ]
    );
    // wards.head_id is nullable: nulling it breaks the cycle.
    let broken = policy("", "on_removed_parent = \"null\"");
    assert_eq!(cutover_refresh::check(&broken, &schema, true), []);

    for (visits, expected_visits) in [
        ("", "2,3,4"),
        ("on_removed_parent = \"null\"", "1:-,2:east-A,3:east-B,4:-A"),
    ] {
        let target = directory
            .path()
            .join(format!("acceptance-{}.db", expected_visits.len()));
        let policy = policy(visits, "on_removed_parent = \"null\"");
        crate::copy::refresh_file(&production, &target, policy.clone())
            .await
            .expect("refresh");
        let acceptance = open(&target, false).await;
        let visits = if visits.is_empty() {
            scalar(
                &acceptance,
                "SELECT group_concat(id, ',') FROM (SELECT id FROM visits ORDER BY id)",
            )
            .await
        } else {
            scalar(
                &acceptance,
                "SELECT group_concat(id || ':' || coalesce(site, '') || '-' || coalesce(code, ''), ',') \
                 FROM (SELECT * FROM visits ORDER BY id)",
            )
            .await
        };
        assert_eq!(visits, expected_visits);
        // Ward 2 is closed, so staff 20 (whose ward is removed) goes too; ward 1 keeps its head.
        assert_eq!(
            scalar(
                &acceptance,
                "SELECT group_concat(id || '@' || ward_id, ',') FROM staff"
            )
            .await,
            "10@1"
        );
    }
}

/// A reference the schema does not declare, declared by the policy: the
/// rows of a removed parent go; a declaration that does not fit the schema
/// is refused by check, naming the table, the columns and why.
#[tokio::test]
async fn declared_references_are_followed_like_foreign_keys() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let production = open(&directory.path().join("production.db"), true).await;
    production
        .execute_batch(
            "CREATE TABLE patients (id INTEGER PRIMARY KEY, region TEXT); \
             CREATE TABLE results (id INTEGER PRIMARY KEY, patient_id INTEGER, value TEXT); \
             INSERT INTO patients VALUES (1, 'east'), (2, 'north'); \
             INSERT INTO results VALUES (10, 1, 'a'), (20, 2, 'b'), (30, NULL, 'c');",
        )
        .await
        .expect("production");
    let schema = production
        .introspect(&IntrospectOptions::default())
        .await
        .expect("schema");
    let policy = |references: &str| {
        Policy::parse(&format!(
            r#"
[tables.patients]
action = "copy"
where = "region = 'east'"
[tables.patients.columns]
id = "keep"
region = "keep"
[tables.results]
action = "copy"
[tables.results.references]
{references}
[tables.results.columns]
id = "keep"
patient_id = "keep"
value = "keep"
"#
        ))
        .expect("policy")
    };
    for (references, expected) in [("", "10,20,30"), ("patient_id = \"patients(id)\"", "10,30")] {
        let policy = policy(references);
        assert_eq!(cutover_refresh::check(&policy, &schema, true), []);
        let target = directory
            .path()
            .join(format!("acceptance-{}.db", references.len()));
        crate::copy::refresh_file(&production, &target, policy.clone())
            .await
            .expect("refresh");
        let acceptance = open(&target, false).await;
        assert_eq!(
            scalar(
                &acceptance,
                "SELECT group_concat(id, ',') FROM (SELECT id FROM results ORDER BY id)"
            )
            .await,
            expected
        );
    }
    for (references, problem) in [
        (
            "patient_id = \"patients\"",
            "`patients` is not of the form table(column, …)",
        ),
        (
            "patient = \"patients(id)\"",
            "the table has no column patient",
        ),
        (
            "patient_id = \"people(id)\"",
            "the source has no table people",
        ),
        (
            "patient_id = \"patients(key)\"",
            "table patients has no column key",
        ),
        (
            "patient_id = \"patients(id, region)\"",
            "1 columns reference 2 columns of patients",
        ),
    ] {
        let problems: Vec<String> = cutover_refresh::check(&policy(references), &schema, true)
            .iter()
            .map(ToString::to_string)
            .collect();
        let columns = references.split(' ').next().unwrap_or_default();
        assert_eq!(
            problems,
            [format!(
                "table results: the reference declared for {columns}: {problem}"
            )]
        );
    }
}
