//! kube-runtime watches on runner Jobs and Pods, turned into run states in
//! Redis, plus a periodic reconciliation for anything a watch missed.

pub mod mapping;
mod reconcile;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, instrument, warn};

use crate::k8s::names::{object_name, LABEL_RUN_ID, RUNNER_SELECTOR};
use crate::metrics;
use crate::run::RunStatus;
use crate::store::RunStore;
use mapping::Observation;

/// Events handled at once; each costs a few Redis calls and, at the end of a
/// run, one log read.
const MAX_IN_FLIGHT: usize = 64;
/// Attempts to read a finished Pod's logs before the run is settled without them.
const LOG_ATTEMPTS: u32 = 3;

/// Watcher of the runner objects of one namespace, recording their states as run states.
pub struct Watcher {
    jobs: Api<Job>,
    pods: Api<Pod>,
    store: Arc<RunStore>,
    namespace: String,
    worker_id: String,
    max_log_bytes: usize,
    /// Time allowed on top of a run's timeout before reconciliation gives up on it.
    start_allowance: Duration,
}

impl Watcher {
    /// Finds the name of a run's Pod through the API, for when the cache has none.
    async fn find_pod(&self, run_id: &str) -> Option<String> {
        let params = kube::api::ListParams::default().labels(&format!("{LABEL_RUN_ID}={run_id}"));
        let listed = self.pods.list(&params).await;
        metrics::record_kube_request(
            "list",
            "pods",
            crate::executor::kubernetes::outcome(&listed),
        );
        crate::k8s::newest_pod(listed.ok()?.items).and_then(|pod| pod.metadata.name)
    }

