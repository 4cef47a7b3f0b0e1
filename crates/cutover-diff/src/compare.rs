//! The exact comparison of candidate rows: two streams of (bucket, row),
//! each in bucket order, merged bucket by bucket. Only one bucket's rows are
//! held at a time; within it rows are matched by their normalised key.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use cutover_db::{Row, Value, canonical};
use futures_util::stream::{BoxStream, StreamExt};

use crate::DiffOptions;
use crate::error::Result;
use crate::json;
use crate::plan::Plan;
use crate::store::{StoredFinding, WriterHandle};

/// A stream of candidate rows with their bucket, in bucket order.
pub(crate) type Candidates = BoxStream<'static, Result<(i64, Row)>>;

/// What a run shares between partitions.
#[derive(Debug)]
pub(crate) struct Shared {
    pub plan: Plan,
    pub options: DiffOptions,
    pub writer: WriterHandle,
    /// Differences found so far (missing + extra + changed), for `--max-diffs`.
    pub differences: AtomicU64,
    /// Set when `--max-diffs` was reached.
    pub stopped: AtomicBool,
}

impl Shared {
    /// The normalised canonical bytes that identify a row's key.
    pub fn key_id(&self, row: &[Value]) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(32);
        for value in &row[..self.plan.key_len] {
            canonical::encode_into(&self.options.normalise.for_hash(value), &mut bytes);
        }
        bytes
    }

    fn key_json(&self, row: &[Value]) -> String {
        json::object(
            &self.plan.names[..self.plan.key_len],
            &row[..self.plan.key_len],
        )
    }

    fn groups_json(&self, row: &[Value]) -> Option<String> {
        if self.plan.groups.is_empty() {
            return None;
        }
        let values: Vec<serde_json::Value> = self
            .plan
            .groups
            .iter()
            .map(|(index, group)| {
                row.get(*index)
                    .map(|value| json::group_value(group, value))
                    .unwrap_or(serde_json::Value::Null)
            })
            .collect();
        Some(serde_json::Value::Array(values).to_string())
    }

    fn values_json(&self, row: &[Value]) -> Option<String> {
        let width = self.plan.key_len + self.plan.compared;
        self.options
            .keep_values
            .then(|| json::object(&self.plan.names[..width], &row[..width]))
    }

    /// Counts a difference; false once `--max-diffs` is reached.
    fn admit(&self) -> bool {
        if self.stopped.load(Ordering::Relaxed) {
            return false;
        }
        let seen = self.differences.fetch_add(1, Ordering::Relaxed) + 1;
        match self.options.max_diffs {
            Some(limit) if seen > limit => {
                self.stopped.store(true, Ordering::Relaxed);
                false
            }
            _ => true,
        }
    }

    /// Records a duplicate key found on one side.
    pub async fn duplicate(
        &self,
        partition: i64,
        side: &'static str,
        row: &[Value],
        count: u64,
    ) -> Result<()> {
        self.writer
            .finding(StoredFinding {
                partition,
                kind: "duplicate_key",
                side,
                key_id: self.key_id(row),
                key: self.key_json(row),
                count: Some(count),
                groups: self.groups_json(row),
                ..StoredFinding::default()
            })
            .await
    }
}

/// Rows that were equal on both sides.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Compared {
    pub matched: u64,
}

/// Merges two candidate streams and records every finding.
pub(crate) async fn compare(
    shared: &Arc<Shared>,
    partition: i64,
    mut source: Candidates,
    mut target: Candidates,
) -> Result<Compared> {
    let mut compared = Compared::default();
    let mut next_source = source.next().await.transpose()?;
    let mut next_target = target.next().await.transpose()?;
    loop {
        let bucket = match (&next_source, &next_target) {
            (Some((left, _)), Some((right, _))) => (*left).min(*right),
            (Some((left, _)), None) => *left,
            (None, Some((right, _))) => *right,
            (None, None) => break,
        };
        let mut rows: BTreeMap<Vec<u8>, (Vec<Row>, Vec<Row>)> = BTreeMap::new();
        while let Some((_, row)) = next_source.take_if(|(candidate, _)| *candidate == bucket) {
            rows.entry(shared.key_id(&row)).or_default().0.push(row);
            next_source = source.next().await.transpose()?;
        }
        while let Some((_, row)) = next_target.take_if(|(candidate, _)| *candidate == bucket) {
            rows.entry(shared.key_id(&row)).or_default().1.push(row);
            next_target = target.next().await.transpose()?;
        }
        for (key_id, (source_rows, target_rows)) in rows {
            if shared.stopped.load(Ordering::Relaxed) {
                return Ok(compared);
            }
            compared.matched +=
                classify(shared, partition, key_id, source_rows, target_rows).await?;
        }
    }
    Ok(compared)
}

/// Classifies one key's rows; returns 1 if they matched.
async fn classify(
    shared: &Arc<Shared>,
    partition: i64,
    key_id: Vec<u8>,
    mut source_rows: Vec<Row>,
    mut target_rows: Vec<Row>,
) -> Result<u64> {
    let duplicated = source_rows.len() > 1 || target_rows.len() > 1;
    if duplicated {
        for (side, rows) in [("source", &source_rows), ("target", &target_rows)] {
            if rows.len() > 1 {
                shared
                    .duplicate(partition, side, &rows[0], rows.len() as u64)
                    .await?;
            }
        }
        return Ok(0);
    }
    let plan = &shared.plan;
    let finding = match (source_rows.pop(), target_rows.pop()) {
        (Some(source), None) => StoredFinding {
            kind: "missing",
            key: shared.key_json(&source),
            groups: shared.groups_json(&source),
            source: shared.values_json(&source),
            ..StoredFinding::default()
        },
        (None, Some(target)) => StoredFinding {
            kind: "extra",
            key: shared.key_json(&target),
            groups: shared.groups_json(&target),
            target: shared.values_json(&target),
            ..StoredFinding::default()
        },
        (Some(source), Some(target)) => {
            let changed: Vec<&String> = (plan.key_len..plan.key_len + plan.compared)
                .filter(|index| {
                    !shared
                        .options
                        .normalise
                        .equal(&source[*index], &target[*index])
                })
                .map(|index| &plan.names[index])
                .collect();
            if changed.is_empty() {
                return Ok(1);
            }
            StoredFinding {
                kind: "changed",
                key: shared.key_json(&source),
                columns: Some(serde_json::to_string(&changed).unwrap_or_default()),
                groups: shared.groups_json(&source),
                source: shared.values_json(&source),
                target: shared.values_json(&target),
                ..StoredFinding::default()
            }
        }
        (None, None) => return Ok(0),
    };
    if shared.admit() {
        shared
            .writer
            .finding(StoredFinding {
                partition,
                key_id,
                ..finding
            })
            .await?;
    }
    Ok(0)
}
