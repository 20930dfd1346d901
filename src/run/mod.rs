//! The run model: languages, states, the create request and the run object.

mod language;
mod record;
mod request;
mod status;

pub use language::Language;
pub use record::{Run, RunFields};
pub use request::{CreateRun, ValidatedRun, ValidationError};
pub use status::RunStatus;

/// Creates a new run id: a lowercase ULID, sortable by creation time.
pub fn new_run_id() -> String {
    ulid::Ulid::new().to_string().to_lowercase()
}

/// Checks that `id` has the shape of a run id, so that it can be used in
/// Redis keys and Kubernetes object names.
pub fn is_valid_run_id(id: &str) -> bool {
    id.len() == 26
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// Formats a timestamp as the API and the store write it: RFC 3339, UTC, milliseconds.
pub fn format_timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
