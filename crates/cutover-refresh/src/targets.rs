//! Refusals that protect production: a target that is the source, or that
//! matches one of the policy's production host patterns.

use cutover_db::locator::PostgresHost;
use cutover_db::{DatabaseUrl, Locator};

/// The host (or SQLite path) a URL points at, for matching against patterns.
pub fn host_of(url: &DatabaseUrl) -> String {
    match &url.locator {
        Locator::Postgres(postgres) => match &postgres.host {
            PostgresHost::Tcp(host) => host.clone(),
            PostgresHost::Unix(path) => path.display().to_string(),
        },
        Locator::Sqlite(path) => path.display().to_string(),
        Locator::Spark(spark) => spark.host.clone(),
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of
/// characters; case-insensitive (host names are).
pub fn matches_pattern(pattern: &str, text: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let text = text.to_ascii_lowercase();
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, rest) = (parts[0], &parts[1..]);
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let last = rest.len() - 1;
    for (index, part) in rest.iter().enumerate() {
        if index == last {
            return remaining.ends_with(part);
        }
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// The first production pattern the URL's host matches.
pub fn forbidden_host<'a>(patterns: &'a [String], url: &DatabaseUrl) -> Option<&'a str> {
    let host = host_of(url);
    patterns
        .iter()
        .find(|pattern| matches_pattern(pattern, &host))
        .map(String::as_str)
}

/// Whether two URLs name the same database (same host, port and database
/// name; or the same SQLite file).
pub fn same_database(left: &DatabaseUrl, right: &DatabaseUrl) -> bool {
    match (&left.locator, &right.locator) {
        (Locator::Postgres(left), Locator::Postgres(right)) => {
            let name = |url: &cutover_db::locator::PostgresUrl| {
                url.dbname.clone().or_else(|| url.user.clone())
            };
            left.host == right.host && left.port == right.port && name(left) == name(right)
        }
        (Locator::Sqlite(left), Locator::Sqlite(right)) => {
            let canonical = |path: &std::path::Path| {
                std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
            };
            canonical(left) == canonical(right)
        }
        _ => false,
    }
}

/// The scheduler a table of timers belongs to, when it looks like one:
/// db-scheduler's `scheduled_tasks`, Quartz's `qrtz_*` trigger and job
/// tables, `pg_cron`'s `cron.job`. Rows copied into acceptance would fire production's jobs there.
pub(crate) fn timer_table(table: &cutover_db::Table) -> Option<&'static str> {
    let name = table.name.name.to_ascii_lowercase();
    let has = |column: &str| table.column(column).is_some();
    if table.name.schema.as_deref() == Some("cron")
        && matches!(name.as_str(), "job" | "job_run_details")
    {
        return Some("pg_cron");
    }
    if name == "scheduled_tasks" && has("task_name") && has("execution_time") {
        return Some("db-scheduler");
    }
    const QUARTZ: [&str; 7] = [
        "qrtz_triggers",
        "qrtz_simple_triggers",
        "qrtz_cron_triggers",
        "qrtz_simprop_triggers",
        "qrtz_blob_triggers",
        "qrtz_fired_triggers",
        "qrtz_job_details",
    ];
    QUARTZ.contains(&name.as_str()).then_some("Quartz")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_with_wildcards() {
        assert!(matches_pattern("*.prod.internal", "db1.prod.internal"));
        assert!(matches_pattern("prod-db*", "PROD-DB-02"));
        assert!(matches_pattern("db.example.org", "db.example.org"));
        assert!(matches_pattern("*prod*", "eu-prod-3"));
        assert!(!matches_pattern("*.prod.internal", "db1.acc.internal"));
        assert!(!matches_pattern("prod-db*", "acc-prod-db"));
        assert!(!matches_pattern("a*b*c", "abx"));
    }

    #[test]
    fn the_same_database_is_recognised_whatever_the_credentials() {
        let parse = |text: &str| DatabaseUrl::parse(text).expect("url");
        assert!(same_database(
            &parse("postgres://a:x@db:5432/lab"),
            &parse("postgres://b@db/lab?sslmode=require")
        ));
        assert!(!same_database(
            &parse("postgres://db/lab"),
            &parse("postgres://db/lab_acc")
        ));
        assert!(!same_database(
            &parse("postgres://db/lab"),
            &parse("sqlite:lab.db")
        ));
    }
}
