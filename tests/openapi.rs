//! Black-box tests of `GET /openapi.json` against the real binary: the
//! document is public, and the routes respond the way it documents them.

mod common;

use std::collections::BTreeSet;

use common::{assert_error, service, Mode, RedisServer};
use serde_json::Value;

const TOKEN: &str = "openapi-test-token-0123456789";
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

#[tokio::test]
async fn document_is_public_and_matches_routes() {
    let redis = RedisServer::start().await;
    let service = service(Mode::Dev, "openapi")
        .env("API_TOKENS", TOKEN)
        .start(&redis)
        .await;

    // No token is needed for the document, as for the probes.
    let response = service
        .http()
        .get(service.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");

    let paths = document["paths"]
        .as_object()
        .expect("the document has paths");
    for (path, item) in paths {
        let documented: BTreeSet<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .filter(|key| METHODS.contains(key))
            .collect();
        // A concrete path: the run id does not need to exist for a 405.
        let url = service.url(&path.replace("{id}", "01jf3m6x2q8v9w0a1b2c3d4e5f"));

        for method in METHODS
            .iter()
            .filter(|method| !documented.contains(*method))
        {
            let response = service
                .http()
                .request(method.to_uppercase().parse().unwrap(), &url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            let context = format!("{} {path}", method.to_uppercase());
            let allow = response
                .headers()
                .get("allow")
                .unwrap_or_else(|| panic!("{context}: a 405 carries Allow"))
                .to_str()
                .unwrap()
                .to_ascii_lowercase();
            let allowed: BTreeSet<&str> = allow
                .split(',')
                .map(str::trim)
                .filter(|method| *method != "head")
                .collect();
            assert_eq!(allowed, documented, "{context}: Allow {allow}");
            assert_error(&context, response, 405, "method_not_allowed", None).await;
        }
    }
}

#[tokio::test]
async fn protected_operations_reject_missing_token() {
    let redis = RedisServer::start().await;
    let service = service(Mode::Dev, "openapi-auth")
        .env("API_TOKENS", TOKEN)
        .start(&redis)
        .await;
    let document: Value = service
        .http()
        .get(service.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let url = service.url(&path.replace("{id}", "01jf3m6x2q8v9w0a1b2c3d4e5f"));
            let response = service
                .http()
                .request(method.to_uppercase().parse().unwrap(), &url)
                .send()
                .await
                .unwrap();
            let context = format!("{} {path} without a token", method.to_uppercase());
            if operation.get("security").is_some() {
                assert_error(&context, response, 401, "unauthorized", None).await;
            } else {
                assert_ne!(response.status(), 401, "{context}");
            }
        }
    }
}