    pub fn new(
        client: kube::Client,
        namespace: &str,
        store: Arc<RunStore>,
        worker_id: &str,
        max_log_bytes: usize,
        start_allowance: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            jobs: Api::namespaced(client.clone(), namespace),
            pods: Api::namespaced(client, namespace),
            store,
            namespace: namespace.to_string(),
            worker_id: worker_id.to_string(),
            max_log_bytes,
            start_allowance,
        })
    }

    /// Runs both watches and the reconciliation until `stop` fires.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        info!(worker = %self.worker_id, namespace = %self.namespace, "watcher starting");
        metrics::register_watch_restarts();
        let config = watcher::Config::default().labels(RUNNER_SELECTOR);
        let (jobs_reader, jobs_writer) = reflector::store::<Job>();
        let (pods_reader, pods_writer) = reflector::store::<Pod>();
        let mut job_events = watcher::watcher(self.jobs.clone(), config.clone())
            .default_backoff()
            .reflect(jobs_writer)
            .boxed();
        let mut pod_events = watcher::watcher(self.pods.clone(), config)
            .default_backoff()
            .reflect(pods_writer)
            .boxed();
        let stores = Arc::new((jobs_reader, pods_reader));
        let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));

        tokio::spawn(reconcile::run(Arc::clone(&self), stop.clone()));

        loop {
            let (resource, event) = tokio::select! {
                event = job_events.next() => ("jobs", event.map(|event| event.map(|event| lift(event, RunnerObject::Job)))),
                event = pod_events.next() => ("pods", event.map(|event| event.map(|event| lift(event, RunnerObject::Pod)))),
                _ = stop.cancelled() => break,
            };
            let event = match event {
                Some(Ok(event)) => event,
                Some(Err(error)) => {
                    // The backoff wrapper restarts the watch; an error never ends the loop.
                    warn!(worker = %self.worker_id, resource, %error, "watch failed; restarting with backoff");
                    metrics::record_watch_restart(resource);
                    continue;
                }
                None => {
                    warn!(worker = %self.worker_id, resource, "watch stream ended; stopping the watcher");
                    break;
                }
            };

            let object = match event {
                Event::Apply(object) => {
                    metrics::record_watch_event(resource, "apply");
                    object
                }
                Event::InitApply(object) => {
                    metrics::record_watch_event(resource, "init_apply");
                    object
                }
                Event::Delete(object) => {
                    metrics::record_watch_event(resource, "delete");
                    object
                }
                Event::Init => {
                    metrics::record_watch_event(resource, "init");
                    debug!(resource, "watch (re)listing");
                    continue;
                }
                Event::InitDone => {
                    metrics::record_watch_event(resource, "init_done");
                    debug!(resource, "watch listed all objects");
                    continue;
                }
            };
            let Some(run_id) = object.run_id() else {
                continue;
            };

            // A Pod event carries the newest state of that Pod, even when it
            // was just deleted and so is gone from the cache.
            let event_pod = match object {
                RunnerObject::Pod(pod) => Some(*pod),
                RunnerObject::Job(_) => None,
            };
            let permit = Arc::clone(&limit)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let watcher = Arc::clone(&self);
            let stores = Arc::clone(&stores);
            tokio::spawn(async move {
                watcher
                    .handle(&run_id, event_pod, &stores.0, &stores.1)
                    .await;
                drop(permit);
            });
        }
        info!(worker = %self.worker_id, "watcher stopped");
    }

    /// Maps the run's current Job and Pod and records the result.
    async fn handle(
        &self,
        run_id: &str,
        event_pod: Option<Pod>,
        jobs: &Store<Job>,
        pods: &Store<Pod>,
    ) {
        let job = jobs.get(&ObjectRef::new(&object_name(run_id)).within(&self.namespace));
        let pod = match event_pod {
            Some(pod) => Some(Arc::new(pod)),
            None => crate::k8s::newest_pod(
                pods.state_filter(|pod| has_run_id(&pod.metadata.labels, run_id)),
            ),
        };
        if let Some(observation) = mapping::observe(job.as_deref(), pod.as_deref()) {
            self.apply(run_id, pod.as_deref(), observation).await;
        }
    }

    /// Writes an observation through the forward-only store. The writer whose
    /// terminal transition is applied also stores the logs and counts the run.
    #[instrument(skip(self, pod, observation), fields(worker = %self.worker_id, status = %observation.status))]
    pub(crate) async fn apply(&self, run_id: &str, pod: Option<&Pod>, observation: Observation) {
        let run = match self.store.get(run_id).await {
            Ok(Some(run)) => run,
            Ok(None) => return,
            Err(error) => {
                warn!(%error, "reading the run failed; the next event or reconciliation retries");
                return;
            }
        };
        if run.status.is_terminal() || run.status.rank() > observation.status.rank() {
            return;
        }
        let mut observation = observation;
        if run.status == RunStatus::Queued {
            // The Pod moved before the dispatching worker recorded `dispatched`.
            observation.fields.job_name = Some(object_name(run_id));
            observation.fields.dispatched_at =
                Some(crate::run::format_timestamp(chrono::Utc::now()));
        }
        if observation.status == RunStatus::Succeeded {
            // A pending reason such as ContainerCreating no longer applies.
            observation.fields.reason.get_or_insert_with(String::new);
            observation.fields.message.get_or_insert_with(String::new);
        }

        if !observation.status.is_terminal() {
            match self
                .store
                .transition_with(
                    run_id,
                    observation.status,
                    &observation.fields,
                    &[("executor", "kubernetes")],
                )
                .await
            {
                Ok(transition) if transition.applied => {
                    debug!("run state changed");
                    if observation.status == RunStatus::Running {
                        metrics::record_started(
                            &run.language,
                            &run.created_at,
                            run.dispatched_at.as_deref(),
                        );
                    }
                }
                Ok(_) => {}
                Err(error) => warn!(%error, "recording the run state failed"),
            }
            return;
        }

        let never_ran = never_started(&observation);
        let (logs, truncated) = if never_ran {
            (String::new(), false)
        } else {
            self.final_logs(run_id, pod).await
        };
        let mut fields = observation.fields;
        fields.logs_truncated = Some(truncated);
        if fields.finished_at.is_none() {
            fields.finished_at = Some(crate::run::format_timestamp(chrono::Utc::now()));
        }
        match self
            .store
            .finish_with_logs(run_id, observation.status, &fields, &logs)
            .await
        {
            Ok(transition) if transition.applied => {
                info!(reason = ?fields.reason, "run finished");
                metrics::record_finished(
                    &run.language,
                    observation.status,
                    run.started_at.as_deref(),
                    &fields,
                );
                if never_ran && observation.status == RunStatus::Failed {
                    // A Pod that can never start would otherwise wait for the Job's deadline.
                    if let Err(error) =
                        crate::executor::kubernetes::delete_job(&self.jobs, run_id).await
                    {
                        warn!(%error, "deleting the Job of a run that cannot start failed; its deadline ends it");
                    }
                }
            }
            Ok(_) => debug!("another writer recorded the end first"),
            Err(error) => {
                warn!(%error, "recording the end of the run failed; reconciliation retries")
            }
        }
    }

    /// Reads a finished run's output. The cached Pod may lag behind the Job,
    /// so its last known state does not decide whether to read.
    async fn final_logs(&self, run_id: &str, pod: Option<&Pod>) -> (String, bool) {
        let name = match pod.and_then(|pod| pod.metadata.name.clone()) {
            Some(name) => name,
            None => match self.find_pod(run_id).await {
                Some(name) => name,
                None => return (String::new(), false),
            },
        };
        let name = name.as_str();
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=LOG_ATTEMPTS {
            match crate::k8s::logs::read(&self.pods, name, self.max_log_bytes).await {
                Ok(logs) => return logs,
                Err(error) if attempt < LOG_ATTEMPTS => {
                    debug!(run_id, pod = name, %error, attempt, "reading logs failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                }
                Err(error) => {
                    warn!(run_id, pod = name, %error, "reading logs failed; the run ends without them")
                }
            }
        }
        (String::new(), false)
    }
}

/// Wraps the object of a watch event, so both watches share one loop.
fn lift<K>(event: Event<K>, wrap: fn(Box<K>) -> RunnerObject) -> Event<RunnerObject> {
    match event {
        Event::Apply(object) => Event::Apply(wrap(Box::new(object))),
        Event::InitApply(object) => Event::InitApply(wrap(Box::new(object))),
        Event::Delete(object) => Event::Delete(wrap(Box::new(object))),
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
    }
}

/// Tells whether an end state means the program never ran, so it has no output.
fn never_started(observation: &Observation) -> bool {
    let reason = observation.fields.reason.as_deref().unwrap_or_default();
    mapping::FATAL_WAITING_REASONS.contains(&reason)
        || observation
            .fields
            .message
            .as_deref()
            .is_some_and(|message| message.contains("never started"))
}

/// A watched Job or Pod.
enum RunnerObject {
    Job(Box<Job>),
    Pod(Box<Pod>),
}

impl RunnerObject {
    fn run_id(&self) -> Option<String> {
        let labels = match self {
            RunnerObject::Job(job) => &job.metadata.labels,
            RunnerObject::Pod(pod) => &pod.metadata.labels,
        };
        labels.as_ref()?.get(LABEL_RUN_ID).cloned()
    }
}

fn has_run_id(labels: &Option<std::collections::BTreeMap<String, String>>, run_id: &str) -> bool {
    labels
        .as_ref()
        .and_then(|labels| labels.get(LABEL_RUN_ID))
        .is_some_and(|value| value == run_id)
}
