// What needs no node: the declarations name exactly what the module
// exports, and the Server-Sent Events parser follows the HTML standard.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import * as sessiond from './sessiond.mjs';

const declarations = readFileSync(new URL('./sessiond.d.mts', import.meta.url), 'utf8');

test('sessiond.d.mts declares every export and every public method of the module, and nothing else', () => {
  const declared = [...declarations.matchAll(/^export (?:class|function) (\w+)/gm)].map((m) => m[1]).sort();
  assert.deepEqual(declared, Object.keys(sessiond).sort());
  for (const [, name, body] of declarations.matchAll(/^export class (\w+)[^{]*\{\n([\s\S]*?)^\}/gm)) {
    const methods = [...body.matchAll(/^ {2}(\w+)(?:<[^>]*>)?\(/gm)].map((m) => m[1]).filter((m) => m !== 'constructor');
    const getters = [...body.matchAll(/^ {2}readonly (\w+): boolean;/gm)].map((m) => m[1])
      .filter((g) => Object.getOwnPropertyDescriptor(sessiond[name].prototype, g)?.get);
    const runtime = Object.getOwnPropertyNames(sessiond[name].prototype).filter((m) => m !== 'constructor');
    assert.deepEqual([...methods, ...getters].sort(), runtime.sort(), name);
  }
});

// events parses text delivered in the given chunks.
async function events(...chunks) {
  const body = new ReadableStream({
    start(c) {
      for (const s of chunks) c.enqueue(new TextEncoder().encode(s));
      c.close();
    },
  });
  const out = [];
  for await (const ev of sessiond.parseEvents(body)) out.push(ev);
  return out;
}

test('parseEvents reads events split anywhere across chunks, with any line ending', async () => {
  const text = 'id: 12\nevent: snapshot\ndata: {"a":1}\n\n: keepalive\n\nid: 13:2\r\nevent: message\r\ndata: {"seq":2}\r\n\r\n'
    + 'event: resume\rdata: {"reason":"drain"}\r\r';
  const want = [{ type: 'snapshot', id: '12', data: '{"a":1}' }, { type: 'message', id: '13:2', data: '{"seq":2}' },
    { type: 'resume', id: undefined, data: '{"reason":"drain"}' }];
  assert.deepEqual(await events(text), want);
  for (let cut = 1; cut < text.length; cut++) {
    assert.deepEqual(await events(text.slice(0, cut), text.slice(cut)), want, `cut at ${cut}`);
  }
});

test('parseEvents joins data lines, takes a field without a colon as empty and skips events without data', async () => {
  assert.deepEqual(await events('data: one\ndata:two\ndata\n\nevent: x\nid: 7\n\n', 'data: unterminated'),
    [{ type: 'message', id: undefined, data: 'one\ntwo\n' }]);
  assert.deepEqual(await events('id: bad\0id\ndata: d\n\n'), [{ type: 'message', id: undefined, data: 'd' }]);
});
