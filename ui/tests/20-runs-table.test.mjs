// The recent runs table: opening rows, the status filter and cursor pages.

import { assertNoConsoleErrors, BASE_URL, openUi, waitForRunStatus } from "./harness.mjs";

const PAGE_SIZE = 20;

/** Creates a run through the API and waits until it has finished. */
async function createFinishedRun(code) {
  const response = await fetch(`${BASE_URL}/runs`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ language: "python", code }),
  });
  if (response.status !== 201) {
    throw new Error(`POST /runs returned ${response.status}: ${await response.text()}`);
  }
  const run = await response.json();
  for (let attempt = 0; attempt < 100; attempt++) {
    const current = await (await fetch(`${BASE_URL}/runs/${run.id}`)).json();
    if (!["queued", "dispatched", "pending", "running"].includes(current.status)) {
      return current;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`run ${run.id} did not finish within 10 s`);
}

function rowIds(page) {
  return page.$$eval("#runs-body tr[data-run-id]", (rows) => rows.map((row) => row.dataset.runId));
}

export const tests = [
  {
    name: "runs table opens a run on click and Enter",
    async run(context, assert) {
      const failed = await createFinishedRun("raise SystemExit(4)\n");
      const succeeded = await createFinishedRun('print("table row")\n');
      const page = await openUi(context);
      await page.waitForSelector(`#runs-body tr[data-run-id="${succeeded.id}"]`);

      await page.click(`#runs-body tr[data-run-id="${failed.id}"]`);
      await waitForRunStatus(page, "failed");
      assert.equal(await page.textContent("#run-id"), failed.id);
      assert.equal(await page.getAttribute(`#runs-body tr[data-run-id="${failed.id}"]`, "aria-current"), "true");

      await page.focus(`#runs-body tr[data-run-id="${succeeded.id}"]`);
      await page.keyboard.press("Enter");
      await waitForRunStatus(page, "succeeded");
      assert.equal(await page.textContent("#run-id"), succeeded.id);
      await page.waitForFunction(() => document.querySelector("#run-output").textContent === "table row\n");
      assertNoConsoleErrors(assert, page);
    },
  },
  {
    name: "runs table filters by status",
    async run(context, assert) {
      const failed = await createFinishedRun("raise SystemExit(5)\n");
      await createFinishedRun("print(1)\n");
      const page = await openUi(context);

      await page.selectOption("#runs-status", "failed");
      await page.waitForFunction(() =>
        [...document.querySelectorAll("#runs-body .status")].every((badge) => badge.textContent === "failed"),
      );
      await page.waitForSelector(`#runs-body tr[data-run-id="${failed.id}"]`);
      const statuses = await page.$$eval("#runs-body .status", (badges) => badges.map((badge) => badge.textContent));
      assert.ok(statuses.length > 0, "at least one failed run is listed");
      assert.deepEqual([...new Set(statuses)], ["failed"], "only failed runs under the failed filter");

      await page.selectOption("#runs-status", "cancelled");
      await page.waitForFunction(
        () => [...document.querySelectorAll("#runs-body .status")].every((badge) => badge.textContent === "cancelled"),
      );
      assertNoConsoleErrors(assert, page);
    },
  },
  {
    name: "runs table pages with the cursor",
    async run(context, assert) {
      // Enough runs for more than one page, whatever earlier tests left behind.
      for (let index = 0; index < PAGE_SIZE + 2; index++) {
        await createFinishedRun(`print(${index})\n`);
      }
      const page = await openUi(context);
      await page.waitForFunction(
        (size) => document.querySelectorAll("#runs-body tr").length === size,
        PAGE_SIZE,
      );
      const firstPage = await rowIds(page);
      assert.equal(await page.isDisabled("#runs-prev"), true, "no newer page on the first page");
      assert.equal(await page.isEnabled("#runs-next"), true, "an older page exists");

      await page.click("#runs-next");
      await page.waitForFunction(() => document.querySelector("#runs-page").textContent === "Page 2");
      const secondPage = await rowIds(page);
      assert.ok(secondPage.length > 0, "the second page has runs");
      assert.deepEqual(secondPage.filter((id) => firstPage.includes(id)), [], "pages do not overlap");
      // Run ids sort by creation time, and the list is newest first.
      assert.ok(secondPage[0] < firstPage[firstPage.length - 1], "the second page holds older runs");

      await page.click("#runs-prev");
      await page.waitForFunction(() => document.querySelector("#runs-page").textContent === "Page 1");
      assert.equal(await page.isDisabled("#runs-prev"), true);
      assertNoConsoleErrors(assert, page);
    },
  },
];
