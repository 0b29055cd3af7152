//! OpenAPI schemas of the events of the two Server-Sent Events streams.
//!
//! An event stream's `text/event-stream` response documents one event, as
//! OpenAPI 3.1 tools read it (3.2 calls the same object `itemSchema`): an
//! object with the event's name in `event` and its `data`, a JSON text
//! whose schema `contentSchema` names. Schema-driven clients and fuzzers
//! (schemathesis) check each event they receive against it.

use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::error::ErrorBody;
use super::log_view::{LogEnd, LogLineView};
use super::schema::{JobSchema, JobUpdateSchema};
use super::stats::{QueueStats, StatsUnavailable, WorkerList};
use super::throughput::Throughput;

/// An event of `GET /api/v1/jobs/status/{job_id}/stream`; never built.
pub(crate) struct JobStreamEvent;

/// An event of `GET /api/v1/jobs/status/{job_id}/logs/stream`; never built.
pub(crate) struct LogStreamEvent;

/// An event of `GET /api/v1/jobs/queue/stream`; never built.
pub(crate) struct QueueStreamEvent;

/// The event named `name` whose data is JSON of the schema `data`.
fn event(name: &str, description: &str, data: impl Into<RefOr<Schema>>) -> RefOr<Schema> {
    let data = ObjectBuilder::new()
        .schema_type(Type::String)
        .content_media_type("application/json")
        .content_schema(Some(data));
    ObjectBuilder::new()
        .description(Some(description))
        .property(
            "event",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([name])),
        )
        .required("event")
        .property("data", data)
        .required("data")
        .into()
}

/// A reference to the component schema of `T`.
fn component<T: ToSchema>() -> Ref {
    Ref::from_schema_name(T::name())
}

/// Adds `T` and the schemas it refers to.
fn add<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}

impl PartialSchema for JobStreamEvent {
    fn schema() -> RefOr<Schema> {
        let update = AnyOfBuilder::new()
            .item(component::<JobSchema>())
            .item(component::<JobUpdateSchema>());
        OneOfBuilder::new()
            .description(Some(
                "One event of a job's stream (`data` is JSON). Comments (keep-alives) are not events.",
            ))
            .item(event(
                "job_update",
                "The whole `Job` first, then only what changes (`JobUpdate`)",
                update,
            ))
            .item(event(
                "job_complete",
                "The whole `Job`, once completed, failed or cancelled; the last event",
                component::<JobSchema>(),
            ))
            .item(event(
                "error",
                "The job left the store (`JobNotFoundError`); the last event",
                component::<ErrorBody>(),
            ))
            .into()
    }
}

impl ToSchema for JobStreamEvent {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        add::<JobSchema>(schemas);
        add::<JobUpdateSchema>(schemas);
        add::<ErrorBody>(schemas);
    }
}

impl PartialSchema for LogStreamEvent {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .description(Some(
                "One event of a job's log stream (`data` is JSON). Comments (keep-alives) are not events.",
            ))
            .item(event(
                "log",
                "One line (its `seq` is also the event's `id`)",
                component::<LogLineView>(),
            ))
            .item(event(
                "end",
                "The job is completed, failed or cancelled and every line was sent; the last event",
                component::<LogEnd>(),
            ))
            .item(event(
                "error",
                "The job left the store (`JobNotFoundError`); the last event",
                component::<ErrorBody>(),
            ))
            .into()
    }
}

impl ToSchema for LogStreamEvent {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        add::<LogLineView>(schemas);
        add::<LogEnd>(schemas);
        add::<ErrorBody>(schemas);
    }
}

impl PartialSchema for QueueStreamEvent {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .description(Some(
                "One event of the queue's stream (`data` is JSON). Comments (keep-alives) are not events.",
            ))
            .item(event(
                "stats",
                "The queue statistics, as `/queue/stats` answers",
                component::<QueueStats>(),
            ))
            .item(event(
                "stats_error",
                "Instead of `stats` while the store is unreachable",
                component::<StatsUnavailable>(),
            ))
            .item(event(
                "throughput",
                "The throughput history",
                component::<Throughput>(),
            ))
            .item(event(
                "workers",
                "The worker registry; left out while the store is unreachable",
                component::<WorkerList>(),
            ))
            .into()
    }
}

impl ToSchema for QueueStreamEvent {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        add::<QueueStats>(schemas);
        add::<StatsUnavailable>(schemas);
        add::<Throughput>(schemas);
        add::<WorkerList>(schemas);
    }
}
