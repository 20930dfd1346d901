//! Mapping of container images to the host programs that stand in for them.

/// What an image provides on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// `python*` images: `python`/`python3` run the host's Python.
    Python,
    /// `node*` images: `node` runs the host's Node.js.
    Node,
    /// Plain OS images (`busybox`, `alpine`, `debian`, `ubuntu`): `sh` and
    /// the host's coreutils.
    Shell,
}

impl ImageKind {
    /// Returns the command an image runs when the container gives none.
    pub fn default_command(self) -> &'static str {
        match self {
            ImageKind::Python => "python3",
            ImageKind::Node => "node",
            ImageKind::Shell => "sh",
        }
    }
}

/// Classifies an image reference such as `python:3.12-slim` or
/// `docker.io/library/node:22-alpine` by the last path segment of its name.
/// Returns `None` for images the simulated kubelet cannot run, which it
/// reports as `ErrImagePull`.
pub fn classify(image: &str) -> Option<ImageKind> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_segment = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let name = last_segment.split(':').next().unwrap_or(last_segment);
    if name.starts_with("python") {
        Some(ImageKind::Python)
    } else if name.starts_with("node") {
        Some(ImageKind::Node)
    } else if ["busybox", "alpine", "debian", "ubuntu"].contains(&name) {
        Some(ImageKind::Shell)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_known_images() {
        assert_eq!(classify("python:3.12-slim"), Some(ImageKind::Python));
        assert_eq!(
            classify("docker.io/library/node:22-alpine"),
            Some(ImageKind::Node)
        );
        assert_eq!(
            classify("registry.local:5000/python@sha256:abc"),
            Some(ImageKind::Python)
        );
        assert_eq!(classify("busybox"), Some(ImageKind::Shell));
    }

    #[test]
    fn classify_unknown_image() {
        assert_eq!(classify("ghcr.io/acme/does-not-exist:1"), None);
        assert_eq!(classify("rust:1"), None);
    }
}
