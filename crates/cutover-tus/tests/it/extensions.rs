//! The tus 1.0 extensions beyond the core, status code by status code, over
//! real HTTP on loopback: absolute upload URLs, creation-defer-length,
//! concatenation, checksum trailers (written on the wire by hand, since
//! clients rarely send them), 415 for a creation's body of the wrong type,
//! and termination of finished uploads.

use sha2::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{b64, receiver, receiver_with, tus};

const OCTETS: &str = "application/offset+octet-stream";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Files in one of the storage directory's parts.
fn count(directory: &tempfile::TempDir, part: &str) -> usize {
    std::fs::read_dir(directory.path().join(part))
        .expect("a storage part")
        .count()
}

async fn head(upload: &str) -> reqwest::Response {
    tus(reqwest::Client::new().head(upload))
        .send()
        .await
        .expect("head")
}

async fn patch(upload: &str, offset: u64, body: &'static [u8]) -> reqwest::Response {
    tus(reqwest::Client::new().patch(upload))
        .header("Content-Type", OCTETS)
        .header("Upload-Offset", offset.to_string())
        .body(body)
        .send()
        .await
        .expect("patch")
}

/// A partial upload made whole with its creation.
async fn partial(url: &str, data: &'static [u8]) -> String {
    let answer = tus(reqwest::Client::new().post(format!("{url}/files")))
        .header("Upload-Concat", "partial")
        .header("Upload-Length", data.len().to_string())
        .header("Content-Type", OCTETS)
        .body(data)
        .send()
        .await
        .expect("create a partial upload");
    assert_eq!(answer.status().as_u16(), 201);
    answer.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned()
}

#[tokio::test]
async fn options_advertises_exactly_the_extensions() {
    let (_directory, url) = receiver(None, 3600).await;
    let answer = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{url}/files"))
        .send()
        .await
        .expect("options");
    assert_eq!(answer.status().as_u16(), 204);
    let mut extensions: Vec<&str> = answer.headers()["tus-extension"]
        .to_str()
        .expect("extensions")
        .split(',')
        .collect();
    extensions.sort_unstable();
    assert_eq!(
        extensions,
        [
            "checksum",
            "checksum-trailer",
            "concatenation",
            "concatenation-unfinished",
            "creation",
            "creation-defer-length",
            "creation-with-upload",
            "expiration",
            "termination"
        ]
    );
    assert_eq!(
        answer.headers()["tus-checksum-algorithm"],
        "crc32,sha256,sha1"
    );
}

/// Location is absolute: from Host; from the configured public URL; from
/// the proxy's X-Forwarded headers only when they are trusted.
#[tokio::test]
async fn upload_urls_are_absolute() {
    let create = |url: String, headers: Vec<(&'static str, &'static str)>| async move {
        let mut request =
            tus(reqwest::Client::new().post(format!("{url}/files"))).header("Upload-Length", "1");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let answer = request.send().await.expect("create");
        assert_eq!(answer.status().as_u16(), 201);
        answer.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned()
    };
    let forwarded = vec![
        ("X-Forwarded-Host", "inbox.example.org"),
        ("X-Forwarded-Proto", "https"),
    ];
    let (_plain, url) = receiver(None, 3600).await;
    let location = create(url.clone(), forwarded.clone()).await;
    assert!(location.starts_with(&format!("{url}/files/")), "{location}");
    let (_behind, url) = receiver_with(|config| config.trust_proxy = true).await;
    let location = create(url.clone(), forwarded).await;
    assert!(
        location.starts_with("https://inbox.example.org/files/"),
        "{location}"
    );
    let location = create(url.clone(), vec![]).await;
    assert!(location.starts_with(&format!("{url}/files/")), "{location}");
    let (_public, url) = receiver_with(|config| {
        config.public_url = Some("https://gateway.example.org/tus/".to_owned());
    })
    .await;
    let location = create(url, vec![("X-Forwarded-Host", "elsewhere.example")]).await;
    assert!(
        location.starts_with("https://gateway.example.org/tus/files/"),
        "{location}"
    );
}

/// A creation's body must be upload data: 415 and nothing kept otherwise.
#[tokio::test]
async fn a_creation_body_of_another_type_is_refused() {
    let (directory, url) = receiver(None, 3600).await;
    let answer = tus(reqwest::Client::new().post(format!("{url}/files")))
        .header("Upload-Length", "5")
        .header("Content-Type", "application/json")
        .body("{\"a\"}")
        .send()
        .await
        .expect("create");
    assert_eq!(answer.status().as_u16(), 415);
    assert_eq!(count(&directory, "uploads"), 0);
}

