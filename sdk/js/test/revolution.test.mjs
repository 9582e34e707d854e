// The Revolution facade: the document's snippets as written (only the host
// changed) and the camelCase mapping of all eight events, against the real
// server; the REST polling calls (whose read-model endpoints the server does
// not have yet) against a local fake.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, it } from 'node:test';

import { REVOLUTION_EVENT_TYPES, revolution, verifyWebhook } from '../dist/index.js';
import * as doc from '../dist-test/doc/snippets.js';
import { Receiver, Server, waitFor } from './helpers.mjs';

let server;
let key;
let rev;

before(async () => {
  server = await Server.start();
  ({ key } = await server.tenant({ profiles: ['revolution'] }));
  rev = revolution({ apiKey: key, baseUrl: server.url });
});
const streams = [];
after(async () => {
  await Promise.all(streams.map((s) => s.disconnect()));
  await server?.close();
});

/** rev.signal.connect, closed at the end even if a test fails half-way. */
const connect = (target) => {
  const s = rev.signal.connect(target);
  streams.push(s);
  return s;
};

/** Publishes through the native client on the same key. */
const publish = (type, channels, data) => rev.marquee.messages.publish({ type, channels, data });

const TS = 1745123456789;
// Every event with every field of the document's table, snake_case on the wire.
const EVENTS = {
  fan_checkin: [
    { fan_id: 'fan_0xc3f', event_id: 'evt_928xA', gate: 'MAIN', ts: TS },
    { fanId: 'fan_0xc3f', eventId: 'evt_928xA', gate: 'MAIN', ts: TS },
  ],
  drop_published: [
    { artist_id: 'khruangbin', drop_id: 'drp_1', title: 'Tour poster, signed', price_usd: 35, quantity: 200 },
    { artistId: 'khruangbin', dropId: 'drp_1', title: 'Tour poster, signed', priceUsd: 35, quantity: 200 },
  ],
  drop_claimed: [
    { fan_id: 'fan_1', drop_id: 'drp_1', order_id: 'ord_1', ts: TS },
    { fanId: 'fan_1', dropId: 'drp_1', orderId: 'ord_1', ts: TS },
  ],
  autograph_requested: [
    { fan_id: 'fan_2', artist_id: 'khruangbin', order_id: 'ord_2', delivery: { ship_to: 'Austin', tracking_no: null } },
    { fanId: 'fan_2', artistId: 'khruangbin', orderId: 'ord_2', delivery: { shipTo: 'Austin', trackingNo: null } },
  ],
  shoutout_requested: [
    { fan_id: 'fan_3', artist_id: 'khruangbin', order_id: 'ord_3', instructions: 'Say hi to Sam' },
    { fanId: 'fan_3', artistId: 'khruangbin', orderId: 'ord_3', instructions: 'Say hi to Sam' },
  ],
  signal_posted: [
    { artist_id: 'khruangbin', signal_id: 'sig_1', type: 'photo', body: 'Soundcheck done' },
    { artistId: 'khruangbin', signalId: 'sig_1', type: 'photo', body: 'Soundcheck done' },
  ],
  venue_opened: [
    { venue_id: 'stubbs-austin', event_id: 1042, capacity: 2000, ts: TS },
    { venueId: 'stubbs-austin', eventId: 1042, capacity: 2000, ts: TS },
  ],
  attendance_milestone: [
    { event_id: 1042, count: 500, threshold: 500, ts: TS },
    // capacity filled in from the venue_opened of the same event.
    { eventId: 1042, count: 500, threshold: 500, ts: TS, capacity: 2000 },
  ],
};

