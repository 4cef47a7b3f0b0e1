//! The receiver over real HTTP on loopback: the tus 1.0 core, creation,
//! creation-with-upload, checksum, termination and expiration, receipts,
//! authentication, limits, and file names that never become paths; the
//! other extensions in `extensions`.

mod draft;
mod extensions;
mod sender;
mod unfinished;

use base64::Engine as _;
use cutover_tus::{Receipt, ReceiverConfig};
use sha2::Digest as _;

async fn receiver(token: Option<&str>, expire_after_seconds: i64) -> (tempfile::TempDir, String) {
    receiver_with(|config| {
        config.token = token.map(str::to_owned);
        config.expire_after_seconds = expire_after_seconds;
    })
    .await
}

/// A receiver on loopback with the test defaults changed by `configure`.
async fn receiver_with(configure: impl FnOnce(&mut ReceiverConfig)) -> (tempfile::TempDir, String) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let url = serve_on(directory.path(), configure).await;
    (directory, url)
}

/// A receiver on loopback storing in `directory` (a restart when another
/// served it before); returns its URL once it answers.
async fn serve_on(
    directory: &std::path::Path,
    configure: impl FnOnce(&mut ReceiverConfig),
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let mut config = ReceiverConfig {
        directory: directory.to_owned(),
        max_size: 1 << 20,
        token: None,
        expire_after_seconds: 3600,
        lose_percent: 0,
        public_url: None,
        trust_proxy: false,
    };
    configure(&mut config);
    tokio::spawn(cutover_tus::serve(listener, config));
    // Wait until it answers.
    for _ in 0..100 {
        if reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, format!("{url}/files"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    url
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn tus(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request.header("Tus-Resumable", "1.0.0")
}

async fn create(url: &str, length: usize, metadata: &str) -> String {
    let answer = tus(reqwest::Client::new().post(format!("{url}/files")))
        .header("Upload-Length", length.to_string())
        .header("Upload-Metadata", metadata)
        .send()
        .await
        .expect("create");
    assert_eq!(answer.status().as_u16(), 201);
    assert!(answer.headers().contains_key("upload-expires"));
    let location = answer.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    // Absolute, from the request's Host.
    assert!(location.starts_with(&format!("{url}/files/")), "{location}");
    location
}

async fn patch(
    upload: &str,
    offset: usize,
    data: &[u8],
    checksum: Option<String>,
) -> reqwest::Response {
    let mut request = tus(reqwest::Client::new().patch(upload))
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", offset.to_string())
        .body(data.to_vec());
    if let Some(checksum) = checksum {
        request = request.header("Upload-Checksum", checksum);
    }
    request.send().await.expect("patch")
}

async fn offset(upload: &str) -> u64 {
    let answer = tus(reqwest::Client::new().head(upload))
        .send()
        .await
        .expect("head");
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    answer.headers()["upload-offset"]
        .to_str()
        .expect("offset")
        .parse()
        .expect("a number")
}

#[tokio::test]
async fn an_upload_in_chunks_is_persisted_before_the_last_answer_and_has_a_receipt() {
    let (directory, url) = receiver(None, 3600).await;
    let options = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{url}/files"))
        .send()
        .await
        .expect("options");
    assert_eq!(options.status().as_u16(), 204);
    assert!(
        options.headers()["tus-extension"]
            .to_str()
            .expect("text")
            .contains("checksum")
    );

    let data: Vec<u8> = (0..100_000u32).map(|n| (n % 251) as u8).collect();
    let metadata = format!(
        "filename {},data_stream {}",
        b64(b"../../etc/passwd"),
        b64(b"eicr")
    );
    let upload = create(&url, data.len(), &metadata).await;
    assert_eq!(offset(&upload).await, 0);

    let first = &data[..60_000];
    let sum = |bytes: &[u8]| format!("sha256 {}", b64(&sha2::Sha256::digest(bytes)));
    let answer = patch(&upload, 0, first, Some(sum(first))).await;
    assert_eq!(answer.status().as_u16(), 204);
    assert_eq!(answer.headers()["upload-offset"], "60000");
    assert_eq!(offset(&upload).await, 60_000);

    // A wrong offset is a conflict; a wrong checksum is 460 and the chunk is discarded.
    assert_eq!(
        patch(&upload, 1, &data[60_000..], None)
            .await
            .status()
            .as_u16(),
        409
    );
    let answer = patch(
        &upload,
        60_000,
        &data[60_000..],
        Some(sum(b"something else")),
    )
    .await;
    assert_eq!(answer.status().as_u16(), 460);
    assert_eq!(offset(&upload).await, 60_000);

    let answer = patch(
        &upload,
        60_000,
        &data[60_000..],
        Some(format!(
            "sha1 {}",
            b64(&sha1::Sha1::digest(&data[60_000..]))
        )),
    )
    .await;
    assert_eq!(answer.status().as_u16(), 204);
    assert_eq!(answer.headers()["upload-offset"], "100000");

    // By the time the last PATCH was answered, the file and its receipt were in place.
    let id = upload.rsplit('/').next().expect("id");
    let stored =
        std::fs::read(directory.path().join("complete").join(id)).expect("the stored file");
    assert_eq!(stored, data);
    let receipt: Receipt = reqwest::get(format!("{url}/receipts/{id}"))
        .await
        .expect("receipt")
        .json()
        .await
        .expect("json");
    assert_eq!(receipt.size, 100_000);
    assert_eq!(receipt.sha256, format!("{:x}", sha2::Sha256::digest(&data)));
    assert_eq!(receipt.metadata["filename"], "../../etc/passwd");
    // The name stayed data: nothing was written outside the storage directory.
    let mut names: Vec<String> = std::fs::read_dir(directory.path())
        .expect("directory")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["complete", "receipts", "uploads"]);
    assert_eq!(offset(&upload).await, 100_000);
    assert_eq!(
        patch(&upload, 100_000, b"more", None)
            .await
            .status()
            .as_u16(),
        403
    );

    let day = &receipt.stored_at[..10];
    let listing: Vec<Receipt> = reqwest::get(format!("{url}/receipts?day={day}"))
        .await
        .expect("listing")
        .json()
        .await
        .expect("json");
    assert_eq!(listing, [receipt]);
}

#[tokio::test]
async fn creation_with_upload_termination_and_limits() {
    let (_directory, url) = receiver(Some("secret-token"), 3600).await;
    let client = reqwest::Client::new();
    // Every call needs the token.
    let answer = tus(client.post(format!("{url}/files")))
        .header("Upload-Length", "5")
        .send()
        .await
        .expect("create");
    assert_eq!(answer.status().as_u16(), 401);

    let answer = tus(client.post(format!("{url}/files")))
        .bearer_auth("secret-token")
        .header("Upload-Length", "5")
        .header("Content-Type", "application/offset+octet-stream")
        .body("hello")
        .send()
        .await
        .expect("create with upload");
    assert_eq!(answer.status().as_u16(), 201);
    assert_eq!(answer.headers()["upload-offset"], "5");
    let id = answer.headers()["location"]
        .to_str()
        .expect("location")
        .rsplit('/')
        .next()
        .expect("id")
        .to_owned();
    let receipt: Receipt = client
        .get(format!("{url}/receipts/{id}"))
        .bearer_auth("secret-token")
        .send()
        .await
        .expect("receipt")
        .json()
        .await
        .expect("json");
    assert_eq!(
        receipt.sha256,
        format!("{:x}", sha2::Sha256::digest(b"hello"))
    );

    // Termination.
    let answer = tus(client.post(format!("{url}/files")))
        .bearer_auth("secret-token")
        .header("Upload-Length", "10")
        .send()
        .await
        .expect("create");
    let upload = answer.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert_eq!(
        tus(client.delete(&upload))
            .bearer_auth("secret-token")
            .send()
            .await
            .expect("delete")
            .status()
            .as_u16(),
        204
    );
    assert_eq!(
        tus(client.head(&upload))
            .bearer_auth("secret-token")
            .send()
            .await
            .expect("head")
            .status()
            .as_u16(),
        404
    );

    // Over the maximum size; without the protocol header; past the declared length.
    let answer = tus(client.post(format!("{url}/files")))
        .bearer_auth("secret-token")
        .header("Upload-Length", (2u64 << 20).to_string())
        .send()
        .await
        .expect("create");
    assert_eq!(answer.status().as_u16(), 413);
    let answer = client
        .post(format!("{url}/files"))
        .bearer_auth("secret-token")
        .header("Upload-Length", "5")
        .send()
        .await
        .expect("create");
    assert_eq!(answer.status().as_u16(), 412);
    let answer = tus(client.post(format!("{url}/files")))
        .bearer_auth("secret-token")
        .header("Upload-Length", "3")
        .send()
        .await
        .expect("create");
    let upload = answer.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let answer = tus(client.patch(&upload))
        .bearer_auth("secret-token")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", "0")
        .body("too long")
        .send()
        .await
        .expect("patch");
    assert_eq!(answer.status().as_u16(), 413);
    assert_eq!(
        tus(client.head(&upload))
            .bearer_auth("secret-token")
            .send()
            .await
            .expect("head")
            .headers()["upload-offset"],
        "0"
    );
}

#[tokio::test]
async fn an_expired_upload_is_gone() {
    let (_directory, url) = receiver(None, -1).await;
    let upload = create(&url, 10, "").await;
    let answer = tus(reqwest::Client::new().head(&upload))
        .send()
        .await
        .expect("head");
    assert_eq!(answer.status().as_u16(), 410);
}
