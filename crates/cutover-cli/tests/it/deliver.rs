//! `cutover send` and `cutover verify` against receivers that lie, restart
//! or refuse: every lost file is found and replayed, nothing is stored twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use crate::receive::{start_receiver, start_receiver_with};

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `count` files of distinct content under `directory/outbox`.
fn outbox(directory: &Path, count: usize) -> PathBuf {
    let outbox = directory.join("outbox");
    std::fs::create_dir(&outbox).expect("outbox");
    for number in 0..count {
        let data: Vec<u8> = (0..5_000 + number * 37)
            .map(|n| ((n * 31 + number) % 251) as u8)
            .collect();
        std::fs::write(outbox.join(format!("report-{number:03}.xml")), data).expect("file");
    }
    outbox
}

/// The receiver's stored files: SHA-256 → how many copies.
fn stored(inbox: &Path) -> HashMap<String, usize> {
    let mut copies = HashMap::new();
    for entry in std::fs::read_dir(inbox.join("complete")).expect("complete") {
        let data = std::fs::read(entry.expect("entry").path()).expect("stored file");
        *copies.entry(hex(&sha2::Sha256::digest(&data))).or_default() += 1;
    }
    copies
}

/// Each ledger file with its state, SHA-256 and replays.
pub fn ledger_files(ledger: &Path) -> Vec<(String, String, String, i64)> {
    let connection = rusqlite::Connection::open(ledger).expect("ledger");
    let mut statement = connection
        .prepare(
            "SELECT path, state, sha256,
               (SELECT count(*) FROM transitions t WHERE t.path = f.path AND t.state = 'replayed')
             FROM files f ORDER BY path",
        )
        .expect("query");
    statement
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("files")
}

/// A receiver that acknowledges and then loses 40% of uploads: the sender
/// finds every lost file, replays each as a new upload carrying replay_of,
/// and ends with every file either verified (and stored exactly once) or
/// flagged failed after its replays; none is reported delivered wrongly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_a_lying_receiver_loses_is_found_and_replayed() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let inbox = directory.path().join("inbox");
    let (mut receiver, files) =
        start_receiver_with(&inbox, "127.0.0.1:0", &["--fault-lose-percent", "40"]);
    let outbox = outbox(directory.path(), 30);
    let ledger = directory.path().join("ledger.db");
    let (outbox_arg, ledger_arg) = (outbox.display().to_string(), ledger.display().to_string());
    let run = crate::cutover_async(&[
        "send",
        &outbox_arg,
        "--to",
        &files,
        "--ledger",
        &ledger_arg,
        "--max-replays",
        "2",
        "--format",
        "json",
    ])
    .await;
    receiver.kill().expect("stop");
    receiver.wait().expect("wait");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect(&run.stderr);
    let first = &report["verification"][0];
    let lost_first = first["missing"].as_array().expect("missing").len();
    assert!(lost_first > 0, "40% lost, yet none missing: {}", run.stdout);

    let copies = stored(&inbox);
    let mut replayed = 0;
    let mut failed = 0;
    for (path, state, sha256, replays) in ledger_files(&ledger) {
        replayed += replays;
        match state.as_str() {
            "verified" => assert_eq!(
                copies.get(&sha256),
                Some(&1),
                "{path} verified but not stored once"
            ),
            "failed" => {
                failed += 1;
                assert_eq!(replays, 2, "{path} failed before its replays");
                assert_eq!(copies.get(&sha256), None, "{path} failed but stored");
            }
            other => panic!("{path} ended {other}"),
        }
    }
    assert_eq!(run.code, if failed > 0 { 1 } else { 0 }, "{}", run.stdout);
    // Every file lost in the first pass was replayed at least once.
    assert!(
        replayed as usize >= lost_first,
        "{replayed} replays for {lost_first} lost"
    );
    // Replays are new uploads that name the upload they replace.
    let receipts: Vec<serde_json::Value> = std::fs::read_dir(inbox.join("receipts"))
        .expect("receipts")
        .map(|entry| {
            serde_json::from_slice(&std::fs::read(entry.expect("entry").path()).expect("receipt"))
                .expect("receipt json")
        })
        .collect();
    let replays: Vec<&serde_json::Value> = receipts
        .iter()
        .filter(|receipt| receipt["metadata"]["replay_of"].is_string())
        .collect();
    assert!(!replays.is_empty() || replayed == 0);
    for receipt in replays {
        assert_ne!(receipt["metadata"]["replay_of"], receipt["id"]);
    }
}

