//! OpenLineage run events for every stage a [`Pipeline`](crate::Pipeline) runs.
//!
//! A pipeline given sinks ([`PipelineBuilder::with_lineage`](crate::PipelineBuilder::with_lineage))
//! sends each sink, for every stage it runs, a `START` event before the stage
//! and a `COMPLETE` or `FAIL` event after it, in the
//! [OpenLineage](https://openlineage.io/docs/spec/object-model) object model:
//!
//! - **job**: namespace [`LineageOptions::job_namespace`] (the lake root by
//!   default), name the stage's name, with a `jobType` facet (`BATCH`,
//!   integration `LAKE`, job type `INGEST`, `REFINE` or `AGGREGATE`);
//! - **run**: a run id of its own per stage run, with a `parent` facet naming
//!   the pipeline run (job `pipeline`, the uuid of the run recorded in
//!   `_metadata/runs`) and a `processing_engine` facet (`lake` and its version);
//!   a `FAIL` event carries an `errorMessage` facet with the error, one cause a line;
//! - **datasets**: namespace the lake root, name the table id
//!   (`bronze.shop.orders`), or the folder under the root for the tables
//!   that have none (`_dlq/bronze/shop/orders`, `_quarantine/sales/orders`).
//!   A delivered file is named as OpenLineage names files (namespace
//!   `file`, name its absolute path; an object by its bucket and key).
//!   `COMPLETE` gives each dataset the Delta version read or written
//!   (`version`), each written table its `schema`, and the rows read
//!   (`inputStatistics`) and written (`outputStatistics`).
//!
//! Two sinks come with the crate: [`FileLineageSink`], one JSON file per
//! event under `_metadata/lineage/`, and [`HttpLineageSink`], which posts
//! each event to an OpenLineage endpoint (Marquez's `/api/v1/lineage`).
//!
//! # Failure
//! Lineage is part of a run's record, so an event a sink refuses is not
//! dropped: the pipeline retries it under its [`RetryPolicy`](crate::RetryPolicy)
//! when the error is retryable, and otherwise fails the run. A `START` that
//! cannot be sent stops the stage before it runs. A `COMPLETE` that cannot
//! be sent fails the run after the stage committed; running again is a
//! no-op for the data that sends the events of that new run. When the stage itself failed,
//! its error is returned and a `FAIL` that cannot be sent is logged beside it.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{Field, SchemaRef};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use openlineage_client::facets::{
    BaseFacet, DatasetFacets, ErrorMessageRunFacet, InputDatasetFacets,
    InputStatisticsInputDatasetFacet, JobFacets, JobTypeJobFacet, OutputDatasetFacets,
    OutputStatisticsOutputDatasetFacet, ParentJob, ParentRun, ParentRunFacet,
    ProcessingEngineRunFacet, RunFacets, SchemaDatasetFacet, SchemaField,
};
use openlineage_client::{Dataset, Job, Run, RunEvent, RunEventType};
use url::Url;
use uuid::Uuid;

use crate::catalog::CatalogRef;
use crate::error::{LakeError, Result};
use crate::ident::TableId;
use crate::report::StageOutcome;
use crate::stage::{Payload, RawBatch};
use crate::storage::{StorageExt, StorageRef};

/// The `producer` of every event and facet this crate writes.
pub const PRODUCER: &str = concat!(
    "https://docs.rs/lake-core/",
    env!("CARGO_PKG_VERSION"),
    "/lake_core/lineage/"
);

/// The folder under `_metadata/` that [`FileLineageSink`] writes to.
pub const LINEAGE: &str = "lineage";

/// The path OpenLineage's HTTP transport posts to by default (Marquez's).
pub const DEFAULT_ENDPOINT: &str = "api/v1/lineage";

const SPEC: &str = "https://openlineage.io/spec";
const SCHEMA_FACET: &str = "facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet";
const VERSION_FACET: &str =
    "facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet";
