// Type declarations of sessiond.mjs, the sessiond JavaScript client.

/** Any JSON value a field may hold. */
export type JSONValue = string | number | boolean | null | JSONValue[] | { [name: string]: JSONValue };

/** Read consistency: linearizable (default), leader, or stale (any replica). */
export type Consistency = 'linearizable' | 'leader' | 'stale';

/** A session version (the raft index of its last write), or its ETag. 0: the session does not exist. */
export type Version = number | string;

export interface ClientOptions {
  /** Node base URLs, tried in order; a comma-separated string or one URL works too. Default http://127.0.0.1:8080. */
  baseUrls?: string | string[];
  /** Alias of baseUrls for one node. */
  baseUrl?: string;
  /** Bearer token, or a function asked before every request (for rotation). */
  token?: string | (() => string | Promise<string>);
  /** The fetch to use; default globalThis.fetch. */
  fetch?: typeof fetch;
  /** How long one attempt may take, in ms; default 10000. */
  timeoutMs?: number;
  /** Attempts after the first; default 4. */
  retries?: number;
  /** Backoff between attempts: doubling from minDelayMs up to maxDelayMs (Retry-After wins when longer). */
  minDelayMs?: number;
  maxDelayMs?: number;
  /** A change stream that brings no data for this long (ms) is replaced by a new connection; default 45000. */
  streamIdleMs?: number;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface ReadOptions extends CallOptions {
  consistency?: Consistency;
}

export interface WriteOptions extends CallOptions {
  /** Apply only if the session is at this version (0: only if it does not exist); else 412 version_mismatch. */
  ifMatch?: Version;
}

export interface AppendOptions extends WriteOptions {
  /** Messages without an id get KEY (one message) or KEY#0, KEY#1, … instead of ids made by the client. */
  idempotencyKey?: string;
}

export interface NewMessage {
  role: string;
  content: string;
  /** Makes the append idempotent; the client sets one when absent. */
  id?: string;
  meta?: JSONValue;
}

export interface Message {
  seq: number;
  id: string;
  role: string;
  content: string;
  createdAt: number;
  meta?: JSONValue;
}

/** The whole session: fixed members, then every field at the top level. */
export interface ChatSessionState {
  id: string;
  createdAt?: number;
  updatedAt?: number;
  lastAccessedAt?: number;
  /** 0 when the session does not exist. */
  version: number;
  expiresAt?: number;
  messages: Message[];
  [field: string]: JSONValue | Message[] | undefined;
}

export interface AppendResult {
  messages: Message[];
  version: number;
}

export interface MessagePage {
  messages: Message[];
  version: number;
  total: number;
  /** Pass as after for the next page. */
  nextAfter?: number;
  hasMore: boolean;
}

export interface FieldResult {
  name: string;
  value: JSONValue;
  version: number;
}

export interface Owner {
  session: string;
  shard: number;
  leader: string;
  replicas: string[];
}

export interface SessionSummary {
  id: string;
  createdAt: number;
  updatedAt: number;
  messageCount: number;
  sizeBytes: number;
  version: number;
}

export interface SessionPage {
  sessions: SessionSummary[];
  next?: string;
}

/** One change of a session's stream; id is the session version after it ("VERSION" or "VERSION:SEQ"). */
export type WatchEvent =
  | { type: 'snapshot'; id: string; data: ChatSessionState | null }
  | { type: 'message'; id: string; data: Message & { version: number } }
  | { type: 'fields'; id: string; data: { fields: { [name: string]: JSONValue }; version: number } }
  | { type: 'deleted'; id: string; data: { id: string; version: number } }
  | { type: 'alarm'; id: string; data: { name: string; at: number; firedAt: number; version: number; payload?: JSONValue } };

export interface WatchOptions extends CallOptions {
  /** Start after this event id instead of with a snapshot. */
  after?: string | number;
}

/** An error answered by sessiond, or raised by the client (status 0). */
export class SessiondError extends Error {
  name: 'SessiondError';
  /** HTTP status; 0 when no answer came. */
  status: number;
  /** The API's error code (the README's table), or unreachable, outcome_unknown, invalid_response. */
  code: string;
  /** Seconds from Retry-After; 0 when absent. */
  retryAfter: number;
  /** The node that answered (X-Sessiond-Node). */
  node: string;
  /** The session's current version where the answer carries an ETag (412). */
  version?: number;
  url: string;
  /** The write may or may not have been applied. */
  readonly outcomeUnknown: boolean;
}

/** The ETag of a version: 42 → "42". */
export function etag(version: Version): string;

/** Server-Sent Events of a byte stream, as the HTML standard parses them. */
export function parseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<{ type: string; id?: string; data: string }, void, undefined>;

/** A client of a sessiond cluster. Safe for concurrent use. */
export class SessiondClient {
  constructor(options?: ClientOptions);
  readonly baseUrls: string[];
  /** Index in baseUrls of the node that answered last. */
  current: number;
  session(id: string): ChatSessionClient;
  cluster(opts?: CallOptions): Promise<any>;
  owner(id: string, opts?: CallOptions): Promise<Owner>;
  listSessions(opts?: CallOptions & { prefix?: string; after?: string; limit?: number }): Promise<SessionPage>;
  sessions(opts?: CallOptions & { prefix?: string; pageSize?: number }): AsyncGenerator<SessionSummary, void, undefined>;
  /** The headers every request carries: Accept, Authorization (from token), and extra. */
  authHeaders(extra?: Record<string, string>): Promise<Record<string, string>>;
  /**
   * Sends one request; resolves for 2xx and 304, rejects with SessiondError otherwise. repeatable:
   * the request may be sent again after it may have been applied (default: GET and HEAD).
   */
  request<T = any>(method: string, path: string, opts?: CallOptions & {
    body?: unknown; headers?: Record<string, string>; repeatable?: boolean; timeoutMs?: number;
  }): Promise<{ status: number; headers: Headers; node: string; body: T }>;
}

/** One chat session: the Durable Objects ChatSessionClient's methods and sessiond's others. */
export class ChatSessionClient {
  /** A client of its own from options, or one sharing a SessiondClient. */
  constructor(id: string, client?: SessiondClient | ClientOptions);
  readonly id: string;
  readonly client: SessiondClient;
  /** The whole session; one that does not exist yet is {id, messages: [], version: 0}. */
  getState(opts?: ReadOptions): Promise<ChatSessionState>;
  /** PUT: top-level merge of fields, null deletes one. Not retried once it may have been applied. */
  updateState(partial: { [field: string]: JSONValue }, opts?: WriteOptions): Promise<ChatSessionState>;
  /** PATCH: RFC 7396 merge patch of the fields. Not retried once it may have been applied. */
  patchState(patch: { [field: string]: JSONValue }, opts?: WriteOptions): Promise<ChatSessionState>;
  /** Read, change, write with If-Match; read again on 412, up to attempts (10) times. */
  modifyState(
    change: (state: ChatSessionState) => { [field: string]: JSONValue } | undefined | Promise<{ [field: string]: JSONValue } | undefined>,
    opts?: CallOptions & { attempts?: number },
  ): Promise<ChatSessionState>;
  addMessage(message: NewMessage, opts?: AppendOptions): Promise<Message>;
  addMessages(messages: NewMessage[], opts?: AppendOptions): Promise<AppendResult>;
  /** wait (such as '30s', at most 60s) blocks until a message after `after` exists. */
  getMessages(opts?: ReadOptions & { after?: number; limit?: number; wait?: string }): Promise<MessagePage>;
  messages(opts?: CallOptions & { after?: number; pageSize?: number }): AsyncGenerator<Message, void, undefined>;
  getFields(opts?: ReadOptions): Promise<{ [field: string]: JSONValue }>;
  getField(name: string, opts?: ReadOptions): Promise<JSONValue | undefined>;
  setField(name: string, value: JSONValue, opts?: WriteOptions): Promise<FieldResult>;
  deleteField(name: string, opts?: WriteOptions): Promise<boolean>;
  pendingMatch(opts?: ReadOptions): Promise<JSONValue | undefined>;
  setPendingMatch(match: JSONValue, opts?: WriteOptions): Promise<FieldResult>;
  clearPendingMatch(opts?: WriteOptions): Promise<boolean>;
  delete(opts?: WriteOptions): Promise<boolean>;
  owner(opts?: CallOptions): Promise<Owner>;
  /** The change stream, reconnecting with Last-Event-ID across base URLs; stop with break or the signal. */
  watch(opts?: WatchOptions): AsyncGenerator<WatchEvent, void, undefined>;
}
