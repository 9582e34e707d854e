// The stream on a global (browser-style) WebSocket: Node 20's
// --experimental-websocket, i.e. undici's WHATWG WebSocket, without `ws`.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Server } from './helpers.mjs';

let server;
let key;
before(async () => {
  server = await Server.start();
  ({ key } = await server.tenant());
});
after(() => server?.close());

it('streams on the global WebSocket (key in the query) and reports a refused key without retrying', async () => {
  const script = fileURLToPath(new URL('./fixtures/global-websocket.mjs', import.meta.url));
  const flags = process.versions.node.split('.')[0] < 22 ? ['--experimental-websocket'] : [];
  const stdout = await new Promise((resolve, reject) =>
    execFile(process.execPath, [...flags, script, server.url, key, 'sk_live_wrong'], { timeout: 20_000 }, (err, out, errOut) =>
      err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out),
    ),
  );
  const out = JSON.parse(stdout.trim().split('\n').at(-1));
  assert.equal(out.globalWebSocket, true);
  assert.deepEqual(out.events, [0, 1, 2]);
  assert.ok(out.url.startsWith('ws://') && !out.url.includes('apiKey'), 'the reported URL carries no key');
  assert.equal(out.refusal.status, 401);
  assert.equal(out.refusal.willReconnect, false);
});
