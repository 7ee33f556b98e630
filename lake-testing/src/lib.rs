//! Test support for the lake crates (not published).
//!
//! [`FaultyStore`] wraps any object store and fails the requests you choose,
//! so tests can prove that a write failing midway leaves every table at its
//! last committed version and that a retry completes. Faults are injected
//! only around the real store: the data path is never mocked.
//!
//! [`TestLake`] is the lake fixture of every crate's tests, [`events`]
//! builds JSON-lines records (the reference workload's among them), and the
//! `conformance` feature exports the suites a `Catalog` or a `Storage`
//! implementation must pass.

#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod docs;
pub mod events;
pub mod lake;

pub use lake::TestLake;

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use lake_core::ObjectStoreRef;
use lake_core::object_store::path::Path;
use lake_core::object_store::{
    self, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

/// Which requests fail.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum FaultPlan {
    /// Nothing fails.
    #[default]
    Healthy,
    /// Writes (put, multipart, copy, rename, delete) succeed `n` times, then
    /// every later write fails.
    FailWritesAfter(u64),
    /// Every write whose path contains `_delta_log` fails: data files land,
    /// commits do not.
    FailCommits,
    /// Each request fails with this probability, drawn from a seeded
    /// generator so a failing run can be replayed.
    FailFraction {
        /// Probability of failure, 0.0 to 1.0.
        fraction: f64,
        /// Seed of the generator.
        seed: u64,
    },
    /// Every upload is cut once `n` bytes of it went out: a put larger than
    /// that fails, and a multipart upload fails at the part that crosses
    /// it. As on S3, a cut upload leaves no object behind.
    CutWritesAfterBytes(u64),
}

/// An object store that fails requests according to a [`FaultPlan`].
pub struct FaultyStore {
    inner: ObjectStoreRef,
    plan: Mutex<FaultPlan>,
    writes: AtomicU64,
    rng: AtomicU64,
    injected: Arc<AtomicU64>,
    delay_micros: AtomicU64,
}

impl FaultyStore {
    /// Wraps `inner`, healthy until [`set_plan`](Self::set_plan) says otherwise.
    pub fn new(inner: ObjectStoreRef) -> Arc<Self> {
        Arc::new(Self {
            inner,
            plan: Mutex::new(FaultPlan::Healthy),
            writes: AtomicU64::new(0),
            rng: AtomicU64::new(0),
            injected: Arc::new(AtomicU64::new(0)),
            delay_micros: AtomicU64::new(0),
        })
    }

    /// Changes the plan; the write counter starts again from zero.
    pub fn set_plan(&self, plan: FaultPlan) {
        if let FaultPlan::FailFraction { seed, .. } = plan {
            self.rng.store(seed | 1, Ordering::SeqCst);
        }
        self.writes.store(0, Ordering::SeqCst);
        *self.plan.lock().expect("plan lock") = plan;
    }

