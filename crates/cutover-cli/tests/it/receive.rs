//! `cutover receive` end to end: a real upload over loopback, and bad input.

use sha2::Digest as _;
use std::path::Path;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_sent_to_cutover_receive_is_stored_with_a_receipt() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let inbox = directory.path().join("inbox");
    let (mut child, files) = start_receiver(&inbox);
    let client = reqwest::Client::new();
    let answer = client
        .post(&files)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "11")
        .header("Upload-Metadata", "filename cmVwb3J0LnhtbA==")
        .header("Content-Type", "application/offset+octet-stream")
        .body("hello world")
        .send()
        .await
        .expect("upload");
    assert_eq!(answer.status().as_u16(), 201);
    let id = answer.headers()["location"]
        .to_str()
        .expect("location")
        .rsplit('/')
        .next()
        .expect("id")
        .to_owned();
    let receipts = files.replace("/files", "/receipts");
    let receipt: serde_json::Value = client
        .get(format!("{receipts}/{id}"))
        .send()
        .await
        .expect("receipt")
        .json()
        .await
        .expect("json");
    child.kill().expect("stop");
    child.wait().expect("wait");
    assert_eq!(receipt["size"], 11);
    assert_eq!(receipt["metadata"]["filename"], "report.xml");
    assert_eq!(
        receipt["sha256"],
        "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    );
    assert_eq!(
        std::fs::read(inbox.join("complete").join(&id)).expect("stored"),
        b"hello world"
    );
}

/// Starts `cutover receive` on a free port; returns it and its files URL.
pub fn start_receiver(inbox: &std::path::Path) -> (std::process::Child, String) {
    start_receiver_with(inbox, "127.0.0.1:0", &[])
}

/// Starts `cutover receive` on `listen` with extra arguments; returns it
/// and its files URL.
pub fn start_receiver_with(
    inbox: &std::path::Path,
    listen: &str,
    extra: &[&str],
) -> (std::process::Child, String) {
    let (child, files) = crate::spawn_announcing(
        Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["receive", "--listen", listen, "--dir"])
            .arg(inbox)
            .args(extra)
            .env("CUTOVER_LOG", "off"),
        2,
    );
    (child, files)
}

/// tus-js-client (npm, run with node) uploads to cutover's receiver in 64 KB
/// PATCHes; the stored file and its receipt match what was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_uploads_to_cutover_receive() {
    let Some(interop) = crate::interop_with("tus-js-client") else {
        return;
    };
    let script = interop.join("tus-upload.js");
    peer_uploads(
        Path::new("node"),
        &script,
        "65536",
        "lab-report 2026.xml",
        300_000,
        &[],
    )
    .await;
}

/// tus-js-client's parallelUploads: four partial uploads at once,
/// concatenated by cutover's receiver into one file with one receipt, the
/// partials gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_sends_parallel_parts_to_cutover_receive() {
    let Some(interop) = crate::interop_with("tus-js-client") else {
        return;
    };
    let script = interop.join("tus-upload.js");
    peer_uploads(
        Path::new("node"),
        &script,
        "65536",
        "parallel.bin",
        1_000_000,
        &[("TUS_PARALLEL", "4")],
    )
    .await;
}

/// tus-js-client's uploadLengthDeferred: a stream of unknown length, whose
/// length comes with the last PATCH.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_sends_a_stream_of_unknown_length_to_cutover_receive() {
    let Some(interop) = crate::interop_with("tus-js-client") else {
        return;
    };
    let script = interop.join("tus-upload.js");
    peer_uploads(
        Path::new("node"),
        &script,
        "65536",
        "stream.bin",
        300_000,
        &[("TUS_DEFERRED", "1")],
    )
    .await;
}

/// tuspy (PyPI) uploads to cutover's receiver in 50 KB PATCHes with sha1
/// checksums; the stored file and its receipt match what was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuspy_uploads_to_cutover_receive() {
    let interop = crate::workspace_root().join("interop");
    let python = interop.join(".venv/bin/python");
    if !python.exists() {
        let in_ci = std::env::var("CI").is_ok_and(|value| value == "true" || value == "1");
        assert!(
            !in_ci,
            "interop/.venv is missing: scripts/test.sh installs tuspy"
        );
        return;
    }
    let script = interop.join("tuspy-upload.py");
    peer_uploads(&python, &script, "51200", "case-report.xml", 180_000, &[]).await;
}

