// Every webhook format, verified against requests the real server sent to a
// local receiver: they must pass; a tampered body, a tampered signature
// header, a stale timestamp and a wrong secret must fail.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Marquee, WEBHOOK_TOLERANCE_SECS, WebhookVerificationError, isValidWebhook, verifyWebhook, webhookVerifier } from '../dist/index.js';
import { Receiver, Server } from './helpers.mjs';

let server;
let mq;
let rx;
const eps = {};
const reqs = {};
let message;

// The header each format signs with (what a tamperer would alter).
const SIG_HEADER = {
  standard: 'webhook-signature',
  revolution: 'x-revolution-signature',
  eventium: 'x-eventium-signature',
  revento: 'x-revento-signature',
  attendee: 'x-signature',
};

before(async () => {
  server = await Server.start();
  const t = await server.tenant();
  mq = new Marquee({ apiKey: t.key, baseUrl: server.url });
  rx = await new Receiver().start();
  for (const format of Object.keys(SIG_HEADER)) {
    eps[format] = await mq.endpoints.create({ url: `${rx.url}/${format}`, format, channels: ['venue:hooks'] });
  }
  message = await mq.messages.publish({
    type: 'checkin.scanned',
    channels: ['venue:hooks', 'event:evt_abc123', 'organization:org_xyz789'],
    data: { ticket_id: 'tkt_1', gate: 'MAIN', note: 'ünïcødé ✓' },
  });
  for (const format of Object.keys(SIG_HEADER)) [reqs[format]] = await rx.waitAt(`/${format}`, 1);
});
after(async () => {
  await server?.close();
  await rx?.close();
});

const opts = (format, extra = {}) => ({ secret: eps[format].secret, identifier: eps[format].identifier, ...extra });

/** A copy of a captured request's headers with one replaced. */
const withHeader = (req, name, value) => ({ ...req.headers, [name]: value });

/** Flips one hex / base64 character of a signature. */
function flip(sig) {
  const i = sig.length - 3;
  const c = sig[i];
  return sig.slice(0, i) + (c === 'a' ? 'b' : 'a') + sig.slice(i + 1);
}

