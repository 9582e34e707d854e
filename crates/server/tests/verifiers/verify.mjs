// Independent webhook verifiers for marquee's integration tests.
//
// Reads a JSON array of captured requests on stdin:
//   [{"format","secret","identifier"?,"headers":{lower-case name: value},"body"}]
// and prints a JSON array of {"ok": bool, "error"?: string}, one per request.
//
// Each verifier is the reference document's own code (types removed where it
// was TypeScript), or for eventium Stripe's official library, so marquee's
// signatures are checked by code marquee did not write.

import crypto from 'crypto';
import Stripe from 'stripe';

// --- 000 Revolution, "Verifying webhook signatures", verbatim. ---
export function verifySignature(
  payload,
  signature,
  secret,
) {
  const expected = crypto
    .createHmac('sha256', secret)
    .update(payload)
    .digest('hex');
  return crypto.timingSafeEqual(
    Buffer.from(signature),
    Buffer.from(`sha256=${expected}`),
  );
}

// --- 002 Eventium: "the same t=,v1= format Stripe uses". ---
const stripe = new Stripe('sk_test_unused');
function verifyEventium(body, header, secret) {
  // Throws on a bad or stale (> 300 s) signature.
  stripe.webhooks.constructEvent(body, header, secret, 300);
  return true;
}

// --- 003 Revento: X-Revento-Signature: sha256={HMAC-SHA256 of timestamp + "." + body}. ---
function verifyRevento(body, headers, secret) {
  const timestamp = headers['x-revento-timestamp'];
  const expected = 'sha256=' + crypto.createHmac('sha256', secret).update(timestamp + '.' + body).digest('hex');
  const got = headers['x-revento-signature'] ?? '';
  if (got.length !== expected.length) return false;
  return crypto.timingSafeEqual(Buffer.from(got), Buffer.from(expected));
}

// --- 004 attendee platform: the document's pseudocode, ported as-is. ---
function verifyAttendee(body, headers, identifier, secret) {
  const header = headers['x-signature'];
  // Split the header, as per our spec
  const parts = header.split('/');
  // Must be exactly 2 non-empty parts to it.
  if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
    throw new Error('Invalid Header');
  }
  const timestamp = BigInt(parts[0]);
  const signature = parts[1];
  // Optional: you can check for a discrepancy between the timestamp and current time.
  const nowNs = BigInt(Date.now()) * 1000000n;
  if (timestamp === 0n || timestamp < nowNs - 5n * 60n * 1000000000n) {
    throw new Error('Timestamp is out of range');
  }
  // Generate the message to verify.
  const message = identifier + '/' + parts[0] + '/' + body;
  const expectedSignature = crypto.createHmac('sha256', secret).update(message).digest('hex');
  if (signature !== expectedSignature) {
    throw new Error('Invalid signature');
  }
  return true;
}

function check(c) {
  switch (c.format) {
    case 'revolution':
      return verifySignature(c.body, c.headers['x-revolution-signature'] ?? '', c.secret);
    case 'eventium':
      return verifyEventium(c.body, c.headers['x-eventium-signature'] ?? '', c.secret);
    case 'revento':
      return verifyRevento(c.body, c.headers, c.secret);
    case 'attendee':
      return verifyAttendee(c.body, c.headers, c.identifier, c.secret);
    default:
      throw new Error('unknown format ' + c.format);
  }
}

let input = '';
process.stdin.setEncoding('utf8');
for await (const chunk of process.stdin) input += chunk;
const out = JSON.parse(input).map((c) => {
  try {
    return { ok: check(c) === true };
  } catch (e) {
    return { ok: false, error: String(e && e.message ? e.message : e) };
  }
});
process.stdout.write(JSON.stringify(out));
