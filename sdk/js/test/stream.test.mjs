// The stream client against the real server: subscribe / unsubscribe,
// resume by cursor, reconnect across server restarts (1,000 messages, no gap,
// no duplicate), 4003 not retried, 401 / 403 refusals, 4008 resumes,
// heartbeats against a frozen server.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import WS from 'ws';

import { Marquee } from '../dist/index.js';
import { Server, sleep, waitFor } from './helpers.mjs';

/** A `ws` WebSocket that records every instance (how many connections were attempted). */
function countingWebSocket() {
  const sockets = [];
  class Counting extends WS {
    constructor(...args) {
      super(...args);
      sockets.push(this);
    }
  }
  return { WebSocket: Counting, sockets };
}

const opened = [];
/** Closes every stream a test opened (also when it failed half-way). */
async function closeStreams() {
  await Promise.all(opened.splice(0).map((s) => s.close()));
}

/** Records what a stream emits. */
function record(stream) {
  opened.push(stream);
  const r = { events: [], byChannel: new Map(), log: [], errors: [], controls: [] };
  stream.on('message', (e) => {
    r.events.push(e);
    if (!r.byChannel.has(e.channel)) r.byChannel.set(e.channel, []);
    r.byChannel.get(e.channel).push(e);
  });
  for (const k of ['connected', 'reconnecting', 'disconnected', 'subscribed', 'unsubscribed']) {
    stream.on(k, (info) => r.log.push({ k, ...info }));
  }
  stream.on('error', (e) => r.errors.push(e));
  stream.on('control', (f) => r.controls.push(f));
  r.count = (ch) => r.byChannel.get(ch)?.length ?? 0;
  r.has = (k, pred = () => true) => r.log.some((x) => x.k === k && pred(x));
  return r;
}

async function allIds(mq, channel) {
  const ids = [];
  for await (const m of mq.messages.iterate({ channel, limit: 100 })) ids.push(m.id);
  return ids;
}

const fast = { backoff: { initialMs: 100, maxMs: 1000 }, heartbeatIntervalMs: 5000, heartbeatTimeoutMs: 5000 };

