// The Revolution document's (reference 000) TypeScript snippets, as written.
// Only the host differs: `rev` is created with marquee's baseUrl. This file is
// type-checked (strict) and compiled by `npm test`, then run by
// test/revolution.test.mjs against the real server.

import crypto from 'crypto';

import { revolution, type Revolution } from '@marquee/sdk';

export function makeRev(apiKey: string, baseUrl: string): Revolution {
  return revolution({ apiKey, baseUrl });
}

// "SDK helper" — the stream. (The document disconnects at the end of its
// snippet; here the test calls `stream.disconnect()` once the events arrived.)
export function sdkHelper(rev: Revolution) {
  // Using the SDK — auto-reconnects, typed events
  const stream = rev.signal.connect({ venue: 'stubbs-austin' });

  stream.on('fan_checkin', (e) => {
    console.log(`Fan ${e.fanId} just walked in at gate ${e.gate}`);
  });

  stream.on('drop_published', (e) => {
    console.log(`New drop: ${e.title} — $${e.priceUsd}`);
  });

  stream.on('attendance_milestone', (e) => {
    console.log(`${e.count} fans in — venue is ${Math.round(e.count / e.capacity * 100)}% full`);
  });

  // Disconnect cleanly
  // stream.disconnect();
  return stream;
}

// "REST Polling" — SDK equivalent.
export async function restPolling(rev: Revolution) {
  // SDK equivalent
  const checkins = await rev.signal.checkins({
    eventId: 1042,
    since: new Date('2026-05-14T21:00:00-05:00'),
  });

  const drops = await rev.signal.drops({ artistId: 'khruangbin', status: 'active' });
  const live  = await rev.signal.venueStatus('stubbs-austin');
  return { checkins, drops, live };
}

// "Webhooks" — register a webhook.
export async function registerWebhook(rev: Revolution) {
  // Register a webhook
  const hook = await rev.developers.createWebhook({
    url: 'https://yourapp.com/webhooks/signal',
    events: ['fan_checkin', 'drop_claimed', 'autograph_requested'],
    venueId: 'stubbs-austin',   // scope to a venue, or omit for all
    secret: 'whsec_xxxx',       // used to verify HMAC signature
  });
  return hook;
}

// "Verifying webhook signatures", verbatim.
export function verifySignature(
  payload: string,
  signature: string,
  secret: string,
): boolean {
  const expected = crypto
    .createHmac('sha256', secret)
    .update(payload)
    .digest('hex');
  return crypto.timingSafeEqual(
    Buffer.from(signature),
    Buffer.from(`sha256=${expected}`),
  );
}
