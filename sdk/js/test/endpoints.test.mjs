// The endpoints (webhooks) API against the real server, with a local receiver.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Marquee, MarqueeApiError, verifyWebhook } from '../dist/index.js';
import { Receiver, Server, waitFor } from './helpers.mjs';

let server;
let mq;
let rx;

before(async () => {
  server = await Server.start({ args: ['--retry-schedule', '0s,1s,1s'] });
  const t = await server.tenant();
  mq = new Marquee({ apiKey: t.key, baseUrl: server.url });
  rx = await new Receiver().start();
});
after(async () => {
  await server?.close();
  await rx?.close();
});

describe('endpoints', () => {
  it('create, get, list, iterate, update, delete', async () => {
    const ep = await mq.endpoints.create({
      url: `${rx.url}/crud`,
      description: 'crud',
      types: ['order.*'],
      channels: ['venue:crud'],
    });
    assert.equal(ep.object, 'endpoint');
    assert.match(ep.id, /^ep_/);
    assert.match(ep.secret, /^whsec_/);
    assert.equal(ep.format, 'standard');
    const got = await mq.endpoints.get(ep.id);
    assert.equal(got.url, `${rx.url}/crud`);
    assert.equal(got.secret, undefined, 'the secret is shown once');
    const more = [];
    for (let i = 0; i < 3; i++) more.push(await mq.endpoints.create({ url: `${rx.url}/crud${i}` }));
    const page = await mq.endpoints.list({ limit: 2 });
    assert.equal(page.data.length, 2);
    assert.equal(page.has_more, true);
    const ids = [];
    for await (const e of mq.endpoints.iterate({ limit: 2 })) ids.push(e.id);
    for (const e of [ep, ...more]) assert.ok(ids.includes(e.id));
    const upd = await mq.endpoints.update(ep.id, { description: 'changed', enabled: false, rate_limit: 5 });
    assert.equal(upd.description, 'changed');
    assert.equal(upd.enabled, false);
    assert.equal(upd.rate_limit, 5);
    // A format with another secret scheme issues a new secret in the answer.
    const fmt = await mq.endpoints.update(ep.id, { format: 'eventium' });
    assert.equal(fmt.format, 'eventium');
    assert.match(fmt.secret, /^whsec_/);
    const del = await mq.endpoints.delete(ep.id);
    assert.equal(del.deleted, true);
    await assert.rejects(mq.endpoints.get(ep.id), (e) => e instanceof MarqueeApiError && e.status === 404);
    for (const e of more) await mq.endpoints.delete(e.id);
  });

  it('deliveries, attempts (per endpoint and per message), stats, resend', async () => {
    const ep = await mq.endpoints.create({ url: `${rx.url}/deliver`, channels: ['venue:deliver'] });
    const m = await mq.messages.publish({ type: 'order.completed', channels: ['venue:deliver'], data: { total: 12 } });
    const [req] = await rx.waitAt('/deliver', 1);
    const body = await verifyWebhook('standard', req.body, req.headers, { secret: ep.secret });
    assert.equal(body.id, m.id);
    const attempts = await waitFor(async () => {
      const a = await mq.endpoints.attempts(ep.id, { status: 'succeeded' });
      return a.data.length ? a : null;
    });
    assert.equal(attempts.data[0].status, 'succeeded');
    assert.equal(attempts.data[0].message_id, m.id);
    const byMessage = await mq.messages.attempts(m.id);
    assert.ok(byMessage.data.some((a) => a.endpoint_id === ep.id));
    const stats = await waitFor(async () => {
      const s = await mq.endpoints.stats(ep.id);
      return s.delivered >= 1 ? s : null;
    });
    assert.equal(stats.object, 'endpoint_stats');
    assert.equal(stats.endpoint_id, ep.id);
    const resent = await mq.messages.resend(m.id, { endpointId: ep.id });
    assert.equal(resent.queued, 1);
    const again = await rx.waitAt('/deliver', 2);
    assert.equal(JSON.parse(again[1].text).id, m.id);
    await mq.endpoints.delete(ep.id);
  });

  it('test, replay (and replayAll), recover, rotateSecret', async () => {
    const ep = await mq.endpoints.create({ url: `${rx.url}/ops`, channels: ['venue:ops'] });
    const test = await mq.endpoints.test(ep.id);
    assert.equal(test.object, 'attempt');
    assert.equal(test.status, 'succeeded');
    await rx.waitAt('/ops', 1);
    const since = new Date(Date.now() - 1000);
    const published = await mq.messages.publishBatch(
      Array.from({ length: 3 }, (_, i) => ({ type: 'order.completed', channels: ['venue:ops'], data: { i } })),
    );
    await rx.waitAt('/ops', 4);
    // Replay once the deliveries are settled (a replay of one still in flight merges with it).
    const settled = (n) =>
      waitFor(async () => {
        const st = await mq.endpoints.stats(ep.id);
        return st.pending === 0 && st.delivered >= n;
      }, { what: `${n} settled deliveries` });
    await settled(3);
    const r = await mq.endpoints.replay(ep.id, { since });
    assert.equal(r.object, 'replay');
    assert.equal(r.queued, 3);
    assert.equal(r.has_more, false);
    await rx.waitAt('/ops', 7);
    await settled(6);
    const n = await mq.endpoints.replayAll(ep.id, { after: published[0].cursor });
    assert.equal(n, 2);
    await rx.waitAt('/ops', 9);
    // Failed deliveries, then recover them.
    rx.status = 500;
    const failing = await mq.endpoints.create({ url: `${rx.url}/recover`, channels: ['venue:recover'], enabled: true });
    const t0 = new Date(Date.now() - 1000);
    await mq.messages.publish({ type: 'order.completed', channels: ['venue:recover'], data: {} });
    await waitFor(async () => (await mq.endpoints.attempts(failing.id, { status: 'failed' })).data.length >= 3, {
      timeout: 20_000,
      what: 'the retries to be exhausted',
    });
    await waitFor(async () => (await mq.endpoints.stats(failing.id)).failed >= 1, { timeout: 10_000, what: 'exhausted' });
    rx.status = 200;
    const rec = await mq.endpoints.recover(failing.id, { since: t0 });
    assert.equal(rec.object, 'recover');
    assert.equal(rec.queued, 1);
    await waitFor(async () => (await mq.endpoints.attempts(failing.id, { status: 'succeeded' })).data.length === 1, {
      what: 'the recovered delivery',
    });
    // Rotation: both secrets sign during the overlap (standard format).
    const rot = await mq.endpoints.rotateSecret(ep.id);
    assert.match(rot.secret, /^whsec_/);
    assert.notEqual(rot.secret, ep.secret);
    assert.ok(rot.previous_secret_expires_at);
    const before = rx.at('/ops').length;
    await mq.messages.publish({ type: 'order.completed', channels: ['venue:ops'], data: { rotated: true } });
    const [req] = (await rx.waitAt('/ops', before + 1)).slice(-1);
    assert.equal(req.headers['webhook-signature'].split(' ').length, 2);
    await verifyWebhook('standard', req.body, req.headers, { secret: ep.secret });
    await verifyWebhook('standard', req.body, req.headers, { secret: rot.secret });
  });
});