/// DELETE frees a finished upload (file and receipt); a second DELETE
/// finds nothing.
#[tokio::test]
async fn a_finished_upload_is_terminated() {
    let (directory, url) = receiver(None, 3600).await;
    let answer = tus(reqwest::Client::new().post(format!("{url}/files")))
        .header("Upload-Length", "5")
        .header("Content-Type", OCTETS)
        .body("hello")
        .send()
        .await
        .expect("create");
    let upload = answer.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let id = upload.rsplit('/').next().expect("id").to_owned();
    assert_eq!(count(&directory, "complete"), 1);
    let delete = || async {
        tus(reqwest::Client::new().delete(&upload))
            .send()
            .await
            .expect("delete")
            .status()
            .as_u16()
    };
    assert_eq!(delete().await, 204);
    assert_eq!(
        (count(&directory, "complete"), count(&directory, "receipts")),
        (0, 0)
    );
    let receipt = reqwest::get(format!("{url}/receipts/{id}"))
        .await
        .expect("receipt");
    assert_eq!(receipt.status().as_u16(), 404);
    assert_eq!(head(&upload).await.status().as_u16(), 404);
    assert_eq!(delete().await, 404);
}

/// creation-defer-length: the length arrives with a PATCH, once; the same
/// value again is harmless, another is refused.
#[tokio::test]
async fn a_deferred_length_is_set_once() {
    let (directory, url) = receiver(None, 3600).await;
    let create = |headers: Vec<(&'static str, &'static str)>| {
        let url = url.clone();
        async move {
            let mut request = tus(reqwest::Client::new().post(format!("{url}/files")));
            for (name, value) in headers {
                request = request.header(name, value);
            }
            request.send().await.expect("create")
        }
    };
    assert_eq!(
        create(vec![("Upload-Defer-Length", "1"), ("Upload-Length", "6")])
            .await
            .status()
            .as_u16(),
        400
    );
    assert_eq!(
        create(vec![("Upload-Defer-Length", "2")])
            .await
            .status()
            .as_u16(),
        400
    );
    assert_eq!(create(vec![]).await.status().as_u16(), 400);
    let answer = create(vec![("Upload-Defer-Length", "1")]).await;
    assert_eq!(answer.status().as_u16(), 201);
    let upload = answer.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let state = head(&upload).await;
    assert_eq!(state.headers()["upload-defer-length"], "1");
    assert!(!state.headers().contains_key("upload-length"));
    assert_eq!(patch(&upload, 0, b"abc").await.status().as_u16(), 204);
    // The length, then the same again (a retried request), then another.
    let with_length = |length: &'static str, offset: u64, body: &'static [u8]| {
        let upload = upload.clone();
        async move {
            tus(reqwest::Client::new().patch(&upload))
                .header("Content-Type", OCTETS)
                .header("Upload-Offset", offset.to_string())
                .header("Upload-Length", length)
                .body(body)
                .send()
                .await
                .expect("patch")
                .status()
                .as_u16()
        }
    };
    assert_eq!(with_length("2", 3, b"").await, 400, "below the offset");
    assert_eq!(with_length("9", 3, b"def").await, 204);
    assert_eq!(head(&upload).await.headers()["upload-length"], "9");
    assert_eq!(with_length("9", 6, b"").await, 204);
    assert_eq!(with_length("10", 6, b"").await, 400, "set twice");
    assert_eq!(with_length("9", 6, b"ghi").await, 204);
    assert_eq!(count(&directory, "complete"), 1);
    let id = upload.rsplit('/').next().expect("id");
    let stored = std::fs::read(directory.path().join("complete").join(id)).expect("stored");
    assert_eq!(stored, b"abcdefghi");
}

