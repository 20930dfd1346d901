//! Simulated kubelet for a local Kubernetes control plane: registers nodes
//! and runs the Pods bound to them as host processes.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use kube_testbed::kubelet::{self, Interpreters};

#[derive(Debug, Parser)]
#[command(about = "Simulated kubelet: registers nodes and runs their Pods as host processes")]
struct Args {
    /// Kubeconfig with rights to manage Nodes and Pods (the admin one).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Node to simulate, as name[:key=value,...]. Repeat the flag for more nodes.
    #[arg(long = "node", default_values_t = ["node-a:runner=true".to_string(), "node-b:runner=true".to_string(), "node-c".to_string()])]
    nodes: Vec<String>,
    /// Kubelet port of the first node. Each further node takes the next port.
    #[arg(long, default_value_t = 16501)]
    kubelet_port_base: u16,
    /// Directory for Pod files and container logs.
    #[arg(long, default_value = "/tmp/code-runner-cluster/kubelet")]
    work_dir: PathBuf,
    /// PEM certificate served on the kubelet ports.
    #[arg(long)]
    tls_cert: PathBuf,
    /// PEM private key of --tls-cert.
    #[arg(long)]
    tls_key: PathBuf,
    /// Host program that runs for `python`/`python3` in python* images.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Host program that runs for `node` in node* images.
    #[arg(long, default_value = "node")]
    node_binary: String,
    /// CPU capacity of each node, as a Kubernetes quantity.
    #[arg(long, default_value = "4")]
    node_cpu: String,
    /// Memory capacity of each node, as a Kubernetes quantity.
    #[arg(long, default_value = "8Gi")]
    node_memory: String,
    /// Maximum number of Pods on each node.
    #[arg(long, default_value = "110")]
    node_pods: String,
    /// Milliseconds each container spends in ContainerCreating before it
    /// starts, in place of image pull and container creation.
    #[arg(long, default_value_t = 0)]
    start_delay_millis: u64,
    /// Seconds between node status heartbeats.
    #[arg(long, default_value_t = 10)]
    heartbeat_seconds: u64,
    /// Milliseconds between checks of a container's resident memory.
    #[arg(long, default_value_t = 100)]
    memory_poll_millis: u64,
}

/// Resolves a program name to an absolute path, since the Pod's search
/// path links to it.
fn absolute_program(program: &str) -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(program);
    if path.is_absolute() {
        return Ok(path);
    }
    let search = std::env::var("PATH").unwrap_or_default();
    search
        .split(':')
        .map(|dir| PathBuf::from(dir).join(program))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("program {program:?} not found in PATH; pass an absolute path"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kube_testbed::telemetry::init_tracing();
    let args = Args::parse();

    let mut nodes = Vec::new();
    for (index, text) in args.nodes.iter().enumerate() {
        let port = args.kubelet_port_base + index as u16;
        nodes.push(kubelet::parse_node(text, port).map_err(anyhow::Error::msg)?);
    }
    let interpreters = Interpreters {
        python: absolute_program(&args.python)?,
        node: absolute_program(&args.node_binary)?,
    };

    let kubeconfig = kube::config::Kubeconfig::read_from(&args.kubeconfig)
        .with_context(|| format!("failed to read kubeconfig {}", args.kubeconfig.display()))?;
    let client_config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let client = kube::Client::try_from(client_config)?;

    let config = kubelet::Config {
        nodes,
        work_dir: args.work_dir,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        interpreters,
        heartbeat_interval: Duration::from_secs(args.heartbeat_seconds),
        start_delay: Duration::from_millis(args.start_delay_millis),
        capacity: kubelet::NodeCapacity {
            cpu: args.node_cpu,
            memory: args.node_memory,
            pods: args.node_pods,
        },
        memory_poll_interval: Duration::from_millis(args.memory_poll_millis),
    };
    tracing::info!(nodes = ?config.nodes.iter().map(|node| &node.name).collect::<Vec<_>>(), "kubelet-sim starting");
    let result = kubelet::run(client, config, shutdown_signal()).await;
    tracing::info!("kubelet-sim stopped");
    result
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("failed to install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
