//! TLS against the test cluster (certificate from a private CA), by sslmode.

use cutover_db::{ConnectOptions, Database, ReadRequest, TableName, Value};

use crate::support::collect;

async fn uses_tls(url: &str) -> bool {
    let database = Database::connect_str(url, &ConnectOptions::default())
        .await
        .unwrap_or_else(|error| panic!("connecting with {url}: {error}"));
    database
        .execute_batch("DROP TABLE IF EXISTS tls_check; CREATE TABLE tls_check AS SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .await
        .expect("check");
    let rows = collect(
        database
            .read(&ReadRequest::table(TableName::new("tls_check")).unordered())
            .await
            .expect("read"),
    )
    .await;
    rows == vec![vec![Value::Bool(true)]]
}

#[tokio::test]
async fn sslmodes_behave_as_libpq_defines_them() {
    let Some(postgres) = cutover_testing::postgres().await else {
        return;
    };
    let certificate =
        cutover_testing::postgres_certificate().expect("scripts/test.sh exports the certificate");

    assert!(
        uses_tls(&format!("{}?sslmode=require", postgres.url)).await,
        "require encrypts"
    );
    assert!(
        uses_tls(&format!("{}?sslmode=prefer", postgres.url)).await,
        "prefer encrypts when offered"
    );
    assert!(
        !uses_tls(&format!("{}?sslmode=disable", postgres.url)).await,
        "disable does not"
    );
    assert!(
        uses_tls(&format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            postgres.url,
            certificate.display()
        ))
        .await,
        "verify-full accepts a certificate signed by the given CA for this host"
    );
    let localhost = postgres.url.replace("127.0.0.1", "localhost");
    assert!(
        uses_tls(&format!(
            "{localhost}?sslmode=verify-ca&sslrootcert={}",
            certificate.display()
        ))
        .await,
        "verify-ca checks the chain"
    );

    let untrusted = Database::connect_str(
        &format!("{}?sslmode=verify-full", postgres.url),
        &ConnectOptions::default(),
    )
    .await
    .expect_err("a private CA is not among the public roots");
    let message = untrusted.to_string();
    assert!(message.starts_with("cannot connect to "), "{message}");
    assert!(message.to_lowercase().contains("certificate"), "{message}");
}