describe('stream basics', () => {
  let server;
  let mq;
  before(async () => {
    server = await Server.start({ args: ['--stream-ping-interval', '1s'] });
    const t = await server.tenant();
    mq = new Marquee({ apiKey: t.key, baseUrl: server.url });
  });
  after(async () => {
    await closeStreams();
    await server?.close();
  });

  it('subscribe, events in order with every field, acks never emitted as events, unsubscribe', async () => {
    const s = mq.stream({ ...fast, channels: ['venue:basic'] });
    const r = record(s);
    await waitFor(() => r.has('subscribed', (x) => x.channel === 'venue:basic'), { what: 'subscribed' });
    assert.ok(r.has('connected', (x) => x.reconnects === 0 && !x.url.includes('apiKey')));
    const pub = await mq.messages.publishBatch(
      Array.from({ length: 5 }, (_, i) => ({ type: 'fan_checkin', channels: ['venue:basic'], data: { i } })),
    );
    await waitFor(() => r.count('venue:basic') === 5, { what: '5 events' });
    const got = r.byChannel.get('venue:basic');
    assert.deepEqual(got.map((e) => e.id), pub.map((m) => m.id));
    assert.deepEqual(Object.keys(got[0]).sort(), ['channel', 'cursor', 'id', 'occurred_at', 'payload', 'type']);
    assert.deepEqual(got[0].payload, { i: 0 });
    assert.equal(got[0].cursor, pub[0].cursor);
    assert.equal(s.cursor('venue:basic'), pub[4].cursor);

    // A second channel, given as {channel, id}; a message on both arrives once per channel.
    s.subscribe({ channel: 'artist', id: 'basic' });
    await waitFor(() => r.has('subscribed', (x) => x.channel === 'artist:basic'), { what: 'artist subscribed' });
    const both = await mq.messages.publish({ type: 'drop_published', channels: ['venue:basic', 'artist:basic'], data: {} });
    await waitFor(() => r.count('artist:basic') === 1 && r.count('venue:basic') === 6, { what: 'both copies' });
    assert.equal(r.byChannel.get('artist:basic')[0].id, both.id);
    assert.deepEqual(Object.keys(s.cursors()).sort(), ['artist:basic', 'venue:basic']);

    // Unsubscribe: the channel's next message does not arrive (the marker after it does).
    s.unsubscribe('venue:basic');
    await waitFor(() => r.has('unsubscribed', (x) => x.channel === 'venue:basic'), { what: 'unsubscribed' });
    await mq.messages.publish({ type: 'x', channels: ['venue:basic'], data: {} });
    await mq.messages.publish({ type: 'marker', channels: ['artist:basic'], data: {} });
    await waitFor(() => r.count('artist:basic') === 2, { what: 'marker' });
    assert.equal(r.count('venue:basic'), 6);

    // Nothing that is not a message was emitted as one.
    for (const e of r.events) assert.match(e.id, /^msg_/);
    assert.equal(r.errors.length, 0, JSON.stringify(r.errors));
    await s.close();
    assert.equal(s.state, 'closed');
    assert.ok(r.has('disconnected', (x) => x.code === 1000 && x.willReconnect === false));
  });

  it('after a cursor: replay then live, no gap, no duplicate', async () => {
    const ch = 'venue:resume';
    const pub = await mq.messages.publishBatch(Array.from({ length: 10 }, (_, i) => ({ type: 't', channels: [ch], data: { i } })));
    const s = mq.stream({ ...fast, channels: [{ channel: ch, after: pub[3].cursor }] });
    const r = record(s);
    await waitFor(() => r.count(ch) === 6, { what: 'the replay' });
    assert.ok(r.has('subscribed', (x) => x.after === pub[3].cursor));
    const more = await mq.messages.publish({ type: 't', channels: [ch], data: { i: 10 } });
    await waitFor(() => r.count(ch) === 7, { what: 'live' });
    assert.deepEqual(r.byChannel.get(ch).map((e) => e.payload.i), [4, 5, 6, 7, 8, 9, 10]);
    assert.equal(r.byChannel.get(ch)[6].id, more.id);
    // Subscribing again with an older cursor starts over from it; the client drops what it has.
    s.subscribe(ch, { after: pub[7].cursor });
    await mq.messages.publish({ type: 't', channels: [ch], data: { i: 11 } });
    await waitFor(() => r.byChannel.get(ch).at(-1).payload.i === 11, { what: 'i=11' });
    assert.deepEqual(r.byChannel.get(ch).map((e) => e.payload.i), [4, 5, 6, 7, 8, 9, 10, 8, 9, 10, 11]);
    await s.close();
  });

  it('error frames: an invalid cursor is reported (with the gap) and the channel continues live', async () => {
    const ch = 'venue:badcursor';
    const s = mq.stream({ ...fast, channels: [{ channel: ch, after: 'ZZZZZZZZZZZZZ' }] });
    const r = record(s);
    await waitFor(() => r.errors.some((e) => e.kind === 'frame' && e.code === 'invalid_cursor'), { what: 'invalid_cursor' });
    const err = r.errors.find((e) => e.code === 'invalid_cursor');
    assert.equal(err.channel, ch);
    assert.equal(err.gap, true);
    await waitFor(() => r.has('subscribed', (x) => x.channel === ch), { what: 'resubscribed live' });
    await mq.messages.publish({ type: 't', channels: [ch], data: {} });
    await waitFor(() => r.count(ch) === 1, { what: 'live event' });
    await s.close();
  });

  it('60 subscriptions at once stay within the inbound frame budget: all acknowledged, none dropped', async () => {
    const channels = Array.from({ length: 60 }, (_, i) => `venue:many${i}`);
    const s = mq.stream({ ...fast, channels });
    const r = record(s);
    await waitFor(() => r.log.filter((x) => x.k === 'subscribed').length === 60, { timeout: 10_000, what: '60 acks' });
    assert.equal(r.errors.length, 0, JSON.stringify(r.errors));
    await mq.messages.publish({ type: 't', channels: ['venue:many59'], data: {} });
    await waitFor(() => r.count('venue:many59') === 1, { what: 'an event on the last channel' });
    await s.close();
  });

  it('a revoked key is closed with 4003 and not retried', async () => {
    const t = await server.tenant();
    const client = new Marquee({ apiKey: t.key, baseUrl: server.url });
    const { WebSocket, sockets } = countingWebSocket();
    const s = client.stream({ ...fast, WebSocket, channels: ['venue:revoked'] });
    const r = record(s);
    await waitFor(() => r.has('subscribed'), { what: 'subscribed' });
    await server.revokeKey(t.keyId);
    await waitFor(() => r.has('disconnected'), { timeout: 15_000, what: 'the 4003 close' });
    const d = r.log.find((x) => x.k === 'disconnected');
    assert.equal(d.code, 4003);
    assert.equal(d.willReconnect, false);
    assert.match(d.meaning, /revoked/);
    const e = r.errors.find((x) => x.closeCode === 4003);
    assert.ok(e, 'an error event with the close code');
    assert.equal(e.retry, false);
    assert.match(e.meaning, /revoked/);
    await sleep(1500);
    assert.equal(sockets.length, 1, 'no reconnect attempt');
    assert.equal(r.has('reconnecting'), false);
    assert.equal(s.state, 'closed');

    // The same key on a new stream: refused with 401 before the upgrade, not retried either.
    const again = client.stream({ ...fast, WebSocket, channels: ['venue:revoked'] });
    const r2 = record(again);
    await waitFor(() => r2.has('disconnected'), { what: 'the refusal' });
    assert.equal(r2.log.find((x) => x.k === 'disconnected').status, 401);
    assert.equal(r2.log.find((x) => x.k === 'disconnected').willReconnect, false);
    assert.equal(r2.errors[0].kind, 'connect');
    await sleep(500);
    assert.equal(sockets.length, 2);
  });

  it('a free-tier key (403) is not retried; without the ws status (browser-like) the probe finds it', async () => {
    const t = await server.tenant({ tier: 'free' });
    const client = new Marquee({ apiKey: t.key, baseUrl: server.url });
    const s = client.stream({ ...fast, channels: ['venue:free'] });
    const r = record(s);
    await waitFor(() => r.has('disconnected'), { what: 'the refusal' });
    const d = r.log.find((x) => x.k === 'disconnected');
    assert.equal(d.status, 403);
    assert.equal(d.willReconnect, false);
    // A WebSocket that, like a browser's, tells nothing about the refusal.
    class Opaque extends WS {
      constructor(url) {
        super(url);
      }
    }
    Opaque.prototype.terminate = undefined;
    const s2 = client.stream({ ...fast, WebSocket: Opaque, channels: ['venue:free'] });
    const r2 = record(s2);
    await waitFor(() => r2.has('disconnected'), { what: 'the refusal' });
    assert.equal(r2.log.find((x) => x.k === 'disconnected').status, 403);
    assert.equal(r2.has('reconnecting'), false);
  });

  it('heartbeat: a frozen server is detected, the stream reconnects when it thaws, no gap', async () => {
    const ch = 'venue:heartbeat';
    const s = mq.stream({
      channels: [ch],
      backoff: { initialMs: 100, maxMs: 400 },
      heartbeatIntervalMs: 200,
      heartbeatTimeoutMs: 400,
      connectTimeoutMs: 600,
    });
    const r = record(s);
    await waitFor(() => r.has('subscribed'), { what: 'subscribed' });
    await mq.messages.publish({ type: 't', channels: [ch], data: { i: 0 } });
    await waitFor(() => r.count(ch) === 1, { what: 'first event' });
    server.proc.kill('SIGSTOP');
    try {
      await waitFor(() => r.errors.some((e) => e.kind === 'heartbeat'), { timeout: 5000, what: 'the heartbeat timeout' });
      await waitFor(() => r.log.filter((x) => x.k === 'reconnecting').length >= 2, { timeout: 5000, what: 'reconnect attempts' });
    } finally {
      server.proc.kill('SIGCONT');
    }
    await mq.messages.publish({ type: 't', channels: [ch], data: { i: 1 } });
    await waitFor(() => r.count(ch) === 2, { timeout: 10_000, what: 'the event after the thaw' });
    assert.deepEqual(r.byChannel.get(ch).map((e) => e.payload.i), [0, 1]);
    assert.ok(r.log.filter((x) => x.k === 'connected').length >= 2);
    const hb = r.errors.find((e) => e.kind === 'heartbeat');
    assert.equal(hb.closeCode, 4000);
    await s.close();
  });
});

