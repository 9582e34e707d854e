/**
 * Webhook verification for every format marquee delivers (README,
 * "Platform profiles"; `crates/core/src/profile/*.rs`):
 *
 * | format       | header(s)                                                                 | signed bytes (HMAC-SHA256)              | key                       | tolerance |
 * | ------------ | ------------------------------------------------------------------------- | --------------------------------------- | ------------------------- | --------- |
 * | `standard`   | `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64> …`     | `id.timestamp.body`                     | base64 after `whsec_`     | 5 min     |
 * | `revolution` | `X-Revolution-Signature: sha256=<hex>`                                    | `body`                                  | the secret's text         | none (no timestamp) |
 * | `eventium`   | `X-Eventium-Signature: t=<unix s>,v1=<hex>[,v1=…]`                        | `t.body`                                | the secret's text         | 5 min     |
 * | `revento`    | `X-Revento-Timestamp: <unix s>`, `X-Revento-Signature: sha256=<hex>`      | `timestamp.body`                        | the secret's text         | 5 min (marquee's; the document sets none) |
 * | `attendee`   | `X-Signature: <unix ns>/<hex>`                                            | `identifier/timestamp/body`             | the secret's text         | 5 min     |
 *
 * Signatures are compared in constant time; HMACs come from Web Crypto,
 * so this runs in Node ≥ 20, browsers, Deno, Bun and workers alike (the
 * functions are therefore async). Always pass the raw request body, byte for
 * byte, never a re-serialised object.
 */

import { WebhookVerificationError } from './errors.js';

export { WebhookVerificationError } from './errors.js';
export type { WebhookFailure } from './errors.js';

export type WebhookFormat = 'standard' | 'revolution' | 'eventium' | 'revento' | 'attendee';

export const WEBHOOK_FORMATS: readonly WebhookFormat[] = Object.freeze(['standard', 'revolution', 'eventium', 'revento', 'attendee']);

/** Each format's replay window in seconds (`null`: the format has no timestamp). */
export const WEBHOOK_TOLERANCE_SECS: Readonly<Record<WebhookFormat, number | null>> = Object.freeze({
  standard: 300,
  revolution: null,
  eventium: 300,
  revento: 300,
  attendee: 300,
});

/** Node's `req.headers`, a fetch `Headers`, or any `{ name: value }` record (names in any case). */
export type HeadersInput =
  | { get(name: string): string | null }
  | Record<string, string | string[] | undefined>
  | Iterable<[string, string]>;

export type RawBody = string | Uint8Array | ArrayBuffer;

export interface VerifyOptions {
  /**
   * The endpoint's secret as shown by marquee (`whsec_…`, or your own for
   * `revolution`). Several (e.g. old and new during a rotation): any may match.
   */
  secret: string | readonly string[];
  /** `attendee` only: the endpoint's channel identifier (`chn_…`), shown with its secret. */
  identifier?: string;
  /** Overrides the format's tolerance, in seconds (`Infinity`: no age check). */
  toleranceSecs?: number;
  /** The time to check against (default: now). */
  now?: Date | number;
}

const te = new TextEncoder();

function subtle(): SubtleCrypto {
  const s = (globalThis.crypto as Crypto | undefined)?.subtle;
  if (!s) throw new Error('Web Crypto (globalThis.crypto.subtle) is not available');
  return s;
}

async function hmac(key: Uint8Array, parts: Uint8Array[]): Promise<Uint8Array> {
  const k = await subtle().importKey('raw', new Uint8Array(key), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const len = parts.reduce((n, p) => n + p.length, 0);
  const msg = new Uint8Array(len);
  let o = 0;
  for (const p of parts) {
    msg.set(p, o);
    o += p.length;
  }
  return new Uint8Array(await subtle().sign('HMAC', k, msg));
}

function hex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

function base64(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s);
}

