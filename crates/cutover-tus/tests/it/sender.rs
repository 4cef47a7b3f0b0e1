//! The sender over real HTTP: chunks corrupted in transit are retried
//! (460, and 417 as some servers answer), a draft upload corrupted in
//! transit is caught by the receiver's Repr-Digest, and each refusal is
//! named.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::http::{Method, StatusCode, request};
use cutover_testing::proxy::{Answer, Meddler, Proxy};
use cutover_tus::Uploader;
use sha2::Digest as _;

use crate::receiver;

/// Flips a byte in the body of the next `corrupt` PATCHes, and can answer
/// 417 where the receiver said 460.
struct Corrupter {
    corrupt: AtomicU32,
    corrupted: AtomicU32,
    answer_417: bool,
}

impl Meddler for Corrupter {
    fn request(&self, parts: &request::Parts, body: &mut Vec<u8>) -> Option<StatusCode> {
        if parts.method == Method::PATCH
            && !body.is_empty()
            && self
                .corrupt
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                })
                .is_ok()
        {
            let middle = body.len() / 2;
            body[middle] ^= 0xff;
            self.corrupted.fetch_add(1, Ordering::SeqCst);
        }
        None
    }

    fn answer(&self, _parts: &request::Parts, answer: &mut Answer) {
        if self.answer_417 && answer.status.as_u16() == 460 {
            answer.status = StatusCode::EXPECTATION_FAILED;
        }
    }
}

/// A proxy in front of the receiver at `target` that corrupts the next
/// `corrupt` PATCHes.
async fn corrupting_proxy(
    target: &str,
    corrupt: u32,
    answer_417: bool,
) -> (String, Arc<Corrupter>) {
    let corrupter = Arc::new(Corrupter {
        corrupt: AtomicU32::new(corrupt),
        corrupted: AtomicU32::new(0),
        answer_417,
    });
    let proxy = Proxy::start(target, corrupter.clone()).await;
    (proxy.url, corrupter)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Three chunks corrupted on the way: each is refused by the receiver's
/// checksum check (CRC32, which cutover receive offers) and sent again; the
/// stored file is the original.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_chunks_are_retried_after_460_and_417() {
    for answer_417 in [false, true] {
        let (directory, url) = receiver(None, 3600).await;
        let (proxy_url, proxy) = corrupting_proxy(&url, 3, answer_417).await;
        let file = directory.path().join("outgoing.bin");
        let data: Vec<u8> = (0..300_000u32).map(|n| (n % 239) as u8).collect();
        std::fs::write(&file, &data).expect("file");
        let uploader = Uploader::new(&format!("{proxy_url}/files"), None, 65_536)
            .expect("uploader")
            .with_retries(5);
        let metadata = [("filename".to_owned(), "outgoing.bin".to_owned())].into();
        let upload = uploader.create(300_000, &metadata).await.expect("create");
        let mut digest = cutover_tus::client::FileDigest::default();
        uploader
            .send(&upload, &file, 300_000, &mut digest, &|_| {})
            .await
            .expect("sent despite corruption");
        // The file's SHA-256 came from the chunks as they were read, once.
        assert_eq!(
            digest.finish(&file, 300_000).expect("digest"),
            hex(&sha2::Sha256::digest(&data))
        );
        assert_eq!(
            proxy.corrupted.load(Ordering::SeqCst),
            3,
            "417: {answer_417}"
        );
        let id = upload.rsplit('/').next().expect("id");
        let stored = std::fs::read(directory.path().join("complete").join(id)).expect("stored");
        assert_eq!(
            hex(&sha2::Sha256::digest(&stored)),
            hex(&sha2::Sha256::digest(&data))
        );
    }
}

