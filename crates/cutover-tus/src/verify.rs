//! Independent proof that a file is persisted on the receiver: every
//! configured probe asks the receiver about the file, outside the upload's
//! own success response.
//!
//! - [`Probe::Tus`]: a `HEAD` on the upload; the upload must still exist
//!   with its offset equal to the file's length. This can find a file gone,
//!   but it is the receiver's own bookkeeping, not a read-back: it never
//!   verifies a file alone.
//! - [`Probe::Receipt`]: a receipt endpoint (cutover's receiver offers
//!   `/receipts/{upload_id}`) whose size and SHA-256 must be the file's.
//! - [`Probe::Status`]: any JSON status endpoint, from a URL template with
//!   `{upload_id}` and `{filename}`, whose fields must hold expected values.
//! - [`Probe::DataExchange`]: the data-exchange upload info endpoint, judged
//!   as its contract says (see [`crate::exchange`]): unknown (404) is
//!   missing; not complete yet, or not delivered yet, is pending.
//!
//! A file any probe cannot find is missing; a file a probe finds not yet
//! settled is pending (asked again until the settling time is over); a
//! file every probe finds, with at least one read-back among them, is
//! verified; anything else (a probe that could not get an answer) leaves
//! the file as it was.

use std::time::Duration;

use crate::auth::{Auth, AuthError, SendError};
use crate::ledger::Entry;

/// One way of asking the receiver whether it has a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `HEAD` on the upload URL.
    Tus,
    /// A receipt with `size` and `sha256`, at a URL template.
    Receipt {
        /// e.g. `{origin}/receipts/{upload_id}`.
        template: String,
    },
    /// A JSON status endpoint whose fields must hold expected values.
    Status {
        /// e.g. `https://host/upload/info/{upload_id}`.
        template: String,
        /// What must hold.
        expectations: Vec<Expectation>,
    },
    /// The data-exchange upload info endpoint.
    DataExchange {
        /// e.g. `https://host/upload/info/{upload_id}`.
        template: String,
        /// The delivery targets that must succeed (empty: those that appear).
        targets: Vec<String>,
        /// Further fields that must hold (`--expect`).
        expectations: Vec<Expectation>,
    },
}

impl Probe {
    /// The probe's name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Probe::Tus => "tus-head",
            Probe::Receipt { .. } => "receipt",
            Probe::Status { .. } => "status",
            Probe::DataExchange { .. } => "data-exchange",
        }
    }

    /// Whether a positive answer reads the stored file back (and so can
    /// verify it), rather than repeating the upload's bookkeeping.
    pub fn reads_back(&self) -> bool {
        !matches!(self, Probe::Tus)
    }

    /// The default receipt probe: cutover's receiver's `/receipts/{upload_id}`.
    pub fn cutover_receipt() -> Probe {
        Probe::Receipt {
            template: "{origin}/receipts/{upload_id}".to_owned(),
        }
    }
}

/// A field of a JSON answer and the values it may hold.
///
/// The path is dotted (`upload_status.status`); `name[]` means every element
/// of the array `name`, of which there must be at least one. A value may be
/// `{size}`, `{sha256}` or `{filename}` (the file's), and several values are
/// separated by `|`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// The dotted path.
    pub path: String,
    /// The accepted values.
    pub values: Vec<String>,
}

impl Expectation {
    /// Parses `PATH=VALUE|VALUE`.
    pub fn parse(text: &str) -> Option<Expectation> {
        let (path, values) = text.split_once('=')?;
        let path = path.trim();
        if path.is_empty()
            || path
                .split('.')
                .any(|part| part.trim_end_matches("[]").is_empty())
        {
            return None;
        }
        Some(Expectation {
            path: path.to_owned(),
            values: values
                .split('|')
                .map(|value| value.trim().to_owned())
                .collect(),
        })
    }