const OUTPUT_STATISTICS_FACET: &str = "facets/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet";
const INPUT_STATISTICS_FACET: &str =
    "facets/1-0-0/InputStatisticsInputDatasetFacet.json#/$defs/InputStatisticsInputDatasetFacet";
const ERROR_FACET: &str = "facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";
const PARENT_FACET: &str = "facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet";
const ENGINE_FACET: &str =
    "facets/1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet";
const JOB_TYPE_FACET: &str = "facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet";

/// The job name of the pipeline run every stage run names as its parent.
pub const PIPELINE_JOB: &str = "pipeline";

/// A shared lineage sink.
pub type LineageSinkRef = Arc<dyn LineageSink>;

/// Where a pipeline sends its OpenLineage events.
///
/// # Contract
/// - [`emit`](Self::emit) returns `Ok` only once the event is stored or
///   delivered: a pipeline that got `Ok` does not keep the event anywhere.
/// - An error says whether sending the same event again can succeed
///   ([`LakeError::is_retryable`]), so the pipeline's retry policy applies.
/// - The same event may be emitted twice (a retry after an answer was
///   lost); a sink keys what it stores by the event's run id, type and
///   time, so a second copy replaces the first.
/// - `emit` must not block the async runtime's worker threads.
///
/// The `lineage` tests of `lake-core` run each sink of the crate against a
/// real filesystem and a real HTTP server on loopback.
#[async_trait]
pub trait LineageSink: Send + Sync + Debug {
    /// Where the sink sends events, for errors and logs.
    fn describe(&self) -> String;

    /// Stores or delivers one event.
    async fn emit(&self, event: &RunEvent) -> Result<()>;
}

/// Options of the events a pipeline sends; grows without breaking callers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LineageOptions {
    /// The namespace of every job (default: the lake root, the namespace
    /// of the datasets too).
    pub job_namespace: Option<String>,
}

impl LineageOptions {
    /// Jobs in `namespace` (a scheduler's, say) rather than the lake root.
    pub fn with_job_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.job_namespace = Some(namespace.into());
        self
    }
}

/// Writes each event as one JSON file under `_metadata/lineage/`:
/// `{date}/{event time}-{run id}-{event type}.json`, so a folder lists a
/// day's events in the order they happened.
#[derive(Debug, Clone)]
pub struct FileLineageSink {
    storage: StorageRef,
}

impl FileLineageSink {
    /// A sink writing under the lake root of `storage`.
    pub fn new(storage: StorageRef) -> Self {
        Self { storage }
    }

    fn folder(&self) -> Url {
        self.storage
            .layout()
            .metadata_root()
            .join(&format!("{LINEAGE}/"))
            .expect("a fixed relative path joins a folder URL")
    }
}

#[async_trait]
impl LineageSink for FileLineageSink {
    fn describe(&self) -> String {
        self.folder().to_string()
    }

    async fn emit(&self, event: &RunEvent) -> Result<()> {
        let time = DateTime::parse_from_rfc3339(&event.event_time)
            .map_err(|e| LakeError::Lineage {
                sink: self.describe(),
                message: format!("event time {:?} is not RFC 3339: {e}", event.event_time),
                retryable: false,
            })?
            .with_timezone(&Utc);
        let name = format!(
            "{}/{}-{}-{}.json",
            time.format("%Y-%m-%d"),
            time.format("%Y%m%dT%H%M%S%.6fZ"),
            event.run.run_id,
            event_type(event.event_type),
        );
        let url = self.folder().join(&name).map_err(|e| LakeError::Lineage {
            sink: self.describe(),
            message: format!("file name {name}: {e}"),
            retryable: false,
        })?;
        let body = serde_json::to_vec(event).map_err(|e| LakeError::other("lineage event", e))?;
        let path = self.storage.object_path(&url)?;
        self.storage
            .object_store()
            .put(&path, Bytes::from(body).into())
            .await
            .map_err(|e| LakeError::storage(url.as_str(), e))?;
        Ok(())
    }
}

