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
/// last (or appended, its new columns merged, when given as `append:FILE`),
/// partitioned by `site`.
fn write_delta(python: &str, table: &Path, versions: &[&dyn AsRef<std::ffi::OsStr>]) {
    let script = crate::workspace_root().join("interop/delta-fixture.py");
    let mut command = std::process::Command::new(python);
    command
        .arg(script)
        .arg(table)
        .args(["--partition-by", "site"])
        .args(versions.iter().map(|version| version.as_ref()));
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
    assert_eq!(inspected["delta_version"], 1, "{inspected}");
    let run = crate::cutover_async(&["inspect", &format!("{table}@v0")]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("Delta table at version 0, Parquet"),
        "{}",
        run.stdout
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

/// Writes `rows` (id, site, code, result) to a Parquet file, the code
/// column left out when `with_code` is false.
fn write_rows(path: &Path, with_code: bool, rows: &[Vec<cutover_db::Value>]) {
    use cutover_db::LogicalType;
    let mut columns = vec![
        ("id".to_owned(), LogicalType::Integer),
        ("site".to_owned(), LogicalType::Text),
    ];
    if with_code {
        columns.push(("code".to_owned(), LogicalType::Text));
    }
    columns.push(("result".to_owned(), LogicalType::Text));
    let mut writer = cutover_files::ParquetWriter::create(path, &columns).expect("a Parquet file");
    for row in rows {
        let mut row = row.clone();
        if !with_code {
            row.remove(2);
        }
        writer.write(row).expect("a row");
    }
    writer.finish().expect("the footer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_the_table_gained_is_null_in_its_older_files() {
    let Some(python) = cutover_testing::lake_python() else {
        return;
    };
    let directory = tempfile::tempdir().expect("temporary directory");
    // Version 0 has no code column; version 1 appends a row with one.
    let old_rows = rows(false);
    let new_row = rows(true).pop().expect("row 91");
    let first = directory.path().join("first.parquet");
    write_rows(&first, false, &old_rows);
    let appended = directory.path().join("appended.parquet");
    write_rows(&appended, true, std::slice::from_ref(&new_row));
    let table = directory.path().join("grown");
    let append = format!("append:{}", appended.display());
    write_delta(&python, &table, &[&first, &append]);
    // What a Delta reader sees: code NULL in every row written before the column existed.
    let mut seen: Vec<Vec<cutover_db::Value>> = old_rows
        .iter()
        .map(|row| {
            let mut row = row.clone();
            row[2] = cutover_db::Value::Null;
            row
        })
        .collect();
    seen.push(new_row);
    let expected = directory.path().join("seen.parquet");
    write_rows(&expected, true, &seen);
    let table = table.display().to_string();
    let expected = expected.display().to_string();
    let run =
        crate::cutover_async(&["diff", &table, &expected, "--key", "id", "--format", "json"]).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect(&run.stdout);
    assert_eq!(report["summary"]["source_rows"], 91, "{report}");
    // Against the rows with their codes: every old row with a code differs in it.
    let with_codes = directory.path().join("with-codes.parquet");
    write_rows(&with_codes, true, &old_rows);
    let run = crate::cutover_async(&[
        "diff",
        &table,
        &with_codes.display().to_string(),
        "--key",
        "id",
        "--format",
        "json",
    ])
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect(&run.stdout);
    let coded = old_rows
        .iter()
        .filter(|row| row[2] != cutover_db::Value::Null)
        .count();
    assert_eq!(report["summary"]["changed"], coded, "{report}");
    assert_eq!(report["summary"]["extra"], 0, "{report}");
    assert_eq!(report["summary"]["missing"], 1, "{report}");
}