    /// Checks the expectation on `answer` for `entry`; the reason when it
    /// does not hold (field names and expected values, never file content).
    pub(crate) fn check(&self, answer: &serde_json::Value, entry: &Entry) -> Result<(), String> {
        let accepted: Vec<String> = self
            .values
            .iter()
            .map(|value| substitute_file(value, entry))
            .collect();
        let mut found = vec![answer];
        for part in self.path.split('.') {
            let (name, every) = match part.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (part, false),
            };
            let mut next = Vec::new();
            for value in found {
                match value.get(name) {
                    Some(serde_json::Value::Array(items)) if every => {
                        if items.is_empty() {
                            return Err(format!("{} is empty", self.path));
                        }
                        next.extend(items.iter());
                    }
                    Some(child) if !every => next.push(child),
                    _ => return Err(format!("{} is absent", self.path)),
                }
            }
            found = next;
        }
        for value in found {
            let text = match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            if !accepted.contains(&text) {
                return Err(format!("{} is not {}", self.path, self.values.join("|")));
            }
        }
        Ok(())
    }
}

fn substitute_file(template: &str, entry: &Entry) -> String {
    template
        .replace("{size}", &entry.size.to_string())
        .replace("{sha256}", &entry.sha256)
        .replace(
            "{filename}",
            entry.metadata.get("filename").map_or("", String::as_str),
        )
}

/// The last path segment of an upload URL: its id.
pub fn upload_id(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
}

/// `scheme://host[:port]` of a URL.
pub fn origin(url: &str) -> &str {
    match url.find("://") {
        Some(scheme) => match url[scheme + 3..].find('/') {
            Some(path) => &url[..scheme + 3 + path],
            None => url,
        },
        None => url,
    }
}

fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Fills a URL template for the upload at `upload_url` of `entry`.
pub fn expand(template: &str, upload_url: &str, entry: &Entry) -> String {
    template
        .replace("{origin}", origin(upload_url))
        .replace("{upload_id}", &percent_encode(upload_id(upload_url)))
        .replace(
            "{filename}",
            &percent_encode(entry.metadata.get("filename").map_or("", String::as_str)),
        )
}

/// What one probe said about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The receiver has the file (the probe's evidence).
    Found,
    /// The receiver does not have it, or not whole (why).
    NotFound(String),
    /// No answer could be had (why); says nothing about the file.
    Unknown(String),
    /// Known, but not settled yet (why): asked again during the settling
    /// time. `held` when the receiver holds the file whole (complete, the
    /// right size) and only its delivery onwards is outstanding.
    Pending {
        /// Whether the receiver holds the file whole.
        held: bool,
        /// Why it is not settled.
        reason: String,
    },
    /// The receiver refused the (renewed) token: nothing can be decided.
    Refused(AuthError),
}

/// What all probes together concluded about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Read back and found whole.
    Verified,
    /// At least one probe could not find it (the reasons).
    Missing(String),
    /// Not decided (why): a probe had no answer, or none reads back.
    Undecided(String),
    /// Not settled yet (why); `held` as in [`Finding::Pending`].
    Pending {
        /// Whether the receiver holds the file whole.
        held: bool,
        /// Why it is not settled.
        reason: String,
    },
}

/// Asks a receiver about files by every configured probe.
#[derive(Debug, Clone)]
pub struct Verifier {
    http: reqwest::Client,
    auth: Auth,
    probes: Vec<Probe>,
}