    /// Delays every request by `delay` before it is sent (a slow network;
    /// zero turns it off). Listings start late by the same amount.
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.delay_micros
            .store(delay.as_micros() as u64, Ordering::SeqCst);
    }

    async fn pause(&self) {
        let micros = self.delay_micros.load(Ordering::SeqCst);
        if micros > 0 {
            tokio::time::sleep(std::time::Duration::from_micros(micros)).await;
        }
    }

    fn cut_after(&self) -> Option<u64> {
        match *self.plan.lock().expect("plan lock") {
            FaultPlan::CutWritesAfterBytes(n) => Some(n),
            _ => None,
        }
    }

    fn cut(&self, location: &Path, sent: u64) -> object_store::Error {
        self.injected.fetch_add(1, Ordering::SeqCst);
        object_store::Error::Generic {
            store: "FaultyStore",
            source: format!("injected fault: upload of {location} cut after {sent} bytes").into(),
        }
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    fn next_random(&self) -> f64 {
        // xorshift64*: tiny, deterministic, good enough to pick faults.
        let mut x = self.rng.load(Ordering::SeqCst);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Ordering::SeqCst);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn check(&self, operation: &str, path: &Path, write: bool) -> object_store::Result<()> {
        let plan = *self.plan.lock().expect("plan lock");
        let fail = match plan {
            FaultPlan::Healthy => false,
            FaultPlan::FailWritesAfter(n) => {
                write && self.writes.fetch_add(1, Ordering::SeqCst) >= n
            }
            FaultPlan::FailCommits => write && path.as_ref().contains("_delta_log"),
            FaultPlan::FailFraction { fraction, .. } => self.next_random() < fraction,
            FaultPlan::CutWritesAfterBytes(_) => false,
        };
        if fail {
            self.injected.fetch_add(1, Ordering::SeqCst);
            Err(object_store::Error::Generic {
                store: "FaultyStore",
                source: format!("injected fault: {operation} {path}").into(),
            })
        } else {
            Ok(())
        }
    }
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStore")
            .field("inner", &self.inner)
            .field("plan", &*self.plan.lock().expect("plan lock"))
            .finish()
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.pause().await;
        self.check("put", location, true)?;
        if let Some(limit) = self.cut_after()
            && payload.content_length() as u64 > limit
        {
            return Err(self.cut(location, limit));
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.pause().await;
        self.check("put_multipart", location, true)?;
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(match self.cut_after() {
            Some(limit) => Box::new(CutUpload {
                inner: upload,
                location: location.clone(),
                limit,
                sent: 0,
                injected: Arc::clone(&self.injected),
            }),
            None => upload,
        })
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.pause().await;
        self.check("get", location, false)?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.pause().await;
        self.check("get_ranges", location, false)?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        if let Err(e) = self.check("delete", &Path::from("delete"), true) {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let path = prefix.cloned().unwrap_or_default();
        if let Err(e) = self.check("list", &path, false) {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let path = prefix.cloned().unwrap_or_default();
        if let Err(e) = self.check("list", &path, false) {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.pause().await;
        self.check("list", &prefix.cloned().unwrap_or_default(), false)?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.pause().await;
        self.check("copy", to, true)?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.pause().await;
        self.check("rename", to, true)?;
        self.inner.rename_opts(from, to, options).await
    }
}

/// Runs `sql` over the Delta table at `location` (registered as `t`) and
/// returns one string per row, cells joined by `|`: the form table
/// assertions in tests compare. A location without a table gives no rows.
pub async fn table_rows(
    storage: &lake_core::StorageRef,
    location: &url::Url,
    sql: &str,
) -> lake_core::Result<Vec<String>> {
    use lake_core::StorageExt;
    use lake_core::arrow::util::display::array_value_to_string;
    use lake_core::datafusion::prelude::SessionContext;

    let table = storage.open_table(location).await?;
    if table.version().is_none() {
        return Ok(Vec::new());
    }
    let context = location.as_str();
    let ctx = SessionContext::new();
    let provider = lake_core::delta_provider(&ctx, &table, context).await?;
    ctx.register_table("t", provider)
        .map_err(|e| lake_core::LakeError::datafusion(context, e))?;
    let batches = ctx
        .sql(sql)
        .await
        .map_err(|e| lake_core::LakeError::datafusion(context, e))?
        .collect()
        .await
        .map_err(|e| lake_core::LakeError::datafusion(context, e))?;
    let mut out = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let cells = batch
                .columns()
                .iter()
                .map(|c| array_value_to_string(c, row))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| lake_core::LakeError::arrow(context, e))?;
            out.push(cells.join("|"));
        }
    }
    Ok(out)
}

/// A multipart upload that fails at the part crossing `limit` bytes; the
/// object never becomes visible because `complete` is never reached.
#[derive(Debug)]
struct CutUpload {
    inner: Box<dyn MultipartUpload>,
    location: Path,
    limit: u64,
    sent: u64,
    injected: Arc<AtomicU64>,
}

#[async_trait]
impl MultipartUpload for CutUpload {
    fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
        self.sent += data.content_length() as u64;
        if self.sent > self.limit {
            self.injected.fetch_add(1, Ordering::SeqCst);
            let error = object_store::Error::Generic {
                store: "FaultyStore",
                source: format!(
                    "injected fault: upload of {} cut after {} bytes",
                    self.location, self.limit
                )
                .into(),
            };
            return Box::pin(async move { Err(error) });
        }
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        if self.sent > self.limit {
            return Err(object_store::Error::Generic {
                store: "FaultyStore",
                source: format!("injected fault: upload of {} was cut", self.location).into(),
            });
        }
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}

