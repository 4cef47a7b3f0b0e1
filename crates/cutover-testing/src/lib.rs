//! Test support: a fresh PostgreSQL database per test, created in the
//! throwaway cluster that `scripts/test.sh` starts, the Spark Connect server
//! it starts, SQLite files in temporary directories, and (in [`proxy`]) an
//! HTTP proxy that makes the network between two peers misbehave.
//!
//! When `CUTOVER_TEST_POSTGRES_URL` (or `CUTOVER_TEST_SPARK_URL`) is not
//! set, PostgreSQL (or Spark) tests are skipped with a note, except under
//! `CI=true`, where that is a failure.
//!
//! ```no_run
//! # async fn example() {
//! let Some(database) = cutover_testing::postgres().await else { return };
//! // database.url is postgres://…/cutover_test_…, empty and yours alone.
//! # }
//! ```

pub mod proxy;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// The variable `scripts/test.sh` sets to the test cluster's URL.
pub const POSTGRES_URL_VARIABLE: &str = "CUTOVER_TEST_POSTGRES_URL";

/// A database created for one test.
#[derive(Debug)]
pub struct TestPostgres {
    /// URL of the fresh database.
    pub url: String,
    /// URL of the cluster's maintenance database (for cluster-wide set-up such as roles).
    pub admin_url: String,
    /// The database's name.
    pub name: String,
}

impl TestPostgres {
    /// The URL with `#table` appended.
    pub fn table_url(&self, table: &str) -> String {
        format!("{}#{table}", self.url)
    }
}

/// The variable `scripts/test.sh` sets to the Spark Connect server's URL.
pub const SPARK_URL_VARIABLE: &str = "CUTOVER_TEST_SPARK_URL";

/// The value of `variable`, or `None` (after saying so) outside CI.
///
/// # Panics
/// When `CI=true` and it is not set: CI must not skip tests.
fn service_url(variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let in_ci = std::env::var("CI").is_ok_and(|value| value == "true" || value == "1");
            assert!(
                !in_ci,
                "{variable} is not set and CI=true: run the tests through scripts/test.sh"
            );
            #[allow(clippy::print_stderr)]
            {
                eprintln!("skipped: {variable} is not set (run scripts/test.sh)");
            }
            None
        }
    }
}

/// The test cluster's URL, or `None` (after saying so) when there is none outside CI.
///
/// # Panics
/// When `CI=true` and no cluster is configured: CI must not skip PostgreSQL tests.
pub fn postgres_admin_url() -> Option<String> {
    service_url(POSTGRES_URL_VARIABLE)
}

/// The test Spark Connect server's URL (`sc://127.0.0.1:PORT`), shared by
/// every Spark test, or `None` (after saying so) when there is none outside CI.
///
/// # Panics
/// When `CI=true` and no server is configured: CI must not skip Spark tests.
pub fn spark_url() -> Option<String> {
    service_url(SPARK_URL_VARIABLE)
}

/// A name no other test uses: `prefix_PID_N`, for tables in the shared
/// Spark server.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The certificate of the private CA that signed the test cluster's TLS certificate.
pub fn postgres_certificate() -> Option<PathBuf> {
    std::env::var("CUTOVER_TEST_POSTGRES_CA")
        .ok()
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
}

/// Creates an empty database for the calling test.
///
/// # Panics
/// When the test cluster cannot be reached or the database cannot be created.
pub async fn postgres() -> Option<TestPostgres> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let admin_url = postgres_admin_url()?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    let name = format!(
        "cutover_test_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let (client, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .expect("the test PostgreSQL cluster must be reachable");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\" TEMPLATE template0"))
        .await
        .expect("creating a test database");
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base.to_owned())
        .expect("the admin URL ends in /dbname");
    Some(TestPostgres {
        url: format!("{base}/{name}"),
        admin_url,
        name,
    })
}

/// Runs SQL against a database URL (fixtures), panicking on failure.
///
/// # Panics
/// When the SQL fails.
pub async fn postgres_execute(url: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connecting to the test database");
    tokio::spawn(connection);
    client
        .batch_execute(sql)
        .await
        .expect("running fixture SQL");
}

/// A temporary directory and a path for a SQLite file inside it (not created).
///
/// # Panics
/// When no temporary directory can be made.
pub fn sqlite_path(file_name: &str) -> (tempfile::TempDir, PathBuf) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join(file_name);
    (directory, path)
}

/// The variable `scripts/test.sh` sets to moto's S3 endpoint.
pub const S3_ENDPOINT_VARIABLE: &str = "CUTOVER_TEST_S3_ENDPOINT";

/// The variable `scripts/test.sh` sets to Azurite's blob endpoint.
pub const AZURE_ENDPOINT_VARIABLE: &str = "CUTOVER_TEST_AZURE_ENDPOINT";

/// The storage account Azurite serves, and its published development key.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's published development key (not a secret: the emulator's own).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The test S3 server's endpoint (`http://127.0.0.1:PORT`, moto), or `None`
/// (after saying so) when there is none outside CI.
///
/// # Panics
/// When `CI=true` and no server is configured.
pub fn s3_endpoint() -> Option<String> {
    service_url(S3_ENDPOINT_VARIABLE)
}

/// The test Azure blob endpoint (`http://127.0.0.1:PORT`, Azurite), or
/// `None` (after saying so) when there is none outside CI.
///
/// # Panics
/// When `CI=true` and no server is configured.
pub fn azure_endpoint() -> Option<String> {
    service_url(AZURE_ENDPOINT_VARIABLE)
}

/// The variable `scripts/test.sh` sets to a Python with PyPI's deltalake and pyarrow.
pub const LAKE_PYTHON_VARIABLE: &str = "CUTOVER_TEST_LAKE_PYTHON";

/// A Python with PyPI's deltalake and pyarrow (for `interop/delta-fixture.py`),
/// or `None` (after saying so) when there is none outside CI.
///
/// # Panics
/// When `CI=true` and none is configured.
pub fn lake_python() -> Option<String> {
    service_url(LAKE_PYTHON_VARIABLE)
}

/// Runs the machine's `openssl` with `args` (keys and certificates made for
/// a test), panicking with its error output if it fails.
pub fn openssl<S: AsRef<std::ffi::OsStr>>(args: &[S]) {
    let made = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("running openssl");
    assert!(
        made.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&made.stderr)
    );
}
