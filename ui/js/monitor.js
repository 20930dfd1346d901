// The live monitor: polls GET /system/status and shows the queue, workers,
// runner Pods per node and a timeline of the server's history plus the
// samples this page took itself.

import { apiJson } from "./api.js";
import { drawChart } from "./chart.js";
import { element, formatTime, orDash, shortId } from "./format.js";

const POLL_INTERVAL_MS = 2000;
const WINDOW_MS = 10 * 60 * 1000;

export class Monitor {
  /** onOpenRun(id) is called when a run id in the monitor is clicked. */
  constructor(section, { onOpenRun }) {
    this.onOpenRun = onOpenRun;
    const find = (selector) => section.querySelector(selector);
    this.nodes = {
      updated: find("#monitor-updated"),
      banners: find("#monitor-banners"),
      queueDepth: find("#queue-depth"),
      queuedIds: find("#queued-ids"),
      workersReady: find("#workers-ready"),
      workersDesired: find("#workers-desired"),
      workerPods: find("#worker-pods"),
      heartbeats: find("#worker-heartbeats"),
      runnersActive: find("#runners-active"),
      runnerPods: find("#runner-pods"),
      nodeBars: find("#node-bars"),
      chart: find("#monitor-chart"),
    };
    // Samples by time (epoch ms); the server's history and this page's own polls share it.
    this.samples = new Map();
    this.timer = null;
    this.running = false;

    section.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-run-id]");
      if (button) {
        this.onOpenRun(button.dataset.runId);
      }
    });
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) {
        this.pause();
      } else {
        this.start();
      }
    });
    let resizeFrame = null;
    new ResizeObserver(() => {
      cancelAnimationFrame(resizeFrame);
      resizeFrame = requestAnimationFrame(() => this.drawTimeline());
    }).observe(this.nodes.chart);
  }

  start() {
    if (this.running) {
      return;
    }
    this.running = true;
    this.poll();
  }

  pause() {
    this.running = false;
    clearTimeout(this.timer);
  }

  // Polls with setTimeout rather than setInterval, so a slow response never overlaps the next request.
  async poll() {
    clearTimeout(this.timer);
    try {
      const status = await apiJson("/system/status");
      this.render(status);
    } catch (error) {
      this.renderUnreachable(error);
    }
    if (this.running) {
      this.timer = setTimeout(() => this.poll(), POLL_INTERVAL_MS);
    }
  }

  /** Polls at once, for example right after a submission. */
  refresh() {
    if (this.running) {
      this.poll();
    }
  }

  addSamples(status) {
    for (const entry of status.history || []) {
      const at = Date.parse(entry.at);
      if (!Number.isNaN(at)) {
        this.samples.set(at, entry);
      }
    }
    // Without Redis the counts read as zero, which would draw a false drop.
    if (status.redis.ok) {
      this.samples.set(Date.now(), {
        queue_depth: status.queue.depth,
        worker_replicas: status.workers.ready ?? status.workers.heartbeats.length,
        active_runs: status.runners.active,
      });
    }
    const oldest = Date.now() - WINDOW_MS;
    for (const at of this.samples.keys()) {
      if (at < oldest) {
        this.samples.delete(at);
      }
    }
  }

  drawTimeline() {
    const end = Date.now();
    const samples = [...this.samples.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([at, sample]) => ({ ...sample, at }));
    drawChart(this.nodes.chart, samples, end - WINDOW_MS, end);
  }

  render(status) {
    this.nodes.updated.textContent = `Updated ${formatTime(new Date().toISOString())}`;
    this.renderBanners(status);
    this.addSamples(status);

    const redisOk = status.redis.ok;
    this.nodes.queueDepth.textContent = redisOk ? String(status.queue.depth) : "?";
    const queued = status.queue.queued_run_ids.map((id) => runChip(id));
    if (status.queue.depth > queued.length) {
      queued.push(element("li", { className: "muted", text: `and ${status.queue.depth - queued.length} more` }));
    }
    this.nodes.queuedIds.replaceChildren(...queued);

    this.nodes.workersReady.textContent = orDash(status.workers.ready);
    this.nodes.workersDesired.textContent = orDash(status.workers.desired);
    this.nodes.workerPods.replaceChildren(
      podTable(
        "Worker Pods",
        ["Pod", "Node", "Phase"],
        status.workers.pods.map((pod) => [pod.name, orDash(pod.node), phaseBadge(pod.phase)]),
        status.kubernetes.ok ? "No worker Pods." : "No worker Pods: no cluster data.",
      ),
    );
    const heartbeats = status.workers.heartbeats.map((id) => element("li", { className: "chip", text: id }));
    if (heartbeats.length === 0) {
      heartbeats.push(element("li", { className: "muted", text: redisOk ? "No live workers." : "Unknown while Redis is unreachable." }));
    }
    this.nodes.heartbeats.replaceChildren(...heartbeats);

    this.nodes.runnersActive.textContent = redisOk ? String(status.runners.active) : "?";
    this.nodes.runnerPods.replaceChildren(
      podTable(
        "Runner Pods",
        ["Run", "Pod", "Node", "Phase"],
        status.runners.pods.map((pod) => [
          pod.run_id ? runButton(pod.run_id) : "–",
          pod.pod,
          orDash(pod.node),
          phaseBadge(pod.phase),
        ]),
        status.kubernetes.ok ? "No runner Pods." : "No runner Pods: no cluster data.",
      ),
    );
    this.renderNodes(status);
    this.drawTimeline();
  }

  renderBanners(status) {
    const banners = [];
    if (!status.redis.ok) {
      banners.push(
        banner(
          "error",
          "Redis unreachable.",
          `${status.redis.message || "The API cannot reach Redis."} Runs cannot be submitted or listed until it is back.`,
        ),
      );
    }
    if (!status.kubernetes.ok) {
      const message = status.kubernetes.message || "The Kubernetes API did not respond.";
      // In dev mode the server's message starts with this phrase; the title repeats it.
      const noClusterPrefix = /^no cluster configured:?\s*/i;
      if (noClusterPrefix.test(message)) {
        const detail = message.replace(noClusterPrefix, "");
        const sentence = detail ? `${detail.charAt(0).toUpperCase()}${detail.slice(1)}.` : "";
        banners.push(banner("info", "No cluster configured.", `${sentence} Worker Deployments and runner Pods do not apply.`));
      } else {
        banners.push(banner("warning", "Kubernetes unreachable.", message));
      }
    }
    this.nodes.banners.replaceChildren(...banners);
  }

  renderUnreachable(error) {
    this.nodes.updated.textContent = `Last attempt ${formatTime(new Date().toISOString())}`;
    const title = error.status === 401 ? "API token required." : "API unreachable.";
    this.nodes.banners.replaceChildren(banner("error", title, `${error.message} Retrying every ${POLL_INTERVAL_MS / 1000} s.`));
  }

  renderNodes(status) {
    const entries = Object.entries(status.nodes).sort((a, b) => a[0].localeCompare(b[0]));
    if (entries.length === 0) {
      this.nodes.nodeBars.replaceChildren(
        element("p", { className: "muted", text: status.kubernetes.ok ? "No runner Pods on any node." : "No cluster data." }),
      );
      return;
    }
    const max = Math.max(...entries.map(([, count]) => count));
    const rows = entries.map(([node, count]) => {
      const bar = element("span", { className: "node-bar-fill" });
      bar.style.width = `${(count / max) * 100}%`;
      return element("li", { className: "node-bar" }, [
        element("span", { className: "node-name", text: node }),
        element("span", { className: "node-bar-track", "aria-hidden": "true" }, [bar]),
        element("span", { className: "node-count", text: String(count) }),
      ]);
    });
    this.nodes.nodeBars.replaceChildren(element("ul", { className: "node-bars", "aria-label": "Runner Pods per node" }, rows));
  }
}

function banner(kind, title, text) {
  return element("div", { className: `banner banner-${kind}`, role: kind === "info" ? "note" : "alert" }, [
    element("strong", { text: title }),
    element("span", { text: ` ${text}` }),
  ]);
}

function runButton(id) {
  return element("button", { type: "button", className: "link-button", "data-run-id": id, title: id, text: shortId(id) });
}

function runChip(id) {
  return element("li", {}, [runButton(id)]);
}

function phaseBadge(phase) {
  const name = phase || "Unknown";
  return element("span", { className: `phase phase-${name.toLowerCase()}`, text: name });
}

function podTable(caption, headers, rows, emptyText) {
  if (rows.length === 0) {
    return element("p", { className: "muted", text: emptyText });
  }
  const head = element("tr", {}, headers.map((header) => element("th", { scope: "col", text: header })));
  const body = rows.map((cells) =>
    element(
      "tr",
      {},
      cells.map((cell) => element("td", {}, [cell])),
    ),
  );
  return element("div", { className: "table-wrap" }, [
    element("table", { className: "pod-table" }, [
      element("caption", { className: "visually-hidden", text: caption }),
      element("thead", {}, [head]),
      element("tbody", {}, body),
    ]),
  ]);
}