/// The receiver is restarted (same directory, same address) between the
/// send and the verification: every persisted file is still found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_after_a_receiver_restart_finds_every_persisted_file() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let inbox = directory.path().join("inbox");
    let (mut receiver, files) = start_receiver(&inbox);
    let outbox = outbox(directory.path(), 12);
    let ledger = directory.path().join("ledger.db");
    let ledger_arg = ledger.display().to_string();
    let outbox_arg = outbox.display().to_string();
    let run = crate::cutover_async(&[
        "send",
        &outbox_arg,
        "--to",
        &files,
        "--ledger",
        &ledger_arg,
        "--no-verify",
        "--jobs",
        "3",
    ])
    .await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains(": 12 acknowledged"), "{}", run.stdout);
    receiver.kill().expect("stop");
    receiver.wait().expect("wait");

    let address = files
        .trim_start_matches("http://")
        .trim_end_matches("/files")
        .to_owned();
    let (mut receiver, _) = start_receiver_with(&inbox, &address, &[]);
    let run = crate::cutover_async(&["verify", "--ledger", &ledger_arg]).await;
    receiver.kill().expect("stop");
    receiver.wait().expect("wait");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("12 checked, 12 verified, 0 missing"),
        "{}",
        run.stdout
    );
    assert!(
        ledger_files(&ledger)
            .iter()
            .all(|file| file.1 == "verified")
    );
}

/// A receiver that is down during verification decides nothing: the files
/// stay acknowledged, nothing is replayed, and the report says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_leaves_files_undecided() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let inbox = directory.path().join("inbox");
    let (mut receiver, files) = start_receiver(&inbox);
    let outbox = outbox(directory.path(), 3);
    let ledger = directory.path().join("ledger.db");
    let ledger_arg = ledger.display().to_string();
    let outbox_arg = outbox.display().to_string();
    let run = crate::cutover_async(&[
        "send",
        &outbox_arg,
        "--to",
        &files,
        "--ledger",
        &ledger_arg,
        "--no-verify",
    ])
    .await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    receiver.kill().expect("stop");
    receiver.wait().expect("wait");
    let run = crate::cutover(&["verify", "--ledger", &ledger_arg]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("3 undecided"), "{}", run.stdout);
    assert!(
        run.stdout.contains("the receiver is unreachable"),
        "{}",
        run.stdout
    );
    assert!(
        ledger_files(&ledger)
            .iter()
            .all(|file| file.1 == "acknowledged")
    );
}

/// A file that is missing but whose content the receiver already holds
/// (a replay whose ledger record was lost) is adopted, not sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_the_receiver_already_holds_is_adopted_not_sent_twice() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let inbox = directory.path().join("inbox");
    let (mut receiver, files) = start_receiver(&inbox);
    let outbox = outbox(directory.path(), 2);
    let ledger = directory.path().join("ledger.db");
    let ledger_arg = ledger.display().to_string();
    let outbox_arg = outbox.display().to_string();
    let run =
        crate::cutover_async(&["send", &outbox_arg, "--to", &files, "--ledger", &ledger_arg]).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    // The ledger loses track of one upload: it points at an id the receiver never had.
    let connection = rusqlite::Connection::open(&ledger).expect("ledger");
    connection
        .execute(
            "UPDATE files SET state = 'acknowledged', upload_url = upload_url || 'x' WHERE path LIKE '%report-000.xml'",
            [],
        )
        .expect("lose track");
    let run = crate::cutover_async(&["verify", "--ledger", &ledger_arg]).await;
    receiver.kill().expect("stop");
    receiver.wait().expect("wait");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("the receiver already holds it"),
        "{}",
        run.stdout
    );
    assert!(stored(&inbox).values().all(|copies| *copies == 1));
    assert!(
        ledger_files(&ledger)
            .iter()
            .all(|file| file.1 == "verified")
    );
}

