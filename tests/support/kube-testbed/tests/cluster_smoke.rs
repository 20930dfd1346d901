//! Checks, with kube's own client, that the fault proxy reaches it: an
//! injected 500 and a watch resumed after `local-cluster.sh compact`.
//!
//! They need a running cluster, so they are ignored by default:
//! `scripts/local-cluster.sh up && eval "$(scripts/local-cluster.sh env)"`,
//! then `cargo test -p kube-testbed -- --ignored`.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use kube::runtime::watcher;
use kube::{Api, Client};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set; run: eval \"$(scripts/local-cluster.sh env)\"")
    })
}

async fn proxy_client() -> Client {
    let path = env("KUBECONFIG_ADMIN_PROXY");
    let kubeconfig = kube::config::Kubeconfig::read_from(&path)
        .unwrap_or_else(|error| panic!("failed to read kubeconfig {path}: {error}"));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap_or_else(|error| panic!("invalid kubeconfig {path}: {error}"));
    Client::try_from(config)
        .unwrap_or_else(|error| panic!("failed to build a client from {path}: {error}"))
}

/// Sends `body` to the fault proxy's admin API and returns the status.
async fn admin_post(path: &str, body: &str) -> u16 {
    let client = HttpClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = hyper::Request::post(format!("{}{path}", env("FAULT_PROXY_ADMIN_URL")))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = client
        .request(request)
        .await
        .expect("admin API unreachable");
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    status
}

#[tokio::test]
#[ignore = "needs scripts/local-cluster.sh up"]
async fn injected_500_reaches_kube_client() {
    let nodes: Api<Node> = Api::all(proxy_client().await);
    // The odd limit keeps the burst off the other test's watcher, which
    // lists the same resource.
    let burst = r#"{"status":500,"count":1,"method":"GET","path_contains":"limit=7"}"#;
    assert_eq!(admin_post("/faults", burst).await, 201);

    let params = ListParams::default().limit(7);
    let failed = nodes.list(&params).await;
    let recovered = nodes.list(&params).await;

    match failed {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 500),
        other => panic!("expected the injected 500, got {other:?}"),
    }
    assert!(
        recovered.is_ok(),
        "list after the burst failed: {recovered:?}"
    );
}

#[tokio::test]
#[ignore = "needs scripts/local-cluster.sh up"]
async fn compact_expires_resumed_watch() {
    let nodes: Api<Node> = Api::all(proxy_client().await);
    let mut events = watcher(nodes, watcher::Config::default()).boxed();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("no initial list within 10s")
            .expect("watch stream ended");
        if matches!(event, Ok(watcher::Event::InitDone)) {
            break;
        }
    }

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../scripts/local-cluster.sh"
    );
    let output = tokio::process::Command::new(script)
        .arg("compact")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "compact failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let mut saw_gone = false;
    let mut relisted = false;
    while !relisted {
        let event = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("no watch event within 20s of compaction")
            .expect("watch stream ended");
        match event {
            Err(watcher::Error::WatchError(status)) if status.code == 410 => saw_gone = true,
            Ok(watcher::Event::Init) if saw_gone => relisted = true,
            _ => {}
        }
    }
    assert!(saw_gone, "the resumed watch did not get 410 Gone");
}
