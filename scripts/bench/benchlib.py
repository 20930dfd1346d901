#!/usr/bin/env python3
"""Load generators and report makers of the benchmark scripts.

Standard library only, so the benchmarks need nothing from a package
registry. Times come from time.time_ns() (CLOCK_REALTIME), the clock that
the fault proxy, the simulated kubelet and Redis stamp their own records
with, so times taken by different processes on this machine compare.
"""

import argparse
import concurrent.futures
import http.client
import json
import re
import socket
import sys
import threading
import time
from datetime import datetime

TERMINAL = {"succeeded", "failed", "timed_out", "cancelled", "error"}


# ---------------------------------------------------------------------------
# A minimal Redis client (RESP2), enough for XRANGE, XREAD and LLEN.


class RedisError(Exception):
    pass


class Redis:
    def __init__(self, port, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    def command(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))
        return self._read()

    def _read(self):
        line = self.reader.readline()
        if not line:
            raise RedisError("connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            length = int(rest)
            if length < 0:
                return None
            return self.reader.read(length + 2)[:-2].decode()
        if kind == b"*":
            length = int(rest)
            if length < 0:
                return None
            return [self._read() for _ in range(length)]
        raise RedisError(f"unexpected reply {line!r}")


def stream_events(redis):
    """Returns every entry of runs:events as (ms, run_id, status, reason)."""
    events = []
    start = "-"
    while True:
        batch = redis.command("XRANGE", "runs:events", start, "+", "COUNT", 5000)
        for entry_id, fields in batch:
            values = dict(zip(fields[::2], fields[1::2]))
            events.append(
                (int(entry_id.split("-")[0]), values["run_id"], values["status"], values.get("reason", ""))
            )
        if len(batch) < 5000:
            return events
        start = "(" + batch[-1][0]


# ---------------------------------------------------------------------------
# Statistics


def percentile(sorted_values, fraction):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-fraction * len(sorted_values) // 1)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary(values):
    values = sorted(values)
    if not values:
        return "n=0"
    return "n={} min={:.2f} p50={:.2f} p90={:.2f} p99={:.2f} max={:.2f} mean={:.2f}".format(
        len(values),
        values[0],
        percentile(values, 0.50),
        percentile(values, 0.90),
        percentile(values, 0.99),
        values[-1],
        sum(values) / len(values),
    )


def emit(name, value):
    """Prints one result line for the calling script to collect."""
    print(f"{name}: {value}", flush=True)


# ---------------------------------------------------------------------------
# HTTP


def run_body(code, timeout_seconds=None):
    body = {"language": "python", "code": code}
    if timeout_seconds is not None:
        body["timeout_seconds"] = timeout_seconds
    return json.dumps(body).encode()


class Client:
    """One keep-alive HTTP connection to the API."""

    def __init__(self, url):
        match = re.fullmatch(r"http://([^:/]+):(\d+)/?", url)
        if not match:
            raise SystemExit(f"expected http://HOST:PORT, got {url!r}")
        self.host, self.port = match.group(1), int(match.group(2))
        self.connection = None

    def post_run(self, body):
        """Sends POST /runs; returns (status, run id or error text)."""
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.connection.request(
                    "POST", "/runs", body=body, headers={"Content-Type": "application/json"}
                )
                response = self.connection.getresponse()
                data = response.read()
            except (http.client.HTTPException, OSError):
                self.connection.close()
                self.connection = None
                if attempt == 1:
                    raise
                continue
            if response.status in (200, 201):
                return response.status, json.loads(data)["id"]
            return response.status, data.decode(errors="replace")
        raise AssertionError("unreachable")


def submit_sequential(args):
    """POST /runs one after another at a fixed rate; writes one JSON line per run."""
    client = Client(args.url)
    body = run_body(args.code, args.timeout_seconds)
    interval_ns = int(1e9 / args.rate) if args.rate > 0 else 0
    failures = 0
    started = time.monotonic_ns()
    with open(args.out, "w") as out:
        for index in range(args.count):
            if interval_ns:
                wait = started + index * interval_ns - time.monotonic_ns()
                if wait > 0:
                    time.sleep(wait / 1e9)
            sent_ns = time.time_ns()
            status, value = client.post_run(body)
            answered_ns = time.time_ns()
            if status != 201:
                failures += 1
                print(f"POST /runs returned {status}: {value}", file=sys.stderr)
                continue
            out.write(json.dumps({"id": value, "sent_ns": sent_ns, "answered_ns": answered_ns}) + "\n")
    elapsed = (time.monotonic_ns() - started) / 1e9
    emit("submitted", f"{args.count - failures} runs in {elapsed:.1f} s, {failures} rejected")


def submit_burst(args):
    """POST /runs COUNT times from THREADS connections as fast as they go."""
    body = run_body(args.code, args.timeout_seconds)
    counter = iter(range(args.count))
    lock = threading.Lock()
    ids, failures = [], []

    def worker():
        client = Client(args.url)
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            status, value = client.post_run(body)
            with lock:
                (ids if status == 201 else failures).append(value)

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
        for future in [pool.submit(worker) for _ in range(args.threads)]:
            future.result()
    elapsed = time.monotonic() - started
    if args.out:
        with open(args.out, "w") as out:
            out.writelines(run_id + "\n" for run_id in ids)
    emit("submitted", f"{len(ids)} runs in {elapsed:.2f} s, {len(failures)} rejected")
    if failures:
        print(f"first rejection: {failures[0]}", file=sys.stderr)


# ---------------------------------------------------------------------------
# Dispatch latency: client-side 201 times against Job create arrivals.


def dispatch_report(args):
    with open(args.submissions) as submissions:
        runs = [json.loads(line) for line in submissions if line.strip()]
    with open(args.arrivals) as arrivals:
        arrived = sorted(json.load(arrivals)["arrivals_unix_nanos"])
    emit("runs submitted", len(runs))
    emit("job creates recorded", len(arrived))
    if len(arrived) != len(runs):
        print(
            "warning: the counts differ (a retried create or a missing dispatch); "
            "pairing in order up to the shorter list",
            file=sys.stderr,
        )
    runs.sort(key=lambda run: run["answered_ns"])
    pairs = list(zip(runs, arrived))
    # Order pairing holds only while each dispatch ends before the next
    # submission; check that each arrival falls after its own POST was sent.
    out_of_order = sum(1 for run, at in pairs if at < run["sent_ns"])
    latencies = [(at - run["answered_ns"]) / 1e6 for run, at in pairs]
    from_send = [(at - run["sent_ns"]) / 1e6 for run, at in pairs]
    client = [(run["answered_ns"] - run["sent_ns"]) / 1e6 for run in runs]
    emit("pairs with the create arriving before its POST was sent", out_of_order)
    emit("POST /runs round trip ms (client)", summary(client))
    emit("201 to Job create ms", summary(latencies))
    emit("POST sent to Job create ms", summary(from_send))
    emit("Job create before the 201 arrived", sum(1 for value in latencies if value < 0))
    if args.configmap_arrivals:
        # The worker sends the ConfigMap create after the Job create's
        # response and the `dispatched` write, so the gap covers both.
        with open(args.configmap_arrivals) as arrivals:
            configmaps = sorted(json.load(arrivals)["arrivals_unix_nanos"])
        gaps = [(configmap - job) / 1e6 for job, configmap in zip(arrived, configmaps)]
        emit("Job create -> ConfigMap create arrival ms", summary(gaps))


def wait_arrivals(args):
    """Polls a fault-proxy recording until it contains COUNT arrivals or time runs out."""
    deadline = time.monotonic() + args.timeout
    url = args.admin_url.rstrip("/") + "/recordings/" + args.name
    match = re.fullmatch(r"http://([^:/]+):(\d+)", args.admin_url.rstrip("/"))
    host, port = match.group(1), int(match.group(2))
    count = 0
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection(host, port, timeout=10)
        connection.request("GET", "/recordings/" + args.name)
        data = connection.getresponse().read()
        connection.close()
        count = len(json.loads(data)["arrivals_unix_nanos"])
        if count >= args.count:
            with open(args.out, "wb") as out:
                out.write(data)
            return
        time.sleep(0.2)
    with open(args.out, "wb") as out:
        out.write(data)
    print(f"warning: {url} contains {count} of {args.count} arrivals after {args.timeout} s", file=sys.stderr)


# ---------------------------------------------------------------------------
# Watch to Redis: kubelet-sim log lines against runs:events entries.

ANSI = re.compile(r"\x1b\[[0-9;]*m")
KUBELET_LINE = re.compile(
    r"^(\S+Z)\s+INFO\s+pod\{namespace=\S+ pod=run-([0-9a-z]{26})-\S+ node=\S+\}: "
    r"\S+: (container started|container terminated)"
)
BOUND_LINE = re.compile(r"^(\S+Z)\s+INFO\s+\S+: Pod bound to a simulated node.* pod=run-([0-9a-z]{26})-")


def parse_time_ns(text):
    """Parses an RFC 3339 UTC time with up to nine fraction digits into ns."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", text)
    seconds = int(datetime.fromisoformat(match.group(1) + "+00:00").timestamp())
    fraction = (match.group(2) or "").ljust(9, "0")[:9]
    return seconds * 1_000_000_000 + int(fraction)


def kubelet_events(path):
    """Returns {run_id: {"started": ns, "terminated": ns, "bound": ns}} from the kubelet-sim log."""
    found = {}
    with open(path, errors="replace") as log:
        for raw in log:
            line = ANSI.sub("", raw)
            match = KUBELET_LINE.match(line)
            if match:
                kind = "started" if match.group(3) == "container started" else "terminated"
                found.setdefault(match.group(2), {})[kind] = parse_time_ns(match.group(1))
                continue
            match = BOUND_LINE.match(line)
            if match:
                found.setdefault(match.group(2), {})["bound"] = parse_time_ns(match.group(1))
    return found


def watch_observer(args):
    """Watches runner Pods straight at the API server and writes, for each
    run, when a running and a terminated container state first arrived."""
    import ssl
    import urllib.parse

    url = urllib.parse.urlsplit(args.apiserver_url)
    context = ssl.create_default_context(cafile=args.ca_file)
    connection = http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=args.timeout)
    selector = urllib.parse.quote("runner.example.com/run-id")
    connection.request(
        "GET",
        f"/api/v1/namespaces/{args.namespace}/pods?watch=1&labelSelector={selector}",
        headers={"Authorization": f"Bearer {args.token}"},
    )
    response = connection.getresponse()
    if response.status != 200:
        raise SystemExit(f"watching Pods failed: {response.status} {response.read()[:200]!r}")
    deadline = time.monotonic() + args.timeout
    seen = set()
    with open(args.out, "w") as out:
        while time.monotonic() < deadline:
            try:
                line = response.readline()
            except (TimeoutError, OSError):
                return
            if not line:
                return
            received_ns = time.time_ns()
            pod = json.loads(line)["object"]
            run_id = pod["metadata"].get("labels", {}).get("runner.example.com/run-id")
            for status in pod.get("status", {}).get("containerStatuses") or []:
                for state in ("running", "terminated"):
                    if state in (status.get("state") or {}) and (run_id, state) not in seen:
                        seen.add((run_id, state))
                        out.write(json.dumps({"run_id": run_id, "state": state, "ns": received_ns}) + "\n")
                        out.flush()


def observed_states(path):
    """Reads a watch-observer file into {(run_id, state): ns}."""
    observed = {}
    if path:
        with open(path) as observations:
            for line in observations:
                record = json.loads(line)
                observed[(record["run_id"], record["state"])] = record["ns"]
    return observed


def rate_over(times_ns, low=0.1, high=0.9):
    """Events per second between the LOW and HIGH quantiles of their times."""
    times = sorted(times_ns)
    if len(times) < 10:
        return float("nan")
    first, last = int(low * (len(times) - 1)), int(high * (len(times) - 1))
    span = (times[last] - times[first]) / 1e9
    return (last - first) / span if span > 0 else float("nan")


def watch_report(args):
    with open(args.runs) as runs_file:
        wanted = {line.strip() for line in runs_file if line.strip()}
    kubelet = kubelet_events(args.kubelet_log)
    redis = Redis(args.redis_port)
    first = {}
    all_writes = []
    endings = {}
    for ms, run_id, status, reason in stream_events(redis):
        if run_id not in wanted:
            continue
        if status != "queued":
            all_writes.append(ms * 1_000_000)
        key = "terminal" if status in TERMINAL else status
        first.setdefault((run_id, key), ms * 1_000_000)
        if status in TERMINAL:
            endings.setdefault(run_id, f"{status} {reason}".strip())

    observed = observed_states(args.observer)
    running, terminal, missing_running = [], [], 0
    # Split at the moment an independent watch on the API server saw the change.
    running_cluster, running_worker, terminal_cluster, terminal_worker = [], [], [], []
    for run_id in wanted:
        seen = kubelet.get(run_id, {})
        if "started" in seen:
            if (run_id, "running") in first:
                running.append((first[(run_id, "running")] - seen["started"]) / 1e6)
                if (run_id, "running") in observed:
                    running_cluster.append((observed[(run_id, "running")] - seen["started"]) / 1e6)
                    running_worker.append((first[(run_id, "running")] - observed[(run_id, "running")]) / 1e6)
            else:
                missing_running += 1
        # Only a program that ran to its end gives a final state that
        # follows the kubelet's "container terminated".
        ran_to_end = endings.get(run_id, "").split(" ")[0] in ("succeeded", "failed")
        if "terminated" in seen and (run_id, "terminal") in first and ran_to_end:
            terminal.append((first[(run_id, "terminal")] - seen["terminated"]) / 1e6)
            if (run_id, "terminated") in observed:
                terminal_cluster.append((observed[(run_id, "terminated")] - seen["terminated"]) / 1e6)
                terminal_worker.append((first[(run_id, "terminal")] - observed[(run_id, "terminated")]) / 1e6)

    prefix = args.label + " " if args.label else ""
    emit(prefix + "runs", len(wanted))
    emit(prefix + "runs finished in Redis", sum(1 for run_id in wanted if (run_id, "terminal") in first))
    counts = {}
    for ending in endings.values():
        counts[ending] = counts.get(ending, 0) + 1
    emit(prefix + "final states", ", ".join(f"{ending}: {n}" for ending, n in sorted(counts.items())))
    emit(prefix + "runs whose container never started", sum(1 for run_id in wanted if "started" not in kubelet.get(run_id, {})))
    emit(prefix + "container started -> running in Redis ms", summary(running))
    emit(prefix + "container terminated -> final state in Redis ms", summary(terminal))
    emit(prefix + "runs whose running state was skipped (already finished when handled)", missing_running)
    if observed:
        emit(prefix + "  of which kubelet -> API server watch ms (running)", summary(running_cluster))
        emit(prefix + "  of which API server watch -> Redis ms (running)", summary(running_worker))
        emit(prefix + "  of which kubelet -> API server watch ms (final)", summary(terminal_cluster))
        emit(prefix + "  of which API server watch -> Redis ms (final)", summary(terminal_worker))
    if args.rates:
        bound = [seen["bound"] for run_id, seen in kubelet.items() if run_id in wanted and "bound" in seen]
        finished = [first[(run_id, "terminal")] for run_id in wanted if (run_id, "terminal") in first]
        emit(prefix + "Pods started by the kubelet per s (10%-90% window)", f"{rate_over(bound):.1f}")
        emit(prefix + "state writes to Redis per s (10%-90% window)", f"{rate_over(all_writes):.1f}")
        emit(prefix + "runs finished per s (10%-90% window)", f"{rate_over(finished):.1f}")


def wait_finished(args):
    """Waits until every run id in RUNS has a final state in runs:events."""
    with open(args.runs) as runs_file:
        wanted = {line.strip() for line in runs_file if line.strip()}
    redis = Redis(args.redis_port)
    deadline = time.monotonic() + args.timeout
    done = set()
    last_id = "0"
    while time.monotonic() < deadline:
        reply = redis.command("XREAD", "COUNT", 5000, "BLOCK", 1000, "STREAMS", "runs:events", last_id)
        for _, entries in reply or []:
            for entry_id, fields in entries:
                last_id = entry_id
                values = dict(zip(fields[::2], fields[1::2]))
                if values["status"] in TERMINAL and values["run_id"] in wanted:
                    done.add(values["run_id"])
        if len(done) >= len(wanted):
            return
    print(f"warning: {len(done)} of {len(wanted)} runs finished within {args.timeout} s", file=sys.stderr)


def wait_status_count(args):
    """Waits until COUNT runs reached STATUS (or a later state) in runs:events."""
    rank = {"queued": 0, "dispatched": 1, "pending": 2, "running": 3}
    expected_rank = rank.get(args.status, 4)
    redis = Redis(args.redis_port)
    deadline = time.monotonic() + args.timeout
    reached = set()
    last_id = "0"
    while time.monotonic() < deadline:
        reply = redis.command("XREAD", "COUNT", 5000, "BLOCK", 1000, "STREAMS", "runs:events", last_id)
        for _, entries in reply or []:
            for entry_id, fields in entries:
                last_id = entry_id
                values = dict(zip(fields[::2], fields[1::2]))
                if rank.get(values["status"], 4) >= expected_rank:
                    reached.add(values["run_id"])
        if len(reached) >= args.count:
            emit("runs at " + args.status, len(reached))
            return
    emit("runs at " + args.status, len(reached))
    print(f"warning: only {len(reached)} of {args.count} runs reached {args.status} within {args.timeout} s", file=sys.stderr)


# ---------------------------------------------------------------------------
# Local executor: submit-to-finished of one run at a time.


def local_exec(args):
    client = Client(args.url)
    redis = Redis(args.redis_port)
    body = run_body(args.code)
    totals, failures = [], 0
    for index in range(args.warmup + args.count):
        last = redis.command("XREVRANGE", "runs:events", "+", "-", "COUNT", 1)
        last_id = last[0][0] if last else "0"
        sent_ns = time.time_ns()
        status, run_id = client.post_run(body)
        if status != 201:
            raise SystemExit(f"POST /runs returned {status}: {run_id}")
        final = None
        while final is None:
            reply = redis.command("XREAD", "BLOCK", 10000, "STREAMS", "runs:events", last_id)
            if reply is None:
                raise SystemExit(f"run {run_id} did not finish within 10 s")
            for _, entries in reply:
                for entry_id, fields in entries:
                    last_id = entry_id
                    values = dict(zip(fields[::2], fields[1::2]))
                    if values["run_id"] == run_id and values["status"] in TERMINAL:
                        final = values["status"]
        finished_ns = time.time_ns()
        if final != "succeeded":
            failures += 1
        if index >= args.warmup:
            totals.append((finished_ns - sent_ns) / 1e6)
    emit("runs", f"{len(totals)} measured after {args.warmup} warm-up runs, {failures} not succeeded")
    emit("POST /runs to final state in runs:events ms", summary(totals))


LOG_LINE = re.compile(r"^(\S+Z)\s+INFO\s.*?(run queued|program started|run finished)")
RUN_ID = re.compile(r'run_id="?([0-9a-z]{26})')


def local_log_report(args):
    """Splits each local run at the dev process's own log lines: queued ->
    program started (take, read, dispatched write, directory, spawn) and
    program started -> run finished (the program, output, final write)."""
    steps = {}
    with open(args.log, errors="replace") as log:
        for raw in log:
            line = ANSI.sub("", raw)
            match = LOG_LINE.match(line)
            run_id = RUN_ID.search(line)
            if match and run_id:
                steps.setdefault(run_id.group(1), {})[match.group(2)] = parse_time_ns(match.group(1))
    to_start, to_end = [], []
    for times in list(steps.values())[args.skip :]:
        if len(times) == 3:
            to_start.append((times["program started"] - times["run queued"]) / 1e6)
            to_end.append((times["run finished"] - times["program started"]) / 1e6)
    emit("dev log: run queued -> program started ms", summary(to_start))
    emit("dev log: program started -> run finished ms", summary(to_end))


# ---------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    command = commands.add_parser("submit-sequential", help="POST /runs one by one at RATE per s")
    command.add_argument("--url", required=True)
    command.add_argument("--count", type=int, required=True)
    command.add_argument("--rate", type=float, default=20.0, help="runs per second; 0 for back to back")
    command.add_argument("--code", default="pass")
    command.add_argument("--timeout-seconds", type=int)
    command.add_argument("--out", required=True, help="JSON lines: id, sent_ns, answered_ns")
    command.set_defaults(handler=submit_sequential)

    command = commands.add_parser("submit-burst", help="POST /runs COUNT times from THREADS connections")
    command.add_argument("--url", required=True)
    command.add_argument("--count", type=int, required=True)
    command.add_argument("--threads", type=int, default=8)
    command.add_argument("--code", default="pass")
    command.add_argument("--timeout-seconds", type=int)
    command.add_argument("--out", help="file for the created run ids, one a line")
    command.set_defaults(handler=submit_burst)

    command = commands.add_parser("wait-arrivals", help="wait for COUNT arrivals in a fault-proxy recording")
    command.add_argument("--admin-url", required=True)
    command.add_argument("--name", required=True)
    command.add_argument("--count", type=int, required=True)
    command.add_argument("--timeout", type=float, default=120)
    command.add_argument("--out", required=True)
    command.set_defaults(handler=wait_arrivals)

    command = commands.add_parser("dispatch-report", help="pair 201 times with Job create arrivals")
    command.add_argument("--submissions", required=True)
    command.add_argument("--arrivals", required=True)
    command.add_argument("--configmap-arrivals", help="a recording of the ConfigMap creates")
    command.set_defaults(handler=dispatch_report)

    command = commands.add_parser("wait-finished", help="wait until the runs in RUNS have a final state")
    command.add_argument("--redis-port", type=int, required=True)
    command.add_argument("--runs", required=True)
    command.add_argument("--timeout", type=float, default=300)
    command.set_defaults(handler=wait_finished)

    command = commands.add_parser("wait-status-count", help="wait until COUNT runs reached STATUS")
    command.add_argument("--redis-port", type=int, required=True)
    command.add_argument("--status", required=True)
    command.add_argument("--count", type=int, required=True)
    command.add_argument("--timeout", type=float, default=300)
    command.set_defaults(handler=wait_status_count)

    command = commands.add_parser("watch-report", help="kubelet-sim status changes against runs:events")
    command.add_argument("--redis-port", type=int, required=True)
    command.add_argument("--kubelet-log", required=True)
    command.add_argument("--runs", required=True, help="run ids, one a line")
    command.add_argument("--label", default="")
    command.add_argument("--rates", action="store_true")
    command.add_argument("--observer", help="output of watch-observer, to split each latency")
    command.set_defaults(handler=watch_report)

    command = commands.add_parser("watch-observer", help="record when runner Pod states reach a watch")
    command.add_argument("--apiserver-url", required=True)
    command.add_argument("--ca-file", required=True)
    command.add_argument("--token", required=True)
    command.add_argument("--namespace", default="code-runner-runs")
    command.add_argument("--timeout", type=float, default=900, help="seconds to watch at most")
    command.add_argument("--out", required=True)
    command.set_defaults(handler=watch_observer)

    command = commands.add_parser("local-exec", help="submit-to-finished time of one run at a time")
    command.add_argument("--url", required=True)
    command.add_argument("--redis-port", type=int, required=True)
    command.add_argument("--count", type=int, default=200)
    command.add_argument("--warmup", type=int, default=10)
    command.add_argument("--code", default="print(1)")
    command.set_defaults(handler=local_exec)

    command = commands.add_parser("local-log-report", help="split local runs at the dev log's lines")
    command.add_argument("--log", required=True)
    command.add_argument("--skip", type=int, default=0, help="leading runs to leave out (warm-up)")
    command.set_defaults(handler=local_log_report)

    args = parser.parse_args()
    args.handler(args)


if __name__ == "__main__":
    main()
