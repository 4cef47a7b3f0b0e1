//! What I sent against what they hold: the sender's ledger against the
//! data-exchange processing-status service (GraphQL), for one data stream,
//! route and date range, per day.
//!
//! The service lists every upload it heard of (`getUploads`, paged) and
//! says which completed uploads were never delivered onwards
//! (`getUploadStats`). Against the ledger that gives:
//! - *strangers*: uploads the service holds that the ledger does not know;
//! - *not listed*: ledger entries whose upload the service does not list;
//! - *duplicates*: one file name in several uploads, unless they are one
//!   ledger file and the replays that replaced its lost uploads;
//! - *stuck*: uploads that never completed;
//! - *undelivered*: completed uploads never delivered onwards.
//!
//! Uploads the ledger itself replaced (a lost upload and its replay) are
//! counted as `replaced`, not as discrepancies.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::NaiveDate;
use serde::Serialize;

use crate::auth::{Auth, AuthError, SendError};
use crate::client::clip;
use crate::ledger::{Ledger, LedgerError};

/// Which uploads to reconcile.
#[derive(Debug, Clone)]
pub struct Scope {
    /// `data_stream_id`.
    pub data_stream_id: String,
    /// `data_stream_route`.
    pub data_stream_route: String,
    /// The first day (UTC).
    pub since: NaiveDate,
    /// The last day (UTC), included.
    pub until: NaiveDate,
}

/// Why the status service could not be asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// No answer (why).
    #[error("the status service is unreachable: {0}")]
    Unreachable(String),
    /// No token could be had for it.
    #[error("signing in for the status service: {0}")]
    SignIn(AuthError),
    /// An HTTP error status.
    #[error("the status service answered status {0}")]
    Status(u16),
    /// An answer that is not the GraphQL the contract describes (what).
    #[error("the status service's answer is not as expected: {0}")]
    Malformed(String),
    /// GraphQL errors (their messages).
    #[error("the status service refused the query: {0}")]
    Query(String),
    /// The ledger could not be read.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// One upload as the status service lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listed {
    /// The upload id.
    pub upload_id: String,
    /// `fileName` (the manifest's `received_filename`).
    pub file_name: String,
    /// `Uploading`, `UploadComplete`, `FailedMetadata` or `PassedMetadata`.
    pub status: String,
    /// `percentComplete`, where given.
    pub percent_complete: Option<f64>,
    /// The day of its `timestamp` (UTC), `YYYY-MM-DD`.
    pub day: String,
}

/// A ledger entry the service does not list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unlisted {
    /// The file.
    pub path: String,
    /// Its upload id.
    pub upload_id: String,
    /// Its ledger state.
    pub state: String,
}

/// One file name in several uploads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Duplicate {
    /// The file name.
    pub file_name: String,
    /// The uploads.
    pub upload_ids: Vec<String>,
}

/// One day's reconciliation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Day {
    /// Uploads the service lists.
    pub listed: u64,
    /// Of those, the ledger's current uploads.
    pub matched: u64,
    /// Uploads the ledger replaced by a replay (lost or abandoned ones).
    pub replaced: u64,
    /// Uploads refused for their manifest (`FailedMetadata`).
    pub refused: u64,
    /// Uploads the ledger does not know.
    pub strangers: Vec<Listed>,
    /// Ledger entries the service does not list.
    pub not_listed: Vec<Unlisted>,
    /// File names in several uploads that no replay explains.
    pub duplicates: Vec<Duplicate>,
    /// Uploads that never completed.
    pub stuck: Vec<Listed>,
    /// Completed uploads never delivered onwards.
    pub undelivered: Vec<Listed>,
}

impl Day {
    /// How many findings need someone's attention.
    pub fn discrepancies(&self) -> u64 {
        (self.strangers.len()
            + self.not_listed.len()
            + self.duplicates.len()
            + self.stuck.len()
            + self.undelivered.len()) as u64
    }
}

/// The whole reconciliation, per day.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reconciliation {
    /// Each day of the range with anything on it.
    pub days: BTreeMap<String, Day>,
}

impl Reconciliation {
    /// Findings over every day.
    pub fn discrepancies(&self) -> u64 {
        self.days.values().map(Day::discrepancies).sum()
    }
}

