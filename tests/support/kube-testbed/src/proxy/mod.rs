//! The fault proxy: a TLS reverse proxy in front of the API server whose
//! faults (error bursts, latency, watch drops) an admin API sets at runtime.

mod admin;
mod faults;
mod forward;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use hyper::Uri;

pub use faults::Faults;

/// Settings of a fault-proxy process.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub upstream: Uri,
    pub upstream_ca: PathBuf,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
}

/// Serves the proxy and its admin API until the process ends.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let faults = Arc::new(Faults::default());
    let client_tls = crate::tls::client_config(&config.upstream_ca)?;
    let server_tls = crate::tls::server_config(&config.tls_cert, &config.tls_key)?;
    let forwarder =
        forward::Forwarder::new(config.upstream.clone(), client_tls, Arc::clone(&faults));

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("failed to listen on {}", config.listen))?;
    let admin_listener = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| {
            format!(
                "failed to listen on {} for the admin API",
                config.admin_listen
            )
        })?;
    tracing::info!(listen = %config.listen, admin = %config.admin_listen, upstream = %config.upstream, "fault-proxy serving");

    let service = hyper::service::service_fn(move |request| {
        let forwarder = forwarder.clone();
        async move { forwarder.handle(request).await }
    });
    let proxy = crate::net::serve_tls(listener, server_tls, service);
    let admin = axum::serve(admin_listener, admin::router(faults));
    tokio::select! {
        _ = proxy => Ok(()),
        result = admin => result.context("admin API server failed"),
    }
}
