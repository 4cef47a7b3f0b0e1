//! Properties over random tables: diff(A, A) is empty, and applying
//! diff(A, B) to A gives B.

use std::collections::BTreeMap;

use cutover_diff::DiffOptions;
use proptest::prelude::*;

use crate::support::{Place, diff};

type Table = BTreeMap<i64, (Option<String>, Option<i64>)>;

fn table() -> impl Strategy<Value = Table> {
    prop::collection::btree_map(
        0i64..60,
        (prop::option::of("[a-c ]{0,3}"), prop::option::of(-3i64..3)),
        0..40,
    )
}

fn sql(table: &Table) -> String {
    let mut sql =
        String::from("CREATE TABLE t (id INTEGER PRIMARY KEY, label TEXT, score INTEGER);");
    for (id, (label, score)) in table {
        let label = label
            .as_ref()
            .map_or("NULL".to_owned(), |label| format!("'{label}'"));
        let score = score.map_or("NULL".to_owned(), |score| score.to_string());
        sql.push_str(&format!("INSERT INTO t VALUES ({id}, {label}, {score});"));
    }
    sql
}

fn apply(mut table: Table, delta: cutover_diff::delta::DeltaReader) -> Table {
    for record in delta {
        let record = record.expect("record");
        let key: serde_json::Value = serde_json::from_str(record.key.get()).expect("key");
        let id = key["id"].as_i64().expect("id");
        match record.kind.as_str() {
            "missing" => {
                table.remove(&id);
            }
            "extra" | "changed" => {
                let row: serde_json::Value =
                    serde_json::from_str(record.target.as_ref().expect("target row").get())
                        .expect("row");
                table.insert(
                    id,
                    (
                        row["label"].as_str().map(str::to_owned),
                        row["score"].as_i64(),
                    ),
                );
            }
            other => panic!("unexpected finding {other}"),
        }
    }
    table
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn diff_of_a_table_with_itself_is_empty_and_a_delta_turns_a_into_b(a in table(), b in table()) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let source = Place::sqlite("a.db");
            let target = Place::sqlite("b.db");
            source.execute(&sql(&a)).await;
            target.execute(&sql(&b)).await;
            let options = DiffOptions { keep_values: true, rows_per_bucket: 2, ..DiffOptions::default() };

            let (report, found) = diff(&source.source("t"), &source.source("t"), &options).await;
            assert!(found.is_empty());
            assert_eq!(report.summary.matched, a.len() as u64);

            let diff = cutover_diff::run(&source.source("t"), &target.source("t"),
                &cutover_db::ConnectOptions::default(), &options, &cutover_diff::NoProgress).await.expect("diff");
            let applied = apply(a.clone(), diff.delta().expect("delta"));
            assert_eq!(applied, b);
            assert_eq!(diff.report.has_differences(), a != b);
        });
    }
}
