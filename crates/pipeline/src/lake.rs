//! The lakehouse root: one object store and the URL under which every layer's tables live
//! (`<lake>/<layer>/<table>`), local or remote. The pipeline's data directory is opened the
//! same way (listing and streaming source files from any store).
//!
//! All tables of a lake share one store client (one connection pool for S3 or Azure), and
//! the pipeline's own bookkeeping objects (the bronze ingest ledger) go through the same
//! store, so a fault-injecting or latency-adding store wraps a whole run.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use delta_core::Table;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio_util::io::{StreamReader, SyncIoBridge};
use url::Url;

/// A lakehouse root.
#[derive(Clone)]
pub struct Lake {
    root: Url,
    store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake")
            .field("root", &self.root.as_str())
            .finish()
    }
}

impl Lake {
    /// The lake at `location`: a local path or a URL (`file://`, `s3://`, `az://`,
    /// `abfss://`, `gs://`, `memory://`), with object-store options (`--storage-option`)
    /// on top of the environment's.
    ///
    /// # Errors
    /// An unsupported scheme or bad options.
    pub fn open(location: &str, options: &HashMap<String, String>) -> Result<Self> {
        let root = Table::open(location, options)
            .with_context(|| format!("cannot open the lake {location}"))?;
        Ok(Self {
            root: root.url().clone(),
            store: root.store().clone(),
        })
    }

    /// A lake in `store` at `root` (a directory URL of that store).
    #[must_use]
    pub fn with_store(store: Arc<dyn ObjectStore>, root: Url) -> Self {
        let mut root = root;
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        Self { root, store }
    }

    /// The root URL (ends with `/`).
    #[must_use]
    pub fn url(&self) -> &Url {
        &self.root
    }

    /// The store every table of the lake lives in.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The URL of `<layer>/<name>/`.
    ///
    /// # Errors
    /// A name that does not make a URL path segment.
    pub fn table_url(&self, layer: &str, name: &str) -> Result<Url> {
        self.root
            .join(&format!("{layer}/{name}/"))
            .with_context(|| format!("bad table name {layer}.{name}"))
    }

    /// The table `<layer>/<name>` (it need not exist yet).
    ///
    /// # Errors
    /// A bad name.
    pub fn table(&self, layer: &str, name: &str) -> Result<Table> {
        let url = self.table_url(layer, name)?;
        Table::with_store(self.store.clone(), url.clone())
            .with_context(|| format!("cannot open {url}"))
    }

    /// The store location of `relative` (slash-separated) under the root.
    ///
    /// # Errors
    /// A path that is not a valid store path.
    pub fn location(&self, relative: &str) -> Result<Path> {
        // Segment by segment (not a URL join): names may hold `#`, `?`, `%` or spaces.
        let root = Path::from_url_path(self.root.path())
            .with_context(|| format!("bad lake root {}", self.root))?;
        let mut location = root;
        for segment in relative.split('/').filter(|s| !s.is_empty()) {
            if segment == "." || segment == ".." {
                anyhow::bail!("bad lake path {relative}: `.` and `..` are not allowed");
            }
            location = location.join(segment);
        }
        Ok(location)
    }

    /// How `relative` is named in messages.
    #[must_use]
    pub fn display(&self, relative: &str) -> String {
        format!("{}{relative}", self.root)
    }

