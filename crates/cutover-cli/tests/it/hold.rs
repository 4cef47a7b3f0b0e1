//! `cutover hold` end to end over real HTTP on loopback: a backend in the
//! test, the hold as a child process (killed with SIGKILL), and the replay.

use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};

/// What the test backend received: hold id header, path, body.
type Received = Arc<Mutex<Vec<(Option<String>, String, String)>>>;

/// A backend that records every call; a body containing "reject" gets 422.
async fn backend() -> (String, Received) {
    let received: Received = Arc::default();
    let log = received.clone();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let log = log.clone();
        async move {
            let id = request
                .headers()
                .get("idempotency-key")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            let path = request.uri().path().to_owned();
            let body = axum::body::to_bytes(request.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            let body = String::from_utf8_lossy(&body).into_owned();
            let status = if body.contains("reject") { 422 } else { 201 };
            log.lock().expect("log").push((id, path, body.clone()));
            (
                axum::http::StatusCode::from_u16(status).expect("status"),
                format!("backend saw {body}"),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), received)
}

/// Starts `cutover hold` and returns it with the address it listens on.
fn start_hold(journal: &Path, backend: &str, extra: &[&str]) -> (Child, String) {
    let (child, address) = crate::spawn_announcing(
        Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["hold", "--listen", "127.0.0.1:0", "--journal"])
            .arg(journal)
            .args(["--backend", backend, "--hold-path", "/api/launchPatient"])
            .args(extra)
            .env("CUTOVER_HOLD_TOKEN", "admin-secret")
            .env("CUTOVER_LOG", "off"),
        2,
    );
    (child, format!("http://{address}"))
}

/// Runs `cutover hold replay` (off the runtime's threads, which serve the backend).
async fn replay(journal: &Path, to: &str) -> crate::Run {
    let (journal, to) = (journal.to_owned(), to.to_owned());
    tokio::task::spawn_blocking(move || replay_blocking(&journal, &to))
        .await
        .expect("replay")
}

