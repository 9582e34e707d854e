// The erasures API against the real server: create, follow to completion
// (progress), list, and what is left in the log.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Marquee, MarqueeApiError } from '../dist/index.js';
import { Server } from './helpers.mjs';

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

const batch = (n, channels, tag) =>
  mq.messages.publishBatch(Array.from({ length: n }, (_, i) => ({ type: 'fan_checkin', channels, data: { fan_id: `${tag}${i}` } })));

async function countOn(channel) {
  let n = 0;
  for await (const _m of mq.messages.iterate({ channel, limit: 100 })) n++;
  return n;
}

describe('erasures', () => {
  it('create with within, wait with progress, list; only the matching messages are gone', async () => {
    await batch(600, ['user:u1', 'event:e1'], 'a');
    await batch(20, ['user:u1', 'event:e2'], 'b');
    const e = await mq.erasures.create({ channel: 'user:u1', within: 'event:e1' });
    assert.equal(e.object, 'erasure');
    assert.match(e.id, /^era_/);
    assert.deepEqual([e.channel, e.within, e.messages_total], ['user:u1', 'event:e1', 600]);
    const seen = [];
    const done = await mq.erasures.wait(e.id, { intervalMs: 20, onProgress: (x) => seen.push(x) });
    assert.equal(done.status, 'completed');
    assert.equal(done.messages_erased, 600);
    assert.ok(Date.parse(done.completed_at) >= Date.parse(done.created_at));
    assert.deepEqual(seen.at(-1), done);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i].messages_erased >= seen[i - 1].messages_erased, 'progress only grows');
    assert.equal(await countOn('user:u1'), 20);
    assert.equal(await countOn('event:e1'), 0);

    const other = await mq.erasures.create({ channel: 'user:u2' });
    assert.deepEqual([other.within, other.messages_total], [null, 0]);
    const list = await mq.erasures.list({ limit: 1 });
    assert.deepEqual(list.data.map((x) => x.id), [other.id], 'newest first');
    assert.equal(list.has_more, true);
    const rest = await mq.erasures.list({ before: list.next_cursor });
    assert.deepEqual(rest.data.map((x) => x.id), [e.id]);
  });

  it('errors: a malformed channel is 400 naming it, an unknown erasure 404; wait stops on abort', async () => {
    const bad = await mq.erasures.create({ channel: 'not a channel' }).then(() => null, (x) => x);
    assert.ok(bad instanceof MarqueeApiError);
    assert.deepEqual([bad.status, bad.code, bad.param], [400, 'invalid_request', 'channel']);
    const missing = await mq.erasures.get('era_01JD0000000000000000000000').then(() => null, (x) => x);
    assert.deepEqual([missing?.status, missing?.code], [404, 'not_found']);
    // A running erasure: waiting for it can be cancelled.
    await batch(1000, ['user:big'], 'c');
    const e = await mq.erasures.create({ channel: 'user:big' });
    const ctrl = new AbortController();
    ctrl.abort(new Error('stop'));
    const waited = await mq.erasures.wait(e.id, { signal: ctrl.signal }).then(
      (x) => x,
      (x) => x,
    );
    // Either it was already complete at the first look, or the wait was cancelled.
    assert.ok(waited.status === 'completed' || waited.message === 'stop', String(waited));
    assert.equal((await mq.erasures.wait(e.id)).messages_erased, 1000);
  });
});
