//! Evidence reports rendered in a real headless Chromium: the page loads
//! with nothing fetched, and its key elements are there. A screenshot of
//! each is kept under target/ for review.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Headless Chromium, or None outside CI when it is not installed (in CI,
/// scripts/test.sh installs it, so its absence fails the test).
pub fn chromium() -> Option<PathBuf> {
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(candidate).exists() {
            return Some(PathBuf::from(candidate));
        }
    }
    let in_ci = std::env::var("CI").is_ok_and(|value| value == "true" || value == "1");
    assert!(!in_ci, "chromium is missing: scripts/test.sh installs it");
    #[allow(clippy::print_stderr)]
    {
        eprintln!("skipped: install Debian's chromium for the report rendering test");
    }
    None
}

fn headless(chromium: &Path, profile: &Path) -> Command {
    let mut command = Command::new(chromium);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1200,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .stdin(std::process::Stdio::null());
    command
}

/// One Chromium at a time: two at once on a small machine can crash one.
static CHROMIUM: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs Chromium with `args` (a fresh profile each time), up to three
/// times: a headless browser in a container now and then dies at start-up,
/// which says nothing about the page.
fn chromium_run(chromium: &Path, args: &[&str]) -> std::process::Output {
    let mut last = None;
    for _ in 0..3 {
        let profile = tempfile::tempdir().expect("profile");
        let output = headless(chromium, profile.path())
            .args(args)
            .output()
            .expect("running chromium");
        if output.status.success() {
            return output;
        }
        last = Some(output);
    }
    let output = last.expect("three attempts");
    panic!(
        "chromium failed three times: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Renders `html` in Chromium: the DOM after load, and a screenshot at `png`.
fn render(chromium: &Path, html: &Path, png: &Path) -> String {
    let _one_at_a_time = CHROMIUM
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let url = format!("file://{}", html.display());
    let dom = chromium_run(chromium, &["--dump-dom", &url]);
    let screenshot = format!("--screenshot={}", png.display());
    chromium_run(chromium, &[&screenshot, &url]);
    assert!(
        png.metadata().is_ok_and(|meta| meta.len() > 10_000),
        "no screenshot"
    );
    String::from_utf8_lossy(&dom.stdout).into_owned()
}

fn screenshots() -> PathBuf {
    let directory = crate::workspace_root().join("target/report-screenshots");
    std::fs::create_dir_all(&directory).expect("screenshot directory");
    directory
}

/// Example A, run twice: the report shows the timeline, the checkpoint's
/// rules, the diff by category, group and column, and the trend across the
/// two runs, and fetches nothing.
#[test]
fn example_a_report_renders_in_chromium() {
    let Some(chromium) = chromium() else {
        return;
    };
    let directory = tempfile::tempdir().expect("temporary directory");
    let journal = directory.path().join("journal.db").display().to_string();
    let book = crate::workspace_root()
        .join("examples/runbook-a-parallel-run.toml")
        .display()
        .to_string();
    for _ in 0..2 {
        let run = crate::cutover(&[
            "run",
            &book,
            "--journal",
            &journal,
            "--new",
            "--format",
            "json",
        ]);
        assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    }
    let status = crate::cutover(&["status", "--journal", &journal, "--format", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).expect("json");
    let run = status[1]["run"].as_str().expect("second run").to_owned();
    let out = directory.path().join("report");
    let written = crate::cutover(&[
        "report",
        &run,
        "--journal",
        &journal,
        "--out",
        &out.display().to_string(),
    ]);
    assert_eq!(written.code, 0, "{}", written.stderr);
    let html_text = std::fs::read_to_string(out.join("report.html")).expect("html");
    for fetch in ["http://", "https://", "<script", "<link"] {
        assert!(
            !html_text.contains(fetch),
            "the page must not fetch or run anything: {fetch}"
        );
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).expect("json"))
            .expect("report json");
    assert_eq!(report["trend"].as_array().map(Vec::len), Some(2));
    assert_eq!(report["journal"]["intact"], true);

    let dom = render(
        &chromium,
        &out.join("report.html"),
        &screenshots().join("example-a.png"),
    );
    for expected in [
        r#"id="run-status""#,
        r#"data-step="reconcile""#,
        r#"data-step="go-no-go""#,
        "reconcile: rows by category",
        "reconcile: differing rows by program, jurisdiction",
        "reconcile: changed rows per column",
        "reconcile: differing rows across this runbook",
        "reconcile.difference_rate &lt; 0.5%",
        "hash chain holds",
        "<svg",
    ] {
        assert!(
            dom.contains(expected),
            "{expected} is not on the rendered page"
        );
    }
    assert!(
        !dom.contains("MSG-0"),
        "sample keys stay out of the evidence"
    );
}

/// `cutover quickstart` makes the demo and runs examples D and A end to
/// end; examples B and C then run on the same demo. Every example's
/// report renders in Chromium with its key elements, and each screenshot
/// is kept under target/report-screenshots/.
#[test]
fn the_quickstart_and_every_example_run_and_their_reports_render() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let demo = directory.path().join("demo");
    let demo_arg = demo.display().to_string();
    let quickstart = crate::cutover_with_env(&["quickstart", "--dir", &demo_arg], &[]);
    assert_eq!(
        quickstart.code, 0,
        "{}{}",
        quickstart.stdout, quickstart.stderr
    );
    assert!(
        quickstart
            .stdout
            .contains("data-owner approves data-owner-permission"),
        "{}",
        quickstart.stdout
    );
    assert!(
        quickstart.stdout.contains("finished; checkpoint green"),
        "{}",
        quickstart.stdout
    );
    assert!(
        quickstart.stdout.contains("finished; checkpoint yellow"),
        "{}",
        quickstart.stdout
    );
    let journal = demo.join("journal.db").display().to_string();
    // Example B delivers to the data-exchange service: its stand-in here.
    let service = crate::exchange::Standin::start(directory.path(), &["--delivery-delay", "300"]);
    let url = service.as_ref().map(|service| service.url.clone());
    for book in ["runbook-b-delivery.toml", "runbook-c-move.toml"] {
        let Some(url) = url
            .as_deref()
            .or((book == "runbook-c-move.toml").then_some(""))
        else {
            continue;
        };
        let path = demo.join(book).display().to_string();
        let run = crate::cutover_with_env(
            &["run", &path, "--journal", &journal],
            &[
                ("CUTOVER_HOLD_TOKEN", "a-test-token-only"),
                ("CUTOVER_DEX_URL", url),
                ("CUTOVER_DEX_USERNAME", "sender"),
                ("CUTOVER_DEX_PASSWORD", crate::exchange::PASSWORD),
            ],
        );
        assert_eq!(run.code, 0, "{book}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stdout.contains("last checkpoint green"),
            "{book}: {}",
            run.stdout
        );
    }
    // The refreshed acceptance database kept its own accounts and lost production's.
    let acceptance = rusqlite::Connection::open(demo.join("acceptance.db")).expect("acceptance");
    let accounts: String = acceptance
        .query_row("SELECT group_concat(user_name) FROM accounts", [], |row| {
            row.get(0)
        })
        .expect("accounts");
    assert_eq!(accounts, "tester.one,tester.two");
    let verify = crate::cutover(&["journal", "verify", "--journal", &journal]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);

    let status = crate::cutover(&["status", "--journal", &journal, "--format", "json"]);
    let runs: serde_json::Value = serde_json::from_str(&status.stdout).expect("status json");
    let Some(chromium) = chromium() else {
        return;
    };
    let expectations: [(&str, &[&str]); 4] = [
        (
            "acceptance-refresh",
            &[
                "Verification checks",
                r#"data-check="no-sensitive-values""#,
                "data-owner at",
                r#"data-step="sign-off""#,
            ],
        ),
        (
            "lab-feed-parallel-run",
            &[
                "reconcile: rows by category",
                "differing rows across this runbook",
            ],
        ),
        (
            "file-delivery",
            &[
                "verify: files per delivery state",
                r#"data-step="verify""#,
                r#"data-step="reconcile""#,
                "reconcile: discrepancies per day",
            ],
        ),
        (
            "app-move",
            &["pending timers per version", "3 of 3 held calls delivered"],
        ),
    ];
    for (runbook, expected) in expectations {
        if runbook == "file-delivery" && url.is_none() {
            continue;
        }
        let run = runs
            .as_array()
            .expect("runs")
            .iter()
            .rev()
            .find(|run| run["runbook"] == runbook)
            .expect("a run of each example");
        let html = Path::new(run["dir"].as_str().expect("dir")).join("report.html");
        let dom = render(
            &chromium,
            &html,
            &screenshots().join(format!("{runbook}.png")),
        );
        assert!(dom.contains("hash chain holds"), "{runbook}");
        for text in expected {
            assert!(
                dom.contains(text),
                "{runbook}: {text} is not on the rendered page"
            );
        }
    }
}
