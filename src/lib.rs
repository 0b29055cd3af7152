//! jobd: a background-job service.
//!
//! The crate map, from the bottom up:
//! - [`model`]: jobs, statuses and their state machine; no I/O.
//! - [`store`]: the atomic operations jobd needs from a backend, and the
//!   backends ([`store::sqlite`]).
//! - [`events`]: the in-process change feed that waiters and workers use.
//! - [`runtime`]: job handlers, the worker (claim loop, executors,
//!   heartbeat) and store maintenance.
//! - [`pipeline`]: the built-in document-pipeline job types and their artifacts.
//! - [`api`]: the HTTP layer.
//! - [`server`]: `jobd serve` and `jobd worker`, wiring the above together.
//! - [`cli`]: the client commands, which talk to a server over HTTP only.
//! - [`config`]: settings from flags, environment and a TOML file.

pub mod api;
mod backoff;
pub mod cli;
pub mod config;
pub mod events;
pub mod model;
pub mod pipeline;
pub mod runtime;
pub mod server;
pub mod store;
