//! Object stores: S3 (`s3://bucket/prefix`, and S3-compatible stores through
//! `AWS_ENDPOINT_URL`) and Azure Blob / ADLS Gen2 (`az://container/prefix`,
//! `abfss://container@account.dfs.core.windows.net/prefix`), configured the
//! way those ecosystems are: their standard environment variables and
//! credential chains, read by the `object_store` crate, plus the AWS shared
//! credentials and config files (`AWS_PROFILE`). Plain `http://` endpoints
//! only when `AWS_ALLOW_HTTP`/`AZURE_ALLOW_HTTP` says so.
//!
//! Requests run on a runtime of their own ([`io`]), so that the reading
//! threads of a scan can wait for them whatever runtime the caller has.
//! Messages name a location without its query or credentials, and error
//! text from the stores is scrubbed of query strings (a SAS token travels
//! in one).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::error::{Error, Result};

static IO: OnceLock<std::io::Result<tokio::runtime::Runtime>> = OnceLock::new();

/// The runtime object-store requests run on.
pub(crate) fn io() -> Result<&'static tokio::runtime::Runtime> {
    IO.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cutover-io")
            .enable_all()
            .build()
    })
    .as_ref()
    .map_err(|error| Error::Internal(format!("cannot start the object-store runtime: {error}")))
}

/// Runs `future` on the IO runtime and waits for it (from async code).
pub(crate) async fn on_io<T: Send + 'static>(
    future: impl Future<Output = T> + Send + 'static,
) -> Result<T> {
    io()?
        .spawn(future)
        .await
        .map_err(|error| Error::Internal(error.to_string()))
}

/// One object read by ranges, for Parquet's async reader: column chunks
/// asked for together are fetched together (the store coalesces nearby
/// ranges), and the footer is read from the end of an object of known size.
#[derive(Clone)]
pub(crate) struct ObjectReader {
    pub store: Arc<dyn ObjectStore>,
    pub path: ObjectPath,
    pub size: u64,
}

fn external(error: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(error))
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// One object's bytes as a blocking reader: its GET response streamed a
/// chunk at a time, each waited for on the IO runtime. For threads that
/// may block (never async code).
pub(crate) struct ObjectRead {
    stream: futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>,
    chunk: Bytes,
}

impl ObjectRead {
    pub(crate) fn open(
        store: &Arc<dyn ObjectStore>,
        path: &ObjectPath,
        name: &str,
    ) -> Result<ObjectRead> {
        let runtime = io()?;
        let result = runtime
            .block_on(store.get(path))
            .map_err(|error| store_error(name, &error))?;
        Ok(ObjectRead {
            stream: result.into_stream(),
            chunk: Bytes::new(),
        })
    }
}

impl std::io::Read for ObjectRead {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        use futures_util::StreamExt;
        while self.chunk.is_empty() {
            let runtime = io().map_err(std::io::Error::other)?;
            match runtime.block_on(self.stream.next()) {
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(error)) => return Err(std::io::Error::other(scrub(&error.to_string()))),
                None => return Ok(0),
            }
        }
        let length = buffer.len().min(self.chunk.len());
        buffer[..length].copy_from_slice(&self.chunk.split_to(length));
        Ok(length)
    }
}

/// The clouds a location can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cloud {
    S3,
    Azure,
}

fn cloud(text: &str) -> Option<(Cloud, &str, &str)> {
    let (scheme, rest) = text.split_once("://")?;
    let cloud = match scheme.to_ascii_lowercase().as_str() {
        "s3" | "s3a" => Cloud::S3,
        "az" | "azure" | "abfs" | "abfss" | "adl" => Cloud::Azure,
        _ => return None,
    };
    Some((cloud, scheme, rest))
}

/// Whether `text` names a location in an object store.
pub fn is_remote(text: &str) -> bool {
    cloud(text).is_some()
}

/// A location in an object store.
#[derive(Clone)]
pub(crate) struct Remote {
    pub store: Arc<dyn ObjectStore>,
    /// `scheme://authority/`, the start of every object's name in messages.
    pub root: String,
    /// The path within the bucket or container, as given (a glob's stars kept).
    pub path: String,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Remote")
            .field("root", &self.root)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// An object's name for messages.
    pub fn name(&self, path: &ObjectPath) -> String {
        format!("{}{}", self.root, path)
    }
}

