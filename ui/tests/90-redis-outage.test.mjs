// The monitor and the run form while Redis is down. This file runs last
// because it stops the test Redis server and starts it again.

import { execFileSync } from "node:child_process";
import { join } from "node:path";

import { openUi, screenshot, SkipTest } from "./harness.mjs";

const REDIS_PORT = process.env.UI_REDIS_PORT;
const REDIS_DIR = process.env.UI_REDIS_DIR;
// Chromium logs the 503 of a submission while Redis is down.
const EXPECTED_503 = /Failed to load resource: the server responded with a status of 503/;

/** Starts the test Redis server the way scripts/test-ui.sh does. */
function startRedis() {
  execFileSync("redis-server", [
    "--port", REDIS_PORT,
    "--bind", "127.0.0.1",
    "--save", "",
    "--appendonly", "no",
    "--daemonize", "yes",
    "--dir", REDIS_DIR,
    "--pidfile", join(REDIS_DIR, "redis.pid"),
    "--logfile", join(REDIS_DIR, "redis.log"),
  ]);
}

function stopRedis() {
  execFileSync("redis-cli", ["-p", REDIS_PORT, "shutdown", "nosave"]);
}

export const tests = [
  {
    name: "monitor shows Redis unreachable",
    async run(context, assert) {
      if (!REDIS_PORT || !REDIS_DIR) {
        throw new SkipTest("set UI_REDIS_PORT and UI_REDIS_DIR to a Redis server this test may stop");
      }
      const page = await openUi(context, { allowed: [EXPECTED_503] });
      stopRedis();
      try {
        await page.waitForSelector("#monitor-banners .banner-error", { timeout: 10000 });
        assert.match(await page.textContent("#monitor-banners"), /Redis unreachable\./);
        assert.equal(await page.textContent("#queue-depth"), "?", "no stale queue depth");
        assert.match(await page.textContent("#worker-heartbeats"), /Unknown while Redis is unreachable/);

        // A submission fails with the API's message next to the form.
        await page.fill("#run-code", "print(1)\n");
        await page.click("#run-submit");
        await page.waitForSelector("#run-form-error:not([hidden])");
        assert.match(await page.textContent("#run-form-error"), /\S/);
        await screenshot(page, "redis-unreachable");
      } finally {
        startRedis();
      }
      await page.waitForSelector("#monitor-banners .banner-error", { state: "detached", timeout: 15000 });
      assert.match(await page.textContent("#queue-depth"), /^\d+$/);
      assert.deepEqual(page.consoleErrors, []);
    },
  },
];
