//! The Redis store: run records, the queue, logs and the event stream.
//! Every write that touches more than one key is one atomic Lua script.

mod connection;
pub mod keys;
pub(crate) mod scripts;

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use redis::{AsyncCommands, ErrorKind, RedisError, ServerErrorKind};

pub use connection::Redis;

use crate::config::Config;
use crate::run::{format_timestamp, is_valid_run_id, Run, RunFields, RunStatus, ValidatedRun};

/// Upper bound of the event stream length, trimmed approximately.
pub const EVENTS_MAX_LEN: u64 = 100_000;
/// How long an idempotency key maps to the run it created.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis is unavailable: {0}")]
    Unavailable(#[source] RedisError),
    #[error("redis command failed: {0}")]
    Redis(#[source] RedisError),
    #[error("run {id} has a malformed record: {detail}")]
    Malformed { id: String, detail: String },
}

impl From<RedisError> for StoreError {
    fn from(error: RedisError) -> Self {
        let unavailable = error.is_io_error()
            || error.is_timeout()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || matches!(
                error.kind(),
                ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::MasterDown
                )
            );
        if unavailable {
            StoreError::Unavailable(error)
        } else {
            StoreError::Redis(error)
        }
    }
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Outcome of `submit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    Created(String),
    /// The idempotency key already names this run.
    Existing(String),
    /// The queue contains this many ids, at or above the configured maximum.
    QueueFull(u64),
}

/// Run fields a worker needs to execute a run, code and stdin included.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub id: String,
    pub language: crate::run::Language,
    pub code: String,
    pub stdin: Option<String>,
    pub timeout_seconds: u64,
    pub status: RunStatus,
    pub executor: Option<String>,
    pub worker: Option<String>,
    pub dispatched_at: Option<String>,
    pub started_at: Option<String>,
    pub created_at: String,
}

/// Result of a state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// True when this call changed the state, so this caller reports it.
    pub applied: bool,
    /// True when the run already had this unfinished state and only its fields changed.
    pub updated: bool,
    /// The state before the call, or `None` when the run does not exist.
    pub previous: Option<RunStatus>,
}

/// Outcome of `delete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
    Unfinished(RunStatus),
}

/// A page of `GET /runs`.
#[derive(Debug, Clone)]
pub struct RunPage {
    pub runs: Vec<Run>,
    pub next_cursor: Option<String>,
}

/// Pairs an HMGET reply for [`Run::FIELDS`] with the field names, leaving out
/// fields the hash does not have.
fn fields_of(row: Vec<Option<String>>) -> HashMap<String, String> {
    Run::FIELDS
        .iter()
        .zip(row)
        .filter_map(|(name, value)| value.map(|value| (name.to_string(), value)))
        .collect()
}

/// Run records, queue and logs in Redis.
pub struct RunStore {
    redis: Redis,
    retention: Duration,
    queue_max_depth: u64,
}

impl RunStore {
    pub fn new(config: &Config) -> Result<Self> {
        Ok(Self {
            redis: Redis::new(&config.redis_url)?,
            retention: config.run_retention,
            queue_max_depth: config.queue_max_depth,
        })
    }

    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Sends PING; used by readiness checks.
    pub async fn ping(&self) -> Result<()> {
        let mut connection = self.redis.connection().await?;
        let _: String = redis::cmd("PING").query_async(&mut connection).await?;
        Ok(())
    }

