// The autoscaling smoke test: submits a batch of Python programs that print
// and sleep, then tracks each run until all have finished.

import { apiJson, newIdempotencyKey, postJson } from "./api.js";
import { element, isTerminal, RUN_STATES, shortId } from "./format.js";
import { showFormError } from "./run-form.js";

const FIELD_CONTROLS = { count: "batch-count", sleep: "batch-sleep" };
// Requests in flight at once, below the browser's six connections per host
// so that the run panel's streams and the monitor keep theirs.
const PARALLEL_REQUESTS = 3;
const TRACK_INTERVAL_MS = 1500;
// GET /runs returns at most 500 runs; the margin leaves room for runs that
// others created after the batch.
const MAX_LIST_LIMIT = 500;
const LIST_MARGIN = 50;
// Time allowed on top of the sleep, for interpreter start-up and printing.
const TIMEOUT_MARGIN_SECONDS = 30;

/** Returns the Python program of one batch run. */
export function batchProgram(index, count, sleepSeconds) {
  return [
    "import time",
    `print("batch run ${index} of ${count}: sleeping ${sleepSeconds} s", flush=True)`,
    `time.sleep(${sleepSeconds})`,
    `print("batch run ${index} of ${count}: done", flush=True)`,
    "",
  ].join("\n");
}

// Runs worker(item) for every item, at most `limit` at a time.
async function forEachLimited(items, limit, worker) {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++];
      await worker(item);
    }
  });
  await Promise.all(lanes);
}

export class BatchRunner {
  constructor(form, { onSubmitted, onOpenRun }) {
    this.form = form;
    this.onSubmitted = onSubmitted;
    this.count = form.querySelector("#batch-count");
    this.sleep = form.querySelector("#batch-sleep");
    this.submitButton = form.querySelector("#batch-submit");
    this.errorBox = form.querySelector("#batch-error");
    this.result = form.querySelector("#batch-result");
    this.summary = form.querySelector("#batch-summary");
    this.list = form.querySelector("#batch-runs");
    this.runs = new Map();
    this.trackTimer = null;
    this.generation = 0;

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-run-id]");
      if (button) {
        onOpenRun(button.dataset.runId);
      }
    });
  }

  readInputs() {
    const count = Number(this.count.value);
    const min = Number(this.count.min);
    const max = Number(this.count.max);
    if (!Number.isInteger(count) || count < min || count > max) {
      return { error: { message: `Batch count must be a whole number from ${min} to ${max}.`, field: "count" } };
    }
    const sleepSeconds = Number(this.sleep.value);
    const sleepMax = Number(this.sleep.max);
    if (this.sleep.value.trim() === "" || !Number.isFinite(sleepSeconds) || sleepSeconds < 0 || sleepSeconds > sleepMax) {
      return { error: { message: `Sleep seconds must be a number from 0 to ${sleepMax}.`, field: "sleep" } };
    }
    return { count, sleepSeconds };
  }

  async submit() {
    const inputs = this.readInputs();
    if (inputs.error) {
      showFormError(this.errorBox, this.form, inputs.error, FIELD_CONTROLS);
      document.getElementById(FIELD_CONTROLS[inputs.error.field]).focus();
      return;
    }
    showFormError(this.errorBox, this.form, null, FIELD_CONTROLS);
    const { count, sleepSeconds } = inputs;
    const generation = ++this.generation;
    this.runs = new Map();
    this.submitButton.disabled = true;
    this.result.hidden = false;
    this.failure = null;
    this.render(count);

    const indexes = Array.from({ length: count }, (_, index) => index + 1);
    await forEachLimited(indexes, PARALLEL_REQUESTS, async (index) => {
      // After one rejection (queue full, rate limit, Redis down) the rest would fail the same way.
      if (this.failure || generation !== this.generation) {
        return;
      }
      const body = {
        language: "python",
        code: batchProgram(index, count, sleepSeconds),
        timeout_seconds: Math.ceil(sleepSeconds) + TIMEOUT_MARGIN_SECONDS,
      };
      try {
        const run = await postJson("/runs", body, { "Idempotency-Key": newIdempotencyKey() });
        this.runs.set(run.id, { index, run });
        this.render(count);
      } catch (error) {
        this.failure = error;
      }
    });
    this.submitButton.disabled = false;
    if (this.failure) {
      const error = this.failure;
      error.message = `Submitted ${this.runs.size} of ${count}: ${error.message}`;
      showFormError(this.errorBox, this.form, error, FIELD_CONTROLS);
    }
    this.onSubmitted();
    this.render(count);
    this.track(count, generation);
  }

  // Polls the batch's unfinished runs until every one has ended. One listing
  // of recent runs usually covers the whole batch, so the request rate stays
  // far below the API's rate limit. Runs missing from it are read one by one.
  async track(count, generation) {
    clearTimeout(this.trackTimer);
    const unfinished = [...this.runs.values()].filter((entry) => !isTerminal(entry.run.status));
    const listed = new Set();
    try {
      const limit = Math.min(MAX_LIST_LIMIT, this.runs.size + LIST_MARGIN);
      const page = await apiJson(`/runs?limit=${limit}`);
      for (const run of page.runs) {
        const entry = this.runs.get(run.id);
        if (entry) {
          entry.run = run;
          listed.add(run.id);
        }
      }
    } catch {
      // The runs are read one by one below.
    }
    const missing = unfinished.filter((entry) => !listed.has(entry.run.id));
    await forEachLimited(missing, PARALLEL_REQUESTS, async (entry) => {
      try {
        entry.run = await apiJson(`/runs/${encodeURIComponent(entry.run.id)}`);
      } catch {
        // A failed poll keeps the last known state; the next poll tries again.
      }
    });
    if (generation !== this.generation) {
      return;
    }
    this.render(count);
    if ([...this.runs.values()].some((entry) => !isTerminal(entry.run.status))) {
      this.trackTimer = setTimeout(() => this.track(count, generation), TRACK_INTERVAL_MS);
    }
  }

  render(count) {
    const entries = [...this.runs.values()].sort((a, b) => a.index - b.index);
    const byStatus = new Map();
    for (const { run } of entries) {
      byStatus.set(run.status, (byStatus.get(run.status) || 0) + 1);
    }
    const counts = RUN_STATES.filter((status) => byStatus.has(status)).map((status) => `${byStatus.get(status)} ${status}`);
    const finished = entries.filter(({ run }) => isTerminal(run.status)).length;
    let text = `Batch of ${count}: ${entries.length} submitted`;
    if (counts.length > 0) {
      text += ` (${counts.join(", ")})`;
    }
    if (entries.length > 0 && finished === entries.length && !this.submitButton.disabled) {
      text += ". All finished.";
    }
    this.summary.textContent = text;
    this.list.replaceChildren(
      ...entries.map(({ index, run }) =>
        element("li", {}, [
          element("button", {
            type: "button",
            className: `chip status-${run.status}`,
            "data-run-id": run.id,
            "data-status": run.status,
            title: `${run.id}: ${run.status}`,
            text: `#${index} ${run.status}`,
            "aria-label": `Batch run ${index}, ${shortId(run.id)}, ${run.status}. Open in the run panel.`,
          }),
        ]),
      ),
    );
  }
}
