// Pure functions, without a server: camelCase, close codes, backoff, frame
// classification, and the webhook verifiers against the known vectors of
// marquee's Rust tests (crates/core/src/profile/*.rs).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  CLOSE_CODES,
  backoffDelay,
  camelize,
  camelKey,
  channelName,
  classifyFrame,
  describeCloseCode,
  isValidWebhook,
  signWebhook,
  timingSafeEqual,
  verifyWebhook,
  WebhookVerificationError,
} from '../dist/index.js';

describe('camelCase', () => {
  it('renames snake_case keys, deeply', () => {
    assert.equal(camelKey('price_usd'), 'priceUsd');
    assert.equal(camelKey('last_checkin_at'), 'lastCheckinAt');
    assert.equal(camelKey('gate'), 'gate');
    assert.equal(camelKey('_private'), '_private');
    assert.equal(camelKey('NORTH_DOOR'), 'NORTH_DOOR', 'data used as a key is not mangled');
    assert.equal(camelKey('a_1_b'), 'a1B');
    assert.deepEqual(camelize({ fan_id: 'f', nested: { order_id: 'o', list: [{ drop_id: 'd' }] }, n: 1 }), {
      fanId: 'f',
      nested: { orderId: 'o', list: [{ dropId: 'd' }] },
      n: 1,
    });
    assert.equal(camelize(null), null);
    assert.deepEqual(camelize([1, 'a']), [1, 'a']);
  });
});

describe('close codes', () => {
  it('covers every code of ARCHITECTURE.md with its meaning', () => {
    for (const code of [1001, 1009, 1011, 4000, 4003, 4008]) assert.ok(CLOSE_CODES[code], `${code}`);
    assert.equal(describeCloseCode(4003).reconnect, false);
    assert.match(describeCloseCode(4003).meaning, /revoked/);
    assert.equal(describeCloseCode(4008).reconnect, true);
    assert.match(describeCloseCode(4008).meaning, /slow consumer/);
    assert.match(describeCloseCode(1001).meaning, /shutting down/);
    assert.equal(describeCloseCode(1011).reconnect, true);
    assert.equal(describeCloseCode(4999).reconnect, true);
  });
});

describe('backoff', () => {
  it('grows exponentially, is capped, and is jittered', () => {
    const o = { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 };
    assert.equal(backoffDelay(0, o, () => 0), 100);
    assert.equal(backoffDelay(3, o, () => 0), 800);
    assert.equal(backoffDelay(10, o, () => 0), 1000);
    assert.equal(backoffDelay(10, o, () => 1), 500);
    const seen = new Set(Array.from({ length: 50 }, () => backoffDelay(2, o)));
    assert.ok(seen.size > 5, 'jitter spreads the delays');
    for (const d of seen) assert.ok(d >= 200 && d <= 400, `${d}`);
  });
});

