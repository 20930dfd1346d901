// Automated accessibility checks with axe-core on the page in its main states.

import { createRequire } from "node:module";

import { assertNoConsoleErrors, openUi, setCode, VIEWPORTS, waitForRunStatus } from "./harness.mjs";

const require = createRequire(import.meta.url);
const AXE_PATH = require.resolve("axe-core/axe.min.js");

// Runs axe on the whole page and returns "rule: target" lines for each violation.
async function axeViolations(page) {
  await page.addScriptTag({ path: AXE_PATH });
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return result.violations.map((violation) => ({
      id: violation.id,
      impact: violation.impact,
      targets: violation.nodes.map((node) => node.target.join(" ")).slice(0, 5),
    }));
  });
  return violations.map((violation) => `${violation.id} (${violation.impact}): ${violation.targets.join(", ")}`);
}

export const tests = [
  {
    name: "axe finds no violations",
    async run(context, assert) {
      for (const [label, viewport] of Object.entries(VIEWPORTS)) {
        const page = await openUi(context, { viewport });
        await setCode(page, 'import sys\nprint("axe")\nsys.exit(1)\n');
        await page.click("#run-submit");
        await waitForRunStatus(page, "failed");
        await page.click("#batch-section summary");
        await page.waitForTimeout(500);
        assert.deepEqual(await axeViolations(page), [], `${label} width`);
        assertNoConsoleErrors(assert, page);
        await page.close();
      }
    },
  },
  {
    name: "axe passes in dark mode",
    async run(context, assert) {
      const page = await openUi(context);
      await page.emulateMedia({ colorScheme: "dark" });
      await setCode(page, 'print("dark")\n');
      await page.click("#run-submit");
      await waitForRunStatus(page, "succeeded");
      assert.deepEqual(await axeViolations(page), []);
      assertNoConsoleErrors(assert, page);
    },
  },
];
