//! Support of the Kubernetes black-box tests: the local test cluster of
//! `scripts/local-cluster.sh`, the `api` and `worker` processes with their
//! own tokens, the admin view of runner objects, the fault proxy and worker
//! metrics.
//!
//! The cluster is found and prepared once per test binary. When it is not
//! reachable, [`cluster`] prints why and returns `None`, so a test returns
//! early, unless `CODE_RUNNER_REQUIRE_CLUSTER=1` makes that a failure.
#![allow(dead_code)]

pub mod admin;
pub mod metrics;
pub mod proxy;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::common::{service, Mode, ServiceBuilder};

/// Namespace of runner Jobs and Pods, as `deploy/base/rbac.yaml` grants it.
pub const RUNNER_NAMESPACE: &str = "code-runner-runs";
/// Environment variable that turns an unreachable cluster into a failure.
pub const REQUIRE_CLUSTER: &str = "CODE_RUNNER_REQUIRE_CLUSTER";
/// Nodes of the local cluster labelled `runner=true`.
pub const RUNNER_NODES: [&str; 2] = ["node-a", "node-b"];

/// Paths and addresses of the local test cluster, from `local-cluster.sh env`.
#[derive(Debug)]
pub struct Cluster {
    pub admin_kubeconfig: PathBuf,
    pub api_kubeconfig: PathBuf,
    pub worker_kubeconfig: PathBuf,
    /// The worker's identity through the fault proxy.
    pub worker_proxy_kubeconfig: PathBuf,
    pub fault_proxy_admin_url: String,
}

/// Outcome of the one-time cluster setup.
enum Setup {
    Ready(Cluster),
    /// The cluster is not running here: a skip, or a failure when required.
    Unreachable(String),
    /// The API server is ready but the manifests could not be applied: always a failure.
    Failed(String),
}

static SETUP: OnceLock<Setup> = OnceLock::new();

/// Returns the prepared cluster, or `None` after printing why the calling
/// test is skipped. Panics when the cluster is required but unreachable, or
/// when applying the manifests failed.
pub fn cluster() -> Option<&'static Cluster> {
    match SETUP.get_or_init(set_up) {
        Setup::Ready(cluster) => Some(cluster),
        Setup::Unreachable(reason) if cluster_required() => panic!(
            "{REQUIRE_CLUSTER}=1 but the local test cluster is not reachable: {reason}\n\
             Start it with `scripts/local-cluster.sh up` (see docs/local-cluster.md)."
        ),
        Setup::Unreachable(reason) => {
            eprintln!(
                "skipped: the local test cluster is not reachable ({reason}). Start it with \
                 `scripts/local-cluster.sh up`, or set {REQUIRE_CLUSTER}=1 to fail instead."
            );
            None
        }
        Setup::Failed(reason) => panic!("preparing the local test cluster failed: {reason}"),
    }
}

fn cluster_required() -> bool {
    std::env::var(REQUIRE_CLUSTER).is_ok_and(|value| value == "1")
}

