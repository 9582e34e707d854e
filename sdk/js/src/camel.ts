/** snake_case → camelCase, for the Revolution facade's objects. */

const SNAKE = /^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$/;

/**
 * `price_usd` → `priceUsd`, `last_checkin_at` → `lastCheckinAt`. Only
 * lower-case snake_case keys are renamed: `NORTH_DOOR`, `_id`, `Gate_A` or
 * `kebab-key` (data used as keys, like gate names) stay as they are.
 */
export function camelKey(key: string): string {
  if (!SNAKE.test(key)) return key;
  return key.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
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
