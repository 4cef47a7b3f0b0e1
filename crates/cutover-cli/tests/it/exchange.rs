//! `cutover send`, `verify` and `ledger reconcile` against a stand-in for
//! the data-exchange upload service (interop/dex-standin.js, written from
//! its contract): sign-in that outlives a token, verification that waits
//! for asynchronous deliveries and replays only what the service does not
//! hold, manifests checked before sending, and the ledger reconciled with
//! the service's status API.

use std::path::{Path, PathBuf};

pub const PASSWORD: &str = "sender-password-not-for-logs";

/// A running stand-in, stopped when dropped.
pub struct Standin {
    child: std::process::Child,
    pub url: String,
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Standin {
    /// Starts the stand-in storing under `directory`, with `knobs`; `None`
    /// when the npm peers are not installed (outside CI).
    pub fn start(directory: &Path, knobs: &[&str]) -> Option<Standin> {
        let interop = crate::interop_with("graphql")?;
        let (child, url) = crate::spawn_announcing(
            std::process::Command::new("node")
                .arg(interop.join("dex-standin.js"))
                .arg(directory.join("service"))
                .args(["--user", &format!("sender:{PASSWORD}")])
                .args(knobs),
            1,
        );
        Some(Standin { child, url })
    }

    /// What the stand-in saw: counters and every upload it heard of.
    async fn state(&self) -> serde_json::Value {
        reqwest::get(format!("{}/_standin/state", self.url))
            .await
            .expect("state")
            .json()
            .await
            .expect("state json")
    }

    /// The arguments that sign in and name the service for send and verify.
    fn sign_in(&self) -> Vec<String> {
        [
            "--login",
            &format!("{}/oauth", self.url),
            "--username",
            "sender",
            "--password-env",
            "DEX_TEST_PASSWORD",
            "--check",
            &format!("data-exchange={}/upload/info/{{upload_id}}", self.url),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// `cutover send` of `outbox` with a complete manifest and `extra` arguments.
    async fn send(&self, outbox: &Path, ledger: &Path, extra: &[&str]) -> crate::Run {
        let mut args = vec![
            "send".to_owned(),
            outbox.display().to_string(),
            "--to".to_owned(),
            format!("{}/upload/files", self.url),
            "--ledger".to_owned(),
            ledger.display().to_string(),
        ];
        args.extend(self.sign_in());
        for pair in [
            "data_stream_id=celr",
            "data_stream_route=csv",
            "sender_id=lab-7",
            "data_producer_id=lab-7",
            "jurisdiction=WA",
        ] {
            args.extend(["--meta".to_owned(), pair.to_owned()]);
        }
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::cutover_async_with_env(&args, &[("DEX_TEST_PASSWORD", PASSWORD)]).await
    }
}

/// Small CSV files named `files` under `directory/name`.
fn outbox(directory: &Path, name: &str, files: &[impl AsRef<str>]) -> PathBuf {
    let outbox = directory.join(name);
    std::fs::create_dir_all(&outbox).expect("outbox");
    for (number, file) in files.iter().enumerate() {
        let file = file.as_ref();
        let rows: String = (0..200 + number * 17)
            .map(|row| format!("{row},{file},positive\n"))
            .collect();
        std::fs::write(outbox.join(file), format!("message_id,file,result\n{rows}")).expect("file");
    }
    outbox
}

fn names(count: usize) -> Vec<String> {
    (0..count)
        .map(|number| format!("results-{number:02}.csv"))
        .collect()
}

/// Each ledger file name with its state and how often it was replayed.
pub fn ledger_states(ledger: &Path) -> Vec<(String, String, i64)> {
    crate::deliver::ledger_files(ledger)
        .into_iter()
        .map(|(path, state, _, replays)| {
            let name = path.rsplit('/').next().unwrap_or_default().to_owned();
            (name, state, replays)
        })
        .collect()
}

/// Uploads the service holds (not lost) per file name.
fn held_per_name(state: &serde_json::Value) -> std::collections::BTreeMap<String, usize> {
    let mut held = std::collections::BTreeMap::new();
    for upload in state["uploads"].as_array().expect("uploads") {
        if upload["lost"] == false && upload["status"] == "UploadComplete" {
            *held
                .entry(upload["filename"].as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
    }
    held
}

/// A token that lives 2 seconds, during a send and a verification that
/// take longer; every delivery first fails, then succeeds on retry, a
/// second or two after completion: nothing fails, nothing is replayed, no
/// file is uploaded twice, and the password is never printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_token_and_late_retried_deliveries_need_no_replay() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let Some(service) = Standin::start(
        directory.path(),
        &[
            "--token-lifetime",
            "2",
            "--retry-percent",
            "100",
            "--lose-percent",
            "0",
            "--delivery-delay",
            "1200",
        ],
    ) else {
        return;
    };
    let outbox = outbox(directory.path(), "outbox", &names(10));
    let ledger = directory.path().join("ledger.db");
    let run = service
        .send(
            &outbox,
            &ledger,
            &["--jobs", "2", "--chunk-size", "2048", "--settle", "30s"],
        )
        .await;
    let state = service.state().await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for output in [&run.stdout, &run.stderr] {
        assert!(!output.contains(PASSWORD), "the password was printed");
    }
    let ledger_bytes = std::fs::read(&ledger).expect("ledger");
    assert!(
        !String::from_utf8_lossy(&ledger_bytes).contains(PASSWORD),
        "the password is in the ledger"
    );
    let states = ledger_states(&ledger);
    assert!(
        states
            .iter()
            .all(|(_, state, replays)| state == "verified" && *replays == 0),
        "{states:?}\n{}",
        run.stdout
    );
    let counters = &state["counters"];
    assert!(
        counters["refreshes"].as_u64().unwrap_or(0) >= 1,
        "the token was never refreshed: {counters}"
    );
    assert_eq!(counters["created"], 10, "{counters}");
    assert!(held_per_name(&state).values().all(|copies| *copies == 1));
    // Each delivery's log shows FAILURE then SUCCESS: judged by the newest.
    assert!(
        state["uploads"]
            .as_array()
            .expect("uploads")
            .iter()
            .all(|upload| upload["deliveries"] == 2 && upload["delivered"] == true),
        "{state}"
    );
}

/// The service refuses every refresh: the sender signs in again instead,
/// and the delivery completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_is_answered_by_a_new_sign_in() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let Some(service) = Standin::start(
        directory.path(),
        &[
            "--token-lifetime",
            "1",
            "--refuse-refresh",
            "--lose-percent",
            "0",
            "--delivery-delay",
            "800",
        ],
    ) else {
        return;
    };
    let outbox = outbox(directory.path(), "outbox", &names(4));
    let ledger = directory.path().join("ledger.db");
    let run = service
        .send(&outbox, &ledger, &["--jobs", "1", "--settle", "30s"])
        .await;
    let state = service.state().await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let counters = &state["counters"];
    assert!(
        counters["refusedRefreshes"].as_u64().unwrap_or(0) >= 1,
        "{counters}"
    );
    assert!(counters["logins"].as_u64().unwrap_or(0) >= 2, "{counters}");
    assert!(run.stdout.contains(": 4 verified"), "{}", run.stdout);
}

/// Files lost right after their 204 are replayed exactly once each, with
/// replay_of naming the lost upload, and then verified; the others are
/// never sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_lost_after_its_204_is_replayed_exactly_once() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let Some(service) = Standin::start(
        directory.path(),
        &[
            "--lose-percent",
            "0",
            "--lose-matching",
            "lost",
            "--delivery-delay",
            "300",
        ],
    ) else {
        return;
    };
    let outbox = outbox(
        directory.path(),
        "outbox",
        &["a-lost.csv", "b-kept.csv", "c-lost.csv", "d-kept.csv"],
    );
    let ledger = directory.path().join("ledger.db");
    let run = service.send(&outbox, &ledger, &["--settle", "20s"]).await;
    let state = service.state().await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let states = ledger_states(&ledger);
    let expected: Vec<(String, String, i64)> = [
        ("a-lost.csv", 1),
        ("b-kept.csv", 0),
        ("c-lost.csv", 1),
        ("d-kept.csv", 0),
    ]
    .map(|(name, replays)| (name.to_owned(), "verified".to_owned(), replays))
    .to_vec();
    assert_eq!(states, expected, "{}", run.stdout);
    let uploads = state["uploads"].as_array().expect("uploads");
    let lost: Vec<&str> = uploads
        .iter()
        .filter(|upload| upload["lost"] == true)
        .filter_map(|upload| upload["id"].as_str())
        .collect();
    let mut replayed: Vec<&str> = uploads
        .iter()
        .filter_map(|upload| upload["replay_of"].as_str())
        .collect();
    replayed.sort_unstable();
    let mut lost_sorted = lost.clone();
    lost_sorted.sort_unstable();
    assert_eq!(replayed, lost_sorted, "each lost upload replayed once");
    assert_eq!(uploads.len(), 6);
    assert!(held_per_name(&state).values().all(|copies| *copies == 1));
}

