//! Fault-injecting reverse proxy for a Kubernetes API server.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use kube_testbed::proxy;

#[derive(Debug, Parser)]
#[command(
    about = "TLS reverse proxy in front of an API server, with faults set through an admin API"
)]
struct Args {
    /// Address of the proxy (TLS).
    #[arg(long, default_value = "127.0.0.1:16480")]
    listen: SocketAddr,
    /// Address of the admin API (plain HTTP); keep it on loopback.
    #[arg(long, default_value = "127.0.0.1:16481")]
    admin_listen: SocketAddr,
    /// URL of the API server, such as https://127.0.0.1:16443.
    #[arg(long)]
    upstream: hyper::Uri,
    /// PEM CA certificate that signed the API server's certificate.
    #[arg(long)]
    upstream_ca: PathBuf,
    /// PEM certificate the proxy serves.
    #[arg(long)]
    tls_cert: PathBuf,
    /// PEM private key of --tls-cert.
    #[arg(long)]
    tls_key: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kube_testbed::telemetry::init_tracing();
    let args = Args::parse();
    let config = proxy::Config {
        listen: args.listen,
        admin_listen: args.admin_listen,
        upstream: args.upstream,
        upstream_ca: args.upstream_ca,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
    };
    tokio::select! {
        result = proxy::run(config) => result,
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("fault-proxy stopping");
            Ok(())
        }
    }
}
