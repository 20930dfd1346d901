// Runs the UI tests in tests/*.test.mjs one after another in one Chromium,
// each in a fresh browser context, and prints "N passed, N failed".
//
// Each test file exports `tests`, an array of { name, run(context, assert) }.
// A test that needs something this run lacks throws SkipTest from harness.mjs.
// Usage: node tests/run-tests.mjs [substring of test names to run]

import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { BASE_URL, launchBrowser, SkipTest } from "./harness.mjs";

// Time one test may take, above the slowest waits inside the tests.
const TEST_TIMEOUT_MS = 120000;

async function loadTests(directory) {
  const files = readdirSync(directory)
    .filter((file) => file.endsWith(".test.mjs"))
    .sort();
  const tests = [];
  for (const file of files) {
    const module = await import(pathToFileURL(join(directory, file)).href);
    for (const test of module.tests) {
      tests.push({ ...test, file });
    }
  }
  return tests;
}

function withTimeout(promise, milliseconds, name) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${name} timed out after ${milliseconds} ms`)), milliseconds);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function main() {
  const filter = process.argv[2] || "";
  const directory = dirname(fileURLToPath(import.meta.url));
  const tests = (await loadTests(directory)).filter((test) => test.name.includes(filter));
  console.log(`running ${tests.length} UI tests against ${BASE_URL}`);

  const browser = await launchBrowser();
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  try {
    for (const test of tests) {
      const started = Date.now();
      const context = await browser.newContext();
      try {
        await withTimeout(test.run(context, assert), TEST_TIMEOUT_MS, test.name);
        passed += 1;
        console.log(`ok   ${test.name} (${Date.now() - started} ms)`);
      } catch (error) {
        if (error instanceof SkipTest) {
          skipped += 1;
          console.log(`skip ${test.name}: ${error.message}`);
          continue;
        }
        failed += 1;
        console.log(`FAIL ${test.name} (${test.file}, ${Date.now() - started} ms)`);
        console.log(`     ${String(error.stack || error).split("\n").join("\n     ")}`);
      } finally {
        await context.close().catch(() => {});
      }
    }
  } finally {
    await browser.close();
  }
  if (failed > 0 && process.env.UI_SERVER_LOGS) {
    console.log(`server logs: ${process.env.UI_SERVER_LOGS}`);
  }
  if (skipped > 0) {
    console.log(`${skipped} skipped`);
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed > 0 || tests.length === 0 ? 1 : 0;
}

main().catch((error) => {
  console.error(error);
  console.log("0 passed, 1 failed");
  process.exitCode = 1;
});
