// The run form: builds the POST /runs body, shows validation errors next to
// the field the API names, and keeps a draft in localStorage.

import { newIdempotencyKey, postJson } from "./api.js";
import { attachCodeEditor } from "./editor.js";
import { asSentence } from "./format.js";

const DRAFT_KEY = "code-runner.draft";

export const EXAMPLES = {
  python: [
    "import sys",
    "import time",
    "",
    'name = sys.stdin.read().strip() or "world"',
    "for i in range(3):",
    '    print(f"Hello, {name}! ({i + 1}/3)", flush=True)',
    "    time.sleep(0.5)",
    "",
  ].join("\n"),
  javascript: [
    'const input = require("fs").readFileSync(0, "utf8").trim();',
    'const name = input || "world";',
    "let i = 0;",
    "const timer = setInterval(() => {",
    "    i += 1;",
    "    console.log(`Hello, ${name}! (${i}/3)`);",
    "    if (i === 3) clearInterval(timer);",
    "}, 500);",
    "",
  ].join("\n"),
};

// Maps an API error's `field` to the form control it is about.
const FIELD_CONTROLS = {
  language: "run-language",
  code: "run-code",
  timeout_seconds: "run-timeout",
  stdin: "run-stdin",
};

/** Shows an API error in an error box, marking the control for its field as invalid. */
export function showFormError(box, form, error, fieldControls) {
  for (const control of form.querySelectorAll("[aria-invalid]")) {
    control.removeAttribute("aria-invalid");
  }
  if (!error) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }

  const parts = [];
  const message = document.createElement("span");
  message.className = "error-message";
  message.textContent = asSentence(error.message);
  parts.push(message);
  if (error.field) {
    const field = document.createElement("span");
    field.className = "error-field";
    field.textContent = ` (field: ${error.field})`;
    parts.push(field);
  }
  if (error.retryAfter) {
    const retry = document.createElement("span");
    retry.textContent = ` Retry after ${error.retryAfter} s.`;
    parts.push(retry);
  }
  box.replaceChildren(...parts);
  box.hidden = false;

  const controlId = error.field && fieldControls[error.field];
  const control = controlId && document.getElementById(controlId);
  if (control) {
    control.setAttribute("aria-invalid", "true");
    control.setAttribute("aria-errormessage", box.id);
  }
}

export class RunForm {
  /** onCreated(run) is called with each run the API accepts. */
  constructor(form, { onCreated }) {
    this.form = form;
    this.onCreated = onCreated;
    this.language = form.querySelector("#run-language");
    this.code = form.querySelector("#run-code");
    this.stdin = form.querySelector("#run-stdin");
    this.timeout = form.querySelector("#run-timeout");
    this.submitButton = form.querySelector("#run-submit");
    this.busy = form.querySelector("#run-form-busy");
    this.errorBox = form.querySelector("#run-form-error");
    this.submitting = false;

    this.restoreDraft();
    attachCodeEditor(this.code, () => this.submit());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    form.addEventListener("input", () => this.saveDraft());
    this.language.addEventListener("change", () => this.swapExample());
  }

  restoreDraft() {
    let draft = null;
    try {
      draft = JSON.parse(localStorage.getItem(DRAFT_KEY));
    } catch {
      draft = null;
    }
    if (draft && typeof draft.code === "string" && draft.code !== "") {
      if (draft.language in EXAMPLES) {
        this.language.value = draft.language;
      }
      this.code.value = draft.code;
      this.stdin.value = typeof draft.stdin === "string" ? draft.stdin : "";
      if (draft.timeout_seconds) {
        this.timeout.value = draft.timeout_seconds;
      }
    } else {
      this.code.value = EXAMPLES[this.language.value];
    }
  }

  saveDraft() {
    const draft = {
      language: this.language.value,
      code: this.code.value,
      stdin: this.stdin.value,
      timeout_seconds: this.timeout.value,
    };
    try {
      localStorage.setItem(DRAFT_KEY, JSON.stringify(draft));
    } catch {
      // Storage may be full or disabled; the draft is a convenience only.
    }
  }

  // Replaces the example of one language with the other's, but never the user's own code.
  swapExample() {
    const current = this.code.value;
    const isExample = current.trim() === "" || Object.values(EXAMPLES).includes(current);
    if (isExample) {
      this.code.value = EXAMPLES[this.language.value];
      this.saveDraft();
    }
  }

  /** Checks the timeout in the browser, so an obvious mistake needs no round trip. */
  readTimeout() {
    const raw = this.timeout.value.trim();
    if (raw === "") {
      return { value: undefined };
    }
    const value = Number(raw);
    const min = Number(this.timeout.min);
    if (!Number.isInteger(value) || value < min) {
      return { error: { message: `Timeout must be a whole number of seconds, at least ${min}.`, field: "timeout_seconds" } };
    }
    // The server's maximum is configurable, so the server judges the upper bound.
    return { value };
  }

  async submit() {
    if (this.submitting) {
      return;
    }
    const timeout = this.readTimeout();
    if (timeout.error) {
      showFormError(this.errorBox, this.form, timeout.error, FIELD_CONTROLS);
      this.timeout.focus();
      return;
    }
    const body = { language: this.language.value, code: this.code.value };
    if (timeout.value !== undefined) {
      body.timeout_seconds = timeout.value;
    }
    if (this.stdin.value !== "") {
      body.stdin = this.stdin.value;
    }

    this.submitting = true;
    this.submitButton.disabled = true;
    this.busy.hidden = false;
    try {
      const run = await postJson("/runs", body, { "Idempotency-Key": newIdempotencyKey() });
      showFormError(this.errorBox, this.form, null, FIELD_CONTROLS);
      this.onCreated(run);
    } catch (error) {
      showFormError(this.errorBox, this.form, error, FIELD_CONTROLS);
      const controlId = error.field && FIELD_CONTROLS[error.field];
      if (controlId) {
        document.getElementById(controlId).focus();
      }
    } finally {
      this.submitting = false;
      this.submitButton.disabled = false;
      this.busy.hidden = true;
    }
  }
}
