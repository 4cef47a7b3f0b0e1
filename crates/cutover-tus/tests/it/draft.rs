//! The IETF resumable-upload draft beside tus 1.0 on the same endpoint,
//! status code by status code, over real HTTP on loopback: careful and
//! optimistic creation, offset retrieval, appends, the problem types,
//! `Repr-Digest` and `Content-Digest`, cancellation, limits, and interop
//! versions.

use sha2::Digest as _;

use super::{b64, receiver, receiver_with, tus};

const PARTIAL: &str = "application/partial-upload";

fn draft(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request.header("Upload-Draft-Interop-Version", "8")
}

fn header<'a>(answer: &'a reqwest::Response, name: &str) -> &'a str {
    answer
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("{name} is missing"))
        .to_str()
        .expect("a text header")
}

fn repr_digest(data: &[u8]) -> String {
    format!("sha-256=:{}:", b64(&sha2::Sha256::digest(data)))
}

/// Files in one of the storage directory's parts.
fn count(directory: &tempfile::TempDir, part: &str) -> usize {
    std::fs::read_dir(directory.path().join(part))
        .expect("a storage part")
        .count()
}

async fn append(
    upload: &str,
    offset: u64,
    complete: bool,
    body: &'static [u8],
) -> reqwest::Response {
    draft(reqwest::Client::new().patch(upload))
        .header("Content-Type", PARTIAL)
        .header("Upload-Offset", offset.to_string())
        .header("Upload-Complete", if complete { "?1" } else { "?0" })
        .body(body)
        .send()
        .await
        .expect("append")
}

async fn head(upload: &str) -> reqwest::Response {
    draft(reqwest::Client::new().head(upload))
        .send()
        .await
        .expect("head")
}

#[tokio::test]
async fn careful_creation_appends_and_completion() {
    let (directory, url) = receiver(None, 3600).await;
    let data: &'static [u8] = b"MSH|^~\\&|LAB|draft appended in three requests|";
    let answer = draft(reqwest::Client::new().post(format!("{url}/files")))
        .header("Upload-Complete", "?0")
        .header("Upload-Length", data.len().to_string())
        .header("Content-Disposition", "inline; filename=\"result.hl7\"")
        .send()
        .await
        .expect("create");
    assert_eq!(answer.status().as_u16(), 201);
    let upload = header(&answer, "location").to_owned();
    assert!(upload.starts_with(&format!("{url}/files/")), "{upload}");
    assert_eq!(header(&answer, "upload-complete"), "?0");
    assert_eq!(header(&answer, "upload-offset"), "0");
    assert!(header(&answer, "upload-limit").contains("max-size=1048576"));

    let answer = head(&upload).await;
    assert_eq!(answer.status().as_u16(), 204);
    assert_eq!(header(&answer, "upload-offset"), "0");
    assert_eq!(header(&answer, "upload-complete"), "?0");
    assert_eq!(header(&answer, "upload-length"), data.len().to_string());
    assert_eq!(header(&answer, "cache-control"), "no-store");
    assert!(header(&answer, "upload-limit").contains("max-age="));

    // Appends must be application/partial-upload and say whether they complete.
    let wrong_type = draft(reqwest::Client::new().patch(&upload))
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", "0")
        .header("Upload-Complete", "?0")
        .body(&data[..10])
        .send()
        .await
        .expect("append");
    assert_eq!(wrong_type.status().as_u16(), 415);
    let unsaid = draft(reqwest::Client::new().patch(&upload))
        .header("Content-Type", PARTIAL)
        .header("Upload-Offset", "0")
        .body(&data[..10])
        .send()
        .await
        .expect("append");
    assert_eq!(unsaid.status().as_u16(), 400);

    let answer = append(&upload, 0, false, &data[..10]).await;
    assert_eq!(answer.status().as_u16(), 204);
    assert_eq!(header(&answer, "upload-complete"), "?0");
    assert_eq!(header(&answer, "upload-offset"), "10");

    // A stale offset: 409 with the offset to use, as a problem document.
    let answer = append(&upload, 0, false, &data[..10]).await;
    assert_eq!(answer.status().as_u16(), 409);
    assert_eq!(header(&answer, "upload-offset"), "10");
    assert_eq!(header(&answer, "content-type"), "application/problem+json");
    let problem: serde_json::Value = answer.json().await.expect("problem");
    assert_eq!(
        problem["type"],
        "https://iana.org/assignments/http-problem-types#mismatching-upload-offset"
    );
    assert_eq!(problem["expected-offset"], 10);
    assert_eq!(problem["provided-offset"], 0);

    // Data reaching the announced length does not complete the upload:
    // only the client's Upload-Complete: ?1 does.
    let answer = append(&upload, 10, false, &data[10..]).await;
    assert_eq!(answer.status().as_u16(), 204);
    assert_eq!(header(&answer, "upload-complete"), "?0");
    assert_eq!(count(&directory, "complete"), 0);

    let answer = append(&upload, data.len() as u64, true, b"").await;
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(header(&answer, "upload-complete"), "?1");
    assert_eq!(header(&answer, "repr-digest"), repr_digest(data));
    let receipt: serde_json::Value = answer.json().await.expect("the receipt");
    assert_eq!(receipt["size"], data.len());
    assert_eq!(receipt["metadata"]["filename"], "result.hl7");
    let id = upload.rsplit('/').next().expect("id");
    assert_eq!(
        std::fs::read(directory.path().join("complete").join(id)).expect("stored"),
        data
    );
    assert_eq!(count(&directory, "uploads"), 0);

    let answer = head(&upload).await;
    assert_eq!(header(&answer, "upload-complete"), "?1");
    assert_eq!(header(&answer, "upload-offset"), data.len().to_string());
    assert_eq!(header(&answer, "repr-digest"), repr_digest(data));

    // A completed upload takes nothing more.
    let answer = append(&upload, data.len() as u64, true, b"more").await;
    assert_eq!(answer.status().as_u16(), 400);
    let problem: serde_json::Value = answer.json().await.expect("problem");
    assert_eq!(
        problem["type"],
        "https://iana.org/assignments/http-problem-types#inconsistent-upload-length"
    );
    let answer = append(&upload, data.len() as u64, true, b"").await;
    assert_eq!(answer.status().as_u16(), 400);
    let problem: serde_json::Value = answer.json().await.expect("problem");
    assert_eq!(
        problem["type"],
        "https://iana.org/assignments/http-problem-types#completed-upload"
    );
    assert_eq!(count(&directory, "complete"), 1);
}