fn replay_blocking(journal: &Path, to: &str) -> crate::Run {
    crate::cutover(&[
        "hold",
        "replay",
        "--journal",
        &journal.display().to_string(),
        "--to",
        to,
        "--idempotency-header",
        "Idempotency-Key",
        "--stop-after-failures",
        "2",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_call_survives_sigkill_and_is_replayed_once_in_order() {
    let (backend_url, received) = backend().await;
    let directory = tempfile::tempdir().expect("temporary directory");
    let journal = directory.path().join("journal");
    let (mut child, hold) = start_hold(&journal, &backend_url, &["--mode", "hold"]);

    // Four clients send 150 calls each; the hold is killed while they run.
    let acknowledged: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let mut clients = Vec::new();
    for client in 0..4 {
        let (hold, acknowledged) = (hold.clone(), acknowledged.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for n in 0..150 {
                let body = format!("launch {client}-{n}");
                let Ok(answer) = http
                    .post(format!("{hold}/api/launchPatient"))
                    .body(body.clone())
                    .send()
                    .await
                else {
                    break;
                };
                if answer.status().as_u16() != 202 {
                    break;
                }
                let text = answer.text().await.unwrap_or_default();
                let value: serde_json::Value = serde_json::from_str(&text).expect("json");
                let id = value["hold_id"].as_u64().expect("a hold id");
                acknowledged.lock().expect("list").push((id, body));
            }
        }));
    }
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        if acknowledged.lock().expect("list").len() >= 200 {
            break;
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    for client in clients {
        client.await.expect("client");
    }
    let acknowledged = acknowledged.lock().expect("list").clone();
    assert!(acknowledged.len() >= 200, "{}", acknowledged.len());
    assert!(
        received.lock().expect("log").is_empty(),
        "hold mode must not forward"
    );

    // Restarted on the same journal, it still holds every acknowledged call.
    let (mut child, hold) = start_hold(&journal, &backend_url, &[]);
    let status: serde_json::Value = reqwest::Client::new()
        .get(format!("{hold}/_cutover/status"))
        .bearer_auth("admin-secret")
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert!(status["held"].as_u64().expect("held") >= acknowledged.len() as u64);
    child.kill().expect("stop");
    child.wait().expect("wait");

    let run = replay(&journal, &backend_url).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let delivered = received.lock().expect("log").clone();
    let ids: Vec<u64> = delivered
        .iter()
        .map(|(id, _, _)| {
            id.as_deref()
                .and_then(|id| id.parse().ok())
                .expect("an idempotency key")
        })
        .collect();
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "arrival order: {ids:?}"
    );
    for (id, body) in &acknowledged {
        let copies = delivered
            .iter()
            .filter(|(key, path, sent)| {
                key.as_deref() == Some(&id.to_string())
                    && path == "/api/launchPatient"
                    && sent == body
            })
            .count();
        assert_eq!(copies, 1, "hold id {id} delivered {copies} times");
    }

    // A second replay sends nothing again.
    let before = delivered.len();
    let run = replay(&journal, &backend_url).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("0 delivered now"), "{}", run.stdout);
    assert_eq!(received.lock().expect("log").len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_token_modes_limits_and_failed_replays() {
    let (backend_url, received) = backend().await;
    let directory = tempfile::tempdir().expect("temporary directory");
    let journal = directory.path().join("journal");
    let (mut child, hold) = start_hold(&journal, &backend_url, &["--max-body", "1K"]);
    let http = reqwest::Client::new();

    // Forward mode passes calls through, answer and all.
    let answer = http
        .post(format!("{hold}/api/launchPatient"))
        .body("first")
        .send()
        .await
        .expect("call");
    assert_eq!(answer.status().as_u16(), 201);
    assert_eq!(answer.text().await.expect("body"), "backend saw first");

    // The admin calls need the token.
    for token in [None, Some("wrong")] {
        let mut request = http.post(format!("{hold}/_cutover/mode")).body("hold");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(request.send().await.expect("admin").status().as_u16(), 401);
    }
    let run = tokio::task::spawn_blocking({
        let hold = hold.clone();
        move || {
            crate::cutover_with_env(
                &["hold", "mode", "hold", "--admin", &hold],
                &[("CUTOVER_HOLD_TOKEN", "admin-secret")],
            )
        }
    })
    .await
    .expect("mode");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("in hold mode"), "{}", run.stdout);

    // Held: the launch API; forwarded: anything else; refused: a body over the limit.
    let answer = http
        .post(format!("{hold}/api/launchPatient"))
        .body("second")
        .send()
        .await
        .expect("call");
    assert_eq!(answer.status().as_u16(), 202);
    let answer = http
        .post(format!("{hold}/api/launchPatient"))
        .body("please reject")
        .send()
        .await
        .expect("call");
    assert_eq!(answer.status().as_u16(), 202);
    let answer = http
        .post(format!("{hold}/api/other"))
        .body("passes")
        .send()
        .await
        .expect("call");
    assert_eq!(answer.status().as_u16(), 201);
    let answer = http
        .post(format!("{hold}/api/launchPatient"))
        .body(vec![b'x'; 2048])
        .send()
        .await
        .expect("call");
    assert_eq!(answer.status().as_u16(), 413);
    let status: serde_json::Value = http
        .get(format!("{hold}/_cutover/status"))
        .bearer_auth("admin-secret")
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(status["held"], 2, "{status}");
    child.kill().expect("stop");
    child.wait().expect("wait");
    assert_eq!(received.lock().expect("log").len(), 2);

    // A backend that is down: the replay stops and says so; nothing is lost.
    let run = replay(&journal, "http://127.0.0.1:9").await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("stopped: 2 attempts in a row failed (the last, hold id 1: no answer)"),
        "{}",
        run.stdout
    );

    // Back up: the first is delivered, the 422 is recorded and listed, and not retried.
    let run = replay(&journal, &backend_url).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("1 delivered now, 0 delivered before, 1 rejected"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("hold id 2: status 422"),
        "{}",
        run.stdout
    );
    let calls = received.lock().expect("log").len();
    let run = replay(&journal, &backend_url).await;
    assert!(
        run.stdout
            .contains("0 delivered now, 1 delivered before, 1 rejected"),
        "{}",
        run.stdout
    );
    assert_eq!(received.lock().expect("log").len(), calls);
}

#[test]
fn a_journal_that_cannot_be_written_stops_the_start() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let file = directory.path().join("a-file");
    std::fs::write(&file, b"not a directory").expect("file");
    let run = crate::cutover(&[
        "hold",
        "--listen",
        "127.0.0.1:0",
        "--journal",
        &file.join("journal").display().to_string(),
        "--backend",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("error: journal"), "{}", run.stderr);
}
