// Type-level checks of the public API as a consumer sees it (compiled, not run).
import {
  Marquee,
  MarqueeApiError,
  verifyWebhook,
  type StreamEvent,
  type Message,
  type FanCheckin,
  type RevolutionEventMap,
} from '@marquee/sdk';
import { isValidWebhook } from '@marquee/sdk/webhooks';
import { revolution, REVOLUTION_EVENT_TYPES } from '@marquee/sdk/revolution';

export async function native(apiKey: string) {
  const mq = new Marquee({ apiKey, baseUrl: 'http://127.0.0.1:7400' });
  const m: Message<{ fan_id: string }> = await mq.messages.publish({ type: 'fan_checkin', channels: ['venue:a'], data: { fan_id: 'f' } });
  const fan: string = m.data.fan_id;
  const page = await mq.messages.list({ channel: 'venue:a', limit: 10 });
  const next: string | null = page.next_cursor;
  const s = mq.stream({ channels: ['venue:a'], backoff: { maxMs: 10_000 } });
  s.on('message', (e: StreamEvent) => e.payload);
  s.on('disconnected', (d) => (d.willReconnect ? d.meaning : d.code));
  s.on('error', (e) => e.closeCode ?? e.code);
  try {
    await mq.endpoints.get('ep_x');
  } catch (e) {
    if (e instanceof MarqueeApiError) return e.status + e.code;
  }
  const ok: boolean = await isValidWebhook('eventium', '{}', {}, { secret: 'x' });
  const body = await verifyWebhook<{ id: string }>('standard', '{}', new Headers(), { secret: 'whsec_AAAA' });
  return [fan, next, ok, body.id];
}

export function rev(apiKey: string) {
  const r = revolution({ apiKey, baseUrl: 'http://127.0.0.1:7400', stream: { heartbeatIntervalMs: 5000 } });
  const stream = r.signal.connect({ artist: 'khruangbin' });
  stream.on('signal_posted', (e, meta) => `${e.type}:${e.body}:${meta.cursor}`);
  stream.on('venue_opened', (e) => e.capacity.toFixed());
  stream.on('event', (x) => (x.type === 'fan_checkin' ? x.data.fanId : x.meta.id));
  stream.on('error', (e) => e.meaning);
  const f: FanCheckin = { fanId: 'f', eventId: 1, gate: 'A', ts: 1 };
  const t: keyof RevolutionEventMap = REVOLUTION_EVENT_TYPES[0]!;
  return [f, t];
}
