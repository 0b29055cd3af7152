//! Job types compiled in and always registered: `noop` for benchmarks and
//! smoke tests, `sleep` for trying out progress, cancel and limits, and the
//! seed's four document-pipeline types ([`crate::pipeline`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::handler::{JobContext, JobHandler};
use crate::config::Settings;
use crate::model::Progress;
use crate::pipeline::{Dirs, dataset, documents, extraction, taxonomy};

/// The built-in handlers by job type name.
pub fn handlers(settings: &Settings) -> Vec<(&'static str, Arc<dyn JobHandler>)> {
    let dirs = Dirs::from_settings(settings);
    vec![
        ("noop", Arc::new(Noop)),
        ("sleep", Arc::new(Sleep)),
        (
            "document_processing",
            Arc::new(documents::handler(dirs.clone())),
        ),
        (
            "taxonomy_processing",
            Arc::new(taxonomy::handler(dirs.clone())),
        ),
        ("extraction", Arc::new(extraction::handler(dirs.clone()))),
        ("dataset_generation", Arc::new(dataset::handler(dirs))),
    ]
}

/// Completes at once with an empty result.
pub struct Noop;

#[async_trait]
impl JobHandler for Noop {
    async fn run(&self, _ctx: JobContext) -> anyhow::Result<Value> {
        Ok(Value::Null)
    }
}

/// Sleeps `seconds` (default 1, at most 86400) in `steps` equal steps
/// (default 10), reporting progress after each; fails with `fail_with` (a
/// message) when given; stops at once when cancelled.
pub struct Sleep;

#[async_trait]
impl JobHandler for Sleep {
    async fn run(&self, ctx: JobContext) -> anyhow::Result<Value> {
        let params = ctx.parameters();
        let seconds = params
            .get("seconds")
            .and_then(Value::as_f64)
            .unwrap_or(1.0)
            .clamp(0.0, 86400.0);
        let steps = params
            .get("steps")
            .and_then(Value::as_u64)
            .unwrap_or(10)
            .clamp(1, 100_000);
        let step = Duration::from_secs_f64(seconds / steps as f64);
        for done in 1..=steps {
            tokio::select! {
                _ = tokio::time::sleep(step) => {}
                _ = ctx.cancelled() => anyhow::bail!("cancelled"),
            }
            ctx.report(Progress {
                fraction: done as f64 / steps as f64,
                items_processed: Some(done),
                total_items: Some(steps),
            });
        }
        if let Some(message) = params.get("fail_with").and_then(Value::as_str) {
            anyhow::bail!("{message}");
        }
        Ok(json!({ "slept_seconds": seconds, "steps": steps }))
    }
}
