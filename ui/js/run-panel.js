// The run panel: one run's state, live from GET /runs/{id}/events, and its
// output, streamed from GET /runs/{id}/logs?follow=true while it runs.

import { apiFetch, apiJson, streamEvents, streamText } from "./api.js";
import { element, formatDuration, formatTime, isTerminal, orDash } from "./format.js";

// Waits before reconnecting a stream that ended while the run was unfinished.
const RECONNECT_DELAYS_MS = [500, 1000, 2000, 5000, 10000];

// Time the log follower waits for the event stream to report the end of the run.
const FINISH_WAIT_MS = 2000;

const STEPS = [
  { status: "queued", label: "Queued", time: "created_at" },
  { status: "dispatched", label: "Dispatched", time: "dispatched_at" },
  { status: "pending", label: "Pending", time: null },
  { status: "running", label: "Running", time: "started_at" },
];
const STEP_RANK = Object.fromEntries(STEPS.map((step, index) => [step.status, index]));

// Resolves after the delay, or at once when the signal aborts.
function sleep(milliseconds, signal) {
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, milliseconds);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

export class RunPanel {
  /** onRunFinished(run) is called once when a shown run reaches a terminal state. */
  constructor(root, { onRunFinished }) {
    this.onRunFinished = onRunFinished;
    this.root = root;
    this.nodes = {
      empty: root.querySelector("#run-empty"),
      view: root.querySelector("#run-view"),
      status: root.querySelector("#run-status"),
      id: root.querySelector("#run-id"),
      language: root.querySelector("#run-language-label"),
      steps: root.querySelector("#run-steps"),
      details: root.querySelector("#run-details"),
      error: root.querySelector("#run-error"),
      output: root.querySelector("#run-output"),
      outputState: root.querySelector("#run-output-state"),
      cancel: root.querySelector("#run-cancel"),
      heading: root.querySelector("#run-panel-heading"),
    };
    this.run = null;
    this.controller = null;
    // Counts open() and show() calls, so a slow open() cannot replace a newer run.
    this.openRequest = 0;
    this.nodes.cancel.addEventListener("click", () => this.cancel());
  }

  /** Scrolls the panel into view when its top is off screen, as on phones below the form. */
  reveal() {
    const top = this.root.getBoundingClientRect().top;
    if (top < 0 || top > window.innerHeight * 0.5) {
      const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
      this.root.scrollIntoView({ block: "start", behavior: reducedMotion ? "auto" : "smooth" });
    }
  }

  /** Shows a run object and follows it until it ends. */
  show(run) {
    this.openRequest += 1;
    this.stop();
    this.controller = new AbortController();
    this.run = null;
    this.reportedFinished = false;
    this.logsComplete = false;
    this.reconnecting = false;
    this.nodes.output.textContent = "";
    this.setError(null);
    this.nodes.empty.hidden = true;
    this.nodes.view.hidden = false;
    this.update(run);
    this.followEvents(run.id, this.controller.signal);
    this.followLogs(run.id, this.controller.signal);
  }

  /** Loads a run by id, then shows it. */
  async open(id) {
    // Only the latest of several quick clicks may fill the panel.
    const request = ++this.openRequest;
    try {
      const run = await apiJson(`/runs/${encodeURIComponent(id)}`);
      if (request === this.openRequest) {
        this.show(run);
      }
    } catch (error) {
      if (request !== this.openRequest) {
        return;
      }
      this.stop();
      this.run = null;
      this.nodes.empty.hidden = true;
      this.nodes.view.hidden = false;
      this.nodes.cancel.hidden = true;
      this.nodes.status.textContent = "";
      this.nodes.id.textContent = id;
      this.nodes.language.textContent = "";
      this.nodes.steps.replaceChildren();
      this.nodes.details.replaceChildren();
      this.nodes.output.textContent = "";
      this.nodes.outputState.textContent = "";
      this.setError(error);
    }
  }

  stop() {
    if (this.controller) {
      this.controller.abort();
      this.controller = null;
    }
  }

  // Applies a newer view of the run; stale events for another run are ignored.
  update(run) {
    if (this.run && this.run.id !== run.id) {
      return;
    }
    this.run = run;
    const finished = isTerminal(run.status);
    this.nodes.heading.textContent = "Run";
    this.nodes.status.className = `status status-${run.status}`;
    this.nodes.status.textContent = run.status;
    this.nodes.id.textContent = run.id;
    this.nodes.language.textContent = run.language;
    this.nodes.cancel.hidden = finished;
    this.nodes.cancel.disabled = false;
    this.renderSteps(run);
    this.renderDetails(run);
    this.renderOutputState();
    if (finished && !this.reportedFinished) {
      this.reportedFinished = true;
      this.onRunFinished(run);
    }
  }

  renderSteps(run) {
    const finished = isTerminal(run.status);
    const rank = finished ? STEPS.length : STEP_RANK[run.status];
    const items = STEPS.map((step, index) => {
      let state = "todo";
      if (index < rank) {
        state = "done";
      } else if (index === rank) {
        state = "current";
      }
      // A run that ended before a step never reached it.
      const time = step.time ? run[step.time] : null;
      if (finished && step.time && !time) {
        state = "skipped";
      }
      return element("li", { className: `step step-${state}`, "aria-current": state === "current" ? "step" : "false" }, [
        element("span", { className: "step-label", text: step.label }),
        element("span", { className: "step-time", text: time ? formatTime(time) : "" }),
      ]);
    });
    if (finished) {
      items.push(
        element("li", { className: `step step-done step-final status-${run.status}`, "aria-current": "step" }, [
          element("span", { className: "step-label", text: run.status }),
          element("span", { className: "step-time", text: formatTime(run.finished_at) }),
        ]),
      );
    }
    this.nodes.steps.replaceChildren(...items);
  }

