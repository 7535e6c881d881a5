//! Object stores: S3, Google Cloud Storage, Azure and plain HTTP(S) under `s3://`, `gs://`,
//! `az://` / `abfss://` and `http(s)://` locations.
//!
//! A session's runtime gets a [`StoreRegistry`] that builds the store of a bucket the first time a
//! location in it is read or written, whether the location came from `--lake`, `--table`,
//! `usagelake.toml`, a job's `--output` or SQL (`CREATE EXTERNAL TABLE ... LOCATION 's3://...'`), so
//! no code path has to register stores ahead of time.
//!
//! Settings come, later ones winning, from our defaults, the store's usual environment variables
//! (`AWS_*`, `GOOGLE_*`, `AZURE_*`, read by `object_store`'s `from_env`), `--store-option KEY=VALUE`
//! and a table's `options` in `usagelake.toml`. Keys are `object_store`'s (`aws_endpoint`,
//! `aws_allow_http`, `timeout`, ...) plus [`MAX_RETRIES`] and [`RETRY_TIMEOUT`] for the retry policy.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::error::DataFusionError;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::{BackoffConfig, ClientConfigKey, RetryConfig};
use url::Url;

/// The option naming how many times a failed request is retried.
pub const MAX_RETRIES: &str = "max_retries";
/// The option bounding the time spent retrying one request, such as `30s`.
pub const RETRY_TIMEOUT: &str = "retry_timeout";

/// Retries of one request. `object_store` retries 10 times for up to 3 minutes; a scheduled job
/// should rather fail within a minute with exit code 3 and let its scheduler retry the run.
const DEFAULT_MAX_RETRIES: usize = 4;
const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_secs(60);
/// Backoff between retries: 100 ms, doubling, at most 5 s (so 4 retries wait about 1.5 s in all).
const BACKOFF: BackoffConfig = BackoffConfig {
    init_backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(5),
    base: 2.0,
};
/// A request that sends nothing for this long is cut off and retried; a stalled connection
/// otherwise holds a job until its scheduler kills it. Long enough for a 16 MiB part on a slow link.
const DEFAULT_TIMEOUT: &str = "30s";
const DEFAULT_CONNECT_TIMEOUT: &str = "5s";

/// URL schemes with a store.
const SCHEMES: &str = "s3://, gs://, az://, abfss://, http:// or https://";

/// Errors naming or building a store.
#[derive(Debug, thiserror::Error)]
pub enum ObjectStoreError {
    #[error(
        "'{location}' is not a storage URL ({problem}): write it as s3://BUCKET/PREFIX/ (or gs://, az://, https://)"
    )]
    BadUrl { location: String, problem: String },
    #[error(
        "'{location}': the scheme '{scheme}' has no store here: use {SCHEMES}, or a local path"
    )]
    UnknownScheme { location: String, scheme: String },
    #[error("store option '{0}' is not KEY=VALUE: write it as --store-option aws_region=eu-west-1")]
    BadOption(String),
    #[error(
        "store option '{key}' is unknown for {scheme}:// stores: see the README's object storage section for the keys"
    )]
    UnknownKey { scheme: String, key: String },
    #[error("store option '{key}' = '{value}' is not {expected}")]
    BadValue {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("could not set up the store of '{location}': {message}")]
    Build { location: String, message: String },
}

/// Where data is: a local path or a URL of an object store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file or folder on this machine.
    Local(std::path::PathBuf),
    /// An object or prefix in an object store.
    Remote(Url),
}

impl Location {
    /// Reads a location as a user writes it: `scheme://...` is a URL, anything else a local path.
    pub fn parse(text: &str) -> Result<Self, ObjectStoreError> {
        let Some((scheme, _)) = text.split_once("://") else {
            return Ok(Self::Local(text.into()));
        };
        let bad = |problem: &str| ObjectStoreError::BadUrl {
            location: text.to_string(),
            problem: problem.to_string(),
        };
        if !matches!(scheme, "s3" | "gs" | "az" | "abfss" | "http" | "https") {
            if scheme == "file" {
                return Url::parse(text)
                    .ok()
                    .and_then(|url| url.to_file_path().ok())
                    .map(Self::Local)
                    .ok_or_else(|| bad("not a file path"));
            }
            return Err(ObjectStoreError::UnknownScheme {
                location: text.to_string(),
                scheme: scheme.to_string(),
            });
        }
        let url = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad(if scheme.starts_with("http") {
                "no host"
            } else {
                "no bucket or container"
            }));
        }
        Ok(Self::Remote(url))
    }

    /// This location joined with a relative path, or `relative` itself when it is a location.
    pub fn join(&self, relative: &str) -> Result<Self, ObjectStoreError> {
        if relative.contains("://") || std::path::Path::new(relative).is_absolute() {
            return Self::parse(relative);
        }
        match self {
            Self::Local(path) => Ok(Self::Local(path.join(relative))),
            Self::Remote(url) => {
                let folder = as_folder(url);
                folder
                    .join(relative)
                    .map(Self::Remote)
                    .map_err(|e| ObjectStoreError::BadUrl {
                        location: format!("{folder}{relative}"),
                        problem: e.to_string(),
                    })
            }
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(path) => write!(f, "{}", path.display()),
            Self::Remote(url) => write!(f, "{url}"),
        }
    }
}