    /// Stores a validated run, queues it and records the `queued` event.
    pub async fn submit(
        &self,
        run: &ValidatedRun,
        idempotency_key: Option<&str>,
    ) -> Result<SubmitOutcome> {
        let now = Utc::now();
        let id = ulid::Ulid::from_datetime(now.into())
            .to_string()
            .to_lowercase();
        let mut connection = self.redis.connection().await?;

        let mut invocation = scripts::SUBMIT.prepare_invoke();
        invocation
            .key(keys::run(&id))
            .key(keys::QUEUE)
            .key(keys::RECENT)
            .key(keys::EVENTS)
            .key(keys::idempotency(idempotency_key.unwrap_or("")))
            .arg(&id)
            .arg(format_timestamp(now))
            .arg(now.timestamp_millis())
            .arg(self.retention.as_secs())
            .arg(self.queue_max_depth)
            .arg(EVENTS_MAX_LEN)
            .arg(if idempotency_key.is_some() { "1" } else { "0" })
            .arg(IDEMPOTENCY_TTL.as_secs())
            .arg("language")
            .arg(run.language.as_str())
            .arg("code")
            .arg(&run.code)
            .arg("timeout_seconds")
            .arg(run.timeout_seconds)
            .arg("logs_truncated")
            .arg("0");
        if let Some(stdin) = &run.stdin {
            invocation.arg("stdin").arg(stdin);
        }
        let (outcome, value): (String, String) = invocation.invoke_async(&mut connection).await?;

        match outcome.as_str() {
            "created" => Ok(SubmitOutcome::Created(value)),
            "existing" => Ok(SubmitOutcome::Existing(value)),
            "queue_full" => Ok(SubmitOutcome::QueueFull(
                value.parse().unwrap_or(self.queue_max_depth),
            )),
            other => Err(StoreError::Malformed {
                id,
                detail: format!("submit script returned {other:?}"),
            }),
        }
    }

    /// Reads one run, or `None` when it does not exist or has expired.
    pub async fn get(&self, id: &str) -> Result<Option<Run>> {
        if !is_valid_run_id(id) {
            return Ok(None);
        }
        let mut connection = self.redis.connection().await?;
        // The run object's fields only: code and stdin can be large.
        let row: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(keys::run(id))
            .arg(&Run::FIELDS[..])
            .query_async(&mut connection)
            .await?;
        let hash = fields_of(row);
        if hash.is_empty() {
            return Ok(None);
        }
        Run::from_hash(id, &hash)
            .map(Some)
            .ok_or_else(|| StoreError::Malformed {
                id: id.to_string(),
                detail: "missing status, language, timeout_seconds or created_at".into(),
            })
    }

