//! Rewriting of container paths (mount points) into host directories.

use std::path::PathBuf;

/// Container mount points and the host directories that stand in for them.
#[derive(Debug, Clone, Default)]
pub struct PathMap {
    /// Sorted longest container path first, so `/a/b` wins over `/a`.
    mounts: Vec<(String, PathBuf)>,
}

impl PathMap {
    pub fn add(&mut self, container_path: &str, host_path: PathBuf) {
        let trimmed = container_path.trim_end_matches('/');
        let key = if trimmed.is_empty() { "/" } else { trimmed };
        self.mounts.push((key.to_string(), host_path));
        self.mounts
            .sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    }

    /// Returns the host directory of the mount point `container_path`, if any.
    pub fn host_path_of(&self, container_path: &str) -> Option<&PathBuf> {
        let trimmed = container_path.trim_end_matches('/');
        self.mounts
            .iter()
            .find(|(path, _)| path == trimmed)
            .map(|(_, host)| host)
    }

    /// Replaces every mount path in `text` that starts at a path boundary
    /// and ends at one, in a single pass so that a replacement is never
    /// rewritten again. `python3 /workspace/main.py` becomes
    /// `python3 /host/pod/volumes/source/main.py`.
    pub fn rewrite(&self, text: &str) -> String {
        let mut output = String::with_capacity(text.len());
        let mut index = 0;
        'scan: while index < text.len() {
            let rest = &text[index..];
            let at_boundary =
                index == 0 || !is_path_char(text[..index].chars().next_back().unwrap_or(' '));
            if at_boundary && rest.starts_with('/') {
                for (container_path, host_path) in &self.mounts {
                    if container_path == "/" {
                        continue;
                    }
                    if let Some(after) = rest.strip_prefix(container_path.as_str()) {
                        let ends_at_boundary = after
                            .chars()
                            .next()
                            .is_none_or(|c| c == '/' || !is_path_char(c));
                        if ends_at_boundary {
                            output.push_str(&host_path.to_string_lossy());
                            index += container_path.len();
                            continue 'scan;
                        }
                    }
                }
            }
            let character = rest.chars().next().unwrap_or(' ');
            output.push(character);
            index += character.len_utf8();
        }
        output
    }
}

fn is_path_char(character: char) -> bool {
    character.is_alphanumeric() || matches!(character, '/' | '.' | '_' | '-' | '~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> PathMap {
        let mut map = PathMap::default();
        map.add("/workspace", PathBuf::from("/tmp/pods/p1/volumes/source"));
        map.add("/tmp", PathBuf::from("/tmp/pods/p1/volumes/tmp"));
        map
    }

    #[test]
    fn rewrite_replaces_mount_paths() {
        let map = map();
        assert_eq!(
            map.rewrite("/workspace/main.py"),
            "/tmp/pods/p1/volumes/source/main.py"
        );
        assert_eq!(map.rewrite("/workspace"), "/tmp/pods/p1/volumes/source");
        assert_eq!(
            map.rewrite("python3 /workspace/main.py < '/workspace/stdin'"),
            "python3 /tmp/pods/p1/volumes/source/main.py < '/tmp/pods/p1/volumes/source/stdin'"
        );
    }

    #[test]
    fn rewrite_does_not_rewrite_replacements() {
        let map = map();
        assert_eq!(map.rewrite("/tmp/x"), "/tmp/pods/p1/volumes/tmp/x");
        assert_eq!(map.rewrite("/workspace/a"), "/tmp/pods/p1/volumes/source/a");
    }

    #[test]
    fn rewrite_keeps_other_paths() {
        let map = map();
        assert_eq!(map.rewrite("/workspaces/x"), "/workspaces/x");
        assert_eq!(map.rewrite("/var/tmp/x"), "/var/tmp/x");
        assert_eq!(map.rewrite("print(42)"), "print(42)");
    }
}
