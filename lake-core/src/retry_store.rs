//! [`RetryingStore`]: request-level retries for object stores without their own.
//!
//! object_store's HTTP stores (S3, GCS, Azure) already retry transient
//! failures (5xx answers, dropped connections) with bounded backoff: their
//! `RetryConfig`. A store without such a layer, or one that fails above it,
//! can be wrapped in this one so that a transient error costs one request
//! again rather than a whole stage. Stage-level retries (the pipeline's
//! [`RetryPolicy`]) then handle what is left.

use std::fmt;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use tracing::debug;

use crate::error::is_transient_store_error;
use crate::pipeline::RetryPolicy;
use crate::storage::ObjectStoreRef;

/// An object store that retries each request failing with a transient
/// error, waiting as `policy` says between attempts.
///
/// Every retried request is one that changes nothing when repeated (reads,
/// listings, puts of whole objects, copies, renames); multipart parts are
/// not retried one by one (the upload fails, and the writer starts again).
pub struct RetryingStore {
    inner: ObjectStoreRef,
    policy: RetryPolicy,
}

impl RetryingStore {
    /// Wraps `inner`.
    pub fn new(inner: ObjectStoreRef, policy: RetryPolicy) -> Self {
        Self { inner, policy }
    }

    async fn retry<T, F>(
        &self,
        operation: &str,
        attempt: impl FnMut() -> F,
    ) -> object_store::Result<T>
    where
        F: Future<Output = object_store::Result<T>>,
    {
        self.policy
            .run(
                is_transient_store_error,
                |number, e, _| {
                    debug!(operation, attempt = number, error = %e, "transient store error, retrying");
                },
                attempt,
            )
            .await
    }

    /// A listing, read whole with retries, then streamed: a listing that
    /// fails halfway cannot be resumed, so it is started again.
    fn retried_list(
        &self,
        list: impl Fn() -> BoxStream<'static, object_store::Result<ObjectMeta>> + Send + 'static,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let policy = self.policy;
        futures::stream::once(async move {
            policy
                .run(
                    is_transient_store_error,
                    |_, _, _| {},
                    move || {
                        let listing = list();
                        async move {
                            listing
                                .collect::<Vec<_>>()
                                .await
                                .into_iter()
                                .collect::<object_store::Result<Vec<ObjectMeta>>>()
                        }
                    },
                )
                .await
        })
        .flat_map(|listed| match listed {
            Ok(metas) => futures::stream::iter(metas.into_iter().map(Ok)).boxed(),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        })
        .boxed()
    }
}

impl fmt::Debug for RetryingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryingStore")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish()
    }
}

impl fmt::Display for RetryingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RetryingStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for RetryingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.retry("put", || {
            self.inner.put_opts(location, payload.clone(), opts.clone())
        })
        .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.retry("put_multipart", || {
            self.inner.put_multipart_opts(location, opts.clone())
        })
        .await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.retry("get", || self.inner.get_opts(location, options.clone()))
            .await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.retry("get_ranges", || self.inner.get_ranges(location, ranges))
            .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let inner = self.inner.clone();
        let prefix = prefix.cloned();
        self.retried_list(move || inner.list(prefix.as_ref()))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let inner = self.inner.clone();
        let prefix = prefix.cloned();
        let offset = offset.clone();
        self.retried_list(move || inner.list_with_offset(prefix.as_ref(), &offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.retry("list", || self.inner.list_with_delimiter(prefix))
            .await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.retry("copy", || self.inner.copy_opts(from, to, options.clone()))
            .await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.retry("rename", || {
            self.inner.rename_opts(from, to, options.clone())
        })
        .await
    }
}
