//! The data-exchange upload service's contract, as a sender meets it: the
//! manifest keys it requires, and how its upload info answer is judged.
//!
//! The info endpoint (`GET /upload/info/{id}`) answers with the manifest,
//! `file_info.size_bytes`, `upload_status.status` and `deliveries`, an
//! append-only log of delivery attempts that fills in asynchronously after
//! the upload completes. So:
//! - an unknown upload (404) is missing;
//! - not complete yet, or an empty status, is pending (`held: false`);
//! - complete with another size is missing (the service holds other bytes);
//! - complete, the right size, and for every delivery target the newest
//!   attempt a success (compared without case) is found;
//! - complete and the right size, but with no deliveries yet, or a target
//!   whose newest attempt failed, is pending (`held: true`): after the
//!   settling time such a file is undelivered at the receiver, not lost.

use std::collections::BTreeMap;

use crate::client::clip;
use crate::ledger::Entry;
use crate::verify::{Expectation, Finding};

/// The manifest keys the service requires of every upload.
pub const REQUIRED_KEYS: [&str; 6] = [
    "data_stream_id",
    "data_stream_route",
    "sender_id",
    "data_producer_id",
    "jurisdiction",
    "received_filename",
];

/// How much of a status word or target name a message quotes.
const WORD: usize = 60;

/// What is wrong with a manifest before it is sent: the required keys it
/// lacks, and a `received_filename` with a `/`. Empty when it is fine.
pub fn manifest_problems(metadata: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems: Vec<String> = REQUIRED_KEYS
        .iter()
        .filter(|key| metadata.get(**key).is_none_or(|value| value.is_empty()))
        .map(|key| format!("no {key}"))
        .collect();
    if metadata
        .get("received_filename")
        .is_some_and(|name| name.contains('/'))
    {
        problems.push("received_filename contains /".to_owned());
    }
    problems
}

/// Judges one info answer for `entry`: `targets` are the delivery targets
/// that must succeed (empty: every target that appears), `expectations`
/// further fields that must hold.
pub fn judge(
    answer: &serde_json::Value,
    entry: &Entry,
    targets: &[String],
    expectations: &[Expectation],
) -> Finding {
    let status = answer
        .pointer("/upload_status/status")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    let size = answer
        .pointer("/file_info/size_bytes")
        .and_then(serde_json::Value::as_u64);
    if !status.eq_ignore_ascii_case("complete") {
        let reason = if status.is_empty() {
            "the upload's status is not known yet".to_owned()
        } else {
            format!("the upload is {}", clip(status, WORD))
        };
        return Finding::Pending {
            held: false,
            reason,
        };
    }
    match size {
        Some(size) if size != entry.size => {
            return Finding::NotFound(format!(
                "the service holds {size} bytes, not {}",
                entry.size
            ));
        }
        Some(_) => {}
        None => {
            return Finding::Pending {
                held: false,
                reason: "the service does not show the file's size yet".to_owned(),
            };
        }
    }
    let failed: Vec<String> = expectations
        .iter()
        .filter_map(|expectation| expectation.check(answer, entry).err())
        .collect();
    if !failed.is_empty() {
        return Finding::NotFound(failed.join(", "));
    }
    let newest = newest_attempts(answer.get("deliveries"));
    if newest.is_empty() && targets.is_empty() {
        return Finding::Pending {
            held: true,
            reason: "complete, not delivered yet".to_owned(),
        };
    }
    let judged: Vec<&str> = if targets.is_empty() {
        newest.keys().map(String::as_str).collect()
    } else {
        targets.iter().map(String::as_str).collect()
    };
    let outstanding: Vec<String> = judged
        .iter()
        .filter_map(|target| match newest.get(*target) {
            None => Some(format!("no delivery to {} yet", clip(target, WORD))),
            Some(status) if status.eq_ignore_ascii_case("success") => None,
            Some(status) => Some(format!(
                "the newest delivery to {} is {}",
                clip(target, WORD),
                clip(status, WORD)
            )),
        })
        .collect();
    if outstanding.is_empty() {
        Finding::Found
    } else {
        Finding::Pending {
            held: true,
            reason: format!("complete; {}", outstanding.join(", ")),
        }
    }
}

