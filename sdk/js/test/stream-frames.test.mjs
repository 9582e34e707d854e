// The stream client against a scripted WebSocket server, for what the real
// server never does on purpose: acknowledgement frames in other shapes
// (they are being redesigned), duplicate and out-of-date frames, a
// subscription that is never acknowledged, and the REST backfill.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, it } from 'node:test';

import { WebSocketServer } from 'ws';

import { Marquee } from '../dist/index.js';
import { waitFor } from './helpers.mjs';

let http;
let wss;
let url;
let script; // (ws, frame) => void, per test
const sockets = [];
const restCalls = [];
let restPages = [];
let restStatus = 200;

before(async () => {
  http = createServer((req, res) => {
    restCalls.push(req.url);
    if (restStatus !== 200) {
      res.writeHead(restStatus, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ error: { code: 'internal_error', message: 'boom' } }));
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(restPages.shift() ?? { object: 'list', data: [], has_more: false, next_cursor: null }));
  });
  wss = new WebSocketServer({ server: http, path: '/v1/stream' });
  wss.on('connection', (ws) => {
    sockets.push(ws);
    ws.on('message', (d) => script(ws, JSON.parse(d.toString())));
  });
  await new Promise((r) => http.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${http.address().port}`;
});
after(async () => {
  for (const s of wss.clients) s.terminate();
  await new Promise((r) => wss.close(r));
  http.closeAllConnections?.();
  await new Promise((r) => http.close(r));
});

const ev = (n, channel = 'venue:a', extra = {}) => ({
  type: 'fan_checkin',
  id: `msg_${n}`,
  cursor: String(n).padStart(13, '0'),
  channel,
  payload: { n },
  occurred_at: '2026-01-01T00:00:00Z',
  ...extra,
});

describe('stream frames (scripted server)', () => {
  it('only frames with a message id and cursor are events; acks of any shape are not; duplicates are dropped', async () => {
    script = (ws, f) => {
      if (f.action !== 'subscribe') return;
      // Acknowledgement shapes, current and possible: none may become an event.
      ws.send(JSON.stringify({ type: 'ack', action: 'subscribe', channel: f.channel, id: 'req_1', cursor: '0000000000000' }));
      ws.send(JSON.stringify({ ack: 'subscribe', channel: f.channel, id: 'sub_1', cursor: '0000000000000', type: 'fan_checkin' }));
      ws.send(JSON.stringify({ type: 'subscribed', channel: f.channel }));
      ws.send(JSON.stringify({ type: 'fan_checkin', channel: f.channel, payload: {} }));
      ws.send(JSON.stringify({ type: 'error', code: 'rate_limited', message: 'Too many frames; this one was ignored.' }));
      ws.send(JSON.stringify(ev(1)));
      ws.send(JSON.stringify(ev(2)));
      ws.send(JSON.stringify(ev(2))); // duplicate
      ws.send(JSON.stringify(ev(1))); // out of date
      ws.send(JSON.stringify(ev(3)));
      ws.send(JSON.stringify(ev(9, 'venue:not-subscribed')));
      ws.send('not json');
    };
    const mq = new Marquee({ apiKey: 'k', baseUrl: url });
    const s = mq.stream({ channels: ['venue:a'] });
    const got = [];
    const errors = [];
    const controls = [];
    s.on('message', (e) => got.push(e));
    s.on('error', (e) => errors.push(e));
    s.on('control', (c) => controls.push(c));
    await waitFor(() => got.length === 3 && errors.length === 1 && controls.length >= 2, { what: 'frames' });
    assert.deepEqual(got.map((e) => e.id), ['msg_1', 'msg_2', 'msg_3']);
    assert.equal(s.duplicatesDropped, 2);
    assert.equal(errors[0].kind, 'frame');
    assert.equal(errors[0].code, 'rate_limited');
    assert.equal(s.cursor('venue:a'), '0000000000003');
    await s.close();
  });

  it('a channel with no cursor is resubscribed live after a drop and backfilled from REST, merged by cursor', async () => {
    let conn = 0;
    script = (ws, f) => {
      if (f.action !== 'subscribe') return;
      conn++;
      if (conn === 1) {
        assert.equal(f.after, undefined);
        ws.send(JSON.stringify({ type: 'subscribed', channel: f.channel }));
        setTimeout(() => ws.close(1001, 'server shutting down'), 50);
      } else {
        // No cursor to resume from: live again (no "after"), and a live frame
        // that the REST backfill also returns.
        assert.equal(f.after, undefined);
        ws.send(JSON.stringify({ type: 'subscribed', channel: f.channel }));
        ws.send(JSON.stringify(ev(12, 'venue:b')));
        ws.send(JSON.stringify(ev(13, 'venue:b')));
      }
    };
    const msg = (n) => ({
      object: 'message',
      id: `msg_${n}`,
      cursor: String(n).padStart(13, '0'),
      type: 'fan_checkin',
      channels: ['venue:b'],
      data: { n },
      occurred_at: '2026-01-01T00:00:00Z',
      received_at: '2026-01-01T00:00:00Z',
    });
    restPages = [
      { object: 'list', data: [msg(10), msg(11)], has_more: true, next_cursor: '0000000000011' },
      { object: 'list', data: [msg(12)], has_more: false, next_cursor: '0000000000012' },
    ];
    restCalls.length = 0;
    const mq = new Marquee({ apiKey: 'k', baseUrl: url });
    const s = mq.stream({ channels: ['venue:b'], backoff: { initialMs: 50 } });
    const got = [];
    s.on('message', (e) => got.push(e));
    await waitFor(() => got.length === 4, { what: 'backfill + live' });
    assert.deepEqual(got.map((e) => e.payload.n), [10, 11, 12, 13]);
    assert.equal(s.duplicatesDropped, 1);
    assert.equal(restCalls.length, 2);
    const q = new URL(restCalls[0], url).searchParams;
    assert.equal(q.get('channel'), 'venue:b');
    assert.ok(Date.parse(q.get('since')) <= Date.now());
    assert.equal(new URL(restCalls[1], url).searchParams.get('after'), '0000000000011');
    assert.equal(got[0].channel, 'venue:b');
    assert.deepEqual(got[0].payload, { n: 10 });
    await s.close();
  });

  it('a backfill the REST log cannot answer: reported as a gap, the channel continues live', async () => {
    let conn = 0;
    script = (ws, f) => {
      if (f.action !== 'subscribe') return;
      conn++;
      ws.send(JSON.stringify({ type: 'subscribed', channel: f.channel }));
      if (conn === 1) setTimeout(() => ws.close(1011, 'replay failed'), 50);
      else ws.send(JSON.stringify(ev(21, 'venue:d')));
    };
    restStatus = 500;
    restCalls.length = 0;
    const mq = new Marquee({ apiKey: 'k', baseUrl: url, maxRetries: 1 });
    const s = mq.stream({ channels: ['venue:d'], backoff: { initialMs: 50 } });
    const got = [];
    const errors = [];
    s.on('message', (e) => got.push(e));
    s.on('error', (e) => errors.push(e));
    try {
      await waitFor(() => got.length === 1, { what: 'the live frame' });
    } finally {
      restStatus = 200;
    }
    assert.equal(got[0].id, 'msg_21');
    const b = errors.find((e) => e.kind === 'backfill');
    assert.equal(b.gap, true);
    assert.equal(b.channel, 'venue:d');
    assert.equal(restCalls.length, 2, 'the GET was retried once');
    assert.ok(errors.some((e) => e.kind === 'close' && e.closeCode === 1011 && e.retry));
    assert.equal(s.state, 'open');
    await s.close();
  });

  it('frames are sent within the server inbound budget (no frame dropped as rate_limited)', async () => {
    const seen = [];
    script = (ws, f) => {
      seen.push({ at: Date.now(), f });
      if (f.action === 'subscribe') ws.send(JSON.stringify({ type: 'subscribed', channel: f.channel }));
    };
    const mq = new Marquee({ apiKey: 'k', baseUrl: url });
    const channels = Array.from({ length: 60 }, (_, i) => `venue:c${i}`);
    const s = mq.stream({ channels });
    const acks = [];
    s.on('subscribed', (i) => acks.push(i.channel));
    await waitFor(() => acks.length === 60, { timeout: 10_000, what: '60 acks' });
    // Server budget: 20/s, burst 40. In any 1 s window at most 40 + 20.
    for (const a of seen) assert.ok(seen.filter((b) => b.at >= a.at && b.at < a.at + 1000).length <= 60);
    assert.ok(seen.at(-1).at - seen[0].at >= 1000, 'the burst was spread');
    await s.close();
  });
});
