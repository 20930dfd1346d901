"""Fixtures shared by the deploy tests: the repository root and rendered manifests."""

import os
import pathlib
import subprocess

import pytest
import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def render(kustomization_dir):
    """Render a kustomization with kubectl (the KUBECTL variable names another binary)."""
    kubectl = os.environ.get("KUBECTL", "kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", str(REPO_ROOT / kustomization_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope="session")
def base_objects():
    return render("deploy")


@pytest.fixture(scope="session")
def overlay_objects():
    return render("deploy/overlays/prometheus-operator")