#[tokio::test]
async fn optimistic_creation_is_held_to_its_repr_digest() {
    let (directory, url) = receiver(None, 3600).await;
    let data: &'static [u8] = b"a whole file in its creation";
    let answer = draft(reqwest::Client::new().post(format!("{url}/files")))
        .header("Upload-Complete", "?1")
        .header("Repr-Digest", repr_digest(data))
        .header("Upload-Metadata", format!("filename {}", b64(b"whole.txt")))
        .body(data)
        .send()
        .await
        .expect("create");
    assert_eq!(answer.status().as_u16(), 201);
    assert_eq!(header(&answer, "upload-complete"), "?1");
    assert_eq!(header(&answer, "repr-digest"), repr_digest(data));
    assert!(answer.headers().contains_key("location"));
    let receipt: serde_json::Value = answer.json().await.expect("the receipt");
    assert_eq!(receipt["metadata"]["filename"], "whole.txt");

    // Another file's digest: the upload fails and nothing is kept.
    let answer = draft(reqwest::Client::new().post(format!("{url}/files")))
        .header("Upload-Complete", "?1")
        .header("Repr-Digest", repr_digest(b"something else"))
        .body(data)
        .send()
        .await
        .expect("create");
    assert_eq!(answer.status().as_u16(), 400);
    assert_eq!(header(&answer, "upload-complete"), "?1");
    assert_eq!(count(&directory, "complete"), 1);
    assert_eq!(count(&directory, "receipts"), 1);
    assert_eq!(count(&directory, "uploads"), 0);

    // A malformed digest is refused before anything is stored.
    let answer = draft(reqwest::Client::new().post(format!("{url}/files")))
        .header("Upload-Complete", "?1")
        .header("Repr-Digest", "sha-256=:not base64:")
        .body(data)
        .send()
        .await
        .expect("create");
    assert_eq!(answer.status().as_u16(), 400);
    assert_eq!(count(&directory, "uploads"), 0);
}

#[tokio::test]
async fn lengths_must_agree_and_stay_within_the_limit() {
    let (directory, url) = receiver(None, 3600).await;
    let create = |complete: &'static str, length: &'static str, body: &'static [u8]| {
        draft(reqwest::Client::new().post(format!("{url}/files")))
            .header("Upload-Complete", complete)
            .header("Upload-Length", length)
            .body(body)
            .send()
    };
    // Upload-Length against the length a complete creation sends.
    let answer = create("?1", "10", b"12345").await.expect("create");
    assert_eq!(answer.status().as_u16(), 400);
    let problem: serde_json::Value = answer.json().await.expect("problem");
    assert_eq!(
        problem["type"],
        "https://iana.org/assignments/http-problem-types#inconsistent-upload-length"
    );
    // Over the largest upload accepted: 413 with the limit.
    let answer = create("?0", "2000000", b"").await.expect("create");
    assert_eq!(answer.status().as_u16(), 413);
    assert!(header(&answer, "upload-limit").contains("max-size=1048576"));
    assert_eq!(count(&directory, "uploads"), 0);

    let answer = create("?0", "10", b"12345").await.expect("create");
    assert_eq!(answer.status().as_u16(), 201);
    assert_eq!(header(&answer, "upload-offset"), "5");
    let upload = header(&answer, "location").to_owned();
    // A completion short of the announced length, another length, data past it.
    let answer = append(&upload, 5, true, b"67").await;
    assert_eq!(answer.status().as_u16(), 400);
    let answer = draft(reqwest::Client::new().patch(&upload))
        .header("Content-Type", PARTIAL)
        .header("Upload-Offset", "5")
        .header("Upload-Complete", "?0")
        .header("Upload-Length", "11")
        .body(&b"67"[..])
        .send()
        .await
        .expect("append");
    assert_eq!(answer.status().as_u16(), 400);
    let answer = append(&upload, 5, false, b"6789012").await;
    assert_eq!(answer.status().as_u16(), 413);
    assert_eq!(header(&head(&upload).await, "upload-offset"), "5");
    let answer = append(&upload, 5, true, b"67890").await;
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(count(&directory, "complete"), 1);
}

