// Compiled by `tsc -p clients/js` (never run): every call a TypeScript
// user makes must type-check against sessiond.d.mts.
import { ChatSessionClient, SessiondClient, SessiondError, etag, type WatchEvent, type Message } from './sessiond.mjs';

export async function everyCall(signal: AbortSignal): Promise<void> {
  const client = new SessiondClient({ baseUrls: ['http://127.0.0.1:8081', 'http://127.0.0.1:8082'], token: () => 'token', retries: 2 });
  const chat: ChatSessionClient = client.session('demo-1');
  const same = new ChatSessionClient('demo-1', { baseUrl: 'http://127.0.0.1:8081' });

  const state = await chat.getState({ consistency: 'stale', signal });
  const seqs: number[] = state.messages.map((m: Message) => m.seq);
  await chat.updateState({ step: 'search', bookingInfo: null }, { ifMatch: state.version });
  await chat.patchState({ lastSearchCriteria: { from: null } }, { ifMatch: etag(state.version) });
  await chat.modifyState((s) => (s.version === 0 ? { step: 'start' } : undefined), { attempts: 3 });
  const stored: Message = await chat.addMessage({ role: 'user', content: 'hi', meta: { lang: 'en' } }, { idempotencyKey: 'turn-1' });
  const batch = await same.addMessages([{ id: 'a', role: 'user', content: 'x' }], { ifMatch: 0 });
  const page = await chat.getMessages({ after: stored.seq, limit: 10, wait: '30s' });
  const next: number | undefined = page.hasMore ? page.nextAfter : undefined;
  for await (const m of chat.messages({ after: 0, pageSize: 100 })) console.log(m.content);
  const fields = await chat.getFields();
  await chat.setField('bookingInfo', { ref: 'ABC123' });
  const removed: boolean = await chat.deleteField('bookingInfo');
  await chat.setPendingMatch({ flight: 'TP545', price: 129 });
  const match = await chat.pendingMatch();
  const cleared: boolean = await chat.clearPendingMatch({ ifMatch: batch.version });
  const owner = await chat.owner();
  const deleted: boolean = await chat.delete();
  console.log(seqs, next, fields, removed, match, cleared, owner.leader, deleted);

  for await (const ev of chat.watch({ after: '12:3', signal })) {
    const e: WatchEvent = ev;
    if (e.type === 'message') console.log(e.data.seq, e.data.version);
    if (e.type === 'snapshot' && e.data) console.log(e.data.messages.length);
    if (e.type === 'fields') console.log(e.data.fields.pendingMatch);
  }
  for await (const s of client.sessions({ prefix: 'demo-', pageSize: 50 })) console.log(s.id, s.messageCount);
  const list = await client.listSessions({ after: 'demo-1', limit: 2 });
  const res = await client.request<{ status: string }>('GET', '/readyz');
  console.log(list.next, res.body.status, client.baseUrls[client.current]);

  try {
    await chat.updateState({ step: 'confirm' });
  } catch (err) {
    if (err instanceof SessiondError && (err.outcomeUnknown || err.code === 'version_mismatch')) {
      console.log(err.status, err.retryAfter, err.node, err.version);
    }
  }
}
