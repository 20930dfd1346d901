//! A JSON body extractor whose every rejection is an [`ApiError`] that names
//! the problem and, where it can, the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Like `axum::Json`, with the API's error shape for every failure.
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|value| value.to_str().unwrap_or("<not text>").to_string());
        match content_type.as_deref() {
            Some(value) if is_json(value) => {}
            Some(value) => return Err(ApiError::UnsupportedMediaType(format!("{value:?}"))),
            None => return Err(ApiError::UnsupportedMediaType("no Content-Type".into())),
        }

        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge {
                        message: "the request body is larger than the limit".into(),
                        field: None,
                    }
                } else {
                    ApiError::InvalidRequest {
                        message: format!("reading the request body failed: {rejection}"),
                        field: None,
                    }
                }
            })?;
        parse(&bytes).map(JsonBody)
    }
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a JSON body, naming the failing field when there is one.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde's derived structs also accept arrays of field values; the API takes objects only.
    let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
    if first.is_some_and(|byte| *byte != b'{') {
        return Err(ApiError::InvalidRequest {
            message: "the request body must be a JSON object".into(),
            field: None,
        });
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let detail = inner.to_string();
        let syntax = matches!(
            inner.classify(),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof
        );
        let field = if syntax {
            None
        } else if path != "." {
            Some(path)
        } else {
            field_in_message(&detail)
        };
        let message = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                format!("the request body is not valid JSON: {detail}")
            }
            _ => match &field {
                Some(field) if !detail.contains(&format!("`{field}`")) => {
                    format!("{field}: {detail}")
                }
                _ => detail,
            },
        };
        ApiError::InvalidRequest { message, field }
    })?;
    // Anything after the object, such as a second value, makes the body invalid.
    deserializer
        .end()
        .map_err(|error| ApiError::InvalidRequest {
            message: format!("the request body is not valid JSON: {error}"),
            field: None,
        })?;
    Ok(value)
}

/// Finds the field named in serde's "missing field `x`" and "unknown field `x`" messages.
fn field_in_message(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    (message.contains("missing field") || message.contains("unknown field"))
        .then(|| message[start..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::CreateRun;

    fn field_of(body: &str) -> Option<String> {
        match parse::<CreateRun>(body.as_bytes()) {
            Err(ApiError::InvalidRequest { field, .. }) => field,
            other => panic!("expected invalid_request, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            field_of(r#"{"language":"python"}"#).as_deref(),
            Some("code")
        );
        assert_eq!(
            field_of(r#"{"language":"python","code":"x","extra":1}"#).as_deref(),
            Some("extra")
        );
        assert_eq!(
            field_of(r#"{"language":"python","code":"x","timeout_seconds":"30"}"#).as_deref(),
            Some("timeout_seconds")
        );
        assert_eq!(field_of(r#"{"language":"#), None);
        assert_eq!(field_of(r#"["python", "print(1)"]"#), None);
        assert_eq!(
            field_of(r#"{"language":"python","code":"x"} trailing"#),
            None
        );
        assert_eq!(field_of(r#"{"language":"python","code":"x"}{}"#), None);
    }

    #[test]
    fn json_content_types_are_recognised() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
    }
}
