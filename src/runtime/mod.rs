//! The worker runtime: job handlers and their registry, the per-process
//! worker (claim loop, executors, heartbeat) and store maintenance.

pub mod builtin;
mod executor;
pub mod external;
pub mod handler;
pub mod maintenance;
mod process;
mod worker;

pub use handler::{JobContext, JobFailure, JobHandler, JobType, Registry, Retry};
pub use worker::Worker;
