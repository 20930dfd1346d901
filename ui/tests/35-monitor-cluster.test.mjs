// The monitor with cluster data. `code-runner dev` has no cluster, so these
// tests replace the GET /system/status response with a fixed one in the shape
// that the API returns with Kubernetes configured.

import { assertNoConsoleErrors, openUi, screenshot, VIEWPORTS } from "./harness.mjs";

function clusterStatus(now) {
  const at = (secondsAgo) => new Date(now - secondsAgo * 1000).toISOString();
  return {
    queue: { depth: 3, queued_run_ids: ["01jf3m6x2q8v9w0a1b2c3d4e5f", "01jf3m6x2q8v9w0a1b2c3d4e5g", "01jf3m6x2q8v9w0a1b2c3d4e5h"] },
    workers: {
      desired: 3,
      ready: 2,
      pods: [
        { name: "code-runner-worker-7d9c-abcde", node: "worker1", phase: "Running" },
        { name: "code-runner-worker-7d9c-fghij", node: "worker2", phase: "Running" },
        { name: "code-runner-worker-7d9c-klmno", node: null, phase: "Pending" },
      ],
      heartbeats: ["code-runner-worker-7d9c-abcde", "code-runner-worker-7d9c-fghij"],
    },
    runners: {
      active: 5,
      pods: [
        { run_id: "01jf3m6x2q8v9w0a1b2c3d4e51", pod: "run-01jf3m6x2q8v9w0a1b2c3d4e51-x1", node: "worker1", phase: "Running" },
        { run_id: "01jf3m6x2q8v9w0a1b2c3d4e52", pod: "run-01jf3m6x2q8v9w0a1b2c3d4e52-x2", node: "worker1", phase: "Running" },
        { run_id: "01jf3m6x2q8v9w0a1b2c3d4e53", pod: "run-01jf3m6x2q8v9w0a1b2c3d4e53-x3", node: "worker1", phase: "Succeeded" },
        { run_id: "01jf3m6x2q8v9w0a1b2c3d4e54", pod: "run-01jf3m6x2q8v9w0a1b2c3d4e54-x4", node: "worker2", phase: "Running" },
        { run_id: null, pod: "run-orphan-x5", node: null, phase: "Pending" },
      ],
    },
    nodes: { worker1: 3, worker2: 1 },
    history: [
      { at: at(300), queue_depth: 0, worker_replicas: 0, active_runs: 0 },
      { at: at(240), queue_depth: 12, worker_replicas: 1, active_runs: 1 },
      { at: at(180), queue_depth: 9, worker_replicas: 2, active_runs: 4 },
      { at: at(120), queue_depth: 6, worker_replicas: 3, active_runs: 6 },
      { at: at(60), queue_depth: 4, worker_replicas: 3, active_runs: 5 },
    ],
    redis: { ok: true, message: null },
    kubernetes: { ok: true, message: null },
  };
}

async function serveStatus(context, body) {
  await context.route("**/system/status", (route) =>
    route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(body) }),
  );
}

export const tests = [
  {
    name: "monitor renders cluster workers and nodes",
    async run(context, assert) {
      await serveStatus(context, clusterStatus(Date.now()));
      for (const [label, viewport] of Object.entries(VIEWPORTS)) {
        const page = await openUi(context, { viewport });
        await page.waitForFunction(() => document.querySelector("#queue-depth").textContent === "3");

        assert.equal(await page.textContent("#workers-ready"), "2");
        assert.equal(await page.textContent("#workers-desired"), "3");
        assert.equal(await page.$$eval("#worker-pods .pod", (pods) => pods.length), 3);
        assert.match(await page.textContent("#worker-pods .pod:nth-child(3)"), /code-runner-worker-7d9c-klmno\s*Pending\s*not scheduled/);
        assert.equal(await page.$$eval("#worker-heartbeats .chip", (chips) => chips.length), 2);
        assert.equal(await page.$$eval("#queued-ids button[data-run-id]", (buttons) => buttons.length), 3);

        assert.equal(await page.textContent("#runners-active"), "5");
        assert.equal(await page.$$eval("#runner-pods .pod", (pods) => pods.length), 5);
        assert.match(await page.textContent("#runner-pods .pod:nth-child(1)"), /Running\s*on worker1/);
        assert.match(await page.textContent("#runner-pods .pod:nth-child(5)"), /Succeeded\s*on worker1/);
        assert.equal(await page.$$eval("#runner-pods button[data-run-id]", (buttons) => buttons.length), 4);
        const nodes = await page.$$eval("#node-bars .node-bar", (bars) =>
          bars.map((bar) => [bar.dataset.node, bar.querySelector(".node-count").textContent, bar.querySelector(".node-active").textContent]),
        );
        // worker1 runs two Pods and keeps one Succeeded Pod.
        assert.deepEqual(nodes, [["worker1", "3", "(2 active)"], ["worker2", "1", "(1 active)"]]);
        const runnerPhases = await page.$$eval("#runner-pods .phase", (badges) => badges.map((badge) => badge.textContent));
        assert.deepEqual(runnerPhases, ["Running", "Running", "Running", "Pending", "Succeeded"], "active Pods first");
        assert.equal(await page.$("#monitor-banners .banner"), null, "no banner when Redis and Kubernetes are fine");

        // The history reaches back 5 minutes, so the time axis shows at least that much.
        assert.match(await page.textContent("#monitor-chart-caption"), /last (5|6) minutes/);
        assert.equal(await page.textContent('#monitor-chart [data-series="queue_depth"]'), "3");
        assert.equal(await page.textContent('#monitor-chart [data-series="worker_replicas"]'), "2");
        assert.match(await page.getAttribute("#monitor-chart svg", "aria-label"), /Queue depth 3, Worker replicas 2, Active runs 5/);

        await page.locator("#monitor-section").screenshot({ path: `${process.env.UI_ARTIFACTS_DIR || "tests/artifacts/ui"}/monitor-cluster-${label}.png` });
        assertNoConsoleErrors(assert, page);
        await page.close();
      }
    },
  },
  {
    name: "monitor shows Kubernetes unreachable",
    async run(context, assert) {
      const status = clusterStatus(Date.now());
      status.workers = { desired: null, ready: null, pods: [], heartbeats: ["worker-a"] };
      status.runners.pods = [];
      status.nodes = {};
      status.kubernetes = { ok: false, message: "listing Pods failed: connection refused" };
      await serveStatus(context, status);

      const page = await openUi(context);
      await page.waitForSelector("#monitor-banners .banner-warning");
      const banner = await page.textContent("#monitor-banners");
      assert.match(banner, /Kubernetes unreachable\./);
      assert.match(banner, /listing Pods failed: connection refused/);
      assert.match(await page.textContent("#worker-pods"), /no cluster data/);
      await screenshot(page, "kubernetes-unreachable");
      assertNoConsoleErrors(assert, page);
    },
  },
];