/// A file the service holds but never delivers is undelivered at the
/// receiver after the settling time: exit 1, never replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_never_delivered_is_undelivered_and_not_replayed() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let Some(service) = Standin::start(
        directory.path(),
        &[
            "--lose-percent",
            "0",
            "--never-matching",
            "stuck-at-target",
            "--delivery-delay",
            "200",
        ],
    ) else {
        return;
    };
    let outbox = outbox(
        directory.path(),
        "outbox",
        &["a-stuck-at-target.csv", "b-fine.csv"],
    );
    let ledger = directory.path().join("ledger.db");
    let run = service
        .send(&outbox, &ledger, &["--settle", "3s", "--format", "json"])
        .await;
    let state = service.state().await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let undelivered = &report["verification"][0]["undelivered"];
    assert_eq!(undelivered.as_array().map(Vec::len), Some(1), "{report}");
    assert!(
        undelivered[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("the newest delivery to edav is FAILURE"),
        "{report}"
    );
    assert_eq!(
        ledger_states(&ledger),
        [
            (
                "a-stuck-at-target.csv".to_owned(),
                "undelivered".to_owned(),
                0
            ),
            ("b-fine.csv".to_owned(), "verified".to_owned(), 0)
        ]
    );
    assert_eq!(state["counters"]["created"], 2, "nothing replayed");
    // A rerun sends nothing again: the service holds the undelivered file.
    let rerun = service.send(&outbox, &ledger, &["--settle", "1s"]).await;
    assert_eq!(rerun.code, 1, "{}{}", rerun.stdout, rerun.stderr);
    assert!(
        rerun
            .stdout
            .contains("a-stuck-at-target.csv: already sent (the receiver holds it, undelivered)"),
        "{}",
        rerun.stdout
    );
    assert_eq!(service.state().await["counters"]["created"], 2);
    let shown = crate::cutover(&["ledger", "--ledger", &ledger.display().to_string()]);
    assert_eq!(shown.code, 1);
    assert!(shown.stdout.contains("undelivered"), "{}", shown.stdout);
}