/// Bad input to send and verify: each refused with a reason, nothing sent.
#[test]
fn send_and_verify_refuse_bad_input() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let outbox = outbox(directory.path(), 1);
    let outbox_arg = outbox.display().to_string();
    let ledger = directory.path().join("ledger.db").display().to_string();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--check", "status=https://h/{upload_id}"],
            "a status check needs at least one --expect",
        ),
        (&["--check", "carrier-pigeon"], "not a check"),
        (&["--check", "data-exchange"], "name the endpoint's URL"),
        (
            &["--check", "status=https://h/x", "--expect", "nothing"],
            "not PATH=VALUE",
        ),
        (&["--meta", "novalue"], "not KEY=VALUE"),
    ];
    for (extra, message) in cases {
        let mut arguments = vec![
            "send",
            &outbox_arg,
            "--to",
            "http://127.0.0.1:9/files",
            "--ledger",
            &ledger,
        ];
        arguments.extend_from_slice(extra);
        let run = crate::cutover(&arguments);
        assert_eq!(run.code, 2, "{extra:?}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{extra:?}: {}", run.stderr);
    }
    assert!(
        !Path::new(&ledger).exists(),
        "nothing is recorded before the input is valid"
    );
    let run = crate::cutover(&["verify", "--ledger", &ledger]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no ledger here"), "{}", run.stderr);
    let run = crate::cutover(&[
        "send",
        &outbox_arg,
        "--to",
        "http://127.0.0.1:9/files",
        "--ledger",
        &ledger,
        "--token-env",
        "CUTOVER_TEST_NO_SUCH_TOKEN",
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("CUTOVER_TEST_NO_SUCH_TOKEN is not set"),
        "{}",
        run.stderr
    );
    let empty = directory.path().join("empty-token");
    std::fs::write(&empty, "\n").expect("token file");
    let empty_arg = empty.display().to_string();
    let run = crate::cutover(&[
        "send",
        &outbox_arg,
        "--to",
        "http://127.0.0.1:9/files",
        "--ledger",
        &ledger,
        "--token-file",
        &empty_arg,
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("the token file is empty"),
        "{}",
        run.stderr
    );
}

/// Against `@tus/server` (npm, with `@tus/file-store`) whose finish hook
/// reproduces the two real failure modes: a file deleted right after its
/// 204, and a 500 from the hook after every byte arrived (the bytes stay,
/// the delivery failed), which tus-js-client reports as success. Through
/// the data-exchange info endpoint cutover's sender replays the lost file
/// once, and reports the other as undelivered at the receiver without
/// sending it twice; the good file is verified at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutover_send_catches_both_lies_of_a_tus_server_finish_hook() {
    let Some(interop) = crate::interop_with("@tus/server") else {
        return;
    };
    let directory = tempfile::tempdir().expect("temporary directory");
    let (mut server, endpoint) = crate::spawn_announcing(
        std::process::Command::new("node")
            .arg(interop.join("tus-server.js"))
            .arg(directory.path().join("store")),
        1,
    );

    let outbox = directory.path().join("outbox");
    std::fs::create_dir(&outbox).expect("outbox");
    for (name, size) in [
        ("ok.xml", 70_000usize),
        ("lost.xml", 5_000),
        ("hook500.xml", 9_000),
    ] {
        let data: Vec<u8> = (0..size).map(|n| (n * 13 % 241) as u8).collect();
        std::fs::write(outbox.join(name), data).expect("file");
    }
    let ledger = directory.path().join("ledger.db");
    let (outbox_arg, ledger_arg) = (outbox.display().to_string(), ledger.display().to_string());
    let run = crate::cutover_async(&[
        "send",
        &outbox_arg,
        "--to",
        &endpoint,
        "--ledger",
        &ledger_arg,
        "--check",
        "tus",
        "--check",
        "data-exchange={origin}/upload/info/{upload_id}",
        "--settle",
        "2s",
        "--meta",
        "data_stream_id=celr",
        "--meta",
        "data_stream_route=csv",
        "--meta",
        "sender_id=lab-7",
        "--meta",
        "data_producer_id=null",
        "--meta",
        "jurisdiction=null",
        "--chunk-size",
        "32768",
        "--format",
        "json",
    ])
    .await;

    // For contrast: tus-js-client reports the hook's 500 as a success.
    let lied_to = directory.path().join("hook500-js.xml");
    std::fs::write(&lied_to, vec![7u8; 3_000]).expect("file");
    let script = interop.join("tus-upload.js");
    let js_endpoint = endpoint.clone();
    let js = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(script)
            .arg(js_endpoint)
            .arg(lied_to)
            .arg("1024")
            .output()
            .expect("running node")
    })
    .await
    .expect("node");
    server.kill().expect("stop");
    server.wait().expect("wait");

    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let file_names = |list: &serde_json::Value| -> Vec<String> {
        list.as_array()
            .expect("a list")
            .iter()
            .map(|file| {
                file["file"]
                    .as_str()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    let first = &report["verification"][0];
    assert_eq!(
        file_names(&first["missing"]),
        ["lost.xml"],
        "{}",
        run.stdout
    );
    assert_eq!(
        file_names(&first["undelivered"]),
        ["hook500.xml"],
        "{}",
        run.stdout
    );
    assert_eq!(
        crate::exchange::ledger_states(&ledger),
        [
            ("hook500.xml".to_owned(), "undelivered".to_owned(), 0),
            ("lost.xml".to_owned(), "verified".to_owned(), 1),
            ("ok.xml".to_owned(), "verified".to_owned(), 0),
        ]
    );
    assert!(
        js.status.success(),
        "tus-js-client no longer reports the 500 as success"
    );
}

/// Starts `cutover` with `args` without waiting for it.
fn spawn_cutover(args: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .env("CUTOVER_LOG", "off")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting cutover")
}

/// Waits (up to 30 s) until some open upload in `inbox` holds at least `bytes`.
fn wait_for_partial_upload(inbox: &Path, bytes: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let partial = std::fs::read_dir(inbox.join("uploads"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "part"))
            .any(|entry| entry.metadata().is_ok_and(|meta| meta.len() >= bytes));
        if partial {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("no upload reached {bytes} bytes");
}

fn big_file(path: &Path, bytes: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..bytes).map(|n| ((n / 7) % 253) as u8).collect();
    std::fs::write(path, &data).expect("file");
    data
}

/// The receiver is killed with SIGKILL in the middle of an upload and
/// restarted on the same address: the sender resumes from the receiver's
/// offset, and the stored file is whole.
#[test]
fn a_receiver_killed_mid_upload_is_resumed_from_its_offset() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let inbox = directory.path().join("inbox");
    let (mut receiver, files) = start_receiver(&inbox);
    let file = directory.path().join("large.bin");
    let data = big_file(&file, 12 << 20);
    let ledger = directory.path().join("ledger.db").display().to_string();
    let file_arg = file.display().to_string();
    let sender = spawn_cutover(&[
        "send",
        &file_arg,
        "--to",
        &files,
        "--ledger",
        &ledger,
        "--chunk-size",
        "131072",
        "--retries",
        "8",
    ]);
    wait_for_partial_upload(&inbox, 2 << 20);
    receiver.kill().expect("SIGKILL the receiver");
    receiver.wait().expect("wait");
    let address = files
        .trim_start_matches("http://")
        .trim_end_matches("/files")
        .to_owned();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (mut receiver, _) = start_receiver_with(&inbox, &address, &[]);
    let output = sender.wait_with_output().expect("sender");
    receiver.kill().expect("stop");
    receiver.wait().expect("wait");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(": 1 verified"), "{stdout}");
    let copies = stored(&inbox);
    assert_eq!(copies.get(&hex(&sha2::Sha256::digest(&data))), Some(&1));
    assert_eq!(copies.len(), 1);
}

