// The client against a real sessiond node: the Durable Objects
// ChatSessionClient methods, messages, fields, conditional writes, errors
// and tokens. Run with `node --test clients/js/`.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { ChatSessionClient, SessiondClient, SessiondError } from './sessiond.mjs';
import { startNode, TOKENS } from './testing/node.mjs';

let node;
let client;
before(async () => {
  node = await startNode();
  client = new SessiondClient({ baseUrls: [node.url], token: TOKENS.data });
});
after(() => node?.stop());

let n = 0;
const fresh = () => client.session(`js-${process.pid}-${++n}`);

test('getState of a session that does not exist is an empty state at version 0', async () => {
  const chat = fresh();
  assert.deepEqual(await chat.getState(), { id: chat.id, messages: [], version: 0 });
});

test('updateState merges top-level fields and null deletes one, as the Durable Object PUT did', async () => {
  const chat = fresh();
  const created = await chat.updateState({ step: 'search', bookingInfo: { ref: 'A1' } });
  assert.equal(created.step, 'search');
  assert.ok(created.version > 0);
  const merged = await chat.updateState({ lastSearchCriteria: { to: 'LIS' }, bookingInfo: null });
  assert.equal(merged.step, 'search');
  assert.deepEqual(merged.lastSearchCriteria, { to: 'LIS' });
  assert.equal('bookingInfo' in merged, false);
  const state = await chat.getState();
  assert.deepEqual(state, merged);
});

test('patchState applies an RFC 7396 merge patch to nested fields', async () => {
  const chat = fresh();
  await chat.updateState({ criteria: { from: 'BER', to: 'LIS' } });
  const patched = await chat.patchState({ criteria: { from: null, dates: '05-03/05-07' } });
  assert.deepEqual(patched.criteria, { to: 'LIS', dates: '05-03/05-07' });
});

test('addMessage stores the message with its seq and getState returns it', async () => {
  const chat = fresh();
  const first = await chat.addMessage({ role: 'user', content: 'Find me a flight to Lisbon' });
  const second = await chat.addMessage({ role: 'assistant', content: 'Which dates?', meta: { model: 'x' } });
  assert.equal(first.seq, 1);
  assert.equal(second.seq, 2);
  assert.ok(first.id, 'the client gives every message an id');
  const state = await chat.getState();
  assert.deepEqual(state.messages.map((m) => [m.seq, m.role, m.content]),
    [[1, 'user', 'Find me a flight to Lisbon'], [2, 'assistant', 'Which dates?']]);
  assert.deepEqual(state.messages[1].meta, { model: 'x' });
});

test('addMessage with an id already stored returns the stored message instead of a second copy', async () => {
  const chat = fresh();
  const a = await chat.addMessage({ id: 'turn-1', role: 'user', content: 'hi' });
  const b = await chat.addMessage({ id: 'turn-1', role: 'user', content: 'hi' });
  assert.deepEqual(b, a);
  assert.equal((await chat.getState()).messages.length, 1);
});

test('addMessages with an Idempotency-Key gets the ids KEY#0, KEY#1 and is stored once when repeated', async () => {
  const chat = fresh();
  const batch = [{ role: 'assistant', content: 'Which dates?' }, { role: 'user', content: 'May 3-7' }];
  const first = await chat.addMessages(batch, { idempotencyKey: 'turn-2' });
  assert.deepEqual(first.messages.map((m) => m.id), ['turn-2#0', 'turn-2#1']);
  const again = await chat.addMessages(batch, { idempotencyKey: 'turn-2' });
  assert.deepEqual(again.messages, first.messages);
  assert.equal((await chat.getState()).messages.length, 2);
});

test('a message id reused with other content is refused with id_conflict', async () => {
  const chat = fresh();
  await chat.addMessage({ id: 'm1', role: 'user', content: 'one' });
  await assert.rejects(chat.addMessage({ id: 'm1', role: 'user', content: 'two' }),
    (err) => err instanceof SessiondError && err.status === 409 && err.code === 'id_conflict');
});

