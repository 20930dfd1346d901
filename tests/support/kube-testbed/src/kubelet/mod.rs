//! The simulated kubelet: registers nodes, keeps them Ready, runs the Pods
//! bound to them as host processes and serves their logs.

mod image;
mod lifecycle;
mod log_server;
mod logs;
mod memory;
mod node;
mod paths;
mod pods;
mod process;
mod quantity;
mod registry;
mod status;
mod volumes;
mod workspace;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;

pub use node::{parse_node, NodeCapacity, NodeSpec};
pub use workspace::Interpreters;

/// Settings of a kubelet-sim process.
#[derive(Debug, Clone)]
pub struct Config {
    pub nodes: Vec<NodeSpec>,
    pub work_dir: PathBuf,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub interpreters: Interpreters,
    pub heartbeat_interval: Duration,
    pub capacity: NodeCapacity,
    pub start_delay: Duration,
    pub memory_poll_interval: Duration,
}

/// Registers the nodes, starts their heartbeats and log endpoints, and runs
/// Pods until `shutdown` completes or the Pod watch fails for good. Kills
/// every container process before returning.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::fs::create_dir_all(&config.work_dir)
        .await
        .with_context(|| format!("failed to create work dir {}", config.work_dir.display()))?;
    let tls = crate::tls::server_config(&config.tls_cert, &config.tls_key)?;
    let registry = registry::PodRegistry::default();

    for spec in &config.nodes {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], spec.kubelet_port));
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("failed to listen on {address} for node {}", spec.name))?;
        tracing::info!(node = %spec.name, %address, "serving container logs");
        tokio::spawn(crate::net::serve_tls(
            listener,
            tls.clone(),
            hyper_util::service::TowerToHyperService::new(log_server::router(
                &spec.name,
                registry.clone(),
            )),
        ));
    }
    for spec in &config.nodes {
        node::register(&client, spec)
            .await
            .with_context(|| format!("failed to register node {}", spec.name))?;
        tokio::spawn(node::heartbeat(
            client.clone(),
            spec.clone(),
            config.capacity.clone(),
            config.heartbeat_interval,
        ));
    }

    let context = lifecycle::Context {
        client,
        registry: registry.clone(),
        interpreters: config.interpreters,
        work_dir: config.work_dir,
        memory: memory::MemorySampler::start(config.memory_poll_interval),
        start_delay: config.start_delay,
    };
    let names: HashSet<String> = config.nodes.iter().map(|spec| spec.name.clone()).collect();
    let result = tokio::select! {
        result = pods::watch_pods(context, names) => result,
        _ = shutdown => Ok(()),
    };
    kill_all(&registry);
    result
}

/// Kills the process group of every running container, so that no
/// container outlives the simulator.
fn kill_all(registry: &registry::PodRegistry) {
    for handle in registry.handles() {
        let Some(group) = handle.process_group() else {
            continue;
        };
        let group = nix::unistd::Pid::from_raw(group);
        match nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL) {
            Ok(()) => {
                tracing::info!(namespace = %handle.namespace, pod = %handle.name, "container killed at shutdown")
            }
            Err(error) => {
                tracing::debug!(%error, pod = %handle.name, "container process group already gone")
            }
        }
    }
}
