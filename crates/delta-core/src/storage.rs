//! The only module that talks to `object_store`.
//!
//! A [`Storage`] is a store plus the table root. It turns table URIs into stores (local
//! paths, `file://`, `memory://`, `s3://`, `az://`/`abfss://`, `gs://`, with credentials
//! from the environment as delta-rs reads them), lists `_delta_log` from a version on, and
//! resolves the URI-encoded paths of actions to store locations, refusing any path that
//! would leave the table root.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreExt, RetryConfig};
use url::Url;

use crate::log::{LogFile, LogPath};
use crate::{Error, Result, Version};

/// The outcome of [`Storage::put_if_absent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// The object was created by this call.
    Written,
    /// Another writer created it first.
    AlreadyExists,
}

/// An object found by [`Storage::list_files`].
#[derive(Clone, Debug)]
pub(crate) struct ListedFile {
    /// Path segments below the table root (raw, as on disk).
    pub(crate) relative: Vec<String>,
    /// The store location.
    pub(crate) location: Path,
    /// Size in bytes.
    pub(crate) size: u64,
    /// Last modification in milliseconds since the epoch.
    pub(crate) last_modified_ms: i64,
}

/// The multipart part size of uploads to local disk and memory (see
/// [`Storage::upload_part_cap`]).
const LOCAL_UPLOAD_PART_BYTES: usize = 64 * 1024;

/// A store and the root of one table in it.
#[derive(Clone, Debug)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    root: Path,
    url: Url,
    /// Why commits to this store could not be atomic, when its configuration says so
    /// (checked before anything is written: [`Storage::check_commits`]).
    commit_refusal: Option<Arc<str>>,
    /// `_delta_log` on local disk, when the store is the local file system this storage
    /// opened itself (not a store handed in, which may wrap it): the log is then listed with
    /// the operating system directly ([`Storage::list_log`]).
    local_log_dir: Option<Arc<std::path::Path>>,
}

/// Client settings of the HTTP object stores (S3, Azure, GCS), applied unless the user set
/// the same key, in the environment (`AWS_TIMEOUT`, `AZURE_CONNECT_TIMEOUT`, ...) or as a
/// store option (`timeout=300s`).
///
/// - `connect_timeout` 5 s: object_store's own default (the AWS SDK recommends 3.1 s), pinned
///   here so that an upgrade cannot change it silently.
/// - `timeout` 120 s for a whole request, where object_store's default is 30 s: a request
///   carries up to one 5 MiB multipart part or one parquet row group (often tens of MiB),
///   and 30 s fails those below about 1 MiB/s (cross-region, on-premises S3 appliances) on
///   every retry alike. A hung request still fails, and is retried, within two minutes.
///
/// There is deliberately no `read_timeout`: it would also fire while a slow upload is
/// still being sent.
const REMOTE_CLIENT_DEFAULTS: [(ClientConfigKey, &str); 2] = [
    (ClientConfigKey::ConnectTimeout, "5s"),
    (ClientConfigKey::Timeout, "120s"),
];

/// Retries of the HTTP object stores, unless the options say otherwise (the keys delta-rs
/// reads: `max_retries`, `retry_timeout`, `backoff_config.init_backoff`,
/// `backoff_config.max_backoff`, `backoff_config.base`). These are object_store's defaults,
/// pinned: up to 10 retries of a failed request within 3 minutes (object_store advises
/// staying below 5 minutes, after which signed requests expire), backing off from 100 ms,
/// doubling, up to 15 s. object_store retries server errors (5xx), 429 and 408, and
/// connection errors before the request was sent; a request that timed out is retried only
/// when idempotent, so a create-only commit put that timed out comes back as an error and
/// the commit loop settles it by reading the slot back (`Transaction::commit`).
const REMOTE_MAX_RETRIES: usize = 10;
/// See [`REMOTE_MAX_RETRIES`].
const REMOTE_RETRY_TIMEOUT: Duration = Duration::from_secs(180);
/// See [`REMOTE_MAX_RETRIES`].
const REMOTE_BACKOFF_INIT: Duration = Duration::from_millis(100);
/// See [`REMOTE_MAX_RETRIES`].
const REMOTE_BACKOFF_MAX: Duration = Duration::from_secs(15);
/// See [`REMOTE_MAX_RETRIES`].
const REMOTE_BACKOFF_BASE: f64 = 2.0;