describe('frame classification', () => {
  const event = {
    type: 'fan_checkin',
    id: 'msg_01',
    cursor: '0000000000001',
    channel: 'venue:a',
    payload: { fan_id: 'f' },
    occurred_at: '2026-01-01T00:00:00Z',
  };
  it('an event has a message id and cursor', () => {
    assert.equal(classifyFrame(event).kind, 'event');
  });
  it('acks, pongs and errors are never events, whatever their shape', () => {
    const controls = [
      { type: 'subscribed', channel: 'venue:a' },
      { type: 'subscribed', channel: 'venue:a', after: '0000000000001' },
      { type: 'unsubscribed', channel: 'venue:a' },
      { type: 'pong' },
      { type: 'error', code: 'invalid_cursor', message: 'x', channel: 'venue:a' },
      // Shapes the acknowledgement frames may take after their redesign:
      { type: 'ack', action: 'subscribe', channel: 'venue:a', cursor: '0000000000009' },
      { ack: 'subscribe', id: 'req_1', cursor: '0000000000009', channel: 'venue:a', type: 'fan_checkin' },
      { type: 'fan_checkin', channel: 'venue:a', payload: {} },
      { type: 'fan_checkin', id: 'msg_01', channel: 'venue:a' },
      { type: 'fan_checkin', cursor: '0000000000001', channel: 'venue:a' },
      { type: 'error', id: 'msg_1', cursor: '0000000000001', channel: 'venue:a', code: 'x' },
      { error: { code: 'rate_limited', message: 'slow down' } },
    ];
    for (const f of controls) assert.notEqual(classifyFrame(f).kind, 'event', JSON.stringify(f));
    assert.equal(classifyFrame({ type: 'ack', action: 'subscribe', channel: 'venue:a' }).kind, 'subscribed');
    assert.equal(classifyFrame({ type: 'subscribed', channel: 'venue:a' }).kind, 'subscribed');
    assert.equal(classifyFrame({ type: 'unsubscribed', channel: 'venue:a' }).kind, 'unsubscribed');
    assert.equal(classifyFrame({ type: 'error', code: 'x', message: 'y' }).kind, 'error');
    assert.equal(classifyFrame({ type: 'pong' }).kind, 'pong');
    // marquee's own control frames: `event`, never `type`.
    assert.equal(classifyFrame({ event: 'subscribed', channel: 'venue:a' }).kind, 'subscribed');
    assert.equal(classifyFrame({ event: 'unsubscribed', channel: 'venue:a' }).kind, 'unsubscribed');
    assert.equal(classifyFrame({ event: 'error', code: 'invalid_channel', message: 'm' }).kind, 'error');
    assert.equal(classifyFrame({ event: 'error', code: 'invalid_channel', message: 'm' }).code, 'invalid_channel');
    assert.equal(classifyFrame({ event: 'pong' }).kind, 'pong');
    assert.equal(classifyFrame('text'), null);
  });
  it('channel names are checked like the server does', () => {
    assert.equal(channelName({ channel: 'venue', id: 'stubbs-austin' }), 'venue:stubbs-austin');
    assert.equal(channelName('artist:khruangbin'), 'artist:khruangbin');
    assert.throws(() => channelName('venue'), TypeError);
    assert.throws(() => channelName('Venue:x'), TypeError);
    assert.throws(() => channelName('venue:a b'), TypeError);
  });
});

