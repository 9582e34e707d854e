// The main README's JavaScript as printed: the ```ts blocks of the
// "JavaScript / TypeScript SDK" section and of "Revolution (fan app)", joined
// in order into one module with only the key and the host substituted,
// type-checked (strict) and run against the real server on data published
// through the native API. Skipped when this package is copied outside the
// repository (no README next to it).

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

import ts from 'typescript';

import { revolution } from '../dist/index.js';
import { Receiver, Server } from './helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const readme = path.resolve(here, '..', '..', '..', 'README.md');
const SDK_SECTION = '## JavaScript / TypeScript SDK';
const REV_SECTION = '### Revolution (fan app; `revolution`)';

/** The ```ts blocks of a README section (up to the next heading of its level or above), in order. */
function blocks(heading) {
  const text = readFileSync(readme, 'utf8');
  const start = text.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `README has no "${heading}" section`);
  // The next `##` / `###` heading (a `# …` line is a shell comment in a code block).
  const level = heading.split(' ')[0].length;
  const next = text.slice(start + 1).search(new RegExp(`\\n#{2,${level}} `));
  const section = text.slice(start, next < 0 ? undefined : start + 1 + next);
  return [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
}

/** Type-checks `file` (strict, as an app using the package would) and emits it next to itself. */
function compile(file) {
  const program = ts.createProgram([file], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
    // The Revolution section's verifier uses node's crypto and Buffer.
    types: ['node'],
    typeRoots: [path.resolve(here, '..', 'node_modules', '@types')],
    strict: true,
    skipLibCheck: true,
  });
  const emitted = program.emit();
  const diags = [...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics].map((d) =>
    ts.flattenDiagnosticMessageText(d.messageText, '\n'),
  );
  assert.deepEqual(diags, [], 'the README snippets type-check');
  return file.replace(/\.ts$/, '.js');
}

describe('README: the JavaScript / TypeScript SDK and Revolution sections, as written', { skip: !existsSync(readme) && 'no README.md (package outside the repository)' }, () => {
  let server;
  before(async () => {
    server = await Server.start();
  });
  after(async () => {
    await server?.close();
  });

  it('its blocks type-check and run against the real server (only the key and host substituted)', async () => {
    const { key } = await server.tenant({ profiles: ['revolution'], name: 'readme' });
    const code = blocks(SDK_SECTION);
    assert.ok(code.length >= 2, 'a stream block and a REST block');
    const rev = blocks(REV_SECTION);
    assert.equal(rev.length, 2, 'the createWebhook block and the verifier');
    const joined = [...code, ...rev].join('\n');
    const KEY = "'sk_live_…'";
    const HOST = "'http://127.0.0.1:7400'";
    assert.ok(joined.includes(`revolution({ apiKey: ${KEY}, baseUrl: ${HOST} })`), 'the README creates rev with a key and a host');
    const source = `${joined.replaceAll(KEY, JSON.stringify(key)).replaceAll(HOST, JSON.stringify(server.url))}
export { rev, stream, checkins, drops, live, hook };
`;
    const dir = path.resolve(here, '..', 'dist-test', 'readme');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'readme-snippets.ts');
    writeFileSync(file, source);
    const js = compile(file);

    // What the snippets read: published through the native API.
    const mq = revolution({ apiKey: key, baseUrl: server.url }).marquee;
    const now = Date.now();
    const pub = (type, channels, data) => mq.messages.publish({ type, channels, data });
    await pub('venue_opened', ['venue:stubbs-austin'], { venue_id: 'stubbs-austin', event_id: 1042, capacity: 2000, ts: now - 1000 });
    await pub('fan_checkin', ['venue:stubbs-austin'], { fan_id: 'fan_0xc3f', event_id: 1042, gate: 'MAIN', ts: now });
    await pub('drop_published', ['artist:khruangbin'], { artist_id: 'khruangbin', drop_id: 'drp_1', title: 'Tour poster, signed', price_usd: 35, quantity: 200 });

    const m = await import(pathToFileURL(js).href);
    assert.equal(m.checkins.data.length, 1);
    assert.deepEqual(
      [m.checkins.data[0].fanId, m.checkins.data[0].eventId, m.checkins.data[0].gate, m.checkins.data[0].ts],
      ['fan_0xc3f', '1042', 'MAIN', now],
    );
    assert.deepEqual(m.drops.data.map((d) => [d.dropId, d.title, d.priceUsd, d.remaining, d.status]), [['drp_1', 'Tour poster, signed', 35, 200, 'active']]);
    assert.deepEqual([m.live.status, m.live.eventId, m.live.count, m.live.capacity, m.live.gates], ['open', '1042', 1, 2000, { MAIN: 1 }]);
    // The stream block disconnects at its end, as the document's does.
    await m.stream.disconnect();
    assert.equal(m.stream.native.state, 'closed');

    // createWebhook: registered as written (scoped to stubbs-austin, which
    // gets no more messages here: nothing is sent to yourapp.com).
    assert.match(m.hook.id, /^ep_/);
    assert.deepEqual([m.hook.url, m.hook.events, m.hook.venueId], [
      'https://yourapp.com/webhooks/signal', ['fan_checkin', 'drop_claimed', 'autograph_requested'], 'stubbs-austin',
    ]);
    await m.rev.developers.deleteWebhook(m.hook.id);

    // The README's verifier on a real delivery signed with the same secret.
    const rx = await new Receiver().start();
    try {
      const local = await m.rev.developers.createWebhook({ url: `${rx.url}/signal`, venueId: 'readme-venue', secret: 'whsec_xxxx' });
      await pub('fan_checkin', ['venue:readme-venue'], { fan_id: 'fan_1', event_id: 7, gate: 'MAIN', ts: now });
      const [req] = await rx.waitAt('/signal', 1);
      const sig = req.headers['x-revolution-signature'];
      assert.equal(m.verifySignature(req.text, sig, 'whsec_xxxx'), true);
      assert.equal(m.verifySignature(req.text.replace('MAIN', 'SIDE'), sig, 'whsec_xxxx'), false);
      await m.rev.developers.deleteWebhook(local.id);
    } finally {
      await rx.close();
    }
  });
});