#[tokio::test]
async fn a_content_digest_mismatch_appends_nothing() {
    let (_directory, url) = receiver(None, 3600).await;
    let answer = draft(reqwest::Client::new().post(format!("{url}/files")))
        .header("Upload-Complete", "?0")
        .send()
        .await
        .expect("create");
    let upload = header(&answer, "location").to_owned();
    let with_digest = |digest: String| {
        draft(reqwest::Client::new().patch(&upload))
            .header("Content-Type", PARTIAL)
            .header("Upload-Offset", "0")
            .header("Upload-Complete", "?0")
            .header("Content-Digest", digest)
            .body(&b"chunk one"[..])
            .send()
    };
    let answer = with_digest(repr_digest(b"chunk 1")).await.expect("append");
    assert_eq!(answer.status().as_u16(), 400);
    assert_eq!(header(&head(&upload).await, "upload-offset"), "0");
    let answer = with_digest(repr_digest(b"chunk one"))
        .await
        .expect("append");
    assert_eq!(answer.status().as_u16(), 204);
    assert_eq!(header(&answer, "upload-offset"), "9");
}

#[tokio::test]
async fn cancellation_versions_and_discovery() {
    let (directory, url) = receiver_with(|config| config.expire_after_seconds = 600).await;
    let answer = draft(reqwest::Client::new().post(format!("{url}/files")))
        .header("Upload-Complete", "?0")
        .body(&b"half"[..])
        .send()
        .await
        .expect("create");
    let upload = header(&answer, "location").to_owned();
    let answer = draft(reqwest::Client::new().delete(&upload))
        .send()
        .await
        .expect("cancel");
    assert_eq!(answer.status().as_u16(), 204);
    assert_eq!(head(&upload).await.status().as_u16(), 404);
    assert_eq!(count(&directory, "uploads"), 0);

    // Without Upload-Complete, no resumable upload is made.
    let answer = draft(reqwest::Client::new().post(format!("{url}/files")))
        .body(&b"data"[..])
        .send()
        .await
        .expect("create");
    assert_eq!(answer.status().as_u16(), 400);
    // An interop version not spoken here, like a request of no protocol.
    let answer = reqwest::Client::new()
        .post(format!("{url}/files"))
        .header("Upload-Draft-Interop-Version", "3")
        .header("Upload-Complete", "?0")
        .send()
        .await
        .expect("create");
    assert_eq!(answer.status().as_u16(), 412);
    assert_eq!(count(&directory, "uploads"), 0);
    // Interop version 6 (draft -05, tus-js-client's) names the lifetime
    // `expires`, and an upload reaching its announced length is complete
    // there, as tus-js-client and tusd have it.
    let answer = reqwest::Client::new()
        .post(format!("{url}/files"))
        .header("Upload-Draft-Interop-Version", "6")
        .header("Upload-Complete", "?0")
        .header("Upload-Length", "4")
        .send()
        .await
        .expect("create");
    assert_eq!(answer.status().as_u16(), 201);
    assert!(header(&answer, "upload-limit").contains("expires=600"));
    let answer = reqwest::Client::new()
        .patch(header(&answer, "location"))
        .header("Upload-Draft-Interop-Version", "6")
        .header("Content-Type", PARTIAL)
        .header("Upload-Offset", "0")
        .header("Upload-Complete", "?0")
        .body(&b"six!"[..])
        .send()
        .await
        .expect("append");
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(header(&answer, "upload-complete"), "?1");
    assert_eq!(count(&directory, "complete"), 1);

    let answer = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{url}/files"))
        .send()
        .await
        .expect("options");
    assert_eq!(header(&answer, "accept-patch"), PARTIAL);
    assert!(header(&answer, "upload-limit").contains("max-size=1048576"));
    // tus 1.0 is still spoken on the same endpoint, and a tus completion
    // also says what was stored.
    let answer = tus(reqwest::Client::new().post(format!("{url}/files")))
        .header("Upload-Length", "4")
        .header("Content-Type", "application/offset+octet-stream")
        .body(&b"tus!"[..])
        .send()
        .await
        .expect("create");
    assert_eq!(answer.status().as_u16(), 201);
    assert_eq!(header(&answer, "repr-digest"), repr_digest(b"tus!"));
}
