//! Replaying held calls to the new backend, in arrival order, exactly once.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::journal::{JournalReader, Outcomes};

/// How to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The new backend's base URL.
    pub to: String,
    /// Calls per second at the most (0: as fast as the backend answers).
    pub rate: u32,
    /// A header that carries the hold id, for the backend to deduplicate on.
    pub idempotency_header: Option<String>,
    /// Stop after this many 5xx answers or failed connections in a row.
    pub stop_after_failures: u32,
}

/// What a replay did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    /// Calls in the journal.
    pub held: u64,
    /// Calls already delivered by an earlier run, not sent again.
    pub already_delivered: u64,
    /// Calls answered 2xx now.
    pub delivered: u64,
    /// Calls answered 4xx (recorded, not retried): hold id and status.
    pub rejected: Vec<(u64, u16)>,
    /// Why the replay stopped early, if it did.
    pub stopped: Option<String>,
}

/// Replays the journal in `directory` to `options.to`.
pub async fn replay(directory: &Path, options: &ReplayOptions) -> Result<ReplayReport> {
    let mut outcomes = Outcomes::open(directory)?;
    let mut reader = JournalReader::open(directory)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|error| Error::Config(format!("the HTTP client: {error}")))?;
    let base = options.to.trim_end_matches('/').to_owned();
    let pause = (options.rate > 0).then(|| Duration::from_secs_f64(1.0 / f64::from(options.rate)));
    let mut report = ReplayReport::default();
    let mut failures = 0u32;
    while let Some(call) = reader.next_call()? {
        report.held += 1;
        if outcomes.delivered(call.id) {
            report.already_delivered += 1;
            continue;
        }
        if let Some(status) = outcomes
            .statuses
            .get(&call.id)
            .filter(|status| (400..500).contains(*status))
        {
            report.rejected.push((call.id, *status));
            continue;
        }
        let method = reqwest::Method::from_bytes(call.method.as_bytes()).map_err(|_| {
            Error::Config(format!(
                "call {}: method {} is not valid",
                call.id, call.method
            ))
        })?;
        // The same call again after a 5xx or no answer, so the order holds.
        loop {
            let mut request = client
                .request(method.clone(), format!("{base}{}", call.path))
                .body(call.body.clone());
            for (name, value) in &call.headers {
                request = request.header(name.as_str(), value.as_slice());
            }
            if let Some(header) = &options.idempotency_header {
                request = request.header(header.as_str(), call.id.to_string());
            }
            let status = match request.send().await {
                Ok(answer) => {
                    let status = answer.status().as_u16();
                    // Read the answer to its end so the connection is reused.
                    let _ = answer.bytes().await;
                    status
                }
                Err(_) => 0,
            };
            outcomes.record(call.id, status)?;
            match status {
                200..=299 => {
                    report.delivered += 1;
                    failures = 0;
                    break;
                }
                400..=499 => {
                    report.rejected.push((call.id, status));
                    failures = 0;
                    break;
                }
                _ => {
                    failures += 1;
                    if failures >= options.stop_after_failures.max(1) {
                        report.stopped = Some(format!(
                            "{failures} attempts in a row failed (the last, hold id {}: {}): stopped so an operator can look; a rerun resumes with this call",
                            call.id,
                            if status == 0 {
                                "no answer".to_owned()
                            } else {
                                format!("status {status}")
                            }
                        ));
                        return Ok(report);
                    }
                    let backoff = Duration::from_millis(100u64 << failures.min(6));
                    tokio::time::sleep(backoff).await;
                }
            }
        }
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
    }
    Ok(report)
}