describe('Revolution stream', () => {
  it("the document's SDK helper snippet, as written", async () => {
    const lines = [];
    const log = console.log;
    console.log = (...a) => lines.push(a.join(' '));
    let stream;
    try {
      stream = doc.sdkHelper(doc.makeRev(key, server.url));
      streams.push(stream);
      await new Promise((r) => stream.native.once('subscribed', r));
      await publish('fan_checkin', ['venue:stubbs-austin'], { fan_id: 'fan_0xc3f', event_id: 'evt_928xA', gate: 'MAIN', ts: TS });
      await publish('drop_published', ['venue:stubbs-austin', 'artist:khruangbin'], EVENTS.drop_published[0]);
      await publish('attendance_milestone', ['venue:stubbs-austin'], { event_id: 'evt_928xA', count: 500, threshold: 500, capacity: 2000, ts: TS });
      await waitFor(() => lines.length === 3, { what: 'three log lines' });
    } finally {
      console.log = log;
      // Disconnect cleanly
      await stream?.disconnect();
    }
    assert.deepEqual(lines, [
      'Fan fan_0xc3f just walked in at gate MAIN',
      'New drop: Tour poster, signed — $35',
      '500 fans in — venue is 25% full',
    ]);
  });

  it('all eight events arrive camelCased, with their envelope, once each', async () => {
    const stream = connect({ venue: 'camel-venue', artist: 'khruangbin' });
    const got = {};
    const metas = {};
    const all = [];
    for (const type of REVOLUTION_EVENT_TYPES) {
      stream.on(type, (e, meta) => {
        (got[type] ??= []).push(e);
        metas[type] = meta;
      });
    }
    stream.on('event', (x) => all.push(x));
    let subscribed = 0;
    stream.native.on('subscribed', () => subscribed++);
    await waitFor(() => subscribed === 2, { what: 'both channels subscribed' });
    const ids = {};
    for (const type of REVOLUTION_EVENT_TYPES) {
      // On both channels: a Revolution client still sees each event once.
      const m = await publish(type, ['venue:camel-venue', 'artist:khruangbin'], EVENTS[type][0]);
      ids[type] = m.id;
    }
    await waitFor(() => all.length === 8, { what: 'eight events' });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(all.length, 8);
    for (const type of REVOLUTION_EVENT_TYPES) {
      assert.equal(got[type].length, 1, type);
      assert.deepEqual(got[type][0], EVENTS[type][1], type);
      assert.equal(metas[type].type, type);
      assert.equal(metas[type].id, ids[type]);
      assert.match(metas[type].cursor, /^[0-9A-Z]{13}$/);
      assert.ok(metas[type].occurredAt);
    }
    assert.deepEqual(all.map((x) => x.type), [...REVOLUTION_EVENT_TYPES]);
    // signal_posted keeps its own `type` field (the post's), apart from the event type.
    assert.equal(got.signal_posted[0].type, 'photo');
    await stream.disconnect();
  });

  it('connect({ artist }) streams the artist channel; connection events are exposed', async () => {
    const stream = connect({ artist: 'artist-only' });
    const seen = [];
    stream.on('connected', () => seen.push('connected'));
    stream.on('disconnected', (d) => seen.push(`disconnected ${d.code} ${d.willReconnect}`));
    const drops = [];
    stream.on('drop_claimed', (e) => drops.push(e));
    await new Promise((r) => stream.native.once('subscribed', r));
    assert.deepEqual(seen, ['connected']);
    await publish('drop_claimed', ['artist:artist-only'], EVENTS.drop_claimed[0]);
    await waitFor(() => drops.length === 1);
    assert.deepEqual(drops[0], EVENTS.drop_claimed[1]);
    await stream.disconnect();
    assert.deepEqual(seen, ['connected', 'disconnected 1000 false']);
    assert.throws(() => rev.signal.connect({}), TypeError);
  });
});

describe('Revolution webhooks (real server)', () => {
  it("the document's createWebhook snippet, then list / get / delete", async () => {
    const hook = await doc.registerWebhook(doc.makeRev(key, server.url));
    assert.match(hook.id, /^ep_/);
    assert.equal(hook.url, 'https://yourapp.com/webhooks/signal');
    assert.deepEqual(hook.events, ['fan_checkin', 'drop_claimed', 'autograph_requested']);
    assert.equal(hook.venueId, 'stubbs-austin');
    assert.ok(Date.parse(hook.createdAt));
    assert.equal(hook.secret, undefined, 'a supplied secret is not echoed');
    const list = await rev.developers.listWebhooks();
    assert.equal(list.object, 'list');
    assert.equal(list.hasMore, false);
    assert.ok(list.data.some((h) => h.id === hook.id && h.venueId === 'stubbs-austin'));
    assert.deepEqual(await rev.developers.getWebhook(hook.id), hook);
    const del = await rev.developers.deleteWebhook(hook.id);
    assert.equal(del.deleted, true);
    await assert.rejects(rev.developers.getWebhook(hook.id), { status: 404 });
    await assert.rejects(rev.developers.createWebhook({ url: 'https://x.example/h', events: ['fan_chekin'] }), {
      status: 400,
      param: 'events[0]',
    });
  });

  it('a real delivery verifies with the SDK and with the document verifier; tampering fails', async () => {
    const rx = await new Receiver().start();
    try {
      const hook = await rev.developers.createWebhook({ url: `${rx.url}/signal`, events: ['fan_checkin'], venueId: 'hook-venue', secret: 'whsec_xxxx' });
      const generated = await rev.developers.createWebhook({ url: `${rx.url}/generated`, venueId: 'hook-venue' });
      assert.match(generated.secret, /^whsec_/);
      const m = await publish('fan_checkin', ['venue:hook-venue'], EVENTS.fan_checkin[0]);
      const [req] = await rx.waitAt('/signal', 1);
      const [req2] = await rx.waitAt('/generated', 1);
      const sig = req.headers['x-revolution-signature'];
      assert.ok(doc.verifySignature(req.text, sig, 'whsec_xxxx'), "the document's verifier");
      const body = await verifyWebhook('revolution', req.body, req.headers, { secret: 'whsec_xxxx' });
      assert.equal(body.type, 'fan_checkin');
      assert.equal(body.id, `evt_${m.id.slice(4)}`);
      assert.deepEqual(body.payload, EVENTS.fan_checkin[0]);
      await verifyWebhook('revolution', req2.body, req2.headers, { secret: generated.secret });
      await assert.rejects(verifyWebhook('revolution', req.text.replace('MAIN', 'SIDE'), req.headers, { secret: 'whsec_xxxx' }), {
        reason: 'mismatch',
      });
      await assert.rejects(verifyWebhook('revolution', req.body, req.headers, { secret: generated.secret }), { reason: 'mismatch' });
      await rev.developers.deleteWebhook(hook.id);
      await rev.developers.deleteWebhook(generated.id);
    } finally {
      await rx.close();
    }
  });
});

