// The Revolution facade against the real server: the document's snippets as
// written (only the host changed), the camelCase mapping of all eight events,
// webhooks, and the REST polling calls on data published through the native
// API (pagination, filters, typed errors).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { MarqueeApiError, MarqueeError, REVOLUTION_EVENT_TYPES, revolution, verifyWebhook } from '../dist/index.js';
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

describe('Revolution REST polling (real server)', () => {
  // A separate organization: its read models hold only what these tests publish.
  let rk;
  let rrev;
  let freeKey;
  const pub = (type, channels, data) => rrev.marquee.messages.publish({ type, channels, data });
  const SINCE = Date.parse('2026-05-15T02:00:00Z'); // the snippet's new Date('2026-05-14T21:00:00-05:00')
  let now;
  before(async () => {
    const t = await server.tenant({ profiles: ['revolution'], name: 'sdk-rest' });
    rk = t.key;
    rrev = revolution({ apiKey: rk, baseUrl: server.url });
    const k = await server.admin('POST', `/admin/v1/orgs/${t.org}/keys`, { tier: 'free' });
    freeKey = k.key;
    now = Date.now();
  });

  it("the document's REST polling snippet, as written, on data published through the native API", async () => {
    await pub('venue_opened', ['venue:stubbs-austin'], { venue_id: 'stubbs-austin', event_id: 1042, capacity: 2000, ts: now - 60_000 });
    // Before `since`: not listed (but counted at the venue).
    await pub('fan_checkin', ['venue:stubbs-austin'], { fan_id: 'fan_early', event_id: 1042, gate: 'MAIN', ts: SINCE - 1 });
    // Exactly at `since`: listed.
    await pub('fan_checkin', ['venue:stubbs-austin'], { fan_id: 'fan_a', event_id: 1042, gate: 'MAIN', ts: SINCE });
    const b = await pub('fan_checkin', ['venue:stubbs-austin'], { fan_id: 'fan_b', event_id: 1042, gate: 'north_door', ts: now - 2_000 });
    // An offline scanner's replay of the same scan counts nothing.
    await pub('fan_checkin', ['venue:stubbs-austin'], { fan_id: 'fan_b', event_id: 1042, gate: 'north_door', ts: now - 2_000 });
    await pub('drop_published', ['artist:khruangbin'], { artist_id: 'khruangbin', drop_id: 'drp_poster', title: 'Tour poster, signed', price_usd: 35, quantity: 200 });
    await pub('drop_published', ['artist:khruangbin'], { artist_id: 'khruangbin', drop_id: 'drp_vinyl', title: 'Test pressing', price_usd: 120.5, quantity: 1 });
    await pub('drop_claimed', ['artist:khruangbin'], { fan_id: 'fan_a', drop_id: 'drp_vinyl', order_id: 'ord_1', ts: now });
    await pub('drop_claimed', ['artist:khruangbin'], { fan_id: 'fan_b', drop_id: 'drp_poster', order_id: 'ord_2', ts: now });

    const { checkins, drops, live } = await doc.restPolling(doc.makeRev(rk, server.url));

    assert.equal(checkins.object, 'list');
    assert.equal(checkins.hasMore, false);
    assert.equal(checkins.nextCursor, null);
    assert.equal(checkins.data.length, 2);
    const [a, bb] = checkins.data;
    assert.match(a.id, /^msg_/);
    assert.ok(a.created >= now - 60_000 && a.created <= Date.now(), 'created = received, Unix ms');
    const { id: _id, created: _created, ...fields } = a;
    assert.deepEqual(fields, { fanId: 'fan_a', eventId: '1042', gate: 'MAIN', direction: 'in', ts: SINCE });
    assert.equal(bb.id, b.id);
    assert.deepEqual(Object.keys(bb), ['id', 'fanId', 'eventId', 'gate', 'direction', 'ts', 'created']);
    assert.deepEqual([bb.fanId, bb.gate, bb.ts], ['fan_b', 'north_door', now - 2_000]);

    assert.deepEqual(drops, {
      object: 'list',
      data: [{
        dropId: 'drp_poster', artistId: 'khruangbin', title: 'Tour poster, signed', priceUsd: 35,
        quantity: 200, remaining: 199, status: 'active', publishedAt: drops.data[0]?.publishedAt,
      }],
      hasMore: false,
      nextCursor: null,
    });
    assert.ok(Math.abs(drops.data[0].publishedAt - Date.now()) < 60_000, 'publishedAt is Unix ms');

    assert.deepEqual(live, {
      venueId: 'stubbs-austin',
      status: 'open',
      eventId: '1042',
      capacity: 2000,
      count: 3,
      percent: 0.2,
      // Gate names are data: `north_door` is not camelCased.
      gates: { MAIN: 2, north_door: 1 },
      openedAt: now - 60_000,
      lastCheckinAt: now - 2_000,
    });
  });

  it('checkins: cursor pagination, since as Date / string / ms, iterateCheckins, any key tier', async () => {
    const base = now - 100_000;
    const scans = Array.from({ length: 7 }, (_, i) => ({
      type: 'fan_checkin',
      channels: ['venue:page-hall'],
      data: { fan_id: `fan_${i}`, event_id: 'evt_page', gate: i % 2 ? 'EAST' : 'WEST', ts: base + i * 1000 },
    }));
    // Published newest first: listed oldest scan time first.
    await rrev.marquee.messages.publishBatch([...scans].reverse());
    const pages = [];
    let cursor;
    for (;;) {
      const page = await rrev.signal.checkins({ eventId: 'evt_page', limit: 3, ...(cursor ? { cursor } : {}) });
      pages.push(page);
      if (!page.hasMore) break;
      assert.equal(typeof page.nextCursor, 'string');
      cursor = page.nextCursor;
    }
    assert.deepEqual(pages.map((p) => p.data.length), [3, 3, 1]);
    assert.equal(pages[2].nextCursor, null);
    const fans = pages.flatMap((p) => p.data.map((c) => c.fanId));
    assert.deepEqual(fans, scans.map((s) => s.data.fan_id));
    assert.deepEqual(pages.flatMap((p) => p.data.map((c) => c.ts)), scans.map((s) => s.data.ts));

    // since: the same instant as a Date, an RFC 3339 string and Unix ms.
    for (const since of [new Date(base + 4000), new Date(base + 4000).toISOString(), base + 4000]) {
      const p = await rrev.signal.checkins({ eventId: 'evt_page', since });
      assert.deepEqual(p.data.map((c) => c.fanId), ['fan_4', 'fan_5', 'fan_6'], String(since));
    }
    // since with a cursor: the rest of the same filtered list.
    const first = await rrev.signal.checkins({ eventId: 'evt_page', since: base + 2000, limit: 2 });
    assert.deepEqual(first.data.map((c) => c.fanId), ['fan_2', 'fan_3']);
    const rest = await rrev.signal.checkins({ eventId: 'evt_page', since: base + 2000, cursor: first.nextCursor });
    assert.deepEqual(rest.data.map((c) => c.fanId), ['fan_4', 'fan_5', 'fan_6']);

    const all = [];
    for await (const c of rrev.signal.iterateCheckins({ eventId: 'evt_page', limit: 2 })) all.push(c.fanId);
    assert.deepEqual(all, fans);

    // An event with no scans: an empty list, not an error.
    assert.deepEqual(await rrev.signal.checkins({ eventId: 'evt_none' }), { object: 'list', data: [], hasMore: false, nextCursor: null });
    // REST polling is on every key tier (the stream is not).
    const free = revolution({ apiKey: freeKey, baseUrl: server.url });
    assert.equal((await free.signal.checkins({ eventId: 'evt_page' })).data.length, 7);
  });

  it('drops: status filters (default active), pagination, remaining after distinct claims', async () => {
    const artist = 'page-artist';
    for (let i = 0; i < 4; i++) {
      await pub('drop_published', [`artist:${artist}`], { artist_id: artist, drop_id: `drp_${i}`, title: `Drop ${i}`, price_usd: 10 + i, quantity: 2 });
    }
    // drp_1 sold out (two distinct orders; the repeated order counts once), drp_2 half claimed.
    for (const [drop, order] of [['drp_1', 'o1'], ['drp_1', 'o1'], ['drp_1', 'o2'], ['drp_2', 'o3']]) {
      await pub('drop_claimed', [`artist:${artist}`], { fan_id: 'fan_1', drop_id: drop, order_id: order, ts: now });
    }
    const ids = (l) => l.data.map((d) => d.dropId);
    const active = await rrev.signal.drops({ artistId: artist });
    assert.deepEqual(ids(active), ['drp_0', 'drp_2', 'drp_3']);
    assert.deepEqual(ids(await rrev.signal.drops({ artistId: artist, status: 'active' })), ['drp_0', 'drp_2', 'drp_3']);
    assert.deepEqual(active.data.map((d) => [d.remaining, d.status]), [[2, 'active'], [1, 'active'], [2, 'active']]);
    const sold = await rrev.signal.drops({ artistId: artist, status: 'sold_out' });
    assert.deepEqual(sold.data.map((d) => [d.dropId, d.remaining, d.status, d.priceUsd]), [['drp_1', 0, 'sold_out', 11]]);
    const p1 = await rrev.signal.drops({ artistId: artist, status: 'all', limit: 3 });
    assert.deepEqual([ids(p1), p1.hasMore], [['drp_0', 'drp_1', 'drp_2'], true]);
    const p2 = await rrev.signal.drops({ artistId: artist, status: 'all', limit: 3, cursor: p1.nextCursor });
    assert.deepEqual([ids(p2), p2.hasMore, p2.nextCursor], [['drp_3'], false, null]);
    assert.deepEqual(await rrev.signal.drops({ artistId: 'nobody' }), { object: 'list', data: [], hasMore: false, nextCursor: null });
  });

  it('venueStatus: a venue that never opened is closed with nulls', async () => {
    assert.deepEqual(await rrev.signal.venueStatus('never-opened'), {
      venueId: 'never-opened', status: 'closed', eventId: null, capacity: null, count: 0, percent: null, gates: {}, openedAt: null, lastCheckinAt: null,
    });
  });

  it('errors are typed: a bad key is 401 invalid_api_key, bad parameters 400 with param', async () => {
    const bad = revolution({ apiKey: 'sk_live_not_a_key', baseUrl: server.url });
    for (const call of [
      () => bad.signal.checkins({ eventId: 1042 }),
      () => bad.signal.drops({ artistId: 'khruangbin' }),
      () => bad.signal.venueStatus('stubbs-austin'),
    ]) {
      const e = await call().then(() => null, (x) => x);
      assert.ok(e instanceof MarqueeApiError, String(e));
      assert.ok(e instanceof MarqueeError);
      assert.deepEqual([e.status, e.code], [401, 'invalid_api_key']);
    }
    const cases = [
      [() => rrev.signal.drops({ artistId: 'khruangbin', status: 'gone' }), 'status'],
      [() => rrev.signal.drops({ artistId: 'khruangbin', cursor: 'zz' }), 'cursor'],
      [() => rrev.signal.drops({ artistId: 'khruangbin', limit: 101 }), 'limit'],
      [() => rrev.signal.checkins({ eventId: 1042, since: 'yesterday' }), 'since'],
      [() => rrev.signal.checkins({ eventId: 1042, cursor: 'zz' }), 'cursor'],
      [() => rrev.signal.checkins({ eventId: 1042, limit: 0 }), 'limit'],
    ];
    for (const [call, param] of cases) {
      const e = await call().then(() => null, (x) => x);
      assert.ok(e instanceof MarqueeApiError, `${param}: ${e}`);
      assert.deepEqual([e.status, e.code, e.param], [400, 'invalid_request', param]);
      assert.ok(e.message.length > 0);
    }
  });
});
