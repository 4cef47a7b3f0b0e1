//! `cutover diff` on lake exports: the same rows as a Parquet file, a CSV
//! file, a hive-partitioned Parquet dataset on disk, the same dataset in
//! S3 (moto's server) and in Azure Blob storage (Azurite), all started by
//! `scripts/test.sh`, must give the same findings; and every way a
//! location can be wrong gives one line and exit 2.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use cutover_db::{LogicalType, Value};
use cutover_files::ParquetWriter;
use hmac::Mac as _;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

const SITES: [&str; 3] = ["north", "south", "west"];

/// (id, site, code, result): 90 rows, 30 per site.
pub(crate) fn rows(changed: bool) -> Vec<Vec<Value>> {
    (1..=90i64)
        .filter(|id| !(changed && *id == 7))
        .map(|id| {
            let result = if changed && id % 20 == 0 {
                format!("{}.5", id)
            } else {
                format!("{id}.0")
            };
            vec![
                Value::Int(id),
                Value::Text(SITES[(id % 3) as usize].to_owned()),
                if id % 11 == 0 {
                    Value::Null
                } else {
                    Value::Text(format!("C{id:03}"))
                },
                Value::Text(result),
            ]
        })
        .chain(changed.then(|| {
            vec![
                Value::Int(91),
                Value::Text("west".to_owned()),
                Value::Text("C091".to_owned()),
                Value::Text("91.0".to_owned()),
            ]
        }))
        .collect()
}

pub(crate) fn write_parquet(path: &Path, with_site: bool, rows: &[Vec<Value>]) {
    let mut columns = vec![("id".to_owned(), LogicalType::Integer)];
    if with_site {
        columns.push(("site".to_owned(), LogicalType::Text));
    }
    columns.push(("code".to_owned(), LogicalType::Text));
    columns.push(("result".to_owned(), LogicalType::Text));
    let mut writer = ParquetWriter::create(path, &columns).expect("a Parquet file");
    for row in rows {
        let mut row = row.clone();
        if !with_site {
            row.remove(1);
        }
        writer.write(row).expect("a row");
    }
    writer.finish().expect("the footer");
}

fn write_csv(path: &Path, with_site: bool, rows: &[Vec<Value>]) {
    let mut text = String::from(if with_site {
        "id,site,code,result\n"
    } else {
        "id,code,result\n"
    });
    for row in rows {
        let fields: Vec<String> = row
            .iter()
            .enumerate()
            .filter(|(column, _)| with_site || *column != 1)
            .map(|(_, value)| value.to_text().unwrap_or_default())
            .collect();
        text.push_str(&fields.join(","));
        text.push('\n');
    }
    std::fs::write(path, text).expect("a CSV file");
}

/// The target as a hive-partitioned dataset (`site=…/part-0.parquet`, the
/// site column only in the directory names), plus the files a writer leaves
/// beside the data (`_SUCCESS`, `.crc`), which are not read.
fn write_dataset(directory: &Path, rows: &[Vec<Value>]) {
    for site in SITES {
        let folder = directory.join(format!("site={site}"));
        std::fs::create_dir_all(&folder).expect("a partition folder");
        let part: Vec<Vec<Value>> = rows
            .iter()
            .filter(|row| row[1] == Value::Text(site.to_owned()))
            .cloned()
            .collect();
        write_parquet(&folder.join("part-0.parquet"), false, &part);
        std::fs::write(folder.join(".part-0.parquet.crc"), "not parquet").expect("a crc file");
    }
    std::fs::write(directory.join("_SUCCESS"), "").expect("a marker");
}

/// Uploads every file under `directory` to `store` under `prefix`.
pub(crate) async fn upload(store: &Arc<dyn ObjectStore>, directory: &Path, prefix: &str) {
    let mut pending = vec![directory.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).expect("a folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(directory)
                .expect("below the directory")
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(&path).expect("a file");
            store
                .put(
                    &object_store::path::Path::from(format!("{prefix}/{relative}")),
                    PutPayload::from(bytes),
                )
                .await
                .expect("an upload");
        }
    }
}