/// `url` with the trailing `/` that makes it a folder (prefix) to join names to.
pub fn as_folder(url: &Url) -> Url {
    let mut folder = url.clone();
    if !folder.path().ends_with('/') {
        folder.set_path(&format!("{}/", folder.path()));
    }
    folder
}

/// A storage error on one line, with an S3-style XML error body cut down to its code and message
/// (the request and host ids in it help nobody reading a log).
pub fn storage_message(error: &DataFusionError) -> String {
    cut_error_body(&crate::runner::one_line(error))
}

/// [`storage_message`] of an `object_store` error met outside a query (such as reading a manifest).
pub fn store_error_message(error: &object_store::Error) -> String {
    cut_error_body(&crate::runner::lines_joined(&error.to_string()))
}

/// `text` with the XML error body in it (S3's and Azure's, GCS's XML API) cut down to its
/// `Code` and `Message`.
fn cut_error_body(text: &str) -> String {
    let Some(start) = text.find("<?xml") else {
        // An empty body leaves the message ending in ':'.
        return text.trim_end_matches([':', ' ']).to_string();
    };
    let element = |name: &str| {
        let open = format!("<{name}>");
        let from = text[start..].find(&open)? + start + open.len();
        let to = text[from..].find(&format!("</{name}>"))? + from;
        Some(text[from..to].trim().to_string())
    };
    let head = text[..start].trim_end().trim_end_matches(':');
    match (element("Code"), element("Message")) {
        (Some(code), Some(message)) => format!("{head}: {code}: {message}"),
        (Some(code), None) => format!("{head}: {code}"),
        _ => head.to_string(),
    }
}

/// What to check when a request to the store of `url` failed with `message`.
pub fn storage_hint(url: &Url, message: &str) -> String {
    let name = url.host_str().unwrap_or_default();
    let (what, credentials, endpoint) = match url.scheme() {
        "s3" => (
            "bucket",
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the table's aws_access_key_id and aws_secret_access_key options)",
            "AWS_ENDPOINT",
        ),
        "gs" => (
            "bucket",
            "GOOGLE_SERVICE_ACCOUNT or GOOGLE_APPLICATION_CREDENTIALS",
            "the service account's gcs_base_url",
        ),
        "az" | "abfss" => (
            "container",
            "AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY",
            "AZURE_STORAGE_ENDPOINT, or AZURITE_BLOB_STORAGE_URL with AZURE_STORAGE_USE_EMULATOR",
        ),
        _ => ("host", "the server's access rules", "the URL"),
    };
    let refused = [
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "AuthorizationFailure",
        "403 Forbidden",
        "401 Unauthorized",
    ];
    if message.contains("NoSuchBucket") || message.contains("ContainerNotFound") {
        format!(
            "{what} '{name}' does not exist: check its name, and the endpoint if it is not the cloud's ({endpoint})"
        )
    } else if refused.iter().any(|r| message.contains(r)) {
        format!("the credentials were refused: check {credentials}")
    } else if url.scheme().starts_with("http") {
        "check the URL and that the server answers".to_string()
    } else {
        format!("check that {what} '{name}' exists, the endpoint ({endpoint}), and {credentials}")
    }
}

/// Store settings given on the command line or per table, as `KEY=VALUE` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreOptions(pub BTreeMap<String, String>);

impl StoreOptions {
    /// Parses `--store-option KEY=VALUE` arguments.
    pub fn from_arguments(arguments: &[String]) -> Result<Self, ObjectStoreError> {
        let mut options = BTreeMap::new();
        for argument in arguments {
            match argument.split_once('=') {
                Some((key, value)) if !key.trim().is_empty() => {
                    options.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
                }
                _ => return Err(ObjectStoreError::BadOption(argument.clone())),
            }
        }
        Ok(Self(options))
    }

