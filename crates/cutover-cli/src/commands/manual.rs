//! `cutover completions` and `cutover man`: shell completions and man
//! pages, generated from the same definitions as `--help`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory};

use crate::Outcome;
use crate::cli::{Cli, Format, GlobalArgs};
use crate::output::{print, print_json};

/// Print a shell's completion script for cutover.
///
/// Install it where the shell looks, for example:
///   cutover completions bash > ~/.local/share/bash-completion/completions/cutover
///   cutover completions zsh > ~/.zfunc/_cutover     (with fpath+=~/.zfunc before compinit)
///   cutover completions fish > ~/.config/fish/completions/cutover.fish
///   cutover completions powershell >> $PROFILE
/// The Debian package installs the bash, zsh and fish scripts.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Write a man page for cutover and one for each of its commands.
///
/// Writes cutover.1 and cutover-COMMAND.1 (cutover-diff.1, cutover-refresh.1, …)
/// into --out, made from the same text as --help. Read one with
/// `man -l DIR/cutover-diff.1`, or put DIR in MANPATH's man1.
/// The Debian package installs them.
///
/// Examples:
///   cutover man --out man/
///   MANPATH=$PWD/man: man cutover-refresh   (after cutover man --out man/man1)
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ManArgs {
    /// The folder the pages are written to (made if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `cutover completions SHELL`.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<Outcome> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "cutover", &mut script);
    print(&String::from_utf8(script).context("the completion script is not UTF-8")?)?;
    Ok(Outcome::Success)
}

/// `cutover man --out DIR`.
pub fn man(args: &ManArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("could not make {}", args.out.display()))?;
    let root = Cli::command();
    let mut pages = vec![("cutover".to_owned(), root.clone())];
    for command in root.get_subcommands() {
        let name = format!("cutover-{}", command.get_name());
        // The page's name and synopsis say the whole command line.
        let page = command
            .clone()
            .name(name.clone())
            .bin_name(format!("cutover {}", command.get_name()))
            .version(env!("CARGO_PKG_VERSION"));
        pages.push((name, page));
    }
    let mut written = Vec::new();
    for (name, page) in pages {
        let mut text = Vec::new();
        clap_mangen::Man::new(page)
            .render(&mut text)
            .with_context(|| format!("could not render the page of {name}"))?;
        let path = args.out.join(format!("{name}.1"));
        // Written beside, then renamed: never a half-written page.
        let partial = args.out.join(format!(".{name}.1.partial"));
        std::fs::write(&partial, &text)
            .and_then(|()| std::fs::rename(&partial, &path))
            .with_context(|| format!("could not write {}", path.display()))?;
        written.push(path.display().to_string());
    }
    match global.format {
        Format::Json => print_json(&serde_json::json!({ "pages": written }))?,
        Format::Text => print(&format!(
            "wrote {} man pages to {}\n",
            written.len(),
            args.out.display()
        ))?,
    }
    Ok(Outcome::Success)
}