/// The processing-status GraphQL service.
#[derive(Debug, Clone)]
pub struct StatusService {
    http: reqwest::Client,
    url: String,
    auth: Auth,
    page_size: u32,
}

const UPLOADS: &str = "query Uploads($dataStreamId: String!, $dataStreamRoute: String, $dateStart: String, $dateEnd: String, $pageSize: Int!, $pageNumber: Int!) {
  getUploads(dataStreamId: $dataStreamId, dataStreamRoute: $dataStreamRoute, dateStart: $dateStart, dateEnd: $dateEnd, pageSize: $pageSize, pageNumber: $pageNumber, sortBy: \"date\", sortOrder: \"asc\") {
    summary { pageNumber numberOfPages pageSize totalItems }
    items { uploadId fileName status percentComplete timestamp }
  }
}";

const STATS: &str = "query Stats($dataStreamId: String!, $dataStreamRoute: String!, $dateStart: String, $dateEnd: String) {
  getUploadStats(dataStreamId: $dataStreamId, dataStreamRoute: $dataStreamRoute, dateStart: $dateStart, dateEnd: $dateEnd) {
    undeliveredUploads { totalCount undeliveredUploads { uploadId filename } }
  }
}";

/// A date as the service reads it: `yyyyMMddTHHmmssZ`, at midnight UTC.
fn service_date(day: NaiveDate) -> String {
    format!("{}T000000Z", day.format("%Y%m%d"))
}

impl StatusService {
    /// The service at `url` (e.g. `https://status.example/graphql`).
    pub fn new(url: &str, auth: Auth) -> Result<StatusService, StatusError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|error| StatusError::Unreachable(format!("the HTTP client: {error}")))?;
        Ok(StatusService {
            http,
            url: url.to_owned(),
            auth,
            page_size: 200,
        })
    }

    /// Sets how many uploads each page asks for.
    pub fn with_page_size(mut self, page_size: u32) -> StatusService {
        self.page_size = page_size.max(1);
        self
    }

    async fn query(
        &self,
        query: &str,
        variables: serde_json::Value,
    ) -> Result<serde_json::Value, StatusError> {
        let request = self
            .http
            .post(&self.url)
            .json(&serde_json::json!({"query": query, "variables": variables}));
        let answer = match self.auth.send(&self.http, request).await {
            Ok(answer) => answer,
            Err(SendError::Auth(error)) => return Err(StatusError::SignIn(error)),
            Err(error) => return Err(StatusError::Unreachable(error.describe())),
        };
        let status = answer.status().as_u16();
        if status != 200 {
            return Err(StatusError::Status(status));
        }
        let body: serde_json::Value = answer
            .json()
            .await
            .map_err(|_| StatusError::Malformed("not JSON".to_owned()))?;
        if let Some(errors) = body.get("errors").and_then(serde_json::Value::as_array) {
            if !errors.is_empty() {
                let messages: Vec<String> = errors
                    .iter()
                    .take(3)
                    .map(|error| {
                        let message = error
                            .get("message")
                            .and_then(serde_json::Value::as_str)
                            .unwrap_or("an error");
                        clip(message, 200)
                    })
                    .collect();
                return Err(StatusError::Query(messages.join("; ")));
            }
        }
        body.get("data")
            .cloned()
            .ok_or_else(|| StatusError::Malformed("no data".to_owned()))
    }

    /// Every upload of `scope`, page by page.
    pub async fn uploads(&self, scope: &Scope) -> Result<Vec<Listed>, StatusError> {
        let mut listed = Vec::new();
        let mut page = 1u32;
        loop {
            let data = self
                .query(
                    UPLOADS,
                    serde_json::json!({
                        "dataStreamId": scope.data_stream_id,
                        "dataStreamRoute": scope.data_stream_route,
                        "dateStart": service_date(scope.since),
                        "dateEnd": service_date(scope.until + chrono::Days::new(1)),
                        "pageSize": self.page_size,
                        "pageNumber": page,
                    }),
                )
                .await?;
            let uploads = &data["getUploads"];
            let items = uploads["items"]
                .as_array()
                .ok_or_else(|| StatusError::Malformed("getUploads has no items".to_owned()))?;
            for item in items {
                listed.push(listed_upload(item)?);
            }
            let pages = uploads
                .pointer("/summary/numberOfPages")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            if items.is_empty() || u64::from(page) >= pages {
                break;
            }
            page += 1;
        }
        Ok(listed)
    }

    /// The upload ids the service counts as completed but never delivered.
    pub async fn undelivered(&self, scope: &Scope) -> Result<BTreeSet<String>, StatusError> {
        let data = self
            .query(
                STATS,
                serde_json::json!({
                    "dataStreamId": scope.data_stream_id,
                    "dataStreamRoute": scope.data_stream_route,
                    "dateStart": service_date(scope.since),
                    "dateEnd": service_date(scope.until + chrono::Days::new(1)),
                }),
            )
            .await?;
        let list = data
            .pointer("/getUploadStats/undeliveredUploads/undeliveredUploads")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| {
                StatusError::Malformed("getUploadStats has no undeliveredUploads".to_owned())
            })?;
        Ok(list
            .iter()
            .filter_map(|item| item.get("uploadId")?.as_str().map(str::to_owned))
            .collect())
    }
}