/// Connects to the store `text` names (no request is made yet).
pub(crate) fn connect(text: &str) -> Result<Remote> {
    let Some((cloud, scheme, rest)) = cloud(text) else {
        return Err(Error::Internal(format!(
            "{} is not an object-store URL",
            redact(text)
        )));
    };
    let refuse = |reason: String| Error::Store {
        location: redact(text),
        reason,
    };
    if rest.contains('?') || rest.contains('#') {
        return Err(refuse(
            "a query or fragment in the URL is not read\nhint: give credentials in the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AZURE_STORAGE_SAS_TOKEN), never in the URL".to_owned(),
        ));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() || authority.contains(':') && authority.contains('@') {
        return Err(refuse(
            "no bucket or container, or credentials in the URL\nhint: s3://BUCKET/PREFIX, az://CONTAINER/PREFIX or abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/PREFIX; credentials go in the environment".to_owned(),
        ));
    }
    let base = format!("{scheme}://{authority}");
    let store: Arc<dyn ObjectStore> = match cloud {
        Cloud::S3 => {
            require_https(
                &["AWS_ENDPOINT_URL", "AWS_ENDPOINT"],
                "AWS_ALLOW_HTTP",
                &refuse,
            )?;
            let mut builder = AmazonS3Builder::from_env().with_url(&base);
            for (key, value) in aws_profile() {
                builder = builder.with_config(key, value);
            }
            Arc::new(
                builder
                    .build()
                    .map_err(|error| refuse(scrub(&error.to_string())))?,
            )
        }
        Cloud::Azure => {
            require_https(
                &["AZURE_STORAGE_ENDPOINT", "AZURE_ENDPOINT"],
                "AZURE_ALLOW_HTTP",
                &refuse,
            )?;
            let builder = MicrosoftAzureBuilder::from_env().with_url(&base);
            Arc::new(builder.build().map_err(|error| {
                refuse(format!(
                    "{}\nhint: set AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN, or use a workload identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE)",
                    scrub(&error.to_string())
                ))
            })?)
        }
    };
    Ok(Remote {
        store,
        root: format!("{base}/"),
        path: path.trim_end_matches('/').to_owned(),
    })
}

fn truthy(name: &str) -> bool {
    std::env::var(name).is_ok_and(|value| {
        matches!(
            value.trim().to_ascii_lowercase().as_str(),
            "true" | "1" | "yes"
        )
    })
}

/// Refuses a plain-http endpoint unless `allow` is set.
fn require_https(endpoints: &[&str], allow: &str, refuse: &dyn Fn(String) -> Error) -> Result<()> {
    for name in endpoints {
        if let Ok(endpoint) = std::env::var(name)
            && endpoint.trim().to_ascii_lowercase().starts_with("http://")
            && !truthy(allow)
        {
            return Err(refuse(format!(
                "{name} is a plain http:// endpoint\nhint: set {allow}=true to allow it (test stores only: nothing is encrypted)"
            )));
        }
    }
    Ok(())
}

/// Keys and region from the AWS shared files for `AWS_PROFILE` (or
/// `default`), where the environment gives no key of its own.
fn aws_profile() -> Vec<(object_store::aws::AmazonS3ConfigKey, String)> {
    use object_store::aws::AmazonS3ConfigKey as Key;
    let Some(home) = std::env::var_os("HOME") else {
        return Vec::new();
    };
    let home = std::path::PathBuf::from(home);
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_owned());
    let credentials_file = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map_or_else(|| home.join(".aws/credentials"), Into::into);
    let config_file =
        std::env::var_os("AWS_CONFIG_FILE").map_or_else(|| home.join(".aws/config"), Into::into);
    let mut settings = Vec::new();
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        let section = ini_section(&credentials_file, &profile);
        if let (Some(id), Some(secret)) = (
            section.get("aws_access_key_id"),
            section.get("aws_secret_access_key"),
        ) {
            settings.push((Key::AccessKeyId, id.clone()));
            settings.push((Key::SecretAccessKey, secret.clone()));
            if let Some(token) = section.get("aws_session_token") {
                settings.push((Key::Token, token.clone()));
            }
        }
    }
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        let name = if profile == "default" {
            "default".to_owned()
        } else {
            format!("profile {profile}")
        };
        if let Some(region) = ini_section(&config_file, &name).get("region") {
            settings.push((Key::Region, region.clone()));
        }
    }
    settings
}

/// The `key = value` lines of one `[section]` of an INI file (empty when
/// the file or section is missing).
fn ini_section(path: &std::path::Path, section: &str) -> HashMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    let mut inside = false;
    let mut values = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line
            .strip_prefix('[')
            .and_then(|line| line.strip_suffix(']'))
        {
            inside = name.trim() == section;
        } else if inside && let Some((key, value)) = line.split_once('=') {
            values.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    values
}