function fromBase64(s: string): Uint8Array | null {
  try {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

/**
 * Constant-time equality of two byte strings: the time depends only on the
 * lengths, never on where they differ.
 */
export function timingSafeEqual(a: Uint8Array | string, b: Uint8Array | string): boolean {
  const x = typeof a === 'string' ? te.encode(a) : a;
  const y = typeof b === 'string' ? te.encode(b) : b;
  if (x.length !== y.length) {
    // Spend the same time as an equal-length comparison, then fail.
    let d = 0;
    for (let i = 0; i < y.length; i++) d |= y[i]! ^ y[i]!;
    return d !== d;
  }
  let d = 0;
  for (let i = 0; i < x.length; i++) d |= x[i]! ^ y[i]!;
  return d === 0;
}

function header(headers: HeadersInput, name: string): string | undefined {
  const h = headers as { get?: unknown };
  if (typeof h.get === 'function') {
    const v = (headers as { get(n: string): string | null }).get(name);
    return v === null ? undefined : v;
  }
  const lower = name.toLowerCase();
  const entries: Iterable<[string, unknown]> =
    typeof (headers as Iterable<[string, string]>)[Symbol.iterator] === 'function'
      ? (headers as Iterable<[string, string]>)
      : Object.entries(headers as Record<string, unknown>);
  for (const [k, v] of entries) {
    if (k.toLowerCase() !== lower) continue;
    if (Array.isArray(v)) return v.join(', ');
    if (typeof v === 'string') return v;
  }
  return undefined;
}

function need(headers: HeadersInput, name: string): string {
  const v = header(headers, name);
  if (v === undefined || v === '') {
    throw new WebhookVerificationError('missing_header', `missing ${name} header`, name);
  }
  return v;
}

function bodyBytes(body: RawBody): Uint8Array {
  if (typeof body === 'string') return te.encode(body);
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  throw new WebhookVerificationError(
    'invalid_body',
    'pass the raw request body (string, Buffer/Uint8Array or ArrayBuffer), not a parsed object: the signature covers the exact bytes',
  );
}

function secretsOf(o: VerifyOptions): string[] {
  const list = typeof o.secret === 'string' ? [o.secret] : [...(o.secret ?? [])];
  if (!list.length || list.some((s) => typeof s !== 'string' || s === '')) throw new TypeError('a non-empty secret is required');
  return list;
}

function nowSecs(o: VerifyOptions): number {
  const n = o.now === undefined ? Date.now() : o.now instanceof Date ? o.now.getTime() : o.now;
  return n / 1000;
}

function checkAge(tsSecs: number, format: WebhookFormat, o: VerifyOptions): void {
  const tol = o.toleranceSecs ?? WEBHOOK_TOLERANCE_SECS[format];
  if (tol === null || tol === Infinity) return;
  if (!Number.isFinite(tsSecs) || Math.abs(nowSecs(o) - tsSecs) > tol) {
    throw new WebhookVerificationError('stale', `the signature's timestamp is more than ${tol} s from now`);
  }
}

/** Standard Webhooks: the HMAC key is the base64 after `whsec_`. */
function standardKey(secret: string): Uint8Array {
  const b = fromBase64(secret.startsWith('whsec_') ? secret.slice(6) : secret);
  if (!b || !b.length) throw new TypeError('a standard secret is whsec_ followed by base64');
  return b;
}

const mismatch = () => new WebhookVerificationError('mismatch', 'no signature matches the body with the given secret');

async function verifyStandard(body: Uint8Array, headers: HeadersInput, o: VerifyOptions): Promise<void> {
  const id = need(headers, 'webhook-id');
  const tsText = need(headers, 'webhook-timestamp').trim();
  const sigs = need(headers, 'webhook-signature');
  if (!/^\d+$/.test(tsText)) throw new WebhookVerificationError('malformed', 'webhook-timestamp is not Unix seconds', 'webhook-timestamp');
  const candidates = sigs
    .split(' ')
    .filter((s) => s.startsWith('v1,'))
    .map((s) => s.slice(3));
  if (!candidates.length) throw new WebhookVerificationError('malformed', 'webhook-signature has no v1 signature', 'webhook-signature');
  let ok = false;
  for (const secret of secretsOf(o)) {
    const expected = base64(await hmac(standardKey(secret), [te.encode(`${id}.${tsText}.`), body]));
    for (const c of candidates) ok = timingSafeEqual(c, expected) || ok;
  }
  if (!ok) throw mismatch();
  checkAge(Number(tsText), 'standard', o);
}

async function verifyRevolution(body: Uint8Array, headers: HeadersInput, o: VerifyOptions): Promise<void> {
  const got = need(headers, 'x-revolution-signature').trim();
  if (!got.startsWith('sha256=')) {
    throw new WebhookVerificationError('malformed', 'X-Revolution-Signature is not sha256=<hex>', 'x-revolution-signature');
  }
  let ok = false;
  for (const secret of secretsOf(o)) {
    ok = timingSafeEqual(got, `sha256=${hex(await hmac(te.encode(secret), [body]))}`) || ok;
  }
  // The format carries no timestamp (as in the document): no replay window.
  if (!ok) throw mismatch();
}

async function verifyEventium(body: Uint8Array, headers: HeadersInput, o: VerifyOptions): Promise<void> {
  const h = need(headers, 'x-eventium-signature');
  let t: string | undefined;
  const v1: string[] = [];
  for (const item of h.split(',')) {
    const i = item.indexOf('=');
    if (i < 0) throw new WebhookVerificationError('malformed', 'X-Eventium-Signature: an item is not key=value', 'x-eventium-signature');
    const k = item.slice(0, i).trim();
    const v = item.slice(i + 1).trim();
    if (k === 't') t = v;
    else if (k === 'v1') v1.push(v);
  }
  if (t === undefined || !/^\d+$/.test(t)) {
    throw new WebhookVerificationError('malformed', 'X-Eventium-Signature has no t=<unix seconds>', 'x-eventium-signature');
  }
  if (!v1.length) throw new WebhookVerificationError('malformed', 'X-Eventium-Signature has no v1= signature', 'x-eventium-signature');
  let ok = false;
  for (const secret of secretsOf(o)) {
    const expected = hex(await hmac(te.encode(secret), [te.encode(`${t}.`), body]));
    for (const c of v1) ok = timingSafeEqual(c, expected) || ok;
  }
  if (!ok) throw mismatch();
  checkAge(Number(t), 'eventium', o);
}

async function verifyRevento(body: Uint8Array, headers: HeadersInput, o: VerifyOptions): Promise<void> {
  // The document signs the timestamp exactly as sent in its header.
  const tsText = need(headers, 'x-revento-timestamp');
  const got = need(headers, 'x-revento-signature').trim();
  if (!/^\s*\d+\s*$/.test(tsText)) {
    throw new WebhookVerificationError('malformed', 'X-Revento-Timestamp is not Unix seconds', 'x-revento-timestamp');
  }
  let ok = false;
  for (const secret of secretsOf(o)) {
    const expected = `sha256=${hex(await hmac(te.encode(secret), [te.encode(`${tsText}.`), body]))}`;
    ok = timingSafeEqual(got, expected) || ok;
  }
  if (!ok) throw mismatch();
  checkAge(Number(tsText.trim()), 'revento', o);
}

async function verifyAttendee(body: Uint8Array, headers: HeadersInput, o: VerifyOptions): Promise<void> {
  if (!o.identifier) throw new TypeError('attendee webhooks need options.identifier (the endpoint\'s chn_… identifier)');
  const h = need(headers, 'x-signature');
  const parts = h.split('/');
  if (parts.length !== 2 || !parts[0] || !parts[1]) {
    throw new WebhookVerificationError('malformed', 'X-Signature is not <timestamp>/<signature>', 'x-signature');
  }
  const [ts, sig] = parts as [string, string];
  if (!/^\d+$/.test(ts)) throw new WebhookVerificationError('malformed', 'the X-Signature timestamp is not nanoseconds', 'x-signature');
  let ok = false;
  for (const secret of secretsOf(o)) {
    const expected = hex(await hmac(te.encode(secret), [te.encode(`${o.identifier}/${ts}/`), body]));
    ok = timingSafeEqual(sig, expected) || ok;
  }
  if (!ok) throw mismatch();
  const ns = BigInt(ts);
  if (ns === 0n) throw new WebhookVerificationError('stale', 'the X-Signature timestamp is 0');
  const tol = o.toleranceSecs ?? WEBHOOK_TOLERANCE_SECS.attendee;
  if (tol !== null && tol !== Infinity) {
    const nowNs = BigInt(Math.round(nowSecs(o) * 1000)) * 1_000_000n;
    const win = BigInt(Math.round(tol * 1000)) * 1_000_000n;
    if (ns < nowNs - win || ns > nowNs + win) {
      throw new WebhookVerificationError('stale', `the signature's timestamp is more than ${tol} s from now`);
    }
  }
}

const VERIFIERS: Record<WebhookFormat, (b: Uint8Array, h: HeadersInput, o: VerifyOptions) => Promise<void>> = {
  standard: verifyStandard,
  revolution: verifyRevolution,
  eventium: verifyEventium,
  revento: verifyRevento,
  attendee: verifyAttendee,
};

/**
 * Verifies a webhook request and answers its parsed JSON body. Throws a
 * {@link WebhookVerificationError} (`reason`: `missing_header`, `malformed`,
 * `mismatch`, `stale`, `invalid_body`) when it does not verify.
 *
 * ```ts
 * app.post('/hooks', express.raw({ type: 'application/json' }), async (req, res) => {
 *   const event = await verifyWebhook('eventium', req.body, req.headers, { secret: process.env.SECRET });
 * });
 * ```
 */
export async function verifyWebhook<T = unknown>(format: WebhookFormat, body: RawBody, headers: HeadersInput, options: VerifyOptions): Promise<T> {
  const verify = VERIFIERS[format];
  if (!verify) throw new TypeError(`unknown webhook format ${JSON.stringify(format)}; one of ${WEBHOOK_FORMATS.join(', ')}`);
  const bytes = bodyBytes(body);
  await verify(bytes, headers, options);
  const text = new TextDecoder().decode(bytes);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new WebhookVerificationError('invalid_body', 'the signed body is not JSON');
  }
}

/** Like {@link verifyWebhook}, answering true / false instead of throwing. */
export async function isValidWebhook(format: WebhookFormat, body: RawBody, headers: HeadersInput, options: VerifyOptions): Promise<boolean> {
  try {
    await verifyWebhook(format, body, headers, options);
    return true;
  } catch (e) {
    if (e instanceof WebhookVerificationError) return false;
    throw e;
  }
}

/** A verifier bound to one format and secret. */
export function webhookVerifier(format: WebhookFormat, options: VerifyOptions) {
  return {
    verify: <T = unknown>(body: RawBody, headers: HeadersInput) => verifyWebhook<T>(format, body, headers, options),
    isValid: (body: RawBody, headers: HeadersInput) => isValidWebhook(format, body, headers, options),
  };
}

/**
 * Signs a body as marquee would (for your own tests of a receiver): answers
 * the headers of one delivery.
 */
export async function signWebhook(
  format: WebhookFormat,
  body: RawBody,
  options: { secret: string; identifier?: string; id?: string; timestamp?: Date | number },
): Promise<Record<string, string>> {
  const bytes = bodyBytes(body);
  const ms = options.timestamp === undefined ? Date.now() : options.timestamp instanceof Date ? options.timestamp.getTime() : options.timestamp;
  const t = Math.floor(ms / 1000).toString();
  const key = te.encode(options.secret);
  switch (format) {
    case 'standard': {
      const id = options.id ?? `dlv_${Date.now()}`;
      const sig = base64(await hmac(standardKey(options.secret), [te.encode(`${id}.${t}.`), bytes]));
      return { 'webhook-id': id, 'webhook-timestamp': t, 'webhook-signature': `v1,${sig}` };
    }
    case 'revolution':
      return { 'x-revolution-signature': `sha256=${hex(await hmac(key, [bytes]))}` };
    case 'eventium':
      return { 'x-eventium-signature': `t=${t},v1=${hex(await hmac(key, [te.encode(`${t}.`), bytes]))}` };
    case 'revento':
      return { 'x-revento-timestamp': t, 'x-revento-signature': `sha256=${hex(await hmac(key, [te.encode(`${t}.`), bytes]))}` };
    case 'attendee': {
      if (!options.identifier) throw new TypeError('attendee signing needs identifier');
      const ns = (BigInt(ms) * 1_000_000n).toString();
      return { 'x-signature': `${ns}/${hex(await hmac(key, [te.encode(`${options.identifier}/${ns}/`), bytes]))}` };
    }
  }
}