/// Returns the repository root, where `scripts/` and `deploy/` are.
pub fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Finds the cluster, checks that its API server is ready, and applies the
/// namespaces and RBAC of `deploy/base` with the admin identity.
fn set_up() -> Setup {
    let script = repository().join("scripts/local-cluster.sh");
    let output = match Command::new(&script).arg("env").output() {
        Ok(output) => output,
        Err(error) => {
            return Setup::Unreachable(format!("cannot start {}: {error}", script.display()))
        }
    };
    if !output.status.success() {
        return Setup::Unreachable(format!(
            "`local-cluster.sh env` failed: {}",
            stderr_of(&output)
        ));
    }
    let settings = parse_exports(&String::from_utf8_lossy(&output.stdout));
    let setting = |name: &str| settings.get(name).cloned().unwrap_or_default();
    let cluster = Cluster {
        admin_kubeconfig: setting("KUBECONFIG_ADMIN").into(),
        api_kubeconfig: setting("KUBECONFIG_API").into(),
        worker_kubeconfig: setting("KUBECONFIG_WORKER").into(),
        worker_proxy_kubeconfig: setting("KUBECONFIG_WORKER_PROXY").into(),
        fault_proxy_admin_url: setting("FAULT_PROXY_ADMIN_URL"),
    };
    if !cluster.admin_kubeconfig.is_file() {
        return Setup::Unreachable(format!(
            "the admin kubeconfig {:?} does not exist",
            cluster.admin_kubeconfig
        ));
    }

    let readyz = kubectl(
        &cluster,
        &["get", "--raw", "/readyz", "--request-timeout=5s"],
    );
    match readyz {
        Ok(output) if output.status.success() => {}
        Ok(output) => {
            return Setup::Unreachable(format!(
                "GET /readyz of the API server failed: {}",
                stderr_of(&output)
            ))
        }
        Err(error) => return Setup::Unreachable(format!("cannot start kubectl: {error}")),
    }

    let base = repository().join("deploy/base");
    let namespaces = base.join("namespaces.yaml");
    let rbac = base.join("rbac.yaml");
    let applied = kubectl(
        &cluster,
        &[
            "apply",
            "--request-timeout=30s",
            "-f",
            &namespaces.display().to_string(),
            "-f",
            &rbac.display().to_string(),
        ],
    );
    match applied {
        Ok(output) if output.status.success() => Setup::Ready(cluster),
        Ok(output) => Setup::Failed(format!(
            "kubectl apply of {} and {} failed: {}",
            namespaces.display(),
            rbac.display(),
            stderr_of(&output)
        )),
        Err(error) => Setup::Failed(format!("cannot start kubectl: {error}")),
    }
}

/// Runs `kubectl` with the admin kubeconfig.
fn kubectl(cluster: &Cluster, args: &[&str]) -> std::io::Result<Output> {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&cluster.admin_kubeconfig)
        .args(args)
        .output()
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_string()
}

/// Parses `export NAME=value` lines as printed by `local-cluster.sh env`.
fn parse_exports(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("export "))
        .filter_map(|assignment| assignment.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

impl Cluster {
    /// Prepares `code-runner api` with the api identity's kubeconfig.
    pub fn api(&self, name: &str) -> ServiceBuilder {
        service(Mode::Api, name)
            .env("EXECUTOR", "kubernetes")
            .env("KUBECONFIG", self.api_kubeconfig.display())
            .env("RUNNER_NAMESPACE", RUNNER_NAMESPACE)
    }

    /// Prepares `code-runner worker` with the worker identity's kubeconfig,
    /// straight to the API server, placing Pods on nodes labelled `runner=true`.
    /// A later `.env("KUBECONFIG", ...)` or `.env("RUNNER_NODE_SELECTOR", ...)`
    /// overrides these.
    pub fn worker(&self, name: &str, worker_id: &str) -> ServiceBuilder {
        service(Mode::Worker, name)
            .env("EXECUTOR", "kubernetes")
            .env("KUBECONFIG", self.worker_kubeconfig.display())
            .env("WORKER_ID", worker_id)
            .env("RUNNER_NAMESPACE", RUNNER_NAMESPACE)
            .env("RUNNER_NODE_SELECTOR", "runner=true")
    }

    /// Runs `local-cluster.sh compact`, which compacts etcd past every
    /// resourceVersion seen so far and drops the fault proxy's open watches,
    /// so that resumed watches get 410 Gone. Returns the number of dropped watches.
    pub fn compact(&self) -> u64 {
        let script = repository().join("scripts/local-cluster.sh");
        let output = Command::new(&script)
            .arg("compact")
            .output()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", script.display()));
        assert!(
            output.status.success(),
            "`local-cluster.sh compact` failed: {}",
            stderr_of(&output)
        );
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
                panic!(
                    "`local-cluster.sh compact` printed {:?}, which is not JSON: {error}",
                    String::from_utf8_lossy(&output.stdout)
                )
            });
        report["dropped_watches"].as_u64().unwrap_or_else(|| {
            panic!("`local-cluster.sh compact` printed no dropped_watches: {report}")
        })
    }
}
