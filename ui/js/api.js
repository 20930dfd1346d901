// HTTP client for the code-runner API: bearer token, JSON errors and the two
// streaming endpoints (run events as Server-Sent Events, followed logs).
//
// Streams use fetch instead of EventSource because EventSource cannot send an
// Authorization header.

const TOKEN_KEY = "code-runner.token";
// Maximum number of token prompts for one request, because each token the server rejects prompts again.
const MAX_TOKEN_PROMPTS = 3;
// Retries of one request that the server rate-limited, and the longest wait
// before one, whatever Retry-After requests.
const MAX_RATE_LIMIT_RETRIES = 3;
const MAX_RETRY_AFTER_MS = 10000;

/** An error response from the API, or a failure to reach it. */
export class ApiError extends Error {
  constructor(status, code, message, field = null, retryAfter = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
  }
}

let tokenPrompt = null;
let pendingTokenRequest = null;
const tokenListeners = new Set();

/** Registers the function that prompts the user for a token and resolves to it, or to null. */
export function setTokenPrompt(prompt) {
  tokenPrompt = prompt;
}

/** Registers a callback for token changes (saved or forgotten). */
export function onTokenChange(listener) {
  tokenListeners.add(listener);
}

export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  tokenListeners.forEach((listener) => listener(null));
}

function saveToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  tokenListeners.forEach((listener) => listener(token));
}

// Resolves after `milliseconds`, or rejects with AbortError when the signal aborts.
function delay(milliseconds, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new DOMException("The request was aborted.", "AbortError"));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(new DOMException("The request was aborted.", "AbortError"));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, milliseconds);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

// Converts Retry-After (seconds) to a wait in milliseconds: 1 s when missing, at most MAX_RETRY_AFTER_MS.
function retryDelayMs(retryAfter) {
  const seconds = Number(retryAfter);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    return 1000;
  }
  return Math.min(seconds * 1000, MAX_RETRY_AFTER_MS);
}

// After the user cancels the prompt, requests fail with 401 instead of asking
// again on every poll, until askForToken() is called.
let tokenDeclined = false;

/** Returns true when the user cancelled the token prompt and has not given a token since. */
export function isTokenDeclined() {
  return tokenDeclined;
}

/** Asks for a token now, for example from a button; resolves to the token or null. */
export function askForToken() {
  tokenDeclined = false;
  return requestToken(false);
}

// Every caller that hits a 401 at the same time waits for the same prompt.
async function requestToken(rejected) {
  if (!tokenPrompt || tokenDeclined) {
    return null;
  }
  if (!pendingTokenRequest) {
    pendingTokenRequest = tokenPrompt(rejected).finally(() => {
      pendingTokenRequest = null;
    });
  }
  const token = await pendingTokenRequest;
  if (token) {
    saveToken(token);
  } else {
    tokenDeclined = true;
    tokenListeners.forEach((listener) => listener(null));
  }
  return token;
}

/**
 * Sends a request and returns the Response for a 2xx status.
 * Throws ApiError for any other status. On a 401 it prompts for a token and
 * retries, up to MAX_TOKEN_PROMPTS times. On a 429 rate_limited it waits for
 * Retry-After and retries, up to MAX_RATE_LIMIT_RETRIES times. POST /runs
 * carries an Idempotency-Key, so its retry cannot queue a second run.
 */
export async function apiFetch(path, options = {}) {
  let rateLimitRetries = 0;
  for (let attempt = 0; ; attempt++) {
    const token = storedToken();
    const headers = new Headers(options.headers || {});
    if (token) {
      headers.set("Authorization", `Bearer ${token}`);
    }
    let response;
    try {
      response = await fetch(path, { ...options, headers });
    } catch (error) {
      if (error.name === "AbortError") {
        throw error;
      }
      throw new ApiError(0, "network_error", `The API could not be reached (${error.message}).`);
    }
    if (response.ok) {
      return response;
    }
    const failure = await errorFromResponse(response);
    if (response.status === 429 && failure.code === "rate_limited" && rateLimitRetries < MAX_RATE_LIMIT_RETRIES) {
      rateLimitRetries += 1;
      await delay(retryDelayMs(failure.retryAfter), options.signal);
      attempt -= 1; // a rate-limit retry is no token prompt
      continue;
    }
    if (response.status === 401 && attempt < MAX_TOKEN_PROMPTS) {
      // A request sent before a new token was saved retries with it, without a prompt.
      if (storedToken() && storedToken() !== token) {
        continue;
      }
      const fresh = await requestToken(Boolean(token));
      if (fresh) {
        continue;
      }
      failure.message = "This server requires an API token, and none was given. Choose Enter API token at the top of the page.";
    }
    throw failure;
  }
}

async function errorFromResponse(response) {
  const retryAfter = response.headers.get("Retry-After");
  let body = null;
  try {
    body = await response.json();
  } catch {
    // A body that is not JSON falls through to the generic message below.
  }
  const detail = body && body.error;
  if (detail && typeof detail.message === "string") {
    return new ApiError(response.status, detail.code, detail.message, detail.field || null, retryAfter);
  }
  return new ApiError(response.status, "http_error", `The API returned HTTP ${response.status}.`, null, retryAfter);
}

/** Sends a request and parses the JSON body; returns null for 204 No Content. */
export async function apiJson(path, options = {}) {
  const response = await apiFetch(path, options);
  if (response.status === 204) {
    return null;
  }
  return response.json();
}

/** Sends a JSON body with POST. */
export function postJson(path, body, headers = {}) {
  return apiJson(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

/** Returns a random Idempotency-Key; crypto.randomUUID needs a secure context, so it is not used. */
export function newIdempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * Reads a text stream and calls onChunk with each decoded piece until the
 * server ends it or the signal aborts it.
 */
export async function streamText(path, onChunk, signal) {
  const response = await apiFetch(path, { signal, headers: { Accept: "text/plain" } });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      const rest = decoder.decode();
      if (rest) {
        onChunk(rest);
      }
      return;
    }
    onChunk(decoder.decode(value, { stream: true }));
  }
}

/**
 * Reads a Server-Sent Events stream and calls onEvent(name, data) for each
 * event until the server ends it or the signal aborts it.
 */
export async function streamEvents(path, onEvent, signal) {
  let buffer = "";
  let eventName = "message";
  let dataLines = [];

  const dispatchLine = (line) => {
    if (line === "") {
      if (dataLines.length > 0) {
        onEvent(eventName, dataLines.join("\n"));
      }
      eventName = "message";
      dataLines = [];
      return;
    }
    if (line.startsWith(":")) {
      return; // keep-alive comment
    }
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) {
      value = value.slice(1);
    }
    if (field === "event") {
      eventName = value;
    } else if (field === "data") {
      dataLines.push(value);
    }
  };

  await streamText(
    path,
    (chunk) => {
      buffer += chunk;
      // A trailing lone CR stays in the buffer in case its LF is in the next chunk.
      const lines = buffer.split(/\r\n|\n|\r(?!$)/);
      buffer = lines.pop();
      lines.forEach(dispatchLine);
    },
    signal,
  );
}
