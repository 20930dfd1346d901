//! Wiring of the `api`, `worker` and `dev` processes and their shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::api::{self, AppState};
use crate::config::{Config, ExecutorKind};
use crate::events::EventHub;
use crate::executor::kubernetes::KubernetesExecutor;
use crate::executor::local::LocalExecutor;
use crate::executor::Executor;
use crate::k8s::{self, cluster::ApiCluster, objects::RunnerSettings};
use crate::metrics;
use crate::status::ClusterView;
use crate::status::StatusView;
use crate::store::RunStore;
use crate::watcher::Watcher;
use crate::worker::Worker;

/// Sets the queue gauges from Redis at scrape time; stale values stay while it is down.
pub async fn refresh_queue_gauges(store: &RunStore) {
    match (store.queue_depth().await, store.active_count().await) {
        (Ok(depth), Ok(active)) => {
            metrics::set_queue_depth(depth);
            metrics::set_active_runs(active);
        }
        (Err(error), _) | (_, Err(error)) => debug!(%error, "queue gauges not refreshed"),
    }
}

/// Cancels the token on SIGTERM or Ctrl-C.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing a SIGTERM handler succeeds in a new process");
        tokio::select! {
            _ = terminate.recv() => info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => info!("interrupt received"),
        }
        trigger.cancel();
    });
    token
}

async fn serve(
    router: Router,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr}; set LISTEN_ADDR or METRICS_ADDR to a free address")
    })?;
    info!(%addr, "listening");
    // The peer address keys the API's rate limit when tokens are off.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
    .context("the HTTP server failed")
}

fn api_state(
    config: &Arc<Config>,
    store: &Arc<RunStore>,
    cluster: Option<Arc<ApiCluster>>,
    stop: &CancellationToken,
) -> AppState {
    let handle = metrics::install();
    metrics::spawn_upkeep(handle.clone());
    let view = cluster
        .clone()
        .map(|cluster| cluster as Arc<dyn ClusterView>);
    let status = StatusView::new(Arc::clone(store), view);
    status.spawn_sampler(stop.clone());
    AppState {
        config: Arc::clone(config),
        store: Arc::clone(store),
        events: EventHub::start(Arc::clone(store), stop.clone()),
        status,
        metrics: handle,
        cluster,
    }
}

/// `code-runner api`: the HTTP API alone. Without a usable Kubernetes
/// configuration it still serves, with the cluster parts marked unavailable.
pub async fn run_api(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let store = Arc::new(RunStore::new(&config)?);
    let shutdown = shutdown_on_signal();
    let cluster = match config.executor {
        ExecutorKind::Local => None,
        ExecutorKind::Kubernetes => match k8s::client().await {
            Ok(client) => Some(Arc::new(ApiCluster::new(
                client,
                &config.runner_namespace,
                &config.worker_namespace,
                &config.worker_deployment,
            ))),
            Err(error) => {
                warn!(%error, "no Kubernetes access: cancel cannot delete Jobs and the status view lacks the cluster");
                None
            }
        },
    };
    let state = api_state(&config, &store, cluster, &shutdown);
    serve(api::router(state), config.listen_addr, shutdown).await
}

/// `code-runner dev`: the API and a worker with the local executor in one process.
pub async fn run_dev(config: Config) -> anyhow::Result<()> {
    warn!("dev mode runs programs as local processes: this is not a sandbox for untrusted code");
    let config = Arc::new(config);
    let store = Arc::new(RunStore::new(&config)?);
    let shutdown = shutdown_on_signal();
    let state = api_state(&config, &store, None, &shutdown);

    let executor: Arc<dyn Executor> =
        Arc::new(Arc::new(LocalExecutor::new(&config, Arc::clone(&store))));
    let worker = Worker::new(&config, Arc::clone(&store), executor);
    let worker_task = tokio::spawn(worker.run(shutdown.clone()));

    info!(url = %format!("http://{}/", config.listen_addr), "code-runner dev is up");
    let served = serve(api::router(state), config.listen_addr, shutdown.clone()).await;
    shutdown.cancel();
    worker_task.await.context("the worker task panicked")?;
    served
}

/// `code-runner worker`: queue consumers, the executor (Kubernetes Jobs and
/// their watcher, or local processes), and a metrics listener.
pub async fn run_worker(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let store = Arc::new(RunStore::new(&config)?);
    let shutdown = shutdown_on_signal();
    let handle = metrics::install();
    metrics::spawn_upkeep(handle.clone());

    let executor: Arc<dyn Executor> = match config.executor {
        ExecutorKind::Local => {
            warn!("EXECUTOR=local runs programs as local processes: this is not a sandbox for untrusted code");
            Arc::new(Arc::new(LocalExecutor::new(&config, Arc::clone(&store))))
        }
        ExecutorKind::Kubernetes => {
            let client = k8s::client().await.context(
                "the worker needs Kubernetes access to create Jobs; set KUBECONFIG or run it in a cluster",
            )?;
            let watcher = Watcher::new(
                client.clone(),
                &config.runner_namespace,
                Arc::clone(&store),
                &config.worker_id,
                config.run_max_log_bytes,
                config.runner_start_allowance,
            );
            tokio::spawn(watcher.run(shutdown.clone()));
            Arc::new(KubernetesExecutor::new(
                client,
                RunnerSettings::from_config(&config),
                Arc::clone(&store),
                &config.worker_id,
            ))
        }
    };
    let worker = Worker::new(&config, Arc::clone(&store), executor);
    let worker_task = tokio::spawn(worker.run(shutdown.clone()));

    let metrics_store = Arc::clone(&store);
    let router = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                let store = Arc::clone(&metrics_store);
                async move {
                    refresh_queue_gauges(&store).await;
                    handle.render()
                }
            }),
        );
    let served = serve(router, config.metrics_addr, shutdown.clone()).await;
    shutdown.cancel();
    worker_task.await.context("the worker task panicked")?;
    served
}