describe('Revolution REST polling (paths and camelCase against a local fake; the real server behind it)', () => {
  let fake;
  let base;
  const calls = [];
  before(async () => {
    fake = createServer((req, res) => {
      calls.push({ url: req.url, key: req.headers['x-api-key'] });
      const u = new URL(req.url, 'http://x');
      let body;
      if (u.pathname === '/api/v1/signal/events/1042/checkins') {
        body = {
          object: 'list',
          data: [{ fan_id: 'fan_1', event_id: 1042, gate: 'MAIN', ts: TS, checked_in_at: '2026-05-15T02:01:00Z' }],
          has_more: true,
          next_cursor: '0000000000007',
        };
      } else if (u.pathname === '/api/v1/signal/artists/khruangbin/drops') {
        body = {
          object: 'list',
          data: [{ artist_id: 'khruangbin', drop_id: 'drp_1', title: 'Poster', price_usd: 35, quantity: 200, status: u.searchParams.get('status') }],
          has_more: false,
          next_cursor: null,
        };
      } else if (u.pathname === '/api/v1/signal/venues/stubbs-austin/live') {
        body = {
          venue_id: 'stubbs-austin',
          status: 'open',
          event_id: 1042,
          capacity: 2000,
          count: 500,
          percent: 25,
          gates: { MAIN: { count: 300 }, NORTH_DOOR: { count: 200 } },
          opened_at: '2026-05-15T01:30:00Z',
          last_checkin_at: '2026-05-15T02:01:00Z',
        };
      }
      res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body ?? { error: { code: 'not_found', message: 'No such route.' } }));
    });
    await new Promise((r) => fake.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${fake.address().port}`;
  });
  after(() => new Promise((r) => fake.close(r)));

  it("the document's REST polling snippet: paths, query and camelCased answers", async () => {
    const { checkins, drops, live } = await doc.restPolling(doc.makeRev('sk_live_test', base));
    const [c, d, v] = calls;
    assert.equal(c.key, 'sk_live_test');
    const cu = new URL(c.url, base);
    assert.equal(cu.pathname, '/api/v1/signal/events/1042/checkins');
    assert.equal(cu.searchParams.get('since'), '2026-05-15T02:00:00.000Z');
    assert.equal(d.url, '/api/v1/signal/artists/khruangbin/drops?status=active');
    assert.equal(v.url, '/api/v1/signal/venues/stubbs-austin/live');
    assert.deepEqual(checkins, {
      object: 'list',
      data: [{ fanId: 'fan_1', eventId: 1042, gate: 'MAIN', ts: TS, checkedInAt: '2026-05-15T02:01:00Z' }],
      hasMore: true,
      nextCursor: '0000000000007',
    });
    assert.deepEqual(drops.data, [{ artistId: 'khruangbin', dropId: 'drp_1', title: 'Poster', priceUsd: 35, quantity: 200, status: 'active' }]);
    assert.equal(drops.hasMore, false);
    assert.deepEqual(live, {
      venueId: 'stubbs-austin',
      status: 'open',
      eventId: 1042,
      capacity: 2000,
      count: 500,
      percent: 25,
      gates: { MAIN: { count: 300 }, NORTH_DOOR: { count: 200 } },
      openedAt: '2026-05-15T01:30:00Z',
      lastCheckinAt: '2026-05-15T02:01:00Z',
    });
    // The real server now serves these paths: a wrong key is a MarqueeApiError (401).
    await assert.rejects(revolution({ apiKey: 'k', baseUrl: server.url }).signal.venueStatus('x'), { status: 401 });
  });
});