/// The sender is killed with SIGKILL in the middle of a send; a rerun
/// continues from the ledger: files already delivered are not sent again,
/// the interrupted upload is resumed, and every file is stored once.
#[test]
fn a_sender_killed_mid_send_continues_from_its_ledger() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let inbox = directory.path().join("inbox");
    let (mut receiver, files) = start_receiver(&inbox);
    let outbox = directory.path().join("outbox");
    std::fs::create_dir(&outbox).expect("outbox");
    let mut contents = Vec::new();
    for number in 0..4 {
        let data = big_file(
            &outbox.join(format!("part-{number}.bin")),
            (3 << 20) + number,
        );
        contents.push(hex(&sha2::Sha256::digest(&data)));
    }
    let ledger = directory.path().join("ledger.db").display().to_string();
    let outbox_arg = outbox.display().to_string();
    let arguments = [
        "send",
        &outbox_arg,
        "--to",
        &files,
        "--ledger",
        &ledger,
        "--chunk-size",
        "65536",
        "--jobs",
        "1",
    ];
    let mut sender = spawn_cutover(&arguments);
    // Let the first file finish and the second start, then kill.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while stored(&inbox).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    wait_for_partial_upload(&inbox, 1 << 20);
    sender.kill().expect("SIGKILL the sender");
    sender.wait().expect("wait");
    let rerun = crate::cutover(&arguments);
    receiver.kill().expect("stop");
    receiver.wait().expect("wait");
    assert_eq!(rerun.code, 0, "{}{}", rerun.stdout, rerun.stderr);
    assert!(
        rerun.stdout.contains("already delivered"),
        "{}",
        rerun.stdout
    );
    assert!(rerun.stdout.contains(": 4 verified"), "{}", rerun.stdout);
    let copies = stored(&inbox);
    for sha256 in &contents {
        assert_eq!(copies.get(sha256), Some(&1), "{copies:?}");
    }
    assert_eq!(copies.len(), 4);
}

