//! The user guide (`docs/`) cannot rot: every `console` block of a page is
//! run, in order, as one shell session, and each command must succeed and
//! print what the page says it prints; the reference pages must be the
//! binary's own `--help`; every relative link must lead to a file.
//!
//! A page's `console` blocks are run by bash in an empty temporary
//! directory, with the `cutover` under test first on `PATH` and
//! `CUTOVER_SOURCE` naming the source checkout. In a block, a line starting
//! with `$ ` is a command (a line ending in `\` continues it); the lines
//! after it, up to the next command, are its expected output: each must
//! match a line of what the command printed (stdout and stderr together),
//! in order, where `...` stands for any text. A command must exit 0, unless
//! the next command is `echo $?`, whose expected output is then the status.
//! A command ending in `&` runs in the background, and the session goes on
//! once it has printed its first line (a server saying where it listens);
//! background commands are stopped when the page ends.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// One command of a page, with the output the page shows for it.
#[derive(Debug)]
struct Step {
    line: usize,
    command: String,
    expected: Vec<String>,
}

/// The commands of `markdown`'s `console` blocks, in order.
fn steps(markdown: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut inside = false;
    let mut continued = false;
    let mut heredoc: Option<String> = None;
    for (index, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_end();
        if let Some(end) = &heredoc {
            let step = steps.last_mut().expect("a command with a here-document");
            step.command.push('\n');
            step.command.push_str(line);
            if trimmed == end {
                heredoc = None;
            }
            continue;
        }
        if trimmed.starts_with("```") {
            inside = !inside && trimmed == "```console";
            continued = false;
            continue;
        }
        if !inside {
            continue;
        }
        if continued {
            let step = steps.last_mut().expect("a command continued");
            step.command.push('\n');
            step.command.push_str(trimmed);
            continued = trimmed.ends_with('\\');
            heredoc = here_document(trimmed);
        } else if let Some(command) = trimmed.strip_prefix("$ ") {
            steps.push(Step {
                line: index + 1,
                command: command.to_owned(),
                expected: Vec::new(),
            });
            continued = trimmed.ends_with('\\');
            heredoc = here_document(trimmed);
        } else if !trimmed.is_empty() {
            let step = steps
                .last_mut()
                .unwrap_or_else(|| panic!("line {}: output before any command", index + 1));
            step.expected.push(trimmed.to_owned());
        }
    }
    steps
}

/// The word ending the here-document a command line starts (`<<'PY'`,
/// `<<EOF`), if it starts one.
fn here_document(line: &str) -> Option<String> {
    let (_, rest) = line.split_once("<<")?;
    let word: String = rest
        .trim_start_matches('-')
        .trim_start()
        .trim_start_matches(['\'', '"'])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then_some(word)
}

/// Whether `actual` is `pattern`, where `...` in the pattern stands for any
/// text.
fn matches(pattern: &str, actual: &str) -> bool {
    let mut parts = pattern.split("...");
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = actual.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (index, part) in parts.iter().enumerate() {
        if index + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// The first expected line not found, in order, among `output`'s lines.
fn missing<'a>(expected: &'a [String], output: &str) -> Option<&'a str> {
    let mut lines = output.lines().map(str::trim_end);
    for pattern in expected {
        if pattern.trim() == "..." {
            continue;
        }
        if !lines.any(|line| matches(pattern, line)) {
            return Some(pattern);
        }
    }
    None
}

/// The bash script running `steps` in `work`, each command's output and
/// status written to `record`.
fn script(steps: &[Step], work: &Path, record: &Path) -> String {
    let mut script = format!(
        "cd '{}' || exit 99\nexport PATH='{}':\"$PATH\"\n",
        work.display(),
        Path::new(env!("CARGO_BIN_EXE_cutover"))
            .parent()
            .expect("the binary's directory")
            .display()
    );
    for (index, step) in steps.iter().enumerate() {
        let out = record.join(format!("{index}.out"));
        let status = record.join(format!("{index}.status"));
        let (out, status) = (out.display(), status.display());
        match step.command.strip_suffix('&') {
            Some(background) => script.push_str(&format!(
                "{{ {background}\n}} > '{out}' 2>&1 < /dev/null &\n\
                 for _ in $(seq 300); do [ -s '{out}' ] && break; sleep 0.1; done\n\
                 echo 0 > '{status}'\n"
            )),
            None => script.push_str(&format!(
                "{{ {}\n}} > '{out}' 2>&1 < /dev/null\n\
                 __status=$?; echo $__status > '{status}'; (exit $__status)\n",
                step.command
            )),
        }
    }
    script.push_str("kill $(jobs -p) 2>/dev/null; wait\n");
    script
}