/// Reads every event [`FileLineageSink`] wrote under the lake root of
/// `storage`, in the order they happened.
pub async fn read_events(storage: &StorageRef) -> Result<Vec<RunEvent>> {
    let folder = FileLineageSink::new(Arc::clone(storage)).folder();
    let prefix = storage.object_path(&folder)?;
    let store = storage.object_store();
    let mut files: Vec<_> = store
        .list(Some(&prefix))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .map_err(|e| LakeError::storage(folder.as_str(), e))?;
    files.sort();
    let mut events = Vec::with_capacity(files.len());
    for file in files {
        let bytes = store
            .get(&file)
            .await
            .map_err(|e| LakeError::storage(file.as_ref(), e))?
            .bytes()
            .await
            .map_err(|e| LakeError::storage(file.as_ref(), e))?;
        let event = serde_json::from_slice(&bytes).map_err(|e| LakeError::Lineage {
            sink: folder.to_string(),
            message: format!("{file} is not an OpenLineage run event: {e}"),
            retryable: false,
        })?;
        events.push(event);
    }
    events.sort_by(|a: &RunEvent, b: &RunEvent| a.event_time.cmp(&b.event_time));
    Ok(events)
}

/// Posts each event as JSON to an OpenLineage HTTP endpoint (Marquez,
/// or any server of the OpenLineage API), as OpenLineage's own HTTP
/// transport does: `POST {url}/api/v1/lineage` with an optional bearer
/// token.
///
/// A 2xx answer is success; a 429, a 5xx or a failed connection is a
/// retryable error; any other answer is an error naming the status and
/// the start of the body.
#[derive(Debug, Clone)]
pub struct HttpLineageSink {
    client: reqwest::Client,
    endpoint: Url,
    api_key: Option<String>,
    timeout: Duration,
}

impl HttpLineageSink {
    /// Posts to `{url}/api/v1/lineage`.
    pub fn new(url: Url) -> Self {
        let endpoint = join_endpoint(&url, DEFAULT_ENDPOINT);
        Self {
            client: reqwest::Client::new(),
            endpoint,
            api_key: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// The sink `OPENLINEAGE_URL` names, if it is set, with
    /// `OPENLINEAGE_ENDPOINT` (the path, default `api/v1/lineage`) and
    /// `OPENLINEAGE_API_KEY` (a bearer token): the variables every
    /// OpenLineage client reads.
    pub fn from_env() -> Result<Option<Self>> {
        let Ok(url) = std::env::var("OPENLINEAGE_URL") else {
            return Ok(None);
        };
        let base = Url::parse(&url).map_err(|e| {
            LakeError::config("OPENLINEAGE_URL", format!("{url:?} is not a URL: {e}"))
        })?;
        let mut sink = Self::new(base.clone());
        if let Ok(endpoint) = std::env::var("OPENLINEAGE_ENDPOINT") {
            sink.endpoint = join_endpoint(&base, &endpoint);
        }
        if let Ok(key) = std::env::var("OPENLINEAGE_API_KEY") {
            sink.api_key = Some(key);
        }
        Ok(Some(sink))
    }

    /// Posts to `path` under the URL rather than `api/v1/lineage`.
    pub fn with_endpoint(mut self, base: &Url, path: &str) -> Self {
        self.endpoint = join_endpoint(base, path);
        self
    }

    /// Sends `Authorization: Bearer {key}`.
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// How long one post may take (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The URL events are posted to.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }
}

fn join_endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url.set_path(&joined);
    url
}

#[async_trait]
impl LineageSink for HttpLineageSink {
    fn describe(&self) -> String {
        self.endpoint.to_string()
    }

