//! `cutover run`, `approve`, `status` and `journal verify` end to end:
//! runbooks refused before anything runs, approvals required and recorded,
//! failing gates, a tampered journal, and resuming after SIGKILL.

use std::path::Path;

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

fn run_book(directory: &Path, book: &Path, extra: &[&str]) -> crate::Run {
    let journal = directory.join("journal.db").display().to_string();
    let book = book.display().to_string();
    let mut args = vec!["run", book.as_str(), "--journal", journal.as_str()];
    args.extend_from_slice(extra);
    crate::cutover(&args)
}

/// Every problem of a runbook is named with its file, line and column, and
/// nothing runs (exit 2).
#[test]
fn a_runbook_with_problems_is_refused_with_line_and_column() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let book = directory.path().join("book.toml");
    let marker = directory.path().join("ran");
    write(
        &book,
        &format!(
            r#"name = "book"
[vars]
token = {{ env = "CUTOVER_TEST_NO_SUCH_VARIABLE" }}
[[step]]
name = "first"
kind = "shell"
command = "touch {}"
[[step]]
name = "second"
kind = "teleport"
[[step]]
name = "first"
kind = "notify"
message = "${{nowhere}}"
after = ["third"]
[[step]]
name = "third"
kind = "checkpoint"
green = ["first.exit_code == 0"]
after = ["fourth"]
[[step]]
name = "fourth"
kind = "shell"
command = "true"
after = ["third"]
"#,
            marker.display()
        ),
    );
    let run = run_book(directory.path(), &book, &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let shown = book.display().to_string();
    for expected in [
        format!(
            "{shown}:3:9: the environment variable CUTOVER_TEST_NO_SUCH_VARIABLE (for token) is not set"
        ),
        format!("{shown}:10:8: teleport is not a step kind"),
        format!("{shown}:12:8: a second step named first"),
        format!("{shown}:14:11: ${{nowhere}} is not defined"),
        "the steps' after form a cycle: third → fourth → third".to_owned(),
    ] {
        assert!(run.stderr.contains(&expected), "{expected}\n{}", run.stderr);
    }
    assert!(!marker.exists(), "nothing runs");
    assert!(
        !directory.path().join("journal.db").exists(),
        "nothing is journaled"
    );
}