    /// These options with `overrides` in place of the same keys.
    pub fn merged(&self, overrides: &BTreeMap<String, String>) -> Self {
        let mut options = self.0.clone();
        options.extend(
            overrides
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone())),
        );
        Self(options)
    }

    fn retry(&self) -> Result<RetryConfig, ObjectStoreError> {
        let max_retries = match self.0.get(MAX_RETRIES) {
            None => DEFAULT_MAX_RETRIES,
            Some(value) => value.parse().map_err(|_| ObjectStoreError::BadValue {
                key: MAX_RETRIES.to_string(),
                value: value.clone(),
                expected: "a whole number, such as 4",
            })?,
        };
        let retry_timeout = match self.0.get(RETRY_TIMEOUT) {
            None => DEFAULT_RETRY_TIMEOUT,
            Some(value) => parse_duration(value).ok_or_else(|| ObjectStoreError::BadValue {
                key: RETRY_TIMEOUT.to_string(),
                value: value.clone(),
                expected: "a duration, such as 500ms, 30s or 2m",
            })?,
        };
        Ok(RetryConfig {
            backoff: BACKOFF,
            max_retries,
            retry_timeout,
        })
    }

    /// The options given to `object_store`: all but the retry policy's.
    fn store_keys(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0
            .iter()
            .filter(|(key, _)| *key != MAX_RETRIES && *key != RETRY_TIMEOUT)
    }
}

/// Parses `500ms`, `30s`, `2m` or a number of seconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let seconds = number.trim().parse::<f64>().ok()? * scale;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// Builds the store that serves `url` (its bucket, container or host) with `options`.
pub fn build_store(
    url: &Url,
    options: &StoreOptions,
) -> Result<Arc<dyn ObjectStore>, ObjectStoreError> {
    let location = url.to_string();
    let retry = options.retry()?;
    let unknown = |key: &str| ObjectStoreError::UnknownKey {
        scheme: url.scheme().to_string(),
        key: key.to_string(),
    };
    let build_error = |e: object_store::Error| ObjectStoreError::Build {
        location: location.clone(),
        message: crate::runner::one_line(&DataFusionError::from(e)),
    };
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" => {
            let mut builder = AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .with_retry(retry);
            for (key, value) in default_client_options("AWS_") {
                builder = builder.with_config(AmazonS3ConfigKey::Client(key), value);
            }
            for (key, value) in options.store_keys() {
                let key: AmazonS3ConfigKey = key.parse().map_err(|_| unknown(key))?;
                builder = builder.with_config(key, value);
            }
            Arc::new(builder.build().map_err(build_error)?)
        }
        "gs" => {
            let mut builder = GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .with_retry(retry);
            for (key, value) in default_client_options("GOOGLE_") {
                builder = builder.with_config(GoogleConfigKey::Client(key), value);
            }
            for (key, value) in options.store_keys() {
                let key: GoogleConfigKey = key.parse().map_err(|_| unknown(key))?;
                builder = builder.with_config(key, value);
            }
            Arc::new(builder.build().map_err(build_error)?)
        }
        "az" | "abfss" => {
            let mut builder = MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .with_retry(retry);
            for (key, value) in default_client_options("AZURE_") {
                builder = builder.with_config(AzureConfigKey::Client(key), value);
            }
            for (key, value) in options.store_keys() {
                let key: AzureConfigKey = key.parse().map_err(|_| unknown(key))?;
                builder = builder.with_config(key, value);
            }
            Arc::new(builder.build().map_err(build_error)?)
        }
        "http" | "https" => {
            let origin = &url[..url::Position::BeforePath];
            let mut builder = HttpBuilder::new().with_url(origin).with_retry(retry);
            // The user wrote http:// on purpose: no TLS is what the URL asks for.
            builder = builder.with_config(ClientConfigKey::AllowHttp, "true");
            for (key, value) in default_client_options("") {
                builder = builder.with_config(key, value);
            }
            for (key, value) in options.store_keys() {
                let key: ClientConfigKey = key.parse().map_err(|_| unknown(key))?;
                builder = builder.with_config(key, value);
            }
            Arc::new(builder.build().map_err(build_error)?)
        }
        scheme => {
            return Err(ObjectStoreError::UnknownScheme {
                location,
                scheme: scheme.to_string(),
            });
        }
    };
    Ok(store)
}

/// Our timeouts, except where the store's environment variable (such as `AWS_TIMEOUT`) sets one.
fn default_client_options(env_prefix: &str) -> Vec<(ClientConfigKey, &'static str)> {
    [
        (ClientConfigKey::Timeout, "TIMEOUT", DEFAULT_TIMEOUT),
        (
            ClientConfigKey::ConnectTimeout,
            "CONNECT_TIMEOUT",
            DEFAULT_CONNECT_TIMEOUT,
        ),
    ]
    .into_iter()
    .filter(|(_, env, _)| {
        env_prefix.is_empty() || std::env::var(format!("{env_prefix}{env}")).is_err()
    })
    .map(|(key, _, value)| (key, value))
    .collect()
}

