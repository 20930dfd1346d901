// A step chart in hand-written SVG: one line per series over a time window.

const SVG_NS = "http://www.w3.org/2000/svg";
const HEIGHT = 220;
const MARGIN = { top: 12, right: 16, bottom: 28, left: 36 };
const TIME_STEPS_MS = [30000, 60000, 120000, 300000];
// Half the width of a time label such as "09:57:30 PM" at 11 px, an estimate.
const LABEL_HALF_WIDTH = 36;

export const SERIES = [
  { key: "queue_depth", label: "Queue depth", className: "series-queue" },
  { key: "worker_replicas", label: "Worker replicas", className: "series-workers" },
  { key: "active_runs", label: "Active runs", className: "series-active" },
];

function svgElement(tag, attributes = {}, text = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attributes)) {
    node.setAttribute(key, String(value));
  }
  if (text !== null) {
    node.textContent = text;
  }
  return node;
}

// Returns "nice" integer ticks from 0 to at least max, at most about five of them.
function integerTicks(max) {
  const top = Math.max(1, max);
  const rawStep = top / 4;
  const magnitude = 10 ** Math.floor(Math.log10(rawStep));
  const step = Math.max(1, [1, 2, 5, 10].map((factor) => factor * magnitude).find((candidate) => candidate >= rawStep));
  const ticks = [];
  for (let value = 0; value < top + step; value += step) {
    ticks.push(value);
    if (value >= top) {
      break;
    }
  }
  return ticks;
}

function formatClock(milliseconds, withSeconds) {
  const parts = withSeconds ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" };
  return new Date(milliseconds).toLocaleTimeString([], parts);
}

/**
 * Draws samples ({at: epoch ms, queue_depth, worker_replicas, active_runs},
 * sorted by time) between start and end (epoch ms) into container.
 */
export function drawChart(container, samples, start, end) {
  const width = Math.max(280, Math.floor(container.clientWidth || 600));
  const plotWidth = width - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;

  const visible = samples.filter((sample) => sample.at >= start && sample.at <= end);
  const maxValue = Math.max(0, ...visible.flatMap((sample) => SERIES.map((series) => sample[series.key])));
  const yTicks = integerTicks(maxValue);
  const yMax = yTicks[yTicks.length - 1];
  const x = (time) => MARGIN.left + ((time - start) / (end - start)) * plotWidth;
  const y = (value) => MARGIN.top + plotHeight - (value / yMax) * plotHeight;

  const latest = visible[visible.length - 1];
  const summary = latest
    ? SERIES.map((series) => `${series.label} ${latest[series.key]}`).join(", ")
    : "no samples yet";
  const svg = svgElement("svg", {
    viewBox: `0 0 ${width} ${HEIGHT}`,
    width,
    height: HEIGHT,
    role: "img",
    "aria-label": `Chart of the last ${Math.round((end - start) / 60000)} minutes. Latest: ${summary}.`,
  });

  const grid = svgElement("g", { class: "chart-grid", "aria-hidden": "true" });
  for (const tick of yTicks) {
    grid.append(svgElement("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: y(tick), y2: y(tick) }));
    grid.append(svgElement("text", { x: MARGIN.left - 6, y: y(tick) + 4, "text-anchor": "end" }, String(tick)));
  }
  // About one time label per 110 px, on whole half minutes or minutes.
  const maxLabels = Math.max(2, Math.floor(plotWidth / 110));
  const timeStep = TIME_STEPS_MS.find((step) => (end - start) / step <= maxLabels) || TIME_STEPS_MS.at(-1);
  for (let time = Math.ceil(start / timeStep) * timeStep; time <= end; time += timeStep) {
    grid.append(svgElement("line", { x1: x(time), x2: x(time), y1: MARGIN.top, y2: MARGIN.top + plotHeight }));
    // Labels near either end align to it, so none is cut off.
    let anchor = "middle";
    if (x(time) > width - MARGIN.right - LABEL_HALF_WIDTH) {
      anchor = "end";
    } else if (x(time) < MARGIN.left + LABEL_HALF_WIDTH) {
      anchor = "start";
    }
    grid.append(svgElement("text", { x: x(time), y: HEIGHT - 8, "text-anchor": anchor }, formatClock(time, timeStep < 60000)));
  }
  svg.append(grid);

  for (const series of SERIES) {
    if (visible.length === 0) {
      break;
    }
    // Counts hold their value until the next sample, so the line steps.
    let path = `M ${x(visible[0].at).toFixed(1)} ${y(visible[0][series.key]).toFixed(1)}`;
    for (let index = 1; index < visible.length; index++) {
      const sample = visible[index];
      path += ` H ${x(sample.at).toFixed(1)} V ${y(sample[series.key]).toFixed(1)}`;
    }
    path += ` H ${x(latest.at).toFixed(1)}`;
    svg.append(svgElement("path", { d: path, class: `chart-line ${series.className}`, "aria-hidden": "true" }));
  }

  container.replaceChildren(svg, legend(latest));
}

function legend(latest) {
  const list = document.createElement("ul");
  list.className = "chart-legend";
  for (const series of SERIES) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = `swatch ${series.className}`;
    swatch.setAttribute("aria-hidden", "true");
    const value = latest ? latest[series.key] : "–";
    item.append(swatch, `${series.label}: `);
    const strong = document.createElement("strong");
    strong.textContent = String(value);
    strong.dataset.series = series.key;
    item.append(strong);
    list.append(item);
  }
  return list;
}
