// Test support: real sessiond nodes, built from this repository (or
// SESSIOND_BIN), on free loopback ports with data directories of their own.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, openSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(fileURLToPath(import.meta.url), '../../../..');

/** The tokens the nodes accept, by scope. */
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

/** startNode starts a one-node cluster; see startCluster. */
export async function startNode(opts) {
  const [node] = await startCluster({ ...opts, nodes: 1 });
  return node;
}

/**
 * startCluster starts nodes that form one cluster (4 shards, tokens on) and
 * waits until each answers /readyz with 200. Each node has id, url, log()
 * and stop() (SIGTERM: it drains and exits; SIGKILL after 30 s); the
 * cluster's directory is deleted once every node has stopped.
 */
export async function startCluster({ nodes = 3, readyTimeoutMs = 60000 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sessiond-js-'));
  const bin = binary(dir);
  const tokens = join(dir, 'tokens');
  writeFileSync(tokens, Object.entries(TOKENS).map(([scope, t]) => `${scope} ${t}\n`).join(''), { mode: 0o600 });
  const ports = [];
  for (let i = 0; i < nodes; i++) ports.push({ http: await freePort(), raft: await freePort(), gossip: await freePort() });
  const peers = ports.map((p) => `127.0.0.1:${p.gossip}`).join(',');
  const started = ports.map((p, i) => spawnNode(bin, join(dir, `node${i + 1}`), `js${i + 1}`, p,
    ['--token-file', tokens, '--shards', '4', '--bootstrap-expect', String(nodes), ...(nodes > 1 ? ['--join', peers] : [])]));
  let running = started.length;
  for (const node of started) {
    const stop = node.stop;
    node.stop = async () => {
      await stop();
      if (--running === 0) rmSync(dir, { recursive: true, force: true });
    };
  }
  try {
    await Promise.all(started.map((node) => node.ready(readyTimeoutMs)));
  } catch (err) {
    await Promise.all(started.map((node) => node.stop()));
    throw err;
  }
  return started;
}

function spawnNode(bin, dir, id, ports, flags) {
  mkdirSync(dir);
  const logFile = join(dir, 'sessiond.log');
  const log = openSync(logFile, 'w');
  const proc = spawn(bin, ['--node-id', id, '--data-dir', join(dir, 'data'), '--http-addr', `127.0.0.1:${ports.http}`,
    '--raft-addr', `127.0.0.1:${ports.raft}`, '--gossip-addr', `127.0.0.1:${ports.gossip}`, ...flags], { stdio: ['ignore', log, log] });
  closeSync(log);
  const exited = new Promise((res) => proc.once('exit', res));
  const kill = () => proc.kill('SIGKILL');
  process.once('exit', kill);
  const url = `http://127.0.0.1:${ports.http}`;
  const logText = () => readFileSync(logFile, 'utf8');
  return {
    id,
    url,
    log: logText,
    async stop() {
      process.removeListener('exit', kill);
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(kill, 30000);
        await exited;
        clearTimeout(t);
      }
    },
    async ready(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (proc.exitCode !== null) throw new Error(`sessiond ${id} exited with ${proc.exitCode}:\n${logText()}`);
        try {
          if ((await fetch(`${url}/readyz`)).status === 200) return;
        } catch { /* not listening yet */ }
        if (Date.now() > deadline) throw new Error(`sessiond ${id} not ready within ${timeoutMs} ms:\n${logText()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}
