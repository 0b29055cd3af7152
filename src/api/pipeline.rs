//! `POST /api/v1/jobs/pipeline`: the document pipeline (processing →
//! taxonomy → extraction → dataset) submitted in one call, as four jobs
//! chained by `depends_on`, so the store runs each stage once the previous
//! ones completed and cancels the rest when one fails.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::audit::Requester;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::JsonBody;
use super::jobs::{Dependency, SubmitRequest, submit_together};
use super::state::AppState;
use crate::model::audit::AuditAction;
use crate::model::{JobId, NewJob};
use crate::pipeline::STAGES;

/// Body of the pipeline call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PipelineRequest {
    /// Inline documents.
    pub documents: Option<Vec<InlineDocument>>,
    /// Or a file or directory under the server's documents root (a 400
    /// when the server has none: reading files is off by default).
    pub path: Option<String>,
    /// Owner of the four jobs.
    pub user_id: Option<String>,
    /// Chunk size in characters, for document processing.
    #[schema(format = "uint64")]
    pub chunk_size: Option<u64>,
    /// Chunk overlap in characters, for document processing.
    #[schema(format = "uint64")]
    pub chunk_overlap: Option<u64>,
    /// Dataset format: `jsonl` (default) or `csv`.
    pub format: Option<String>,
    /// Seed of the train/validation shuffle.
    #[schema(format = "uint64")]
    pub seed: Option<u64>,
    /// Share of records in the validation split.
    pub validation_fraction: Option<f64>,
}

/// A document given in the request, as `document_processing` reads it.
/// Unknown fields are a 400, like everywhere else.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InlineDocument {
    /// Its name, unique in the request (default `inline-{i}`); its
    /// extension gives the format unless `format` does.
    pub name: Option<String>,
    /// Its text.
    pub text: String,
    /// `text`, `markdown` or `html`.
    pub format: Option<String>,
}

impl InlineDocument {
    /// The document as the job's parameters carry it.
    fn to_value(&self) -> Value {
        parameters(&[
            ("name", self.name.clone().map(Value::from)),
            ("text", Some(Value::from(self.text.clone()))),
            ("format", self.format.clone().map(Value::from)),
        ])
    }
}

/// The four jobs, by stage, in order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct PipelineResponse {
    /// Job id per stage name.
    #[schema(value_type = std::collections::BTreeMap<String, uuid::Uuid>)]
    pub jobs: Map<String, Value>,
    /// The ids in stage order.
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub job_ids: Vec<JobId>,
}

/// Keeps the given fields of `source` that are set.
fn parameters(fields: &[(&str, Option<Value>)]) -> Value {
    Value::Object(
        fields
            .iter()
            .filter_map(|(name, value)| value.clone().map(|v| (name.to_string(), v)))
            .collect(),
    )
}

/// `POST /api/v1/jobs/pipeline`: 201 with the four job ids.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/pipeline",
    tag = "jobs",
    summary = "Submit the document pipeline",
    description = "Four jobs chained by `depends_on`: `document_processing`, \
        `taxonomy_processing`, `extraction`, `dataset_generation`. Give `documents` or `path`.",
    params(("X-User-Id" = Option<String>, Header, description = "The caller; the jobs' user unless the body names one (1 to 128 visible ASCII characters; spaces inside)", min_length = 1, max_length = 128, pattern = r"^[!-~]([ -~]*[!-~])?$")),
    request_body(content = PipelineRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The four jobs", body = PipelineResponse),
        (status = 400, description = "`ValidationError` or `UnknownJobTypeError`", body = ErrorBody),
        (status = 413, description = "`PayloadTooLargeError`", body = ErrorBody),
        (status = 408, description = "`RequestTimeoutError`: the body did not arrive within `http_read_timeout_seconds`", body = ErrorBody),
        (status = 429, description = "`QuotaExceededError`: the four jobs would take the user \
            past `max_queued_jobs_per_user`, none stored; or `RateLimitedError`: the four cost \
            four of the user's `submit_rate_per_user` tokens on this node. `Retry-After` in \
            seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn submit_pipeline(
    State(state): State<AppState>,
    caller: Caller,
    requester: Requester,
    JsonBody(body): JsonBody<PipelineRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let request = body.ok_or_else(|| ApiError::Validation("a JSON body is required".into()))?;
    if request.documents.is_none() == request.path.is_none() {
        return Err(ApiError::Validation("give either documents or path".into()));
    }
    let [documents, taxonomy, extraction, dataset] = STAGES;
    let stages = [
        (
            documents,
            parameters(&[
                (
                    "documents",
                    request
                        .documents
                        .map(|list| list.iter().map(InlineDocument::to_value).collect()),
                ),
                ("path", request.path.map(Value::from)),
                ("chunk_size", request.chunk_size.map(Value::from)),
                ("chunk_overlap", request.chunk_overlap.map(Value::from)),
            ]),
        ),
        (taxonomy, json!({})),
        (extraction, json!({})),
        (
            dataset,
            parameters(&[
                ("format", request.format.map(Value::from)),
                ("seed", request.seed.map(Value::from)),
                (
                    "validation_fraction",
                    request.validation_fraction.map(Value::from),
                ),
            ]),
        ),
    ];
    let mut chain: Vec<NewJob> = Vec::with_capacity(stages.len());
    for (stage, parameters) in stages {
        // Taxonomy needs the chunks; extraction the taxonomy and the chunks;
        // the dataset the extraction.
        let depends_on = match chain.as_slice() {
            [] => vec![],
            [chunks, taxonomy] => vec![taxonomy.id, chunks.id],
            [.., previous] => vec![previous.id],
        };
        let submit = SubmitRequest {
            job_type: stage.to_owned(),
            parameters: Some(parameters),
            user_id: request.user_id.clone(),
            priority: None,
            run_at: None,
            delay_seconds: None,
            max_attempts: None,
            timeout_seconds: None,
            concurrency_key: None,
            depends_on: Some(depends_on.into_iter().map(Dependency::Job).collect()),
            idempotency_key: None,
            debounce: None,
            expires_in_seconds: None,
        };
        chain.push(submit.validate(&caller, &state)?);
    }
    // All four or none, each counting for the rate: a failure (the
    // quota's too) leaves no partial chain behind.
    let stored = submit_together(&state, chain).await?;
    let job_ids: Vec<JobId> = stored.iter().map(|job| job.id).collect();
    for id in &job_ids {
        state.audit.record(
            &requester,
            AuditAction::PipelineSubmit,
            Some(id.to_string()),
            StatusCode::CREATED.as_u16(),
        );
    }
    let jobs: Map<String, Value> = stored
        .iter()
        .map(|job| (job.job_type.clone(), Value::from(job.id.to_string())))
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(PipelineResponse { jobs, job_ids }),
    ))
}
