"""Checks on dashboards/code-runner.json and scripts/check-dashboard-metrics.py."""

import importlib.util
import json
import subprocess
import sys

import pytest

# The metric names code-runner exports (counters, gauges and histogram base
# names). A dashboard query outside this list and kube-state-metrics would
# show an empty panel.
EXPORTED_METRICS = {
    "code_runner_runs_submitted_total",
    "code_runner_runs_finished_total",
    "code_runner_queue_depth",
    "code_runner_active_runs",
    "code_runner_queue_wait_seconds",
    "code_runner_dispatch_seconds",
    "code_runner_start_latency_seconds",
    "code_runner_run_duration_seconds",
    "code_runner_kube_requests_total",
    "code_runner_watch_events_total",
    "code_runner_watch_restarts_total",
    "code_runner_http_requests_total",
    "code_runner_http_request_duration_seconds",
}
HISTOGRAMS = {
    "code_runner_queue_wait_seconds",
    "code_runner_dispatch_seconds",
    "code_runner_start_latency_seconds",
    "code_runner_run_duration_seconds",
    "code_runner_http_request_duration_seconds",
}


@pytest.fixture(scope="module")
def checker(repo_root):
    spec = importlib.util.spec_from_file_location("check_dashboard_metrics", repo_root / "scripts/check-dashboard-metrics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dashboard(repo_root):
    return json.loads((repo_root / "dashboards/code-runner.json").read_text())


def all_panels(panels):
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def queries(dashboard):
    return [
        (panel["title"], target["expr"])
        for panel in all_panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]


def run_checker(repo_root, *metrics_files):
    return subprocess.run(
        [sys.executable, str(repo_root / "scripts/check-dashboard-metrics.py"),
         str(repo_root / "dashboards/code-runner.json"), *[str(path) for path in metrics_files]],
        capture_output=True,
        text=True,
    )


# The dashboard


def test_datasource_is_a_variable(dashboard):
    [variable] = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert variable["type"] == "datasource"
    assert variable["query"] == "prometheus"

    for panel in all_panels(dashboard["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_panel_ids_are_unique(dashboard):
    ids = [panel["id"] for panel in all_panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))


def test_panels_do_not_overlap(dashboard):
    occupied = {}
    for panel in all_panels(dashboard["panels"]):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']}: wider than the 24-column grid"
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in occupied, f"{panel['title']} overlaps {occupied[(x, y)]}"
                occupied[(x, y)] = panel["title"]


@pytest.mark.parametrize("title", [
    "Submissions by language",
    "Queue depth vs worker replicas",
    "Runs finished by status",
    "Queue wait",
    "Start latency",
    "Run duration",
    "Kubernetes API errors",
    "Watch restarts",
    "HTTP request latency (p95)",
    "HTTP errors",
])
def test_required_panel_present(dashboard, title):
    titles = [panel["title"] for panel in all_panels(dashboard["panels"])]
    assert title in titles


def test_queries_use_exported_metrics(dashboard, checker):
    allowed = set(EXPORTED_METRICS - HISTOGRAMS) | checker.KUBE_STATE_METRICS
    allowed |= {name + suffix for name in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
    for title, query in queries(dashboard):
        for name in checker.metric_names_in_query(query):
            assert name in allowed, f"{title}: unknown metric {name}"


def test_percentiles_read_histogram_buckets(dashboard):
    for title, query in queries(dashboard):
        if "histogram_quantile" in query:
            assert "_bucket[" in query, f"{title}: histogram_quantile needs _bucket series"
            assert "le" in query.split("sum by (", 1)[1].split(")", 1)[0], f"{title}: must keep the le label"


def test_replicas_come_from_kube_state_metrics(dashboard):
    [(_, query)] = [(t, q) for t, q in queries(dashboard) if t == "Queue depth vs worker replicas" and "kube_" in q]
    assert 'deployment="code-runner-worker"' in query
    assert 'namespace="code-runner-system"' in query


def test_kube_errors_exclude_success(dashboard):
    [query] = [q for t, q in queries(dashboard) if t == "Kubernetes API errors"]
    assert 'code_runner_kube_requests_total{outcome!="success"}' in query


# The metric name extraction


@pytest.mark.parametrize("query, expected", [
    ("sum by (language) (rate(code_runner_runs_submitted_total[5m]))", {"code_runner_runs_submitted_total"}),
    ('rate(x_total{status=~"5..", route="/runs(x)"}[$__rate_interval])', {"x_total"}),
    ("a / on(job) group_left(node) b", {"a", "b"}),
    ("sum(rate(c[1h] offset 1d)) * 1e3 + vector(1)", {"c"}),
    ("histogram_quantile(0.95, sum by (le, route) (rate(h_bucket[5m])))", {"h_bucket"}),
    ("up == bool 1 and absent(y) or z unless w", {"up", "y", "z", "w"}),
    ('max(kube_deployment_status_replicas{deployment="${name}"})', {"kube_deployment_status_replicas"}),
])
def test_metric_names_in_query(checker, query, expected):
    assert checker.metric_names_in_query(query) == expected


def test_scrape_parser_reads_samples_and_types(checker, tmp_path):
    scrape = tmp_path / "metrics.txt"
    scrape.write_text(
        "# HELP a_total help text\n"
        "# TYPE a_total counter\n"
        'a_total{x="1"} 3\n'
        "# TYPE h_seconds histogram\n"
        "plain_gauge 1.5 1700000000000\n"
    )
    names = checker.scraped_metric_names(scrape)
    assert names == {"a_total", "h_seconds", "h_seconds_bucket", "h_seconds_sum", "h_seconds_count", "plain_gauge"}


# The script end to end


def test_checker_passes_with_sample_scrapes(repo_root):
    metrics = repo_root / "tests/deploy/metrics"
    result = run_checker(repo_root, metrics / "api.txt", metrics / "worker.txt")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "13 of 13 dashboard metrics found" in result.stdout


def test_checker_names_missing_metrics(repo_root):
    result = run_checker(repo_root, repo_root / "tests/deploy/metrics/api.txt")
    assert result.returncode == 1
    assert "missing metric code_runner_runs_finished_total" in result.stdout
    assert "missing metric code_runner_start_latency_seconds_bucket" in result.stdout
    assert "missing metric kube_" not in result.stdout


def test_checker_rejects_unreadable_input(repo_root, tmp_path):
    result = run_checker(repo_root, tmp_path / "absent.txt")
    assert result.returncode == 2
    assert "failed to read metrics file" in result.stderr
