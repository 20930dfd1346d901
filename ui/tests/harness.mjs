// Shared browser set-up for the UI tests: Debian's Chromium through
// playwright-core, a console watcher per page, and screenshots.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const BASE_URL = process.env.UI_BASE_URL || "http://127.0.0.1:8080";
export const ARTIFACTS_DIR = process.env.UI_ARTIFACTS_DIR || "tests/artifacts/ui";
const CHROMIUM_PATH = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

/** Thrown by a test that cannot run here, such as one that needs a second server. */
export class SkipTest extends Error {}

export const VIEWPORTS = {
  laptop: { width: 1366, height: 768 },
  phone: { width: 390, height: 844 },
};

// Without the networking flags Chromium keeps trying hosts that a closed
// network refuses; --no-sandbox is needed because the tests run as root.
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * Starts Chromium. playwright-core gives it a new temporary --user-data-dir
 * and removes it on close, and each test gets its own browser context.
 */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

/**
 * Opens the UI in a new page and records console errors and uncaught
 * exceptions in page.consoleErrors. Messages matching one of `allowed`
 * (regular expressions) are expected by the test and not recorded.
 */
export async function openUi(context, { viewport = VIEWPORTS.laptop, allowed = [] } = {}) {
  const page = await context.newPage();
  await page.setViewportSize(viewport);
  page.consoleErrors = [];
  page.on("console", (message) => {
    if (message.type() !== "error") {
      return;
    }
    const text = message.text();
    if (!allowed.some((pattern) => pattern.test(text))) {
      page.consoleErrors.push(text);
    }
  });
  page.on("pageerror", (error) => {
    page.consoleErrors.push(`uncaught: ${error.message}`);
  });
  await page.goto(`${BASE_URL}/`);
  await page.waitForSelector("#queue-depth:not(:text('–'))", { timeout: 10000 });
  return page;
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const path = join(ARTIFACTS_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Replaces the editor's code; fill() sets the value without going through the editing keys. */
export async function setCode(page, code, language = "python") {
  await page.selectOption("#run-language", language);
  await page.fill("#run-code", code);
}

/** Waits until the run panel shows `status`, and returns the panel's run id. */
export async function waitForRunStatus(page, status, timeout = 30000) {
  await page.waitForFunction(
    (expected) => document.querySelector("#run-status")?.textContent === expected,
    status,
    { timeout },
  );
  return page.textContent("#run-id");
}

/** Returns the text of one detail in the run panel, by its data-field key. */
export async function runDetail(page, key) {
  return page.textContent(`#run-details [data-field="${key}"] dd`);
}

/** Asserts the page logged no console errors; call at the end of each test. */
export function assertNoConsoleErrors(assert, page) {
  assert.deepEqual(page.consoleErrors, [], "console errors on the page");
}
