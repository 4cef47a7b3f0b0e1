use crate::{cutover, settings};

#[test]
fn inspect_the_bundled_sample() {
    let run = cutover(&["inspect", "sqlite:examples/lab-results.db"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    settings().bind(|| insta::assert_snapshot!(run.stdout));
}

#[test]
fn inspect_one_table_with_exact_counts_as_json() {
    let run = cutover(&[
        "inspect",
        "sqlite:examples/lab-results.db#senders",
        "--count",
        "--format",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("valid JSON");
    assert_eq!(json["engine"], "sqlite");
    assert_eq!(json["database"], "sqlite:examples/lab-results.db");
    assert_eq!(json["tables"].as_array().map(Vec::len), Some(1));
    assert_eq!(json["tables"][0]["row_count"], 12);
    assert_eq!(json["tables"][0]["primary_key"]["columns"][0], "sender_id");
}

#[test]
fn bad_input_is_one_clear_error_with_exit_code_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["inspect", "sqlite:examples/absent.db"], "missing_file"),
        (
            &["inspect", "sqlite:examples/lab-results.db#lab_result"],
            "unknown_table",
        ),
        (
            &["inspect", "mysql://root:hunter2@db/lab"],
            "unknown_scheme",
        ),
        (
            &[
                "inspect",
                "postgres://reader:hunter2@127.0.0.1:1/lab?connect_timeout=2",
            ],
            "unreachable",
        ),
        (
            &["inspect", "postgres://reader@db/lab?sslmode=sometimes"],
            "bad_sslmode",
        ),
    ];
    for (args, name) in cases {
        let run = cutover(args);
        assert_eq!(run.code, 2, "{name}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{name}: nothing on stdout");
        assert!(
            !run.stderr.contains("hunter2"),
            "{name}: password leaked: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{name}: {}", run.stderr);
        settings().bind(|| insta::assert_snapshot!(*name, run.stderr));
    }
    assert!(
        !crate::workspace_root().join("examples/absent.db").exists(),
        "never created on read"
    );
}

#[test]
fn help_teaches_the_url_forms() {
    let run = cutover(&["inspect", "--help"]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout
            .contains("postgres://user@host:port/dbname, sqlite:PATH or sc://host:port"),
        "{}",
        run.stdout
    );
    let run = cutover(&["--help"]);
    assert!(
        run.stdout
            .contains("Exit codes: 0 success, 1 differences found or verification failed, 2 error")
    );
}

#[test]
fn closed_stdout_is_not_an_error() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args([
            "inspect",
            "sqlite:examples/lab-results.db",
            "--format",
            "json",
        ])
        .current_dir(crate::workspace_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let status = child.wait().expect("wait");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read");
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[tokio::test]
async fn inspect_postgres() {
    let Some(postgres) = cutover_testing::postgres().await else {
        return;
    };
    cutover_testing::postgres_execute(
        &postgres.url,
        "CREATE TABLE programs (program text PRIMARY KEY, name text NOT NULL UNIQUE);
         CREATE TABLE lab_results (
             result_id bigserial PRIMARY KEY,
             program text NOT NULL REFERENCES programs ON DELETE RESTRICT,
             reported_at timestamp(3) NOT NULL DEFAULT now(),
             value_numeric numeric(12,4),
             spot point);
         CREATE INDEX lab_results_by_program ON lab_results (program, reported_at);
         CREATE VIEW per_program AS SELECT program, count(*) FROM lab_results GROUP BY program;
         INSERT INTO programs VALUES ('HIV', 'HIV surveillance');
         INSERT INTO lab_results (program) VALUES ('HIV'), ('HIV'), ('HIV');
         ANALYZE;",
    )
    .await;
    let run = cutover(&["inspect", &postgres.url, "--count"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    settings().bind(|| insta::assert_snapshot!(run.stdout));
}