fn listed_upload(item: &serde_json::Value) -> Result<Listed, StatusError> {
    let text = |name: &str| {
        item.get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let upload_id = text("uploadId");
    if upload_id.is_empty() {
        return Err(StatusError::Malformed(
            "an upload without uploadId".to_owned(),
        ));
    }
    let timestamp = text("timestamp");
    Ok(Listed {
        upload_id,
        file_name: text("fileName"),
        status: text("status"),
        percent_complete: item
            .get("percentComplete")
            .and_then(serde_json::Value::as_f64),
        day: timestamp.get(..10).unwrap_or("").to_owned(),
    })
}

/// Reconciles `listed` (and the service's `undelivered` ids) with the
/// ledger's files of `scope`.
pub fn reconcile(
    ledger: &Ledger,
    scope: &Scope,
    listed: &[Listed],
    undelivered: &BTreeSet<String>,
) -> Result<Reconciliation, LedgerError> {
    let known = ledger.uploads(&scope.data_stream_id, &scope.data_stream_route)?;
    let by_id: HashMap<&str, &crate::ledger::KnownUpload> = known
        .iter()
        .map(|upload| (upload.upload_id.as_str(), upload))
        .collect();
    let since = scope.since.format("%Y-%m-%d").to_string();
    let until = scope.until.format("%Y-%m-%d").to_string();
    let mut report = Reconciliation::default();
    let mut names: BTreeMap<&str, Vec<&Listed>> = BTreeMap::new();
    let listed_ids: BTreeSet<&str> = listed.iter().map(|item| item.upload_id.as_str()).collect();
    for item in listed {
        let day = report.days.entry(item.day.clone()).or_default();
        day.listed += 1;
        if item.status.eq_ignore_ascii_case("FailedMetadata") {
            day.refused += 1;
            continue;
        }
        names.entry(item.file_name.as_str()).or_default().push(item);
        match by_id.get(item.upload_id.as_str()) {
            None => day.strangers.push(item.clone()),
            Some(upload) if !upload.current => day.replaced += 1,
            Some(_) => {
                day.matched += 1;
                if item.status.eq_ignore_ascii_case("Uploading") {
                    day.stuck.push(item.clone());
                } else if undelivered.contains(&item.upload_id) {
                    day.undelivered.push(item.clone());
                }
            }
        }
    }
    for (name, items) in names {
        if items.len() < 2 {
            continue;
        }
        // One ledger file and the uploads it replaced: a replay, not a duplicate.
        let files: BTreeSet<Option<&str>> = items
            .iter()
            .map(|item| {
                by_id
                    .get(item.upload_id.as_str())
                    .map(|upload| upload.path.as_str())
            })
            .collect();
        let explained = files.len() == 1 && !files.contains(&None);
        if !explained {
            let last = items
                .iter()
                .map(|item| item.day.clone())
                .max()
                .unwrap_or_default();
            report
                .days
                .entry(last)
                .or_default()
                .duplicates
                .push(Duplicate {
                    file_name: name.to_owned(),
                    upload_ids: items.iter().map(|item| item.upload_id.clone()).collect(),
                });
        }
    }
    for upload in known
        .iter()
        .filter(|upload| upload.current && upload.state != "failed")
    {
        if upload.day < since
            || upload.day > until
            || listed_ids.contains(upload.upload_id.as_str())
        {
            continue;
        }
        report
            .days
            .entry(upload.day.clone())
            .or_default()
            .not_listed
            .push(Unlisted {
                path: upload.path.clone(),
                upload_id: upload.upload_id.clone(),
                state: upload.state.clone(),
            });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Queued, State, Transition};

    fn listed(id: &str, name: &str, status: &str) -> Listed {
        Listed {
            upload_id: id.to_owned(),
            file_name: name.to_owned(),
            status: status.to_owned(),
            percent_complete: None,
            day: chrono::Utc::now().format("%Y-%m-%d").to_string(),
        }
    }

    /// A ledger whose files `a` (current upload u-a), `b` (u-b), `c` (u-c2,
    /// a replay of u-c1) and `d` (u-d, which the service will not list).
    fn ledger(directory: &std::path::Path) -> Ledger {
        let mut ledger = Ledger::open(&directory.join("ledger.db")).expect("ledger");
        let metadata = r#"{"data_stream_id":"celr","data_stream_route":"csv"}"#;
        let files: Vec<Queued> = ["a", "b", "c", "d"]
            .iter()
            .map(|path| Queued {
                path: (*path).to_owned(),
                size: 1,
                mtime: 1,
                metadata: metadata.to_owned(),
            })
            .collect();
        ledger.enqueue(&files).expect("enqueue");
        let change = |path: &str, state, url: &str| Transition {
            path: path.to_owned(),
            state,
            upload_url: Some(format!("http://dex/upload/files/{url}")),
            detail: None,
            sha256: None,
        };
        ledger
            .record(&[
                change("a", State::Uploading, "u-a"),
                change("b", State::Uploading, "u-b"),
                change("c", State::Uploading, "u-c1"),
                change("c", State::Replayed, "u-c2"),
                change("d", State::Uploading, "u-d"),
            ])
            .expect("record");
        ledger
    }

    #[test]
    fn every_kind_of_discrepancy_is_found_and_replays_are_explained() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let ledger = ledger(directory.path());
        let today = chrono::Utc::now().date_naive();
        let scope = Scope {
            data_stream_id: "celr".into(),
            data_stream_route: "csv".into(),
            since: today,
            until: today,
        };
        let service = [
            listed("u-a", "a.csv", "UploadComplete"),
            listed("u-b", "b.csv", "Uploading"),
            listed("u-c1", "c.csv", "UploadComplete"),
            listed("u-c2", "c.csv", "UploadComplete"),
            listed("u-x", "a.csv", "UploadComplete"),
            listed("u-bad", "e.csv", "FailedMetadata"),
        ];
        let undelivered: BTreeSet<String> = ["u-a".to_owned(), "u-c1".to_owned()].into();
        let report = reconcile(&ledger, &scope, &service, &undelivered).expect("reconcile");
        let day = report.days.values().next().expect("one day");
        assert_eq!(
            (day.listed, day.matched, day.replaced, day.refused),
            (6, 3, 1, 1)
        );
        let ids = |items: &[Listed]| -> Vec<String> {
            items.iter().map(|item| item.upload_id.clone()).collect()
        };
        assert_eq!(ids(&day.strangers), ["u-x"]);
        assert_eq!(ids(&day.stuck), ["u-b"]);
        // u-c1 is undelivered, but the ledger replaced it: explained.
        assert_eq!(ids(&day.undelivered), ["u-a"]);
        assert_eq!(
            day.not_listed,
            [Unlisted {
                path: "d".into(),
                upload_id: "u-d".into(),
                state: "uploading".into()
            }]
        );
        // a.csv twice (a stranger among them); c.csv twice, but one file's replay.
        assert_eq!(
            day.duplicates,
            [Duplicate {
                file_name: "a.csv".into(),
                upload_ids: vec!["u-a".into(), "u-x".into()]
            }]
        );
        assert_eq!(report.discrepancies(), 5);
    }
}