describe('webhook verifiers: known vectors', () => {
  // crates/core/src/profile/standard.rs (the Standard Webhooks specification's example).
  it('standard', async () => {
    const headers = {
      'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek',
      'webhook-timestamp': '1614265330',
      'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    };
    const o = { secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', now: 1614265330_000 };
    assert.deepEqual(await verifyWebhook('standard', '{"test": 2432232314}', headers, o), { test: 2432232314 });
    // One of two signatures (a rotation overlap).
    const two = { ...headers, 'webhook-signature': `v1,bm9wZQ== ${headers['webhook-signature']}` };
    assert.ok(await isValidWebhook('standard', '{"test": 2432232314}', two, o));
    assert.equal(await isValidWebhook('standard', '{"test": 2432232315}', headers, o), false);
    assert.equal(await isValidWebhook('standard', '{"test": 2432232314}', { ...headers, 'webhook-id': 'other' }, o), false);
    await assert.rejects(verifyWebhook('standard', '{"test": 2432232314}', headers, { ...o, now: (1614265330 + 301) * 1000 }), {
      reason: 'stale',
    });
  });

  const revolutionBody =
    '{"id":"evt_01HX7ZQK4ABCDEFGH","type":"fan_checkin","created":1745123456789,"payload":{"fan_id":"fan_0xc3f","event_id":"evt_928xA","gate":"MAIN","ts":1745123456789}}';
  it('revolution', async () => {
    const headers = { 'X-Revolution-Signature': 'sha256=ca2e17fd8af2527ec7d8be24fe9659ec18b018432904807b84102f4c6e59ad8d' };
    const e = await verifyWebhook('revolution', revolutionBody, headers, { secret: 'whsec_xxxx' });
    assert.equal(e.type, 'fan_checkin');
    // No timestamp: no replay window.
    assert.ok(await isValidWebhook('revolution', revolutionBody, headers, { secret: 'whsec_xxxx', now: 0 }));
    assert.equal(await isValidWebhook('revolution', revolutionBody, headers, { secret: 'whsec_yyyy' }), false);
    // Several secrets (verify with old and new while deploying a rotation).
    assert.ok(await isValidWebhook('revolution', revolutionBody, headers, { secret: ['whsec_new', 'whsec_xxxx'] }));
  });

  it('eventium', async () => {
    const body = '{"id":"evt_8nFwL2hQ","type":"order.completed","created":1716490281,"data":{"ticket_id":"tkt_8nFwL2hQ","quantity":2,"total":48.00}}';
    const want = '9592843c026e5d4b5ece0936c5be5d6ef0097ff5954ce24b7d845dc6b27c5123';
    const o = { secret: 'whsec_test_eventium', now: 1716490281_000 };
    for (const h of [`t=1716490281,v1=${want}`, `t=1716490281,v1=00,v1=${want}`, `t=1716490281, v0=abc, v1=${want}`]) {
      assert.ok(await isValidWebhook('eventium', body, { 'x-eventium-signature': h }, o), h);
      await assert.rejects(verifyWebhook('eventium', body, { 'x-eventium-signature': h }, { ...o, now: (1716490281 + 301) * 1000 }), {
        reason: 'stale',
      });
    }
    for (const bad of ['t=1', 'v1=ab', 't=x,v1=ab', 'garbage']) {
      await assert.rejects(verifyWebhook('eventium', body, { 'x-eventium-signature': bad }, o), { reason: 'malformed' }, bad);
    }
    await assert.rejects(verifyWebhook('eventium', body, {}, o), { reason: 'missing_header' });
  });

  it('revento', async () => {
    const body = '{"id":"evt_delivery_xyz","type":"application.approved","occurred_at":"2026-05-09T14:22:31Z","event_id":"evt_abc123","organization_id":"org_xyz789","data":{"id":"app_xyz"}}';
    const headers = {
      'X-Revento-Timestamp': '1778336551',
      'X-Revento-Signature': 'sha256=b000694d15fce859ac34607c6e8379397df8edacfeecff85b973f01f6bf6ebf9',
    };
    const o = { secret: 'whsec_test_revento', now: 1778336551_000 };
    assert.ok(await isValidWebhook('revento', body, headers, o));
    await assert.rejects(verifyWebhook('revento', body, headers, { ...o, now: (1778336551 + 301) * 1000 }), { reason: 'stale' });
    await assert.rejects(verifyWebhook('revento', body, { ...headers, 'X-Revento-Timestamp': '1778336552' }, o), { reason: 'mismatch' });
  });

  it('attendee', async () => {
    const body = '{"id":"evt_1","event":"event.attendees.created","data":{"type":"event-attendees","id":"att_1"}}';
    const want = '847f7eeace13fda2b8db7475d4fd94188dad5470262fa83d5840ac0f40393d35';
    const headers = { 'X-Signature': `1778336551000000000/${want}` };
    const o = { secret: 'whsec_test_attendee', identifier: 'chn_test', now: 1778336551_000 };
    assert.ok(await isValidWebhook('attendee', body, headers, o));
    assert.equal(await isValidWebhook('attendee', body, headers, { ...o, identifier: 'chn_other' }), false);
    for (const bad of ['/', '1/', '/ab', '1/2/3', 'x/ab']) {
      await assert.rejects(verifyWebhook('attendee', body, { 'X-Signature': bad }, o), { reason: 'malformed' }, bad);
    }
    await assert.rejects(verifyWebhook('attendee', body, headers, { ...o, now: (1778336551 + 301) * 1000 }), { reason: 'stale' });
  });

  it('sign → verify round trip for every format; headers as Headers, arrays, bytes', async () => {
    const body = new TextEncoder().encode('{"a":1}');
    for (const format of ['standard', 'revolution', 'eventium', 'revento', 'attendee']) {
      const secret = format === 'standard' ? 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' : 'whsec_plain_text';
      const h = await signWebhook(format, body, { secret, identifier: 'chn_x' });
      assert.ok(await isValidWebhook(format, body, new Headers(h), { secret, identifier: 'chn_x' }), format);
      assert.ok(await isValidWebhook(format, Buffer.from(body), h, { secret, identifier: 'chn_x' }), format);
    }
  });

  it('refuses a parsed body', async () => {
    await assert.rejects(verifyWebhook('revolution', { a: 1 }, {}, { secret: 'x' }), (e) => e instanceof WebhookVerificationError && e.reason === 'invalid_body');
  });

  it('timingSafeEqual', () => {
    assert.ok(timingSafeEqual('abc', 'abc'));
    assert.ok(!timingSafeEqual('abc', 'abd'));
    assert.ok(!timingSafeEqual('abc', 'abcd'));
    assert.ok(!timingSafeEqual('', 'a'));
    assert.ok(timingSafeEqual('', ''));
  });
});
