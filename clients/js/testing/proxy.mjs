// Test support: an HTTP proxy in front of a real node that injects the
// failures a client meets in production: a node that refuses (503
// overloaded), a write whose outcome the node could not learn (applied,
// then 503 outcome_unknown), a connection that breaks after the request
// was sent, a node that never answers, and change streams cut or stalled
// mid-way.

import { createServer, request } from 'node:http';

/**
 * startProxy forwards every request to target. fail(method, kind) makes
 * the next request of that method fail as kind: 'overloaded' (not
 * forwarded), 'hang' (never answered), 'outcome_unknown' or 'reset'
 * (forwarded, its answer replaced).
 */
export async function startProxy(target) {
  const faults = [];
  const streams = new Set();
  const seen = [];
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    seen.push({ method: req.method, path: req.url, body: body.toString(), lastEventId: req.headers['last-event-id'] });
    const i = faults.findIndex((f) => f.method === req.method);
    const fault = i >= 0 ? faults.splice(i, 1)[0] : undefined;
    if (fault?.kind === 'hang') return; // neither forwarded nor answered
    if (fault?.kind === 'overloaded') {
      res.writeHead(503, { 'Content-Type': 'application/json', 'Retry-After': '1' });
      res.end('{"error":{"code":"overloaded","message":"injected by the test proxy"}}\n');
      return;
    }
    const up = request(target + req.url, { method: req.method, headers: req.headers }, (upRes) => {
      if (fault) {
        upRes.resume();
        upRes.on('end', () => {
          if (fault.kind === 'reset') {
            req.socket.destroy();
            return;
          }
          res.writeHead(503, { 'Content-Type': 'application/json', 'Retry-After': '1' });
          res.end('{"error":{"code":"outcome_unknown","message":"injected by the test proxy after forwarding"}}\n');
        });
        return;
      }
      res.writeHead(upRes.statusCode, upRes.headers);
      if (upRes.headers['content-type'] === 'text/event-stream') {
        // Open until the client closes it (or cutStreams does).
        const s = { req, res, upRes };
        streams.add(s);
        res.on('close', () => {
          streams.delete(s);
          upRes.destroy();
        });
      }
      upRes.pipe(res);
    });
    up.on('error', () => req.socket.destroy());
    up.end(body);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    seen,
    fail(method, kind) { faults.push({ method, kind }); },
    /** cutStreams breaks every change stream passing through, as a dying node would. */
    cutStreams() {
      const n = streams.size;
      for (const s of streams) {
        s.upRes.destroy();
        s.req.socket.destroy();
      }
      return n;
    },
    /** stallStreams stops passing the change streams on without closing them, as a node cut off by the network. */
    stallStreams() {
      for (const s of streams) {
        s.upRes.unpipe(s.res);
        s.upRes.pause();
      }
      return streams.size;
    },
    openStreams: () => streams.size,
    close() {
      server.closeAllConnections();
      return new Promise((r) => server.close(r));
    },
  };
}
