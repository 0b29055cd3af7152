//! The worker runtime: job handlers and their registry, the per-process
//! worker (claim loop, executors, heartbeat) and store maintenance.

pub(crate) mod attempt;
pub mod builtin;
mod completer;
mod executor;
pub(crate) mod external;
pub(crate) mod handler;
mod heartbeat;
pub(crate) mod job_log;
pub(crate) mod maintenance;
pub(crate) mod memory;
pub(crate) mod process;
mod registry;
mod worker;

pub use handler::{JobContext, JobFailure, JobHandler, Retry};
pub use job_log::LogBuffer;
pub use registry::{JobType, Registry};
pub use worker::{Worker, WorkerLoad};
