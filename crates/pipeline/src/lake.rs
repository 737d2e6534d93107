//! The lakehouse root: one object store and the URL under which every layer's tables live
//! (`<lake>/<layer>/<table>`), local or remote.
//!
//! All tables of a lake share one store client (one connection pool for S3 or Azure), and
//! the pipeline's own bookkeeping objects (the bronze ingest ledger) go through the same
//! store, so a fault-injecting or latency-adding store wraps a whole run.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use delta_core::Table;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
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
        let url = self
            .root
            .join(relative)
            .with_context(|| format!("bad lake path {relative}"))?;
        Path::from_url_path(url.path()).with_context(|| format!("bad lake path {url}"))
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
