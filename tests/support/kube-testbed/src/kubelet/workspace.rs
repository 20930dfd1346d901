//! A Pod's directory on the host: its volumes written out, interpreter
//! links, and the host command that replaces the container.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::Client;

use super::image::ImageKind;
use super::paths::PathMap;
use super::volumes;

/// Host programs that replace the interpreters of known images.
#[derive(Debug, Clone)]
pub struct Interpreters {
    pub python: PathBuf,
    pub node: PathBuf,
}

/// Why a container's files could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// A missing ConfigMap or Secret, retried as the kubelet retries it.
    #[error("{kind} {namespace}/{name} for volume {volume} not found")]
    SourceMissing {
        kind: &'static str,
        namespace: String,
        name: String,
        volume: String,
    },
    #[error("volume {volume} is of a type the simulated kubelet does not support (only configMap, secret, projected and emptyDir)")]
    UnsupportedVolume { volume: String },
    #[error("volumeMount {mount} names no volume of the Pod")]
    UnknownVolume { mount: String },
    #[error("container has runAsNonRoot and image will run as root (pod: {pod}, container: {container})")]
    RunsAsRoot { pod: String, container: String },
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("failed to write Pod files under {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// A program to run on the host in place of a container.
#[derive(Debug, Clone)]
pub struct HostCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub working_dir: PathBuf,
    /// User and group from the securityContext. `None` keeps the
    /// simulator's own, root, which is also the known images' default.
    pub user: Option<u32>,
    pub group: Option<u32>,
}

pub(super) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PrepareError + '_ {
    move |source| PrepareError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes the container's volumes under `root` and returns the host command.
pub async fn prepare(
    client: &Client,
    pod: &Pod,
    container: &Container,
    kind: ImageKind,
    interpreters: &Interpreters,
    root: &Path,
) -> Result<HostCommand, PrepareError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|spec| spec.volumes.clone())
        .unwrap_or_default();

    let mut paths = PathMap::default();
    for mount in container.volume_mounts.iter().flatten() {
        let volume = volumes
            .iter()
            .find(|volume| volume.name == mount.name)
            .ok_or_else(|| PrepareError::UnknownVolume {
                mount: mount.mount_path.clone(),
            })?;
        let volume_dir = root.join("volumes").join(&volume.name);
        volumes::write(client, namespace, volume, &volume_dir).await?;
        let host_path = match mount.sub_path.as_deref() {
            Some(sub_path) if !sub_path.is_empty() => volume_dir.join(sub_path),
            _ => volume_dir,
        };
        paths.add(&mount.mount_path, host_path);
    }

    let bin_dir = root.join("bin");
    link_interpreters(&bin_dir, interpreters).await?;
    let search_path = format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        bin_dir.display()
    );

    let mut env = BTreeMap::new();
    env.insert("PATH".to_string(), search_path.clone());
    env.insert("HOME".to_string(), root.join("home").display().to_string());
    if let Some(name) = &pod.metadata.name {
        env.insert("HOSTNAME".to_string(), name.clone());
    }
    if let Some(tmp) = paths.host_path_of("/tmp") {
        env.insert("TMPDIR".to_string(), tmp.display().to_string());
    }
    for variable in container.env.iter().flatten() {
        let value = match (&variable.value, &variable.value_from) {
            (Some(value), _) => Some(paths.rewrite(value)),
            (None, Some(source)) => field_value(
                pod,
                source
                    .field_ref
                    .as_ref()
                    .map(|field| field.field_path.as_str()),
            ),
            (None, None) => Some(String::new()),
        };
        match value {
            Some(value) if variable.name == "PATH" => {
                env.insert("PATH".to_string(), format!("{}:{value}", bin_dir.display()));
            }
            Some(value) => {
                env.insert(variable.name.clone(), value);
            }
            None => {
                tracing::warn!(variable = %variable.name, "env valueFrom source not supported, variable left unset")
            }
        }
    }
    let home = root.join("home");
    tokio::fs::create_dir_all(&home)
        .await
        .map_err(io_error(&home))?;
    tokio::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o777))
        .await
        .map_err(io_error(&home))?;

    let mut argv: Vec<String> = container.command.clone().unwrap_or_default();
    let args = container.args.clone().unwrap_or_default();
    if argv.is_empty() && args.is_empty() {
        argv.push(kind.default_command().to_string());
    }
    argv.extend(args);
    let argv: Vec<String> = argv.iter().map(|arg| paths.rewrite(arg)).collect();
    let program = resolve_program(
        &argv[0],
        env.get("PATH").map(String::as_str).unwrap_or(&search_path),
    );

    let working_dir = match container.working_dir.as_deref() {
        Some(dir) if !dir.is_empty() => {
            let rewritten = PathBuf::from(paths.rewrite(dir));
            if rewritten.as_os_str() == dir {
                root.join("rootfs").join(dir.trim_start_matches('/'))
            } else {
                rewritten
            }
        }
        _ => root.join("rootfs"),
    };
    tokio::fs::create_dir_all(&working_dir)
        .await
        .map_err(io_error(&working_dir))?;

    let (user, group) = run_as(pod, container)?;
    Ok(HostCommand {
        program,
        args: argv[1..].to_vec(),
        env,
        working_dir,
        user,
        group,
    })
}

