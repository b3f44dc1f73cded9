// The client's retries, failover and change streams against a real node,
// with a proxy in front of it that injects refusals, unknown outcomes,
// broken connections and cut streams.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { SessiondClient } from './sessiond.mjs';
import { startNode, freePort, TOKENS } from './testing/node.mjs';
import { startProxy } from './testing/proxy.mjs';

let node;
let proxy;
let proxy2;
let direct;
before(async () => {
  node = await startNode();
  proxy = await startProxy(node.url);
  proxy2 = await startProxy(node.url);
  direct = new SessiondClient({ baseUrls: [node.url], token: TOKENS.data });
});
after(async () => {
  await proxy?.close();
  await proxy2?.close();
  await node?.stop();
});

let n = 0;
const freshID = () => `rs-${process.pid}-${++n}`;
const viaProxy = (id, options = {}) =>
  new SessiondClient({ baseUrls: [proxy.url], token: TOKENS.data, minDelayMs: 10, ...options }).session(id);
const requests = (p, method, id) => p.seen.filter((r) => r.method === method && r.path.includes(`/${id}`));

test('a node that refuses connections is skipped, for writes too, and the next one is used from then on', async () => {
  const dead = `http://127.0.0.1:${await freePort()}`;
  const client = new SessiondClient({ baseUrls: [dead, node.url], token: TOKENS.data, minDelayMs: 10 });
  const chat = client.session(freshID());
  await chat.updateState({ step: 'search' });
  assert.equal(client.current, 1);
  await chat.addMessage({ role: 'user', content: 'hi' });
  const state = await chat.getState();
  assert.equal(state.step, 'search');
  assert.equal(state.messages.length, 1);
});

test('no node reachable fails with unreachable after the retries', async () => {
  const dead = [`http://127.0.0.1:${await freePort()}`, `http://127.0.0.1:${await freePort()}`];
  const chat = new SessiondClient({ baseUrls: dead, retries: 2, minDelayMs: 1 }).session(freshID());
  await assert.rejects(chat.updateState({ a: 1 }), { name: 'SessiondError', status: 0, code: 'unreachable' });
});

test('a node that does not answer in timeoutMs: a read moves on to the next node, a write fails as outcome_unknown', async () => {
  const id = freshID();
  await direct.session(id).updateState({ step: 'search' });
  const client = new SessiondClient({ baseUrls: [proxy.url, node.url], token: TOKENS.data, timeoutMs: 300, minDelayMs: 10 });
  proxy.fail('GET', 'hang');
  assert.equal((await client.session(id).getState()).step, 'search');
  assert.equal(client.current, 1);
  proxy.fail('PUT', 'hang');
  const err = await viaProxy(id, { timeoutMs: 300 }).updateState({ step: 'dates' }).catch((e) => e);
  assert.equal(err.code, 'outcome_unknown');
  assert.match(err.message, /no answer within 300 ms/);
  assert.equal(requests(proxy, 'PUT', id).length, 1);
});

test('a blocking read may take its whole wait, beyond timeoutMs, in one request', { timeout: 30000 }, async () => {
  const id = freshID();
  await direct.session(id).addMessage({ role: 'user', content: 'first' });
  const waiting = viaProxy(id, { timeoutMs: 300 }).getMessages({ after: 1, wait: '20s' });
  await new Promise((r) => setTimeout(r, 1000));
  await direct.session(id).addMessage({ role: 'assistant', content: 'second' });
  assert.deepEqual((await waiting).messages.map((m) => m.content), ['second']);
  assert.equal(requests(proxy, 'GET', id).length, 1);
});

test('503 overloaded (not applied) is retried and the write applied once', async () => {
  const id = freshID();
  proxy.fail('PUT', 'overloaded');
  const state = await viaProxy(id).updateState({ step: 'search' });
  assert.equal(state.step, 'search');
  assert.equal(requests(proxy, 'PUT', id).length, 2);
});

test('a PUT answered outcome_unknown is not sent again: the error says the outcome is unknown', async () => {
  const id = freshID();
  proxy.fail('PUT', 'outcome_unknown');
  const err = await viaProxy(id).updateState({ step: 'search' }).catch((e) => e);
  assert.equal(err.name, 'SessiondError');
  assert.equal(err.status, 503);
  assert.equal(err.code, 'outcome_unknown');
  assert.equal(err.outcomeUnknown, true);
  assert.equal(requests(proxy, 'PUT', id).length, 1);
  assert.equal((await direct.session(id).getState()).step, 'search', 'the proxy forwarded it: it was applied');
});

test('a PUT, PATCH or DELETE whose connection breaks after it was sent is not sent again', async () => {
  const id = freshID();
  const chat = viaProxy(id);
  for (const [method, write] of [['PUT', () => chat.updateState({ a: 1 })], ['PATCH', () => chat.patchState({ b: 2 })],
    ['DELETE', () => chat.delete()]]) {
    proxy.fail(method, 'reset');
    await assert.rejects(write(), { status: 0, code: 'outcome_unknown' }, method);
    assert.equal(requests(proxy, method, id).length, 1, method);
  }
  assert.equal((await direct.session(id).getState()).version, 0, 'the DELETE went through');
});

test('an append is retried after outcome_unknown and a broken connection with the same id, and stored once', async () => {
  const id = freshID();
  proxy.fail('POST', 'outcome_unknown');
  proxy.fail('POST', 'reset');
  const stored = await viaProxy(id).addMessage({ role: 'user', content: 'Find me a flight to Lisbon' });
  const posts = requests(proxy, 'POST', id);
  assert.equal(posts.length, 3);
  assert.equal(new Set(posts.map((p) => p.body)).size, 1, 'every attempt carries the same message id');
  const { messages } = await direct.session(id).getState();
  assert.deepEqual(messages.map((m) => [m.id, m.content]), [[stored.id, 'Find me a flight to Lisbon']]);
});

