//! Kubernetes access: the client, names and labels, and the objects of a run.

pub mod cluster;
pub mod logs;
pub mod names;
pub mod objects;

use k8s_openapi::api::core::v1::Pod;
use tracing::info;

/// Errors while building a Kubernetes client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no Kubernetes configuration: not in a cluster ({in_cluster}) and no usable kubeconfig ({kubeconfig})")]
    NoConfig {
        in_cluster: String,
        kubeconfig: String,
    },
    #[error("building the Kubernetes client failed: {0}")]
    Build(#[source] kube::Error),
}

/// Builds a client from the in-cluster service account, then `KUBECONFIG`,
/// then `~/.kube/config`.
pub async fn client() -> Result<kube::Client, ClientError> {
    let config = match kube::Config::incluster() {
        Ok(config) => {
            info!("using the in-cluster Kubernetes configuration");
            config
        }
        Err(in_cluster) => {
            let options = kube::config::KubeConfigOptions::default();
            match kube::Config::from_kubeconfig(&options).await {
                Ok(config) => {
                    info!(cluster_url = %config.cluster_url, "using the Kubernetes configuration from the kubeconfig");
                    config
                }
                Err(kubeconfig) => {
                    return Err(ClientError::NoConfig {
                        in_cluster: in_cluster.to_string(),
                        kubeconfig: kubeconfig.to_string(),
                    })
                }
            }
        }
    };
    kube::Client::try_from(config).map_err(ClientError::Build)
}

/// Picks the newest of a run's Pods; with `backoffLimit: 0` there is normally one.
pub fn newest_pod<P: std::borrow::Borrow<Pod>>(pods: impl IntoIterator<Item = P>) -> Option<P> {
    pods.into_iter().max_by_key(|pod| {
        pod.borrow()
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|time| time.0.as_millisecond())
    })
}
