//! The rules that say which version and site a timer belongs to (TOML).

use regex::Regex;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The built-in profile: scenario C's 2.x (`EICRTask`) and 3.x (`BsaScheduledJob`).
const DEFAULT_RULES: &str = include_str!("../../../examples/drain-rules.toml");

/// One version's timers.
#[derive(Debug, Clone)]
pub struct VersionRule {
    /// The version's name, e.g. `2.x`.
    pub name: String,
    /// The db-scheduler task name its timers carry.
    pub task_name: String,
    /// The pattern `task_instance` must match; its named groups become fields.
    pub instance: Regex,
    /// Retries db-scheduler makes before giving up.
    pub max_retries: u32,
    /// Microseconds between retries.
    pub retry_delay: i64,
    /// The order of actions in a launch: a timer may schedule the next one.
    pub chain: Vec<String>,
    /// Microseconds before a follow-on timer is typically due.
    pub follow_on_delay: i64,
}

/// A rule naming a site from a field of a version's timers.
#[derive(Debug, Clone)]
pub struct SiteRule {
    /// The site's name.
    pub name: String,
    /// The version it applies to (all when `None`).
    pub version: Option<String>,
    /// The field (a named group of the instance pattern).
    pub field: String,
    /// The pattern the field's value must match.
    pub pattern: Regex,
}

/// The classification rules and thresholds.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Versions, tried in order.
    pub versions: Vec<VersionRule>,
    /// Site rules, tried in order.
    pub sites: Vec<SiteRule>,
    /// Microseconds after which a picked timer without a heartbeat is stuck.
    pub stale_heartbeat: i64,
    /// Consecutive failures above which a timer is reported.
    pub failure_threshold: i64,
    /// Microseconds past its execution time after which an unpicked timer is overdue.
    pub overdue_after: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    #[serde(default)]
    stale_heartbeat: Option<String>,
    #[serde(default)]
    failure_threshold: Option<i64>,
    #[serde(default)]
    overdue_after: Option<String>,
    #[serde(default)]
    version: Vec<RawVersion>,
    #[serde(default)]
    site: Vec<RawSite>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVersion {
    name: String,
    task_name: String,
    #[serde(default)]
    instance: Option<String>,
    #[serde(default)]
    max_retries: Option<u32>,
    #[serde(default)]
    retry_delay: Option<String>,
    #[serde(default)]
    chain: Vec<String>,
    #[serde(default)]
    follow_on_delay: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    name: String,
    #[serde(default)]
    version: Option<String>,
    field: String,
    pattern: String,
}

/// Parses `30s`, `5m`, `1h30m`, `2d`, `250ms` into microseconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let number: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_length = rest.chars().take_while(char::is_ascii_alphabetic).count();
        let unit = match &rest[..unit_length] {
            "ms" => 1_000,
            "s" => 1_000_000,
            "m" => 60_000_000,
            "h" => 3_600_000_000,
            "d" => 86_400_000_000,
            _ => return None,
        };
        total = total.checked_add(number.checked_mul(unit)?)?;
        rest = &rest[unit_length..];
    }
    Some(total)
}

/// Microseconds as a short duration: `2d 3h`, `45m`, `12s`.
pub fn format_duration(micros: i64) -> String {
    let seconds = micros.max(0) / 1_000_000;
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3_600 % 24, seconds / 60 % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

impl Profile {
    /// The built-in profile (scenario C's 2.x and 3.x).
    pub fn default_profile() -> Profile {
        Profile::parse(DEFAULT_RULES, "the built-in profile").unwrap_or_else(|_| Profile {
            versions: Vec::new(),
            sites: Vec::new(),
            stale_heartbeat: 30 * 60_000_000,
            failure_threshold: 3,
            overdue_after: 15 * 60_000_000,
        })
    }

    /// Reads a rules file.
    pub fn load(path: &std::path::Path) -> Result<Profile> {
        let text = std::fs::read_to_string(path).map_err(|error| Error::Rules {
            path: path.display().to_string(),
            message: error.to_string(),
        })?;
        Profile::parse(&text, &path.display().to_string())
    }

    /// Parses rules; `origin` names them in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Profile> {
        let problem = |message: String| Error::Rules {
            path: origin.to_owned(),
            message,
        };
        let raw: RawProfile = toml::from_str(text).map_err(|error| problem(error.to_string()))?;
        let duration = |field: &str, value: Option<&String>, default: i64| match value {
            None => Ok(default),
            Some(text) => parse_duration(text).ok_or_else(|| {
                problem(format!(
                    "{field} = \"{text}\" is not a duration (write e.g. 30s, 5m, 1h30m, 2d)"
                ))
            }),
        };
        let regex = |field: &str, pattern: &str| {
            Regex::new(pattern).map_err(|error| problem(format!("{field}: {error}")))
        };
        if raw.version.is_empty() {
            return Err(problem(
                "no [[version]] rules: name at least one version".into(),
            ));
        }
        let mut versions = Vec::new();
        for version in raw.version {
            let label = format!("version {}", version.name);
            versions.push(VersionRule {
                instance: regex(
                    &format!("{label}: instance"),
                    version.instance.as_deref().unwrap_or(".*"),
                )?,
                max_retries: version.max_retries.unwrap_or(0),
                retry_delay: duration(
                    &format!("{label}: retry_delay"),
                    version.retry_delay.as_ref(),
                    5 * 60_000_000,
                )?,
                follow_on_delay: duration(
                    &format!("{label}: follow_on_delay"),
                    version.follow_on_delay.as_ref(),
                    0,
                )?,
                chain: version.chain,
                task_name: version.task_name,
                name: version.name,
            });
        }
        let mut sites = Vec::new();
        for site in raw.site {
            if let Some(version) = &site.version {
                if !versions.iter().any(|rule| &rule.name == version) {
                    return Err(problem(format!(
                        "site {}: no version is named {version}",
                        site.name
                    )));
                }
            }
            sites.push(SiteRule {
                pattern: regex(&format!("site {}: pattern", site.name), &site.pattern)?,
                name: site.name,
                version: site.version,
                field: site.field,
            });
        }
        Ok(Profile {
            versions,
            sites,
            stale_heartbeat: duration(
                "stale_heartbeat",
                raw.stale_heartbeat.as_ref(),
                30 * 60_000_000,
            )?,
            failure_threshold: raw.failure_threshold.unwrap_or(3),
            overdue_after: duration("overdue_after", raw.overdue_after.as_ref(), 15 * 60_000_000)?,
        })
    }
}
