//! Test helpers (feature `test-util`): an `ObjectStore` wrapper that injects faults.
//!
//! [`FaultyStore`] follows a deterministic plan over the sequence of store calls it sees:
//! fail one call, "crash" from some call on (every later call fails, as if the process had
//! died), make one put ambiguous (the object is written, then an error is reported), or
//! add latency to every call. It counts requests by kind ([`RequestCounts`]) for round-trip
//! budgets. With no faults it forwards everything unchanged. Crash-point
//! sweeps run an operation once to count its calls `k`, then replay it with a crash at
//! each index `0..k` and check that the table is at version `v` or `v + 1`, never torn.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// What the store does at a call index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    /// Nothing: forward the call.
    #[default]
    None,
    /// Fail this call only.
    FailAt(usize),
    /// Fail this call and every later one (a crash).
    CrashAt(usize),
    /// If this call is a put, perform it and then report an error.
    AmbiguousPutAt(usize),
}

/// Requests a [`FaultyStore`] has seen, by kind (a listing counts once however many pages
/// it has; a bulk delete counts once however many objects it names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// Whole or ranged reads and HEADs (`get_opts`, `get_ranges`).
    pub gets: u64,
    /// Puts and multipart upload starts.
    pub puts: u64,
    /// Listings (`list`, `list_with_offset`, `list_with_delimiter`).
    pub lists: u64,
    /// Delete streams.
    pub deletes: u64,
    /// Copies.
    pub copies: u64,
}

impl RequestCounts {
    /// All requests.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.gets + self.puts + self.lists + self.deletes + self.copies
    }
}

/// What a call is, for [`RequestCounts`].
#[derive(Clone, Copy, Debug)]
enum Kind {
    Get,
    Put,
    List,
    Delete,
    Copy,
}

/// An `ObjectStore` wrapper with deterministic fault injection and optional latency.
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    fault: Fault,
    calls: AtomicUsize,
    latency: Duration,
    requests: AtomicU64,
    /// gets, puts, lists, deletes, copies.
    by_kind: [AtomicU64; 5],
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStore")
            .field("fault", &self.fault)
            .field("calls", &self.calls.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

impl FaultyStore {
    /// Wrap `inner` with `fault`.
    #[must_use]
    pub fn new(inner: Arc<dyn ObjectStore>, fault: Fault) -> Self {
        Self {
            inner,
            fault,
            calls: AtomicUsize::new(0),
            latency: Duration::ZERO,
            requests: AtomicU64::new(0),
            by_kind: Default::default(),
        }
    }

    /// Add `latency` before every call (to model a remote store).
    #[must_use]
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// How many calls the store has seen.
    #[must_use]
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Requests made (list pages count once), for round-trip budgets.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Requests made, by kind.
    #[must_use]
    pub fn request_counts(&self) -> RequestCounts {
        let load = |kind: Kind| self.by_kind[kind as usize].load(Ordering::SeqCst);
        RequestCounts {
            gets: load(Kind::Get),
            puts: load(Kind::Put),
            lists: load(Kind::List),
            deletes: load(Kind::Delete),
            copies: load(Kind::Copy),
        }
    }

    /// Count a call of `kind` without waiting; `true` when the plan fails it.
    fn count(&self, kind: Kind) -> (usize, bool) {
        let index = self.calls.fetch_add(1, Ordering::SeqCst);
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.by_kind[kind as usize].fetch_add(1, Ordering::SeqCst);
        let fail = match self.fault {
            Fault::FailAt(n) => n == index,
            Fault::CrashAt(n) => index >= n,
            _ => false,
        };
        (index, fail)
    }

    fn injected(what: &str, index: usize) -> object_store::Error {
        object_store::Error::Generic {
            store: "FaultyStore",
            source: format!("injected fault in {what} (call {index})").into(),
        }
    }

    /// Count a call, wait the latency; `Err` when the plan fails it. Returns the call's
    /// index.
    async fn enter(&self, kind: Kind, what: &str) -> Result<usize> {
        let (index, fail) = self.count(kind);
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        if fail {
            Err(Self::injected(what, index))
        } else {
            Ok(index)
        }
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let index = self.enter(Kind::Put, "put").await?;
        let result = self.inner.put_opts(location, payload, opts).await;
        if self.fault == Fault::AmbiguousPutAt(index) && result.is_ok() {
            return Err(Self::injected("put (after writing)", index));
        }
        result
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.enter(Kind::Put, "put_multipart").await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.enter(Kind::Get, "get").await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.enter(Kind::Get, "get_ranges").await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let (index, fail) = self.count(Kind::Delete);
        if fail {
            let error = Self::injected("delete", index);
            return futures::stream::once(async move { Err(error) }).boxed();
        }
        let inner = self.inner.delete_stream(locations);
        let latency = self.latency;
        if latency.is_zero() {
            inner
        } else {
            futures::stream::once(async move {
                tokio::time::sleep(latency).await;
                inner
            })
            .flatten()
            .boxed()
        }
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let (index, fail) = self.count(Kind::List);
        if fail {
            let error = Self::injected("list", index);
            return futures::stream::once(async move { Err(error) }).boxed();
        }
        let inner = self.inner.list(prefix);
        let latency = self.latency;
        if latency.is_zero() {
            inner
        } else {
            futures::stream::once(async move {
                tokio::time::sleep(latency).await;
                inner
            })
            .flatten()
            .boxed()
        }
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let (index, fail) = self.count(Kind::List);
        if fail {
            let error = Self::injected("list", index);
            return futures::stream::once(async move { Err(error) }).boxed();
        }
        let inner = self.inner.list_with_offset(prefix, offset);
        let latency = self.latency;
        if latency.is_zero() {
            inner
        } else {
            futures::stream::once(async move {
                tokio::time::sleep(latency).await;
                inner
            })
            .flatten()
            .boxed()
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.enter(Kind::List, "list_with_delimiter").await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.enter(Kind::Copy, "copy").await?;
        self.inner.copy_opts(from, to, options).await
    }
}