  renderDetails(run) {
    const rows = [
      ["Exit code", orDash(run.exit_code)],
      ["Reason", orDash(run.reason)],
      ["Message", orDash(run.message)],
      ["Queue wait", formatDuration(run.queue_wait_ms)],
      ["Duration", formatDuration(run.duration_ms)],
      ["Timeout", `${run.timeout_seconds} s`],
      ["Node", orDash(run.node)],
      ["Job", orDash(run.job_name)],
      ["Created", formatTime(run.created_at)],
      ["Finished", formatTime(run.finished_at)],
    ];
    const children = [];
    for (const [label, value] of rows) {
      const key = label.toLowerCase().replace(/\s+/g, "-");
      children.push(
        element("div", { className: `detail detail-${key}`, "data-field": key }, [
          element("dt", { text: label }),
          element("dd", { text: value }),
        ]),
      );
    }
    this.nodes.details.replaceChildren(...children);
  }

  renderOutputState() {
    const run = this.run;
    let text;
    if (!run) {
      text = "";
    } else if (!isTerminal(run.status)) {
      text = run.status === "running" ? "streaming…" : "waiting for the program to start…";
    } else if (!this.logsComplete) {
      text = "loading…";
    } else if (run.logs_truncated) {
      text = "complete, cut at the server's log limit";
    } else {
      text = this.nodes.output.textContent === "" ? "no output" : "complete";
    }
    this.nodes.outputState.textContent = text;
  }

  setError(error) {
    const node = this.nodes.error;
    if (!error) {
      node.hidden = true;
      node.textContent = "";
      return;
    }
    node.hidden = false;
    node.textContent = error.message;
  }

  appendOutput(text) {
    const output = this.nodes.output;
    const atBottom = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
    output.append(text);
    if (atBottom) {
      output.scrollTop = output.scrollHeight;
    }
  }

  async followEvents(id, signal) {
    for (let attempt = 0; !signal.aborted; attempt++) {
      try {
        await streamEvents(
          `/runs/${encodeURIComponent(id)}/events`,
          (name, data) => {
            if (name === "status" && !signal.aborted) {
              this.update(JSON.parse(data));
              attempt = 0;
              if (this.reconnecting) {
                this.reconnecting = false;
                this.setError(null);
              }
            }
          },
          signal,
        );
      } catch (error) {
        if (signal.aborted) {
          return;
        }
        if (error.status === 404) {
          this.setError(error);
          return;
        }
        this.reconnecting = true;
        this.setError(new Error(`Lost the live status (${error.message}). Reconnecting…`));
      }
      if (signal.aborted || (this.run && isTerminal(this.run.status))) {
        return;
      }
      await sleep(RECONNECT_DELAYS_MS[Math.min(attempt, RECONNECT_DELAYS_MS.length - 1)], signal);
    }
  }

  async followLogs(id, signal) {
    const path = `/runs/${encodeURIComponent(id)}/logs`;
    for (let attempt = 0; !signal.aborted; attempt++) {
      // Every attempt starts from the beginning of the output, so the text is replaced.
      let received = "";
      try {
        await streamText(
          `${path}?follow=true`,
          (chunk) => {
            if (received === "") {
              this.nodes.output.textContent = "";
            }
            received += chunk;
            this.appendOutput(chunk);
          },
          signal,
        );
        if (signal.aborted) {
          return;
        }
        // The follow stream ends when the run ends, unless the connection dropped.
        if (!(await this.waitForFinish(signal))) {
          throw new Error("the log stream ended before the run");
        }
        const finalResponse = await apiFetch(path, { signal });
        const finalText = await finalResponse.text();
        if (finalText !== received) {
          this.nodes.output.textContent = finalText;
        }
        this.logsComplete = true;
        this.renderOutputState();
        return;
      } catch (error) {
        if (signal.aborted) {
          return;
        }
        if (error.status === 404) {
          return; // followEvents shows the error
        }
      }
      await sleep(RECONNECT_DELAYS_MS[Math.min(attempt, RECONNECT_DELAYS_MS.length - 1)], signal);
    }
  }

  // Returns true once the run is finished: the event stream usually reports it
  // within milliseconds, and after FINISH_WAIT_MS the run is read directly.
  async waitForFinish(signal) {
    for (let waited = 0; waited < FINISH_WAIT_MS && !signal.aborted; waited += 100) {
      if (this.run && isTerminal(this.run.status)) {
        return true;
      }
      await sleep(100, signal);
    }
    if (signal.aborted) {
      return false;
    }
    const run = await apiJson(`/runs/${encodeURIComponent(this.run.id)}`, { signal });
    this.update(run);
    return isTerminal(run.status);
  }

  async cancel() {
    const run = this.run;
    if (!run || isTerminal(run.status)) {
      return;
    }
    this.nodes.cancel.disabled = true;
    try {
      const cancelled = await apiJson(`/runs/${encodeURIComponent(run.id)}`, { method: "DELETE" });
      if (cancelled) {
        this.update(cancelled);
      }
      this.setError(null);
    } catch (error) {
      this.setError(error);
      this.nodes.cancel.disabled = false;
    }
  }
}
