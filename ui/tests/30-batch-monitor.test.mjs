// The autoscaling smoke test and the live monitor in dev mode.

import { assertNoConsoleErrors, openUi, screenshot } from "./harness.mjs";

export const tests = [
  {
    name: "batch of 5 finishes and queue drains",
    async run(context, assert) {
      const page = await openUi(context);
      // Record the largest queue depth and active count the monitor shows.
      await page.evaluate(() => {
        window.maxQueueDepth = 0;
        window.maxActiveRuns = 0;
        new MutationObserver(() => {
          const depth = Number(document.querySelector("#queue-depth").textContent);
          const active = Number(document.querySelector("#runners-active").textContent);
          window.maxQueueDepth = Math.max(window.maxQueueDepth, Number.isNaN(depth) ? 0 : depth);
          window.maxActiveRuns = Math.max(window.maxActiveRuns, Number.isNaN(active) ? 0 : active);
        }).observe(document.querySelector("#monitor-section"), { childList: true, characterData: true, subtree: true });
      });

      await page.click("#batch-section summary");
      await page.fill("#batch-count", "5");
      await page.fill("#batch-sleep", "3");
      await page.click("#batch-submit");

      await page.waitForFunction(() => document.querySelectorAll("#batch-runs [data-run-id]").length === 5);
      await page.waitForFunction(() => document.querySelector("#batch-summary").textContent.includes("All finished"), null, {
        timeout: 60000,
      });
      const statuses = await page.$$eval("#batch-runs [data-status]", (chips) => chips.map((chip) => chip.dataset.status));
      assert.deepEqual(statuses, ["succeeded", "succeeded", "succeeded", "succeeded", "succeeded"]);
      assert.match(await page.textContent("#batch-summary"), /Batch of 5: 5 submitted \(5 succeeded\)/);

      await page.waitForFunction(() => document.querySelector("#queue-depth").textContent === "0", null, { timeout: 10000 });
      await page.waitForFunction(() => document.querySelector("#runners-active").textContent === "0", null, { timeout: 10000 });
      const maxActive = await page.evaluate(() => window.maxActiveRuns);
      assert.ok(maxActive > 0, "the monitor showed active runs during the batch");
      // test-ui.sh starts the worker with WORKER_CONCURRENCY=2, so 5 runs of 3 s
      // keep runs queued for about 6 s, longer than the 2 s poll interval.
      const maxDepth = await page.evaluate(() => window.maxQueueDepth);
      assert.ok(maxDepth > 0, "the monitor showed queued runs during the batch");
      const lines = await page.$$eval("#monitor-chart path.chart-line", (paths) => paths.length);
      assert.equal(lines, 3, "the chart draws three series");

      // A batch chip opens its run in the run panel.
      const firstId = await page.getAttribute("#batch-runs [data-run-id]", "data-run-id");
      await page.click(`#batch-runs [data-run-id="${firstId}"]`);
      await page.waitForFunction((id) => document.querySelector("#run-id").textContent === id, firstId);
      await page.waitForFunction(() => document.querySelector("#run-output").textContent.includes("batch run 1 of 5: done"));
      await screenshot(page, "batch");
      assertNoConsoleErrors(assert, page);
    },
  },
  {
    name: "batch inputs are checked",
    async run(context, assert) {
      const page = await openUi(context);
      await page.click("#batch-section summary");
      await page.fill("#batch-count", "0");
      await page.click("#batch-submit");
      await page.waitForSelector("#batch-error:not([hidden])");
      assert.match(await page.textContent("#batch-error"), /Batch count must be a whole number from 1 to 100/);
      assert.equal(await page.getAttribute("#batch-count", "aria-invalid"), "true");

      await page.fill("#batch-count", "2");
      await page.fill("#batch-sleep", "-1");
      await page.click("#batch-submit");
      await page.waitForFunction(() => document.querySelector("#batch-error").textContent.includes("Sleep seconds"));
      assert.equal(await page.getAttribute("#batch-sleep", "aria-invalid"), "true");
      assert.equal(await page.getAttribute("#batch-count", "aria-invalid"), null);
      assertNoConsoleErrors(assert, page);
    },
  },
  {
    name: "monitor shows dev mode without cluster",
    async run(context, assert) {
      const page = await openUi(context);
      await page.waitForSelector("#monitor-banners .banner-info");
      assert.match(await page.textContent("#monitor-banners"), /No cluster configured\./);
      assert.equal(await page.$("#monitor-banners .banner-error"), null, "no error banner while Redis is up");
      assert.equal(await page.textContent("#workers-desired"), "–");
      assert.match(await page.textContent("#worker-pods"), /no cluster data/);
      assert.match(await page.textContent("#node-bars"), /No cluster data/);
      const heartbeats = await page.$$eval("#worker-heartbeats .chip", (chips) => chips.length);
      assert.ok(heartbeats >= 1, "the dev worker has a heartbeat");

      // The page polls again every 2 s.
      const before = await page.textContent("#monitor-updated");
      await page.waitForFunction((text) => document.querySelector("#monitor-updated").textContent !== text, before, {
        timeout: 5000,
      });
      assertNoConsoleErrors(assert, page);
    },
  },
];
