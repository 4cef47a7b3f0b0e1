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

/// One bar per file being sent and one for all files, on stderr, only when
/// stderr is a terminal.
#[derive(Debug)]
pub struct DeliveryBars {
    bars: Option<(indicatif::MultiProgress, ProgressBar)>,
    files: std::sync::Mutex<std::collections::HashMap<String, ProgressBar>>,
}

impl DeliveryBars {
    /// Bars for `files` files, or nothing when quiet or not on a terminal.
    pub fn new(quiet: bool, files: u64, label: &str) -> DeliveryBars {
        let enabled = !quiet && std::io::stderr().is_terminal();
        let bars = enabled.then(|| {
            let multi = indicatif::MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = multi.add(ProgressBar::new(files));
            if let Ok(style) = ProgressStyle::with_template(
                "{msg:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} files (eta {eta})",
            ) {
                overall.set_style(style);
            }
            overall.set_message(label.to_owned());
            (multi, overall)
        });
        DeliveryBars {
            bars,
            files: std::sync::Mutex::default(),
        }
    }

    /// Removes the bars from the terminal.
    pub fn finish(&self) {
        if let Some((multi, overall)) = &self.bars {
            overall.finish_and_clear();
            let _ = multi.clear();
        }
    }

    fn files(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, ProgressBar>> {
        self.files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl cutover_tus::DeliveryProgress for DeliveryBars {
    fn file_started(&self, path: &str, size: u64) {
        let Some((multi, _)) = &self.bars else { return };
        let bar = multi.add(ProgressBar::new(size));
        if let Ok(style) = ProgressStyle::with_template(
            "  {msg:30!} {wide_bar} {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec})",
        ) {
            bar.set_style(style);
        }
        let name = std::path::Path::new(path).file_name().map_or_else(
            || path.to_owned(),
            |name| name.to_string_lossy().into_owned(),
        );
        bar.set_message(name);
        self.files().insert(path.to_owned(), bar);
    }

    fn file_position(&self, path: &str, offset: u64) {
        if let Some(bar) = self.files().get(path) {
            bar.set_position(offset);
        }
    }

    fn settling(&self, pending: usize, left: std::time::Duration) {
        let Some((_, overall)) = &self.bars else {
            return;
        };
        if pending == 0 {
            overall.set_message("checked");
        } else {
            overall.set_message(format!(
                "{pending} not settled, up to {}s more",
                left.as_secs()
            ));
        }
    }

    fn file_finished(&self, path: &str) {
        let Some((multi, overall)) = &self.bars else {
            return;
        };
        if let Some(bar) = self.files().remove(path) {
            bar.finish_and_clear();
            multi.remove(&bar);
        }
        overall.inc(1);
    }
}