/// Manifests: a file lacking a required key stops the send before anything
/// is recorded or uploaded (exit 2, each file and key listed); a manifest
/// the service itself refuses (400 with validation_errors) fails that file
/// with the service's reasons, once, without retries or replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_manifests_are_listed_and_never_retried() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let Some(service) = Standin::start(
        directory.path(),
        &["--require", "meta_ext_event", "--lose-percent", "0"],
    ) else {
        return;
    };
    let outbox = outbox(directory.path(), "outbox", &["a.csv", "b.csv"]);
    std::fs::write(
        outbox.join("b.csv.meta.json"),
        r#"{"received_filename": "lab/b.csv"}"#,
    )
    .expect("sidecar");
    let ledger = directory.path().join("ledger.db");
    let mut args = vec![
        "send".to_owned(),
        outbox.display().to_string(),
        "--to".to_owned(),
        format!("{}/upload/files", service.url),
        "--ledger".to_owned(),
        ledger.display().to_string(),
        "--meta".to_owned(),
        "data_stream_id=celr".to_owned(),
    ];
    args.extend(service.sign_in());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = crate::cutover_async_with_env(&args, &[("DEX_TEST_PASSWORD", PASSWORD)]).await;
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("2 of 2 files lack manifest keys"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("no data_stream_route, no sender_id"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("received_filename contains /"),
        "{}",
        run.stderr
    );
    assert!(!ledger.exists(), "nothing recorded");
    assert_eq!(service.state().await["counters"]["created"], 0);

    std::fs::remove_file(outbox.join("b.csv.meta.json")).expect("sidecar");
    let run = service.send(&outbox, &ledger, &["--settle", "5s"]).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("the receiver refused the manifest: missing required field meta_ext_event"),
        "{}",
        run.stdout
    );
    assert_eq!(service.state().await["counters"]["refusedManifests"], 2);
    assert!(
        ledger_states(&ledger)
            .iter()
            .all(|(_, state, replays)| state == "failed" && *replays == 0)
    );
}

