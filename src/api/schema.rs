//! OpenAPI schemas of the model types the API returns ([`crate::model::JobView`],
//! [`crate::model::JobUpdate`], [`crate::model::JobStatus`],
//! [`crate::model::Metrics`]).
//!
//! The model stays free of HTTP and documentation concerns, so these
//! mirrors carry the `ToSchema` derive instead; they are never built, only
//! described. A unit test below keeps each mirror's fields equal to what the
//! model serializes, and the integration suite validates real responses
//! against the published document, so a mirror cannot drift unnoticed.

use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Where a job is in its life.
#[derive(ToSchema)]
#[schema(as = JobStatus, rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum JobStatusSchema {
    /// Queued and waiting for a worker.
    Pending,
    /// Held by one worker under a lease.
    Running,
    /// Finished successfully; terminal.
    Completed,
    /// Failed with no attempts left; terminal, restartable.
    Failed,
    /// Cancelled by a user; terminal, restartable.
    Cancelled,
    /// Waiting for its `scheduled_for` time (delayed, or a retry after backoff).
    Scheduled,
}

/// A token's role, for the document (the model's `Role`).
#[derive(ToSchema)]
#[schema(as = Role, rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum RoleSchema {
    /// Everything, for every user; may submit on behalf of a user.
    Admin,
    /// Submits, reads, cancels and restarts its own user's jobs only.
    User,
    /// Reads every job and the queue; changes nothing.
    Viewer,
    /// The HTTP worker protocol only.
    Worker,
}

/// A query parameter naming a status, where empty means none: a
/// `JobStatus` or the empty string.
pub(crate) fn status_or_empty() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(utoipa::openapi::Ref::from_schema_name(
            JobStatusSchema::name(),
        ))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([""])),
        )
        .into()
}

/// The seed's `metrics` object of a job.
#[derive(ToSchema)]
#[schema(as = JobMetrics)]
#[allow(dead_code)]
pub(crate) struct JobMetricsSchema {
    /// Seconds the current or last attempt has run; grows while it runs.
    #[schema(required = true)]
    execution_time_seconds: Option<f64>,
    /// Items done, when the handler reports them.
    #[schema(required = true, minimum = 0)]
    items_processed: Option<u64>,
    /// Items in all, when the handler reports them.
    #[schema(required = true, minimum = 0)]
    total_items: Option<u64>,
}

/// A job: the seed's fields first, then the ones jobd adds. Every
/// timestamp is UTC RFC 3339 ending in `Z`.
#[derive(ToSchema)]
#[schema(as = Job)]
#[allow(dead_code)]
pub(crate) struct JobSchema {
    /// The job's id (a UUID v7, so ids sort by creation time).
    job_id: Uuid,
    /// Its job type.
    job_type: String,
    /// Present, and true, only for a job served by remote workers (its type
    /// is declared `remote` in the configuration).
    remote: Option<bool>,
    /// Present only for a job with a concurrency key: the value its type's
    /// per-key limit counts it by (the submission's own, or the value at
    /// the type's `concurrency_key` pointer into the parameters).
    concurrency_key: Option<String>,
    /// Its status.
    status: JobStatusSchema,
    /// 0.0 to 1.0; 1.0 once completed.
    #[schema(minimum = 0.0, maximum = 1.0)]
    progress: f64,
    /// Submission time.
    #[schema(format = DateTime)]
    created_at: String,
    /// Start of the current or last attempt.
    #[schema(required = true, format = DateTime)]
    started_at: Option<String>,
    /// When it reached a terminal status.
    #[schema(required = true, format = DateTime)]
    completed_at: Option<String>,
    /// The error, for failed (and cancelled) jobs.
    #[schema(required = true)]
    error: Option<String>,
    /// Whose job it is.
    user_id: String,
    /// Timing and item counts.
    metrics: JobMetricsSchema,
    /// The handler's result; present once completed (in a listing, only
    /// with `include=result`).
    result: Option<Value>,
    /// The job's input, a JSON object; always present except in listings
    /// without `include=parameters`.
    #[schema(value_type = Option<Object>)]
    parameters: Option<Value>,
    /// Priority within the user's queue; higher first.
    priority: i32,
    /// Attempts started.
    attempts: u32,
    /// Attempts allowed.
    max_attempts: u32,
    /// Recoveries from lost workers.
    interruptions: u32,
    /// Per-attempt time limit in seconds.
    #[schema(required = true)]
    timeout_seconds: Option<f64>,
    /// When a scheduled job becomes due.
    #[schema(required = true, format = DateTime)]
    scheduled_for: Option<String>,
    /// Last change.
    #[schema(format = DateTime)]
    updated_at: String,
    /// The worker holding it while it runs.
    #[schema(required = true)]
    worker_id: Option<String>,
    /// Jobs that must complete first.
    depends_on: Vec<Uuid>,
    /// Dependencies not completed yet (the reason a job waits as scheduled).
    waiting_dependencies: u32,
    /// The dependency whose failure or cancellation cancelled this job.
    #[schema(required = true)]
    cancelled_by: Option<Uuid>,
    /// The deadline to start by, UTC RFC 3339 (`expires_in_seconds`): a job
    /// still pending or scheduled then is cancelled with the error
    /// `expired`. Left out when the job has none.
    expires_at: Option<String>,
    /// The schedule that submitted it (`/api/v1/schedules`). Left out when
    /// none did.
    schedule: Option<String>,
    /// The schedule's tick it was submitted for, UTC RFC 3339. Left out
    /// when no schedule submitted it.
    #[schema(format = DateTime)]
    schedule_tick: Option<String>,
}

