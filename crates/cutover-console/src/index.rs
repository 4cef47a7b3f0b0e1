//! The index's summary of every run, kept between loads. The journal only
//! grows (records are appended, never changed), so a load reads again only
//! the runs with records after the previous load, or whose status changed,
//! instead of every run's records (twice: once for the list, once for the
//! trend).

use std::collections::{HashMap, HashSet};

use cutover_run::report::TrendPoint;
use cutover_run::{Journal, JournalError, RunInfo};

use crate::pages::{self, Listed, Waiting};

/// Each runbook's reconciliation trend, as the charts to show.
pub(crate) type Trends = Vec<(String, String)>;

/// What the index shows of one run.
#[derive(Debug)]
struct Summary {
    /// The status it was summarized under (its approval wait depends on it).
    status: String,
    waiting: Option<Waiting>,
    done: usize,
    steps: usize,
    trend: Vec<TrendPoint>,
}

/// The summaries, as of the journal's record `seen`.
#[derive(Debug, Default)]
pub(crate) struct Index {
    seen: i64,
    runs: HashMap<String, Summary>,
    /// How many runs' records have been read, in all.
    reads: u64,
}

impl Index {
    /// Every run (oldest first, as the journal lists them) and each
    /// runbook's reconciliation trend (those with more than one point), as
    /// the charts to show.
    pub(crate) fn load(
        &mut self,
        journal: &Journal,
    ) -> Result<(Vec<Listed>, Trends), JournalError> {
        // The last record first: everything up to it is committed, so the
        // runs changed after the previous load include every run with a
        // record up to it. A record appended meanwhile is seen now or next.
        let last = journal.last_seq()?;
        let changed: HashSet<String> = journal.runs_changed_after(self.seen)?.into_iter().collect();
        let mut kept = HashMap::new();
        let mut listed = Vec::new();
        let mut trends: Vec<(String, Vec<TrendPoint>)> = Vec::new();
        for run in journal.runs()? {
            let summary = match self.runs.remove(&run.id) {
                Some(summary) if summary.status == run.status && !changed.contains(&run.id) => {
                    summary
                }
                _ => {
                    self.reads += 1;
                    summarize(journal, &run)?
                }
            };
            match trends
                .iter_mut()
                .find(|(runbook, _)| *runbook == run.runbook)
            {
                Some((_, points)) => points.extend(summary.trend.iter().cloned()),
                None => trends.push((run.runbook.clone(), summary.trend.clone())),
            }
            listed.push(Listed {
                waiting: summary.waiting.clone(),
                done: summary.done,
                steps: summary.steps,
                run: run.clone(),
            });
            kept.insert(run.id, summary);
        }
        self.runs = kept;
        self.seen = last;
        let charts = trends
            .into_iter()
            .filter(|(_, points)| points.len() > 1)
            .map(|(runbook, mut points)| {
                cutover_run::report::sort_trend(&mut points);
                (runbook, cutover_run::report::trend_charts(&points))
            })
            .collect();
        Ok((listed, charts))
    }
}

fn summarize(journal: &Journal, run: &RunInfo) -> Result<Summary, JournalError> {
    let records = journal.records(&run.id)?;
    let steps = cutover_run::report::steps_of(&records);
    Ok(Summary {
        status: run.status.clone(),
        waiting: pages::waiting(run, &records),
        done: pages::ended(&steps),
        steps: steps.len(),
        trend: cutover_run::report::trend_points(run, &records),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(id: &str, status: &str) -> RunInfo {
        RunInfo {
            id: id.to_owned(),
            runbook: "nightly".to_owned(),
            path: "nightly.toml".to_owned(),
            dir: id.to_owned(),
            started_at: "2026-12-01T06:00:00.000Z".to_owned(),
            status: status.to_owned(),
        }
    }

    fn diff_step(journal: &mut Journal, run: &str, changed: u64) {
        journal
            .append(run, "diff", "step-started", &json!({"kind": "diff"}))
            .expect("append");
        let evidence = json!({"difference_rate": changed as f64 / 1e6, "summary": {
            "missing": 0, "extra": 0, "changed": changed, "source_rows": 1_000_000}});
        journal
            .append(
                run,
                "diff",
                "step-finished",
                &json!({"outcome": "passed", "evidence": evidence}),
            )
            .expect("append");
    }

    /// A second load of an unchanged journal reads no run again; a run
    /// with new records, or a new status, is read again, and what the
    /// index shows is what reading every run would show.
    #[test]
    fn only_changed_runs_are_read_again() {
        let (_directory, path) = cutover_testing::sqlite_path("journal.db");
        let mut journal = Journal::open(&path).expect("journal");
        for id in ["a", "b"] {
            journal.create_run(&run(id, "running")).expect("run");
            let steps = json!({"steps": ["diff", "approve"]});
            journal
                .append(id, "", "run-started", &steps)
                .expect("append");
        }
        let mut index = Index::default();
        let (listed, trends) = index.load(&journal).expect("load");
        assert_eq!((index.reads, listed.len(), trends.len()), (2, 2, 0));
        assert!(
            listed
                .iter()
                .all(|listed| listed.done == 0 && listed.steps == 2)
        );

        index.load(&journal).expect("load");
        assert_eq!(index.reads, 2, "an unchanged journal is not read again");

        diff_step(&mut journal, "a", 120);
        let (listed, trends) = index.load(&journal).expect("load");
        assert_eq!(index.reads, 3, "only the run with new records");
        assert_eq!((listed[0].done, listed[1].done), (1, 0));
        assert!(trends.is_empty(), "one point is no trend");

        diff_step(&mut journal, "b", 90);
        let (_, trends) = index.load(&journal).expect("load");
        assert_eq!(index.reads, 4);
        assert_eq!(trends.len(), 1);
        let everything = cutover_run::report::trend(&journal, "nightly").expect("trend");
        assert_eq!(
            trends[0].1,
            cutover_run::report::trend_charts(&everything),
            "the same trend as reading every run"
        );

        journal.set_status("b", "finished").expect("status");
        let (listed, _) = index.load(&journal).expect("load");
        assert_eq!(index.reads, 5, "a new status is read again");
        assert_eq!(listed[1].run.status, "finished");
    }
}