/// Bad sign-in input: a wrong password, a missing password variable, a
/// login URL that is not a token endpoint, and an info endpoint that
/// refuses even a renewed token: each one clear error, exit 2, nothing
/// replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_failures_are_one_clear_error() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let Some(service) = Standin::start(directory.path(), &["--deny-info", "--lose-percent", "0"])
    else {
        return;
    };
    let outbox = outbox(directory.path(), "outbox", &["a.csv"]);
    let ledger = directory.path().join("ledger.db");
    let ledger_arg = ledger.display().to_string();
    let login = format!("{}/oauth", service.url);
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 3] = [
        (
            &["--login", &login],
            &[("DEX_TEST_PASSWORD", "not-the-password")],
            "sign-in refused: invalid_grant",
        ),
        (&["--login", &login], &[], "DEX_TEST_PASSWORD is not set"),
        (
            &["--login", &format!("{}/nothing-here", service.url)],
            &[("DEX_TEST_PASSWORD", PASSWORD)],
            "the login URL is not a token endpoint",
        ),
    ];
    for (login_args, environment, message) in cases {
        let mut args = vec!["verify", "--ledger", &ledger_arg, "--check", "tus"];
        args.extend_from_slice(login_args);
        args.extend_from_slice(&[
            "--username",
            "sender",
            "--password-env",
            "DEX_TEST_PASSWORD",
        ]);
        std::fs::write(&ledger, b"").expect("an empty ledger");
        let run = crate::cutover_async_with_env(&args, environment).await;
        assert_eq!(run.code, 2, "{message}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{message}: {}", run.stderr);
        assert!(!run.stderr.contains("not-the-password"), "{}", run.stderr);
        assert_eq!(
            run.stderr
                .lines()
                .filter(|line| !line.starts_with("hint:"))
                .count(),
            1,
            "{}",
            run.stderr
        );
    }
    std::fs::remove_file(&ledger).expect("remove");

    let run = service.send(&outbox, &ledger, &["--settle", "5s"]).await;
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("the receiver refused the renewed token"),
        "{}",
        run.stderr
    );
    let state = service.state().await;
    assert_eq!(state["counters"]["created"], 1, "nothing replayed");
    assert_eq!(
        ledger_states(&ledger),
        [("a.csv".to_owned(), "acknowledged".to_owned(), 0)]
    );
}

