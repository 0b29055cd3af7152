//! [`Stage`], the job type every pipeline step is: it copies the job's
//! [`Inputs`] and runs the step's work on a blocking thread.

use async_trait::async_trait;
use serde_json::Value;

use super::dirs::Dirs;
use super::inputs::Inputs;
use super::task::{Task, run_blocking};
use crate::runtime::{JobContext, JobHandler};

/// A step's work: on a blocking thread, from the job's inputs, within the
/// pipeline's directories.
type StageWork = fn(&Task, &Inputs, &Dirs) -> anyhow::Result<Value>;

/// A step's check of a submission's parameters, before the job is stored:
/// what can be refused without running it.
type StageCheck = fn(&Value, &Dirs) -> anyhow::Result<()>;

/// A pipeline step as a job type: its work runs on a blocking thread (see
/// [`run_blocking`]). Each step's module builds one with its `handler`.
pub struct Stage {
    dirs: Dirs,
    work: StageWork,
    check: Option<StageCheck>,
}

impl Stage {
    pub(super) fn new(dirs: Dirs, work: StageWork) -> Stage {
        Stage {
            dirs,
            work,
            check: None,
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
        let inputs = Inputs::of(&ctx)?;
        let dirs = self.dirs.clone();
        let work = self.work;
        run_blocking(&ctx, move |task| work(task, &inputs, &dirs)).await
    }

    fn check_parameters(&self, parameters: &Value) -> Result<(), String> {
        match self.check {
            Some(check) => check(parameters, &self.dirs).map_err(|e| format!("{e:#}")),
            None => Ok(()),
        }
    }
}
