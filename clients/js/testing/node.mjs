// Test support: a real sessiond node, built from this repository (or
// SESSIOND_BIN), on free loopback ports with a data directory of its own.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, openSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(fileURLToPath(import.meta.url), '../../../..');

/** The tokens the node accepts, by scope. */
export const TOKENS = {
  data: 'data-token-for-the-js-client-tests',
  read: 'read-token-for-the-js-client-tests',
  admin: 'admin-token-for-the-js-client-tests',
};

/** A loopback port nothing listens on right now. */
export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

function binary(dir) {
  if (process.env.SESSIOND_BIN) return process.env.SESSIOND_BIN;
  const bin = join(dir, 'sessiond');
  execFileSync('go', ['build', '-o', bin, './cmd/sessiond'], { cwd: repoRoot, stdio: 'inherit' });
  return bin;
}

/**
 * startNode starts one sessiond with tokens on and waits until /readyz
 * answers 200. stop() kills it and deletes its directory.
 */
export async function startNode({ readyTimeoutMs = 60000 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sessiond-js-'));
  const bin = binary(dir);
  const tokens = join(dir, 'tokens');
  writeFileSync(tokens, Object.entries(TOKENS).map(([scope, t]) => `${scope} ${t}\n`).join(''), { mode: 0o600 });
  const [http, raft, gossip] = [await freePort(), await freePort(), await freePort()];
  const logFile = join(dir, 'sessiond.log');
  const log = openSync(logFile, 'w');
  const proc = spawn(bin, ['--node-id', 'js1', '--data-dir', join(dir, 'data'), '--shards', '4',
    '--http-addr', `127.0.0.1:${http}`, '--raft-addr', `127.0.0.1:${raft}`, '--gossip-addr', `127.0.0.1:${gossip}`,
    '--token-file', tokens], { stdio: ['ignore', log, log] });
  closeSync(log);
  const exited = new Promise((res) => proc.once('exit', res));
  const kill = () => proc.kill('SIGKILL');
  process.once('exit', kill);
  const url = `http://127.0.0.1:${http}`;
  const node = {
    url,
    log: () => readFileSync(logFile, 'utf8'),
    async stop() {
      process.removeListener('exit', kill);
      proc.kill('SIGTERM');
      const t = setTimeout(kill, 5000);
      await exited;
      clearTimeout(t);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`sessiond exited with ${proc.exitCode}:\n${node.log()}`);
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) return node;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      await node.stop();
      throw new Error(`sessiond not ready within ${readyTimeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
