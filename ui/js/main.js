// Entry point: connects the run form, run panel, batch test, monitor and
// runs table, and the token dialog that appears on a 401.

import { askForToken, forgetToken, isTokenDeclined, onTokenChange, setTokenPrompt, storedToken } from "./api.js";
import { BatchRunner } from "./batch.js";
import { Monitor } from "./monitor.js";
import { RunForm } from "./run-form.js";
import { RunPanel } from "./run-panel.js";
import { RunsTable } from "./runs-table.js";

// Reloads the first page of runs at most this often while it is shown.
const TABLE_REFRESH_MS = 5000;

/** Opens the token dialog; resolves to the entered token, or null when cancelled. */
function promptForToken(rejected) {
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  const error = document.getElementById("token-error");
  const cancel = document.getElementById("token-cancel");
  const previousFocus = document.activeElement;

  error.hidden = !rejected;
  error.textContent = rejected ? "The server rejected the stored token. Enter a valid one." : "";
  input.value = "";

  return new Promise((resolve) => {
    const finish = (token) => {
      form.removeEventListener("submit", onSubmit);
      cancel.removeEventListener("click", onCancel);
      dialog.removeEventListener("cancel", onCancel);
      if (dialog.open) {
        dialog.close();
      }
      if (previousFocus && typeof previousFocus.focus === "function") {
        previousFocus.focus();
      }
      resolve(token);
    };
    const onSubmit = (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (token === "") {
        error.hidden = false;
        error.textContent = "Enter a token, or choose Cancel.";
        input.focus();
        return;
      }
      finish(token);
    };
    const onCancel = (event) => {
      event.preventDefault();
      finish(null);
    };
    form.addEventListener("submit", onSubmit);
    cancel.addEventListener("click", onCancel);
    dialog.addEventListener("cancel", onCancel);
    dialog.showModal();
    input.focus();
  });
}

function start() {
  setTokenPrompt(promptForToken);
  let table = null;
  let monitor = null;

  const enterButton = document.getElementById("token-enter");
  const forgetButton = document.getElementById("token-forget");
  const showTokenButtons = () => {
    forgetButton.hidden = !storedToken();
    enterButton.hidden = !isTokenDeclined();
  };
  showTokenButtons();
  onTokenChange(showTokenButtons);
  forgetButton.addEventListener("click", () => forgetToken());
  enterButton.addEventListener("click", async () => {
    if (await askForToken()) {
      table.load();
      monitor.refresh();
    }
  });

  const panel = new RunPanel(document.getElementById("run-panel"), {
    onRunFinished: () => {
      if (table.onFirstPage) {
        table.load();
      }
      monitor.refresh();
    },
  });
  const showRun = (id) => {
    panel.open(id);
    panel.reveal();
  };
  const openRun = (id) => {
    table.select(id);
    showRun(id);
  };

  table = new RunsTable(document.getElementById("runs-section"), { onOpen: showRun });
  monitor = new Monitor(document.getElementById("monitor-section"), { onOpenRun: openRun });

  new RunForm(document.getElementById("run-form"), {
    onCreated: (run) => {
      panel.show(run);
      panel.reveal();
      table.select(run.id);
      table.goFirst();
      monitor.refresh();
    },
  });
  new BatchRunner(document.getElementById("batch-form"), {
    onSubmitted: () => {
      table.goFirst();
      monitor.refresh();
    },
    onOpenRun: openRun,
  });

  table.load();
  monitor.start();
  setInterval(() => {
    if (!document.hidden && table.onFirstPage) {
      table.load();
    }
  }, TABLE_REFRESH_MS);
}

start();
