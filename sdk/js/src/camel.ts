/** snake_case → camelCase, for the Revolution facade's objects. */

/** `price_usd` → `priceUsd`, `last_checkin_at` → `lastCheckinAt`; other keys unchanged. */
export function camelKey(key: string): string {
  if (!key.includes('_')) return key;
  const lead = /^_+/.exec(key)?.[0] ?? '';
  const body = key.slice(lead.length).replace(/_+([a-zA-Z0-9])/g, (_m, c: string) => c.toUpperCase());
  return lead + body;
}

/** Renames every key of plain objects, also nested ones and those inside arrays. */
export function camelize<T = unknown>(value: unknown): T {
  if (Array.isArray(value)) return value.map((v) => camelize(v)) as T;
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[camelKey(k)] = camelize(v);
    return out as T;
  }
  return value as T;
}
