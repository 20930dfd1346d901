#!/usr/bin/env python3
"""Check that every metric a Grafana dashboard queries appears in /metrics scrapes.

Usage: check-dashboard-metrics.py DASHBOARD_JSON METRICS_FILE...

Each METRICS_FILE is a scrape in the Prometheus text format, such as the
output of "curl -s http://127.0.0.1:8080/metrics". A metric counts as present
when a file has a sample of it, or declares it with a "# TYPE" line (for a
histogram or summary that also covers its _bucket, _sum and _count series).
Metrics from kube-state-metrics, listed in KUBE_STATE_METRICS, are not
expected in the scrapes. Exits 1 and names each missing metric, 2 on invalid
input.
"""

import json
import re
import sys

# Metrics that the dashboard reads from kube-state-metrics rather than from
# code-runner. Add a name here only when the dashboard starts using it.
KUBE_STATE_METRICS = {
    "kube_deployment_status_replicas",
}

# PromQL words that look like identifiers but are not metric names.
PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan", "atan2",
}

IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names_in_query(query):
    """Return the metric names that a PromQL query selects.

    Label matchers, grouping clauses, range selectors, strings and Grafana
    variables are removed first, then every identifier that is not a
    function call or a PromQL keyword is a metric name.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', " ", query)
    text = re.sub(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*", " ", text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)

    names = set()
    for match in IDENTIFIER.finditer(text):
        name = match.group(0)
        if name.lower() in PROMQL_KEYWORDS:
            continue
        # Numbers such as 1e3 start with a digit, so the regex only finds their
        # tail ("e3"). Skipping identifiers that follow a digit drops it.
        if match.start() > 0 and text[match.start() - 1].isdigit():
            continue
        if text[match.end():].lstrip().startswith("("):
            continue
        names.add(name)
    return names


def dashboard_queries(dashboard):
    """Yield (panel title, query) for every PromQL query in the dashboard."""

    def walk(panels):
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield panel.get("title", "<untitled>"), target["expr"]
            yield from walk(panel.get("panels", []))

    yield from walk(dashboard.get("panels", []))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if query:
            yield f"variable {variable.get('name')}", query


def scraped_metric_names(path):
    """Return every metric name that a Prometheus text-format file contains."""
    names = set()
    with open(path, encoding="utf-8") as scrape:
        for line in scrape:
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                parts = line.split()
                if len(parts) >= 4 and parts[1] == "TYPE":
                    names.add(parts[2])
                    if parts[3] in ("histogram", "summary"):
                        names.update(parts[2] + suffix for suffix in ("_bucket", "_sum", "_count"))
                continue
            match = IDENTIFIER.match(line)
            if match:
                names.add(match.group(0))
    return names


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2

    dashboard_path, metrics_paths = argv[1], argv[2:]
    try:
        with open(dashboard_path, encoding="utf-8") as dashboard_file:
            dashboard = json.load(dashboard_file)
    except (OSError, json.JSONDecodeError) as error:
        print(f"failed to read dashboard {dashboard_path}: {error}", file=sys.stderr)
        return 2

    used = {}
    for title, query in dashboard_queries(dashboard):
        for name in metric_names_in_query(query):
            used.setdefault(name, set()).add(title)
    if not used:
        print(f"no metric names found in the queries of {dashboard_path}", file=sys.stderr)
        return 2

    available = set()
    for path in metrics_paths:
        try:
            available |= scraped_metric_names(path)
        except OSError as error:
            print(f"failed to read metrics file {path}: {error}", file=sys.stderr)
            return 2

    missing = sorted(name for name in used if name not in available and name not in KUBE_STATE_METRICS)
    for name in missing:
        panels = ", ".join(sorted(used[name]))
        print(f"missing metric {name} (used by: {panels})")

    checked = len([name for name in used if name not in KUBE_STATE_METRICS])
    print(f"{checked - len(missing)} of {checked} dashboard metrics found in {len(metrics_paths)} scrape file(s)"
          f" ({len(used) - checked} from kube-state-metrics not checked)")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