/// An approval step stops the run (exit 3) until every approver named has
/// approved; an approval by anyone else is refused; the approval is in the
/// journal and in the status.
#[test]
fn an_approval_is_required_and_recorded() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let book = directory.path().join("book.toml");
    let marker = directory.path().join("refreshed");
    write(
        &book,
        &format!(
            r#"name = "approved-change"
[[step]]
name = "permission"
kind = "approval"
approvers = ["data-owner", "change-manager"]
message = "Refresh acceptance from production"
[[step]]
name = "change"
kind = "shell"
command = "touch {}"
"#,
            marker.display()
        ),
    );
    let run = run_book(directory.path(), &book, &[]);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("waits at permission for data-owner, change-manager"),
        "{}",
        run.stdout
    );
    assert!(!marker.exists());
    let run_id = run
        .stdout
        .split_whitespace()
        .nth(1)
        .expect("run id")
        .to_owned();
    let journal = directory.path().join("journal.db").display().to_string();
    let approve = |who: &str| {
        crate::cutover(&[
            "approve",
            &run_id,
            "permission",
            "--as",
            who,
            "--note",
            "CHG-4411",
            "--journal",
            &journal,
        ])
    };
    let refused = approve("intruder");
    assert_eq!(refused.code, 2);
    assert!(
        refused
            .stderr
            .contains("intruder is not an approver of permission"),
        "{}",
        refused.stderr
    );
    assert_eq!(approve("data-owner").code, 0);
    let run = run_book(directory.path(), &book, &[]);
    assert_eq!(run.code, 3, "one approver is still missing: {}", run.stdout);
    assert!(run.stdout.contains("for change-manager"), "{}", run.stdout);
    assert_eq!(approve("change-manager").code, 0);
    let run = run_book(directory.path(), &book, &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(marker.exists());

    let status = crate::cutover(&["status", &run_id, "--journal", &journal, "--format", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).expect("json");
    assert_eq!(status[0]["status"], "finished");
    assert_eq!(status[0]["steps"][0]["state"], "passed");
    assert_eq!(status[0]["steps"][0]["summary"], "approved by 2");
    let connection =
        rusqlite::Connection::open(directory.path().join("journal.db")).expect("journal");
    let approvals: Vec<String> = connection
        .prepare("SELECT detail FROM records WHERE event = 'approved' ORDER BY seq")
        .expect("query")
        .query_map([], |row| row.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("approvals");
    assert_eq!(approvals.len(), 2);
    assert!(approvals[0].contains("\"by\":\"data-owner\"") && approvals[0].contains("CHG-4411"));
}

/// A gate that fails stops the run with exit 1 and its reason; later
/// steps do not run. A checkpoint that is red stops it too.
#[test]
fn a_failing_gate_stops_the_run_with_a_clear_reason() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let book = directory.path().join("book.toml");
    let marker = directory.path().join("after-gate");
    write(
        &book,
        &format!(
            r#"name = "gated"
[[step]]
name = "no-open-incidents"
kind = "check"
command = "exit 3"
[[step]]
name = "after-gate"
kind = "shell"
command = "touch {}"
"#,
            marker.display()
        ),
    );
    let run = run_book(directory.path(), &book, &[]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("stopped at no-open-incidents: the command exited with code 3"),
        "{}",
        run.stdout
    );
    assert!(!marker.exists());

    let red = directory.path().join("red.toml");
    write(
        &red,
        r#"name = "red"
[[step]]
name = "reconcile"
kind = "diff"
args = ["sqlite:examples/lab-results.db#lab_results", "sqlite:examples/lab-results-new.db#lab_results"]
[[step]]
name = "go-no-go"
kind = "checkpoint"
green = ["reconcile.difference_rate < 0.1%"]
"#,
    );
    let run = run_book(directory.path(), &red, &[]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("stopped at go-no-go: red: 0 of 1 green rules hold"),
        "{}",
        run.stdout
    );
}

/// Changing one record of the journal is detected, with its place.
#[test]
fn a_tampered_journal_is_detected() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let run = run_book(
        directory.path(),
        &crate::workspace_root().join("examples/runbook-a-parallel-run.toml"),
        &[],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let journal = directory.path().join("journal.db");
    let journal_arg = journal.display().to_string();
    let verify = crate::cutover(&["journal", "verify", "--journal", &journal_arg]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
    assert!(
        verify.stdout.contains("hash chain intact"),
        "{}",
        verify.stdout
    );
    let connection = rusqlite::Connection::open(&journal).expect("journal");
    connection
        .execute(
            "UPDATE records SET detail = replace(detail, 'differences', 'passed') WHERE event = 'step-finished' AND step = 'reconcile'",
            [],
        )
        .expect("tamper");
    let verify = crate::cutover(&["journal", "verify", "--journal", &journal_arg]);
    assert_eq!(verify.code, 1, "{}", verify.stdout);
    assert!(
        verify
            .stdout
            .contains("its content does not match its hash"),
        "{}",
        verify.stdout
    );
}

/// The run is killed with SIGKILL in the middle of a step. Running it again
/// resumes: the finished step is not repeated, the interrupted check (safe
/// to repeat) runs again, and the rest runs. An interrupted shell step is
/// not repeated blindly: the run stops and asks, and --skip goes on.
#[test]
fn a_run_killed_mid_step_resumes_at_the_first_unfinished_step() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let book = directory.path().join("book.toml");
    let count = directory.path().join("count");
    let go = directory.path().join("go");
    let done = directory.path().join("done");
    for (kind, name) in [("check", "checked"), ("shell", "shelled")] {
        let _ = std::fs::remove_file(&go);
        let _ = std::fs::remove_file(&done);
        write(
            &book,
            &format!(
                r#"name = "{name}"
[[step]]
name = "count"
kind = "shell"
command = "echo x >> {count}"
[[step]]
name = "wait-for-go"
kind = "{kind}"
command = "while [ ! -f {go} ]; do sleep 0.05; done"
[[step]]
name = "done"
kind = "shell"
command = "touch {done}"
"#,
                count = count.display(),
                go = go.display(),
                done = done.display()
            ),
        );
        let journal = directory.path().join("journal.db").display().to_string();
        let book_arg = book.display().to_string();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["run", &book_arg, "--journal", &journal])
            .env("CUTOVER_LOG", "off")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("cutover run");
        // Wait until the second step has started, then kill.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let started: i64 = rusqlite::Connection::open(directory.path().join("journal.db"))
                .and_then(|connection| {
                    connection.query_row(
                        "SELECT count(*) FROM records r JOIN runs ON runs.id = r.run
                         WHERE runs.runbook = ?1 AND r.step = 'wait-for-go' AND r.event = 'step-started'",
                        [name],
                        |row| row.get(0),
                    )
                })
                .unwrap_or(0);
            if started > 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the step never started"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
        write(&go, "");
        let run = run_book(directory.path(), &book, &[]);
        if kind == "check" {
            assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
        } else {
            assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
            assert!(
                run.stdout
                    .contains("may have happened; run again with --rerun wait-for-go"),
                "{}",
                run.stdout
            );
            assert!(!done.exists());
            let run = run_book(directory.path(), &book, &["--skip", "wait-for-go"]);
            assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
        }
        assert!(done.exists(), "{kind}: the last step ran");
    }
    // The first step ran once per runbook, never again on resume.
    assert_eq!(
        std::fs::read_to_string(&count)
            .expect("count")
            .lines()
            .count(),
        2
    );
}