    async fn emit(&self, event: &RunEvent) -> Result<()> {
        let what = format!(
            "{} event of run {} (job {})",
            event_type(event.event_type),
            event.run.run_id,
            event.job.name
        );
        let mut request = self
            .client
            .post(self.endpoint.clone())
            .timeout(self.timeout)
            .json(event);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let answer = request.send().await.map_err(|e| LakeError::Lineage {
            sink: self.describe(),
            message: format!("{what} not sent: {e}"),
            retryable: true,
        })?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        let body = answer.text().await.unwrap_or_default();
        let body: String = body.chars().take(200).collect();
        Err(LakeError::Lineage {
            sink: self.describe(),
            message: format!("{what} refused with {status}: {body}"),
            retryable: status.is_server_error() || status.as_u16() == 429,
        })
    }
}

fn event_type(kind: RunEventType) -> &'static str {
    match kind {
        RunEventType::Start => "START",
        RunEventType::Running => "RUNNING",
        RunEventType::Complete => "COMPLETE",
        RunEventType::Abort => "ABORT",
        RunEventType::Fail => "FAIL",
        RunEventType::Other => "OTHER",
    }
}

fn facet(schema: &str) -> BaseFacet {
    BaseFacet {
        producer: PRODUCER.to_string(),
        schema_url: format!("{SPEC}/{schema}"),
    }
}

/// What kind of stage a run is of: the `jobType` facet's job type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StageKind {
    Ingest,
    Refine,
    Aggregate,
}

impl StageKind {
    fn job_type(self) -> &'static str {
        match self {
            StageKind::Ingest => "INGEST",
            StageKind::Refine => "REFINE",
            StageKind::Aggregate => "AGGREGATE",
        }
    }
}

/// The events of one stage run: one run id, one job, the datasets named
/// at the start.
#[derive(Debug)]
pub(crate) struct StageEvents {
    run_id: Uuid,
    job: Job,
    parent: ParentRunFacet,
    root: String,
    inputs: Vec<Dataset>,
    outputs: Vec<Dataset>,
}

impl StageEvents {
    /// The events of stage `name` of pipeline run `pipeline_run`, reading
    /// `inputs` and writing `target`.
    pub(crate) fn new(
        options: &LineageOptions,
        root: &Url,
        pipeline_run: &str,
        kind: StageKind,
        name: &str,
        inputs: Vec<Dataset>,
        target: &TableId,
    ) -> Self {
        let root = root.to_string();
        let namespace = options
            .job_namespace
            .clone()
            .unwrap_or_else(|| root.clone());
        // The run records' id ends in a uuid (`{time}-{uuid}`): the parent
        // run of lineage is that run, under the id OpenLineage wants.
        let parent_id = pipeline_run
            .rsplit('-')
            .next()
            .and_then(|tail| Uuid::parse_str(tail).ok())
            .unwrap_or_else(|| Uuid::new_v5(&Uuid::NAMESPACE_OID, pipeline_run.as_bytes()));
        let job = Job {
            namespace: namespace.clone(),
            name: name.to_string(),
            facets: JobFacets {
                job_type: Some(JobTypeJobFacet {
                    base: facet(JOB_TYPE_FACET),
                    processing_type: "BATCH".into(),
                    integration: "LAKE".into(),
                    job_type: kind.job_type().into(),
                }),
                ..JobFacets::default()
            },
        };
        Self {
            run_id: Uuid::new_v4(),
            job,
            parent: ParentRunFacet {
                base: facet(PARENT_FACET),
                run: ParentRun {
                    run_id: parent_id.to_string(),
                },
                job: ParentJob {
                    namespace,
                    name: PIPELINE_JOB.into(),
                },
                root: None,
            },
            outputs: vec![dataset(&root, &target.to_string())],
            root,
            inputs,
        }
    }

    /// The `START` event.
    pub(crate) fn start(&self) -> RunEvent {
        self.event(
            RunEventType::Start,
            self.inputs.clone(),
            self.outputs.clone(),
            None,
        )
    }

    /// The `FAIL` event for `error`.
    pub(crate) fn fail(&self, error: &LakeError) -> RunEvent {
        let message = crate::error::error_lines(error).join("\n");
        self.event(
            RunEventType::Fail,
            self.inputs.clone(),
            self.outputs.clone(),
            Some(ErrorMessageRunFacet {
                base: facet(ERROR_FACET),
                message,
                programming_language: "RUST".into(),
                stack_trace: None,
            }),
        )
    }

