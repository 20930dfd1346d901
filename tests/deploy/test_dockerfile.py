"""Offline checks on the Dockerfile and .dockerignore (no container engine needed)."""

import fnmatch
import shlex
import shutil
import subprocess

import pytest

# The UID and GID that the manifests set in runAsUser and runAsGroup.
RUNTIME_UID = "10001"

# COPY sources that other parts of the project add later. Until they exist,
# the tests skip them instead of failing.
# NOTE: ui/ is embedded at compile time, so "docker build" fails until it
# exists in the tree.
PENDING_SOURCES = {"ui"}


def instructions(repo_root):
    """Return the Dockerfile as (instruction, arguments) pairs, continuation lines joined."""
    lines = (repo_root / "Dockerfile").read_text().splitlines()
    joined, current = [], ""
    for line in lines:
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        instruction, _, arguments = current.partition(" ")
        joined.append((instruction.upper(), arguments.strip()))
        current = ""
    return joined


def stages(repo_root):
    """Split the Dockerfile into stages, each a list of (instruction, arguments)."""
    result = []
    for instruction, arguments in instructions(repo_root):
        if instruction == "FROM":
            result.append([])
        if result:
            result[-1].append((instruction, arguments))
    return result


def build_args(repo_root):
    """Return the default value of every ARG declared before the first FROM."""
    defaults = {}
    for instruction, arguments in instructions(repo_root):
        if instruction == "FROM":
            break
        if instruction == "ARG" and "=" in arguments:
            name, _, value = arguments.partition("=")
            defaults[name] = value
    return defaults


def copy_sources(repo_root):
    """Return the build-context paths that COPY instructions read (not --from copies)."""
    sources = []
    for stage in stages(repo_root):
        for instruction, arguments in stage:
            if instruction != "COPY":
                continue
            words = shlex.split(arguments)
            if any(word.startswith("--from") for word in words):
                continue
            paths = [word for word in words if not word.startswith("--")]
            sources.extend(paths[:-1])
    return sources


def dockerignore_patterns(repo_root):
    lines = (repo_root / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def is_ignored(path, patterns):
    """Return whether path, or a folder above it, matches a .dockerignore pattern.

    NOTE: fnmatch is close to, not the same as, the builder's Go matching
    ("*" also crosses "/" here), which is enough for the plain patterns used.
    """
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    for pattern in patterns:
        for candidate in candidates:
            if fnmatch.fnmatchcase(candidate, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatchcase(candidate.split("/")[-1], pattern[3:])
            ):
                return True
    return False


def test_base_images_are_pinned(repo_root):
    defaults = build_args(repo_root)
    for stage in stages(repo_root):
        image = stage[0][1].split()[0]
        for name, value in defaults.items():
            image = image.replace("${" + name + "}", value)
        assert ":" in image, f"FROM {image} names no tag"
        assert not image.endswith(":latest"), f"FROM {image} uses latest"
        assert "$" not in image, f"FROM {image} uses an ARG without a default"


def test_builder_and_runtime_share_debian_release(repo_root):
    defaults = build_args(repo_root)
    images = [stage[0][1].split()[0] for stage in stages(repo_root)]
    assert images[0].endswith("-${DEBIAN_RELEASE}"), images[0]
    assert images[-1].startswith("debian:${DEBIAN_RELEASE}"), images[-1]
    assert defaults["DEBIAN_RELEASE"] == "bookworm"


def test_release_build_command(repo_root):
    runs = [arguments for instruction, arguments in stages(repo_root)[0] if instruction == "RUN"]
    assert any("cargo build --release --locked --bin code-runner" in run for run in runs)


def test_runtime_runs_as_numeric_non_root_user(repo_root):
    runtime = stages(repo_root)[-1]
    users = [arguments for instruction, arguments in runtime if instruction == "USER"]
    assert users, "the runtime stage sets no USER"
    user, _, group = users[-1].partition(":")
    assert user.isdigit(), f"USER {users[-1]} is not numeric, so runAsNonRoot cannot verify it"
    assert user != "0"
    assert user == RUNTIME_UID
    assert group == RUNTIME_UID


def test_runtime_starts_the_binary(repo_root):
    runtime = dict(stages(repo_root)[-1])
    assert runtime["ENTRYPOINT"] == '["/usr/local/bin/code-runner"]'
    assert runtime["CMD"] == '["api"]'
    assert "/usr/local/bin/code-runner" in runtime["COPY"]


def test_dockerignore_leaves_out_build_output(repo_root):
    patterns = dockerignore_patterns(repo_root)
    for path in ("target", "target/release/code-runner", "node_modules", "ui/node_modules/x", ".git", ".git/HEAD"):
        assert is_ignored(path, patterns), f"{path} would be sent to the builder"


def test_copy_sources_exist_and_are_not_ignored(repo_root):
    patterns = dockerignore_patterns(repo_root)
    sources = copy_sources(repo_root)
    assert "tests/support/kube-testbed" in sources, "the workspace member must be in the build context"
    for source in sources:
        assert not is_ignored(source, patterns), f"COPY {source} is excluded by .dockerignore"
        if source in PENDING_SOURCES and not (repo_root / source).exists():
            continue
        assert (repo_root / source).exists(), f"COPY {source}: not found in the repository"


@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed")
def test_build_context_loads_as_locked_workspace(repo_root, tmp_path):
    """The files that the builder stage copies are enough for cargo, and Cargo.lock is current."""
    for source in copy_sources(repo_root):
        origin = repo_root / source
        if not origin.exists():
            continue
        target = tmp_path / source
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("target", "node_modules"))
        else:
            shutil.copy2(origin, target)

    result = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, (
        "cargo cannot load the Docker build context with --locked "
        f"(is Cargo.lock committed and up to date?):\n{result.stderr}"
    )