/// Split the retry options (delta-rs's keys) from the store options.
fn retry_config(
    options: &HashMap<String, String>,
) -> Result<(RetryConfig, HashMap<String, String>)> {
    let mut retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: REMOTE_BACKOFF_INIT,
            max_backoff: REMOTE_BACKOFF_MAX,
            base: REMOTE_BACKOFF_BASE,
        },
        max_retries: REMOTE_MAX_RETRIES,
        retry_timeout: REMOTE_RETRY_TIMEOUT,
    };
    let duration = |key: &str, value: &str| {
        humantime::parse_duration(value.trim()).map_err(|e| {
            Error::invalid(format!(
                "store option {key}={value}: not a duration such as 500ms, 30s or 3min ({e})"
            ))
        })
    };
    let mut rest = HashMap::new();
    for (key, value) in options {
        match key.as_str() {
            "max_retries" => {
                retry.max_retries = value.trim().parse().map_err(|_| {
                    Error::invalid(format!(
                        "store option max_retries={value}: not a whole number"
                    ))
                })?;
            }
            "retry_timeout" => retry.retry_timeout = duration(key, value)?,
            "backoff_config.init_backoff" => retry.backoff.init_backoff = duration(key, value)?,
            "backoff_config.max_backoff" => retry.backoff.max_backoff = duration(key, value)?,
            "backoff_config.base" => {
                retry.backoff.base = value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|b: &f64| b.is_finite() && *b >= 1.0)
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "store option backoff_config.base={value}: not a number of at least 1"
                        ))
                    })?;
            }
            _ => {
                rest.insert(key.clone(), value.clone());
            }
        }
    }
    Ok((retry, rest))
}

