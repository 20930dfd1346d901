//! The simulated kubelet: registers nodes, keeps them Ready, runs the Pods
//! bound to them as host processes and serves their logs.

mod image;
mod lifecycle;
mod log_server;
mod logs;
mod node;
mod paths;
mod pods;
mod process;
mod quantity;
mod registry;
mod status;
mod workspace;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;

pub use node::{parse_node, NodeSpec};
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
    pub memory_poll_interval: Duration,
}

/// Registers the nodes, starts their heartbeats and log endpoints, and runs
/// Pods until the Pod watch fails for good.
pub async fn run(client: Client, config: Config) -> anyhow::Result<()> {
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
            log_server::router(&spec.name, registry.clone()),
        ));
    }
    for spec in &config.nodes {
        node::register(&client, spec)
            .await
            .with_context(|| format!("failed to register node {}", spec.name))?;
        tokio::spawn(node::heartbeat(
            client.clone(),
            spec.clone(),
            config.heartbeat_interval,
        ));
    }

    let context = lifecycle::Context {
        client,
        registry,
        interpreters: config.interpreters,
        work_dir: config.work_dir,
        memory_poll: config.memory_poll_interval,
    };
    let names: HashSet<String> = config.nodes.iter().map(|spec| spec.name.clone()).collect();
    pods::watch_pods(context, names).await
}
