// The client against a real three-node cluster: a node that drains ends
// its change streams with resume and leaves; the client follows the
// stream onto another node and sends its requests to the nodes left.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { SessiondClient } from './sessiond.mjs';
import { startCluster, TOKENS } from './testing/node.mjs';

let nodes = [];
before(async () => {
  nodes = await startCluster({ nodes: 3 });
});
after(() => Promise.all(nodes.map((n) => n.stop())));

test('a watch and the requests of one client survive the drain of the node they used: every message once, in order', { timeout: 180000 }, async () => {
  const client = new SessiondClient({ baseUrls: nodes.map((n) => n.url), token: TOKENS.data, minDelayMs: 20 });
  const writer = new SessiondClient({ baseUrls: [nodes[1].url, nodes[2].url], token: TOKENS.data });
  const id = `cluster-${process.pid}`;
  await writer.session(id).addMessage({ role: 'user', content: 'm1' });
  let drained;
  const contents = [];
  for await (const ev of client.session(id).watch()) {
    if (ev.type === 'snapshot') {
      contents.push(...ev.data.messages.map((m) => m.content));
      // The stream is on nodes[0]: drain it while the session is written,
      // and write more once it has gone.
      drained = nodes[0].stop();
      for (let i = 2; i <= 3; i++) await writer.session(id).addMessage({ role: 'user', content: `m${i}` });
      await drained;
      for (let i = 4; i <= 6; i++) await writer.session(id).addMessage({ role: 'user', content: `m${i}` });
      continue;
    }
    contents.push(ev.data.content);
    if (ev.data.content === 'm6') break;
  }
  await drained;
  assert.deepEqual(contents, ['m1', 'm2', 'm3', 'm4', 'm5', 'm6']);
  assert.notEqual(client.current, 0, 'the stream moved to another node');
  const chat = client.session(id);
  await chat.updateState({ step: 'after-drain' });
  await chat.addMessage({ role: 'user', content: 'm7' });
  const state = await chat.getState();
  assert.equal(state.step, 'after-drain');
  assert.equal(state.messages.length, 7);
});