/// Runs a peer's upload script (`program script ENDPOINT FILE CHUNK`, with
/// `environment`) against a fresh `cutover receive` with `size` bytes named
/// `name`; the stored file and its receipt (size, file name, data stream)
/// must match, and nothing is left in the receiver's open uploads.
pub(crate) async fn peer_uploads(
    program: &Path,
    script: &Path,
    chunk: &str,
    name: &str,
    size: u32,
    environment: &[(&str, &str)],
) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let inbox = directory.path().join("inbox");
    let (mut child, files) = start_receiver(&inbox);
    let data: Vec<u8> = (0..size).map(|n| (n * 7 % 256) as u8).collect();
    let file = directory.path().join(name);
    std::fs::write(&file, &data).expect("file");
    let mut command = Command::new(program);
    command
        .arg(script)
        .arg(&files)
        .arg(&file)
        .arg(chunk)
        .envs(environment.iter().copied());
    let output = tokio::task::spawn_blocking(move || command.output().expect("running the peer"))
        .await
        .expect("peer");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let url = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let id = url.rsplit('/').next().expect("id").to_owned();
    let receipt: serde_json::Value = reqwest::get(url.replace("/files/", "/receipts/"))
        .await
        .expect("receipt")
        .json()
        .await
        .expect("json");
    child.kill().expect("stop");
    child.wait().expect("wait");
    assert_eq!(
        std::fs::read(inbox.join("complete").join(&id)).expect("stored"),
        data
    );
    assert_eq!(receipt["size"], size);
    assert_eq!(receipt["metadata"]["filename"], name);
    assert_eq!(receipt["metadata"]["data_stream"], "eicr");
    assert_eq!(
        std::fs::read_dir(inbox.join("uploads"))
            .expect("open uploads")
            .count(),
        0,
        "an open or partial upload was left"
    );
    assert_eq!(
        std::fs::read_dir(inbox.join("receipts"))
            .expect("receipts")
            .count(),
        1
    );
}

