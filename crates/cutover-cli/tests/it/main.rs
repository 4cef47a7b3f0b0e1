//! End-to-end tests of the `cutover` binary.

mod console;
mod deliver;
mod diff;
mod draft;
mod drain;
mod exchange;
mod formats;
mod guide;
mod hold;
mod inspect;
mod lake;
mod lake_delta;
mod manual;
mod parts;
mod receive;
mod refresh;
mod refresh_resume;
mod report;
mod run;
mod spark;

use std::path::PathBuf;
use std::process::Command;

/// The result of one run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cutover` with `args` from the workspace root, with no stdin.
pub fn cutover(args: &[&str]) -> Run {
    cutover_with_env(args, &[])
}

/// Runs `cutover` with `args` on a blocking thread, for async tests whose
/// runtime serves a peer meanwhile.
pub async fn cutover_async(args: &[&str]) -> Run {
    cutover_async_with_env(args, &[]).await
}

/// [`cutover_async`] with extra environment variables.
pub async fn cutover_async_with_env(args: &[&str], environment: &[(&str, &str)]) -> Run {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let environment: Vec<(String, String)> = environment
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let environment: Vec<(&str, &str)> = environment
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        cutover_with_env(&args, &environment)
    })
    .await
    .expect("cutover on a blocking thread")
}

/// Runs `cutover` with `args` and extra environment variables.
pub fn cutover_with_env(args: &[&str], environment: &[(&str, &str)]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .env_remove("CUTOVER_MASK_SECRET")
        .env_remove("PGPASSWORD")
        .env("CUTOVER_LOG", "off")
        .envs(environment.iter().copied())
        .current_dir(workspace_root())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running cutover");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Starts `command` (no stdin, stderr discarded) and waits for the first
/// line it prints, such as `listening URL`; returns the process and the
/// line's word at `word` (0-based).
pub fn spawn_announcing(command: &mut Command, word: usize) -> (std::process::Child, String) {
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting a peer");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("the peer's first line");
    let announced = line
        .split_whitespace()
        .nth(word)
        .unwrap_or_else(|| panic!("no word {word} in the peer's first line: {line}"))
        .to_owned();
    (child, announced)
}

/// A diff report's sample keys, each category's sorted (every strategy and
/// engine finds them in its own order).
pub fn sorted_samples(report: &serde_json::Value) -> serde_json::Value {
    let mut samples = report["samples"].clone();
    if let Some(categories) = samples.as_object_mut() {
        for list in categories.values_mut() {
            if let Some(items) = list.as_array_mut() {
                items.sort_by_key(|item| item.to_string());
            }
        }
    }
    samples
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The interop folder when its npm `package` is installed. Outside CI a
/// missing package skips the test (with a note); in CI it fails it, since
/// `.ci/run` installs the peers.
pub fn interop_with(package: &str) -> Option<PathBuf> {
    let interop = workspace_root().join("interop");
    if interop.join("node_modules").join(package).exists() {
        return Some(interop);
    }
    let in_ci = std::env::var("CI").is_ok_and(|value| value == "true" || value == "1");
    assert!(
        !in_ci,
        "interop/node_modules/{package} is missing: .ci/run installs it with npm ci"
    );
    #[allow(clippy::print_stderr)]
    {
        eprintln!("skipped: run `npm ci --prefix interop` for the {package} interop test");
    }
    None
}

/// Insta settings that hide what changes from machine to machine.
pub fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"SQLite \d+\.\d+\.\d+", "SQLite [version]");
    settings.add_filter(r"(?m)\(PostgreSQL .*\)$", "(PostgreSQL [version])");
    settings.add_filter(r"127\.0\.0\.1:\d+/cutover_test_\w+", "[test-database]");
    settings.add_filter(r"/tmp/\.tmp\w+", "[temp]");
    settings.add_filter(r"strategy, \d+\.\d s\)", "strategy, [seconds] s)");
    settings.add_filter(r#""seconds": [0-9.e-]+"#, r#""seconds": "[seconds]""#);
    settings
}

/// `text` with regex metacharacters escaped (for insta filters of temp paths).
pub fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|character| {
            let special = "\\.+*?()|[]{}^$#&-~".contains(character);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(character))
        })
        .collect()
}
