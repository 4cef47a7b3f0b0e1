//! Live updates: one task watches the journal (SQLite's `data_version`,
//! polled every 10 ms on its own connection) and, when a run someone is
//! watching gains records, renders that run's live part once and sends it
//! to every reader of the run's event stream (server-sent events).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};

use cutover_run::Journal;

use crate::pages;

/// How often the journal is looked at.
const POLL: Duration = Duration::from_millis(10);

/// The runs being watched, each with its channel of rendered updates and
/// its latest rendering (which a new reader gets first, so that a crowd of
/// readers arriving at once costs one rendering, not one each).
#[derive(Default)]
pub struct Live {
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<str>>>>,
    latest: Mutex<HashMap<String, Arc<str>>>,
    /// Woken by the console's own writes, so its readers need not wait for a poll.
    pub wake: Notify,
}

impl Live {
    /// A receiver of `run`'s updates.
    pub fn subscribe(&self, run: &str) -> broadcast::Receiver<Arc<str>> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels
            .entry(run.to_owned())
            .or_insert_with(|| broadcast::channel(16).0)
            .subscribe()
    }

    /// The latest rendering of a watched run.
    pub fn cached(&self, run: &str) -> Option<Arc<str>> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(run)
            .cloned()
    }

    /// Keeps a reader's own first rendering unless the watcher has kept a
    /// newer one meanwhile; the one kept.
    pub fn keep_first(&self, run: &str, rendered: &Arc<str>) -> Arc<str> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(run.to_owned())
            .or_insert_with(|| rendered.clone())
            .clone()
    }

    fn keep(&self, run: &str, rendered: &Arc<str>) {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run.to_owned(), rendered.clone());
    }

    fn watched(&self) -> Vec<(String, broadcast::Sender<Arc<str>>)> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.retain(|_, sender| sender.receiver_count() > 0);
        // A run nobody watches is not re-rendered: forget its rendering.
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|run, _| channels.contains_key(run));
        channels
            .iter()
            .map(|(run, sender)| (run.clone(), sender.clone()))
            .collect()
    }
}

/// Watches the journal at `path` until the process ends; errors (a
/// journal briefly locked) are retried at the next poll.
pub async fn watch(path: PathBuf, live: Arc<Live>) {
    let journal = match tokio::task::spawn_blocking({
        let path = path.clone();
        move || Journal::open_existing(&path)
    })
    .await
    {
        Ok(Ok(journal)) => Arc::new(Mutex::new(journal)),
        _ => return,
    };
    let mut version = -1i64;
    let mut seen = 0i64;
    loop {
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = live.wake.notified() => {}
        }
        let watched = live.watched();
        let journal = journal.clone();
        let keeper = live.clone();
        let checked = tokio::task::spawn_blocking(move || -> Option<(i64, i64)> {
            let journal = journal.lock().unwrap_or_else(|e| e.into_inner());
            let now = journal.data_version().ok()?;
            if now == version {
                return Some((now, seen));
            }
            let last = journal.last_seq().ok()?;
            if last == seen || watched.is_empty() {
                return Some((now, last));
            }
            let changed = journal.runs_changed_after(seen).ok()?;
            for (run, sender) in watched.iter().filter(|(run, _)| changed.contains(run)) {
                if let Some(update) = render(&journal, run) {
                    keeper.keep(run, &update);
                    let _ = sender.send(update);
                }
            }
            Some((now, last))
        })
        .await;
        if let Ok(Some((now, last))) = checked {
            version = now;
            seen = last;
        }
    }
}

/// A run's live part, rendered now.
pub fn render(journal: &Journal, run: &str) -> Option<Arc<str>> {
    let info = journal.run(run).ok()??;
    let records = journal.records(run).ok()?;
    Some(Arc::from(pages::live(&info, &records, chrono::Utc::now())))
}