/// The environment variable holding the endpoint of the `moto_server` that
/// S3 and Glue tests use; `scripts/test` starts one and sets it.
pub const MOTO_ENDPOINT_VAR: &str = "LAKE_MOTO_ENDPOINT";

/// The endpoint of the running `moto_server`, after checking that something
/// listens there.
///
/// # Panics
/// When the variable is unset or nothing answers, with a message saying how
/// to start one: a test that needs AWS never passes without it.
pub fn moto_endpoint() -> String {
    const HOW: &str = "run the tests with `bash scripts/test`, which starts moto_server, \
         or start one yourself (`pip install 'moto[server]' && moto_server -H 127.0.0.1 -p 5055`) \
         and set LAKE_MOTO_ENDPOINT=http://127.0.0.1:5055";
    let endpoint = std::env::var(MOTO_ENDPOINT_VAR).unwrap_or_else(|_| {
        panic!("this test needs a moto_server and {MOTO_ENDPOINT_VAR} is not set: {HOW}")
    });
    let url = url::Url::parse(&endpoint)
        .unwrap_or_else(|e| panic!("{MOTO_ENDPOINT_VAR}={endpoint:?} is not a URL ({e}): {HOW}"));
    let address = url
        .socket_addrs(|| Some(80))
        .ok()
        .and_then(|a| a.into_iter().next())
        .unwrap_or_else(|| {
            panic!("{MOTO_ENDPOINT_VAR}={endpoint:?} names no reachable host: {HOW}")
        });
    if let Err(e) =
        std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(2))
    {
        panic!("no moto_server answers at {endpoint} ({e}): {HOW}");
    }
    endpoint.trim_end_matches('/').to_string()
}

/// A name no other test of this process or of a concurrent one uses: a
/// lower-case letter, then hex digits (valid as an S3 bucket, Glue database
/// or identifier fragment).
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    format!(
        "{prefix}{:x}{:x}{:x}",
        std::process::id(),
        nanos & 0xffff_ffff,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a new, uniquely named bucket on the `moto_server` at `endpoint`
/// and returns its name.
///
/// object_store cannot create buckets and a whole AWS SDK is not worth it
/// for one request, so this speaks one plain HTTP/1.1 `PUT /{bucket}` (moto
/// does not check signatures).
///
/// # Panics
/// When moto does not answer 200.
pub fn moto_bucket(endpoint: &str) -> String {
    use std::io::{Read, Write};
    let bucket = unique_name("lake-test-");
    let url = url::Url::parse(endpoint).expect("a moto endpoint URL");
    let host = format!(
        "{}:{}",
        url.host_str().expect("a host"),
        url.port_or_known_default().expect("a port")
    );
    let mut stream = std::net::TcpStream::connect(&host)
        .unwrap_or_else(|e| panic!("no moto_server at {endpoint}: {e}"));
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send CreateBucket");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read CreateBucket");
    assert!(
        response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
        "moto refused bucket {bucket}: {response}"
    );
    bucket
}

/// Storage for a lake at `s3://{new bucket}/lake` on the `moto_server`
/// that `scripts/test` starts (needs lake-core's `aws` feature).
pub fn moto_storage() -> lake_core::ObjectStorage {
    let endpoint = moto_endpoint();
    let bucket = moto_bucket(&endpoint);
    lake_core::ObjectStorage::from_url_opts(
        &format!("s3://{bucket}/lake"),
        moto_s3_options(&endpoint),
    )
    .unwrap_or_else(|e| panic!("storage on moto bucket {bucket}: {e}"))
}

/// The object_store options that reach the `moto_server` at `endpoint`.
pub fn moto_s3_options(endpoint: &str) -> Vec<(String, String)> {
    [
        ("aws_endpoint", endpoint),
        ("aws_allow_http", "true"),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", "testing"),
        ("aws_secret_access_key", "testing"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// `items` in an order shuffled deterministically from `seed` (xorshift),
/// for property tests that deliver the same events in another order.
pub fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut out = items.to_vec();
    let mut state = seed | 1;
    for i in (1..out.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.swap(i, (state % (i as u64 + 1)) as usize);
    }
    out
}
