//! Database URLs: parsing, the optional `#table` part, and redaction.
//!
//! Accepted forms:
//! - `postgres://user:password@host:port/dbname?sslmode=require` (also `postgresql://`),
//!   with `host=/socket/dir` as a query parameter for Unix sockets;
//! - `sqlite:PATH` (also `sqlite://PATH`);
//! - `sc://host:port/;param=value;…` (Spark Connect's own connection string).
//!
//! Each may end in `#table` or `#schema.table` (`#catalog.schema.table` for Spark). [`redact`] replaces every
//! password in a URL; every URL that reaches a message goes through it.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::schema::TableName;

/// What `sslmode` asks for, as libpq defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Try TLS, fall back to plain (libpq's default).
    #[default]
    Prefer,
    /// TLS without checking the certificate.
    Require,
    /// TLS, certificate signed by a trusted CA.
    VerifyCa,
    /// TLS, certificate signed by a trusted CA and matching the host name.
    VerifyFull,
}

/// Where a PostgreSQL server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostgresHost {
    /// A host name or address.
    Tcp(String),
    /// A directory holding the server's Unix socket.
    Unix(PathBuf),
}

/// A parsed `postgres://` URL.
#[derive(Debug, Clone)]
pub struct PostgresUrl {
    /// User name; `None` means the caller's default.
    pub user: Option<String>,
    /// Password from the URL itself.
    pub password: Option<String>,
    /// Host (first one only).
    pub host: PostgresHost,
    /// Port.
    pub port: u16,
    /// Database name; `None` means the user name.
    pub dbname: Option<String>,
    /// TLS mode.
    pub ssl_mode: SslMode,
    /// CA bundle for `verify-ca`/`verify-full`.
    pub ssl_root_cert: Option<PathBuf>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// `application_name` to report to the server.
    pub application_name: Option<String>,
    /// `options` passed to the server (e.g. `-c statement_timeout=0`).
    pub options: Option<String>,
}

/// A parsed `sc://` Spark Connect connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparkUrl {
    /// Host name or address.
    pub host: String,
    /// Port (Spark Connect's default is 15002).
    pub port: u16,
    /// The `;key=value` parameters, in order (`use_ssl`, `user_id`, and any
    /// other pair, which travels as gRPC metadata). Never a token: that
    /// comes from the environment.
    pub parameters: Vec<(String, String)>,
}

impl SparkUrl {
    /// The connection string Spark Connect clients read, without a token.
    pub fn connection_string(&self) -> String {
        let mut text = format!("sc://{}:{}", self.host, self.port);
        if !self.parameters.is_empty() {
            text.push('/');
            for (key, value) in &self.parameters {
                text.push_str(&format!(";{key}={value}"));
            }
        }
        text
    }
}

/// A parsed database URL.
#[derive(Debug, Clone)]
pub enum Locator {
    /// A PostgreSQL server.
    Postgres(PostgresUrl),
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A Spark Connect server.
    Spark(SparkUrl),
}

/// A database URL with the optional table after `#`.
#[derive(Debug, Clone)]
pub struct DatabaseUrl {
    /// The database.
    pub locator: Locator,
    /// The table named after `#`, if any.
    pub table: Option<TableName>,
    redacted: String,
}