impl Verifier {
    /// A verifier with `probes`, authorized by `auth`.
    pub fn new(probes: Vec<Probe>, auth: impl Into<Auth>) -> Result<Verifier, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|error| format!("the HTTP client: {error}"))?;
        Ok(Verifier {
            http,
            auth: auth.into(),
            probes,
        })
    }

    /// Whether any probe's answers need a settling time (the data-exchange
    /// service delivers asynchronously).
    pub fn settles(&self) -> bool {
        self.probes
            .iter()
            .any(|probe| matches!(probe, Probe::DataExchange { .. }))
    }

    /// The probes, in order.
    pub fn probes(&self) -> &[Probe] {
        &self.probes
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        tus: bool,
    ) -> Result<reqwest::Response, Finding> {
        let mut request = self.http.request(method, url);
        if tus {
            request = request.header("Tus-Resumable", "1.0.0");
        }
        let answer = match self.auth.send(&self.http, request).await {
            Ok(answer) => answer,
            Err(SendError::Auth(error)) => return Err(Finding::Refused(error)),
            Err(error) => return Err(Finding::Unknown(error.describe())),
        };
        if self.auth.refused(&answer) {
            return Err(Finding::Refused(AuthError::Unauthorized));
        }
        Ok(answer)
    }

    /// Runs every probe for `entry` and concludes; an error when the
    /// receiver refuses the token itself (nothing can be decided then).
    pub async fn verify(
        &self,
        entry: &Entry,
    ) -> Result<(Verdict, Vec<(&'static str, Finding)>), AuthError> {
        let Some(url) = entry.upload_url.as_deref() else {
            let verdict = Verdict::Missing("no upload was ever created".to_owned());
            return Ok((verdict, Vec::new()));
        };
        let mut findings = Vec::with_capacity(self.probes.len());
        for probe in &self.probes {
            match self.probe(probe, url, entry).await {
                Finding::Refused(error) => return Err(error),
                finding => findings.push((probe.name(), finding)),
            }
        }
        let missing: Vec<String> = findings
            .iter()
            .filter_map(|(name, finding)| match finding {
                Finding::NotFound(reason) => Some(format!("{name}: {reason}")),
                _ => None,
            })
            .collect();
        let unknown: Vec<String> = findings
            .iter()
            .filter_map(|(name, finding)| match finding {
                Finding::Unknown(reason) => Some(format!("{name}: {reason}")),
                _ => None,
            })
            .collect();
        let pending: Vec<(bool, String)> = findings
            .iter()
            .filter_map(|(name, finding)| match finding {
                Finding::Pending { held, reason } => Some((*held, format!("{name}: {reason}"))),
                _ => None,
            })
            .collect();
        let read_back = self
            .probes
            .iter()
            .zip(&findings)
            .any(|(probe, (_, finding))| probe.reads_back() && *finding == Finding::Found);
        let verdict = if !missing.is_empty() {
            Verdict::Missing(missing.join("; "))
        } else if !unknown.is_empty() {
            Verdict::Undecided(unknown.join("; "))
        } else if !pending.is_empty() {
            Verdict::Pending {
                held: pending.iter().all(|(held, _)| *held),
                reason: pending
                    .into_iter()
                    .map(|(_, reason)| reason)
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        } else if !read_back {
            Verdict::Undecided(
                "no probe reads the file back (add a receipt or status check)".into(),
            )
        } else {
            Verdict::Verified
        };
        Ok((verdict, findings))
    }

    /// The id of a whole copy of `entry` (same SHA-256, size and file name)
    /// that the receiver holds, where it can say: cutover's receiver lists
    /// receipts by checksum. `None` when there is none or no way to ask.
    pub async fn find_copy(&self, upload_url: &str, entry: &Entry) -> Option<String> {
        if !self.probes.contains(&Probe::cutover_receipt()) {
            return None;
        }
        let url = format!("{}/receipts?sha256={}", origin(upload_url), entry.sha256);
        let answer = self.json(&url).await.ok()?;
        answer.as_array()?.iter().find_map(|receipt| {
            let same = receipt.get("size").and_then(serde_json::Value::as_u64) == Some(entry.size)
                && receipt
                    .pointer("/metadata/filename")
                    .and_then(serde_json::Value::as_str)
                    == entry.metadata.get("filename").map(String::as_str);
            same.then(|| receipt.get("id")?.as_str().map(str::to_owned))
                .flatten()
        })
    }

    async fn probe(&self, probe: &Probe, url: &str, entry: &Entry) -> Finding {
        match probe {
            Probe::Tus => self.head(url, entry.size).await,
            Probe::Receipt { template } => {
                let answer = match self.json(&expand(template, url, entry)).await {
                    Ok(answer) => answer,
                    Err(finding) => return finding,
                };
                let size = answer.get("size").and_then(serde_json::Value::as_u64);
                let sha256 = answer.get("sha256").and_then(serde_json::Value::as_str);
                match (size, sha256) {
                    (Some(size), _) if size != entry.size => Finding::NotFound(format!(
                        "the stored copy has {size} bytes, not {}",
                        entry.size
                    )),
                    (_, Some(sha256)) if !sha256.eq_ignore_ascii_case(&entry.sha256) => {
                        Finding::NotFound("the stored copy's SHA-256 differs".to_owned())
                    }
                    (Some(_), Some(_)) => Finding::Found,
                    _ => Finding::Unknown("the receipt has no size and sha256".to_owned()),
                }
            }
            Probe::Status {
                template,
                expectations,
            } => {
                let answer = match self.json(&expand(template, url, entry)).await {
                    Ok(answer) => answer,
                    Err(finding) => return finding,
                };
                let failed: Vec<String> = expectations
                    .iter()
                    .filter_map(|expectation| expectation.check(&answer, entry).err())
                    .collect();
                if failed.is_empty() {
                    Finding::Found
                } else {
                    Finding::NotFound(failed.join(", "))
                }
            }
            Probe::DataExchange {
                template,
                targets,
                expectations,
            } => match self.json(&expand(template, url, entry)).await {
                Ok(answer) => crate::exchange::judge(&answer, entry, targets, expectations),
                Err(Finding::NotFound(_)) => {
                    Finding::NotFound("the service does not know the upload (404)".to_owned())
                }
                Err(finding) => finding,
            },
        }
    }

    async fn head(&self, url: &str, size: u64) -> Finding {
        let answer = match self.call(reqwest::Method::HEAD, url, true).await {
            Ok(answer) => answer,
            Err(finding) => return finding,
        };
        let status = answer.status().as_u16();
        let number = |name: &str| {
            answer
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<u64>().ok())
        };
        match status {
            200 | 204 => match number("upload-offset") {
                Some(offset) if offset == size => Finding::Found,
                Some(offset) => {
                    Finding::NotFound(format!("the upload has {offset} of {size} bytes"))
                }
                None => Finding::Unknown("the answer has no Upload-Offset".to_owned()),
            },
            404 | 410 => Finding::NotFound(format!("the upload is gone (status {status})")),
            _ => Finding::Unknown(format!("status {status}")),
        }
    }

    async fn json(&self, url: &str) -> Result<serde_json::Value, Finding> {
        let answer = self.call(reqwest::Method::GET, url, false).await?;
        let status = answer.status().as_u16();
        match status {
            200 => answer
                .json::<serde_json::Value>()
                .await
                .map_err(|_| Finding::Unknown("the answer is not JSON".to_owned())),
            404 | 410 => Err(Finding::NotFound(format!("not found (status {status})"))),
            _ => Err(Finding::Unknown(format!("status {status}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry::sample("http://127.0.0.1:9/files/abc123")
    }

    #[test]
    fn templates_take_the_upload_id_origin_and_encoded_filename() {
        let entry = entry();
        let url = entry.upload_url.as_deref().unwrap_or_default();
        assert_eq!(
            expand("{origin}/receipts/{upload_id}?f={filename}", url, &entry),
            "http://127.0.0.1:9/receipts/abc123?f=a%20b.xml"
        );
        assert_eq!(upload_id("https://h/files/x9?y=1"), "x9");
    }

    #[test]
    fn malformed_expectations_are_refused() {
        assert!(Expectation::parse("no-equals").is_none());
        assert!(Expectation::parse("=x").is_none());
        assert!(Expectation::parse("a..b=x").is_none());
        assert_eq!(
            Expectation::parse("a.b[]=x|y").map(|e| e.values),
            Some(vec!["x".to_owned(), "y".to_owned()])
        );
    }
}
