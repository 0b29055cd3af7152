//! jobd: a background-job service.
//!
//! The crate map, from the bottom up (a module uses only those above it in
//! this list; `tests/it/layers.rs` checks it, and that no files form a
//! cycle):
//! - [`model`]: jobs, statuses and the API's view of a job; no I/O. Beside
//!   it, `backoff`: the one retry schedule.
//! - [`events`]: the in-process change feed that waiters and workers use.
//! - [`config`]: settings from flags, environment and a TOML file.
//! - [`store`]: the atomic operations jobd needs from a backend, and the
//!   backends: [`store::sqlite`] (embedded) and [`store::redis`] (one
//!   queue for many machines).
//! - [`runtime`]: job handlers and their registry, the worker (claim loop,
//!   executor, completer, heartbeat) and store maintenance.
//! - [`pipeline`]: the built-in document-pipeline job types and their
//!   artifacts.
//! - [`api`]: the HTTP layer.
//! - [`server`]: `jobd serve` and `jobd worker`, wiring the above together.
//! - [`cli`]: the client commands, which talk to a server over HTTP only.

#![warn(unreachable_pub)]

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
