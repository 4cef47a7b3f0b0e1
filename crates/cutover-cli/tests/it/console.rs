//! `cutover serve`: the console read over plain HTTP, its refusals at start,
//! and sign-in at a real OpenID provider (npm's oidc-provider) with
//! approvals of example D in Debian's Chromium driven by Playwright.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::report::chromium;
use super::{cutover, cutover_with_env, interop_with, workspace_root};

/// A child process killed when the test ends, whatever happens.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `N` different free ports (held together while they are chosen, so that
/// no two are the same).
fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    std::array::from_fn(|index| held[index].local_addr().expect("address").port())
}

/// One plain HTTP/1.1 request: (status, headers and body as text).
fn http(url: &str, method: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(host, path)| {
            (host, format!("/{path}"))
        });
    let address = host.replace("localhost", "127.0.0.1");
    let mut stream = std::net::TcpStream::connect(&address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    // An event stream never ends: read what comes within the timeout.
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Starts `command` with its output going to `log` (a pipe closed after
/// the first line would make a later write fail), and waits for its first
/// line, such as `listening URL`; returns the process and that line.
fn start_logged(command: &mut Command, log: &Path) -> (Killed, String) {
    let child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).expect("log"))
        .stderr(std::fs::File::create(log.with_extension("err")).expect("log"))
        .spawn()
        .expect("starting a peer");
    let mut child = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().next().filter(|_| text.contains('\n')) {
            return (child, line.to_owned());
        }
        let ended = child.0.try_wait().expect("peer status");
        assert!(
            ended.is_none() && Instant::now() < deadline,
            "{} did not start: {}",
            log.display(),
            std::fs::read_to_string(log.with_extension("err")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `cutover serve`; its output goes to `journal`'s directory
/// (`serve-N.log`, `serve-N.err`).
fn serve(journal: &Path, extra: &[&str]) -> (Killed, String) {
    static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let number = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log = journal.with_file_name(format!("serve-{number}.log"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_cutover"));
    command
        .args(["serve", "--journal"])
        .arg(journal)
        .args(extra)
        .env("CUTOVER_TEST_OIDC_SECRET", "console-secret")
        .current_dir(workspace_root());
    let (child, line) = start_logged(&mut command, &log);
    let url = line
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches('/')
        .to_owned();
    (child, url)
}

#[test]
fn a_read_only_console_lists_runs_streams_updates_and_refuses_anonymous_writes() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let demo = directory.path().join("demo");
    let made = cutover(&["quickstart", "--dir", demo.to_str().expect("path")]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let journal = demo.join("journal.db");
    let timers = format!("sqlite:{}#scheduled_tasks", demo.join("app.db").display());
    let no_ledger = demo.join("no-ledger.db");
    let (_console, url) = serve(
        &journal,
        &[
            "--listen",
            "127.0.0.1:0",
            "--drain",
            &timers,
            "--ledger",
            no_ledger.to_str().expect("path"),
        ],
    );

    let (status, drain) = http(&format!("{url}/drain"), "GET", "", &[]);
    assert_eq!(status, 200, "{drain}");
    assert!(
        drain.contains("timers in") && drain.contains("2.x") && drain.contains("3.x"),
        "{drain}"
    );
    let (status, deliveries) = http(&format!("{url}/deliveries"), "GET", "", &[]);
    assert_eq!(status, 200, "{deliveries}");
    assert!(
        deliveries.contains("no delivery ledger here"),
        "{deliveries}"
    );
    assert!(!no_ledger.exists(), "the console created no ledger");

    let (status, index) = http(&format!("{url}/"), "GET", "", &[]);
    assert_eq!(status, 200, "{index}");
    assert!(
        index.contains("acceptance-refresh") && index.contains("lab-feed"),
        "{index}"
    );
    assert!(
        index.contains("Content-Security-Policy: default-src 'none'")
            || index
                .to_lowercase()
                .contains("content-security-policy: default-src 'none'")
    );
    assert!(
        index.contains("Reconciliation trend"),
        "example A ran twice: {index}"
    );
    let run = index
        .split("href=\"/runs/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a run link")
        .to_owned();

    let (status, page) = http(&format!("{url}/runs/{run}"), "GET", "", &[]);
    assert_eq!(status, 200);
    assert!(
        page.contains("id=\"live\"") && page.contains("Journal records of this run"),
        "{page}"
    );
    let (status, report) = http(&format!("{url}/runs/{run}/report"), "GET", "", &[]);
    assert_eq!(status, 200);
    assert!(report.contains("Journal integrity"), "{report}");
    let (status, events) = http(&format!("{url}/runs/{run}/events"), "GET", "", &[]);
    assert_eq!(status, 200);
    assert!(
        events.contains("text/event-stream") && events.contains("event: update"),
        "{events}"
    );

    // No anonymous write, ever: the POST is sent to sign in, and nothing is journaled.
    let before = std::fs::metadata(&journal).expect("journal").len();
    let (status, answer) = http(
        &format!("{url}/runs/{run}/steps/sign-off/decision"),
        "POST",
        "role=client&decision=approve&note=anonymous",
        &[("Content-Type", "application/x-www-form-urlencoded")],
    );
    assert_eq!(status, 303, "{answer}");
    let (status, _) = http(&format!("{url}/sign-in"), "GET", "", &[]);
    assert_eq!(status, 404, "sign-in is not configured");
    let verified = cutover(&[
        "journal",
        "verify",
        "--journal",
        journal.to_str().expect("path"),
    ]);
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    assert!(std::fs::metadata(&journal).expect("journal").len() >= before);
    let status = cutover(&[
        "status",
        "--journal",
        journal.to_str().expect("path"),
        "--format",
        "json",
    ]);
    assert!(!status.stdout.contains("anonymous"));

    // Refusals at start: an unmapped approver role, an unreachable issuer,
    // sign-in over plain http to a host that is not loopback.
    let config = directory.path().join("console.toml");
    let roles = "[roles.data-owner]\nemails = [\"a@example.org\"]\n[roles.change-management]\nemails = [\"a@example.org\"]\n[roles.test-lead]\nemails = [\"a@example.org\"]\n";
    let [unreachable] = free_ports();
    let sign_in =
        format!("[sign_in]\nissuer = \"http://127.0.0.1:{unreachable}\"\nclient_id = \"c\"\n");
    let refusal = |config_text: String| {
        std::fs::write(&config, config_text).expect("config");
        let refused = cutover(&[
            "serve",
            "--journal",
            journal.to_str().expect("path"),
            "--config",
            config.to_str().expect("path"),
            "--listen",
            "127.0.0.1:0",
        ]);
        assert_eq!(refused.code, 2, "{}", refused.stderr);
        refused.stderr
    };
    let said = refusal(format!("{sign_in}{roles}"));
    assert!(
        said.contains(
            "approver roles with no mapping in [roles]: client (step sign-off of acceptance-refresh)"
        ),
        "{said}"
    );
    let all_roles = format!("{roles}[roles.client]\ngroups = [\"clients\"]\n");
    let said = refusal(format!("{sign_in}{all_roles}"));
    assert!(said.contains("could not be used"), "{said}");
    let said = refusal(format!(
        "public_url = \"http://console.example.org\"\n{sign_in}{all_roles}"
    ));
    assert!(said.contains("plain http"), "{said}");
}

#[test]
fn an_approver_signs_in_and_approves_example_d_in_chromium_and_a_bystander_cannot() {
    let Some(interop) = interop_with("oidc-provider") else {
        return;
    };
    let Some(chromium) = chromium() else {
        return;
    };
    let directory = tempfile::tempdir().expect("temporary directory");
    let (demo, journal) = demo_files(directory.path());
    let [main_port, short_port, provider_port] = free_ports();
    let console_url = format!("http://localhost:{main_port}");
    let short_url = format!("http://localhost:{short_port}");

    let (_provider, line) = start_logged(
        Command::new("node")
            .arg(interop.join("oidc-provider.mjs"))
            .arg(provider_port.to_string())
            .env(
                "REDIRECT_URI",
                format!("{console_url}/auth/callback {short_url}/auth/callback"),
            ),
        &directory.path().join("provider.log"),
    );
    let issuer = line
        .split_whitespace()
        .nth(1)
        .expect("the issuer")
        .to_owned();

    // Example D runs and waits for its approvals in the console.
    let run = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args([
            "run",
            demo.join("runbook-d-refresh.toml").to_str().expect("path"),
        ])
        .args([
            "--journal",
            journal.to_str().expect("path"),
            "--wait-for-approvals",
            "5m",
        ])
        .args(["--console-url", &console_url])
        .env("CUTOVER_MASK_SECRET", "a console test key")
        .env("CUTOVER_LOG", "off")
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cutover run");
    let mut run = Killed(run);
    let started = Instant::now();
    while !journal.exists() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }

    let config = |session: &str| {
        let path = directory.path().join(format!("console-{session}.toml"));
        std::fs::write(
            &path,
            format!(
                "session = \"{session}\"\n[sign_in]\nissuer = \"{issuer}\"\nclient_id = \"cutover-console\"\nclient_secret_env = \"CUTOVER_TEST_OIDC_SECRET\"\nscopes = [\"email\", \"profile\", \"groups\"]\n[roles.data-owner]\nemails = [\"approver@example.org\"]\n[roles.change-management]\ngroups = [\"approvers\"]\n[roles.test-lead]\ngroups = [\"approvers\"]\n[roles.client]\nemails = [\"Approver@Example.org\"]\n"
            ),
        )
        .expect("console file");
        path
    };
    let (main_config, short_config) = (config("1h"), config("2s"));
    let (_main, main) = serve(
        &journal,
        &[
            "--config",
            main_config.to_str().expect("path"),
            "--listen",
            &format!("127.0.0.1:{main_port}"),
        ],
    );
    let (_short, short) = serve(
        &journal,
        &[
            "--config",
            short_config.to_str().expect("path"),
            "--listen",
            &format!("127.0.0.1:{short_port}"),
        ],
    );
    assert_eq!(main, console_url);
    assert_eq!(short, short_url);

    let shots = workspace_root().join("target/console-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot directory");
    let browser = Command::new("node")
        .arg(interop.join("console-browser.mjs"))
        .env("CONSOLE_URL", &console_url)
        .env("SHORT_CONSOLE_URL", &short_url)
        .env("SHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .current_dir(&interop)
        .stdin(Stdio::null())
        .output()
        .expect("node console-browser.mjs");
    let said = String::from_utf8_lossy(&browser.stdout);
    let logs: String = ["serve-0.err", "serve-1.err", "serve-2.err"]
        .iter()
        .filter_map(|name| std::fs::read_to_string(journal.with_file_name(name)).ok())
        .chain(std::fs::read_to_string(directory.path().join("provider.err")).ok())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        browser.status.success(),
        "{said}\n{}\npeers: {logs}",
        String::from_utf8_lossy(&browser.stderr),
    );
    assert!(said.contains("all checks passed"), "{said}");

    // The run went on by itself and finished; every approval names the issuer and subject.
    let deadline = Instant::now() + Duration::from_secs(60);
    let code = loop {
        if let Some(status) = run.0.try_wait().expect("run status") {
            break status.code();
        }
        assert!(Instant::now() < deadline, "the run did not finish");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(code, Some(0));
    let connection = rusqlite::Connection::open(&journal).expect("journal");
    let mut statement = connection
        .prepare("SELECT step, detail FROM records WHERE event = 'approved' ORDER BY seq")
        .expect("query");
    let approvals: Vec<(String, serde_json::Value)> = statement
        .query_map([], |row| {
            let detail: String = row.get(1)?;
            Ok((
                row.get(0)?,
                serde_json::from_str(&detail).unwrap_or_default(),
            ))
        })
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("approvals");
    let roles: Vec<&str> = approvals
        .iter()
        .map(|(_, detail)| detail["by"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        roles,
        ["data-owner", "change-management", "test-lead", "client"]
    );
    for (step, detail) in &approvals {
        assert_eq!(
            detail["identity"]["issuer"],
            issuer.as_str(),
            "{step}: {detail}"
        );
        assert_eq!(
            detail["identity"]["subject"], "approver",
            "{step}: {detail}"
        );
        assert_eq!(detail["address"], "127.0.0.1", "{step}: {detail}");
    }
    let verified = cutover_with_env(
        &[
            "journal",
            "verify",
            "--journal",
            journal.to_str().expect("path"),
        ],
        &[],
    );
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    let notifications = std::fs::read_dir(demo.join("cutover-runs"))
        .expect("runs")
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("notifications.log"))
        .find(|path| path.exists())
        .map(|path| std::fs::read_to_string(path).expect("notifications"))
        .unwrap_or_default();
    assert!(notifications.contains("signed off"), "{notifications}");
    assert!(
        notifications.contains(&format!("data-owner-permission waits for approval by data-owner (Permission to refresh acceptance from production with the scenario D policy): {console_url}/runs/")),
        "{notifications}"
    );
}

/// With --tls-cert and --tls-key the console serves HTTPS (rustls): a
/// client that trusts the certificate reads it, and plain http is refused.
#[tokio::test(flavor = "multi_thread")]
async fn the_console_serves_https_with_a_certificate() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (_, journal) = demo_files(directory.path());
    cutover_run_journal(&journal);
    // A test authority and a certificate for localhost that it signs.
    let path = |name: &str| directory.path().join(name).display().to_string();
    std::fs::write(path("leaf.ext"), "subjectAltName=DNS:localhost\n").expect("extensions");
    for args in [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=cutover test authority",
            "-keyout",
            &path("ca.key"),
            "-out",
            &path("ca.pem"),
        ],
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &path("key.pem"),
            "-out",
            &path("leaf.csr"),
        ],
        vec![
            "x509",
            "-req",
            "-in",
            &path("leaf.csr"),
            "-CA",
            &path("ca.pem"),
            "-CAkey",
            &path("ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &path("leaf.ext"),
            "-out",
            &path("cert.pem"),
        ],
    ] {
        cutover_testing::openssl(&args);
    }
    let (cert, key) = (
        directory.path().join("cert.pem"),
        directory.path().join("key.pem"),
    );
    let (_console, url) = serve(
        &journal,
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().expect("path"),
            "--tls-key",
            key.to_str().expect("path"),
        ],
    );
    assert!(url.starts_with("https://localhost:"), "{url}");
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(path("ca.pem")).expect("ca"))
                .expect("pem"),
        )
        .resolve(
            "localhost",
            format!(
                "127.0.0.1:{}",
                url.rsplit(':')
                    .next()
                    .expect("port")
                    .parse::<u16>()
                    .expect("port")
            )
            .parse()
            .expect("address"),
        )
        .build()
        .expect("client");
    let answer = client.get(format!("{url}/")).send().await.expect("https");
    assert_eq!(answer.status(), 200);
    assert!(answer.text().await.expect("body").contains("Runs"));
    let (status, _) = http(&url.replace("https://", "http://"), "GET", "", &[]);
    assert_ne!(status, 200, "plain http is not served");
}

/// The demo's files in `directory`/demo (nothing run): its folder and journal path.
fn demo_files(directory: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let demo = directory.join("demo");
    let made = cutover(&[
        "quickstart",
        "--setup-only",
        "--dir",
        demo.to_str().expect("path"),
    ]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let journal = demo.join("journal.db");
    (demo, journal)
}

/// Makes `journal` exist with no runs (a console needs a journal).
fn cutover_run_journal(journal: &Path) {
    let book = journal.with_file_name("empty.toml");
    std::fs::write(
        &book,
        "name = \"empty\"\n[[step]]\nname = \"hello\"\nkind = \"notify\"\nmessage = \"hello\"\n",
    )
    .expect("runbook");
    let run = cutover(&[
        "run",
        book.to_str().expect("path"),
        "--journal",
        journal.to_str().expect("path"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}
