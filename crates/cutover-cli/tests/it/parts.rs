//! `cutover send --parallel-parts`: a file as partial uploads at once,
//! concatenated by the receiver; one stream where the receiver does not
//! offer concatenation; a sender killed mid-way resumes its parts.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cutover_testing::proxy::{Answer, Meddler, Proxy};
use sha2::Digest as _;

use crate::deliver::hex;
use crate::receive::start_receiver;

/// A file of `size` bytes of varied content.
fn data_file(directory: &Path, name: &str, size: usize) -> (std::path::PathBuf, String) {
    let data: Vec<u8> = (0..size)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let path = directory.join(name);
    std::fs::write(&path, &data).expect("file");
    (path, hex(&sha2::Sha256::digest(&data)))
}

/// The only receipt in an inbox.
fn only_receipt(inbox: &Path) -> serde_json::Value {
    let receipts: Vec<_> = std::fs::read_dir(inbox.join("receipts"))
        .expect("receipts")
        .map(|entry| entry.expect("entry").path())
        .collect();
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    serde_json::from_slice(&std::fs::read(&receipts[0]).expect("receipt")).expect("JSON")
}

/// The ledger's transition details of its one file.
fn details(ledger: &Path) -> Vec<String> {
    let connection = rusqlite::Connection::open(ledger).expect("ledger");
    let mut statement = connection
        .prepare("SELECT coalesce(detail, '') FROM transitions ORDER BY rowid")
        .expect("query");
    statement
        .query_map([], |row| row.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("details")
}

fn ledger_parts(ledger: &Path) -> Vec<String> {
    let Ok(connection) = rusqlite::Connection::open(ledger) else {
        return Vec::new();
    };
    let Ok(mut statement) = connection.prepare("SELECT url FROM parts ORDER BY part") else {
        return Vec::new();
    };
    statement
        .query_map([], |row| row.get(0))
        .and_then(|rows| rows.collect::<Result<_, _>>())
        .unwrap_or_default()
}

/// Four parts at once to cutover receive: one file, whole, with one
/// receipt naming the four parts, verified; no part left; the ledger
/// records the final upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_goes_as_parallel_parts_to_cutover_receive() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let inbox = directory.path().join("inbox");
    let (mut receiver, files) = start_receiver(&inbox);
    let (file, sha256) = data_file(directory.path(), "extract.bin", 3_000_000);
    let ledger = directory.path().join("ledger.db");
    let run = crate::cutover_async(&[
        "send",
        &file.display().to_string(),
        "--to",
        &files,
        "--ledger",
        &ledger.display().to_string(),
        "--parallel-parts",
        "4",
        "--chunk-size",
        "262144",
        "--check",
        "receipt",
    ])
    .await;
    receiver.kill().expect("stop");
    receiver.wait().expect("wait");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("1 verified"), "{}", run.stdout);
    let receipt = only_receipt(&inbox);
    assert_eq!(receipt["sha256"], sha256.as_str());
    let concat = receipt["concat"].as_str().expect("a final upload");
    assert_eq!(concat.split(' ').count(), 4, "{concat}");
    assert_eq!(
        std::fs::read_dir(inbox.join("uploads"))
            .expect("uploads")
            .count(),
        0
    );
    assert!(
        details(&ledger).contains(&"4 parallel parts concatenated".to_owned()),
        "{:?}",
        details(&ledger)
    );
    assert!(ledger_parts(&ledger).is_empty());
}

/// @tus/server (with its file store) does not offer concatenation: the file
/// goes as one stream, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_concatenation_a_file_goes_as_one_stream() {
    let Some(interop) = crate::interop_with("@tus/server") else {
        return;
    };
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = directory.path().join("store");
    let (mut server, endpoint) = crate::spawn_announcing(
        Command::new("node")
            .arg(interop.join("tus-server.js"))
            .arg(&store),
        1,
    );
    let (file, sha256) = data_file(directory.path(), "extract.bin", 1_000_000);
    let ledger = directory.path().join("ledger.db");
    let run = crate::cutover_async(&[
        "send",
        &file.display().to_string(),
        "--to",
        &endpoint,
        "--ledger",
        &ledger.display().to_string(),
        "--parallel-parts",
        "4",
        "--chunk-size",
        "65536",
        "--no-verify",
    ])
    .await;
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let stored: Vec<String> = std::fs::read_dir(&store)
        .expect("store")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_none())
        .map(|path| hex(&sha2::Sha256::digest(std::fs::read(path).expect("stored"))))
        .collect();
    assert_eq!(stored, [sha256]);
    assert!(
        details(&ledger)
            .iter()
            .all(|detail| !detail.contains("parallel")),
        "{:?}",
        details(&ledger)
    );
}

