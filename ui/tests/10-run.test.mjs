// The run form and run panel: live states, streamed output, errors, cancel
// and the editor's keys.

import {
  BASE_URL,
  assertNoConsoleErrors,
  openUi,
  runDetail,
  setCode,
  waitForRunStatus,
} from "./harness.mjs";

// Chromium logs every 4xx response to the console; these tests expect some.
const EXPECTED_400 = /Failed to load resource: the server responded with a status of 400/;

export const tests = [
  {
    name: "python run streams output and succeeds",
    async run(context, assert) {
      const page = await openUi(context);
      // Record every status the panel shows, to check the live transitions.
      await page.evaluate(() => {
        window.seenStatuses = [];
        new MutationObserver(() => {
          const status = document.querySelector("#run-status").textContent;
          if (window.seenStatuses.at(-1) !== status) {
            window.seenStatuses.push(status);
          }
        }).observe(document.querySelector("#run-status"), { childList: true, characterData: true, subtree: true });
      });
      await setCode(
        page,
        [
          "import sys, time",
          'print("first line for", sys.stdin.read().strip(), flush=True)',
          "time.sleep(2)",
          'print("second line", flush=True)',
        ].join("\n"),
      );
      await page.fill("#run-stdin", "the tester");
      await page.click("#run-submit");

      await waitForRunStatus(page, "running");
      // The first line arrives while the program still sleeps.
      await page.waitForFunction(() => document.querySelector("#run-output").textContent.includes("first line for the tester"));
      assert.equal(await page.textContent("#run-status"), "running", "output streamed before the run ended");
      assert.equal(await page.isVisible("#run-cancel"), true, "cancel button while running");

      const id = await waitForRunStatus(page, "succeeded");
      await page.waitForFunction(() => document.querySelector("#run-output-state").textContent === "complete");
      const output = await page.textContent("#run-output");
      assert.equal(output, "first line for the tester\nsecond line\n");
      assert.equal(await runDetail(page, "exit-code"), "0");
      assert.equal(await runDetail(page, "reason"), "–");
      assert.match(await runDetail(page, "queue-wait"), /\d+ ms|\d+(\.\d+)? s/);
      assert.match(await runDetail(page, "duration"), /^2\.\d+ s$/);
      assert.equal(await page.isVisible("#run-cancel"), false, "no cancel button once finished");

      const seen = await page.evaluate(() => window.seenStatuses);
      assert.ok(seen.includes("running"), `statuses seen: ${seen.join(", ")}`);
      assert.equal(seen.at(-1), "succeeded");

      // The new run appears at the top of the recent runs table.
      await page.waitForSelector(`#runs-body tr[data-run-id="${id}"]`);
      assertNoConsoleErrors(assert, page);
    },
  },
  {
    name: "failing run shows reason and exit code",
    async run(context, assert) {
      const page = await openUi(context);
      await setCode(page, 'import sys\nprint("about to fail", file=sys.stderr)\nsys.exit(3)\n');
      await page.click("#run-submit");

      await waitForRunStatus(page, "failed");
      await page.waitForFunction(() => document.querySelector("#run-details [data-field='reason'] dd").textContent !== "–");
      assert.equal(await runDetail(page, "reason"), "NonZeroExit");
      assert.equal(await runDetail(page, "exit-code"), "3");
      await page.waitForFunction(() => document.querySelector("#run-output").textContent.includes("about to fail"));
      assertNoConsoleErrors(assert, page);
    },
  },
  {
    name: "javascript run succeeds",
    async run(context, assert) {
      const page = await openUi(context);
      await setCode(page, 'console.log("from node", 6 * 7);\n', "javascript");
      await page.click("#run-submit");
      await waitForRunStatus(page, "succeeded");
      await page.waitForFunction(() => document.querySelector("#run-output").textContent.includes("from node 42"));
      assertNoConsoleErrors(assert, page);
    },
  },
  {
    name: "timed out run shows its state",
    async run(context, assert) {
      const page = await openUi(context);
      await setCode(page, "import time\ntime.sleep(30)\n");
      await page.fill("#run-timeout", "1");
      await page.click("#run-submit");
      await waitForRunStatus(page, "timed_out");
      assert.notEqual(await runDetail(page, "message"), "–", "a timed out run carries a message");
      assertNoConsoleErrors(assert, page);
    },
  },
  {
    name: "API validation error names field",
    async run(context, assert) {
      const page = await openUi(context, { allowed: [EXPECTED_400] });

      // The browser only checks the lower bound; the server owns the maximum.
      await setCode(page, "print(1)\n");
      await page.fill("#run-timeout", "100000");
      await page.click("#run-submit");
      await page.waitForSelector("#run-form-error:not([hidden])");
      const timeoutError = await page.textContent("#run-form-error");
      assert.match(timeoutError, /timeout_seconds must be/);
      assert.match(timeoutError, /field: timeout_seconds/);
      assert.equal(await page.getAttribute("#run-timeout", "aria-invalid"), "true");
      assert.equal(await page.evaluate(() => document.activeElement.id), "run-timeout");

      await page.fill("#run-timeout", "30");
      await page.fill("#run-code", "");
      await page.click("#run-submit");
      await page.waitForFunction(() => document.querySelector("#run-form-error").textContent.includes("field: code"));
      assert.equal(await page.getAttribute("#run-code", "aria-invalid"), "true");
      assert.equal(await page.getAttribute("#run-timeout", "aria-invalid"), null, "old field mark cleared");

      // A value the browser can reject never reaches the server.
      await page.fill("#run-code", "print(1)\n");
      await page.fill("#run-timeout", "0");
      await page.click("#run-submit");
      await page.waitForFunction(() => document.querySelector("#run-form-error").textContent.includes("at least 1"));

      // A valid submission clears the error.
      await page.fill("#run-timeout", "30");
      await page.click("#run-submit");
      await waitForRunStatus(page, "succeeded");
      assert.equal(await page.isHidden("#run-form-error"), true);
      assertNoConsoleErrors(assert, page);
    },
  },
  {
    name: "rate limited submit is retried",
    async run(context, assert) {
      // The first POST /runs gets a 429 response in the API's shape; the retry goes through.
      let rejected = 0;
      await context.route(/\/runs$/, (route) => {
        if (route.request().method() !== "POST" || rejected > 0) {
          return route.continue();
        }
        rejected += 1;
        return route.fulfill({
          status: 429,
          headers: { "Retry-After": "1" },
          contentType: "application/json",
          body: JSON.stringify({ error: { code: "rate_limited", message: "too many requests", field: null } }),
        });
      });
      const page = await openUi(context, { allowed: [/status of 429/] });
      await setCode(page, 'print("after the limit")\n');
      const started = Date.now();
      await page.click("#run-submit");
      await waitForRunStatus(page, "succeeded");
      assert.equal(rejected, 1);
      assert.ok(Date.now() - started >= 1000, "the retry waited for Retry-After");
      assert.equal(await page.isHidden("#run-form-error"), true, "no error once the retry succeeded");
      await page.waitForFunction(() => document.querySelector("#run-output").textContent === "after the limit\n");
      assertNoConsoleErrors(assert, page);
    },
  },
  {
    name: "full queue shows its error",
    async run(context, assert) {
      await context.route(/\/runs$/, (route) => {
        if (route.request().method() !== "POST") {
          return route.continue();
        }
        return route.fulfill({
          status: 429,
          headers: { "Retry-After": "5" },
          contentType: "application/json",
          body: JSON.stringify({ error: { code: "queue_full", message: "the queue is full (10000 runs)", field: null } }),
        });
      });
      const page = await openUi(context, { allowed: [/status of 429/] });
      await page.click("#run-submit");
      await page.waitForSelector("#run-form-error:not([hidden])");
      assert.equal(await page.textContent("#run-form-error"), "the queue is full (10000 runs). Retry after 5 s.");
      assertNoConsoleErrors(assert, page);
    },
  },
  {
    name: "cancel stops a running run",
    async run(context, assert) {
      const page = await openUi(context);
      await setCode(page, 'import time\nprint("started", flush=True)\ntime.sleep(60)\nprint("never printed")\n');
      await page.click("#run-submit");
      await waitForRunStatus(page, "running");
      await page.waitForFunction(() => document.querySelector("#run-output").textContent.includes("started"));

      await page.click("#run-cancel");
      const id = await waitForRunStatus(page, "cancelled", 10000);
      assert.equal(await page.isVisible("#run-cancel"), false);

      const response = await page.request.get(`${BASE_URL}/runs/${id}`);
      const run = await response.json();
      assert.equal(run.status, "cancelled", "the server agrees the run is cancelled");
      await page.waitForFunction(() => document.querySelector("#run-output-state").textContent !== "loading…");
      assert.doesNotMatch(await page.textContent("#run-output"), /never printed/);
      assertNoConsoleErrors(assert, page);
    },
  },
  {
    name: "run panel survives dropped streams",
    async run(context, assert) {
      // Fail the first event stream and the first log follow; the later attempts go through.
      const dropped = { events: 0, logs: 0 };
      await context.route(/\/runs\/[^/]+\/(events|logs\?follow=true)$/, (route) => {
        const kind = route.request().url().includes("/events") ? "events" : "logs";
        if (dropped[kind] === 0) {
          dropped[kind] += 1;
          return route.abort("connectionreset");
        }
        return route.continue();
      });
      const page = await openUi(context, { allowed: [/net::ERR_CONNECTION_RESET/] });
      await setCode(page, 'import time\nprint("before", flush=True)\ntime.sleep(2)\nprint("after", flush=True)\n');
      await page.click("#run-submit");

      await page.waitForFunction(() => document.querySelector("#run-error").textContent.includes("Reconnecting"));
      await waitForRunStatus(page, "succeeded");
      await page.waitForFunction(() => document.querySelector("#run-output-state").textContent === "complete");
      assert.equal(await page.textContent("#run-output"), "before\nafter\n");
      assert.equal(await page.isHidden("#run-error"), true, "the reconnect notice goes away");
      assert.deepEqual(dropped, { events: 1, logs: 1 });
      assertNoConsoleErrors(assert, page);
    },
  },
  {
    name: "language switch keeps user code",
    async run(context, assert) {
      const page = await openUi(context);
      assert.match(await page.inputValue("#run-code"), /^import sys/, "a new page starts with the Python example");

      await page.selectOption("#run-language", "javascript");
      assert.match(await page.inputValue("#run-code"), /readFileSync/, "the example follows the language");

      await page.fill("#run-code", "console.log('mine');\n");
      await page.selectOption("#run-language", "python");
      assert.equal(await page.inputValue("#run-code"), "console.log('mine');\n", "own code is never replaced");

      // The draft survives a reload of the page.
      await page.fill("#run-stdin", "some input");
      await page.reload();
      await page.waitForSelector("#queue-depth:not(:text('–'))");
      assert.equal(await page.inputValue("#run-code"), "console.log('mine');\n");
      assert.equal(await page.inputValue("#run-language"), "python");
      assert.equal(await page.inputValue("#run-stdin"), "some input");
      assertNoConsoleErrors(assert, page);
    },
  },
  {
    name: "editor keys indent outdent and run",
    async run(context, assert) {
      const page = await openUi(context);
      await setCode(page, "");
      const editor = page.locator("#run-code");
      await editor.focus();

      await page.keyboard.type("for i in range(2):");
      await page.keyboard.press("Enter");
      await page.keyboard.type("print(i)");
      assert.equal(await editor.inputValue(), "for i in range(2):\n    print(i)", "Enter indents after a colon");

      await page.keyboard.press("Shift+Tab");
      assert.equal(await editor.inputValue(), "for i in range(2):\nprint(i)", "Shift+Tab outdents");
      await page.keyboard.press("Tab");
      assert.equal(await editor.inputValue(), "for i in range(2):\nprint(i)    ", "Tab inserts 4 spaces at the cursor");
      await page.keyboard.press("Backspace");
      await page.keyboard.press("Backspace");
      await page.keyboard.press("Backspace");
      await page.keyboard.press("Backspace");

      // With both lines selected, Tab indents each line and Shift+Tab undoes it.
      await page.keyboard.press("Control+A");
      await page.keyboard.press("Tab");
      assert.equal(await editor.inputValue(), "    for i in range(2):\n    print(i)");
      await page.keyboard.press("Shift+Tab");
      assert.equal(await editor.inputValue(), "for i in range(2):\nprint(i)");
      await page.keyboard.press("End");
      await page.keyboard.press("Home");
      await page.keyboard.press("Tab");
      assert.equal(await editor.inputValue(), "for i in range(2):\n    print(i)");

      // Escape, then Tab, moves the focus out of the editor.
      await page.keyboard.press("Escape");
      await page.keyboard.press("Tab");
      assert.equal(await page.evaluate(() => document.activeElement.id), "run-stdin");
      assert.equal(await editor.inputValue(), "for i in range(2):\n    print(i)", "no Tab inserted when leaving");

      await editor.focus();
      await page.keyboard.press("Control+Enter");
      await waitForRunStatus(page, "succeeded");
      await page.waitForFunction(() => document.querySelector("#run-output").textContent === "0\n1\n");
      assertNoConsoleErrors(assert, page);
    },
  },
];
