//! Redis key names. `runs:queue`, `run:{id}` and `runs:recent` are read by
//! KEDA and by operators' scripts, so they must not change.

pub const QUEUE: &str = "runs:queue";
pub const ACTIVE: &str = "runs:active";
pub const RECENT: &str = "runs:recent";
pub const EVENTS: &str = "runs:events";
/// Pub/sub channel on which cancelled run ids are published to workers.
pub const CANCEL_CHANNEL: &str = "runs:cancel";

pub fn run(id: &str) -> String {
    format!("run:{id}")
}

pub fn logs(id: &str) -> String {
    format!("run:{id}:logs")
}

pub fn processing(worker: &str) -> String {
    format!("runs:processing:{worker}")
}

pub const PROCESSING_PREFIX: &str = "runs:processing:";

pub fn heartbeat(worker: &str) -> String {
    format!("worker:{worker}")
}

pub fn idempotency(key: &str) -> String {
    format!("idempotency:{key}")
}
