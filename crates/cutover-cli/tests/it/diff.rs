//! `cutover diff` end to end on SQLite copies of the bundled example.

use std::path::{Path, PathBuf};

use crate::{cutover, regex_escape, settings, workspace_root};

/// The example database and a changed copy: one value changed, one row
/// deleted, one row added, in a temporary directory.
fn pair() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let old = directory.path().join("old.db");
    let new = directory.path().join("new.db");
    let example = workspace_root().join("examples/lab-results.db");
    std::fs::copy(&example, &old).expect("copying the example");
    std::fs::copy(&example, &new).expect("copying the example");
    let connection = rusqlite::Connection::open(&new).expect("opening the copy");
    connection
        .execute_batch(
            "UPDATE lab_results SET value_numeric = 987654.3210 WHERE result_id = 'R0000010'; \
             DELETE FROM lab_results WHERE result_id = 'R0000020'; \
             INSERT INTO lab_results SELECT 'R9999999', sender_id, 'MSG-NEW', 0, jurisdiction, patient_key, loinc_code, \
                value_numeric, value_text, unit, interpretation, specimen_collected_at, reported_at, program, condition_code \
             FROM lab_results WHERE result_id = 'R0000030';",
        )
        .expect("changing the copy");
    (directory, old, new)
}

fn url(path: &Path) -> String {
    format!("sqlite:{}#lab_results", path.display())
}

fn with_paths(settings: &mut insta::Settings, directory: &Path) {
    settings.add_filter(&regex_escape(&directory.display().to_string()), "[dir]");
}

#[test]
fn text_report_names_columns_and_groups_without_values() {
    let (directory, old, new) = pair();
    let run = cutover(&["diff", &url(&old), &url(&new), "--group-by", "program"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        !run.stdout.contains("987654"),
        "a row value was printed without --show-values"
    );
    let mut settings = settings();
    with_paths(&mut settings, directory.path());
    settings.bind(|| insta::assert_snapshot!(run.stdout));
}

#[test]
fn show_values_prints_the_changed_values() {
    let (_directory, old, new) = pair();
    let run = cutover(&["diff", &url(&old), &url(&new), "--show-values"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.contains("987654.321"), "{}", run.stdout);
}

#[test]
fn json_summary_uses_the_category_names() {
    let (_directory, old, new) = pair();
    let run = cutover(&["diff", &url(&old), &url(&new), "--format", "json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON on stdout");
    let summary = &report["summary"];
    assert_eq!(summary["missing"], 1);
    assert_eq!(summary["extra"], 1);
    assert_eq!(summary["changed"], 1);
    assert_eq!(summary["duplicate_keys"], 0);
    assert_eq!(summary["matched"], 1998);
    assert_eq!(report["columns"][0]["column"], "value_numeric");
    assert_eq!(report["strategy"], "client");
}

#[test]
fn identical_tables_exit_zero() {
    let (_directory, old, _) = pair();
    let run = cutover(&["diff", &url(&old), &url(&old)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.ends_with("no differences\n"), "{}", run.stdout);
}

#[test]
fn delta_files_and_tables() {
    let (directory, old, new) = pair();
    let jsonl = directory.path().join("delta.jsonl");
    let csv = directory.path().join("delta.csv");
    let into = format!(
        "sqlite:{}#delta",
        directory.path().join("findings.db").display()
    );
    for output in [&jsonl, &csv] {
        let run = cutover(&[
            "diff",
            &url(&old),
            &url(&new),
            "--output",
            &output.display().to_string(),
        ]);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(run.stdout.contains("3 records written"), "{}", run.stdout);
    }
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
        .expect("delta file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let changed = lines
        .iter()
        .find(|line| line["kind"] == "changed")
        .expect("a changed record");
    assert_eq!(changed["columns"], serde_json::json!(["value_numeric"]));
    assert_eq!(changed["target"]["value_numeric"], "987654.321");
    let csv_text = std::fs::read_to_string(&csv).expect("csv file");
    assert!(
        csv_text.starts_with("kind,side,key,columns,count,source,target\n"),
        "{csv_text}"
    );
    assert_eq!(csv_text.lines().count(), 4);

    let run = cutover(&["diff", &url(&old), &url(&new), "--into", &into]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let connection =
        rusqlite::Connection::open(directory.path().join("findings.db")).expect("findings");
    let kinds: Vec<String> = connection
        .prepare("SELECT kind FROM delta ORDER BY kind")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get(0))
                .and_then(|rows| rows.collect())
        })
        .expect("reading the delta table");
    assert_eq!(kinds, ["changed", "extra", "missing"]);
}

#[test]
fn bad_input_is_explained() {
    let (directory, old, new) = pair();
    let mut settings = settings();
    with_paths(&mut settings, directory.path());
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "unknown_table",
            vec![format!("sqlite:{}#lab_result", old.display()), url(&new)],
        ),
        (
            "unknown_key_column",
            vec![url(&old), url(&new), "--key".into(), "result".into()],
        ),
        (
            "no_table",
            vec![format!("sqlite:{}", old.display()), url(&new)],
        ),
        (
            "bad_map",
            vec![url(&old), url(&new), "--map".into(), "program".into()],
        ),
        (
            "bad_group",
            vec![
                url(&old),
                url(&new),
                "--group-by".into(),
                "reported_at:week".into(),
            ],
        ),
        (
            "bad_output",
            vec![url(&old), url(&new), "--output".into(), "delta.xlsx".into()],
        ),
        (
            "server_on_sqlite",
            vec![url(&old), url(&new), "--strategy".into(), "server".into()],
        ),
    ];
    for (name, args) in cases {
        let mut all = vec!["diff".to_owned()];
        all.extend(args);
        let arguments: Vec<&str> = all.iter().map(String::as_str).collect();
        let run = cutover(&arguments);
        assert_eq!(run.code, 2, "{name}: {}", run.stderr);
        settings.bind(|| insta::assert_snapshot!(name, run.stderr));
    }
}

#[test]
fn a_csv_file_against_a_table_with_a_parquet_delta() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let csv = directory.path().join("export.csv");
    std::fs::write(
        &csv,
        "id,amount,seen_at\n1,1.50,2024-03-01 12:00:00\n2,2,2024-03-01 12:00:00\n3,3,\n",
    )
    .expect("csv");
    let database = directory.path().join("new.db");
    let connection = rusqlite::Connection::open(&database).expect("sqlite");
    connection
        .execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, amount NUMERIC, seen_at TIMESTAMP); \
             INSERT INTO t VALUES (1, 1.5, '2024-03-01 12:00:00'), (2, 2, '2024-03-01 12:00:00.001'), (4, 4, NULL);",
        )
        .expect("fixture");
    let delta = directory.path().join("delta.parquet");
    let run = cutover(&[
        "diff",
        &csv.display().to_string(),
        &format!("sqlite:{}#t", database.display()),
        "--key",
        "id",
        "--output",
        &delta.display().to_string(),
        "--format",
        "json",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(report["summary"]["matched"], 1);
    assert_eq!(report["summary"]["changed"], 1);
    assert_eq!(report["summary"]["missing"], 1);
    assert_eq!(report["summary"]["extra"], 1);
    assert_eq!(report["columns"][0]["column"], "seen_at");
    assert_eq!(report["output"]["records"], 3);
    let bytes = std::fs::read(&delta).expect("delta file");
    assert_eq!(&bytes[..4], b"PAR1");
}