/// Returns the user and group to run as, with the container's
/// securityContext overriding the Pod's. Fails as the kubelet does when
/// `runAsNonRoot` is set but the user is root or unset, because every image
/// the simulator knows runs as root by default.
fn run_as(pod: &Pod, container: &Container) -> Result<(Option<u32>, Option<u32>), PrepareError> {
    let pod_context = pod
        .spec
        .as_ref()
        .and_then(|spec| spec.security_context.as_ref());
    let container_context = container.security_context.as_ref();

    let user = container_context
        .and_then(|context| context.run_as_user)
        .or_else(|| pod_context.and_then(|context| context.run_as_user));
    let group = container_context
        .and_then(|context| context.run_as_group)
        .or_else(|| pod_context.and_then(|context| context.run_as_group));
    let non_root = container_context
        .and_then(|context| context.run_as_non_root)
        .or_else(|| pod_context.and_then(|context| context.run_as_non_root))
        .unwrap_or(false);

    if non_root && user.unwrap_or(0) == 0 {
        return Err(PrepareError::RunsAsRoot {
            pod: pod.metadata.name.clone().unwrap_or_default(),
            container: container.name.clone(),
        });
    }
    Ok((
        user.map(|user| user as u32),
        group.map(|group| group as u32),
    ))
}

/// Resolves a container's program: a host file when it exists (a remapped
/// mount path), else its base name looked up in `search_path`, so that
/// `/usr/local/bin/python3` finds the interpreter link.
fn resolve_program(program: &str, search_path: &str) -> PathBuf {
    let as_path = Path::new(program);
    if program.contains('/') && as_path.exists() {
        return as_path.to_path_buf();
    }
    let name = as_path
        .file_name()
        .map(|name| name.to_string_lossy().to_string())
        .unwrap_or_else(|| program.to_string());
    search_path
        .split(':')
        .map(|dir| Path::new(dir).join(&name))
        .find(|candidate| candidate.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn field_value(pod: &Pod, field_path: Option<&str>) -> Option<String> {
    match field_path? {
        "metadata.name" => pod.metadata.name.clone(),
        "metadata.namespace" => pod.metadata.namespace.clone(),
        "metadata.uid" => pod.metadata.uid.clone(),
        "spec.nodeName" => pod.spec.as_ref()?.node_name.clone(),
        "spec.serviceAccountName" => pod.spec.as_ref()?.service_account_name.clone(),
        "status.podIP" | "status.hostIP" => Some("127.0.0.1".to_string()),
        _ => None,
    }
}

async fn link_interpreters(
    bin_dir: &Path,
    interpreters: &Interpreters,
) -> Result<(), PrepareError> {
    tokio::fs::create_dir_all(bin_dir)
        .await
        .map_err(io_error(bin_dir))?;
    let links = [
        ("python", &interpreters.python),
        ("python3", &interpreters.python),
        ("node", &interpreters.node),
        ("nodejs", &interpreters.node),
    ];
    for (name, target) in links {
        let link = bin_dir.join(name);
        if tokio::fs::symlink_metadata(&link).await.is_ok() {
            continue;
        }
        tokio::fs::symlink(target, &link)
            .await
            .map_err(io_error(&link))?;
    }
    Ok(())
}