    /// The `COMPLETE` event for what the stage reported, with the schemas
    /// of the tables it wrote.
    pub(crate) async fn complete(
        &self,
        outcome: &StageOutcome,
        storage: &StorageRef,
        catalog: Option<&CatalogRef>,
    ) -> Result<RunEvent> {
        let root = &self.root;
        let (inputs, mut outputs) = match outcome {
            StageOutcome::Ingest(report) => {
                let mut target = dataset(root, &report.table.to_string());
                versioned(&mut target, report.table_version);
                written(&mut target, report.rows_written);
                let mut outputs = vec![target];
                if report.dead_lettered > 0 {
                    let mut dlq = dataset(
                        root,
                        &relative(root, &storage.layout().dead_letter(&report.table)),
                    );
                    written(&mut dlq, report.dead_lettered);
                    outputs.push(dlq);
                }
                (self.inputs.clone(), outputs)
            }
            StageOutcome::Refine(report) => {
                let inputs = source_datasets(root, &report.source_versions, report.rows_read);
                let target = report.table.to_string();
                let quarantine = format!("quarantine of {target}");
                let mut outputs = vec![dataset(root, &target)];
                versioned(&mut outputs[0], report.table_versions.get(&target).copied());
                written(&mut outputs[0], report.rows_written);
                for (table, version) in &report.table_versions {
                    if *table == target {
                        continue;
                    }
                    let mut output = if *table == quarantine {
                        let mut q = dataset(
                            root,
                            &relative(root, &storage.layout().quarantine(&report.table)),
                        );
                        written(&mut q, report.quarantined);
                        q
                    } else {
                        dataset(root, table)
                    };
                    versioned(&mut output, Some(*version));
                    outputs.push(output);
                }
                (inputs, outputs)
            }
            StageOutcome::Aggregate(report) => {
                let inputs = source_datasets(root, &report.source_versions, report.rows_read);
                let mut target = dataset(root, &report.table.to_string());
                versioned(&mut target, report.table_version);
                written(&mut target, report.rows_written);
                (inputs, vec![target])
            }
        };
        for output in &mut outputs {
            if let Ok(table) = output.name.parse::<TableId>()
                && let Some(schema) = table_schema(storage, catalog, &table).await?
            {
                output.facets.schema = Some(schema_facet(&schema));
            }
        }
        let inputs = if inputs.is_empty() {
            self.inputs.clone()
        } else {
            inputs
        };
        Ok(self.event(RunEventType::Complete, inputs, outputs, None))
    }

    fn event(
        &self,
        kind: RunEventType,
        inputs: Vec<Dataset>,
        outputs: Vec<Dataset>,
        error: Option<ErrorMessageRunFacet>,
    ) -> RunEvent {
        RunEvent {
            event_type: kind,
            event_time: Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
            run: Run {
                run_id: self.run_id,
                facets: RunFacets {
                    processing_engine: Some(ProcessingEngineRunFacet {
                        base: facet(ENGINE_FACET),
                        version: env!("CARGO_PKG_VERSION").into(),
                        name: "lake".into(),
                        openlineage_adapter_version: env!("CARGO_PKG_VERSION").into(),
                    }),
                    parent: Some(self.parent.clone()),
                    error_message: error,
                    ..RunFacets::default()
                },
            },
            job: self.job.clone(),
            inputs,
            outputs,
            producer: PRODUCER.into(),
            schema_url: openlineage_client::event::RUN_EVENT_SCHEMA_URL.into(),
        }
    }
}

/// The dataset a delivered batch is read from, named as OpenLineage names
/// files and objects; a batch handed over in memory is named by its
/// source file name in the namespace `lake-delivery`.
pub(crate) fn batch_dataset(batch: &RawBatch) -> Dataset {
    let (namespace, name) = match &batch.payload {
        Payload::File(path) => (
            "file".to_string(),
            std::path::absolute(path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string(),
        ),
        _ => match Url::parse(&batch.source_file) {
            Ok(url) if url.has_host() => (
                format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()),
                url.path().trim_start_matches('/').to_string(),
            ),
            _ => ("lake-delivery".to_string(), batch.source_file.clone()),
        },
    };
    Dataset {
        namespace,
        name,
        facets: DatasetFacets::default(),
        input_facets: None,
        output_facets: None,
    }
}

