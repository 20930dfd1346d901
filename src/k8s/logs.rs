//! Reading a runner Pod's output through the `pods/log` subresource.

use futures::AsyncReadExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use kube::Api;

use crate::executor::output::OutputCapture;
use crate::metrics;

/// Name of the container in runner Pods.
pub const CONTAINER: &str = "runner";

/// Reads up to `max_bytes` of a Pod's output as UTF-8 text. The returned flag
/// is true when the output was longer and was cut.
pub async fn read(
    pods: &Api<Pod>,
    pod: &str,
    max_bytes: usize,
) -> Result<(String, bool), kube::Error> {
    let params = LogParams {
        container: Some(CONTAINER.to_string()),
        // A few bytes more than the cap tell whether the output went on.
        limit_bytes: Some(max_bytes as i64 + 4),
        ..LogParams::default()
    };
    let stream = pods.log_stream(pod, &params).await;
    metrics::record_kube_request(
        "get",
        "pods/log",
        crate::executor::kubernetes::outcome(&stream),
    );
    let mut stream = Box::pin(stream?);

    let mut capture = OutputCapture::new(max_bytes);
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = stream
            .read(&mut buffer)
            .await
            .map_err(kube::Error::ReadEvents)?;
        if read == 0 || capture.truncated() {
            break;
        }
        capture.push(&buffer[..read]);
    }
    capture.finish();
    Ok((capture.text().to_string(), capture.truncated()))
}