impl DatabaseUrl {
    /// Parses a URL such as `postgres://host/db#schema.table` or `sqlite:lab.db#lab_results`.
    pub fn parse(input: &str) -> Result<Self> {
        let redacted = redact(input);
        let (base, fragment) = match input.rsplit_once('#') {
            Some((base, fragment)) => (base, Some(fragment)),
            None => (input, None),
        };
        let table = match fragment {
            Some("") => {
                return Err(bad_url(
                    &redacted,
                    "empty table name after '#'",
                    Some("write the table after '#', e.g. sqlite:lab.db#lab_results"),
                ));
            }
            Some(fragment) => Some(TableName::parse(fragment)),
            None => None,
        };
        let locator = if let Some(rest) = base.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(bad_url(
                    &redacted,
                    "no file path after sqlite:",
                    Some("write sqlite:PATH, e.g. sqlite:examples/lab-results.db"),
                ));
            }
            Locator::Sqlite(PathBuf::from(path))
        } else if base.starts_with("postgres://") || base.starts_with("postgresql://") {
            Locator::Postgres(parse_postgres(base, &redacted)?)
        } else if let Some(rest) = base.strip_prefix("sc://") {
            Locator::Spark(parse_spark(rest, &redacted)?)
        } else {
            let reason = match base.split_once(':') {
                Some((scheme, _)) if !scheme.is_empty() && !scheme.contains('/') => {
                    format!("unknown scheme {scheme}:")
                }
                _ => "not a database URL".to_owned(),
            };
            return Err(bad_url(
                &redacted,
                &reason,
                Some("use postgres://user@host:port/dbname, sqlite:PATH or sc://host:port"),
            ));
        };
        Ok(DatabaseUrl {
            locator,
            table,
            // The table is not part of the database's name.
            redacted: redact(base),
        })
    }

    /// The database's URL (without `#table`) with every password replaced by `***`.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The table after `#`, or an error that says how to name one.
    pub fn require_table(&self) -> Result<&TableName> {
        self.table.as_ref().ok_or_else(|| {
            bad_url(
                &self.redacted,
                "no table named",
                Some("add the table after '#', e.g. postgres://host/db#public.lab_results"),
            )
        })
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.redacted)
    }
}

fn bad_url(redacted: &str, reason: &str, hint: Option<&str>) -> Error {
    Error::BadUrl {
        url: redacted.to_owned(),
        reason: reason.to_owned(),
        hint: hint.map(str::to_owned),
    }
}

/// `host[:port][/;key=value;…]`, the part of an `sc://` string after the scheme.
fn parse_spark(rest: &str, redacted: &str) -> Result<SparkUrl> {
    let (authority, parameters_text) = match rest.find(['/', ';']) {
        Some(at) => (&rest[..at], rest[at..].trim_start_matches('/')),
        None => (rest, ""),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>().map_err(|_| {
                bad_url(
                    redacted,
                    "the port is not a number",
                    Some("write sc://host:15002"),
                )
            })?,
        ),
        None => (authority, 15002),
    };
    if host.is_empty() {
        return Err(bad_url(
            redacted,
            "no host after sc://",
            Some("write sc://host:15002"),
        ));
    }
    let mut parameters = Vec::new();
    for pair in parameters_text.split(';').filter(|pair| !pair.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(bad_url(
                redacted,
                &format!("the parameter {pair} is not key=value"),
                Some("write sc://host:15002/;use_ssl=true;x-databricks-cluster-id=…"),
            ));
        };
        if key.eq_ignore_ascii_case("token") {
            return Err(bad_url(
                redacted,
                "a token does not belong in the URL (it would show in process lists and logs)",
                Some("put it in the environment variable CUTOVER_SPARK_TOKEN"),
            ));
        }
        parameters.push((key.to_owned(), value.to_owned()));
    }
    Ok(SparkUrl {
        host: host.to_owned(),
        port,
        parameters,
    })
}

