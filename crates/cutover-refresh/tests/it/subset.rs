//! Subsetting on real schemas, on SQLite files: a multi-column reference to
//! a parent whose `where` removes rows removes (or nulls) its children, and a
//! cycle of references a `where` cuts into is refused unless one of its
//! references can be nulled.

use std::sync::Arc;

use cutover_db::{Database, IntrospectOptions};
use cutover_refresh::{Masker, Policy};

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
        cutover_refresh::refresh_sqlite(
            &production,
            &target,
            &policy,
            Arc::new(Masker::new(b"secret")),
            Arc::new(cutover_db::NoProgress),
        )
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
