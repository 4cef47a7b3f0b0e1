//! `cutover diff` on Delta Lake tables written by PyPI's deltalake
//! (`interop/delta-fixture.py`): a version against another, on disk and in
//! Azure Blob storage (Azurite), must find what the two versions' rows as
//! Parquet files give; a version that does not exist and a damaged log are
//! one line and exit 2.

use std::path::Path;

use crate::lake::{
    azure_container, azure_environment, findings, rows, unique, upload, write_parquet,
};

/// Writes `table` with one version per Parquet file, each overwriting the
/// last, partitioned by `site`.
fn write_delta(python: &str, table: &Path, versions: &[&Path]) {
    let script = crate::workspace_root().join("interop/delta-fixture.py");
    let mut command = std::process::Command::new(python);
    command
        .arg(script)
        .arg(table)
        .args(["--partition-by", "site"])
        .args(versions);
    let output = command.output().expect("running the Delta fixture writer");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_version_diffs_against_another_on_disk_and_in_azure() {
    let (Some(azure), Some(python)) = (
        cutover_testing::azure_endpoint(),
        cutover_testing::lake_python(),
    ) else {
        return;
    };
    let directory = tempfile::tempdir().expect("temporary directory");
    let before = directory.path().join("before.parquet");
    write_parquet(&before, true, &rows(false));
    let after = directory.path().join("after.parquet");
    write_parquet(&after, true, &rows(true));
    let table = directory.path().join("results");
    write_delta(&python, &table, &[&before, &after]);
    let table = table.display().to_string();

    let expected = findings(
        &before.display().to_string(),
        &after.display().to_string(),
        &[],
    )
    .await;
    assert_eq!(expected["changed"], 4, "{expected}");
    for (source, target) in [
        (format!("{table}@v0"), table.clone()),
        (format!("{table}@v0"), format!("{table}@v1")),
        (before.display().to_string(), table.clone()),
        (format!("{table}@V0"), format!("{table}@2999-01-01")),
    ] {
        let found = findings(&source, &target, &[]).await;
        assert_eq!(found, expected, "{source} vs {target}");
    }
    // The same version on both sides: nothing differs.
    let run = crate::cutover_async(&["diff", &format!("{table}@v1"), &table, "--key", "id"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);

    // The table in Azure Blob storage.
    let container = unique("delta");
    let store = azure_container(&azure, &container).await;
    upload(&store, Path::new(&table), "lake/results").await;
    let remote = format!("az://{container}/lake/results");
    let environment = azure_environment(&azure);
    let found = findings(&format!("{remote}@v0"), &remote, &environment).await;
    assert_eq!(found, expected, "{remote}");

    // inspect shows the snapshot's files and the partition column.
    let run = crate::cutover_async(&["inspect", &table, "--format", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let inspected: serde_json::Value = serde_json::from_str(&run.stdout).expect(&run.stdout);
    assert_eq!(
        inspected["partitions"],
        serde_json::json!(["site"]),
        "{inspected}"
    );
    assert_eq!(inspected["table"]["row_count"], 90, "{inspected}");

    // A version that does not exist; a timestamp before the table; a glob into it.
    for (target, expected) in [
        (
            format!("{table}@v9"),
            "version 9 of the table does not exist",
        ),
        (format!("{table}@2000-01-01"), "no version at 2000-01-01"),
        (format!("{table}/site=*/*.parquet"), "Delta table"),
    ] {
        let run = crate::cutover_async(&["diff", &table, &target, "--key", "id"]).await;
        assert_eq!(run.code, 2, "{target}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{target}: {}", run.stderr);
    }
    // A damaged log: the last commit is not JSON.
    let log = Path::new(&table).join("_delta_log");
    let last = std::fs::read_dir(&log)
        .expect("the log")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .max()
        .expect("a commit");
    std::fs::write(&last, "{ not json").expect("a damaged commit");
    let run = crate::cutover_async(&["diff", &format!("{table}@v0"), &table, "--key", "id"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("Delta log"), "{}", run.stderr);
}