fn parse_postgres(input: &str, redacted: &str) -> Result<PostgresUrl> {
    // libpq allows an empty host (`postgres://user@/db?host=/socket/dir`); the URL parser does not.
    let scheme_end = input.find("://").map_or(0, |position| position + 3);
    let authority_end = input[scheme_end..]
        .find(['/', '?'])
        .map_or(input.len(), |offset| scheme_end + offset);
    let authority = &input[scheme_end..authority_end];
    let host_is_empty = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
        .is_empty();
    let patched;
    let input = if host_is_empty {
        patched = format!(
            "{}localhost{}",
            &input[..authority_end],
            &input[authority_end..]
        );
        patched.as_str()
    } else {
        input
    };
    let parsed =
        url::Url::parse(input).map_err(|error| bad_url(redacted, &error.to_string(), None))?;
    let user = match parsed.username() {
        "" => None,
        name => Some(percent_decode(name)),
    };
    let password = parsed.password().map(percent_decode);
    let mut host = parsed
        .host_str()
        .filter(|host| !host.is_empty())
        .map(|host| {
            let host = percent_decode(host);
            if host.starts_with('/') {
                PostgresHost::Unix(PathBuf::from(host))
            } else {
                PostgresHost::Tcp(
                    host.trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned(),
                )
            }
        });
    let mut port = parsed.port().unwrap_or(5432);
    let mut dbname = match parsed.path().trim_start_matches('/') {
        "" => None,
        name => Some(percent_decode(name)),
    };
    let mut result = PostgresUrl {
        user,
        password,
        host: PostgresHost::Tcp("localhost".to_owned()),
        port,
        dbname: None,
        ssl_mode: SslMode::Prefer,
        ssl_root_cert: None,
        connect_timeout: Duration::from_secs(10),
        application_name: Some("cutover".to_owned()),
        options: None,
    };
    for (key, value) in parsed.query_pairs() {
        let value = value.into_owned();
        match key.as_ref() {
            "sslmode" => {
                result.ssl_mode = match value.as_str() {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(bad_url(
                            redacted,
                            &format!("unknown sslmode {other}"),
                            Some("use disable, prefer, require, verify-ca or verify-full"),
                        ));
                    }
                }
            }
            "sslrootcert" => result.ssl_root_cert = Some(PathBuf::from(value)),
            "host" => {
                host = Some(if value.starts_with('/') {
                    PostgresHost::Unix(PathBuf::from(value))
                } else {
                    PostgresHost::Tcp(value)
                })
            }
            "port" => {
                port = value.parse().map_err(|_| {
                    bad_url(redacted, &format!("port {value} is not a number"), None)
                })?
            }
            "dbname" => dbname = Some(value),
            "user" => result.user = Some(value),
            "password" => result.password = Some(value),
            "connect_timeout" => {
                let seconds: u64 = value.parse().map_err(|_| {
                    bad_url(redacted, "connect_timeout is not a number of seconds", None)
                })?;
                result.connect_timeout = Duration::from_secs(seconds.max(1));
            }
            "application_name" => result.application_name = Some(value),
            "options" => result.options = Some(value),
            other => {
                return Err(bad_url(
                    redacted,
                    &format!("unknown parameter {other}"),
                    Some(
                        "supported: sslmode, sslrootcert, host, port, dbname, user, password, connect_timeout, application_name, options",
                    ),
                ));
            }
        }
    }
    if let Some(host) = host {
        result.host = host;
    }
    result.port = port;
    result.dbname = dbname;
    Ok(result)
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| text.to_owned())
}