/// concatenation: partial uploads (never files of their own) made into one
/// final upload whose offset is their sum, hashed and receipted; PATCH on
/// the final refused; bad lists refused with nothing stored.
#[tokio::test]
async fn partial_uploads_become_one_final_upload() {
    let (directory, url) = receiver(None, 3600).await;
    let first = partial(&url, b"hello, ").await;
    let second = partial(&url, b"world").await;
    let state = head(&first).await;
    assert_eq!(state.headers()["upload-concat"], "partial");
    assert_eq!(state.headers()["upload-offset"], "7");
    assert_eq!(count(&directory, "receipts"), 0, "a partial is no file");
    assert_eq!(patch(&first, 7, b"!").await.status().as_u16(), 403);

    let final_of = |list: String| {
        let url = url.clone();
        async move {
            tus(reqwest::Client::new().post(format!("{url}/files")))
                .header("Upload-Concat", format!("final;{list}"))
                .header(
                    "Upload-Metadata",
                    format!("filename {}", b64(b"greeting.txt")),
                )
                .send()
                .await
                .expect("create the final upload")
        }
    };
    let path = |upload: &str| {
        let at = upload.find("/files/").expect("a path");
        upload[at..].to_owned()
    };
    for (list, why) in [
        (
            format!("{first} /files/0123456789abcdef0123456789abcdef"),
            "unknown",
        ),
        (format!("{first} {first}"), "twice"),
        (format!("{first} /receipts/x"), "not an upload"),
    ] {
        let answer = final_of(list).await;
        assert_eq!(answer.status().as_u16(), 400, "{why}");
    }
    assert_eq!(count(&directory, "complete"), 0, "nothing stored half-way");

    // One absolute URL and one path, in order.
    let answer = final_of(format!("{first} {}", path(&second))).await;
    assert_eq!(answer.status().as_u16(), 201);
    let whole = answer.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(whole.starts_with(&format!("{url}/files/")), "{whole}");
    let state = head(&whole).await;
    assert_eq!(state.headers()["upload-offset"], "12");
    assert_eq!(state.headers()["upload-length"], "12");
    assert_eq!(
        state.headers()["upload-concat"],
        format!("final;{} {}", path(&first), path(&second)).as_str()
    );
    assert_eq!(patch(&whole, 12, b"!").await.status().as_u16(), 403);
    let id = whole.rsplit('/').next().expect("id");
    let receipt: cutover_tus::Receipt = reqwest::get(format!("{url}/receipts/{id}"))
        .await
        .expect("receipt")
        .json()
        .await
        .expect("a receipt");
    assert_eq!(receipt.size, 12);
    assert_eq!(receipt.sha256, hex(&sha2::Sha256::digest(b"hello, world")));
    assert_eq!(receipt.metadata["filename"], "greeting.txt");
    // The partials are gone: a second final upload cannot take them.
    assert_eq!(head(&first).await.status().as_u16(), 404);
    assert_eq!(
        final_of(format!("{first} {second}"))
            .await
            .status()
            .as_u16(),
        400
    );
    assert_eq!(count(&directory, "receipts"), 1);
}

/// Sends a PATCH with a chunked body and, if given, trailers, on the wire;
/// returns the status code.
async fn chunked_patch(
    upload: &str,
    offset: u64,
    body: &[u8],
    announce: bool,
    trailer: Option<&str>,
) -> u16 {
    let url = reqwest::Url::parse(upload).expect("an absolute URL");
    let address = format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port().expect("port")
    );
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let mut request = format!(
        "PATCH {} HTTP/1.1\r\nHost: {}\r\nTus-Resumable: 1.0.0\r\nContent-Type: {OCTETS}\r\n\
         Upload-Offset: {offset}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n",
        url.path(),
        url.host_str().expect("host")
    )
    .into_bytes();
    if announce {
        request.extend_from_slice(b"Trailer: Upload-Checksum\r\n");
    }
    request.extend_from_slice(b"\r\n");
    for piece in body.chunks(4) {
        request.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        request.extend_from_slice(piece);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n");
    if let Some(trailer) = trailer {
        request.extend_from_slice(format!("Upload-Checksum: {trailer}\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    stream.write_all(&request).await.expect("request");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("answer");
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer}"))
}

/// checksum-trailer: the checksum after a chunked body; a mismatch is 460
/// with the chunk discarded; a missing or unannounced trailer is refused.
#[tokio::test]
async fn a_checksum_trailer_is_checked() {
    let (_directory, url) = receiver(None, 3600).await;
    let answer = tus(reqwest::Client::new().post(format!("{url}/files")))
        .header("Upload-Length", "20")
        .send()
        .await
        .expect("create");
    let upload = answer.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let offset = |upload: String| async move {
        head(&upload).await.headers()["upload-offset"]
            .to_str()
            .expect("offset")
            .to_owned()
    };
    let chunk = b"0123456789";
    let right = format!("sha1 {}", b64(&sha1::Sha1::digest(chunk)));
    let wrong = format!("sha256 {}", b64(&sha2::Sha256::digest(b"something else")));
    assert_eq!(
        chunked_patch(&upload, 0, chunk, true, Some(&wrong)).await,
        460
    );
    assert_eq!(offset(upload.clone()).await, "0", "the chunk is discarded");
    assert_eq!(
        chunked_patch(&upload, 0, chunk, true, None).await,
        400,
        "announced, missing"
    );
    assert_eq!(
        chunked_patch(&upload, 0, chunk, false, Some(&right)).await,
        400,
        "unannounced"
    );
    assert_eq!(offset(upload.clone()).await, "0");
    assert_eq!(
        chunked_patch(&upload, 0, chunk, true, Some(&right)).await,
        204
    );
    assert_eq!(offset(upload.clone()).await, "10");
    let crc = format!(
        "crc32 {}",
        b64(&crc32fast::hash(b"abcdefghij").to_be_bytes())
    );
    assert_eq!(
        chunked_patch(&upload, 10, b"abcdefghij", true, Some(&crc)).await,
        204
    );
    assert_eq!(offset(upload).await, "20");
}