/// The sender killed (SIGKILL) while its parts are in flight: the rerun
/// resumes the very parts the ledger recorded, and the file is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sender_resumes_its_parts() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let inbox = directory.path().join("inbox");
    let (mut receiver, files) = start_receiver(&inbox);
    let (file, sha256) = data_file(directory.path(), "extract.bin", 16_000_000);
    let ledger = directory.path().join("ledger.db");
    let args = [
        "send".to_owned(),
        file.display().to_string(),
        "--to".to_owned(),
        files.clone(),
        "--ledger".to_owned(),
        ledger.display().to_string(),
        "--parallel-parts".to_owned(),
        "4".to_owned(),
        "--chunk-size".to_owned(),
        "65536".to_owned(),
        "--check".to_owned(),
        "receipt".to_owned(),
    ];
    let mut sender = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(&args)
        .env("CUTOVER_LOG", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cutover send");
    // Kill it once its parts are recorded and some bytes have arrived.
    let started = Instant::now();
    let received = |inbox: &Path| -> u64 {
        std::fs::read_dir(inbox.join("uploads"))
            .map(|entries| {
                entries
                    .filter_map(|entry| entry.ok()?.metadata().ok())
                    // Bytes written, not lengths: a final upload made
                    // before its parts has its whole length from the start.
                    .map(|metadata| std::os::unix::fs::MetadataExt::blocks(&metadata) * 512)
                    .sum()
            })
            .unwrap_or(0)
    };
    while ledger_parts(&ledger).len() < 4 || received(&inbox) < 1_000_000 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the parts never started"
        );
        assert!(
            sender.try_wait().expect("sender").is_none(),
            "the sender finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    sender.kill().expect("SIGKILL");
    sender.wait().expect("wait");
    let recorded = ledger_parts(&ledger);
    assert_eq!(recorded.len(), 4);
    assert_eq!(
        std::fs::read_dir(inbox.join("receipts"))
            .expect("receipts")
            .count(),
        0,
        "killed before the final upload"
    );

    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = crate::cutover_async(&args).await;
    receiver.kill().expect("stop");
    receiver.wait().expect("wait");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let receipt = only_receipt(&inbox);
    assert_eq!(receipt["sha256"], sha256.as_str());
    let paths: Vec<String> = recorded
        .iter()
        .map(|url| url[url.find("/files/").expect("a path")..].to_owned())
        .collect();
    assert_eq!(
        receipt["concat"],
        format!("final;{}", paths.join(" ")).as_str(),
        "the recorded parts were resumed"
    );
    assert_eq!(
        std::fs::read_dir(inbox.join("uploads"))
            .expect("uploads")
            .count(),
        0
    );
}

/// Loses the receiver's answer to the first final upload (the receiver
/// made it; the sender hears 502), as a dropped connection would; with
/// `plain`, it hides concatenation-unfinished, so the final upload is made
/// after the parts.
struct LosesFinalAnswer {
    finals: std::sync::atomic::AtomicU32,
    plain: bool,
}

impl Meddler for LosesFinalAnswer {
    fn answer(&self, parts: &axum::http::request::Parts, answer: &mut Answer) {
        let is_final = parts
            .headers
            .get("upload-concat")
            .is_some_and(|value| value.as_bytes().starts_with(b"final;"));
        if is_final
            && self
                .finals
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                == 0
        {
            answer.lose(axum::http::StatusCode::BAD_GATEWAY);
            return;
        }
        if let (true, Some(offered)) = (self.plain, answer.headers.get("tus-extension")) {
            let offered = offered.to_str().expect("text");
            let plain: Vec<&str> = offered
                .split(',')
                .filter(|name| *name != "concatenation-unfinished")
                .collect();
            answer.headers.insert(
                "tus-extension",
                plain.join(",").parse().expect("a header value"),
            );
        }
    }
}

/// The answer to the final upload is lost after the receiver made it. Made
/// after the parts (plain concatenation), the retry finds the parts gone,
/// the file is left missing, and verification adopts the receiver's copy
/// by its checksum. Made before them (concatenation-unfinished), the retry
/// is answered with the same final upload. Nothing is sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_final_answer_is_adopted_not_sent_again() {
    for plain in [true, false] {
        let directory = tempfile::tempdir().expect("temporary directory");
        let inbox = directory.path().join("inbox");
        let (mut receiver, files) = start_receiver(&inbox);
        let losing = std::sync::Arc::new(LosesFinalAnswer {
            finals: std::sync::atomic::AtomicU32::new(0),
            plain,
        });
        let proxy = Proxy::start(files.trim_end_matches("/files"), losing.clone()).await;
        let proxied = format!("{}/files", proxy.url);
        let (file, sha256) = data_file(directory.path(), "extract.bin", 2_000_000);
        let ledger = directory.path().join("ledger.db");
        let run = crate::cutover_async(&[
            "send",
            &file.display().to_string(),
            "--to",
            &proxied,
            "--ledger",
            &ledger.display().to_string(),
            "--parallel-parts",
            "4",
            "--chunk-size",
            "131072",
            "--check",
            "receipt",
        ])
        .await;
        receiver.kill().expect("stop");
        receiver.wait().expect("wait");
        assert!(
            losing.finals.load(std::sync::atomic::Ordering::SeqCst) >= 2,
            "the final upload was retried"
        );
        assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
        assert!(run.stdout.contains("1 verified"), "{}", run.stdout);
        let receipt = only_receipt(&inbox);
        assert_eq!(receipt["sha256"], sha256.as_str());
        let details = details(&ledger);
        let adopted = details
            .iter()
            .any(|detail| detail.contains("adopted, not sent again"));
        let early = details
            .iter()
            .any(|detail| detail.contains("final upload made before its parts"));
        assert_eq!((adopted, early), (plain, !plain), "{details:?}");
    }
}

