//! Reading a worker's Prometheus metrics.

use crate::common::Service;

/// Reads `GET /metrics` from a worker's metrics listener (`METRICS_ADDR`).
pub async fn scrape(worker: &Service) -> String {
    let url = format!("http://{}/metrics", worker.metrics_addr);
    let response = worker
        .http()
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|error| panic!("GET {url} failed: {error}"));
    assert_eq!(response.status(), 200, "GET {url}");
    response.text().await.expect("the metrics body can be read")
}

/// Sums the samples of `name` whose labels include every pair of `labels`.
/// Returns 0 when no sample matches, as for a counter never incremented.
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(parse_sample)
        .filter(|sample| sample.name == name)
        .filter(|sample| {
            labels
                .iter()
                .all(|(key, value)| sample.labels.iter().any(|(k, v)| k == key && v == value))
        })
        .map(|sample| sample.value)
        // `sum` of no f64 values is -0.0, which prints as "-0".
        .fold(0.0, |total, value| total + value)
}

/// Checks whether any sample of `name` exists, whatever its value.
pub fn has(text: &str, name: &str) -> bool {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(parse_sample)
        .any(|sample| sample.name == name)
}

/// One line of the Prometheus text format.
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Parses `name{key="value",...} value`. Label values here never contain
/// quotes or commas, so no escapes are handled.
fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => {
            let inside = rest.strip_suffix('}')?;
            let labels = inside
                .split(',')
                .filter(|pair| !pair.is_empty())
                .filter_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    Some((key.to_string(), value.trim_matches('"').to_string()))
                })
                .collect();
            (name, labels)
        }
        None => (series, Vec::new()),
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}
