//! Resident memory per process group, sampled from `/proc` by one task for
//! all containers, so the cost does not grow with the number of Pods.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Bytes of resident memory by process group id.
pub type Usage = Arc<HashMap<i32, u64>>;

/// The shared sampler; cloning it is cheap.
#[derive(Debug, Clone)]
pub struct MemorySampler {
    usage: watch::Receiver<Usage>,
}

impl MemorySampler {
    /// Starts sampling every `interval` until the runtime shuts down.
    pub fn start(interval: Duration) -> Self {
        let (sender, usage) = watch::channel(Usage::default());
        tokio::spawn(async move {
            let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
                .ok()
                .flatten()
                .unwrap_or(4096) as u64;
            loop {
                let sample = tokio::task::spawn_blocking(move || resident_by_group(page_size))
                    .await
                    .unwrap_or_default();
                if sender.send(Arc::new(sample)).is_err() {
                    return;
                }
                tokio::time::sleep(interval).await;
            }
        });
        Self { usage }
    }

    /// Returns once the resident memory of process group `group` exceeds
    /// `limit_bytes`, with the amount seen. A spike shorter than the
    /// sampling interval goes unnoticed.
    pub async fn wait_for_excess(&self, group: i32, limit_bytes: u64) -> u64 {
        let mut usage = self.usage.clone();
        loop {
            let resident = usage.borrow_and_update().get(&group).copied().unwrap_or(0);
            if resident > limit_bytes {
                return resident;
            }
            if usage.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

/// Sums resident memory per process group over every process, from
/// `/proc/{pid}/stat` (field 5 is the group, field 24 the resident pages).
fn resident_by_group(page_size: u64) -> HashMap<i32, u64> {
    let mut usage = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return usage;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name in brackets may contain spaces, so the fields
        // are counted from the last closing bracket.
        let Some((_, fields)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = fields.split_whitespace().collect();
        let group = fields.get(2).and_then(|field| field.parse::<i32>().ok());
        let pages = fields.get(21).and_then(|field| field.parse::<u64>().ok());
        if let (Some(group), Some(pages)) = (group, pages) {
            *usage.entry(group).or_insert(0) += pages * page_size;
        }
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::logs::LogStore;
    use crate::kubelet::process::spawn;
    use crate::kubelet::workspace::HostCommand;

    #[tokio::test]
    async fn sampler_detects_memory_growth() {
        let dir = std::env::temp_dir().join(format!("kube-testbed-mem-{}", std::process::id()));
        tokio::fs::create_dir_all(&dir).await.unwrap();
        let (_store, writer) = LogStore::create(dir.join("log")).await.unwrap();
        let script = "import time\nx = b\"x\" * (200 * 1024 * 1024)\ntime.sleep(30)";
        let command = HostCommand {
            program: "python3".into(),
            args: vec!["-c".into(), script.into()],
            env: std::env::vars().collect(),
            working_dir: dir.clone(),
            user: None,
            group: None,
        };
        let mut process = spawn(&command, writer).unwrap();
        let sampler = MemorySampler::start(Duration::from_millis(50));

        let limit = 100 * 1024 * 1024;
        let found = tokio::time::timeout(
            Duration::from_secs(20),
            sampler.wait_for_excess(process.process_group.as_raw(), limit),
        )
        .await
        .expect("memory growth not detected within 20s");
        let status = process.kill().await.unwrap();

        assert!(found > limit, "resident bytes {found}");
        assert_eq!(status.code, 137);
        tokio::fs::remove_dir_all(&dir).await.unwrap();
    }
}
