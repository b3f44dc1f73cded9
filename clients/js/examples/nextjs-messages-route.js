// A Next.js API route, app/api/chat/session/[id]/messages/route.js, that
// stores a chat app's messages in sessiond. The browser posts
// {role, content} to /api/chat/session/{id}/messages as it did when the
// route called a Durable Object; an Idempotency-Key header from the
// browser makes its retries safe end to end.
//
// In an app, import from '@sessiond/client' (npm install path/to/clients/js)
// or from a copy of sessiond.mjs.
import { SessiondClient, SessiondError } from '../sessiond.mjs';

// One client per server process: it keeps connections open and remembers
// which node answered last.
const sessiond = new SessiondClient({
  baseUrls: process.env.SESSIOND_URLS ?? 'http://127.0.0.1:8080', // comma-separated nodes
  token: process.env.SESSIOND_TOKEN, // a token of the data scope, when the cluster has tokens
});

/**
 * @param {Request} req
 * @param {{ params: { id: string } }} ctx
 */
export async function POST(req, { params }) {
  let message;
  try {
    message = await req.json();
  } catch {
    return json({ error: { code: 'invalid_json', message: 'request body is not valid JSON' } }, 400);
  }
  try {
    const chat = sessiond.session(params.id);
    const stored = await chat.addMessage(message, { idempotencyKey: req.headers.get('Idempotency-Key') ?? undefined });
    return json(stored, 201);
  } catch (err) {
    return failure(err);
  }
}

/**
 * The messages after ?after= (a seq), a page at a time.
 * @param {Request} req
 * @param {{ params: { id: string } }} ctx
 */
export async function GET(req, { params }) {
  const after = Number(new URL(req.url).searchParams.get('after') ?? 0);
  try {
    return json(await sessiond.session(params.id).getMessages({ after }), 200);
  } catch (err) {
    return failure(err);
  }
}

// failure passes sessiond's error on with its status and code; no answer
// at all (status 0) is a 503, so the browser retries with the same key.
/** @param {unknown} err */
function failure(err) {
  if (!(err instanceof SessiondError)) throw err;
  return json({ error: { code: err.code, message: err.message } }, err.status || 503);
}

/** @param {unknown} body @param {number} status */
function json(body, status) {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}