    /// Reads what a worker needs to execute a run.
    pub async fn spec(&self, id: &str) -> Result<Option<RunSpec>> {
        let mut connection = self.redis.connection().await?;
        let hash: HashMap<String, String> = connection.hgetall(keys::run(id)).await?;
        if hash.is_empty() {
            return Ok(None);
        }
        let malformed = |detail: &str| StoreError::Malformed {
            id: id.to_string(),
            detail: detail.to_string(),
        };
        let field = |name: &str| hash.get(name).filter(|v| !v.is_empty()).cloned();
        Ok(Some(RunSpec {
            id: id.to_string(),
            language: field("language")
                .and_then(|l| l.parse().ok())
                .ok_or_else(|| malformed("unknown language"))?,
            code: field("code").ok_or_else(|| malformed("missing code"))?,
            stdin: field("stdin"),
            timeout_seconds: field("timeout_seconds")
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| malformed("invalid timeout_seconds"))?,
            status: field("status")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| malformed("invalid status"))?,
            executor: field("executor"),
            worker: field("worker"),
            dispatched_at: field("dispatched_at"),
            started_at: field("started_at"),
            created_at: field("created_at").unwrap_or_default(),
        }))
    }

    /// Moves a run forward to `status`, writing `fields` with it. Does nothing when
    /// the run is already at or past that state, so duplicate and late updates are harmless.
    pub async fn transition(
        &self,
        id: &str,
        status: RunStatus,
        fields: &RunFields,
    ) -> Result<Transition> {
        self.transition_with(id, status, fields, &[]).await
    }

    /// Moves a run to a terminal state and stores its final logs in the same step.
    pub async fn finish_with_logs(
        &self,
        id: &str,
        status: RunStatus,
        fields: &RunFields,
        logs: &str,
    ) -> Result<Transition> {
        let ttl = self.retention.as_secs().to_string();
        self.transition_with(
            id,
            status,
            fields,
            &[("__logs", logs), ("__logs_ttl", &ttl)],
        )
        .await
    }

    /// Like [`transition`](Self::transition), with extra raw hash fields.
    pub async fn transition_with(
        &self,
        id: &str,
        status: RunStatus,
        fields: &RunFields,
        extra: &[(&str, &str)],
    ) -> Result<Transition> {
        let mut connection = self.redis.connection().await?;
        let mut invocation = scripts::TRANSITION.prepare_invoke();
        invocation
            .key(keys::run(id))
            .key(keys::EVENTS)
            .key(keys::ACTIVE)
            .key(keys::QUEUE)
            .key(keys::logs(id))
            .arg(id)
            .arg(status.as_str())
            .arg(format_timestamp(Utc::now()))
            .arg(EVENTS_MAX_LEN);
        for (name, value) in fields.to_pairs() {
            invocation.arg(name).arg(value);
        }
        for (name, value) in extra {
            invocation.arg(*name).arg(*value);
        }
        let (applied, previous): (i64, String) = invocation.invoke_async(&mut connection).await?;
        Ok(Transition {
            applied: applied == 1,
            updated: applied == 2,
            previous: previous.parse().ok(),
        })
    }

    /// Writes output into a run's logs at byte `offset` and renews their
    /// expiry; returns the stored length afterwards. Writing at an offset,
    /// unlike APPEND, makes a retry after a timed-out call harmless. A
    /// returned length below `offset` means Redis lost earlier output, which
    /// the caller then writes again from that length.
    pub async fn write_logs_at(&self, id: &str, offset: usize, chunk: &[u8]) -> Result<usize> {
        let mut connection = self.redis.connection().await?;
        let length: usize = scripts::WRITE_LOGS
            .key(keys::logs(id))
            .arg(offset)
            .arg(chunk)
            .arg(self.retention.as_secs())
            .invoke_async(&mut connection)
            .await?;
        Ok(length)
    }

    /// Replaces a run's logs, as the watcher does with a finished Pod's output.
    pub async fn set_logs(&self, id: &str, logs: &[u8]) -> Result<()> {
        let mut connection = self.redis.connection().await?;
        let _: () = connection
            .set_ex(keys::logs(id), logs, self.retention.as_secs())
            .await?;
        Ok(())
    }

    /// Reads a run's stored logs from byte `offset` on.
    pub async fn logs_from(&self, id: &str, offset: usize) -> Result<Vec<u8>> {
        let mut connection = self.redis.connection().await?;
        let bytes: Vec<u8> = connection
            .getrange(keys::logs(id), offset as isize, -1)
            .await?;
        Ok(bytes)
    }

    /// Deletes a finished run's record and logs.
    pub async fn delete(&self, id: &str) -> Result<DeleteOutcome> {
        if !is_valid_run_id(id) {
            return Ok(DeleteOutcome::NotFound);
        }
        let mut connection = self.redis.connection().await?;
        let outcome: redis::Value = scripts::DELETE
            .key(keys::run(id))
            .key(keys::logs(id))
            .key(keys::RECENT)
            .arg(id)
            .invoke_async(&mut connection)
            .await?;
        Ok(match outcome {
            redis::Value::Int(1) => DeleteOutcome::Deleted,
            redis::Value::Int(_) => DeleteOutcome::NotFound,
            other => {
                let status: String =
                    redis::from_redis_value(other).map_err(|error| StoreError::Malformed {
                        id: id.to_string(),
                        detail: error.to_string(),
                    })?;
                DeleteOutcome::Unfinished(status.parse().map_err(|detail| {
                    StoreError::Malformed {
                        id: id.to_string(),
                        detail,
                    }
                })?)
            }
        })
    }

    /// Lists recent runs, newest first. `cursor` is the last id of the
    /// previous page. A page can come back short with a `next_cursor` when a
    /// status filter matched few of the runs scanned.
    pub async fn list(
        &self,
        limit: usize,
        cursor: Option<&str>,
        status: Option<RunStatus>,
    ) -> Result<RunPage> {
        // Bounds the work of one request when a status filter matches few runs.
        const MAX_SCANNED: usize = 5_000;
        // Larger than the runs created within one millisecond, which share a score.
        const BATCH: usize = 512;

        // Ids are ULIDs: sorted by (score, member) they are sorted by creation
        // time, and an id's timestamp is its score.
        let mut after: Option<String> = cursor.map(str::to_string);
        let mut connection = self.redis.connection().await?;
        let mut runs = Vec::new();
        let mut scanned = 0;
        let mut exhausted = false;

        while runs.len() < limit && scanned < MAX_SCANNED {
            let max_score = match &after {
                Some(id) => match ulid::Ulid::from_string(&id.to_uppercase()) {
                    Ok(ulid) => ulid.timestamp_ms().to_string(),
                    Err(_) => {
                        exhausted = true;
                        break;
                    }
                },
                None => "+inf".to_string(),
            };
            let members: Vec<String> = connection
                .zrevrangebyscore_limit(keys::RECENT, &max_score, "-inf", 0, BATCH as isize)
                .await?;
            let fetched = members.len();
            let candidates: Vec<String> = members
                .into_iter()
                .filter(|id| after.as_deref().is_none_or(|after| id.as_str() < after))
                .collect();
            if candidates.is_empty() {
                exhausted = true;
                break;
            }

            let mut pipe = redis::pipe();
            for id in &candidates {
                pipe.cmd("HMGET").arg(keys::run(id)).arg(&Run::FIELDS[..]);
            }
            let rows: Vec<Vec<Option<String>>> = pipe.query_async(&mut connection).await?;

            let mut expired = Vec::new();
            for (id, row) in candidates.iter().zip(rows) {
                scanned += 1;
                after = Some(id.clone());
                let hash = fields_of(row);
                if hash.is_empty() {
                    expired.push(id.clone());
                    continue;
                }
                let Some(run) = Run::from_hash(id, &hash) else {
                    continue;
                };
                if status.is_none_or(|wanted| run.status == wanted) {
                    runs.push(run);
                    if runs.len() == limit {
                        break;
                    }
                }
            }
            if !expired.is_empty() {
                let _: () = connection.zrem(keys::RECENT, expired).await?;
            }
            if fetched < BATCH && after.as_deref() == candidates.last().map(String::as_str) {
                exhausted = true;
            }
        }

        let next_cursor = if runs.len() == limit {
            runs.last().map(|run| run.id.clone())
        } else if exhausted {
            None
        } else {
            // The scan stopped at its bound: the client continues from here.
            after
        };
        Ok(RunPage { runs, next_cursor })
    }

    /// Length of `runs:queue`.
    pub async fn queue_depth(&self) -> Result<u64> {
        let mut connection = self.redis.connection().await?;
        Ok(connection.llen(keys::QUEUE).await?)
    }

    /// Up to `limit` queued ids, next to run first.
    pub async fn queued_ids(&self, limit: usize) -> Result<Vec<String>> {
        let mut connection = self.redis.connection().await?;
        let start = -(limit as isize);
        let mut ids: Vec<String> = connection.lrange(keys::QUEUE, start, -1).await?;
        ids.reverse();
        Ok(ids)
    }

    /// Ids in `runs:active`: dispatched and not finished.
    pub async fn active_ids(&self) -> Result<Vec<String>> {
        let mut connection = self.redis.connection().await?;
        Ok(connection.lrange(keys::ACTIVE, 0, -1).await?)
    }

    /// Ids of workers whose heartbeat key exists.
    pub async fn live_workers(&self) -> Result<Vec<String>> {
        let mut connection = self.redis.connection().await?;
        let mut workers = Vec::new();
        let mut iter: redis::AsyncIter<String> = connection.scan_match("worker:*").await?;
        while let Some(key) = futures::StreamExt::next(&mut iter).await {
            workers.push(key?.trim_start_matches("worker:").to_string());
        }
        workers.sort();
        Ok(workers)
    }

    /// Tells every worker that a run was cancelled, so the one running it stops it.
    pub async fn publish_cancel(&self, id: &str) -> Result<()> {
        let mut connection = self.redis.connection().await?;
        let _: i64 = connection.publish(keys::CANCEL_CHANNEL, id).await?;
        Ok(())
    }
}

impl RunStore {
    /// Sets `logs_truncated` outside a transition, when the final state was written first.
    pub async fn mark_logs_truncated(&self, id: &str, truncated: bool) -> Result<()> {
        if !truncated {
            return Ok(());
        }
        let mut connection = self.redis.connection().await?;
        let _: () = connection
            .hset(keys::run(id), "logs_truncated", "1")
            .await?;
        Ok(())
    }

    /// Counts ids in `runs:active`.
    pub async fn active_count(&self) -> Result<u64> {
        let mut connection = self.redis.connection().await?;
        Ok(connection.llen(keys::ACTIVE).await?)
    }
}
