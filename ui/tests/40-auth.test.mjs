// Bearer tokens: against a server started with API_TOKENS, the UI prompts for a
// token on a 401, keeps it in sessionStorage and sends it on every request,
// the streams included.

import { SkipTest, waitForRunStatus } from "./harness.mjs";

const AUTH_BASE_URL = process.env.UI_AUTH_BASE_URL;
const AUTH_TOKEN = process.env.UI_AUTH_TOKEN;
const EXPECTED_401 = /Failed to load resource: the server responded with a status of 401/;

function requireAuthServer() {
  if (!AUTH_BASE_URL || !AUTH_TOKEN) {
    throw new SkipTest("set UI_AUTH_BASE_URL and UI_AUTH_TOKEN to a server started with API_TOKENS");
  }
}

async function openAuthUi(context) {
  const page = await context.newPage();
  page.consoleErrors = [];
  page.on("console", (message) => {
    if (message.type() === "error" && !EXPECTED_401.test(message.text())) {
      page.consoleErrors.push(message.text());
    }
  });
  page.on("pageerror", (error) => page.consoleErrors.push(`uncaught: ${error.message}`));
  await page.goto(`${AUTH_BASE_URL}/`);
  return page;
}

export const tests = [
  {
    name: "token prompt on 401 and retry",
    async run(context, assert) {
      requireAuthServer();
      const page = await openAuthUi(context);

      await page.waitForSelector("#token-dialog[open]");
      assert.equal(await page.evaluate(() => document.activeElement.id), "token-input", "the token field has the focus");
      await page.fill("#token-input", "a-wrong-token-of-enough-length");
      await page.click("#token-form button[type=submit]");
      // The server rejects it, so the dialog opens again and shows why.
      await page.waitForFunction(() => {
        const error = document.querySelector("#token-error");
        return document.querySelector("#token-dialog").open && !error.hidden && error.textContent.includes("rejected");
      });

      await page.fill("#token-input", AUTH_TOKEN);
      await page.click("#token-form button[type=submit]");
      await page.waitForFunction(() => !document.querySelector("#token-dialog").open);
      await page.waitForFunction(() => document.querySelector("#queue-depth").textContent !== "–");
      assert.equal(await page.evaluate(() => sessionStorage.getItem("code-runner.token")), AUTH_TOKEN);
      assert.equal(await page.isVisible("#token-forget"), true);
      assert.equal(await page.$("#monitor-banners .banner-error"), null, "no error banner once signed in");

      // The event and log streams carry the token too.
      await page.fill("#run-code", 'print("with a token")\n');
      await page.click("#run-submit");
      await waitForRunStatus(page, "succeeded");
      await page.waitForFunction(() => document.querySelector("#run-output").textContent === "with a token\n");

      // A reload in the same tab keeps the token.
      await page.reload();
      await page.waitForFunction(() => document.querySelector("#queue-depth").textContent !== "–");
      assert.equal(await page.evaluate(() => document.querySelector("#token-dialog").open), false);
      assert.deepEqual(page.consoleErrors, []);
    },
  },
  {
    name: "declined token prompt stays closed",
    async run(context, assert) {
      requireAuthServer();
      const page = await openAuthUi(context);
      await page.waitForSelector("#token-dialog[open]");
      await page.click("#token-cancel");
      await page.waitForFunction(() => !document.querySelector("#token-dialog").open);
      await page.waitForFunction(() => document.querySelector("#monitor-banners").textContent.includes("API token required"));

      // Later polls fail quietly instead of opening the dialog again.
      await page.waitForTimeout(2500);
      assert.equal(await page.evaluate(() => document.querySelector("#token-dialog").open), false);
      assert.equal(await page.isVisible("#token-enter"), true);

      await page.click("#token-enter");
      await page.waitForSelector("#token-dialog[open]");
      await page.fill("#token-input", AUTH_TOKEN);
      await page.keyboard.press("Enter");
      await page.waitForFunction(() => !document.querySelector("#monitor-banners").textContent.includes("API token required"));
      assert.equal(await page.isVisible("#token-enter"), false);
      assert.deepEqual(page.consoleErrors, []);
    },
  },
];