/// A server that is not tus, a file over the receiver's limit, a wrong
/// token and an expired upload: each fails with its reason, not a retry loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_named() {
    let metadata = [("filename".to_owned(), "f".to_owned())].into();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let not_tus = format!("http://{}/files", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, axum::Router::new()).await });
    let error = Uploader::new(&not_tus, None, 1024)
        .expect("uploader")
        .create(10, &metadata)
        .await
        .expect_err("not tus");
    assert!(
        error.to_string().contains("is this a tus creation URL?"),
        "{error}"
    );

    let (_directory, url) = receiver(Some("right"), 3600).await;
    let wrong =
        Uploader::new(&format!("{url}/files"), Some("wrong".into()), 1024).expect("uploader");
    let error = wrong.create(10, &metadata).await.expect_err("wrong token");
    assert!(
        error.to_string().contains("status 401 (check the token)"),
        "{error}"
    );
    assert!(
        !error.to_string().contains("wrong"),
        "the token is never shown"
    );
    let right =
        Uploader::new(&format!("{url}/files"), Some("right".into()), 1024).expect("uploader");
    let error = right
        .create(2 << 20, &metadata)
        .await
        .expect_err("too large");
    assert!(
        error
            .to_string()
            .contains("413 (the file is larger than the receiver accepts)"),
        "{error}"
    );

    let (directory, url) = receiver(None, 0).await;
    let uploader = Uploader::new(&format!("{url}/files"), None, 1024).expect("uploader");
    let upload = uploader.create(10, &metadata).await.expect("create");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let file = directory.path().join("ten");
    std::fs::write(&file, b"0123456789").expect("file");
    let error = uploader
        .send(
            &upload,
            &file,
            10,
            &mut cutover_tus::client::FileDigest::default(),
            &|_| {},
        )
        .await
        .expect_err("expired");
    assert!(
        error.to_string().contains("no longer has the upload"),
        "{error}"
    );
}

/// The IETF draft carries no checksum per append: a chunk corrupted on the
/// way is stored as it arrived, and the receiver's Repr-Digest of the
/// completed file tells. The sender withdraws that upload (nothing corrupt
/// stays on the receiver) and fails the file with the reason, for a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_draft_holds_a_file_to_the_receivers_repr_digest() {
    let (directory, url) = receiver(None, 3600).await;
    let (proxy_url, proxy) = corrupting_proxy(&url, 1, false).await;
    let file = directory.path().join("outgoing.bin");
    let data: Vec<u8> = (0..300_000u32).map(|n| (n % 241) as u8).collect();
    std::fs::write(&file, &data).expect("file");
    let uploader = Uploader::new(&format!("{proxy_url}/files"), None, 65_536)
        .expect("uploader")
        .with_protocol(cutover_tus::Protocol::Ietf);
    let ledger = std::sync::Mutex::new(
        cutover_tus::Ledger::open(&directory.path().join("ledger.db")).expect("ledger"),
    );
    let sends = vec![cutover_tus::FileToSend {
        path: file.clone(),
        metadata: [("filename".to_owned(), "outgoing.bin".to_owned())].into(),
    }];
    let outcomes = cutover_tus::deliver::send(
        &uploader,
        &ledger,
        sends,
        1,
        &cutover_tus::NoDeliveryProgress,
    )
    .await
    .expect("delivery");
    assert_eq!(proxy.corrupted.load(Ordering::SeqCst), 1);
    match &outcomes[0].1 {
        cutover_tus::Sent::Failed(reason) => {
            assert!(reason.contains("Repr-Digest"), "{reason}");
        }
        other => panic!("a corrupted upload was taken as sent: {other:?}"),
    }
    assert_eq!(
        std::fs::read_dir(directory.path().join("complete"))
            .expect("complete")
            .count(),
        0,
        "the corrupt file was withdrawn"
    );

    // Uncorrupted, the same file is acknowledged, the digests agreeing.
    let outcomes = cutover_tus::deliver::send(
        &uploader,
        &ledger,
        vec![cutover_tus::FileToSend {
            path: file,
            metadata: [("filename".to_owned(), "outgoing.bin".to_owned())].into(),
        }],
        1,
        &cutover_tus::NoDeliveryProgress,
    )
    .await
    .expect("delivery");
    assert!(
        matches!(outcomes[0].1, cutover_tus::Sent::Acknowledged),
        "{:?}",
        outcomes[0].1
    );
}