#[test]
fn receive_refuses_what_it_cannot_keep() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let file = directory.path().join("a-file");
    std::fs::write(&file, b"x").expect("file");
    let run = crate::cutover(&[
        "receive",
        "--listen",
        "127.0.0.1:0",
        "--dir",
        &file.join("inbox").display().to_string(),
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("receiving into"), "{}", run.stderr);
    let run = crate::cutover(&[
        "receive",
        "--listen",
        "127.0.0.1:0",
        "--dir",
        "inbox",
        "--token-env",
        "CUTOVER_TEST_NO_SUCH_TOKEN",
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("CUTOVER_TEST_NO_SUCH_TOKEN is not set"),
        "{}",
        run.stderr
    );
}

/// `cutover send` to `cutover receive`: every file arrives whole, is read
/// back (verified), and a rerun sends nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_records_each_file_in_the_ledger_and_a_rerun_sends_nothing() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let inbox = directory.path().join("inbox");
    let (mut child, files) = start_receiver(&inbox);
    let outbox = directory.path().join("outbox");
    std::fs::create_dir(&outbox).expect("outbox");
    for (name, size) in [("a.xml", 10usize), ("b.xml", 200_000), ("c.xml", 0)] {
        let data: Vec<u8> = (0..size).map(|n| (n % 97) as u8).collect();
        std::fs::write(outbox.join(name), data).expect("file");
    }
    let ledger = directory.path().join("ledger.db");
    let send = {
        let (outbox, ledger, files) = (outbox.clone(), ledger.clone(), files.clone());
        move || {
            crate::cutover(&[
                "send",
                &outbox.display().to_string(),
                "--to",
                &files,
                "--ledger",
                &ledger.display().to_string(),
                "--meta",
                "data_stream=eicr",
                "--chunk-size",
                "65536",
            ])
        }
    };
    let run = tokio::task::spawn_blocking(send.clone())
        .await
        .expect("send");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("ledger"), "{}", run.stdout);
    assert!(run.stdout.contains(": 3 verified"), "{}", run.stdout);
    let stored: Vec<Vec<u8>> = std::fs::read_dir(inbox.join("complete"))
        .expect("complete")
        .map(|entry| std::fs::read(entry.expect("entry").path()).expect("file"))
        .collect();
    assert_eq!(stored.len(), 3);
    assert!(
        stored
            .iter()
            .any(|data| data.len() == 200_000 && data[99] == 2)
    );

    let run = tokio::task::spawn_blocking(send).await.expect("send");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout.matches("already delivered").count(),
        3,
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read_dir(inbox.join("complete"))
            .expect("complete")
            .count(),
        3
    );
    let connection = rusqlite::Connection::open(&ledger).expect("ledger");
    let transitions: i64 = connection
        .query_row(
            "SELECT count(*) FROM transitions WHERE state = 'acknowledged'",
            [],
            |row| row.get(0),
        )
        .expect("count");
    assert_eq!(transitions, 3);

    // The ledger report: 3 verified eicr files today; a failure makes it exit 1.
    let ledger_arg = ledger.display().to_string();
    let run = crate::cutover(&["ledger", "--ledger", &ledger_arg, "--format", "json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(report["rows"][0]["data_stream"], "eicr");
    assert_eq!(report["rows"][0]["states"]["verified"], 3);
    connection
        .execute(
            "UPDATE files SET state = 'failed' WHERE path LIKE '%a.xml'",
            [],
        )
        .expect("fail one");
    let run = crate::cutover(&["ledger", "--ledger", &ledger_arg]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("1 files are missing, undelivered or failed"),
        "{}",
        run.stdout
    );
    child.kill().expect("stop");
    child.wait().expect("wait");
}

/// SIGKILL while a final upload is being concatenated: the restarted
/// receiver sweeps the half-made file, still holds the partials, and the
/// client's repeated creation stores the file whole, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_killed_while_concatenating_stores_the_file_once() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let inbox = directory.path().join("inbox");
    let (mut child, files) = start_receiver(&inbox);
    let client = reqwest::Client::new();
    // Two 16 MB partial uploads, each sent with its creation.
    let parts: Vec<Vec<u8>> = (0..2u32)
        .map(|part| {
            (0..16u32 << 20)
                .map(|n| (n.wrapping_mul(31) ^ part) as u8)
                .collect()
        })
        .collect();
    let mut paths = Vec::new();
    for part in &parts {
        let answer = client
            .post(&files)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Concat", "partial")
            .header("Upload-Length", part.len().to_string())
            .header("Content-Type", "application/offset+octet-stream")
            .body(part.clone())
            .send()
            .await
            .expect("a partial upload");
        assert_eq!(answer.status().as_u16(), 201);
        let location = answer.headers()["location"].to_str().expect("location");
        paths.push(location[location.find("/files/").expect("a path")..].to_owned());
    }
    let list = format!("final;{}", paths.join(" "));
    let uploads = inbox.join("uploads");
    let before: std::collections::HashSet<_> = std::fs::read_dir(&uploads)
        .expect("uploads")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    let request = {
        let (files, list) = (files.clone(), list.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(&files)
                .header("Tus-Resumable", "1.0.0")
                .header("Upload-Concat", list)
                .send()
                .await
        })
    };
    // The final upload's file appears as the concatenation starts: kill then.
    let started = std::time::Instant::now();
    loop {
        let appeared = std::fs::read_dir(&uploads)
            .expect("uploads")
            .any(|entry| !before.contains(&entry.expect("entry").file_name()));
        if appeared {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the concatenation never started"
        );
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    assert!(
        request.await.expect("task").is_err(),
        "the killed receiver answered"
    );
    assert_eq!(
        std::fs::read_dir(inbox.join("receipts"))
            .expect("receipts")
            .count(),
        0
    );

    let (mut child, files) = start_receiver(&inbox);
    let answer = client
        .post(&files)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Concat", list)
        .send()
        .await
        .expect("the final upload again");
    assert_eq!(answer.status().as_u16(), 201);
    let location = answer.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let receipt: serde_json::Value = reqwest::get(location.replace("/files/", "/receipts/"))
        .await
        .expect("receipt")
        .json()
        .await
        .expect("json");
    child.kill().expect("stop");
    child.wait().expect("wait");
    let whole: Vec<u8> = parts.concat();
    let digest: String = sha2::Sha256::digest(&whole)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(receipt["sha256"], digest);
    let complete: Vec<_> = std::fs::read_dir(inbox.join("complete"))
        .expect("complete")
        .collect();
    assert_eq!(complete.len(), 1, "stored once");
    assert_eq!(
        std::fs::read_dir(&uploads).expect("uploads").count(),
        0,
        "the half-made file and the partials are gone"
    );
}
