//! [`Stage`], the job type every pipeline step is: it copies the job's
//! [`Inputs`] and runs the step's work on a blocking thread.

use anyhow::Context;
use async_trait::async_trait;
use serde_json::Value;

use super::artifacts::INPUT_FILE;
use super::dirs::Dirs;
use super::inputs::Inputs;
use super::task::{Task, run_blocking};
use crate::model::JobId;
use crate::runtime::{JobContext, JobHandler};

/// A step's work: on a blocking thread, from the job's inputs, within the
/// pipeline's directories.
type StageWork = fn(&Task, &Inputs, &Dirs) -> anyhow::Result<Value>;

/// A step's check of a submission's parameters, before the job is stored:
/// what can be refused without running it.
type StageCheck = fn(&Value, &Dirs) -> anyhow::Result<()>;

/// A step's split of a submission's parameters into those to store with
/// the job and the content of its input artifact, if it has one.
type StageInput = fn(JobId, Value) -> anyhow::Result<(Value, Option<Vec<u8>>)>;

/// A pipeline step as a job type: its work runs on a blocking thread (see
/// [`run_blocking`]). Each step's module builds one with its `handler`.
pub struct Stage {
    dirs: Dirs,
    work: StageWork,
    check: Option<StageCheck>,
    input: Option<StageInput>,
}

impl Stage {
    pub(super) fn new(dirs: Dirs, work: StageWork) -> Stage {
        Stage {
            dirs,
            work,
            check: None,
            input: None,
        }
    }

    /// The same step, its submissions' inline input moved to the input
    /// artifact by `input`.
    pub(super) fn with_input(self, input: StageInput) -> Stage {
        Stage {
            input: Some(input),
            ..self
        }
    }

    /// The same step, its submissions checked by `check`.
    pub(super) fn with_check(self, check: StageCheck) -> Stage {
        Stage {
            check: Some(check),
            ..self
        }
    }
}

#[async_trait]
impl JobHandler for Stage {
    async fn run(&self, ctx: JobContext) -> anyhow::Result<Value> {
        self.dirs.artifacts.check_shared()?;
        let dirs = self.dirs.clone();
        let inputs = Inputs::of(&ctx, &dirs)?;
        let work = self.work;
        run_blocking(&ctx, move |task| work(task, &inputs, &dirs)).await
    }

    fn check_parameters(&self, parameters: &Value) -> Result<(), String> {
        self.dirs
            .artifacts
            .check_shared()
            .map_err(|e| e.to_string())?;
        match self.check {
            Some(check) => check(parameters, &self.dirs).map_err(|e| format!("{e:#}")),
            None => Ok(()),
        }
    }

    async fn prepare_parameters(&self, job_id: JobId, parameters: Value) -> anyhow::Result<Value> {
        let Some(split) = self.input else {
            return Ok(parameters);
        };
        let (parameters, content) = split(job_id, parameters)?;
        if let Some(content) = content {
            self.dirs
                .artifacts
                .put(job_id, INPUT_FILE, content)
                .await
                .context("cannot store the input artifact")?;
        }
        Ok(parameters)
    }
}
