//! The Pods this kubelet runs, keyed by uid, with the signals that their
//! lifecycle tasks wait on and the log each container writes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::logs::LogStore;

/// A container's state, as the log endpoint uses it.
#[derive(Debug, Clone)]
pub enum ContainerView {
    Waiting { reason: String },
    Started(Arc<LogStore>),
}

/// One Pod on one of this kubelet's nodes.
#[derive(Debug)]
pub struct PodHandle {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub node: String,
    /// Cancelled when the Pod gets a deletion timestamp.
    pub deletion: CancellationToken,
    /// Cancelled when the Pod is removed from the API server.
    pub removed: CancellationToken,
    /// Grace period of the requested deletion, in seconds.
    deletion_grace_seconds: AtomicI64,
    /// Process group of the running container, 0 when none runs.
    process_group: AtomicI32,
    containers: Mutex<HashMap<String, ContainerView>>,
}

impl PodHandle {
    pub fn new(uid: String, namespace: String, name: String, node: String) -> Self {
        Self {
            uid,
            namespace,
            name,
            node,
            deletion: CancellationToken::new(),
            removed: CancellationToken::new(),
            deletion_grace_seconds: AtomicI64::new(30),
            process_group: AtomicI32::new(0),
            containers: Mutex::new(HashMap::new()),
        }
    }

    pub fn request_deletion(&self, grace_seconds: i64) {
        self.deletion_grace_seconds
            .store(grace_seconds, Ordering::Relaxed);
        self.deletion.cancel();
    }

    pub fn deletion_grace_seconds(&self) -> i64 {
        self.deletion_grace_seconds.load(Ordering::Relaxed)
    }

    pub fn set_process_group(&self, group: i32) {
        self.process_group.store(group, Ordering::Relaxed);
    }

    pub fn process_group(&self) -> Option<i32> {
        Some(self.process_group.load(Ordering::Relaxed)).filter(|group| *group > 0)
    }

    pub fn set_container(&self, name: &str, view: ContainerView) {
        let mut containers = self
            .containers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        containers.insert(name.to_string(), view);
    }

    pub fn container(&self, name: &str) -> Option<ContainerView> {
        let containers = self
            .containers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        containers.get(name).cloned()
    }
}

/// All Pods this kubelet tracks.
#[derive(Debug, Default, Clone)]
pub struct PodRegistry {
    pods: Arc<Mutex<HashMap<String, Arc<PodHandle>>>>,
}

impl PodRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<PodHandle>>> {
        self.pods
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn get(&self, uid: &str) -> Option<Arc<PodHandle>> {
        self.lock().get(uid).cloned()
    }

    pub fn insert(&self, handle: Arc<PodHandle>) {
        self.lock().insert(handle.uid.clone(), handle);
    }

    pub fn remove(&self, uid: &str) {
        self.lock().remove(uid);
    }

    pub fn handles(&self) -> Vec<Arc<PodHandle>> {
        self.lock().values().cloned().collect()
    }

    pub fn uids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Finds a Pod by namespace and name on `node`.
    pub fn find(&self, node: &str, namespace: &str, name: &str) -> Option<Arc<PodHandle>> {
        self.lock()
            .values()
            .find(|handle| {
                handle.node == node && handle.namespace == namespace && handle.name == name
            })
            .cloned()
    }
}