/// The dataset of a table, named by its id in the lake root's namespace.
pub(crate) fn table_dataset(root: &Url, table: &TableId) -> Dataset {
    dataset(root.as_str(), &table.to_string())
}

fn dataset(namespace: &str, name: &str) -> Dataset {
    Dataset {
        namespace: namespace.to_string(),
        name: name.to_string(),
        facets: DatasetFacets::default(),
        input_facets: None,
        output_facets: None,
    }
}

fn relative(root: &str, location: &Url) -> String {
    location
        .as_str()
        .strip_prefix(root)
        .unwrap_or(location.as_str())
        .trim_end_matches('/')
        .to_string()
}

/// The source tables a stage read, each at the last version it read; the
/// rows read are known per source only when there is one.
fn source_datasets(
    root: &str,
    sources: &BTreeMap<String, crate::stage::VersionRange>,
    rows_read: u64,
) -> Vec<Dataset> {
    let single = sources.len() == 1;
    sources
        .iter()
        .map(|(table, range)| {
            let mut input = dataset(root, table);
            versioned(&mut input, Some(range.last));
            if single {
                read(&mut input, rows_read);
            }
            input
        })
        .collect()
}

fn versioned(dataset: &mut Dataset, version: Option<u64>) {
    if let Some(version) = version {
        let facet = serde_json::json!({
            "_producer": PRODUCER,
            "_schemaURL": format!("{SPEC}/{VERSION_FACET}"),
            "datasetVersion": version.to_string(),
        });
        dataset.facets.extra.insert("version".into(), facet);
    }
}

fn written(dataset: &mut Dataset, rows: u64) {
    dataset.output_facets = Some(OutputDatasetFacets {
        output_statistics: Some(OutputStatisticsOutputDatasetFacet {
            base: facet(OUTPUT_STATISTICS_FACET),
            row_count: Some(rows as i64),
            size: None,
            file_count: None,
        }),
        ..OutputDatasetFacets::default()
    });
}

fn read(dataset: &mut Dataset, rows: u64) {
    dataset.input_facets = Some(InputDatasetFacets {
        input_statistics: Some(InputStatisticsInputDatasetFacet {
            base: facet(INPUT_STATISTICS_FACET),
            row_count: Some(rows as i64),
            size: None,
            file_count: None,
        }),
        ..InputDatasetFacets::default()
    });
}

/// The schema of `table`: the catalog's when there is one, else the
/// Delta table's; `None` when the table does not exist (yet).
async fn table_schema(
    storage: &StorageRef,
    catalog: Option<&CatalogRef>,
    table: &TableId,
) -> Result<Option<SchemaRef>> {
    if let Some(catalog) = catalog {
        match catalog.get_table(table).await {
            Ok(definition) => return Ok(Some(definition.schema)),
            Err(LakeError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let location = storage.layout().table_location(table);
    match storage.open_table(&location).await {
        Ok(opened) => Ok(opened
            .snapshot()
            .ok()
            .map(|state| state.snapshot().arrow_schema())),
        Err(LakeError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn schema_facet(schema: &SchemaRef) -> SchemaDatasetFacet {
    SchemaDatasetFacet {
        base: facet(SCHEMA_FACET),
        fields: schema.fields().iter().map(|f| schema_field(f)).collect(),
    }
}

/// One field; a nested type is spelled out in `type` (the facet of this
/// client has no nested fields), and a personal-data tag becomes the
/// description.
fn schema_field(field: &Field) -> SchemaField {
    SchemaField {
        name: field.name().clone(),
        type_: field.data_type().to_string(),
        description: field
            .metadata()
            .get(crate::pii::PII_METADATA)
            .map(|tag| format!("personal data, {tag}")),
    }
}