describe('reconnect across server restarts', () => {
  let server;
  let mq;
  before(async () => {
    server = await Server.start();
    const t = await server.tenant();
    mq = new Marquee({ apiKey: t.key, baseUrl: server.url, maxRetries: 0 });
  });
  after(async () => {
    await closeStreams();
    await server?.close();
  });

  it('1,000 messages through a graceful restart (1001) and a crash (kill -9): all, in order, once', async (t) => {
    const A = 'venue:restart';
    const B = 'artist:quiet'; // nothing before the first restart: resumed through the REST backfill
    const s = mq.stream({
      channels: [A, B],
      backoff: { initialMs: 1200, maxMs: 2000, jitter: 0.25 },
      heartbeatIntervalMs: 2000,
      heartbeatTimeoutMs: 2000,
    });
    const r = record(s);
    await waitFor(() => r.log.filter((x) => x.k === 'subscribed').length === 2, { what: 'both subscribed' });

    // The publisher keeps going through the outages: every batch has an
    // idempotency key, so a batch retried after a lost answer is stored once.
    const N = 1000;
    const BATCH = 20;
    let stopped = false;
    let bPublished = 0;
    const publishBatch = async (b) => {
      const items = Array.from({ length: BATCH }, (_, j) => ({ type: 'fan_checkin', channels: [A], data: { n: b * BATCH + j } }));
      for (;;) {
        try {
          return await mq.messages.publishBatch(items, { idempotencyKey: `restart-batch-${b}` });
        } catch {
          await sleep(50);
        }
      }
    };
    const publisher = (async () => {
      for (let b = 0; b < N / BATCH; b++) {
        await publishBatch(b);
        await sleep(15);
      }
    })();
    const quietPublisher = (async () => {
      // Publishes to B only while the stream is disconnected (right after a restart).
      while (!stopped) {
        if (s.state !== 'open' && (await mq.ping())) {
          try {
            await mq.messages.publish({ type: 'signal_posted', channels: [B], data: { k: bPublished } });
            bPublished++;
          } catch {
            /* down again */
          }
        }
        await sleep(100);
      }
    })();

    await waitFor(() => r.count(A) >= 250, { timeout: 20_000, what: '250 events' });
    await server.restart('SIGTERM');
    await waitFor(() => r.count(A) >= 650, { timeout: 30_000, what: '650 events' });
    await server.restart('SIGKILL', { downMs: 300 });
    await publisher;
    await waitFor(() => r.count(A) >= N, { timeout: 30_000, what: `${N} events` });
    stopped = true;
    await quietPublisher;
    const expectedA = await allIds(mq, A);
    assert.equal(expectedA.length, N, 'the log holds exactly 1,000 (idempotent retries)');
    await waitFor(() => s.state === 'open' && r.count(B) === bPublished, { timeout: 15_000, what: 'B caught up' });
    await sleep(300); // anything extra (a duplicate) would show now
    const gotA = r.byChannel.get(A).map((e) => e.id);
    assert.equal(gotA.length, N, 'no duplicate');
    assert.deepEqual(gotA, expectedA, 'no gap, in order');
    assert.deepEqual(
      r.byChannel.get(A).map((e) => e.payload.n),
      Array.from({ length: N }, (_, i) => i),
    );
    const expectedB = await allIds(mq, B);
    assert.ok(expectedB.length >= 1, 'B received messages while the stream was down');
    assert.deepEqual((r.byChannel.get(B) ?? []).map((e) => e.id), expectedB, 'B: backfilled, no gap, no duplicate');
    const codes = r.log.filter((x) => x.k === 'disconnected').map((x) => x.code);
    assert.equal(codes[0], 1001, `a graceful shutdown closes with 1001 (got ${codes})`);
    // The crash: the connection is lost (1006), or a REST backfill in flight failed first (1011).
    assert.ok([1006, 1011].includes(codes[1]), `a crash is a lost connection (got ${codes})`);
    assert.ok(r.log.filter((x) => x.k === 'disconnected').every((x) => x.willReconnect));
    const closeErr = r.errors.find((e) => e.closeCode === 1001);
    assert.match(closeErr.meaning, /shutting down/);
    assert.ok(r.log.filter((x) => x.k === 'connected').length >= 3);
    t.diagnostic(
      `closes ${codes.join(',')}; ${r.log.filter((x) => x.k === 'reconnecting').length} reconnect waits; ` +
        `${bPublished} published to ${B} while down; ${s.duplicatesDropped} replayed duplicates dropped`,
    );
    assert.ok(r.log.filter((x) => x.k === 'reconnecting').every((x) => x.delayMs >= 900 && x.delayMs <= 2000));
    await s.close();
  });
});

