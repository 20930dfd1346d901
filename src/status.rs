//! The `/system/status` view: queue, workers, runner Pods and a short history,
//! assembled from Redis and, when configured, from the cluster.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::run::format_timestamp;
use crate::store::RunStore;

/// Queued ids listed in the view.
const QUEUED_IDS_SHOWN: usize = 50;
/// Interval and length of the history kept in memory (10 minutes).
const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
const HISTORY_LEN: usize = 120;

#[derive(Debug, Clone, Serialize, Default, utoipa::ToSchema)]
pub struct SystemStatus {
    pub queue: QueueStatus,
    pub workers: WorkerStatus,
    pub runners: RunnerStatus,
    /// Runner Pods not yet finished, per node.
    pub nodes: BTreeMap<String, u64>,
    pub history: Vec<Sample>,
    pub redis: Health,
    pub kubernetes: Health,
}

#[derive(Debug, Clone, Serialize, Default, utoipa::ToSchema)]
pub struct QueueStatus {
    pub depth: u64,
    pub queued_run_ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Default, utoipa::ToSchema)]
pub struct WorkerStatus {
    /// Replicas the worker Deployment requests, or `None` without a cluster.
    pub desired: Option<i32>,
    pub ready: Option<i32>,
    pub pods: Vec<PodSummary>,
    /// Worker ids with a live heartbeat in Redis.
    pub heartbeats: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Default, utoipa::ToSchema)]
pub struct RunnerStatus {
    /// Runs dispatched and not finished.
    pub active: u64,
    pub pods: Vec<RunnerPod>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct PodSummary {
    pub name: String,
    pub node: Option<String>,
    pub phase: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct RunnerPod {
    pub run_id: Option<String>,
    pub pod: String,
    pub node: Option<String>,
    pub phase: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Sample {
    pub at: String,
    pub queue_depth: u64,
    pub worker_replicas: u64,
    pub active_runs: u64,
}

#[derive(Debug, Clone, Serialize, Default, utoipa::ToSchema)]
pub struct Health {
    pub ok: bool,
    pub message: Option<String>,
}

/// The cluster's part of the view.
#[derive(Debug, Clone, Default)]
pub struct ClusterSnapshot {
    pub desired: Option<i32>,
    pub ready: Option<i32>,
    pub worker_pods: Vec<PodSummary>,
    pub runner_pods: Vec<RunnerPod>,
    /// Names of the cluster's nodes, so that nodes without runner Pods show too.
    pub nodes: Vec<String>,
}

/// Reads the cluster's part of the view.
#[async_trait::async_trait]
pub trait ClusterView: Send + Sync {
    async fn snapshot(&self) -> Result<ClusterSnapshot, String>;
}

/// Builds the status view and keeps its history.
pub struct StatusView {
    store: Arc<RunStore>,
    cluster: Option<Arc<dyn ClusterView>>,
    history: Mutex<VecDeque<Sample>>,
}

impl StatusView {
    pub fn new(store: Arc<RunStore>, cluster: Option<Arc<dyn ClusterView>>) -> Arc<Self> {
        Arc::new(Self {
            store,
            cluster,
            history: Mutex::new(VecDeque::with_capacity(HISTORY_LEN)),
        })
    }

    /// Samples the view every few seconds for the history chart.
    pub fn spawn_sampler(self: &Arc<Self>, stop: CancellationToken) {
        let view = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.cancelled() => return,
                }
                let status = view.current().await;
                if !status.redis.ok {
                    debug!("skipping a status sample while redis is unavailable");
                    continue;
                }
                view.record(&status);
            }
        });
    }

    fn record(&self, status: &SystemStatus) {
        let replicas = status
            .workers
            .ready
            .map(|ready| ready.max(0) as u64)
            .unwrap_or(status.workers.heartbeats.len() as u64);
        let mut history = self.history.lock().expect("history lock");
        if history.len() == HISTORY_LEN {
            history.pop_front();
        }
        history.push_back(Sample {
            at: format_timestamp(Utc::now()),
            queue_depth: status.queue.depth,
            worker_replicas: replicas,
            active_runs: status.runners.active,
        });
    }

    /// Builds the view without history.
    async fn current(&self) -> SystemStatus {
        let mut status = SystemStatus::default();

        let redis_part = async {
            let depth = self.store.queue_depth().await?;
            let queued = self.store.queued_ids(QUEUED_IDS_SHOWN).await?;
            let active = self.store.active_count().await?;
            let workers = self.store.live_workers().await?;
            Ok::<_, crate::store::StoreError>((depth, queued, active, workers))
        };
        match redis_part.await {
            Ok((depth, queued, active, workers)) => {
                status.queue = QueueStatus {
                    depth,
                    queued_run_ids: queued,
                };
                status.runners.active = active;
                status.workers.heartbeats = workers;
                status.redis = Health {
                    ok: true,
                    message: None,
                };
            }
            Err(error) => {
                status.redis = Health {
                    ok: false,
                    message: Some(format!("Redis is unreachable: {error}")),
                };
            }
        }

        match &self.cluster {
            None => {
                status.kubernetes = Health {
                    ok: false,
                    message: Some("no cluster configured: runs execute on this machine with the local executor".into()),
                };
            }
            Some(cluster) => match cluster.snapshot().await {
                Ok(snapshot) => {
                    for node in &snapshot.nodes {
                        status.nodes.insert(node.clone(), 0);
                    }
                    // Finished Pods stay until their Job's TTL; only live ones count.
                    let live = snapshot.runner_pods.iter().filter(|pod| {
                        !matches!(pod.phase.as_deref(), Some("Succeeded") | Some("Failed"))
                    });
                    for pod in live {
                        if let Some(node) = &pod.node {
                            *status.nodes.entry(node.clone()).or_default() += 1;
                        }
                    }
                    status.workers.desired = snapshot.desired;
                    status.workers.ready = snapshot.ready;
                    status.workers.pods = snapshot.worker_pods;
                    status.runners.pods = snapshot.runner_pods;
                    status.kubernetes = Health {
                        ok: true,
                        message: None,
                    };
                }
                Err(message) => {
                    status.kubernetes = Health {
                        ok: false,
                        message: Some(message),
                    };
                }
            },
        }
        status
    }

    /// Builds the full view, history included.
    pub async fn status(&self) -> SystemStatus {
        let mut status = self.current().await;
        status.history = self
            .history
            .lock()
            .expect("history lock")
            .iter()
            .cloned()
            .collect();
        status
    }
}