describe('webhook verification against real deliveries', () => {
  for (const format of Object.keys(SIG_HEADER)) {
    describe(format, () => {
      it('the delivery verifies (raw bytes, text, fetch Headers); the body is the format envelope', async () => {
        const req = reqs[format];
        assert.ok(req.headers[SIG_HEADER[format]], `${SIG_HEADER[format]} present`);
        const body = await verifyWebhook(format, req.body, req.headers, opts(format));
        assert.ok(await isValidWebhook(format, req.text, new Headers(req.headers), opts(format)));
        const v = webhookVerifier(format, opts(format));
        assert.ok(await v.isValid(req.body, req.headers));
        const envId = `evt_${message.id.slice(4)}`;
        switch (format) {
          case 'standard':
            assert.equal(body.id, message.id);
            assert.equal(body.type, 'checkin.scanned');
            assert.deepEqual(body.data, message.data);
            break;
          case 'revolution':
            assert.equal(body.id, envId);
            assert.deepEqual(body.payload, message.data);
            break;
          case 'eventium':
            assert.equal(body.id, envId);
            assert.deepEqual(body.data, message.data);
            break;
          case 'revento':
            assert.equal(body.id, envId);
            assert.equal(body.event_id, 'evt_abc123');
            assert.equal(body.organization_id, 'org_xyz789');
            assert.equal(req.headers['x-revento-event'], 'checkin.scanned');
            assert.match(req.headers['x-revento-delivery-id'], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
            break;
          case 'attendee':
            assert.equal(body.id, envId);
            assert.equal(body.event, 'checkin.scanned');
            assert.match(eps.attendee.identifier, /^chn_/);
            break;
        }
      });

      it('a tampered body fails', async () => {
        const req = reqs[format];
        const tampered = req.text.replace('tkt_1', 'tkt_2');
        assert.notEqual(tampered, req.text);
        await assert.rejects(verifyWebhook(format, tampered, req.headers, opts(format)), { reason: 'mismatch' });
        // One byte more (trailing whitespace) also fails: the raw bytes are signed.
        assert.equal(await isValidWebhook(format, req.text + ' ', req.headers, opts(format)), false);
        // A re-serialised body: the é etc. survive, but a parsed object is refused outright.
        await assert.rejects(verifyWebhook(format, JSON.parse(req.text), req.headers, opts(format)), { reason: 'invalid_body' });
      });

      it('a tampered signature header fails; a missing one is reported', async () => {
        const req = reqs[format];
        const name = SIG_HEADER[format];
        await assert.rejects(verifyWebhook(format, req.body, withHeader(req, name, flip(req.headers[name])), opts(format)), (e) => {
          assert.ok(e instanceof WebhookVerificationError);
          assert.ok(['mismatch', 'malformed'].includes(e.reason), e.reason);
          return true;
        });
        const without = { ...req.headers };
        delete without[name];
        await assert.rejects(verifyWebhook(format, req.body, without, opts(format)), { reason: 'missing_header', header: name });
        if (format === 'standard') {
          await assert.rejects(verifyWebhook(format, req.body, withHeader(req, 'webhook-id', 'dlv_other'), opts(format)), { reason: 'mismatch' });
        }
        if (format === 'revento') {
          const ts = String(Number(req.headers['x-revento-timestamp']) - 1);
          await assert.rejects(verifyWebhook(format, req.body, withHeader(req, 'x-revento-timestamp', ts), opts(format)), { reason: 'mismatch' });
        }
        if (format === 'attendee') {
          const [ts, sig] = req.headers['x-signature'].split('/');
          await assert.rejects(verifyWebhook(format, req.body, withHeader(req, 'x-signature', `${BigInt(ts) - 1n}/${sig}`), opts(format)), {
            reason: 'mismatch',
          });
          await assert.rejects(verifyWebhook(format, req.body, req.headers, opts(format, { identifier: 'chn_other' })), { reason: 'mismatch' });
        }
      });

      it('a wrong secret fails; one of several secrets (a rotation) passes', async () => {
        const req = reqs[format];
        const wrong = format === 'standard' ? 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' : 'whsec_not_the_secret';
        await assert.rejects(verifyWebhook(format, req.body, req.headers, opts(format, { secret: wrong })), { reason: 'mismatch' });
        assert.ok(await isValidWebhook(format, req.body, req.headers, opts(format, { secret: [wrong, eps[format].secret] })));
      });

      it(format === 'revolution' ? 'no timestamp: no replay window (as the document)' : 'a stale timestamp fails (5 minutes)', async () => {
        const req = reqs[format];
        const later = req.receivedAt + 301_000;
        const inside = req.receivedAt + 290_000;
        if (format === 'revolution') {
          assert.equal(WEBHOOK_TOLERANCE_SECS.revolution, null);
          assert.ok(await isValidWebhook(format, req.body, req.headers, opts(format, { now: later + 86_400_000 })));
          return;
        }
        assert.equal(WEBHOOK_TOLERANCE_SECS[format], 300);
        assert.ok(await isValidWebhook(format, req.body, req.headers, opts(format, { now: inside })));
        await assert.rejects(verifyWebhook(format, req.body, req.headers, opts(format, { now: later })), { reason: 'stale' });
        // From the future too.
        await assert.rejects(verifyWebhook(format, req.body, req.headers, opts(format, { now: req.receivedAt - 301_000 })), { reason: 'stale' });
        // The tolerance can be changed.
        assert.ok(await isValidWebhook(format, req.body, req.headers, opts(format, { now: later, toleranceSecs: 600 })));
      });
    });
  }

  it('a rotated standard secret: both old and new verify during the overlap', async () => {
    const rot = await mq.endpoints.rotateSecret(eps.standard.id);
    await mq.messages.publish({ type: 'checkin.scanned', channels: ['venue:hooks'], data: { after: 'rotation' } });
    const [, req] = await rx.waitAt('/standard', 2);
    assert.ok(await isValidWebhook('standard', req.body, req.headers, { secret: eps.standard.secret }));
    assert.ok(await isValidWebhook('standard', req.body, req.headers, { secret: rot.secret }));
    // Eventium also carries one v1= per secret.
    const rotE = await mq.endpoints.rotateSecret(eps.eventium.id);
    await mq.messages.publish({ type: 'checkin.scanned', channels: ['venue:hooks'], data: { after: 'rotation' } });
    const reqE = (await rx.waitAt('/eventium', 3)).at(-1);
    assert.equal(reqE.headers['x-eventium-signature'].split(',').filter((p) => p.startsWith('v1=')).length, 2);
    assert.ok(await isValidWebhook('eventium', reqE.body, reqE.headers, { secret: eps.eventium.secret }));
    assert.ok(await isValidWebhook('eventium', reqE.body, reqE.headers, { secret: rotE.secret }));
  });
});
