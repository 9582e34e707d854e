// The native message API against the real server: publish, idempotency,
// batch, get, list by cursor, iterate, poll, errors.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Marquee, MarqueeApiError, MarqueeConnectionError } from '../dist/index.js';
import { Server, freePort } from './helpers.mjs';

let server;
let mq;

before(async () => {
  server = await Server.start();
  const t = await server.tenant();
  mq = new Marquee({ apiKey: t.key, baseUrl: server.url });
});
after(async () => {
  await server?.close();
});

const msg = (i, channel = 'venue:msgs') => ({ type: 'order.completed', channels: [channel], data: { i } });

describe('messages', () => {
  it('publish answers the stored message', async () => {
    const m = await mq.messages.publish({
      type: 'fan_checkin',
      channels: ['venue:stubbs-austin', 'event:1042'],
      data: { fan_id: 'fan_1', nested: { snake_case: true } },
      occurred_at: new Date('2026-05-14T21:00:00Z'),
    });
    assert.equal(m.object, 'message');
    assert.match(m.id, /^msg_/);
    assert.match(m.cursor, /^[0-9A-Z]{13}$/);
    assert.deepEqual(m.channels, ['venue:stubbs-austin', 'event:1042']);
    assert.deepEqual(m.data, { fan_id: 'fan_1', nested: { snake_case: true } }, 'native data is never rewritten');
    assert.equal(m.occurred_at, '2026-05-14T21:00:00Z');
    assert.equal(m.replayed, false);
    const got = await mq.messages.get(m.id);
    assert.deepEqual(got, { ...m });
  });

  it('an idempotency key replays the original; a different body conflicts', async () => {
    const a = await mq.messages.publish(msg(1), { idempotencyKey: 'order-42' });
    const b = await mq.messages.publish(msg(1), { idempotencyKey: 'order-42' });
    assert.equal(b.id, a.id);
    assert.equal(a.replayed, false);
    assert.equal(b.replayed, true);
    await assert.rejects(mq.messages.publish(msg(2), { idempotencyKey: 'order-42' }), (e) => {
      assert.ok(e instanceof MarqueeApiError);
      assert.equal(e.status, 409);
      assert.equal(e.code, 'conflict');
      return true;
    });
    // In the body too.
    const c = await mq.messages.publish({ ...msg(3), idempotency_key: 'body-key' });
    const d = await mq.messages.publish({ ...msg(3), idempotency_key: 'body-key' });
    assert.equal(c.id, d.id);
    assert.equal(d.replayed, true);
  });

  it('publishes without a key are distinct messages', async () => {
    const a = await mq.messages.publish(msg(7));
    const b = await mq.messages.publish(msg(7));
    assert.notEqual(a.id, b.id);
  });

  it('publishBatch commits all in order, with a batch idempotency key', async () => {
    const items = Array.from({ length: 5 }, (_, i) => msg(i, 'venue:batch'));
    const out = await mq.messages.publishBatch(items, { idempotencyKey: 'batch-1' });
    assert.equal(out.length, 5);
    assert.deepEqual(out.map((m) => m.data.i), [0, 1, 2, 3, 4]);
    const cursors = out.map((m) => m.cursor);
    assert.deepEqual([...cursors].sort(), cursors, 'commit order');
    const again = await mq.messages.publishBatch(items, { idempotencyKey: 'batch-1' });
    assert.deepEqual(again.map((m) => m.id), out.map((m) => m.id));
    assert.equal(again[0].replayed, true);
  });

  it('a batch is validated all or nothing, naming the item', async () => {
    const items = [msg(0, 'venue:atomic'), { type: 'Bad Type', channels: ['venue:atomic'], data: {} }];
    await assert.rejects(mq.messages.publishBatch(items), (e) => {
      assert.equal(e.status, 400);
      assert.equal(e.code, 'invalid_request');
      assert.match(e.param, /^messages\[1\]/);
      return true;
    });
    const page = await mq.messages.list({ channel: 'venue:atomic' });
    assert.equal(page.data.length, 0);
  });

  it('list pages by cursor; iterate follows next_cursor to the end', async () => {
    const ch = 'venue:paging';
    const published = await mq.messages.publishBatch(Array.from({ length: 23 }, (_, i) => msg(i, ch)));
    const p1 = await mq.messages.list({ channel: ch, limit: 10 });
    assert.equal(p1.object, 'list');
    assert.equal(p1.data.length, 10);
    assert.equal(p1.has_more, true);
    assert.equal(p1.next_cursor, p1.data[9].cursor);
    const p2 = await mq.messages.list({ channel: ch, limit: 10, after: p1.next_cursor });
    assert.equal(p2.data[0].data.i, 10);
    const all = [];
    for await (const m of mq.messages.iterate({ channel: ch, limit: 7 })) all.push(m.id);
    assert.deepEqual(all, published.map((m) => m.id));
    // From a cursor; with type + channel.
    const rest = [];
    for await (const m of mq.messages.iterate({ channel: ch, type: 'order.completed', after: published[19].cursor })) rest.push(m.data.i);
    assert.deepEqual(rest, [20, 21, 22]);
    // since bounds the receive time.
    const none = await mq.messages.list({ channel: ch, since: new Date(Date.now() + 60_000) });
    assert.equal(none.data.length, 0);
  });

  it('poll keeps following the cursor while publishes continue, and ends on abort', async () => {
    const ch = 'venue:poll';
    const first = await mq.messages.publish(msg(0, ch));
    const ctrl = new AbortController();
    const got = [];
    const done = (async () => {
      for await (const m of mq.messages.poll({ channel: ch, intervalMs: 50, signal: ctrl.signal })) {
        got.push(m.data.i);
        if (got.length === 6) ctrl.abort();
      }
    })();
    for (let i = 1; i < 6; i++) {
      await mq.messages.publish(msg(i, ch));
      await new Promise((r) => setTimeout(r, 30));
    }
    await done;
    assert.deepEqual(got, [0, 1, 2, 3, 4, 5]);
    assert.equal(first.data.i, 0);
  });

  it('errors carry status, code and param', async () => {
    await assert.rejects(mq.messages.publish({ type: 'x', channels: ['nochannel'], data: {} }), (e) => {
      assert.ok(e instanceof MarqueeApiError);
      assert.equal(e.status, 400);
      assert.equal(e.code, 'invalid_request');
      assert.equal(e.param, 'channels[0]');
      return true;
    });
    await assert.rejects(mq.messages.get('msg_01J0000000000000000000000'), { status: 404, code: 'not_found' });
    const bad = new Marquee({ apiKey: 'sk_live_nope', baseUrl: server.url });
    await assert.rejects(bad.messages.list(), { status: 401, code: 'invalid_api_key' });
    const down = new Marquee({ apiKey: 'k', baseUrl: `http://127.0.0.1:${await freePort()}`, maxRetries: 1 });
    await assert.rejects(down.messages.list(), (e) => e instanceof MarqueeConnectionError);
    assert.equal(await down.ping(), false);
    assert.equal(await mq.ping(), true);
  });

  it('a publish retried after a lost answer is stored once (the generated idempotency key)', async () => {
    // A fetch that drops the first answer, as a network failure after the commit would.
    let calls = 0;
    const lossy = async (url, init) => {
      const r = await fetch(url, init);
      if (calls++ === 0) throw new TypeError('fetch failed (simulated lost answer)');
      return r;
    };
    const client = new Marquee({ apiKey: mq.http.apiKey, baseUrl: server.url, fetch: lossy });
    const m = await client.messages.publish(msg(99, 'venue:retry'));
    assert.equal(m.replayed, true, 'the retry got the original');
    const page = await mq.messages.list({ channel: 'venue:retry' });
    assert.equal(page.data.length, 1);
    assert.equal(page.data[0].id, m.id);
  });
});