/// Environment variables for a run.
pub(crate) type Environment = Vec<(&'static str, String)>;

fn s3_environment(endpoint: &str) -> Environment {
    vec![
        ("AWS_ACCESS_KEY_ID", "cutover-test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "cutover-test-secret".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
    ]
}

pub(crate) fn azure_environment(endpoint: &str) -> Environment {
    vec![
        (
            "AZURE_STORAGE_ACCOUNT_NAME",
            cutover_testing::AZURITE_ACCOUNT.to_owned(),
        ),
        (
            "AZURE_STORAGE_ACCOUNT_KEY",
            cutover_testing::AZURITE_KEY.to_owned(),
        ),
        (
            "AZURE_STORAGE_ENDPOINT",
            format!("{endpoint}/{}", cutover_testing::AZURITE_ACCOUNT),
        ),
        ("AZURE_ALLOW_HTTP", "true".to_owned()),
    ]
}

/// A bucket of its own in moto (which takes unsigned requests), and a store on it.
async fn s3_bucket(endpoint: &str, bucket: &str) -> Arc<dyn ObjectStore> {
    let response = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .expect("moto answers");
    assert!(response.status().is_success(), "{}", response.status());
    Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("cutover-test")
            .with_secret_access_key("cutover-test-secret")
            .with_allow_http(true)
            .build()
            .expect("an S3 store"),
    )
}

/// A container of its own in Azurite (created with a Shared Key request,
/// as the Blob service documents it), and a store on it.
pub(crate) async fn azure_container(endpoint: &str, container: &str) -> Arc<dyn ObjectStore> {
    let account = cutover_testing::AZURITE_ACCOUNT;
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let version = "2021-08-06";
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{account}/{account}/{container}\nrestype:container"
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(cutover_testing::AZURITE_KEY)
        .expect("the key");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("an HMAC key");
    mac.update(to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let response = reqwest::Client::new()
        .put(format!(
            "{endpoint}/{account}/{container}?restype=container"
        ))
        .header("x-ms-date", date)
        .header("x-ms-version", version)
        .header("content-length", "0")
        .header("authorization", format!("SharedKey {account}:{signature}"))
        .send()
        .await
        .expect("Azurite answers");
    assert!(
        response.status().is_success(),
        "{}: {}",
        response.status(),
        response.text().await.unwrap_or_default()
    );
    Arc::new(
        MicrosoftAzureBuilder::new()
            .with_account(account)
            .with_access_key(cutover_testing::AZURITE_KEY)
            .with_endpoint(format!("{endpoint}/{account}"))
            .with_container_name(container)
            .with_allow_http(true)
            .build()
            .expect("an Azure store"),
    )
}

/// A name no other test run uses, for buckets and containers (lower case, digits, dashes).
pub(crate) fn unique(prefix: &str) -> String {
    cutover_testing::unique_name(prefix).replace('_', "-")
}

/// Runs a diff with `--format json` and returns what must agree across
/// formats and places: counts, per-column counts and the sample keys.
pub(crate) async fn findings(
    source: &str,
    target: &str,
    environment: &[(&str, String)],
) -> serde_json::Value {
    findings_with(source, target, environment, &[]).await
}

/// Runs `cutover` with `args` and the variables of `environment`.
async fn cutover_in(args: &[&str], environment: &[(&str, String)]) -> crate::Run {
    let environment: Vec<(&str, &str)> = environment
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    crate::cutover_async_with_env(args, &environment).await
}

pub(crate) async fn findings_with(
    source: &str,
    target: &str,
    environment: &[(&str, String)],
    extra: &[&str],
) -> serde_json::Value {
    let mut args = vec![
        "diff",
        source,
        target,
        "--key",
        "id",
        "--format",
        "json",
        "--exclude",
        "site",
    ];
    args.extend_from_slice(extra);
    let run = cutover_in(&args, environment).await;
    assert_eq!(run.code, 1, "{source} vs {target}: {}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect(&run.stdout);
    serde_json::json!({
        "source_rows": report["summary"]["source_rows"],
        "target_rows": report["summary"]["target_rows"],
        "missing": report["summary"]["missing"],
        "extra": report["summary"]["extra"],
        "changed": report["summary"]["changed"],
        "columns": report["columns"],
        "samples": crate::sorted_samples(&report),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_on_disk_in_s3_and_in_azure_diffs_as_its_files_do() {
    let (Some(s3), Some(azure)) = (
        cutover_testing::s3_endpoint(),
        cutover_testing::azure_endpoint(),
    ) else {
        return;
    };
    let directory = tempfile::tempdir().expect("temporary directory");
    let source = directory.path().join("source.parquet");
    write_parquet(&source, true, &rows(false));
    let target_rows = rows(true);
    let target_file = directory.path().join("target.parquet");
    write_parquet(&target_file, true, &target_rows);
    let target_csv = directory.path().join("target.csv");
    write_csv(&target_csv, true, &target_rows);
    // The target as hive-partitioned CSV files too.
    let csv_dataset = directory.path().join("csv-dataset");
    for site in SITES {
        let folder = csv_dataset.join(format!("site={site}"));
        std::fs::create_dir_all(&folder).expect("a partition folder");
        let part: Vec<Vec<Value>> = target_rows
            .iter()
            .filter(|row| row[1] == Value::Text(site.to_owned()))
            .cloned()
            .collect();
        write_csv(&folder.join("part-0.csv"), false, &part);
    }
    let dataset = directory.path().join("dataset");
    write_dataset(&dataset, &target_rows);

    let bucket = unique("lake");
    let store = s3_bucket(&s3, &bucket).await;
    upload(&store, &dataset, "exports/results").await;
    let container = unique("lake");
    let blobs = azure_container(&azure, &container).await;
    upload(&blobs, &dataset, "exports/results").await;
    upload(&store, &csv_dataset, "exports/csv").await;
    upload(&blobs, &csv_dataset, "exports/csv").await;

    let source = source.display().to_string();
    let expected = findings(&source, &target_file.display().to_string(), &[]).await;
    assert_eq!(expected["missing"], 1, "{expected}");
    assert_eq!(expected["extra"], 1, "{expected}");
    assert_eq!(expected["changed"], 4, "{expected}");
    let s3_env = s3_environment(&s3);
    let azure_env = azure_environment(&azure);
    for (target, environment) in [
        (target_csv.display().to_string(), Vec::new()),
        (csv_dataset.display().to_string(), Vec::new()),
        (dataset.display().to_string(), Vec::new()),
        (
            format!("{}/site=*/*.parquet", dataset.display()),
            Vec::new(),
        ),
        (format!("s3://{bucket}/exports/results"), s3_env.clone()),
        (format!("s3://{bucket}/exports/results/"), s3_env.clone()),
        (format!("s3://{bucket}/exports/csv"), s3_env.clone()),
        (
            format!("az://{container}/exports/csv/site=*/*.csv"),
            azure_env.clone(),
        ),
        (
            format!("az://{container}/exports/results"),
            azure_env.clone(),
        ),
        (
            format!("abfss://{container}@devstoreaccount1.dfs.core.windows.net/exports/results"),
            azure_env.clone(),
        ),
    ] {
        let found = findings(&source, &target, &environment).await;
        assert_eq!(found, expected, "{target}");
    }
    // The source as a PostgreSQL table against the dataset in each store.
    if let Some(postgres) = cutover_testing::postgres().await {
        let values: Vec<String> = rows(false)
            .iter()
            .map(|row| {
                let text = |value: &Value| match value.to_text() {
                    Some(text) => format!("'{text}'"),
                    None => "NULL".to_owned(),
                };
                format!(
                    "({}, {}, {}, {})",
                    text(&row[0]),
                    text(&row[1]),
                    text(&row[2]),
                    text(&row[3])
                )
            })
            .collect();
        cutover_testing::postgres_execute(
            &postgres.url,
            &format!(
                "CREATE TABLE results (id bigint PRIMARY KEY, site text, code text, result text);
                 INSERT INTO results VALUES {};",
                values.join(", ")
            ),
        )
        .await;
        let table = postgres.table_url("results");
        for (target, environment) in [
            (format!("s3://{bucket}/exports/results"), s3_env.clone()),
            (
                format!("az://{container}/exports/results"),
                azure_env.clone(),
            ),
        ] {
            let found = findings(&table, &target, &environment).await;
            assert_eq!(found, expected, "PostgreSQL vs {target}");
        }
    }

    // Keys from an AWS profile (the shared credentials file) instead of the environment.
    let profiles = directory.path().join("aws-credentials");
    std::fs::write(
        &profiles,
        "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n[lab]\naws_access_key_id = cutover-test\naws_secret_access_key = cutover-test-secret\n",
    )
    .expect("a credentials file");
    let mut profile_env: Vec<(&str, String)> = s3_env
        .iter()
        .filter(|(name, _)| !name.starts_with("AWS_ACCESS") && !name.starts_with("AWS_SECRET"))
        .cloned()
        .collect();
    profile_env.push((
        "AWS_SHARED_CREDENTIALS_FILE",
        profiles.display().to_string(),
    ));
    profile_env.push(("AWS_PROFILE", "lab".to_owned()));
    let found = findings(
        &source,
        &format!("s3://{bucket}/exports/results"),
        &profile_env,
    )
    .await;
    assert_eq!(found, expected, "through a profile");

    // A damaged file in a partition that --where rules out is never opened;
    // without the condition, it is named.
    let damaged = dataset.join("site=east");
    std::fs::create_dir_all(&damaged).expect("a partition folder");
    std::fs::write(damaged.join("part-0.parquet"), "not a Parquet file").expect("a damaged file");
    upload(&store, &damaged, "exports/results/site=east").await;
    for (target, environment) in [
        (dataset.display().to_string(), Vec::new()),
        (format!("s3://{bucket}/exports/results"), s3_env.clone()),
    ] {
        let pruned = findings_with(
            &source,
            &target,
            &environment,
            &[
                "--target-where",
                "site IN ('north', 'south', 'west') AND site <> 'east'",
            ],
        )
        .await;
        assert_eq!(pruned, expected, "{target}");
        let mut only_north = findings_with(
            &source,
            &target,
            &environment,
            &["--target-where", "site = 'north'"],
        )
        .await;
        assert_eq!(only_north["target_rows"], 30, "{target}");
        only_north["target_rows"] = expected["target_rows"].clone();
        assert_ne!(only_north, expected, "{target}");
        let run = cutover_in(&["diff", &source, &target, "--key", "id"], &environment).await;
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(
            run.stderr.contains("site=east/part-0.parquet"),
            "{}",
            run.stderr
        );
        let run = cutover_in(
            &[
                "diff",
                &source,
                &target,
                "--key",
                "id",
                "--target-where",
                "result > 5",
            ],
            &environment,
        )
        .await;
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(
            run.stderr
                .contains("result is not a partition column (they are: site)"),
            "{}",
            run.stderr
        );
    }

    // A single object.
    let one = format!("s3://{bucket}/exports/results/site=north/part-0.parquet");
    let run = cutover_in(&["inspect", &one], &s3_env).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("result"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_location_or_credential_is_one_line_and_exit_2() {
    let (Some(s3), Some(azure)) = (
        cutover_testing::s3_endpoint(),
        cutover_testing::azure_endpoint(),
    ) else {
        return;
    };
    let directory = tempfile::tempdir().expect("temporary directory");
    let source = directory.path().join("source.parquet");
    write_parquet(&source, true, &rows(false));
    let source = source.display().to_string();
    let dataset = directory.path().join("dataset");
    write_dataset(&dataset, &rows(true));
    let bucket = unique("lake");
    let store = s3_bucket(&s3, &bucket).await;
    upload(&store, &dataset, "results").await;
    let container = unique("lake");
    azure_container(&azure, &container).await;

    let s3_env = s3_environment(&s3);
    let mut plain_http = s3_env.clone();
    plain_http.retain(|(name, _)| *name != "AWS_ALLOW_HTTP");
    let mut wrong_key = azure_environment(&azure);
    for (name, value) in &mut wrong_key {
        if *name == "AZURE_STORAGE_ACCOUNT_KEY" {
            *value = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
        }
    }
    let missing_bucket = format!("s3://{}/results", unique("absent"));
    let cases: Vec<(String, Environment, &str)> = vec![
        (missing_bucket, s3_env.clone(), "does not exist"),
        (
            format!("s3://{bucket}/nothing-here"),
            s3_env.clone(),
            "no .parquet or .csv file",
        ),
        (
            format!("s3://{bucket}/results"),
            plain_http,
            "AWS_ALLOW_HTTP=true",
        ),
        (
            format!("az://{container}/results"),
            wrong_key,
            "refused the credentials",
        ),
        (
            format!("az://{container}/results?sv=1&sig=TOPSECRETSIG"),
            azure_environment(&azure),
            "never in the URL",
        ),
        (
            format!("{}/site=*/*.csv", dataset.display()),
            Vec::new(),
            "matches no file",
        ),
    ];
    for (target, environment, expected) in cases {
        let output = directory.path().join("delta.jsonl");
        let output = output.display().to_string();
        let run = cutover_in(
            &["diff", &source, &target, "--key", "id", "--output", &output],
            &environment,
        )
        .await;
        assert_eq!(run.code, 2, "{target}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{target}: {}", run.stderr);
        assert!(!run.stderr.contains("TOPSECRETSIG"), "{}", run.stderr);
        assert!(
            !run.stderr.contains(cutover_testing::AZURITE_KEY),
            "{}",
            run.stderr
        );
        assert!(!Path::new(&output).exists(), "{target}: nothing written");
    }
}
