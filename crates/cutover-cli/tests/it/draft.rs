//! The IETF resumable-upload draft end to end: tus-js-client's
//! `ietf-draft-05` against `cutover receive`, `cutover send --protocol
//! ietf`, replays by `cutover verify --protocol ietf`, and a receiver
//! killed in the middle of a draft append.

use cutover_testing::proxy::{Meddler, Proxy};
use sha2::Digest as _;
use std::path::Path;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::receive::{peer_uploads, start_receiver, start_receiver_with};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// tus-js-client speaking the draft (interop version 6): a careful
/// creation, then 64 KB appends of application/partial-upload, the last
/// one completing the upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_speaks_the_ietf_draft_to_cutover_receive() {
    let Some(interop) = crate::interop_with("tus-js-client") else {
        return;
    };
    let script = interop.join("tus-upload.js");
    peer_uploads(
        Path::new("node"),
        &script,
        "65536",
        "draft-upload.bin",
        300_000,
        &[("TUS_PROTOCOL", "ietf-draft-05")],
    )
    .await;
}

/// `cutover send --protocol ietf`: a file of one chunk goes whole with its
/// creation, a larger one in appends, an empty one too; each is verified
/// on the receiver, and a rerun sends nothing. Parallel parts, which the
/// draft cannot carry, are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_speaks_the_ietf_draft() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let inbox = directory.path().join("inbox");
    let (mut child, files) = start_receiver(&inbox);
    let outbox = directory.path().join("outbox");
    std::fs::create_dir(&outbox).expect("outbox");
    let mut digests = Vec::new();
    for (name, size) in [
        ("small.xml", 1_000usize),
        ("large.bin", 300_000),
        ("empty.txt", 0),
    ] {
        let data: Vec<u8> = (0..size).map(|n| (n % 251) as u8).collect();
        digests.push(hex(&sha2::Sha256::digest(&data)));
        std::fs::write(outbox.join(name), data).expect("file");
    }
    let ledger = directory.path().join("ledger.db").display().to_string();
    let outbox = outbox.display().to_string();
    let args = [
        "send",
        outbox.as_str(),
        "--to",
        files.as_str(),
        "--ledger",
        ledger.as_str(),
        "--protocol",
        "ietf",
        "--chunk-size",
        "65536",
    ];
    let send = || {
        let args = args.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            crate::cutover(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
    };
    let run = send().await.expect("send");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains(": 3 verified"), "{}", run.stdout);
    let mut stored: Vec<String> = std::fs::read_dir(inbox.join("receipts"))
        .expect("receipts")
        .map(|entry| {
            let receipt: serde_json::Value =
                serde_json::from_slice(&std::fs::read(entry.expect("entry").path()).expect("read"))
                    .expect("json");
            receipt["sha256"].as_str().expect("sha256").to_owned()
        })
        .collect();
    stored.sort();
    digests.sort();
    assert_eq!(stored, digests);
    assert_eq!(
        std::fs::read_dir(inbox.join("uploads"))
            .expect("uploads")
            .count(),
        0
    );

    let run = send().await.expect("send");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout.matches("already delivered").count(),
        3,
        "{}",
        run.stdout
    );

    let mut refused = args.to_vec();
    refused.extend(["--parallel-parts", "4"]);
    let run = crate::cutover(&refused);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("--parallel-parts needs --protocol tus"),
        "{}",
        run.stderr
    );
    child.kill().expect("stop");
    child.wait().expect("wait");
}

