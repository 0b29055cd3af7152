//! Job types compiled into the runtime: `noop` for benchmarks and smoke
//! tests, `sleep` for trying out progress, cancel and limits. The caller
//! adds its own (the server adds the document pipeline's).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::handler::{JobContext, JobHandler};
use crate::model::Progress;

/// The runtime's own handlers by job type name.
pub fn handlers() -> Vec<(&'static str, Arc<dyn JobHandler>)> {
    vec![("noop", Arc::new(Noop)), ("sleep", Arc::new(Sleep))]
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
/// (default 10), reporting progress after each (and logging a line per
/// step with `"log": true`); fails with `fail_with` (a message) when
/// given; stops at once when cancelled.
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
        let log = params.get("log") == Some(&Value::Bool(true));
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
            if log {
                ctx.log(format!("step {done} of {steps} done"));
            }
        }
        if let Some(message) = params.get("fail_with").and_then(Value::as_str) {
            anyhow::bail!("{message}");
        }
        Ok(json!({ "slept_seconds": seconds, "steps": steps }))
    }
}
