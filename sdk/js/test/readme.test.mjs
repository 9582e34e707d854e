// The main README's "JavaScript / TypeScript SDK" section, as printed: its
// ```ts blocks, joined in order into one module with only the key and the
// host substituted, type-checked (strict) and run against the real server
// on data published through the native API. Skipped when this package is
// copied outside the repository (no README next to it).

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

import ts from 'typescript';

import { revolution } from '../dist/index.js';
import { Server } from './helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const readme = path.resolve(here, '..', '..', '..', 'README.md');
const SECTION = '## JavaScript / TypeScript SDK';

/** The ```ts blocks of the section, in order. */
function blocks() {
  const text = readFileSync(readme, 'utf8');
  const start = text.indexOf(`\n${SECTION}\n`);
  assert.ok(start >= 0, `README has no "${SECTION}" section`);
  const end = text.indexOf('\n## ', start + 1);
  const section = text.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
}

/** Type-checks `file` (strict, as an app using the package would) and emits it next to itself. */
function compile(file) {
  const program = ts.createProgram([file], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
    types: [],
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

describe('README: the JavaScript / TypeScript SDK section, as written', { skip: !existsSync(readme) && 'no README.md (package outside the repository)' }, () => {
  let server;
  before(async () => {
    server = await Server.start();
  });
  after(async () => {
    await server?.close();
  });

  it('its blocks type-check and run against the real server (only the key and host substituted)', async () => {
    const { key } = await server.tenant({ profiles: ['revolution'], name: 'readme' });
    const code = blocks();
    assert.ok(code.length >= 2, 'a stream block and a REST block');
    const joined = code.join('\n');
    const KEY = "'sk_live_…'";
    const HOST = "'http://127.0.0.1:7400'";
    assert.ok(joined.includes(`revolution({ apiKey: ${KEY}, baseUrl: ${HOST} })`), 'the README creates rev with a key and a host');
    const source = `${joined.replaceAll(KEY, JSON.stringify(key)).replaceAll(HOST, JSON.stringify(server.url))}
export { rev, stream, checkins, drops, live };
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
  });
});
