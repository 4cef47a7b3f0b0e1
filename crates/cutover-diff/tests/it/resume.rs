//! `--state`: finished partitions are not redone, and a state file only resumes its own diff.

use cutover_diff::{DiffOptions, StrategyChoice};

use crate::support::{Place, diff, diff_error, findings};

async fn two_tables() -> Option<(Place, Place)> {
    let source = Place::postgres().await?;
    let target = Place::postgres().await?;
    for (place, changed) in [
        (&source, "'a'"),
        (&target, "CASE WHEN i % 100 = 0 THEN 'b' ELSE 'a' END"),
    ] {
        place
            .execute(&format!(
                "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT i, {changed} FROM generate_series(1, 2000) i; ANALYZE t"
            ))
            .await;
    }
    Some((source, target))
}

#[tokio::test]
async fn finished_partitions_are_not_redone() {
    let Some((source, target)) = two_tables().await else {
        return;
    };
    let directory = tempfile::tempdir().expect("temporary directory");
    let state = directory.path().join("diff.state");
    let options = DiffOptions {
        strategy: StrategyChoice::Server,
        jobs: 4,
        state: Some(state.clone()),
        ..DiffOptions::default()
    };
    let (first, _) = diff(&source.source("t"), &target.source("t"), &options).await;
    assert_eq!(first.summary.changed, 20);
    assert_eq!(first.partitions, 4);

    // Interrupted after all but one partition: forget the last one's result.
    let connection = rusqlite::Connection::open(&state).expect("state file");
    connection
        .execute("DELETE FROM partition_done WHERE partition = 3", [])
        .expect("forgetting a partition");
    drop(connection);
    // Change the target everywhere: only the redone partition can see it.
    target
        .execute("UPDATE t SET v = 'c' WHERE id % 100 = 50")
        .await;
    let (second, found) = diff(&source.source("t"), &target.source("t"), &options).await;
    let fresh = DiffOptions {
        state: None,
        ..options.clone()
    };
    let (truth, truth_found) = diff(&source.source("t"), &target.source("t"), &fresh).await;
    assert_eq!(truth.summary.changed, 40);
    assert!(
        second.summary.changed > 20 && second.summary.changed < 40,
        "{}",
        second.summary.changed
    );
    assert!(found.is_subset(&truth_found));
    assert_eq!(second.summary.source_rows, 2000);
}

#[tokio::test]
async fn a_state_file_only_resumes_its_own_diff() {
    let source = Place::sqlite("source.db");
    let target = Place::sqlite("target.db");
    for place in [&source, &target] {
        place
            .execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, w TEXT); INSERT INTO t VALUES (1, 'a', 'b')")
            .await;
    }
    let directory = tempfile::tempdir().expect("temporary directory");
    let options = DiffOptions {
        state: Some(directory.path().join("diff.state")),
        ..DiffOptions::default()
    };
    let (_, found) = diff(&source.source("t"), &target.source("t"), &options).await;
    assert_eq!(found, findings(&[]));
    let other = DiffOptions {
        exclude: vec!["w".into()],
        ..options
    };
    let error = diff_error(&source.source("t"), &target.source("t"), &other).await;
    assert!(error.contains("different diff"), "{error}");
}