test('getMessages pages by seq and messages() iterates every page in order', async () => {
  const chat = fresh();
  const batch = Array.from({ length: 25 }, (_, i) => ({ role: 'user', content: `m${i + 1}` }));
  await chat.addMessages(batch);
  const page = await chat.getMessages({ after: 10, limit: 10 });
  assert.deepEqual(page.messages.map((m) => m.seq), [11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
  assert.equal(page.total, 25);
  assert.equal(page.nextAfter, 20);
  assert.equal(page.hasMore, true);
  const all = [];
  for await (const m of chat.messages({ pageSize: 7 })) all.push(m.content);
  assert.deepEqual(all, batch.map((m) => m.content));
  assert.deepEqual(await fresh().getMessages(), { messages: [], version: 0, total: 0, hasMore: false });
});

test('getMessages with wait answers when a later message is appended', { timeout: 30000 }, async () => {
  const chat = fresh();
  await chat.addMessage({ role: 'user', content: 'first' });
  const waiting = chat.getMessages({ after: 1, wait: '30s' });
  await new Promise((r) => setTimeout(r, 200));
  await chat.addMessage({ role: 'assistant', content: 'second' });
  const page = await waiting;
  assert.deepEqual(page.messages.map((m) => m.content), ['second']);
});

test('the pendingMatch methods set, read and clear the pendingMatch field', async () => {
  const chat = fresh();
  assert.equal(await chat.pendingMatch(), undefined);
  const set = await chat.setPendingMatch({ flight: 'TP545', price: 129 });
  assert.deepEqual(set.value, { flight: 'TP545', price: 129 });
  assert.deepEqual(await chat.pendingMatch(), { flight: 'TP545', price: 129 });
  assert.deepEqual((await chat.getFields()).pendingMatch, { flight: 'TP545', price: 129 });
  assert.equal(await chat.clearPendingMatch(), true);
  assert.equal(await chat.pendingMatch(), undefined);
  assert.equal(await chat.clearPendingMatch(), false);
});

test('the field methods set, read and delete one field', async () => {
  const chat = fresh();
  await chat.setField('bookingInfo', { ref: 'ABC123' });
  assert.deepEqual(await chat.getField('bookingInfo'), { ref: 'ABC123' });
  assert.deepEqual(await chat.getFields(), { bookingInfo: { ref: 'ABC123' } });
  assert.equal(await chat.deleteField('bookingInfo'), true);
  assert.equal(await chat.getField('bookingInfo'), undefined);
  assert.equal(await chat.deleteField('bookingInfo'), false);
});

test('a write with a stale ifMatch fails with 412 version_mismatch, carries the current version and changes nothing', async () => {
  const chat = fresh();
  const v1 = (await chat.updateState({ step: 'search' })).version;
  const v2 = (await chat.updateState({ step: 'dates' })).version;
  const err = await chat.updateState({ step: 'confirm' }, { ifMatch: v1 }).catch((e) => e);
  assert.ok(err instanceof SessiondError);
  assert.equal(err.status, 412);
  assert.equal(err.code, 'version_mismatch');
  assert.equal(err.version, v2);
  assert.equal((await chat.getState()).step, 'dates');
  assert.equal((await chat.updateState({ step: 'confirm' }, { ifMatch: v2 })).step, 'confirm');
});

test('ifMatch 0 creates a session only if it does not exist yet', async () => {
  const chat = fresh();
  await chat.updateState({ owner: 'a' }, { ifMatch: 0 });
  await assert.rejects(chat.updateState({ owner: 'b' }, { ifMatch: 0 }), { code: 'version_mismatch' });
  assert.equal((await chat.getState()).owner, 'a');
});

test('concurrent modifyState calls each apply exactly once', async () => {
  const chat = fresh();
  const bump = () => chat.modifyState((s) => ({ counter: (s.counter ?? 0) + 1 }), { attempts: 50 });
  await Promise.all(Array.from({ length: 8 }, bump));
  assert.equal((await chat.getState()).counter, 8);
});

test('delete removes the session and reports whether it existed', async () => {
  const chat = fresh();
  await chat.addMessage({ role: 'user', content: 'bye' });
  assert.equal(await chat.delete(), true);
  assert.equal((await chat.getState()).version, 0);
  assert.equal(await chat.delete(), false);
});

test('session ids and field names with every character sessiond allows round-trip through the URL', async () => {
  const chat = client.session(`user@example.com:${process.pid}.chat_1-a`);
  await chat.addMessage({ role: 'user', content: 'hi' });
  const name = "a b?#%ü!'()*$&+,;=:@~";
  await chat.setField(name, 1);
  const state = await chat.getState();
  assert.equal(state.id, chat.id);
  assert.equal(state[name], 1);
  assert.equal(await chat.getField(name), 1);
  assert.equal(await chat.deleteField(name), true);
  await assert.rejects(chat.setField('a/b', 1), TypeError, 'a name with a / is refused before it is sent');
  assert.deepEqual(await chat.getFields(), {});
  assert.equal((await chat.owner().catch((e) => e)).code, 'forbidden', 'owner needs the read scope');
});

test('bad input is refused with the API error code and changes nothing', async () => {
  const bad = client.session('not a valid id!');
  await assert.rejects(bad.getState(), { name: 'SessiondError', status: 400, code: 'invalid_session_id' });
  const chat = fresh();
  await assert.rejects(chat.updateState({ messages: [] }), { status: 400, code: 'messages_not_allowed' });
  await assert.rejects(chat.updateState({ version: 3 }), { status: 400, code: 'invalid_field_name' });
  await assert.rejects(chat.updateState([1, 2]), { status: 400, code: 'invalid_fields' });
  await assert.rejects(chat.addMessage({ role: 'user' }), { status: 400, code: 'invalid_message' });
  await assert.rejects(chat.getMessages({ limit: 5000 }), { status: 400, code: 'invalid_limit' });
  await assert.rejects(chat.getState({ consistency: 'eventual' }), { status: 400, code: 'invalid_consistency' });
  assert.equal((await chat.getState()).version, 0);
});

test('the bearer token decides: none is 401 unauthorized, a token without the route\'s scope 403 forbidden', async () => {
  const chat = fresh();
  await chat.updateState({ step: 'search' });
  const anonymous = new ChatSessionClient(chat.id, { baseUrls: [node.url] });
  await assert.rejects(anonymous.getState(), { status: 401, code: 'unauthorized' });
  const reader = new ChatSessionClient(chat.id, { baseUrls: [node.url], token: TOKENS.read });
  await assert.rejects(reader.getState(), { status: 403, code: 'forbidden' });
  await assert.rejects(chat.owner(), { status: 403, code: 'forbidden' });
  let calls = 0;
  const rotating = new ChatSessionClient(chat.id, { baseUrls: [node.url], token: () => (calls++, TOKENS.data) });
  assert.equal((await rotating.getState()).step, 'search');
  await rotating.updateState({ step: 'dates' });
  assert.equal(calls, 2, 'a token function is asked on every request');
  assert.equal((await chat.getState()).step, 'dates');
});

test('owner, cluster and the session list answer with a token of the read scope', async () => {
  const chat = fresh();
  await chat.addMessage({ role: 'user', content: 'hi' });
  const ops = new SessiondClient({ baseUrls: [node.url], token: TOKENS.read });
  const owner = await ops.owner(chat.id);
  assert.equal(owner.session, chat.id);
  assert.equal(owner.leader, 'js1');
  assert.deepEqual(owner.replicas, ['js1']);
  const ids = [];
  for await (const s of ops.sessions({ prefix: `js-${process.pid}-`, pageSize: 2 })) ids.push(s.id);
  assert.ok(ids.includes(chat.id));
  assert.deepEqual(ids, [...ids].sort());
  assert.equal((await ops.cluster()).shardCount, 4);
});

test('the Next.js messages route of the README stores a browser\'s message once per Idempotency-Key and passes errors on', async () => {
  process.env.SESSIOND_URLS = node.url;
  process.env.SESSIOND_TOKEN = TOKENS.data;
  const route = await import('./examples/nextjs-messages-route.js');
  const id = `js-${process.pid}-route`;
  const post = (body, headers = {}) => route.POST(new Request(`http://app/api/chat/session/${id}/messages`,
    { method: 'POST', body, headers }), { params: { id } });
  const turn = JSON.stringify({ role: 'user', content: 'Find me a flight to Lisbon' });
  const first = await post(turn, { 'Idempotency-Key': 'browser-turn-1' });
  assert.equal(first.status, 201);
  const stored = await first.json();
  assert.equal(stored.id, 'browser-turn-1');
  assert.deepEqual(await (await post(turn, { 'Idempotency-Key': 'browser-turn-1' })).json(), stored);
  const page = await (await route.GET(new Request(`http://app/api/chat/session/${id}/messages?after=0`), { params: { id } })).json();
  assert.deepEqual(page.messages, [stored]);
  for (const [body, status, code] of [['{', 400, 'invalid_json'], ['null', 400, 'invalid_message'],
    ['"text"', 400, 'invalid_message'], ['{"role":"user"}', 400, 'invalid_message']]) {
    const res = await post(body);
    assert.equal(res.status, status, body);
    assert.equal((await res.json()).error.code, code, body);
  }
  assert.equal((await client.session(id).getState()).messages.length, 1);
});