/// `text` without a query string, fragment or user information.
pub fn redact(text: &str) -> String {
    let without_query = text.split(['?', '#']).next().unwrap_or_default();
    match without_query.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host = authority
                .rsplit_once('@')
                .map_or(authority, |(user, host)| {
                    // abfss://container@account… names a container, not a user.
                    if user.contains(':') { host } else { authority }
                });
            let separator = if rest.contains('/') { "/" } else { "" };
            format!("{scheme}://{host}{separator}{path}")
        }
        None => without_query.to_owned(),
    }
}

/// Error text with every URL's query string removed (a SAS token travels
/// in one; a presigned URL carries its signature there).
pub(crate) fn scrub(text: &str) -> String {
    static QUERY: OnceLock<Option<regex::Regex>> = OnceLock::new();
    let query = QUERY.get_or_init(|| regex::Regex::new(r"(https?://[^\s?)]*)\?[^\s)]*").ok());
    match query {
        Some(query) => query.replace_all(text, "$1?…").into_owned(),
        None => "(details withheld)".to_owned(),
    }
}

/// An object-store failure, with a hint for the usual causes.
pub(crate) fn store_error(location: &str, error: &object_store::Error) -> Error {
    let s3 = matches!(cloud(location), Some((Cloud::S3, _, _)));
    let credentials = if s3 {
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or AWS_PROFILE"
    } else {
        "AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN, or a workload identity"
    };
    let text = scrub(&error.to_string());
    let (reason, hint) = if text.contains("169.254.169.254") {
        (
            "no credentials: none in the environment, and no instance or managed identity answered"
                .to_owned(),
            format!("set {credentials}"),
        )
    } else if text.contains("NoSuchBucket") || text.contains("ContainerNotFound") {
        (
            "the bucket or container does not exist".to_owned(),
            "check its name, and the account or endpoint it is in".to_owned(),
        )
    } else if matches!(
        error,
        object_store::Error::Unauthenticated { .. } | object_store::Error::PermissionDenied { .. }
    ) || [
        "AuthorizationFailure",
        "AuthenticationFailed",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "403 Forbidden",
    ]
    .iter()
    .any(|marker| text.contains(marker))
    {
        (
            format!("access refused ({})", first_line(&text)),
            format!("the store refused the credentials: check {credentials}"),
        )
    } else if matches!(error, object_store::Error::NotFound { .. }) {
        (
            first_line(&text),
            "check the path (and that the bucket or container exists)".to_owned(),
        )
    } else {
        (
            first_line(&text),
            "check the endpoint and the network".to_owned(),
        )
    };
    Error::Store {
        location: redact(location),
        reason: format!("{reason}\nhint: {hint}"),
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    line.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_lose_queries_and_credentials_but_keep_containers() {
        assert_eq!(
            redact("az://lake/exports?sv=2024&sig=TOPSECRETSIG"),
            "az://lake/exports"
        );
        assert_eq!(
            redact("abfss://lake@account.dfs.core.windows.net/x/y"),
            "abfss://lake@account.dfs.core.windows.net/x/y"
        );
        assert_eq!(redact("s3://key:secret@bucket/x"), "s3://bucket/x");
        assert_eq!(redact("s3://bucket"), "s3://bucket");
        let scrubbed = scrub(
            "error sending request for url (https://a.blob.core.windows.net/c/f?sig=TOPSECRETSIG&se=1): timed out",
        );
        assert!(!scrubbed.contains("TOPSECRETSIG"), "{scrubbed}");
        assert!(
            scrubbed.contains("https://a.blob.core.windows.net/c/f?…"),
            "{scrubbed}"
        );
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_being_repeated() {
        for text in [
            "az://lake/exports?sig=TOPSECRETSIG",
            "s3://key:TOPSECRETSIG@bucket/exports",
        ] {
            let error = connect(text).expect_err("refused").to_string();
            assert!(!error.contains("TOPSECRETSIG"), "{error}");
            assert!(error.contains("hint:"), "{error}");
        }
    }

    #[test]
    fn a_profile_section_is_read_from_an_ini_file() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("credentials");
        std::fs::write(
            &path,
            "[default]\naws_access_key_id = A\n\n[profile lab]\nregion=ca-central-1\n[lab]\naws_access_key_id=B\naws_secret_access_key = C\n",
        )
        .expect("write");
        assert_eq!(
            ini_section(&path, "default")
                .get("aws_access_key_id")
                .map(String::as_str),
            Some("A")
        );
        let lab = ini_section(&path, "lab");
        assert_eq!(
            lab.get("aws_secret_access_key").map(String::as_str),
            Some("C")
        );
        assert_eq!(
            ini_section(&path, "profile lab")
                .get("region")
                .map(String::as_str),
            Some("ca-central-1")
        );
        assert!(ini_section(&path, "none").is_empty());
    }
}
