// The API, with the signed-in key. The key lives in this tab's session storage only: it
// is gone when the tab closes, and it never goes in a URL.

const PREFIX = "/api/v1";
const KEY = "vigia.key";

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

export function signedIn() {
  return sessionStorage.getItem(KEY) !== null;
}

export function remember(key) {
  sessionStorage.setItem(KEY, key);
}

export function forget() {
  sessionStorage.removeItem(KEY);
}

function headers(extra = {}) {
  const key = sessionStorage.getItem(KEY);
  return key ? { Authorization: `Bearer ${key}`, ...extra } : { ...extra };
}

export function query(parameters) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(parameters)) {
    if (value === undefined || value === null || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) search.append(name, item);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy's page, say
  }
  const error = body && body.error;
  if (error) return new ApiError(response.status, error.code, error.message, error.details);
  return new ApiError(response.status, "http_error", `the server answered ${response.status} ${response.statusText}`.trim());
}

export async function call(method, path, { json, form, parameters, signal } = {}) {
  const options = { method, headers: headers(), signal };
  if (json !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(json);
  } else if (form !== undefined) {
    options.body = form;
  }
  let response;
  try {
    response = await fetch(PREFIX + path + query(parameters || {}), options);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "unreachable", "the server cannot be reached: check that vigia serve is running");
  }
  if (response.status === 401) {
    window.dispatchEvent(new CustomEvent("vigia:unauthenticated"));
  }
  if (!response.ok && response.status !== 202) throw await failure(response);
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path, parameters, signal) => call("GET", path, { parameters, signal });
export const post = (path, json) => call("POST", path, { json });

export async function blobUrl(path) {
  const response = await fetch(PREFIX + path, { headers: headers() });
  if (!response.ok) throw await failure(response);
  return URL.createObjectURL(await response.blob());
}

// Server-Sent Events read with fetch (EventSource cannot send the key in a header). Calls
// onEvent(type, data, id) for each event (it returns true for the last one the stream will
// send); reconnects after a drop, sending the last id seen as Last-Event-ID (the per-job
// stream resumes there), and calls onOpen each time it (re)connects. Returns a function
// that stops it.
export function follow(path, { onEvent, onOpen, onError, onEnd }) {
  const controller = new AbortController();
  let lastId = null;
  let stopped = false;

  async function connect() {
    while (!stopped) {
      let ended = false;
      try {
        const response = await fetch(PREFIX + path, {
          headers: headers(lastId ? { "Last-Event-ID": lastId, Accept: "text/event-stream" } : { Accept: "text/event-stream" }),
          signal: controller.signal,
          cache: "no-store",
        });
        if (!response.ok) {
          const error = await failure(response);
          if (onError) onError(error);
          if (response.status >= 400 && response.status < 500) return;
        } else {
          if (onOpen) onOpen();
          ended = await read(response.body);
          if (ended) {
            if (onEnd) onEnd();
            return;
          }
        }
      } catch (error) {
        if (stopped || error.name === "AbortError") return;
        if (onError) onError(new ApiError(0, "stream_lost", "live updates lost: reconnecting"));
      }
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }

  // True when the server ended the stream (the job finished), false when it dropped.
  async function read(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let finished = false;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return finished;
      buffer += decoder.decode(value, { stream: true });
      let boundary;
      while ((boundary = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, boundary);
        buffer = buffer.slice(boundary).replace(/^\r?\n\r?\n/, "");
        let type = "message";
        let id = null;
        const data = [];
        for (const line of block.split(/\r?\n/)) {
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const name = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (name === "event") type = text;
          else if (name === "data") data.push(text);
          else if (name === "id") id = text;
        }
        if (!data.length) continue;
        if (id !== null) lastId = id;
        let parsed = null;
        try {
          parsed = JSON.parse(data.join("\n"));
        } catch {
          continue;
        }
        if (onEvent(type, parsed, id) === true) finished = true;
      }
    }
  }

  connect();
  return () => {
    stopped = true;
    controller.abort();
  };
}