/// The [`REMOTE_CLIENT_DEFAULTS`] the user has not set: neither an environment variable
/// starting with `env_prefix` (read as the store's `from_env` reads it) nor an option
/// parses to the same configuration key.
fn client_defaults<K>(
    env_prefix: &str,
    options: &HashMap<String, String>,
    wrap: fn(ClientConfigKey) -> K,
) -> Vec<(K, &'static str)>
where
    K: std::str::FromStr + PartialEq,
{
    let user_keys: Vec<K> = std::env::vars_os()
        .filter_map(|(key, _)| key.into_string().ok())
        .filter(|key| key.starts_with(env_prefix))
        .filter_map(|key| key.to_ascii_lowercase().parse().ok())
        .chain(options.keys().filter_map(|key| key.parse().ok()))
        .collect();
    REMOTE_CLIENT_DEFAULTS
        .iter()
        .map(|(key, value)| (wrap(*key), *value))
        .filter(|(key, _)| !user_keys.contains(key))
        .collect()
}

/// Why commits to an S3 store built with `conditional_put` set to `value` would not be
/// atomic (`None` when they are).
fn s3_commit_refusal(url: &Url, value: Option<&str>) -> Option<Arc<str>> {
    (value == Some("disabled")).then(|| {
        format!(
            "cannot write to {url}: the S3 store is configured with conditional_put=disabled, so it cannot \
             create a commit file only if it is absent and concurrent writers could overwrite each other's \
             commits; remove that setting (object_store then creates commit files with `If-None-Match: *`, \
             which AWS S3, MinIO, Cloudflare R2 and moto honour) or set AWS_CONDITIONAL_PUT=etag \
             (--storage-option conditional_put=etag)"
        )
        .into()
    })
}

/// Turn a user-supplied location (a local path or a URL) into a directory URL.
///
/// # Errors
/// [`Error::InvalidArgument`] when it is neither a URL nor a usable local path.
pub fn table_url(location: &str) -> Result<Url> {
    let mut url = match Url::parse(location) {
        Ok(url) if url.scheme().len() > 1 => url,
        _ => {
            let absolute = std::path::absolute(location)
                .map_err(|e| Error::invalid(format!("bad table path {location}: {e}")))?;
            // Resolve `.` and `..` lexically (the table need not exist yet).
            let mut path = std::path::PathBuf::new();
            for component in absolute.components() {
                match component {
                    std::path::Component::ParentDir => {
                        path.pop();
                    }
                    std::path::Component::CurDir => {}
                    other => path.push(other),
                }
            }
            Url::from_directory_path(&path)
                .map_err(|()| Error::invalid(format!("bad table path {location}")))?
        }
    };
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    Ok(url)
}

impl Storage {
    /// Open the store for `location`, a local path or a URL, with extra store options
    /// (`key=value` pairs as object_store's builders accept them, plus delta-rs's retry
    /// keys `max_retries`, `retry_timeout`, `backoff_config.init_backoff`,
    /// `backoff_config.max_backoff` and `backoff_config.base`).
    ///
    /// Cloud stores read their settings from the environment first (`AWS_*`, `AZURE_*`,
    /// `GOOGLE_*`, as object_store's `from_env` builders do), then the URL, then `options`.
    /// Their HTTP client gets the timeouts of [`REMOTE_CLIENT_DEFAULTS`] and the retries of
    /// [`REMOTE_MAX_RETRIES`] unless set by the user.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for unsupported schemes or bad options.
    pub fn from_uri(location: &str, options: &HashMap<String, String>) -> Result<Self> {
        use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
        use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
        use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};

        let url = table_url(location)?;
        let bad = |e: object_store::Error| Error::invalid(format!("cannot open {url}: {e}"));
        let mut commit_refusal = None;
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "file" => Arc::new(object_store::local::LocalFileSystem::new()),
            "memory" => Arc::new(object_store::memory::InMemory::new()),
            "s3" | "s3a" => {
                let (retry, options) = retry_config(options)?;
                let mut b = AmazonS3Builder::from_env();
                for (key, value) in client_defaults("AWS_", &options, AmazonS3ConfigKey::Client) {
                    b = b.with_config(key, value);
                }
                b = b.with_url(url.as_str()).with_retry(retry);
                for (k, v) in &options {
                    let key = k.parse().map_err(bad)?;
                    b = b.with_config(key, v);
                }
                commit_refusal = s3_commit_refusal(
                    &url,
                    b.get_config_value(&AmazonS3ConfigKey::ConditionalPut)
                        .as_deref(),
                );
                Arc::new(b.build().map_err(bad)?)
            }
            "az" | "abfs" | "abfss" | "azure" | "adl" => {
                let (retry, options) = retry_config(options)?;
                let mut b = MicrosoftAzureBuilder::from_env();
                for (key, value) in client_defaults("AZURE_", &options, AzureConfigKey::Client) {
                    b = b.with_config(key, value);
                }
                b = b.with_url(url.as_str()).with_retry(retry);
                for (k, v) in &options {
                    let key = k.parse().map_err(bad)?;
                    b = b.with_config(key, v);
                }
                Arc::new(b.build().map_err(bad)?)
            }
            "gs" => {
                let (retry, options) = retry_config(options)?;
                let mut b = GoogleCloudStorageBuilder::from_env();
                for (key, value) in client_defaults("GOOGLE_", &options, GoogleConfigKey::Client) {
                    b = b.with_config(key, value);
                }
                b = b.with_url(url.as_str()).with_retry(retry);
                for (k, v) in &options {
                    let key = k.parse().map_err(bad)?;
                    b = b.with_config(key, v);
                }
                Arc::new(b.build().map_err(bad)?)
            }
            other => {
                return Err(Error::invalid(format!(
                    "unsupported URL scheme `{other}` (use a path, file://, memory://, s3://, az://, abfss:// or gs://)"
                )));
            }
        };
        let mut storage = Self::new(store, url)?;
        storage.commit_refusal = commit_refusal;
        if storage.url.scheme() == "file" {
            storage.local_log_dir = storage
                .url
                .to_file_path()
                .ok()
                .map(|dir| Arc::from(dir.join("_delta_log")));
        }
        Ok(storage)
    }

    /// A storage over an existing store; `url` names the table root inside it.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the URL's path is not a valid store path.
    pub fn new(store: Arc<dyn ObjectStore>, url: Url) -> Result<Self> {
        let root = root_path(&url)?;
        Ok(Self {
            store,
            root,
            url,
            commit_refusal: None,
            local_log_dir: None,
        })
    }

    /// The table root URL (ends with `/`).
    #[must_use]
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// How a location is named in messages: an absolute local path, or `scheme://host/key`.
    #[must_use]
    pub fn display(&self, location: &Path) -> String {
        match self.url.scheme() {
            "file" => format!("/{location}"),
            scheme => format!(
                "{scheme}://{}/{location}",
                self.url.host_str().unwrap_or_default()
            ),
        }
    }

    /// The underlying store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The location of `_delta_log/<name>`.
    #[must_use]
    pub fn log_location(&self, name: &str) -> Path {
        self.root.clone().join("_delta_log").join(name)
    }

    /// A location relative to the table root, given as raw (decoded) segments.
    ///
    /// # Errors
    /// [`Error::Corrupt`] (naming `context`) for `.`/`..` segments or control characters.
    pub fn child(&self, relative: &str, context: &str) -> Result<Path> {
        let joined = if self.root.as_ref().is_empty() {
            relative.to_owned()
        } else {
            format!("{}/{relative}", self.root.as_ref())
        };
        Path::parse(&joined).map_err(|_| {
            Error::corrupt(
                context,
                "file path is not a plain path inside the table root (it has `.`/`..` segments or control characters)",
            )
        })
    }

    /// Resolve the URI-encoded `path` of an `add`/`remove`/`cdc` action to a location.
    ///
    /// Relative paths are decoded once and must stay inside the table root; absolute URIs
    /// must point inside the table root of the same store.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming `context` (the log file or action) when the path escapes
    /// the root or points to another store.
    pub fn resolve_file(&self, path: &str, context: &str) -> Result<Path> {
        if let Ok(url) = Url::parse(path)
            && url.scheme().len() > 1
        {
            let root = self.url.as_str();
            let absolute = url.as_str();
            return match absolute.strip_prefix(root) {
                Some(rest) => self.resolve_file(rest, context),
                None => Err(Error::corrupt(
                    context,
                    "absolute file path points outside the table root",
                )),
            };
        }
        if path.starts_with('/') {
            return Err(Error::corrupt(
                context,
                "absolute file path without a scheme points outside the table root",
            ));
        }
        let decoded = percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .map_err(|_| {
                Error::corrupt(context, "file path is not valid UTF-8 after URI decoding")
            })?;
        if decoded.split('/').any(|s| s == ".." || s == ".") {
            return Err(Error::corrupt(
                context,
                "file path escapes the table root (`..` segment)",
            ));
        }
        self.child(&decoded, context)
    }

    /// Read a whole object.
    ///
    /// # Errors
    /// [`Error::Storage`] on any store failure, including a missing object.
    pub async fn read(&self, location: &Path) -> Result<Bytes> {
        Ok(self.store.get(location).await?.bytes().await?)
    }

    /// Read a whole object whose size is known (from a listing or the log).
    ///
    /// One ranged request instead of a `get`: on local disk that is one trip to the blocking
    /// thread pool (open and read) instead of two (open and stat, then read), which is most
    /// of the cost of reading a small commit file.
    ///
    /// # Errors
    /// [`Error::Storage`] on any store failure, including a missing object or one shorter
    /// than `size`.
    pub async fn read_sized(&self, location: &Path, size: u64) -> Result<Bytes> {
        if size == 0 {
            return self.read(location).await;
        }
        let mut parts = self
            .store
            .get_ranges(location, std::slice::from_ref(&(0..size)))
            .await?;
        match parts.pop() {
            Some(bytes) if parts.is_empty() => Ok(bytes),
            _ => self.read(location).await,
        }
    }

    /// Read a whole object if it exists and is at most `max_bytes` long (`None` otherwise),
    /// without knowing its size beforehand: the size comes with the response headers (the
    /// file's metadata on local disk), before the body is read.
    ///
    /// # Errors
    /// [`Error::Storage`] on store failures other than "not found".
    pub(crate) async fn read_if_at_most(
        &self,
        location: &Path,
        max_bytes: u64,
    ) -> Result<Option<Bytes>> {
        let result = match self.store.get(location).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if result.meta.size > max_bytes {
            return Ok(None);
        }
        Ok(Some(result.bytes().await?))
    }

    /// Read a whole object, `None` when it does not exist.
    ///
    /// # Errors
    /// [`Error::Storage`] on store failures other than "not found".
    pub async fn read_optional(&self, location: &Path) -> Result<Option<Bytes>> {
        match self.store.get(location).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Read a byte range of an object.
    ///
    /// # Errors
    /// [`Error::Storage`] on store failures.
    pub async fn read_range(&self, location: &Path, range: std::ops::Range<u64>) -> Result<Bytes> {
        Ok(self.store.get_range(location, range).await?)
    }

    /// Write a whole object, replacing any existing one (checkpoints, `_last_checkpoint`).
    ///
    /// # Errors
    /// [`Error::Storage`] on store failures.
    pub async fn put(&self, location: &Path, bytes: Bytes) -> Result<()> {
        self.store.put(location, bytes.into()).await?;
        Ok(())
    }

    /// Refuse to write when this store's configuration says that commits could not be
    /// atomic (S3 with `conditional_put=disabled`). Writers call it before writing
    /// anything, so a refused write leaves no data files behind; a store that turns out
    /// to lack create-if-absent only at the commit put is refused there.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] saying how to configure the store.
    pub(crate) fn check_commits(&self) -> Result<()> {
        match &self.commit_refusal {
            Some(reason) => Err(Error::invalid(reason.to_string())),
            None => Ok(()),
        }
    }

    /// Create `location` only if it does not exist yet (the commit primitive). On local
    /// disk object_store links a fully written temporary file into place, so the create is
    /// atomic there too.
    ///
    /// # Errors
    /// [`Error::Storage`] when the store fails; the put may then have happened or not (an
    /// ambiguous put), which the caller settles by reading the slot back.
    pub async fn put_if_absent(&self, location: &Path, bytes: Bytes) -> Result<PutOutcome> {
        let options = object_store::PutOptions {
            mode: object_store::PutMode::Create,
            ..object_store::PutOptions::default()
        };
        match self.store.put_opts(location, bytes.into(), options).await {
            Ok(_) => Ok(PutOutcome::Written),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(PutOutcome::AlreadyExists),
            Err(object_store::Error::NotImplemented { .. }) => Err(Error::invalid(format!(
                "cannot commit to {}: the store cannot create objects only if they are absent, so commits \
                 would not be atomic; for S3 remove conditional_put=disabled or set AWS_CONDITIONAL_PUT=etag \
                 (--storage-option conditional_put=etag)",
                self.url
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// A streaming upload to `location` (multipart above `capacity_bytes`), for data files:
    /// memory per open file stays at `capacity_bytes` whatever the file's size. The object
    /// appears only when the upload is shut down successfully.
    pub(crate) fn upload(
        &self,
        location: &Path,
        capacity_bytes: usize,
    ) -> object_store::buffered::BufWriter {
        object_store::buffered::BufWriter::with_capacity(
            self.store.clone(),
            location.clone(),
            capacity_bytes,
        )
    }

    /// The largest multipart part size worth buffering for this store. Cloud object stores need
    /// parts of 5 MiB (S3's minimum), so their uploads buffer that much; a local file system or
    /// memory takes parts of any size, so uploads there hold at most
    /// [`LOCAL_UPLOAD_PART_BYTES`] before writing to the staged file, which keeps a write to
    /// thousands of partitions from holding every file's bytes in memory.
    pub(crate) fn upload_part_cap(&self) -> usize {
        if self.is_remote() {
            usize::MAX
        } else {
            LOCAL_UPLOAD_PART_BYTES
        }
    }

    /// Delete objects in bulk; missing objects are not an error (S3 reports them deleted,
    /// Azure and local disk as not found: both count as gone). Returns how many were
    /// asked for.
    ///
    /// One `delete_stream` over all of them: object_store batches and bounds the requests
    /// (S3: `DeleteObjects` of 1000 keys, 20 requests in flight; Azure: blob batches of
    /// 256, 20 in flight; local disk: 10 deletes in flight).
    ///
    /// # Errors
    /// [`Error::Storage`] on the first other failure; some objects may be deleted by then.
    pub async fn delete_many(&self, locations: Vec<Path>) -> Result<usize> {
        let count = locations.len();
        let paths = futures::stream::iter(locations.into_iter().map(Ok)).boxed();
        let mut deleted = self.store.delete_stream(paths);
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(count)
    }

    /// List every object under the table root (recursively), with paths relative to it.
    ///
    /// # Errors
    /// [`Error::Storage`] on store failures.
    pub(crate) async fn list_files(&self) -> Result<Vec<ListedFile>> {
        let prefix = (!self.root.as_ref().is_empty()).then_some(&self.root);
        let root_parts = self.root.parts().count();
        let metas: Vec<_> = self.store.list(prefix).try_collect().await?;
        Ok(metas
            .into_iter()
            .map(|meta| ListedFile {
                relative: meta
                    .location
                    .parts()
                    .skip(root_parts)
                    .map(|p| p.as_ref().to_owned())
                    .collect(),
                location: meta.location,
                size: meta.size,
                last_modified_ms: meta.last_modified.timestamp_millis(),
            })
            .collect())
    }

    /// List `_delta_log` entries whose version is at least `from` (all when `None`).
    ///
    /// Only plain files directly in `_delta_log` that parse as log paths are returned.
    ///
    /// # Errors
    /// [`Error::Storage`] on store failures.
    pub async fn list_log(&self, from: Option<Version>) -> Result<Vec<LogFile>> {
        let prefix = self.root.clone().join("_delta_log");
        if let Some(dir) = &self.local_log_dir {
            // object_store's local listing stats every entry and builds a store path for it
            // before it compares with the offset: O(log size) work for every snapshot load.
            // The directory is read here instead, and only entries at or after `from` are
            // stat-ed.
            let dir = dir.clone();
            let listed = tokio::task::spawn_blocking(move || list_local_log(&dir, from))
                .await
                .map_err(|e| Error::invalid(format!("the log listing task failed: {e}")))??;
            return Ok(listed
                .into_iter()
                .map(|(log_path, name, size, last_modified_ms)| LogFile {
                    log_path,
                    location: prefix.clone().join(name.as_str()).to_string(),
                    size,
                    last_modified_ms,
                })
                .collect());
        }
        let stream = match from {
            Some(v) if v > 0 => {
                let offset = prefix.clone().join(format!("{:020}", v - 1).as_str());
                // Everything sorting after `<v-1>` (that is `<v-1>.*` and later); the
                // earlier version's own files are filtered out below.
                self.store.list_with_offset(Some(&prefix), &offset)
            }
            _ => self.store.list(Some(&prefix)),
        };
        let metas: Vec<_> = stream.try_collect().await?;
        let prefix_len = prefix.parts().count();
        let mut files = Vec::with_capacity(metas.len());
        for meta in metas {
            if meta.location.parts().count() != prefix_len + 1 {
                continue;
            }
            let Some(name) = meta.location.filename() else {
                continue;
            };
            let Some(log_path) = LogPath::parse(name) else {
                continue;
            };
            if let (Some(min), Some(v)) = (from, log_path.version())
                && v < min
            {
                continue;
            }
            files.push(LogFile {
                log_path,
                location: meta.location.to_string(),
                size: meta.size,
                last_modified_ms: meta.last_modified.timestamp_millis(),
            });
        }
        Ok(files)
    }
}

/// The log files in local directory `dir` whose version is at least `from`: their log path,
/// file name, size and modification time (ms). A missing directory lists as empty, as an
/// object store's listing of a missing prefix does; entries that are not files (or vanish
/// while listed) are skipped.
fn list_local_log(
    dir: &std::path::Path,
    from: Option<Version>,
) -> Result<Vec<(LogPath, String, u64, i64)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Storage(object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            }));
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(log_path) = LogPath::parse(name) else {
            continue;
        };
        if let (Some(min), Some(v)) = (from, log_path.version())
            && v < min
        {
            continue;
        }
        // Follows symbolic links, as object_store's local listing does.
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let last_modified_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .unwrap_or(0);
        files.push((log_path, name.to_owned(), meta.len(), last_modified_ms));
    }
    Ok(files)
}

/// Bytes fetched with the parquet footer, so that small files need one read for metadata.
const FOOTER_PREFETCH_BYTES: usize = 64 * 1024;

/// Data files of at most this many bytes are fetched whole, in one request, when a scan
/// opens them on a remote store: the footer and the column chunks would otherwise take two
/// or more round trips. Memory: a scan opens up to 8 files ahead, so at most 8 MiB.
const WHOLE_FILE_READ_BYTES: u64 = 1 << 20;

/// On local disk, data files of at most this many bytes are read whole too: one open and
/// one read instead of one for the footer and more for the column chunks.
const LOCAL_WHOLE_FILE_READ_BYTES: u64 = 256 << 10;

/// A parquet file in a store, for the async parquet reader.
#[derive(Clone, Debug)]
pub(crate) struct ParquetFile {
    store: Arc<dyn ObjectStore>,
    location: Path,
    size: Option<u64>,
    /// The whole file, when it was fetched up front ([`Storage::open_parquet`]).
    bytes: Option<Bytes>,
}

impl Storage {
    /// A parquet reader for `location`; `size` (from the log) saves a HEAD request.
    pub(crate) fn parquet_file(&self, location: &Path, size: Option<u64>) -> ParquetFile {
        ParquetFile {
            store: self.store.clone(),
            location: location.clone(),
            size: size.filter(|s| *s > 0),
            bytes: None,
        }
    }

    /// A parquet reader for a data file about to be read: on a remote store a file of at
    /// most [`WHOLE_FILE_READ_BYTES`] (size from the log) is fetched whole now, in one
    /// request, and decoded from memory; otherwise as [`Storage::parquet_file`].
    ///
    /// # Errors
    /// [`Error::Storage`] when the whole-file read fails.
    pub(crate) async fn open_parquet(
        &self,
        location: &Path,
        size: Option<u64>,
    ) -> Result<ParquetFile> {
        let mut file = self.parquet_file(location, size);
        if let Some(size) = file.size
            && size <= WHOLE_FILE_READ_BYTES
            && (self.is_remote() || size <= LOCAL_WHOLE_FILE_READ_BYTES)
        {
            file.bytes = Some(self.read_sized(location, size).await?);
        }
        Ok(file)
    }

    /// Whether every request is a network round trip (not local disk or memory).
    pub(crate) fn is_remote(&self) -> bool {
        !matches!(self.url.scheme(), "file" | "memory")
    }
}

/// `range` of a file held in memory, or an error naming the file when it is out of bounds.
fn slice_of(
    bytes: &Bytes,
    range: &std::ops::Range<u64>,
    location: &Path,
) -> parquet::errors::Result<Bytes> {
    let start = usize::try_from(range.start).unwrap_or(usize::MAX);
    let end = usize::try_from(range.end).unwrap_or(usize::MAX);
    if start > end || end > bytes.len() {
        return Err(parquet::errors::ParquetError::General(format!(
            "range {start}..{end} is outside {location} ({} bytes)",
            bytes.len()
        )));
    }
    Ok(bytes.slice(start..end))
}

fn to_parquet_error(e: object_store::Error) -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::External(Box::new(e))
}

