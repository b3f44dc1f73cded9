// Requests to the node that served the page, with the user's token.

const tokenKey = "sessiond.token";

export class ApiError extends Error {
  // status is 0 when the node did not answer at all.
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let onUnauthorized = () => {};

// whenUnauthorized sets what happens when a request is answered 401.
export function whenUnauthorized(f) { onUnauthorized = f; }

export function token() { return sessionStorage.getItem(tokenKey) || ""; }

export function setToken(t) {
  if (t) sessionStorage.setItem(tokenKey, t);
  else sessionStorage.removeItem(tokenKey);
}

export function authHeaders() {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

// api sends a request and returns the decoded JSON body, or throws an
// ApiError carrying the API's error code and message.
export async function api(path, { method = "GET", body, signal, timeout = 8000 } = {}) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeout);
  if (signal) signal.addEventListener("abort", () => ctl.abort());
  let resp;
  try {
    resp = await fetch(path, { method, body, headers: authHeaders(), signal: ctl.signal, cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, "unreachable", "the node did not answer");
  } finally {
    clearTimeout(timer);
  }
  const text = await resp.text().catch(() => "");
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!resp.ok) {
    const e = (data && data.error) || {};
    if (resp.status === 401) onUnauthorized();
    throw new ApiError(resp.status, e.code || `http_${resp.status}`, e.message || resp.statusText);
  }
  return data;
}

// path joins path segments, escaping each. ':' and '@', which session ids
// may hold, are left as they are: the node matches ids unescaped.
export function path(...segments) {
  return segments.map((s, i) => (i === 0 ? s : segment(s))).join("/");
}

function segment(s) {
  return encodeURIComponent(s).replace(/%3A/gi, ":").replace(/%40/g, "@");
}
