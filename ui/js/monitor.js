// The live monitor: polls GET /system/status and shows the queue, workers,
// runner Pods per node and a timeline of the server's history plus the
// samples this page took itself.

import { apiJson } from "./api.js";
import { drawChart } from "./chart.js";
import { asSentence, element, formatTime, orDash, shortId } from "./format.js";

const POLL_INTERVAL_MS = 2000;
const WINDOW_MS = 10 * 60 * 1000;
const MIN_WINDOW_MS = 2 * 60 * 1000;

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
      chartCaption: find("#monitor-chart-caption"),
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

  // The time axis spans the samples at hand, from MIN_WINDOW_MS up to WINDOW_MS,
  // so a fresh server or page does not squeeze its data into one corner.
  drawTimeline() {
    const end = Date.now();
    const samples = [...this.samples.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([at, sample]) => ({ ...sample, at }));
    const span = samples.length > 0 ? end - samples[0].at : 0;
    const windowMs = Math.min(WINDOW_MS, Math.max(MIN_WINDOW_MS, Math.ceil(span / 60000) * 60000));
    this.nodes.chartCaption.textContent =
      `Queue depth, worker replicas and active runs over the last ${windowMs / 60000} minutes`;
    drawChart(this.nodes.chart, samples, end - windowMs, end);
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
      podList(
        "Worker Pods",
        status.workers.pods.map((pod) => ({ title: pod.name, node: pod.node, phase: pod.phase })),
        workerPodsEmptyText(status),
      ),
    );
    const heartbeats = status.workers.heartbeats.map((id) => element("li", { className: "chip", text: id }));
    if (heartbeats.length === 0) {
      heartbeats.push(element("li", { className: "muted", text: redisOk ? "No live workers." : "Unknown while Redis is unreachable." }));
    }
    this.nodes.heartbeats.replaceChildren(...heartbeats);

    this.nodes.runnersActive.textContent = redisOk ? String(status.runners.active) : "?";
    this.nodes.runnerPods.replaceChildren(
      podList(
        "Runner Pods",
        // Active Pods first; sort() is stable, so each group keeps the API's order.
        [...status.runners.pods]
          .sort((a, b) => Number(isActivePhase(b.phase)) - Number(isActivePhase(a.phase)))
          .map((pod) => ({ title: pod.pod, runId: pod.run_id, node: pod.node, phase: pod.phase })),
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
          `${asSentence(status.redis.message || "The API cannot reach Redis")} Runs cannot be submitted or listed until it is back.`,
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
    this.nodes.banners.replaceChildren(banner("error", title, `${asSentence(error.message)} Retrying every ${POLL_INTERVAL_MS / 1000} s.`));
  }

  // `nodes` counts every runner Pod that still exists, finished ones included
  // until their Job's TTL removes them, so the active part is drawn apart.
  renderNodes(status) {
    const entries = Object.entries(status.nodes).sort((a, b) => a[0].localeCompare(b[0]));
    if (entries.length === 0) {
      this.nodes.nodeBars.replaceChildren(
        element("p", { className: "muted", text: status.kubernetes.ok ? "No runner Pods on any node." : "No cluster data." }),
      );
      return;
    }
    const activeByNode = new Map();
    for (const pod of status.runners.pods) {
      if (pod.node && isActivePhase(pod.phase)) {
        activeByNode.set(pod.node, (activeByNode.get(pod.node) || 0) + 1);
      }
    }
    const max = Math.max(...entries.map(([, count]) => count));
    const rows = entries.map(([node, count]) => {
      const active = Math.min(activeByNode.get(node) || 0, count);
      const activeBar = element("span", { className: "node-bar-active" });
      activeBar.style.width = `${(active / max) * 100}%`;
      const finishedBar = element("span", { className: "node-bar-finished" });
      finishedBar.style.width = `${((count - active) / max) * 100}%`;
      return element("li", { className: "node-bar", "data-node": node }, [
        element("span", { className: "node-name", title: node, text: node }),
        element("span", { className: "node-bar-track", "aria-hidden": "true" }, [activeBar, finishedBar]),
        element("span", { className: "node-count", text: String(count) }),
        element("span", { className: "node-active muted", text: `(${active} active)` }),
      ]);
    });
    this.nodes.nodeBars.replaceChildren(
      element("ul", { className: "node-bars", "aria-label": "Runner Pods per node" }, rows),
      element("p", { className: "help", text: "Solid: Pending or Running. Light: finished Pods not yet removed." }),
    );
  }
}

function workerPodsEmptyText(status) {
  if (!status.kubernetes.ok) {
    return "No worker Pods: no cluster data.";
  }
  if (status.workers.desired === null) {
    return "No worker Deployment found, so only heartbeats show the workers.";
  }
  return "No worker Pods.";
}

function isActivePhase(phase) {
  return phase === "Pending" || phase === "Running";
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

// Lists Pods as two lines each (name, then node and phase), which fits a
// narrow card better than a table. A runner Pod leads with its run id.
function podList(label, pods, emptyText) {
  if (pods.length === 0) {
    return element("p", { className: "muted", text: emptyText });
  }
  const items = pods.map((pod) => {
    const first = pod.runId !== undefined
      ? [pod.runId ? runButton(pod.runId) : element("span", { className: "muted", text: "no run id" })]
      : [];
    first.push(element("span", { className: "pod-name", title: pod.title, text: pod.title }));
    return element("li", { className: "pod" }, [
      element("div", { className: "pod-title" }, first),
      element("div", { className: "pod-meta" }, [
        phaseBadge(pod.phase),
        element("span", { className: "muted", text: pod.node ? `on ${pod.node}` : "not scheduled" }),
      ]),
    ]);
  });
  return element("ul", { className: "pod-list", "aria-label": label }, items);
}