/// Runs the page at `docs/PAGE`'s commands and checks each one.
fn run_page(page: &str) {
    let path = crate::workspace_root().join("docs").join(page);
    let markdown = std::fs::read_to_string(&path).expect("the page");
    let steps = steps(&markdown);
    assert!(!steps.is_empty(), "{page} has no console block");
    let work = tempfile::tempdir().expect("a working directory");
    let record = tempfile::tempdir().expect("a record directory");
    let script_path = record.path().join("page.sh");
    std::fs::write(&script_path, script(&steps, work.path(), record.path())).expect("script");
    let source = crate::workspace_root()
        .canonicalize()
        .expect("the source checkout");
    let mut shell = std::process::Command::new("bash");
    shell
        .arg("--norc")
        .arg(&script_path)
        .env("CUTOVER_SOURCE", &source)
        .env("HOME", work.path())
        .env_remove("CUTOVER_MASK_SECRET")
        .env_remove("CUTOVER_HOLD_TOKEN")
        .env_remove("CUTOVER_CONSOLE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut shell, 0);
    let mut child = shell.spawn().expect("bash");
    let started = Instant::now();
    let finished = loop {
        if let Some(status) = child.try_wait().expect("waiting for bash") {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(600) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Whatever the page left running (a server started in the background):
    // its process group, by bash's own kill (procps' kill reads a negative
    // process id after a signal name as -1, every process).
    let group = child.id();
    assert!(group > 1, "the page's process group");
    let _ = std::process::Command::new("bash")
        .args([
            "--norc",
            "-c",
            "kill -KILL -- \"-$1\"",
            "kill",
            &group.to_string(),
        ])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
    for (index, step) in steps.iter().enumerate() {
        let where_ = format!("docs/{page}:{}: $ {}", step.line, step.command);
        let output =
            std::fs::read_to_string(record.path().join(format!("{index}.out"))).unwrap_or_default();
        let status = std::fs::read_to_string(record.path().join(format!("{index}.status")))
            .unwrap_or_else(|_| {
                panic!(
                    "{where_}\ndid not finish{}",
                    if finished.is_none() {
                        " (the page ran out of time)"
                    } else {
                        ""
                    }
                )
            });
        let status = status.trim();
        let checked = steps
            .get(index + 1)
            .is_some_and(|next| next.command.trim() == "echo $?");
        assert!(
            status == "0" || checked,
            "{where_}\nexited with {status}; its output:\n{output}"
        );
        if let Some(line) = missing(&step.expected, &output) {
            panic!("{where_}\ndid not print a line matching\n  {line}\nits output:\n{output}");
        }
    }
}

#[test]
fn the_output_patterns_match_as_the_guide_says() {
    assert!(matches("exit 1", "exit 1"));
    assert!(!matches("exit 1", "exit 12"));
    assert!(matches("missing ... rows", "missing 12 rows"));
    assert!(matches("...report.html", "/tmp/x/report.html"));
    assert!(matches("run ...", "run 42"));
    assert!(!matches("run ...x", "run 42"));
    assert!(matches("a...b...c", "a1b2c"));
    assert!(!matches("a...b...c", "a1c2b"));
    let expected = ["one".to_owned(), "...".to_owned(), "t...e".to_owned()];
    assert_eq!(missing(&expected, "zero\none\ntwo\nthree\n"), None);
    assert_eq!(missing(&expected, "three\none\n"), Some("t...e"));
    let page = "text\n```console\n$ cutover diff a \\\n    b\nmissing 1\n\n$ echo $?\n1\n```\n\
                ```sh\n$ not run\n```\n";
    let found = steps(page);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].command, "cutover diff a \\\n    b");
    assert_eq!(found[0].expected, ["missing 1"]);
    assert_eq!(
        (found[1].line, found[1].expected.as_slice()),
        (7, &["1".to_owned()][..])
    );
    let page = "```console\n$ python3 - <<'PY'\nprint(1)\nPY\n1\n```\n";
    let found = steps(page);
    assert_eq!(found[0].command, "python3 - <<'PY'\nprint(1)\nPY");
    assert_eq!(found[0].expected, ["1"]);
}

#[test]
fn getting_started_runs() {
    run_page("getting-started.md");
}

#[test]
fn tutorial_a_reconcile_runs() {
    run_page("tutorials/a-reconcile.md");
}

#[test]
fn tutorial_b_deliver_runs() {
    run_page("tutorials/b-deliver.md");
}

#[test]
fn tutorial_c_move_runs() {
    run_page("tutorials/c-move.md");
}

#[test]
fn tutorial_d_refresh_runs() {
    run_page("tutorials/d-refresh.md");
}

#[test]
fn how_to_write_a_policy_runs() {
    run_page("how-to/sanitization-policy.md");
}

#[test]
fn how_to_write_a_runbook_runs() {
    run_page("how-to/runbook.md");
}

#[test]
fn how_to_read_an_evidence_report_runs() {
    run_page("how-to/evidence-report.md");
}

/// `cutover ARGS --help`, as wide as it is without a terminal.
fn help(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .arg("--help")
        .env_remove("COLUMNS")
        .stdin(Stdio::null())
        .output()
        .expect("cutover --help");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 help")
}

/// The commands a help text lists (each at the start of a `Commands:`
/// line; wrapped descriptions are indented further).
fn listed(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter(|line| !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// `command`'s reference page: its `--help`, and each subcommand's.
fn reference(command: &[&str]) -> String {
    let help = help(command);
    let mut page = format!(
        "{} `cutover {}`\n\n```text\n{help}```\n",
        "#".repeat(command.len()),
        command.join(" "),
    );
    let subcommands = listed(&help);
    for subcommand in &subcommands {
        let mut nested = command.to_vec();
        nested.push(subcommand);
        page.push('\n');
        page.push_str(&reference(&nested));
    }
    page
}

/// `docs/reference/` is the binary's `--help`, one page per command, and an
/// index; `CUTOVER_UPDATE_GUIDE=1` writes them.
#[test]
fn the_reference_pages_are_the_help() {
    let directory = crate::workspace_root().join("docs/reference");
    let update = std::env::var_os("CUTOVER_UPDATE_GUIDE").is_some();
    let mut index = String::from(
        "# Command reference\n\n\
         Each page is the command's `--help`, word for word (a test checks it; \
         `CUTOVER_UPDATE_GUIDE=1 cargo test -p cutover-cli --test it guide::` writes them \
         again). The same text is in the man pages (`cutover man --out DIR`).\n\n",
    );
    let mut stale = Vec::new();
    for command in listed(&help(&[])) {
        let page = format!(
            "<!-- generated from `cutover {command} --help` -->\n{}",
            reference(&[&command])
        );
        index.push_str(&format!("- [`cutover {command}`]({command}.md)\n"));
        let path = directory.join(format!("{command}.md"));
        if update {
            std::fs::create_dir_all(&directory).expect("docs/reference");
            std::fs::write(&path, &page).expect("a reference page");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(page.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    let path = directory.join("README.md");
    if update {
        std::fs::write(&path, &index).expect("the index");
    } else if std::fs::read_to_string(&path).ok().as_deref() != Some(index.as_str()) {
        stale.push(path.display().to_string());
    }
    assert!(
        stale.is_empty(),
        "not the binary's --help: {stale:?}\n\
         write them again with CUTOVER_UPDATE_GUIDE=1 cargo test -p cutover-cli --test it guide::"
    );
}

/// Every Markdown file under `directory`.
fn pages(directory: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(directory).expect("docs") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            found.extend(pages(&path));
        } else if path.extension().is_some_and(|extension| extension == "md") {
            found.push(path);
        }
    }
    found
}

/// Every relative link of the guide (and of the README into it) leads to a
/// file of the checkout.
#[test]
fn every_link_of_the_guide_leads_somewhere() {
    let root = crate::workspace_root();
    let mut files = pages(&root.join("docs"));
    files.push(root.join("README.md"));
    let mut broken = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a page");
        for (at, _) in text.match_indices("](") {
            let rest = &text[at + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = rest[..end].split('#').next().unwrap_or("");
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let resolved = file.parent().expect("a directory").join(target);
            if !resolved.exists() {
                broken.push(format!("{}: {target}", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "links to nothing: {broken:#?}");
}