/// SIGKILL of the receiver while a draft append streams in: the restarted
/// receiver reports the offset it acknowledged before (the promise the
/// draft makes of an acknowledged offset), and the client's resumed
/// append from there stores the file whole, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_killed_during_a_draft_append_resumes_from_what_it_acknowledged() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let inbox = directory.path().join("inbox");
    let (mut child, files) = start_receiver(&inbox);
    let client = reqwest::Client::new();
    let data: Vec<u8> = (0..48u32 << 20)
        .map(|n| n.wrapping_mul(131) as u8)
        .collect();
    let first = 8usize << 20;
    let answer = client
        .post(&files)
        .header("Upload-Draft-Interop-Version", "8")
        .header("Upload-Complete", "?0")
        .header("Upload-Length", data.len().to_string())
        .body(data[..first].to_vec())
        .send()
        .await
        .expect("create with the first part");
    assert_eq!(answer.status().as_u16(), 201);
    assert_eq!(
        answer.headers()["upload-offset"],
        first.to_string().as_str()
    );
    let location = answer.headers()["location"].to_str().expect("location");
    let path = location[location.find("/files/").expect("a path")..].to_owned();
    let id = path.rsplit('/').next().expect("id").to_owned();
    let part = inbox.join("uploads").join(format!("{id}.part"));

    // The rest in one append, written on the wire by hand and stopped
    // half-way, so the receiver is killed in the middle of it.
    let address = files
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("host")
        .to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {address}\r\nUpload-Draft-Interop-Version: 8\r\n\
         Content-Type: application/partial-upload\r\nUpload-Offset: {first}\r\n\
         Upload-Complete: ?1\r\nContent-Length: {}\r\n\r\n",
        data.len() - first
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
        .write_all(&data[first..first + (20 << 20)])
        .await
        .expect("part of the body");
    // Kill once some of the append is on disk.
    let started = std::time::Instant::now();
    while std::fs::metadata(&part).map_or(0, |meta| meta.len()) <= first as u64 + (4 << 20) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the append never reached the disk"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    assert!(answer.is_empty(), "the killed receiver answered the append");

    let (mut child, files) = start_receiver(&inbox);
    let upload = format!("{}{}", &files[..files.find("/files").expect("files")], path);
    let answer = client
        .head(&upload)
        .header("Upload-Draft-Interop-Version", "8")
        .send()
        .await
        .expect("offset");
    assert_eq!(answer.status().as_u16(), 204);
    assert_eq!(answer.headers()["upload-complete"], "?0");
    assert_eq!(
        answer.headers()["upload-offset"],
        first.to_string().as_str()
    );
    let answer = client
        .patch(&upload)
        .header("Upload-Draft-Interop-Version", "8")
        .header("Content-Type", "application/partial-upload")
        .header("Upload-Offset", first.to_string())
        .header("Upload-Complete", "?1")
        .body(data[first..].to_vec())
        .send()
        .await
        .expect("the resumed append");
    assert_eq!(answer.status().as_u16(), 200);
    let expected = sha2::Sha256::digest(&data);
    assert_eq!(
        answer.headers()["repr-digest"],
        format!(
            "sha-256=:{}:",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, expected)
        )
        .as_str()
    );
    child.kill().expect("stop");
    child.wait().expect("wait");
    let complete: Vec<_> = std::fs::read_dir(inbox.join("complete"))
        .expect("complete")
        .collect();
    assert_eq!(complete.len(), 1, "stored once");
    assert_eq!(
        hex(&sha2::Sha256::digest(
            std::fs::read(inbox.join("complete").join(&id)).expect("stored")
        )),
        hex(&expected)
    );
    assert_eq!(
        std::fs::read_dir(inbox.join("uploads"))
            .expect("uploads")
            .count(),
        0
    );
}

/// A gateway that speaks only the draft: creations by tus are refused
/// (412); everything else goes through.
struct DraftOnly;

impl Meddler for DraftOnly {
    fn request(
        &self,
        parts: &axum::http::request::Parts,
        _body: &mut Vec<u8>,
    ) -> Option<axum::http::StatusCode> {
        (parts.method == axum::http::Method::POST && parts.headers.contains_key("tus-resumable"))
            .then_some(axum::http::StatusCode::PRECONDITION_FAILED)
    }
}

/// A file sent by the draft to a receiver that loses it is replayed by
/// `cutover verify --protocol ietf` through a gateway that refuses tus
/// creations: stored once, as a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_replays_by_the_draft() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let inbox = directory.path().join("inbox");
    let (mut liar, files) =
        start_receiver_with(&inbox, "127.0.0.1:0", &["--fault-lose-percent", "100"]);
    let gateway = Proxy::start(
        files.trim_end_matches("/files"),
        std::sync::Arc::new(DraftOnly),
    )
    .await;
    let address = format!("{}/files", gateway.url);
    let outbox = directory.path().join("outbox");
    std::fs::create_dir(&outbox).expect("outbox");
    let data: Vec<u8> = (0..200_000u32).map(|n| (n % 241) as u8).collect();
    std::fs::write(outbox.join("report.bin"), &data).expect("file");
    let ledger = directory.path().join("ledger.db").display().to_string();
    let outbox = outbox.display().to_string();
    let run = crate::cutover_async(&[
        "send",
        &outbox,
        "--to",
        &address,
        "--ledger",
        &ledger,
        "--protocol",
        "ietf",
        "--chunk-size",
        "65536",
        "--no-verify",
    ])
    .await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    liar.kill().expect("stop");
    liar.wait().expect("wait");
    let (mut honest, files) = start_receiver(&inbox);
    gateway.retarget(files.trim_end_matches("/files"));

    let verify = |protocol: &'static str| {
        let ledger = ledger.clone();
        async move {
            crate::cutover_async(&[
                "verify",
                "--ledger",
                &ledger,
                "--check",
                "receipt",
                "--protocol",
                protocol,
            ])
            .await
        }
    };
    // A creation by tus does not pass the gateway (a replay by tus would
    // fail the file for good).
    let refused = reqwest::Client::new()
        .post(&address)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "1")
        .send()
        .await
        .expect("a tus creation");
    assert_eq!(refused.status().as_u16(), 412);
    let run = verify("ietf").await;
    honest.kill().expect("stop");
    honest.wait().expect("wait");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let receipts: Vec<serde_json::Value> = std::fs::read_dir(inbox.join("receipts"))
        .expect("receipts")
        .map(|entry| {
            serde_json::from_slice(&std::fs::read(entry.expect("entry").path()).expect("read"))
                .expect("json")
        })
        .collect();
    assert_eq!(receipts.len(), 1, "stored once");
    assert_eq!(
        receipts[0]["sha256"],
        hex(&sha2::Sha256::digest(&data)).as_str()
    );
    assert!(receipts[0]["metadata"]["replay_of"].is_string());
}
