//! The `cutover` binary: parses arguments, runs one command, and maps the
//! outcome to an exit code in one place (0 ok, 1 differences or failed
//! verification, 2 error, 3 a run waits for a person). A closed stdout (`cutover inspect … | head`) is not an error.

mod cli;
mod commands;
mod environment;
mod output;
mod progress;

use std::process::ExitCode;

/// Masking and copying allocate a few small values per row on several
/// threads; mimalloc serves them at about a third of glibc's cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

use cli::{Cli, Command};

/// What a command concluded, as opposed to failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything as expected.
    Success,
    /// The command ran and found differences or failed checks.
    Differences,
    /// A run waits for a person: an approval, or a decision.
    Waiting,
}

const EXIT_SUCCESS: u8 = 0;
const EXIT_DIFFERENCES: u8 = 1;
const EXIT_ERROR: u8 = 2;
const EXIT_WAITING: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.global.verbose, cli.global.quiet);
    // One TLS implementation for every client (PostgreSQL, Spark, HTTP, object stores),
    // whichever providers the dependencies compile in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return report(&anyhow::Error::from(error)),
    };
    let result = runtime.block_on(run(cli));
    match result {
        Ok(Outcome::Success) => ExitCode::from(EXIT_SUCCESS),
        Ok(Outcome::Differences) => ExitCode::from(EXIT_DIFFERENCES),
        Ok(Outcome::Waiting) => ExitCode::from(EXIT_WAITING),
        Err(error) if output::is_broken_pipe(&error) => ExitCode::from(EXIT_SUCCESS),
        Err(error) => report(&error),
    }
}

async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Inspect(args) => commands::inspect::run(args, &cli.global).await,
        Command::Diff(args) => commands::diff::run(*args, &cli.global).await,
        Command::Refresh(args) => commands::refresh::run(*args, &cli.global).await,
        Command::Drain(args) => commands::drain::run(args, &cli.global).await,
        Command::Hold(args) => commands::hold::run(*args, &cli.global).await,
        Command::Receive(args) => commands::receive::run(args, &cli.global).await,
        Command::Send(args) => commands::send::run(*args, &cli.global).await,
        Command::Ledger(args) => commands::ledger::run(args, &cli.global).await,
        Command::Verify(args) => commands::verify::run(*args, &cli.global).await,
        Command::Run(args) => commands::run::run(*args, &cli.global).await,
        Command::Approve(args) => commands::run::approve(args, &cli.global).await,
        Command::Serve(args) => commands::serve::run(args, &cli.global).await,
        Command::Status(args) => commands::run::status(args, &cli.global).await,
        Command::Report(args) => commands::run::report(args, &cli.global).await,
        Command::Quickstart(args) => commands::quickstart::run(args, &cli.global).await,
        Command::Journal(args) => commands::run::journal(args, &cli.global).await,
        Command::VerifyRefresh(args) => commands::verify_refresh::run(*args, &cli.global).await,
        Command::Completions(args) => commands::manual::completions(&args),
        Command::Man(args) => commands::manual::man(&args, &cli.global),
    }
}

#[allow(clippy::print_stderr)]
fn report(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::from(EXIT_ERROR)
}

fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUTOVER_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "cutover={level},cutover_db={level},cutover_diff={level}"
        ))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