/// What I sent against what they hold: strangers, a duplicate file name,
/// an undelivered upload and a replayed lost one, per day; exit 1. A status
/// service that is down is exit 2 and concludes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_lists_strangers_duplicates_and_undelivered_uploads() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let Some(service) = Standin::start(
        directory.path(),
        &[
            "--strangers",
            "2",
            "--lose-percent",
            "0",
            "--lose-matching",
            "lost",
            "--never-matching",
            "never",
            "--retry-percent",
            "0",
            "--delivery-delay",
            "200",
        ],
    ) else {
        return;
    };
    let first = outbox(
        directory.path(),
        "first",
        &["a.csv", "b-lost.csv", "c-never.csv"],
    );
    let second = outbox(directory.path(), "second", &["a.csv"]);
    let ledger = directory.path().join("ledger.db");
    for outbox in [&first, &second] {
        let run = service.send(outbox, &ledger, &["--settle", "2s"]).await;
        assert!(run.code <= 1, "{}{}", run.stdout, run.stderr);
    }
    let ledger_arg = ledger.display().to_string();
    let graphql = format!("{}/graphql", service.url);
    let login = format!("{}/oauth", service.url);
    let reconcile = |extra: Vec<String>| {
        let mut args: Vec<String> = [
            "ledger",
            "reconcile",
            "--ledger",
            &ledger_arg,
            "--data-stream",
            "celr",
            "--route",
            "csv",
            "--login",
            &login,
            "--username",
            "sender",
            "--password-env",
            "DEX_TEST_PASSWORD",
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(extra);
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            crate::cutover_async_with_env(&args, &[("DEX_TEST_PASSWORD", PASSWORD)]).await
        }
    };
    let run = reconcile(vec![
        "--status-graphql".into(),
        graphql.clone(),
        "--format".into(),
        "json".into(),
    ])
    .await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let today = chrono_today();
    let day = &report["days"][&today];
    let names = |list: &str, field: &str| -> Vec<String> {
        let mut names: Vec<String> = day[list]
            .as_array()
            .expect(list)
            .iter()
            .map(|item| item[field].as_str().unwrap_or_default().to_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names("strangers", "file_name"),
        ["stranger-1.csv", "stranger-2.csv"],
        "{report}"
    );
    assert_eq!(names("duplicates", "file_name"), ["a.csv"], "{report}");
    assert_eq!(
        names("undelivered", "file_name"),
        ["c-never.csv"],
        "{report}"
    );
    assert_eq!(
        day["replaced"], 1,
        "the lost upload, explained by its replay: {report}"
    );
    assert_eq!(
        day["not_listed"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );
    assert_eq!(report["discrepancies"], 4, "{report}");

    let text = reconcile(vec!["--status-graphql".into(), graphql]).await;
    assert_eq!(text.code, 1);
    assert!(
        text.stdout.contains("duplicate a.csv in 2 uploads"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("4 discrepancies"), "{}", text.stdout);

    let down = reconcile(vec![
        "--status-graphql".into(),
        "http://127.0.0.1:9/graphql".into(),
    ])
    .await;
    assert_eq!(down.code, 2, "{}", down.stderr);
    assert!(
        down.stderr.contains("the status service is unreachable"),
        "{}",
        down.stderr
    );
}

fn chrono_today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

/// OAuth 2.0 client credentials (--client-id, --client-secret-env) sign in
/// as well; a wrong secret is exit 2 and never printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_sign_in() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let Some(service) = Standin::start(
        directory.path(),
        &["--client", "lab-7-sender:client-secret-not-for-logs"],
    ) else {
        return;
    };
    let ledger = directory.path().join("ledger.db");
    // An empty ledger: the service lists nothing either.
    drop(rusqlite::Connection::open(&ledger).expect("ledger"));
    let ledger_arg = ledger.display().to_string();
    let graphql = format!("{}/graphql", service.url);
    let login = format!("{}/oauth", service.url);
    let args = [
        "ledger",
        "reconcile",
        "--ledger",
        &ledger_arg,
        "--status-graphql",
        &graphql,
        "--data-stream",
        "celr",
        "--route",
        "csv",
        "--login",
        &login,
        "--client-id",
        "lab-7-sender",
        "--client-secret-env",
        "DEX_TEST_SECRET",
    ];
    let run =
        crate::cutover_async_with_env(&args, &[("DEX_TEST_SECRET", "client-secret-not-for-logs")])
            .await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("no discrepancies"), "{}", run.stdout);
    let run = crate::cutover_async_with_env(&args, &[("DEX_TEST_SECRET", "wrong-secret")]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("sign-in refused"), "{}", run.stderr);
    assert!(!run.stderr.contains("wrong-secret"), "{}", run.stderr);
    assert_eq!(service.state().await["counters"]["logins"], 1);
}