/// What changes while a job runs: the data of an SSE `job_update` after
/// the first (which carries the whole `Job`).
#[derive(ToSchema)]
#[schema(as = JobUpdate)]
#[allow(dead_code)]
pub(crate) struct JobUpdateSchema {
    /// The job's id.
    job_id: Uuid,
    /// Its status.
    status: JobStatusSchema,
    /// 0.0 to 1.0; 1.0 once completed.
    #[schema(minimum = 0.0, maximum = 1.0)]
    progress: f64,
    /// Timing and item counts.
    metrics: JobMetricsSchema,
    /// The error, for failed (and cancelled) jobs.
    #[schema(required = true)]
    error: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::Schema;
    use utoipa::{PartialSchema, ToSchema};

    use super::*;
    use crate::model::{Job, JobStatus, Progress};

    fn properties<T: PartialSchema>() -> BTreeSet<String> {
        match T::schema() {
            RefOr::T(Schema::Object(object)) => object.properties.keys().cloned().collect(),
            _ => panic!("not an object schema"),
        }
    }

    fn job() -> Job {
        Job {
            id: Uuid::now_v7(),
            job_type: "noop".into(),
            // Serialized only when true: the mirror lists it.
            remote: true,
            user_id: "u".into(),
            // Serialized only when set: the mirror lists it.
            concurrency_key: Some("k".into()),
            status: JobStatus::Completed,
            priority: 0,
            parameters: serde_json::json!({}),
            result: Some(serde_json::json!(1)),
            error: None,
            progress: Progress::default(),
            attempts: 1,
            max_attempts: 1,
            interruptions: 0,
            timeout_seconds: None,
            created_at: 0,
            scheduled_for: None,
            started_at: Some(0),
            completed_at: Some(1),
            updated_at: 1,
            worker_id: None,
            revision: 1,
            depends_on: vec![Uuid::now_v7()],
            waiting_dependencies: 0,
            cancelled_by: None,
            // Serialized only when set: the mirror lists them.
            expires_at: Some(2),
            schedule: Some(crate::model::ScheduleTick {
                name: "nightly".into(),
                tick: 0,
            }),
        }
    }

    fn keys(value: &Value) -> BTreeSet<String> {
        value
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    #[test]
    fn mirrors_name_the_fields_the_model_serializes() {
        let view = serde_json::to_value(job().view(1)).unwrap();
        assert_eq!(keys(&view), properties::<JobSchema>());
        assert_eq!(keys(&view["metrics"]), properties::<JobMetricsSchema>());
        assert_eq!(JobSchema::name(), "Job");
        let update = serde_json::to_value(job().update_view(1)).unwrap();
        assert_eq!(keys(&update), properties::<JobUpdateSchema>());
    }

    #[test]
    fn status_mirror_lists_every_status() {
        let schema = serde_json::to_value(JobStatusSchema::schema()).unwrap();
        let listed: BTreeSet<String> = schema["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let all: BTreeSet<String> = JobStatus::ALL.iter().map(|s| s.to_string()).collect();
        assert_eq!(listed, all);
    }
}