    /// The object at `relative`, or `None` when there is none.
    ///
    /// # Errors
    /// Storage errors other than "not found".
    pub async fn read(&self, relative: &str) -> Result<Option<Bytes>> {
        let location = self.location(relative)?;
        match self.store.get(&location).await {
            Ok(found) => {
                Ok(Some(found.bytes().await.with_context(|| {
                    format!("cannot read {}", self.display(relative))
                })?))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.display(relative))),
        }
    }

    /// The objects directly under the directory `relative` (`""`: the root), as (name,
    /// size), and the names of its subdirectories; names are decoded (as on disk), and both
    /// lists are empty when the directory does not exist.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn list_dir(&self, relative: &str) -> Result<(Vec<(String, u64)>, Vec<String>)> {
        let prefix = self.location(relative)?;
        let listed = match self.store.list_with_delimiter(Some(&prefix)).await {
            Ok(listed) => listed,
            Err(object_store::Error::NotFound { .. }) => return Ok((Vec::new(), Vec::new())),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot list {}", self.display(relative)));
            }
        };
        let decode = |name: &str| {
            percent_encoding::percent_decode_str(name)
                .decode_utf8_lossy()
                .into_owned()
        };
        let objects = listed
            .objects
            .iter()
            .filter_map(|o| o.location.filename().map(|n| (decode(n), o.size)))
            .collect();
        let dirs = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(decode))
            .collect();
        Ok((objects, dirs))
    }

    /// A blocking reader of the object at `relative`, for a blocking thread: the file itself
    /// on local disk, else the object's byte stream (call from within the runtime).
    ///
    /// # Errors
    /// A missing object or storage errors, naming it.
    pub async fn reader(&self, relative: &str) -> Result<Box<dyn Read + Send>> {
        let name = self.display(relative);
        if self.root.scheme() == "file"
            && let Ok(root) = self.root.to_file_path()
        {
            let path = relative
                .split('/')
                .filter(|s| !s.is_empty())
                .fold(root, |path, segment| path.join(segment));
            let file = std::fs::File::open(&path).with_context(|| format!("cannot open {name}"))?;
            return Ok(Box::new(file));
        }
        let location = self.location(relative)?;
        let found = self
            .store
            .get(&location)
            .await
            .with_context(|| format!("cannot open {name}"))?;
        let stream = found.into_stream().map_err(std::io::Error::other);
        Ok(Box::new(SyncIoBridge::new(StreamReader::new(stream))))
    }

    /// Replace the object at `relative` with `bytes`, whole (a single put: readers see the
    /// old object or the new one, never a part).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn replace(&self, relative: &str, bytes: Bytes) -> Result<()> {
        let location = self.location(relative)?;
        self.store
            .put(&location, PutPayload::from(bytes))
            .await
            .with_context(|| format!("cannot write {}", self.display(relative)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tables_and_objects_live_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap(), &HashMap::new()).unwrap();
        let table = lake.table("silver", "encounters_clean").unwrap();
        assert_eq!(
            table.url().to_file_path().unwrap(),
            dir.path().join("silver").join("encounters_clean")
        );
        assert_eq!(lake.read("bronze/_x/a.json").await.unwrap(), None);
        lake.replace("bronze/_x/a.json", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("bronze/_x/a.json")).unwrap(),
            b"{}"
        );
        assert_eq!(
            lake.read("bronze/_x/a.json").await.unwrap().as_deref(),
            Some(&b"{}"[..])
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn directories_list_and_objects_stream_from_any_store() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("labs")).unwrap();
        std::fs::write(dir.path().join("labs/a.jsonl"), "{\"x\":1}\n").unwrap();
        std::fs::write(dir.path().join("top.json"), "[]").unwrap();
        std::fs::write(dir.path().join("labs/odd #1 50%.jsonl"), "{}\n").unwrap();
        let local = Lake::open(dir.path().to_str().unwrap(), &HashMap::new()).unwrap();
        let memory = Lake::open("memory:///data", &HashMap::new()).unwrap();
        memory
            .replace("labs/a.jsonl", Bytes::from_static(b"{\"x\":1}\n"))
            .await
            .unwrap();
        memory
            .replace("top.json", Bytes::from_static(b"[]"))
            .await
            .unwrap();
        memory
            .replace("labs/odd #1 50%.jsonl", Bytes::from_static(b"{}\n"))
            .await
            .unwrap();
        for root in [local, memory] {
            let (objects, dirs) = root.list_dir("").await.unwrap();
            assert_eq!(dirs, ["labs"], "{root:?}");
            assert_eq!(objects, [("top.json".to_owned(), 2)]);
            let (mut objects, _) = root.list_dir("labs/").await.unwrap();
            objects.sort();
            assert_eq!(
                objects,
                [
                    ("a.jsonl".to_owned(), 8),
                    ("odd #1 50%.jsonl".to_owned(), 3)
                ],
                "{root:?}"
            );
            assert_eq!(root.list_dir("nothing/").await.unwrap().0.len(), 0);
            let mut reader = root.reader("labs/a.jsonl").await.unwrap();
            let text = tokio::task::spawn_blocking(move || {
                let mut text = String::new();
                reader.read_to_string(&mut text).map(|_| text)
            })
            .await
            .unwrap()
            .unwrap();
            assert_eq!(text, "{\"x\":1}\n");
            let mut odd = root.reader("labs/odd #1 50%.jsonl").await.unwrap();
            let text = tokio::task::spawn_blocking(move || {
                let mut text = String::new();
                odd.read_to_string(&mut text).map(|_| text)
            })
            .await
            .unwrap()
            .unwrap();
            assert_eq!(text, "{}\n", "{root:?}");
            assert!(root.location("../x").is_err());
            let err = format!(
                "{:#}",
                root.reader("labs/missing.jsonl").await.err().unwrap()
            );
            assert!(
                err.contains("cannot open") && err.contains("labs/missing.jsonl"),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn a_memory_lake_keeps_its_objects_in_its_store() {
        let lake = Lake::open("memory:///lake", &HashMap::new()).unwrap();
        lake.replace("bronze/x", Bytes::from_static(b"1"))
            .await
            .unwrap();
        assert_eq!(
            lake.read("bronze/x").await.unwrap().as_deref(),
            Some(&b"1"[..])
        );
        assert_eq!(lake.location("bronze/x").unwrap().as_ref(), "lake/bronze/x");
    }
}
