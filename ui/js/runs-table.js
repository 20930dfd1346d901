// The recent runs table: GET /runs with a status filter and cursor pages.

import { apiJson } from "./api.js";
import { element, formatDuration, formatTime, orDash, shortId, statusBadge } from "./format.js";

const PAGE_SIZE = 20;

export class RunsTable {
  /** onOpen(id) is called when the user opens a row. */
  constructor(section, { onOpen }) {
    this.onOpen = onOpen;
    this.body = section.querySelector("#runs-body");
    this.empty = section.querySelector("#runs-empty");
    this.error = section.querySelector("#runs-error");
    this.statusFilter = section.querySelector("#runs-status");
    this.firstButton = section.querySelector("#runs-first");
    this.previousButton = section.querySelector("#runs-prev");
    this.nextButton = section.querySelector("#runs-next");
    this.pageLabel = section.querySelector("#runs-page");
    // Cursors of the pages before the current one; the first page has none.
    this.cursors = [];
    this.cursor = null;
    this.nextCursor = null;
    this.selectedId = null;
    this.loading = null;

    this.statusFilter.addEventListener("change", () => this.goFirst());
    section.querySelector("#runs-refresh").addEventListener("click", () => this.load());
    this.firstButton.addEventListener("click", () => this.goFirst());
    this.previousButton.addEventListener("click", () => this.goPrevious());
    this.nextButton.addEventListener("click", () => this.goNext());
    this.body.addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-run-id]");
      if (row) {
        this.open(row.dataset.runId);
      }
    });
    this.body.addEventListener("keydown", (event) => {
      const row = event.target.closest("tr[data-run-id]");
      if (!row) {
        return;
      }
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        this.open(row.dataset.runId);
      } else if (event.key === "ArrowDown" && row.nextElementSibling) {
        event.preventDefault();
        row.nextElementSibling.focus();
      } else if (event.key === "ArrowUp" && row.previousElementSibling) {
        event.preventDefault();
        row.previousElementSibling.focus();
      }
    });
  }

  get onFirstPage() {
    return this.cursor === null;
  }

  open(id) {
    this.select(id);
    this.onOpen(id);
  }

  /** Marks the row of the run shown in the run panel. */
  select(id) {
    this.selectedId = id;
    for (const row of this.body.rows) {
      row.setAttribute("aria-current", row.dataset.runId === id ? "true" : "false");
    }
  }

  goFirst() {
    this.cursors = [];
    this.cursor = null;
    return this.load();
  }

  goPrevious() {
    if (this.cursors.length === 0) {
      return this.goFirst();
    }
    this.cursor = this.cursors.pop();
    return this.load();
  }

  goNext() {
    if (!this.nextCursor) {
      return Promise.resolve();
    }
    this.cursors.push(this.cursor);
    this.cursor = this.nextCursor;
    return this.load();
  }

  /** Reloads the current page; concurrent calls share one request. */
  load() {
    if (!this.loading) {
      this.loading = this.fetchPage().finally(() => {
        this.loading = null;
      });
    }
    return this.loading;
  }

  async fetchPage() {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (this.cursor) {
      params.set("cursor", this.cursor);
    }
    if (this.statusFilter.value) {
      params.set("status", this.statusFilter.value);
    }
    try {
      const page = await apiJson(`/runs?${params}`);
      this.error.hidden = true;
      this.render(page);
    } catch (error) {
      this.error.hidden = false;
      this.error.textContent = `Could not load runs: ${error.message}`;
    }
  }

  render(page) {
    // Keep the keyboard focus on the same run across a refresh.
    const focusedRow = document.activeElement?.closest?.("tr[data-run-id]");
    const focusedId = focusedRow && this.body.contains(focusedRow) ? focusedRow.dataset.runId : null;

    const rows = page.runs.map((run) => this.renderRow(run));
    this.body.replaceChildren(...rows);
    this.empty.hidden = rows.length > 0;
    this.nextCursor = page.next_cursor;

    this.pageLabel.textContent = `Page ${this.cursors.length + 1}`;
    this.firstButton.disabled = this.onFirstPage;
    this.previousButton.disabled = this.onFirstPage;
    this.nextButton.disabled = !this.nextCursor;

    if (focusedId) {
      const row = this.body.querySelector(`tr[data-run-id="${CSS.escape(focusedId)}"]`);
      if (row) {
        row.focus();
      }
    }
  }

  renderRow(run) {
    const row = element(
      "tr",
      {
        tabIndex: 0,
        "data-run-id": run.id,
        "aria-current": run.id === this.selectedId ? "true" : "false",
        "aria-label": `Run ${run.id}, ${run.language}, ${run.status}. Press Enter to open.`,
      },
      [
        element("td", { className: "cell-status" }, [statusBadge(run.status)]),
        element("td", { className: "cell-id", title: run.id }, [element("code", { text: shortId(run.id) })]),
        element("td", { className: "cell-language", text: run.language }),
        element("td", { className: "cell-created", text: formatTime(run.created_at), title: run.created_at }),
        element("td", { className: "numeric cell-queue-wait", text: formatDuration(run.queue_wait_ms) }),
        element("td", { className: "numeric cell-duration", text: formatDuration(run.duration_ms) }),
        element("td", { className: "numeric cell-exit-code", text: orDash(run.exit_code) }),
        element("td", { className: "cell-reason", text: orDash(run.reason), title: run.message || "" }),
      ],
    );
    return row;
  }
}
