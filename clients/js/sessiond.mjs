// sessiond JavaScript client: one dependency-free ES module for browsers,
// Node 18+, Deno, Bun and edge runtimes (anything with fetch).
//
// Retries are safe by construction: reads and message appends (every
// message carries an id) are retried on another node; PUT, PATCH and
// DELETE are retried only when sessiond answered that they were not
// applied, never after outcome_unknown or a connection that broke after
// the request was sent. See README.md next to this file.

const DEFAULTS = { timeoutMs: 10000, retries: 4, minDelayMs: 100, maxDelayMs: 2000, streamIdleMs: 45000 };

// 503 codes and 429 that mean "not applied": any request may be sent again.
const NOT_APPLIED = new Set(['no_leader', 'not_ready', 'overloaded', 'shutting_down',
  'shard_unavailable', 'timeout', 'not_caught_up', 'rate_limited']);
// Connection errors that mean the request never reached a node.
const NEVER_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/** An error answered by sessiond ({"error":{"code","message"}}) or raised by the client. */
export class SessiondError extends Error {
  constructor(status, code, message, { retryAfter = 0, node = '', version, url = '', cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = 'SessiondError';
    this.status = status; // HTTP status; 0 when no answer came
    this.code = code; // the API's code, or 'unreachable' / 'outcome_unknown' / 'invalid_response'
    this.retryAfter = retryAfter; // seconds, from Retry-After
    this.node = node; // X-Sessiond-Node of the answer
    this.version = version; // the session's current version, on 412 and other answers with an ETag
    this.url = url;
  }

  /** True when the write may or may not have been applied. */
  get outcomeUnknown() { return this.code === 'outcome_unknown'; }
}

const sleep = (ms, signal) => new Promise((resolve, reject) => {
  if (signal?.aborted) return reject(signal.reason);
  const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
  const onAbort = () => { clearTimeout(t); reject(signal.reason); };
  signal?.addEventListener('abort', onAbort, { once: true });
});

// linked returns a controller that aborts when parent does, or after ms.
function linked(parent, ms) {
  const ctl = new AbortController();
  const onAbort = () => ctl.abort(parent.reason);
  if (parent?.aborted) ctl.abort(parent.reason);
  else parent?.addEventListener('abort', onAbort, { once: true });
  const t = ms > 0 ? setTimeout(() => ctl.abort(new SessiondError(0, 'timeout', `no answer within ${ms} ms`)), ms) : null;
  ctl.done = () => { clearTimeout(t); parent?.removeEventListener('abort', onAbort); };
  return ctl;
}

function neverSent(err) {
  for (let e = err; e; e = e.cause) if (NEVER_SENT.has(e.code)) return true;
  return false;
}

/** The ETag form of a version: 42 → "42". Strings are passed through. */
export function etag(version) {
  return typeof version === 'number' || typeof version === 'bigint' ? `"${version}"` : String(version);
}

function parseETag(h) {
  const m = /^(?:W\/)?"?(\d+)"?$/.exec(h ?? '');
  return m ? Number(m[1]) : undefined;
}

// withID gives a message object without an id one; anything else goes
// as it is, for sessiond to judge.
function withID(m) {
  return m && typeof m === 'object' && !Array.isArray(m) && m.id == null ? { ...m, id: newID() } : m;
}

// segment escapes a path segment exactly as Go escapes a path: sessiond
// unescapes a path's parameters only when that escaping reproduces the
// path, and so takes ids such as user@host:1 only with @ and : as they are.
function segment(s) {
  return encodeURIComponent(s).replace(/%(24|26|2B|2C|3A|3B|3D|40)/g, (e) => decodeURIComponent(e))
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

// fieldPath is the route of one field. A '/' must be escaped in a path,
// which sessiond would not unescape: such a field is reached through
// updateState and getFields instead.
function fieldPath(name) {
  if (String(name).includes('/')) throw new TypeError(`sessiond: field name ${JSON.stringify(name)} has a '/'; use updateState and getFields for it`);
  return `/state/${segment(name)}`;
}

function newID() {
  return globalThis.crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/**
 * A client of a sessiond cluster. Any node serves any request, so baseUrls
 * lists nodes only for availability: requests go to the last node that
 * answered and move on when it does not. Safe for concurrent use.
 */
export class SessiondClient {
  constructor(options = {}) {
    const urls = options.baseUrls ?? options.baseUrl ?? 'http://127.0.0.1:8080';
    this.baseUrls = (Array.isArray(urls) ? urls : String(urls).split(','))
      .map((u) => u.trim().replace(/\/+$/, '')).filter(Boolean);
    if (this.baseUrls.length === 0) throw new TypeError('sessiond: no base URL given');
    this.token = options.token;
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.opts = { ...DEFAULTS, ...options };
    this.current = 0; // index of the node that answered last
  }

  /** The ChatSessionClient of one session. */
  session(id) { return new ChatSessionClient(id, this); }

  /** GET /v1/cluster of the node that answers. */
  async cluster(opts) { return (await this.request('GET', '/v1/cluster', opts)).body; }

  /** Where a session lives: {session, shard, leader, replicas}. */
  async owner(id, opts) { return (await this.request('GET', `/v1/sessions/${segment(id)}/owner`, opts)).body; }

  /** One page of the cluster's sessions: {sessions, next?}. */
  async listSessions({ prefix, after, limit, ...opts } = {}) {
    return (await this.request('GET', '/v1/sessions' + query({ prefix, after, limit }), opts)).body;
  }

  /** Every session, following next to the end. */
  async *sessions({ prefix, pageSize, ...opts } = {}) {
    let after;
    do {
      const page = await this.listSessions({ prefix, after, limit: pageSize, ...opts });
      yield* page.sessions;
      after = page.next;
    } while (after);
  }

  async authHeaders(extra) {
    const h = { Accept: 'application/json', ...extra };
    const token = typeof this.token === 'function' ? await this.token() : this.token;
    if (token) h.Authorization = `Bearer ${token}`;
    return h;
  }

  /**
   * request sends one API request and returns {status, body, headers, node}
   * for a 2xx or 304; any other answer throws SessiondError. repeatable
   * says the request may be sent again even if it might have been applied
   * (reads, appends with message ids); timeoutMs bounds each attempt.
   */
  async request(method, path, { body, headers, repeatable = method === 'GET' || method === 'HEAD', signal, timeoutMs = this.opts.timeoutMs } = {}) {
    const { retries, minDelayMs, maxDelayMs } = this.opts;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    let last;
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) {
        const wait = Math.max(Math.min(maxDelayMs, minDelayMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2),
          Math.min(last.retryAfter * 1000, maxDelayMs * 4));
        await sleep(wait, signal);
      }
      const i = (this.current + attempt) % this.baseUrls.length;
      const url = this.baseUrls[i] + path;
      const ctl = linked(signal, timeoutMs);
      let res;
      try {
        const h = await this.authHeaders(payload === undefined ? headers : { 'Content-Type': 'application/json', ...headers });
        res = await this.fetch(url, { method, headers: h, body: payload, signal: ctl.signal });
        const text = await res.text();
        ctl.done();
        const node = res.headers.get('X-Sessiond-Node') ?? '';
        if ((res.status >= 200 && res.status < 300) || res.status === 304) {
          this.current = i;
          return { status: res.status, headers: res.headers, node, body: text ? parseJSON(text, res.status, url) : undefined };
        }
        last = decodeError(res, text, url, node);
        if (!NOT_APPLIED.has(last.code) && !(last.outcomeUnknown && repeatable)) throw last;
      } catch (err) {
        ctl.done();
        if (err instanceof SessiondError && err === last) throw err;
        if (signal?.aborted) throw signal.reason;
        if (err instanceof SessiondError && err.code === 'invalid_response') throw err;
        const sent = !neverSent(err);
        if (sent && !repeatable) {
          throw new SessiondError(0, 'outcome_unknown',
            `${method} ${path} at ${this.baseUrls[i]} failed after it was sent (${reason(err)}); it may or may not have been applied`, { url, cause: err });
        }
        last = new SessiondError(0, sent ? 'outcome_unknown' : 'unreachable', `${method} ${url}: ${reason(err)}`, { url, cause: err });
      }
    }
    throw last;
  }
}

// reason is the most telling message of an error chain: the one that names
// a code (ECONNREFUSED, a timeout), else the outermost.
function reason(err) {
  for (let e = err; e; e = e.cause) if (typeof e.code === 'string') return e.message;
  return err?.message ?? String(err);
}

function parseJSON(text, status, url) {
  try {
    return JSON.parse(text);
  } catch {
    throw new SessiondError(status, 'invalid_response', `${url} answered ${status} with a body that is not JSON`, { url });
  }
}

function decodeError(res, text, url, node) {
  let code = `http_${res.status}`;
  let message = text.slice(0, 200) || res.statusText;
  try {
    const e = JSON.parse(text).error;
    if (e?.code) ({ code, message } = e);
  } catch { /* not the API's error model: a proxy's page */ }
  return new SessiondError(res.status, code, message, {
    url, node, retryAfter: Number(res.headers.get('Retry-After')) || 0, version: parseETag(res.headers.get('ETag')),
  });
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

function conditional(ifMatch) {
  return ifMatch === undefined ? {} : { 'If-Match': etag(ifMatch) };
}

/**
 * One chat session: a drop-in for the Durable Objects ChatSessionClient
 * (getState, updateState, addMessage) with sessiond's other routes.
 * Conditional writes take {ifMatch: version}; version 0 means "only if the
 * session does not exist yet".
 */
export class ChatSessionClient {
  constructor(id, client = {}) {
    if (typeof id !== 'string' || id === '') throw new TypeError('sessiond: a session id is a non-empty string');
    this.id = id;
    this.client = client instanceof SessiondClient ? client : new SessiondClient(client);
    this.path = `/api/chat/session/${segment(id)}`;
  }

  /** The whole session; one that does not exist yet reads as {id, messages: [], version: 0}. */
  async getState({ consistency, signal } = {}) {
    try {
      return (await this.client.request('GET', this.path + query({ consistency }), { signal })).body;
    } catch (err) {
      if (err.code === 'session_not_found') return { id: this.id, messages: [], version: 0 };
      throw err;
    }
  }

  /** PUT: a top-level merge of fields (null deletes one); returns the session. */
  async updateState(partial, { ifMatch, signal } = {}) {
    return (await this.client.request('PUT', this.path, { body: partial, headers: conditional(ifMatch), signal })).body;
  }

  /** PATCH: an RFC 7396 merge patch of the fields; returns the session. */
  async patchState(patch, { ifMatch, signal } = {}) {
    return (await this.client.request('PATCH', this.path, { body: patch, headers: conditional(ifMatch), signal })).body;
  }

  /**
   * modifyState reads the session, calls change(state) for the fields to
   * merge (undefined: nothing to do) and writes them only if the session is
   * still at the version read, reading again when another write came first.
   */
  async modifyState(change, { attempts = 10, signal } = {}) {
    for (let i = 1; ; i++) {
      const state = await this.getState({ signal });
      const partial = await change(state);
      if (partial === undefined) return state;
      try {
        return await this.updateState(partial, { ifMatch: state.version, signal });
      } catch (err) {
        if (err.code !== 'version_mismatch' || i >= attempts) throw err;
      }
    }
  }

  /** Appends one message ({role, content, id?, meta?}); returns the stored message with its seq. */
  async addMessage(message, opts = {}) {
    return (await this.addMessages([message], opts)).messages[0];
  }

  /**
   * Appends messages in order, atomically: {messages, version}. Messages
   * without an id get one here (or, with idempotencyKey, sessiond derives
   * KEY#0, KEY#1, … from it), so a retry can never store them twice. A
   * conditional append (ifMatch) is not retried once it may have been
   * applied: its retry would fail on the version it moved itself.
   */
  async addMessages(messages, { ifMatch, idempotencyKey, signal } = {}) {
    const body = { messages: idempotencyKey ? messages : messages.map(withID) };
    const headers = conditional(ifMatch);
    if (idempotencyKey) headers['Idempotency-Key'] = idempotencyKey;
    const res = await this.client.request('POST', `${this.path}/messages`, {
      body, headers, repeatable: ifMatch === undefined, signal,
    });
    return res.body;
  }

  /** One page: {messages, version, total, nextAfter?, hasMore}; wait ('30s') blocks until a message after `after` exists. */
  async getMessages({ after, limit, wait, consistency, signal } = {}) {
    try {
      // A blocking read may take the longest wait sessiond allows (60 s) before its answer.
      const timeoutMs = wait ? 60000 + this.client.opts.timeoutMs : undefined;
      return (await this.client.request('GET', `${this.path}/messages` + query({ after, limit, wait, consistency }), { signal, timeoutMs })).body;
    } catch (err) {
      if (err.code === 'session_not_found') return { messages: [], version: 0, total: 0, hasMore: false };
      throw err;
    }
  }

  /** Every message after `after`, page by page. */
  async *messages({ after = 0, pageSize, signal } = {}) {
    for (;;) {
      const page = await this.getMessages({ after, limit: pageSize, signal });
      yield* page.messages;
      if (!page.hasMore) return;
      after = page.nextAfter;
    }
  }

  /** The fields only, as one object ({} for a session that does not exist). */
  async getFields({ consistency, signal } = {}) {
    try {
      return (await this.client.request('GET', `${this.path}/state` + query({ consistency }), { signal })).body;
    } catch (err) {
      if (err.code === 'session_not_found') return {};
      throw err;
    }
  }

  /** One field's value; undefined when it is not set. */
  async getField(name, opts) { return this.#getAt(fieldPath(name), opts); }

  /** Sets one field (null deletes it): {name, value, version}. */
  async setField(name, value, opts) { return this.#putAt(fieldPath(name), value, opts); }

  /** Deletes one field; false when it was not set. */
  async deleteField(name, opts) { return this.#deleteAt(fieldPath(name), opts); }

  /** The pendingMatch field; undefined when none is pending. */
  async pendingMatch(opts) { return this.#getAt('/pending-match', opts); }

  /** Sets pendingMatch: {name, value, version}. */
  async setPendingMatch(match, opts) { return this.#putAt('/pending-match', match, opts); }

  /** Clears pendingMatch; false when none was pending. */
  async clearPendingMatch(opts) { return this.#deleteAt('/pending-match', opts); }

  /** Deletes the session; false when it did not exist. */
  async delete(opts) { return this.#deleteAt('', opts); }

  /** Where the session lives: {session, shard, leader, replicas}. */
  async owner(opts) { return this.client.owner(this.id, opts); }

  async #getAt(sub, { consistency, signal } = {}) {
    try {
      return (await this.client.request('GET', this.path + sub + query({ consistency }), { signal })).body;
    } catch (err) {
      if (err.code === 'field_not_found' || err.code === 'session_not_found') return undefined;
      throw err;
    }
  }

  async #putAt(sub, value, { ifMatch, signal } = {}) {
    return (await this.client.request('PUT', this.path + sub, { body: value, headers: conditional(ifMatch), signal })).body;
  }

  async #deleteAt(sub, { ifMatch, signal } = {}) {
    try {
      await this.client.request('DELETE', this.path + sub, { headers: conditional(ifMatch), signal });
      return true;
    } catch (err) {
      if (err.code === 'field_not_found' || err.code === 'session_not_found') return false;
      throw err;
    }
  }

  /**
   * watch follows the session's change stream: an async iterator of
   * {type, id, data} events (snapshot, message, fields, deleted, alarm).
   * When a stream ends or breaks it reconnects, to the next node, with
   * the last event id, so every change arrives once and in order. Stop it
   * with break, return() or the signal. after starts after an event id
   * instead of with a snapshot.
   */
  watch({ after, signal } = {}) {
    return watchStream(this.client, `${this.path}/events`, after, signal);
  }
}

async function* watchStream(client, path, after, signal) {
  const ctl = linked(signal, 0);
  const { retries, minDelayMs, maxDelayMs, streamIdleMs } = client.opts;
  let last = after === undefined ? undefined : String(after);
  let failures = 0; // connections in a row that brought no event
  try {
    for (let attempt = 0; ; attempt++) {
      if (failures > 0) await sleep(Math.min(maxDelayMs, minDelayMs * 2 ** (failures - 1)) * (0.5 + Math.random() / 2), ctl.signal);
      const i = (client.current + attempt) % client.baseUrls.length;
      const url = client.baseUrls[i] + path;
      failures++;
      // The node sends a comment every 15 s: a stream silent for longer
      // than streamIdleMs lost its node without a word, and is replaced.
      const conn = linked(ctl.signal, 0);
      let idle;
      const arm = () => {
        clearTimeout(idle);
        idle = setTimeout(() => conn.abort(new SessiondError(0, 'timeout', `no data within ${streamIdleMs} ms`)), streamIdleMs);
      };
      try {
        const headers = await client.authHeaders({ Accept: 'text/event-stream' });
        if (last !== undefined) headers['Last-Event-ID'] = last;
        arm();
        const res = await client.fetch(url, { headers, signal: conn.signal });
        if (res.status !== 200) {
          const err = decodeError(res, await res.text(), url, res.headers.get('X-Sessiond-Node') ?? '');
          if (!NOT_APPLIED.has(err.code) || failures > retries) throw err;
          continue;
        }
        const body = res.body.pipeThrough(new TransformStream({ transform(chunk, c) { arm(); c.enqueue(chunk); } }));
        for await (const ev of parseEvents(body)) {
          if (ev.type === 'resume') break; // the node ends the stream: go elsewhere
          if (ev.id !== undefined) last = ev.id;
          failures = 0;
          client.current = i;
          if (STREAM_EVENTS.has(ev.type)) yield { type: ev.type, id: ev.id, data: JSON.parse(ev.data) };
        }
      } catch (err) {
        if (ctl.signal.aborted) return;
        if (err instanceof SessiondError && err.status > 0) throw err;
        if (failures > retries) throw new SessiondError(0, 'unreachable', `${url}: ${reason(err)}`, { url, cause: err });
        // else a stream that broke or never came: reconnect from the last event seen
      } finally {
        clearTimeout(idle);
        conn.abort();
        conn.done();
      }
      if (ctl.signal.aborted) return;
    }
  } finally {
    ctl.abort();
    ctl.done();
  }
}

const STREAM_EVENTS = new Set(['snapshot', 'message', 'fields', 'deleted', 'alarm']);

/**
 * parseEvents reads Server-Sent Events from a byte stream as the HTML
 * standard defines them: {type, id, data} per event; comments are skipped.
 */
export async function* parseEvents(body) {
  let ev = { type: 'message', data: [], id: undefined };
  for await (const line of lines(body)) {
    if (line === '') {
      if (ev.data.length > 0) yield { type: ev.type, id: ev.id, data: ev.data.join('\n') };
      ev = { type: 'message', data: [], id: undefined };
      continue;
    }
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') ev.type = value;
    else if (field === 'data') ev.data.push(value);
    else if (field === 'id' && !value.includes('\0')) ev.id = value;
  }
}

// lines splits a byte stream into lines ended by \r\n, \r or \n; an
// unterminated last line is dropped, as an unfinished event is.
async function* lines(body) {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of chunks(body)) {
    buf += decoder.decode(chunk, { stream: true });
    let nl;
    // A \r at the end of the buffer may be half of a \r\n: wait for more.
    while ((nl = buf.search(/\r\n|\r(?!$)|\n/)) >= 0) {
      yield buf.slice(0, nl);
      buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
    }
  }
  if (buf.endsWith('\r')) yield buf.slice(0, -1); // the stream ended the line
}

// chunks iterates a ReadableStream through a reader (not every browser
// makes streams async-iterable) and cancels it when the caller stops.
async function* chunks(body) {
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}
