// Layout and accessibility: screenshots at laptop and phone widths, no
// sideways scrolling, a label for every control, keyboard access.

import { assertNoConsoleErrors, openUi, screenshot, setCode, VIEWPORTS, waitForRunStatus } from "./harness.mjs";

async function assertNoHorizontalScroll(assert, page, label) {
  const { scrollWidth, innerWidth } = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
  }));
  assert.ok(scrollWidth <= innerWidth, `${label}: page is ${scrollWidth} px wide in a ${innerWidth} px window`);
}

export const tests = [
  {
    name: "layout at laptop and phone widths",
    async run(context, assert) {
      for (const [label, viewport] of Object.entries(VIEWPORTS)) {
        const page = await openUi(context, { viewport });
        await setCode(page, 'for i in range(3):\n    print("line", i)\n');
        await page.click("#run-submit");
        await waitForRunStatus(page, "succeeded");
        await page.waitForFunction(() => document.querySelector("#run-output-state").textContent === "complete");
        await page.click("#batch-section summary");
        // Two polls give the chart at least two of the page's own samples.
        await page.waitForTimeout(2500);
        await assertNoHorizontalScroll(assert, page, label);
        await screenshot(page, label);

        await page.setViewportSize({ width: viewport.width, height: viewport.height });
        await page.screenshot({ path: `${process.env.UI_ARTIFACTS_DIR || "tests/artifacts/ui"}/${label}-viewport.png` });
        assertNoConsoleErrors(assert, page);
        await page.close();
      }
    },
  },
  {
    name: "every control has a label",
    async run(context, assert) {
      const page = await openUi(context);
      const unlabelled = await page.evaluate(() =>
        [...document.querySelectorAll("input, select, textarea")]
          .filter((control) => control.labels.length === 0 && !control.getAttribute("aria-label"))
          .map((control) => control.id || control.outerHTML),
      );
      assert.deepEqual(unlabelled, []);
      const unnamedButtons = await page.evaluate(() =>
        [...document.querySelectorAll("button")]
          .filter((button) => !button.hidden && button.textContent.trim() === "" && !button.getAttribute("aria-label"))
          .map((button) => button.outerHTML),
      );
      assert.deepEqual(unnamedButtons, []);
      assertNoConsoleErrors(assert, page);
    },
  },
  {
    name: "keyboard reaches form and run rows",
    async run(context, assert) {
      const page = await openUi(context);

      // The skip link comes first and leads to the main content.
      await page.keyboard.press("Tab");
      assert.equal(await page.evaluate(() => document.activeElement.className), "skip-link");
      const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
      assert.notEqual(outline, "none", "focused elements show an outline");

      await setCode(page, 'print("keyboard")\n');
      await page.click("#run-submit");
      const id = await waitForRunStatus(page, "succeeded");
      await page.waitForSelector(`#runs-body tr[data-run-id="${id}"]`);

      // Tab from the status filter reaches the table rows without a mouse.
      await page.focus("#runs-refresh");
      await page.keyboard.press("Tab");
      const focused = await page.evaluate(() => document.activeElement.dataset.runId);
      assert.ok(focused, "Tab after Refresh lands on a run row");
      await page.keyboard.press("Enter");
      await page.waitForFunction((expected) => document.querySelector("#run-id").textContent === expected, focused);
      assertNoConsoleErrors(assert, page);
    },
  },
];