/// Each target's newest delivery status: by `delivered_at` where it
/// parses, later entries of the log winning ties (the log is append-only).
fn newest_attempts(deliveries: Option<&serde_json::Value>) -> BTreeMap<String, String> {
    let mut newest: BTreeMap<String, (Option<chrono::DateTime<chrono::FixedOffset>>, String)> =
        BTreeMap::new();
    for attempt in deliveries
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = |name: &str| {
            attempt
                .get(name)
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
        };
        let at = chrono::DateTime::parse_from_rfc3339(text("delivered_at")).ok();
        let status = text("status").to_owned();
        match newest.get(text("name")) {
            Some((Some(known), _)) if at.is_some_and(|at| at < *known) => {}
            _ => {
                newest.insert(text("name").to_owned(), (at, status));
            }
        }
    }
    newest
        .into_iter()
        .map(|(name, (_, status))| (name, status))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry::sample("http://127.0.0.1:9/upload/files/abc")
    }

    fn info(status: &str, size: u64, deliveries: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "manifest": {},
            "file_info": {"size_bytes": size},
            "upload_status": {"status": status},
            "deliveries": deliveries,
        })
    }

    fn attempt(name: &str, status: &str, at: &str) -> serde_json::Value {
        serde_json::json!({"name": name, "status": status, "location": "", "delivered_at": at, "issues": null})
    }

    #[test]
    fn a_retried_delivery_is_judged_by_its_newest_attempt() {
        let log = serde_json::json!([
            attempt("edav", "FAILURE", "2026-11-30T10:00:01Z"),
            attempt("edav", "SUCCESS", "2026-11-30T10:00:03Z"),
        ]);
        assert_eq!(
            judge(&info("Complete", 42, log), &entry(), &[], &[]),
            Finding::Found
        );
        // Newest by time, not by place in the log; words compared without case.
        let log = serde_json::json!([
            attempt("edav", "Success", "2026-11-30T10:00:03Z"),
            attempt("edav", "Failed", "2026-11-30T10:00:01Z"),
        ]);
        assert_eq!(
            judge(&info("complete", 42, log), &entry(), &[], &[]),
            Finding::Found
        );
    }

    #[test]
    fn not_yet_delivered_or_not_yet_complete_is_pending_not_missing() {
        let pending = |answer: serde_json::Value, targets: &[String]| match judge(
            &answer,
            &entry(),
            targets,
            &[],
        ) {
            Finding::Pending { held, .. } => Some(held),
            _ => None,
        };
        assert_eq!(
            pending(info("Complete", 42, serde_json::Value::Null), &[]),
            Some(true)
        );
        assert_eq!(
            pending(info("Complete", 42, serde_json::json!([])), &[]),
            Some(true)
        );
        let failed = serde_json::json!([attempt("edav", "FAILURE", "2026-11-30T10:00:01Z")]);
        assert_eq!(pending(info("Complete", 42, failed), &[]), Some(true));
        assert_eq!(
            pending(info("In Progress", 20, serde_json::Value::Null), &[]),
            Some(false)
        );
        let unknown = serde_json::json!({"manifest": {}, "file_info": null, "upload_status": {"status": ""}, "deliveries": null});
        assert_eq!(pending(unknown, &[]), Some(false));
        // An expected target that has not appeared keeps it pending.
        let other = serde_json::json!([attempt("routing", "SUCCESS", "2026-11-30T10:00:01Z")]);
        assert_eq!(
            pending(info("Complete", 42, other), &["edav".to_owned()]),
            Some(true)
        );
    }

    #[test]
    fn a_complete_upload_of_another_size_is_missing() {
        assert!(matches!(
            judge(
                &info("Complete", 41, serde_json::Value::Null),
                &entry(),
                &[],
                &[]
            ),
            Finding::NotFound(_)
        ));
    }

    #[test]
    fn manifests_are_checked_for_every_required_key() {
        let mut metadata: BTreeMap<String, String> = REQUIRED_KEYS
            .iter()
            .map(|key| ((*key).to_owned(), "x".to_owned()))
            .collect();
        assert!(manifest_problems(&metadata).is_empty());
        metadata.remove("sender_id");
        metadata.insert("received_filename".into(), "a/b.xml".into());
        assert_eq!(
            manifest_problems(&metadata),
            ["no sender_id", "received_filename contains /"]
        );
    }
}