/// The registry of a session's stores: local files as DataFusion has them, and a store for each
/// bucket built on first use with the session's [`StoreOptions`].
#[derive(Debug)]
pub struct StoreRegistry {
    stores: DefaultObjectStoreRegistry,
    options: StoreOptions,
}

impl StoreRegistry {
    /// A registry whose stores are built with `options`.
    pub fn new(options: StoreOptions) -> Self {
        Self {
            stores: DefaultObjectStoreRegistry::new(),
            options,
        }
    }
}

impl ObjectStoreRegistry for StoreRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.stores.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        self.stores.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.stores.get_store(url) {
            return Ok(store);
        }
        let store = build_store(url, &self.options)
            .map_err(|e| DataFusionError::Configuration(e.to_string()))?;
        self.stores.register_store(url, Arc::clone(&store));
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_urls_only_with_a_store_scheme() {
        assert_eq!(
            Location::parse("data/lake").unwrap(),
            Location::Local("data/lake".into())
        );
        assert!(matches!(
            Location::parse("s3://bucket/lake/").unwrap(),
            Location::Remote(_)
        ));
        let error = Location::parse("s3:///lake").unwrap_err().to_string();
        assert!(error.contains("no bucket"), "{error}");
        let error = Location::parse("ftp://host/lake").unwrap_err().to_string();
        assert!(
            error.contains("'ftp'") && error.contains("s3://"),
            "{error}"
        );
    }

    #[test]
    fn relative_table_locations_join_the_lake_prefix() {
        let lake = Location::parse("s3://bucket/lake").unwrap();
        assert_eq!(
            lake.join("events").unwrap().to_string(),
            "s3://bucket/lake/events"
        );
        assert_eq!(
            lake.join("gs://other/t/").unwrap().to_string(),
            "gs://other/t/"
        );
    }

    #[test]
    fn retry_options_are_checked() {
        let options =
            StoreOptions::from_arguments(&["max_retries=2".into(), "retry_timeout=1.5s".into()])
                .unwrap();
        let retry = options.retry().unwrap();
        assert_eq!(retry.max_retries, 2);
        assert_eq!(retry.retry_timeout, Duration::from_millis(1500));
        let bad = StoreOptions::from_arguments(&["max_retries=many".into()]).unwrap();
        assert!(bad.retry().unwrap_err().to_string().contains("'many'"));
        assert!(StoreOptions::from_arguments(&["novalue".into()]).is_err());
    }

    #[test]
    fn hints_name_each_cloud_and_xml_bodies_are_cut_to_one_line() {
        let container = Url::parse("az://logs/lake/").unwrap();
        let hint = storage_hint(
            &container,
            "404 Not Found: ContainerNotFound: The specified",
        );
        assert!(
            hint.starts_with("container 'logs' does not exist"),
            "{hint}"
        );
        assert!(hint.contains("AZURITE_BLOB_STORAGE_URL"), "{hint}");
        let hint = storage_hint(
            &container,
            "403 Forbidden: AuthorizationFailure: Server failed",
        );
        assert!(hint.contains("check AZURE_STORAGE_ACCOUNT_NAME"), "{hint}");
        let bucket = Url::parse("gs://logs/lake/").unwrap();
        let hint = storage_hint(&bucket, "500 Internal Server Error");
        assert!(hint.contains("bucket 'logs' exists"), "{hint}");
        assert!(hint.contains("GOOGLE_SERVICE_ACCOUNT"), "{hint}");

        let body = "403 Forbidden: <?xml version=\"1.0\"?>\n<Error>\n  <Code>AuthorizationFailure</Code>\n  <Message>Server failed.\nRequestId:1</Message>\n</Error>";
        let cut = cut_error_body(&crate::runner::lines_joined(body));
        assert_eq!(
            cut,
            "403 Forbidden: AuthorizationFailure: Server failed. RequestId:1"
        );
    }

    #[test]
    fn an_unknown_key_is_named() {
        let url = Url::parse("s3://bucket/").unwrap();
        let options = StoreOptions::from_arguments(&["aws_endpont=http://x".into()]).unwrap();
        let Err(error) = build_store(&url, &options) else {
            panic!("a misspelt key must be refused");
        };
        assert!(error.to_string().contains("'aws_endpont'"), "{error}");
    }
}
