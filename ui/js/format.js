// Formatting helpers shared by the panels.

export const RUN_STATES = [
  "queued",
  "dispatched",
  "pending",
  "running",
  "succeeded",
  "failed",
  "timed_out",
  "cancelled",
  "error",
];

export const TERMINAL_STATES = new Set(["succeeded", "failed", "timed_out", "cancelled", "error"]);

export function isTerminal(status) {
  return TERMINAL_STATES.has(status);
}

/** Formats milliseconds as "840 ms", "1.5 s" or "2 min 5 s"; null becomes a dash. */
export function formatDuration(milliseconds) {
  if (milliseconds === null || milliseconds === undefined) {
    return "–";
  }
  if (milliseconds < 1000) {
    return `${Math.round(milliseconds)} ms`;
  }
  const seconds = milliseconds / 1000;
  if (seconds < 60) {
    return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  }
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds - minutes * 60)} s`;
}

/** Formats an RFC 3339 timestamp as local time; today's dates show the time only. */
export function formatTime(timestamp) {
  if (!timestamp) {
    return "–";
  }
  const date = new Date(timestamp);
  if (Number.isNaN(date.getTime())) {
    return timestamp;
  }
  const today = new Date();
  const sameDay = date.toDateString() === today.toDateString();
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return sameDay ? time : `${date.toLocaleDateString()} ${time}`;
}

/** Returns the last 8 characters of a run id, enough to tell runs apart on screen. */
export function shortId(id) {
  return id.length > 10 ? `…${id.slice(-8)}` : id;
}

/** Ends a message from the server with a full stop, so that more text can follow it. */
export function asSentence(text) {
  const trimmed = text.trim();
  return /[.!?]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}

/** Returns a value for display, with a dash for null and undefined. */
export function orDash(value) {
  return value === null || value === undefined || value === "" ? "–" : String(value);
}

/** Creates an element with properties and children, a small stand-in for a template engine. */
export function element(tag, properties = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(properties)) {
    if (key === "className") {
      node.className = value;
    } else if (key === "text") {
      node.textContent = value;
    } else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role" || key === "scope") {
      node.setAttribute(key, value);
    } else {
      node[key] = value;
    }
  }
  for (const child of children) {
    node.append(child);
  }
  return node;
}

/** Returns a status badge for a run state. */
export function statusBadge(status) {
  return element("span", { className: `status status-${status}`, text: status });
}
