//! The integration suite: real `jobd` processes over HTTP on a real SQLite
//! file, plus the store contract run directly against the store.

mod api;
mod app;
mod artifacts;
mod audit;
mod auth;
mod backpressure;
mod cli;
mod cluster;
mod cluster_metrics;
mod connections;
mod control;
mod disk_space;
mod document_files;
mod guard;
mod input_edges;
mod job_logs;
mod layers;
mod limits;
mod live;
mod metrics;
mod moto;
mod openapi;
mod pipeline;
mod pipeline_chain;
mod pipeline_cluster;
mod recovery;
mod redis_store;
mod remote;
mod request_head;
mod resources;
mod store_contract;
mod store_errors;
mod store_trouble;
mod support;
mod watch;