test('a conditional append is not retried once it may have been applied', async () => {
  const id = freshID();
  proxy.fail('POST', 'outcome_unknown');
  await assert.rejects(viaProxy(id).addMessage({ role: 'user', content: 'hi' }, { ifMatch: 0 }), { code: 'outcome_unknown' });
  assert.equal(requests(proxy, 'POST', id).length, 1);
});

// collect reads events from a watch until done(events) holds.
async function collect(stream, done, onEvent = () => {}) {
  const events = [];
  for await (const ev of stream) {
    events.push(ev);
    await onEvent(ev, events);
    if (done(events)) break;
  }
  return events;
}

test('watch yields a snapshot, then every change in order, then the deletion', { timeout: 30000 }, async () => {
  const id = freshID();
  const chat = direct.session(id);
  await chat.addMessage({ role: 'user', content: 'one' });
  const events = await collect(chat.watch(), (evs) => evs.at(-1).type === 'deleted', async (ev) => {
    if (ev.type !== 'snapshot') return;
    await chat.addMessages([{ role: 'assistant', content: 'two' }, { role: 'user', content: 'three' }]);
    await chat.setPendingMatch({ flight: 'TP545' });
    await chat.delete();
  });
  assert.deepEqual(events.map((e) => e.type), ['snapshot', 'message', 'message', 'fields', 'deleted']);
  assert.deepEqual(events[0].data.messages.map((m) => m.content), ['one']);
  assert.deepEqual(events.slice(1, 3).map((e) => [e.data.seq, e.data.content]), [[2, 'two'], [3, 'three']]);
  assert.deepEqual(events[3].data.fields, { pendingMatch: { flight: 'TP545' } });
  const versions = events.map((e) => Number(e.id.split(':')[0]));
  assert.deepEqual(versions, [...versions].sort((a, b) => a - b));
});

test('watch after a version yields only the changes after it, without a snapshot', { timeout: 30000 }, async () => {
  const chat = direct.session(freshID());
  const { version } = await chat.updateState({ step: 'search' });
  await chat.addMessage({ role: 'user', content: 'later' });
  const events = await collect(chat.watch({ after: version }), (evs) => evs.length === 1);
  assert.equal(events[0].type, 'message');
  assert.equal(events[0].data.content, 'later');
});

test('a cut stream resumes on the next node from the last event id: every message once, in order', { timeout: 30000 }, async () => {
  const id = freshID();
  const writer = direct.session(id);
  await writer.addMessage({ role: 'user', content: 'm1' });
  const client = new SessiondClient({ baseUrls: [proxy.url, proxy2.url], token: TOKENS.data, minDelayMs: 10 });
  let cutAfter;
  const events = await collect(client.session(id).watch(), (evs) => evs.at(-1).data.content === 'm10', async (ev, evs) => {
    if (ev.type === 'snapshot') {
      for (let i = 2; i <= 5; i++) await writer.addMessage({ role: 'user', content: `m${i}` });
    }
    if (ev.data.content === 'm5') {
      cutAfter = ev.id;
      assert.equal(proxy.cutStreams(), 1);
      for (let i = 6; i <= 10; i++) await writer.addMessage({ role: 'user', content: `m${i}` });
    }
    assert.ok(evs.length < 20, 'no event repeats');
  });
  const contents = [...events[0].data.messages.map((m) => m.content), ...events.slice(1).map((e) => e.data.content)];
  assert.deepEqual(contents, Array.from({ length: 10 }, (_, i) => `m${i + 1}`));
  const resumed = requests(proxy2, 'GET', id).filter((r) => r.path.endsWith('/events'));
  assert.equal(resumed[0]?.lastEventId, cutAfter);
});

test('a stream that goes silent is replaced after streamIdleMs, resuming from the last event id', { timeout: 30000 }, async () => {
  const id = freshID();
  const writer = direct.session(id);
  await writer.addMessage({ role: 'user', content: 'm1' });
  const client = new SessiondClient({ baseUrls: [proxy.url, proxy2.url], token: TOKENS.data, minDelayMs: 10, streamIdleMs: 1500 });
  const contents = [];
  let snapshotID;
  for await (const ev of client.session(id).watch()) {
    if (ev.type === 'snapshot') {
      snapshotID = ev.id;
      contents.push(...ev.data.messages.map((m) => m.content));
      assert.equal(proxy.stallStreams(), 1);
      await writer.addMessage({ role: 'user', content: 'm2' });
      continue;
    }
    contents.push(ev.data.content);
    if (ev.data.content === 'm2') break;
  }
  assert.deepEqual(contents, ['m1', 'm2']);
  const resumed = [proxy, proxy2].flatMap((p) => requests(p, 'GET', id)).filter((r) => r.lastEventId !== undefined);
  assert.equal(resumed[0]?.lastEventId, snapshotID);
});

test('breaking out of a watch closes its stream', { timeout: 30000 }, async () => {
  const chat = new SessiondClient({ baseUrls: [proxy.url], token: TOKENS.data }).session(freshID());
  await collect(chat.watch(), () => true);
  for (let i = 0; proxy.openStreams() > 0; i++) {
    assert.ok(i < 100, 'the stream is still open');
    await new Promise((r) => setTimeout(r, 50));
  }
});

test('an aborted signal ends a watch that waits for changes', { timeout: 30000 }, async () => {
  const ctl = new AbortController();
  const chat = direct.session(freshID());
  const events = collect(chat.watch({ signal: ctl.signal }), () => false, (ev) => {
    if (ev.type === 'snapshot') ctl.abort();
  });
  assert.deepEqual((await events).map((e) => [e.type, e.data]), [['snapshot', null]]);
});