/// Example A runs as shipped: the reconciliation finds the sample feeds'
/// differences and the checkpoint says yellow.
#[test]
fn example_a_runs_on_sqlite() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let run = run_book(
        directory.path(),
        &crate::workspace_root().join("examples/runbook-a-parallel-run.toml"),
        &[],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("last checkpoint yellow"),
        "{}",
        run.stdout
    );
}

/// A notification goes to a webhook as a JSON body; a wait-until step
/// waits; a finished run is not resumed: running again with --new starts
/// a new run that does every step again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_waits_and_reruns() {
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("address"));
    let store = received.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let store = store.clone();
            async move {
                store.lock().expect("lock").push(body);
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });

    let directory = tempfile::tempdir().expect("temporary directory");
    let book = directory.path().join("book.toml");
    let count = directory.path().join("count");
    write(
        &book,
        &format!(
            r#"name = "hooked"
[[step]]
name = "tell"
kind = "notify"
message = "refresh of ${{run.id}} starts"
to = ["{hook}"]
[[step]]
name = "pause"
kind = "wait-until"
until = "+1s"
[[step]]
name = "count"
kind = "shell"
command = "echo x >> {}"
"#,
            count.display()
        ),
    );
    let dir = directory.path().to_owned();
    let book_path = book.clone();
    let started = std::time::Instant::now();
    let run = tokio::task::spawn_blocking(move || run_book(&dir, &book_path, &[]))
        .await
        .expect("run");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "the wait was skipped"
    );
    {
        let bodies = received.lock().expect("lock");
        assert_eq!(bodies.len(), 1);
        assert_eq!(bodies[0]["runbook"], "hooked");
        assert_eq!(bodies[0]["step"], "tell");
        assert!(
            bodies[0]["message"]
                .as_str()
                .is_some_and(|text| text.starts_with("refresh of hooked-"))
        );
    }
    // The run finished: --new starts a new run, which does every step again.
    let dir = directory.path().to_owned();
    let book_path = book.clone();
    let run = tokio::task::spawn_blocking(move || run_book(&dir, &book_path, &["--new"]))
        .await
        .expect("run");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        std::fs::read_to_string(&count)
            .expect("count")
            .lines()
            .count(),
        2
    );
    assert_eq!(received.lock().expect("lock").len(), 2);
}
