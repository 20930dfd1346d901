//! Pod volumes written out as host directories: configMap, secret and
//! projected sources as files, emptyDir as an empty directory.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, Secret, Volume};
use kube::{Api, Client};

use super::workspace::{io_error, PrepareError};

/// Keys and values of a ConfigMap or Secret, and how to lay them out.
struct FileSource<'a> {
    contents: BTreeMap<String, Vec<u8>>,
    items: Option<&'a Vec<KeyToPath>>,
    default_mode: u32,
}

/// Writes `volume` into `dir`. A projected volume's downwardAPI and
/// serviceAccountToken sources are skipped and leave no files.
pub async fn write(
    client: &Client,
    namespace: &str,
    volume: &Volume,
    dir: &Path,
) -> Result<(), PrepareError> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(io_error(dir))?;
    if volume.empty_dir.is_some() {
        // World-writable, like the kubelet's emptyDir, for non-root users.
        tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
            .await
            .map_err(io_error(dir))?;
        return Ok(());
    }
    let missing = |kind: &'static str, name: &str| PrepareError::SourceMissing {
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
        volume: volume.name.clone(),
    };

    if let Some(source) = &volume.config_map {
        let mode = source.default_mode.unwrap_or(0o644) as u32;
        match config_map(client, namespace, &source.name, source.items.as_ref(), mode).await? {
            Some(files) => write_files(dir, files).await?,
            None if source.optional == Some(true) => {}
            None => return Err(missing("ConfigMap", &source.name)),
        }
        return Ok(());
    }
    if let Some(source) = &volume.secret {
        let name = source.secret_name.clone().unwrap_or_default();
        let mode = source.default_mode.unwrap_or(0o644) as u32;
        match secret(client, namespace, &name, source.items.as_ref(), mode).await? {
            Some(files) => write_files(dir, files).await?,
            None if source.optional == Some(true) => {}
            None => return Err(missing("Secret", &name)),
        }
        return Ok(());
    }
    if let Some(projected) = &volume.projected {
        let mode = projected.default_mode.unwrap_or(0o644) as u32;
        for projection in projected.sources.iter().flatten() {
            if let Some(source) = &projection.config_map {
                match config_map(client, namespace, &source.name, source.items.as_ref(), mode)
                    .await?
                {
                    Some(files) => write_files(dir, files).await?,
                    None if source.optional == Some(true) => {}
                    None => return Err(missing("ConfigMap", &source.name)),
                }
            }
            if let Some(source) = &projection.secret {
                match secret(client, namespace, &source.name, source.items.as_ref(), mode).await? {
                    Some(files) => write_files(dir, files).await?,
                    None if source.optional == Some(true) => {}
                    None => return Err(missing("Secret", &source.name)),
                }
            }
        }
        return Ok(());
    }
    Err(PrepareError::UnsupportedVolume {
        volume: volume.name.clone(),
    })
}

async fn config_map<'a>(
    client: &Client,
    namespace: &str,
    name: &str,
    items: Option<&'a Vec<KeyToPath>>,
    default_mode: u32,
) -> Result<Option<FileSource<'a>>, PrepareError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let Some(config_map) = api.get_opt(name).await? else {
        return Ok(None);
    };
    let mut contents: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (key, value) in config_map.data.unwrap_or_default() {
        contents.insert(key, value.into_bytes());
    }
    for (key, value) in config_map.binary_data.unwrap_or_default() {
        contents.insert(key, value.0);
    }
    Ok(Some(FileSource {
        contents,
        items,
        default_mode,
    }))
}

async fn secret<'a>(
    client: &Client,
    namespace: &str,
    name: &str,
    items: Option<&'a Vec<KeyToPath>>,
    default_mode: u32,
) -> Result<Option<FileSource<'a>>, PrepareError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let Some(secret) = api.get_opt(name).await? else {
        return Ok(None);
    };
    let mut contents: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (key, value) in secret.data.unwrap_or_default() {
        contents.insert(key, value.0);
    }
    for (key, value) in secret.string_data.unwrap_or_default() {
        contents.insert(key, value.into_bytes());
    }
    Ok(Some(FileSource {
        contents,
        items,
        default_mode,
    }))
}

/// Writes every key (or only the listed items) as a file with its mode.
async fn write_files(dir: &Path, source: FileSource<'_>) -> Result<(), PrepareError> {
    let files: Vec<(String, String, u32)> = match source.items {
        Some(items) => items
            .iter()
            .map(|item| {
                let mode = item.mode.map_or(source.default_mode, |mode| mode as u32);
                (item.key.clone(), item.path.clone(), mode)
            })
            .collect(),
        None => source
            .contents
            .keys()
            .map(|key| (key.clone(), key.clone(), source.default_mode))
            .collect(),
    };
    for (key, relative_path, mode) in files {
        let Some(bytes) = source.contents.get(&key) else {
            continue;
        };
        let path = dir.join(relative_path.trim_start_matches('/'));
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(io_error(parent))?;
        }
        tokio::fs::write(&path, bytes)
            .await
            .map_err(io_error(&path))?;
        tokio::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .await
            .map_err(io_error(&path))?;
    }
    Ok(())
}