/// SIGKILL of the receiver while a part streams into its final upload
/// (made before its parts): the restarted receiver still has the final,
/// the finished part and the offset the streaming part had reached; the
/// part resumed from there finishes the final, stored whole, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_killed_while_a_part_streams_into_its_final_stores_the_file_once() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let directory = tempfile::tempdir().expect("temporary directory");
    let inbox = directory.path().join("inbox");
    let (mut child, files) = start_receiver(&inbox);
    let client = reqwest::Client::new();
    let tus = |request: reqwest::RequestBuilder| request.header("Tus-Resumable", "1.0.0");
    let half = 24usize << 20;
    let data: Vec<u8> = (0..2 * half as u32)
        .map(|n| n.wrapping_mul(37) as u8)
        .collect();
    let mut paths = Vec::new();
    for _ in 0..2 {
        let answer = tus(client.post(&files))
            .header("Upload-Concat", "partial")
            .header("Upload-Length", half.to_string())
            .send()
            .await
            .expect("a partial upload");
        assert_eq!(answer.status().as_u16(), 201);
        let location = answer.headers()["location"].to_str().expect("location");
        paths.push(location[location.find("/files/").expect("a path")..].to_owned());
    }
    let answer = tus(client.post(&files))
        .header("Upload-Concat", format!("final;{}", paths.join(" ")))
        .send()
        .await
        .expect("the final upload, before its parts");
    assert_eq!(answer.status().as_u16(), 201);
    let location = answer.headers()["location"].to_str().expect("location");
    let whole_path = location[location.find("/files/").expect("a path")..].to_owned();
    let origin = files[..files.find("/files").expect("files")].to_owned();
    let answer = tus(client.patch(format!("{origin}{}", paths[0])))
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", "0")
        .body(data[..half].to_vec())
        .send()
        .await
        .expect("the first part");
    assert_eq!(answer.status().as_u16(), 204);

    // The second part on the wire by hand, stopped half-way, so the
    // receiver is killed in the middle of it.
    let id = whole_path.rsplit('/').next().expect("id");
    let target = inbox.join("uploads").join(format!("{id}.part"));
    let written = |path: &Path| {
        std::fs::metadata(path).map_or(0, |meta| {
            std::os::unix::fs::MetadataExt::blocks(&meta) * 512
        })
    };
    let address = origin.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let head = format!(
        "PATCH {} HTTP/1.1\r\nHost: {address}\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n\
         Content-Length: {half}\r\n\r\n",
        paths[1]
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
        .write_all(&data[half..half + (12 << 20)])
        .await
        .expect("part of the body");
    let started = Instant::now();
    while written(&target) < half as u64 + (4 << 20) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the part never reached the final's file"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    assert!(answer.is_empty(), "the killed receiver answered the part");

    let (mut child, files) = start_receiver(&inbox);
    let origin = files[..files.find("/files").expect("files")].to_owned();
    let state = tus(client.head(format!("{origin}{whole_path}")))
        .send()
        .await
        .expect("the final");
    assert_eq!(state.status().as_u16(), 200);
    assert!(
        !state.headers().contains_key("upload-offset"),
        "not finished"
    );
    let second = format!("{origin}{}", paths[1]);
    let state = tus(client.head(&second)).send().await.expect("the part");
    let offset: usize = state.headers()["upload-offset"]
        .to_str()
        .expect("text")
        .parse()
        .expect("a number");
    assert!(offset < half, "the cut-short append is not complete");
    let answer = tus(client.patch(&second))
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", offset.to_string())
        .body(data[half + offset..].to_vec())
        .send()
        .await
        .expect("the resumed part");
    assert_eq!(answer.status().as_u16(), 204);
    let receipt: serde_json::Value = reqwest::get(format!("{origin}/receipts/{id}"))
        .await
        .expect("receipt")
        .json()
        .await
        .expect("json");
    child.kill().expect("stop");
    child.wait().expect("wait");
    assert_eq!(receipt["sha256"], hex(&sha2::Sha256::digest(&data)));
    assert_eq!(
        std::fs::read_dir(inbox.join("complete"))
            .expect("complete")
            .count(),
        1,
        "stored once"
    );
    assert_eq!(
        std::fs::read_dir(inbox.join("uploads"))
            .expect("uploads")
            .count(),
        0,
        "the partials are gone"
    );
}
