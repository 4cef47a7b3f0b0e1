//! concatenation-unfinished over real HTTP on loopback: a final upload
//! made before its partial uploads finish, finished by the last of them
//! before its answer; taken partials; the same final asked for twice; a
//! partial terminated under a final; a restart in the middle.

use sha2::Digest as _;

use super::{b64, receiver, serve_on, tus};

const OCTETS: &str = "application/offset+octet-stream";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Files left in `uploads/` (open uploads' data and state).
fn open_files(directory: &std::path::Path) -> usize {
    std::fs::read_dir(directory.join("uploads"))
        .expect("uploads")
        .count()
}

async fn partial(url: &str, length: &str) -> String {
    let answer = tus(reqwest::Client::new().post(format!("{url}/files")))
        .header("Upload-Concat", "partial")
        .header(
            if length == "deferred" {
                "Upload-Defer-Length"
            } else {
                "Upload-Length"
            },
            if length == "deferred" { "1" } else { length },
        )
        .send()
        .await
        .expect("create a partial upload");
    assert_eq!(answer.status().as_u16(), 201);
    answer.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned()
}

async fn final_of(url: &str, parts: &[&str]) -> reqwest::Response {
    tus(reqwest::Client::new().post(format!("{url}/files")))
        .header("Upload-Concat", format!("final;{}", parts.join(" ")))
        .header("Upload-Metadata", format!("filename {}", b64(b"whole.txt")))
        .send()
        .await
        .expect("create the final upload")
}

async fn patch(upload: &str, offset: u64, body: &'static [u8]) -> u16 {
    tus(reqwest::Client::new().patch(upload))
        .header("Content-Type", OCTETS)
        .header("Upload-Offset", offset.to_string())
        .body(body)
        .send()
        .await
        .expect("patch")
        .status()
        .as_u16()
}

async fn head(upload: &str) -> reqwest::Response {
    tus(reqwest::Client::new().head(upload))
        .send()
        .await
        .expect("head")
}

fn location(answer: &reqwest::Response) -> String {
    answer.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned()
}

#[tokio::test]
async fn a_final_made_before_its_partials_finish_is_finished_by_the_last() {
    let (directory, url) = receiver(None, 3600).await;
    let (first, second, third) = (
        partial(&url, "6").await,
        partial(&url, "6").await,
        partial(&url, "6").await,
    );
    // The second already holds some data: it is copied once at the end;
    // the others are written in place.
    assert_eq!(patch(&second, 0, b"tus").await, 204);
    let answer = final_of(&url, &[&first, &second, &third]).await;
    assert_eq!(answer.status().as_u16(), 201);
    let whole = location(&answer);

    // Not finished: its length and parts, no offset (undefined until then).
    let state = head(&whole).await;
    assert_eq!(state.status().as_u16(), 200);
    assert_eq!(state.headers()["upload-length"], "18");
    assert!(!state.headers().contains_key("upload-offset"));
    let concat = state.headers()["upload-concat"].to_str().expect("text");
    assert!(concat.starts_with("final;/files/"), "{concat}");
    assert_eq!(patch(&whole, 0, b"x").await, 403, "a final takes no data");

    // Taken partials are not taken again; the same final asked for again
    // is the same upload.
    assert_eq!(final_of(&url, &[&first, &third]).await.status(), 400);
    let again = final_of(&url, &[&first, &second, &third]).await;
    assert_eq!(again.status().as_u16(), 201);
    assert_eq!(location(&again), whole);

    assert_eq!(patch(&first, 0, b"parts ").await, 204);
    assert_eq!(patch(&third, 0, b"place.").await, 204);
    assert_eq!(head(&whole).await.headers().get("upload-offset"), None);
    assert_eq!(patch(&second, 2, b"-in").await, 409, "wrong offset");
    // The last partial's answer comes once the final is stored.
    assert_eq!(patch(&second, 3, b"-in").await, 204);
    let id = whole.rsplit('/').next().expect("id");
    let receipt: cutover_tus::Receipt = reqwest::get(format!("{url}/receipts/{id}"))
        .await
        .expect("receipt")
        .json()
        .await
        .expect("a receipt");
    let bytes = b"parts tus-inplace.";
    assert_eq!(receipt.size, 18);
    assert_eq!(receipt.sha256, hex(&sha2::Sha256::digest(bytes)));
    assert_eq!(receipt.metadata["filename"], "whole.txt");
    assert_eq!(
        std::fs::read(directory.path().join("complete").join(id)).expect("stored"),
        bytes
    );
    let state = head(&whole).await;
    assert_eq!(state.headers()["upload-offset"], "18");
    assert_eq!(state.headers()["upload-length"], "18");
    for part in [&first, &second, &third] {
        assert_eq!(head(part).await.status().as_u16(), 404, "partials are gone");
    }
    assert_eq!(open_files(directory.path()), 0, "nothing left open");
}

#[tokio::test]
async fn unfinished_partials_that_cannot_make_a_final_are_refused() {
    let (directory, url) = receiver(None, 3600).await;
    let deferred = partial(&url, "deferred").await;
    let sized = partial(&url, "4").await;
    assert_eq!(final_of(&url, &[&sized, &deferred]).await.status(), 400);
    let large = partial(&url, &(1 << 20).to_string()).await;
    assert_eq!(final_of(&url, &[&sized, &large]).await.status(), 413);
    // Nothing was taken: one of them still makes a final.
    let answer = final_of(&url, &[&sized]).await;
    assert_eq!(answer.status().as_u16(), 201);
    assert_eq!(patch(&sized, 0, b"done").await, 204);
    assert_eq!(
        head(&location(&answer)).await.headers()["upload-offset"],
        "4"
    );
    assert_eq!(
        std::fs::read_dir(directory.path().join("complete"))
            .expect("complete")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_final_whose_partial_is_terminated_is_gone() {
    let (directory, url) = receiver(None, 3600).await;
    let (first, second) = (partial(&url, "3").await, partial(&url, "3").await);
    let whole = location(&final_of(&url, &[&first, &second]).await);
    assert_eq!(patch(&first, 0, b"abc").await, 204);
    let deleted = tus(reqwest::Client::new().delete(&second))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status().as_u16(), 204);
    assert_eq!(head(&whole).await.status().as_u16(), 410);
    assert_eq!(head(&first).await.status().as_u16(), 404);
    assert_eq!(open_files(directory.path()), 0, "nothing left open");
}

#[tokio::test]
async fn a_restarted_receiver_finishes_the_final() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let url = serve_on(directory.path(), |_| {}).await;
    let (first, second) = (partial(&url, "4").await, partial(&url, "4").await);
    let whole = location(&final_of(&url, &[&first, &second]).await);
    assert_eq!(patch(&first, 0, b"left").await, 204);
    assert_eq!(patch(&second, 0, b"ri").await, 204);

    // Another receiver on the same storage: everything is on disk.
    let again = serve_on(directory.path(), |_| {}).await;
    let moved = |upload: &str| upload.replace(&url, &again);
    let state = head(&moved(&second)).await;
    assert_eq!(state.headers()["upload-offset"], "2");
    assert_eq!(
        patch(&moved(&second), 2, b"ght").await,
        413,
        "past its length"
    );
    assert_eq!(patch(&moved(&second), 2, b"gh").await, 204);
    let state = head(&moved(&whole)).await;
    assert_eq!(state.headers()["upload-offset"], "8");
    let id = whole.rsplit('/').next().expect("id");
    assert_eq!(
        std::fs::read(directory.path().join("complete").join(id)).expect("stored"),
        b"leftrigh"
    );
    assert_eq!(open_files(directory.path()), 0, "nothing left open");
}
