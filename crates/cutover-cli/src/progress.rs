//! Progress bars on stderr, only when stderr is a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar (or nothing) that libraries report into.
#[derive(Debug)]
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    /// A bar on stderr if it is a terminal and output is not quiet.
    pub fn new(quiet: bool) -> Bar {
        let enabled = !quiet && std::io::stderr().is_terminal();
        Bar {
            bar: enabled.then(|| ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())),
        }
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl cutover_db::Progress for Bar {
    fn phase(&self, name: &str, total: Option<u64>) {
        let Some(bar) = &self.bar else { return };
        bar.set_length(total.unwrap_or(0));
        let template = if total.is_some() {
            "{msg:>10} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} rows ({per_sec}, eta {eta})"
        } else {
            "{msg:>10} [{elapsed_precise}] {spinner} {human_pos} rows ({per_sec})"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_message(name.to_owned());
        bar.set_position(0);
    }

    fn advance(&self, rows: u64) {
        if let Some(bar) = &self.bar {
            if bar
                .length()
                .is_some_and(|length| length > 0 && bar.position() + rows > length)
            {
                // Estimates can be low: grow rather than stall at 100%.
                bar.set_length(bar.position() + rows);
            }
            bar.inc(rows);
        }
    }
}