describe('slow consumer', () => {
  let server;
  let mq;
  before(async () => {
    server = await Server.start({ args: ['--stream-queue-frames', '128', '--stream-queue-bytes', '65536'] });
    const t = await server.tenant();
    mq = new Marquee({ apiKey: t.key, baseUrl: server.url });
  });
  after(async () => {
    await closeStreams();
    await server?.close();
  });

  it('4008: a consumer that stops reading is closed, resumes by cursor, and misses nothing', async (t) => {
    const ch = 'venue:slow';
    const { WebSocket, sockets } = countingWebSocket();
    const s = mq.stream({ ...fast, WebSocket, channels: [ch], heartbeatIntervalMs: 60_000 });
    const r = record(s);
    await waitFor(() => r.has('subscribed'), { what: 'subscribed' });
    // Stop reading the socket (as a blocked consumer would).
    sockets[0]._socket.pause();
    const pad = 'x'.repeat(2000);
    const total = 5000;
    for (let b = 0; b < total / 100; b++) {
      await mq.messages.publishBatch(Array.from({ length: 100 }, (_, j) => ({ type: 't', channels: [ch], data: { n: b * 100 + j, pad } })));
    }
    await sleep(500);
    sockets[0]._socket.resume();
    await waitFor(() => r.count(ch) >= total, { timeout: 30_000, what: `${total} events` });
    await sleep(200);
    const d = r.log.find((x) => x.k === 'disconnected');
    assert.equal(d?.code, 4008, JSON.stringify(r.log.filter((x) => x.k !== 'subscribed')));
    assert.equal(d.willReconnect, true);
    assert.match(d.meaning, /slow consumer/);
    assert.ok(r.errors.some((e) => e.closeCode === 4008));
    t.diagnostic(`${sockets.length} connections; ${r.count(ch)} events; ${s.duplicatesDropped} duplicates dropped`);
    assert.deepEqual(r.byChannel.get(ch).map((e) => e.payload.n), Array.from({ length: total }, (_, i) => i));
    await s.close();
  });
});