impl parquet::arrow::async_reader::AsyncFileReader for ParquetFile {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<Bytes>> {
        // `get_ranges` of one range: one trip to the blocking pool on local disk where
        // `get_range` takes two (open and stat, then read).
        Box::pin(async move {
            if let Some(bytes) = &self.bytes {
                return slice_of(bytes, &range, &self.location);
            }
            let mut parts = self
                .store
                .get_ranges(&self.location, std::slice::from_ref(&range))
                .await
                .map_err(to_parquet_error)?;
            match parts.pop() {
                Some(bytes) if parts.is_empty() => Ok(bytes),
                _ => self
                    .store
                    .get_range(&self.location, range)
                    .await
                    .map_err(to_parquet_error),
            }
        })
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        Box::pin(async move {
            if let Some(bytes) = &self.bytes {
                return ranges
                    .iter()
                    .map(|range| slice_of(bytes, range, &self.location))
                    .collect();
            }
            self.store
                .get_ranges(&self.location, &ranges)
                .await
                .map_err(to_parquet_error)
        })
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a parquet::arrow::arrow_reader::ArrowReaderOptions>,
    ) -> futures::future::BoxFuture<
        'a,
        parquet::errors::Result<Arc<parquet::file::metadata::ParquetMetaData>>,
    > {
        Box::pin(async move {
            let size = match (&self.bytes, self.size) {
                (Some(bytes), _) => u64::try_from(bytes.len()).unwrap_or(u64::MAX),
                (None, Some(size)) => size,
                (None, None) => {
                    let meta = self
                        .store
                        .head(&self.location)
                        .await
                        .map_err(to_parquet_error)?;
                    meta.size
                }
            };
            let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .with_prefetch_hint(Some(FOOTER_PREFETCH_BYTES))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        })
    }
}