/// A file that grows while it is being sent fails alone (its upload is
/// withdrawn); the other file is delivered and verified.
#[test]
fn a_file_that_changes_while_it_is_sent_fails_alone() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let inbox = directory.path().join("inbox");
    let (mut receiver, files) = start_receiver(&inbox);
    let outbox = directory.path().join("outbox");
    std::fs::create_dir(&outbox).expect("outbox");
    big_file(&outbox.join("a-growing.log"), 24 << 20);
    std::fs::write(outbox.join("b-steady.xml"), b"<report/>").expect("file");
    let ledger = directory.path().join("ledger.db");
    let ledger_arg = ledger.display().to_string();
    let outbox_arg = outbox.display().to_string();
    let sender = spawn_cutover(&[
        "send",
        &outbox_arg,
        "--to",
        &files,
        "--ledger",
        &ledger_arg,
        "--chunk-size",
        "32768",
        "--jobs",
        "1",
    ]);
    wait_for_partial_upload(&inbox, 1 << 20);
    let mut growing = std::fs::OpenOptions::new()
        .append(true)
        .open(outbox.join("a-growing.log"))
        .expect("open");
    std::io::Write::write_all(&mut growing, b"one more line\n").expect("append");
    drop(growing);
    let output = sender.wait_with_output().expect("sender");
    receiver.kill().expect("stop");
    receiver.wait().expect("wait");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("a-growing.log: failed: the file changed while it was sent"),
        "{stdout}"
    );
    let states: Vec<(String, String)> = ledger_files(&ledger)
        .into_iter()
        .map(|(path, state, _, _)| {
            (
                path.rsplit('/').next().unwrap_or_default().to_owned(),
                state,
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("a-growing.log".to_owned(), "failed".to_owned()),
            ("b-steady.xml".to_owned(), "verified".to_owned())
        ]
    );
}
