//! code-runner accepts source code over HTTP, queues it in Redis and runs each
//! submission in isolation: as a Kubernetes Job in a cluster, or as a
//! sandboxed child process with the local executor.
//!
//! # Layout
//! - [`config`]: settings read from the environment and checked at start.
//! - [`run`]: the run model: languages, states, the create request and its
//!   validation, the run object that the API returns.
//! - [`store`]: the Redis store; every write is one atomic Lua script.
//! - [`queue`]: consumers that move run ids off `runs:queue`, worker
//!   heartbeats and the recovery of ids held by dead workers.
//! - [`worker`]: the worker process: consumers, dispatch and shutdown.
//! - [`executor`]: the [`executor::Executor`] trait and its implementations
//!   (local child processes, Kubernetes Jobs).
//! - [`k8s`]: the Kubernetes client, and builders for the ConfigMap and Job of a run.
//! - [`watcher`]: kube-runtime watches on runner Jobs and Pods, mapped to
//!   run states.
//! - [`events`]: the fan-out of `runs:events` to server-sent events and log
//!   followers.
//! - [`api`]: the axum HTTP API, the embedded UI and `/metrics`.
//! - [`status`]: the `/system/status` view.
//! - [`metrics`]: metric names and the Prometheus recorder.
//! - [`telemetry`]: tracing setup.
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod api;
pub mod app;
pub mod config;
pub mod events;
pub mod executor;
pub mod k8s;
pub mod metrics;
pub mod queue;
pub mod run;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod watcher;
pub mod worker;