fn root_path(url: &Url) -> Result<Path> {
    // For cloud URLs the bucket or container is the host, so the path is the key prefix.
    Path::from_url_path(url.path().trim_end_matches('/'))
        .map_err(|e| Error::invalid(format!("bad table location {url}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage() -> Storage {
        Storage::new(
            Arc::new(object_store::memory::InMemory::new()),
            Url::parse("memory:///tables/t%20one/").unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn relative_paths_are_decoded_once() {
        let s = storage();
        let p = s
            .resolve_file("x=A%252FA/part-0.parquet", "0.json")
            .unwrap();
        assert_eq!(p.as_ref(), "tables/t one/x=A%2FA/part-0.parquet");
        let p = s.resolve_file("special%20p@%23h", "0.json").unwrap();
        assert_eq!(p.as_ref(), "tables/t one/special p@#h");
    }

    #[test]
    fn escaping_paths_are_refused() {
        let s = storage();
        for bad in [
            "../secret.parquet",
            "a/../../b",
            "%2E%2E/x",
            "/etc/passwd",
            "file:///etc/passwd",
        ] {
            let err = s
                .resolve_file(bad, "00000000000000000001.json")
                .unwrap_err();
            assert!(
                err.to_string().contains("00000000000000000001.json"),
                "{bad}: {err}"
            );
        }
    }

    fn options(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn retry_options_use_delta_rs_keys_and_leave_the_rest() {
        let (retry, rest) = retry_config(&options(&[
            ("max_retries", "3"),
            ("retry_timeout", "45s"),
            ("backoff_config.init_backoff", "250ms"),
            ("backoff_config.max_backoff", "2min"),
            ("backoff_config.base", "3"),
            ("aws_region", "eu-west-1"),
        ]))
        .unwrap();
        assert_eq!(retry.max_retries, 3);
        assert_eq!(retry.retry_timeout, Duration::from_secs(45));
        assert_eq!(retry.backoff.init_backoff, Duration::from_millis(250));
        assert_eq!(retry.backoff.max_backoff, Duration::from_secs(120));
        assert!((retry.backoff.base - 3.0).abs() < f64::EPSILON);
        assert_eq!(rest, options(&[("aws_region", "eu-west-1")]));

        let (defaults, _) = retry_config(&HashMap::new()).unwrap();
        assert_eq!(defaults.max_retries, REMOTE_MAX_RETRIES);
        assert_eq!(defaults.retry_timeout, REMOTE_RETRY_TIMEOUT);

        for (key, value) in [
            ("retry_timeout", "soon"),
            ("max_retries", "-1"),
            ("backoff_config.base", "0.5"),
        ] {
            let err = retry_config(&options(&[(key, value)])).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn client_defaults_yield_to_options() {
        use object_store::aws::AmazonS3ConfigKey;
        let all = client_defaults(
            "MEDILAKE_NO_SUCH_PREFIX_",
            &HashMap::new(),
            AmazonS3ConfigKey::Client,
        );
        assert_eq!(all.len(), REMOTE_CLIENT_DEFAULTS.len());
        // `timeout` and `aws_timeout` both name the request timeout.
        for key in ["timeout", "aws_timeout"] {
            let left = client_defaults(
                "MEDILAKE_NO_SUCH_PREFIX_",
                &options(&[(key, "5min")]),
                AmazonS3ConfigKey::Client,
            );
            assert_eq!(
                left,
                vec![(
                    AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    "5s"
                )],
                "{key}"
            );
        }
    }

    #[test]
    fn s3_without_conditional_puts_is_refused_for_writing() {
        let url = "s3://bucket/table";
        let refused = Storage::from_uri(
            url,
            &options(&[
                ("conditional_put", "disabled"),
                ("aws_access_key_id", "k"),
                ("aws_secret_access_key", "s"),
                ("aws_region", "us-east-1"),
            ]),
        )
        .unwrap();
        let err = refused.check_commits().unwrap_err().to_string();
        assert!(err.contains("s3://bucket/table/"), "{err}");
        assert!(err.contains("conditional_put=etag"), "{err}");
        for conditional in ["etag", ""] {
            let mut opts = options(&[
                ("aws_access_key_id", "k"),
                ("aws_secret_access_key", "s"),
                ("aws_region", "us-east-1"),
            ]);
            if !conditional.is_empty() {
                opts.insert("aws_conditional_put".to_owned(), conditional.to_owned());
            }
            let storage = Storage::from_uri(url, &opts).unwrap();
            storage.check_commits().unwrap();
        }
    }

    #[test]
    fn in_memory_files_serve_ranges_and_refuse_out_of_bounds() {
        let bytes = Bytes::from_static(b"PAR1 data PAR1");
        let location = Path::from("t/part-0.parquet");
        assert_eq!(slice_of(&bytes, &(5..9), &location).unwrap(), "data");
        let err = slice_of(&bytes, &(10..20), &location).unwrap_err();
        assert!(err.to_string().contains("t/part-0.parquet"), "{err}");
    }

    #[test]
    fn absolute_paths_inside_the_root_resolve() {
        let s = storage();
        let p = s
            .resolve_file("memory:///tables/t%20one/a.parquet", "0.json")
            .unwrap();
        assert_eq!(p.as_ref(), "tables/t one/a.parquet");
    }
}
