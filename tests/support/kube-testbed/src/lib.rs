//! Test support for code-runner's Kubernetes executor: a simulated kubelet
//! (`kubelet-sim`) and a fault-injecting reverse proxy (`fault-proxy`) that
//! run beside a real API server started by `scripts/local-cluster.sh`.

pub mod kubelet;
pub mod net;
pub mod proxy;
pub mod telemetry;
pub mod tls;