/// Replaces the password of a URL (and any `password=` parameter) with `***`.
///
/// Works on strings that are not valid URLs too, so that it can be applied to
/// anything a user typed before it is echoed back.
pub fn redact(input: &str) -> String {
    let mut output = input.to_owned();
    if let Some(scheme_end) = output.find("://") {
        let authority_start = scheme_end + 3;
        let authority_end = output[authority_start..]
            .find(['/', '?', '#'])
            .map_or(output.len(), |offset| authority_start + offset);
        if let Some(at) = output[authority_start..authority_end].rfind('@') {
            let userinfo = &output[authority_start..authority_start + at];
            if let Some(colon) = userinfo.find(':') {
                let start = authority_start + colon + 1;
                let end = authority_start + at;
                output.replace_range(start..end, "***");
            }
        }
    }
    for name in ["password=", "token="] {
        let mut search_from = 0;
        while let Some(position) = output[search_from..].find(name) {
            let start = search_from + position + name.len();
            let end = output[start..]
                .find(['&', '#', ' ', ';'])
                .map_or(output.len(), |offset| start + offset);
            output.replace_range(start..end, "***");
            search_from = start + 3;
        }
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spark_connection_strings_parse_and_refuse_tokens() {
        let url = DatabaseUrl::parse(
            "sc://spark.example:443/;use_ssl=true;x-databricks-cluster-id=0123#main.lab.results",
        )
        .expect("parses");
        let Locator::Spark(spark) = &url.locator else {
            panic!("not spark");
        };
        assert_eq!((spark.host.as_str(), spark.port), ("spark.example", 443));
        assert_eq!(
            spark.connection_string(),
            "sc://spark.example:443/;use_ssl=true;x-databricks-cluster-id=0123"
        );
        assert_eq!(
            url.table
                .as_ref()
                .map(|table| (table.schema.clone(), table.name.clone())),
            Some((Some("main.lab".to_owned()), "results".to_owned()))
        );
        let refused = DatabaseUrl::parse("sc://h/;token=abc123").expect_err("refused");
        assert!(!refused.to_string().contains("abc123"), "{refused}");
        assert_eq!(
            redact("sc://h:1/;token=abc;user_id=x"),
            "sc://h:1/;token=***;user_id=x"
        );
    }

    #[test]
    fn redacts_passwords_in_userinfo_and_parameters() {
        assert_eq!(
            redact("postgres://alice:s3cr3t@db.example:5432/lab"),
            "postgres://alice:***@db.example:5432/lab"
        );
        assert_eq!(
            redact("postgresql://alice:p%40ss@db/lab?password=again&sslmode=require"),
            "postgresql://alice:***@db/lab?password=***&sslmode=require"
        );
        assert_eq!(redact("postgres://alice@db/lab"), "postgres://alice@db/lab");
        assert_eq!(redact("sqlite:lab.db#t"), "sqlite:lab.db#t");
    }

    #[test]
    fn parses_postgres_with_table_and_options() {
        let url = DatabaseUrl::parse(
            "postgres://alice:pw@db.internal:6543/lab?sslmode=verify-full#reporting.lab_results",
        )
        .expect("valid url");
        let Locator::Postgres(pg) = &url.locator else {
            panic!("expected postgres")
        };
        assert_eq!(pg.user.as_deref(), Some("alice"));
        assert_eq!(pg.password.as_deref(), Some("pw"));
        assert_eq!(pg.host, PostgresHost::Tcp("db.internal".into()));
        assert_eq!(pg.port, 6543);
        assert_eq!(pg.dbname.as_deref(), Some("lab"));
        assert_eq!(pg.ssl_mode, SslMode::VerifyFull);
        let table = url.table.clone().expect("table");
        assert_eq!(table.schema.as_deref(), Some("reporting"));
        assert_eq!(table.name, "lab_results");
        assert!(!url.redacted().contains("pw@"));
    }

    #[test]
    fn parses_unix_socket_host() {
        let url = DatabaseUrl::parse("postgres://postgres@/cutover?host=/tmp/pg&port=5599")
            .expect("valid url");
        let Locator::Postgres(pg) = &url.locator else {
            panic!("expected postgres")
        };
        assert_eq!(pg.host, PostgresHost::Unix("/tmp/pg".into()));
        assert_eq!(pg.port, 5599);
    }

    #[test]
    fn parses_sqlite_forms() {
        for input in ["sqlite:lab.db#lab_results", "sqlite://lab.db#lab_results"] {
            let url = DatabaseUrl::parse(input).expect("valid url");
            assert!(
                matches!(&url.locator, Locator::Sqlite(path) if path == std::path::Path::new("lab.db"))
            );
            assert_eq!(url.table.expect("table").name, "lab_results");
        }
    }

    #[test]
    fn unknown_scheme_is_a_clear_error() {
        let error = DatabaseUrl::parse("mysql://root:hunter2@db/lab").expect_err("must fail");
        let message = error.to_string();
        assert!(message.contains("unknown scheme mysql:"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn bad_sslmode_is_rejected() {
        let error =
            DatabaseUrl::parse("postgres://db/lab?sslmode=sometimes").expect_err("must fail");
        assert!(error.to_string().contains("unknown sslmode sometimes"));
    }
}
