//! Shell completions and man pages, generated from the command line's
//! definitions and used by the real bash and groff.

/// bash, with the generated script sourced, completes a command's name and
/// a command's flag.
#[test]
fn bash_completes_commands_and_their_flags() {
    let run = crate::cutover(&["completions", "bash"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let directory = tempfile::tempdir().expect("temporary directory");
    let script = directory.path().join("cutover.bash");
    std::fs::write(&script, &run.stdout).expect("script");
    let complete = |line: &str| -> Vec<String> {
        let words: Vec<&str> = line.split(' ').collect();
        let probe = format!(
            "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT={}; \
             _cutover cutover '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            words
                .iter()
                .map(|word| format!("'{word}'"))
                .collect::<Vec<_>>()
                .join(" "),
            words.len() - 1,
            line.len(),
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let output = std::process::Command::new("bash")
            .args(["--norc", "-c", &probe])
            .output()
            .expect("bash");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut found: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        found.sort();
        found
    };
    assert_eq!(complete("cutover re"), ["receive", "refresh", "report"]);
    assert!(
        complete("cutover refresh --re").contains(&"--resume".to_owned()),
        "{:?}",
        complete("cutover refresh --re")
    );
}

/// Every shell's script names every command.
#[test]
fn every_shell_gets_a_script_naming_every_command() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = crate::cutover(&["completions", shell]);
        assert_eq!(run.code, 0, "{shell}: {}", run.stderr);
        for command in [
            "diff",
            "refresh",
            "verify-refresh",
            "send",
            "quickstart",
            "man",
        ] {
            assert!(run.stdout.contains(command), "{shell} lacks {command}");
        }
    }
    let run = crate::cutover(&["completions", "tcsh"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("possible values"), "{}", run.stderr);
}

/// `cutover man` writes a page per command, which groff renders without a
/// warning, with the command's flags and its --help text in it.
#[test]
fn man_pages_are_written_for_every_command_and_render() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let out = directory.path().join("man1");
    let run = crate::cutover(&["man", "--out", &out.display().to_string()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut pages: Vec<String> = std::fs::read_dir(&out)
        .expect("pages")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    pages.sort();
    for page in [
        "cutover.1",
        "cutover-diff.1",
        "cutover-refresh.1",
        "cutover-man.1",
    ] {
        assert!(pages.contains(&page.to_owned()), "{pages:?}");
    }
    assert!(
        run.stdout
            .contains(&format!("wrote {} man pages", pages.len()))
    );
    let rendered = std::process::Command::new("groff")
        .args(["-man", "-Tascii", "-ww"])
        .arg(out.join("cutover-refresh.1"))
        .output()
        .expect("groff");
    assert!(rendered.status.success());
    let stderr = String::from_utf8_lossy(&rendered.stderr);
    assert!(stderr.is_empty(), "{stderr}");
    // groff -Tascii overstrikes bold text; strip that to read it.
    let text = String::from_utf8_lossy(&rendered.stdout);
    let mut plain = String::new();
    for character in text.chars() {
        if character == '\u{8}' {
            plain.pop();
        } else {
            plain.push(character);
        }
    }
    assert!(plain.contains("cutover refresh"), "{plain}");
    assert!(plain.contains("--resume"), "{plain}");
    assert!(plain.contains("Refresh a lower environment"), "{plain}");
}
