// Test helpers: start the real `marquee` binary on a free port with its own
// data dir, create organizations and keys through its admin API, and run a
// tiny HTTP receiver for webhooks.
//
// The binary is MARQUEE_BIN, else $CARGO_TARGET_DIR/debug/marquee, else the
// repository's target/debug/marquee when this package sits inside it. So a
// copy of sdk/js outside the repository runs with MARQUEE_BIN alone.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

export function marqueeBin() {
  const candidates = [];
  if (process.env.MARQUEE_BIN) candidates.push(process.env.MARQUEE_BIN);
  if (process.env.CARGO_TARGET_DIR) candidates.push(path.join(process.env.CARGO_TARGET_DIR, 'debug', 'marquee'));
  // Inside the repository: <repo>/sdk/js/test → <repo>/target/debug/marquee.
  let dir = path.resolve(here, '..');
  for (let i = 0; i < 4; i++) {
    dir = path.dirname(dir);
    if (existsSync(path.join(dir, 'Cargo.toml'))) {
      candidates.push(path.join(dir, 'target', 'debug', 'marquee'));
      break;
    }
  }
  for (const c of candidates) if (existsSync(c)) return c;
  throw new Error(
    `marquee binary not found (tried ${candidates.join(', ') || 'nothing'}); build it with \`cargo build -p marquee-server\` and set MARQUEE_BIN`,
  );
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it answers truthy; throws after `timeout` ms with `what`. */
export async function waitFor(fn, { timeout = 10_000, interval = 20, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(interval);
  }
}

const live = new Set();
process.on('exit', () => {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
});

const ADMIN = 'test-admin-token';

export class Server {
  constructor({ port, dataDir, args }) {
    this.port = port;
    this.dataDir = dataDir;
    this.args = args;
    this.url = `http://127.0.0.1:${port}`;
    this.proc = null;
    this.log = '';
  }

  /** Starts a server; `args` are extra `serve` flags. */
  static async start({ args = [], port } = {}) {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'marquee-jssdk-'));
    const s = new Server({ port: port ?? (await freePort()), dataDir, args });
    await s.spawn();
    return s;
  }

  async spawn() {
    const bin = marqueeBin();
    const argv = [
      'serve',
      '--listen', `127.0.0.1:${this.port}`,
      '--data-dir', this.dataDir,
      '--admin-token', ADMIN,
      '--allow-private-endpoints',
      ...this.args,
    ];
    for (let tries = 0; ; tries++) {
      const proc = spawn(bin, argv, {
        env: { ...process.env, MARQUEE_LOG: process.env.TEST_LOG ? 'info' : 'warn', NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      live.add(proc);
      this.proc = proc;
      const onData = (d) => {
        this.log += d.toString();
        if (process.env.TEST_LOG) process.stderr.write(d);
      };
      proc.stdout.on('data', onData);
      proc.stderr.on('data', onData);
      const exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve({ code, sig })));
      proc.exitedPromise = exited;
      exited.then(() => live.delete(proc));
      let up = true;
      exited.then(() => (up = false));
      const ready = (async () => {
        while (up) {
          try {
            const r = await fetch(`${this.url}/ping`);
            if (r.ok) return 'ready';
          } catch {
            /* not yet */
          }
          await sleep(25);
        }
      })();
      let timer;
      const timeout = new Promise((r) => (timer = setTimeout(() => r('timeout'), 30_000)));
      const r = await Promise.race([ready, exited, timeout]);
      clearTimeout(timer);
      if (r === 'ready') return;
      if (r === 'timeout') throw new Error(`marquee did not start within 30 s:\n${this.log}`);
      // Exited: the port may have been taken meanwhile; try another once.
      if (tries < 2 && /address|in use/i.test(this.log)) {
        await sleep(200);
        continue;
      }
      throw new Error(`marquee exited (${JSON.stringify(r)}):\n${this.log}`);
    }
  }

  /** Stops the process (SIGTERM: graceful, streams closed with 1001; SIGKILL: crash). */
  async stop(signal = 'SIGTERM') {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill(signal);
    const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
    await p.exitedPromise;
    clearTimeout(t);
  }

  /** Stops and starts again on the same port and data dir. */
  async restart(signal = 'SIGTERM', { downMs = 0, whileDown } = {}) {
    await this.stop(signal);
    if (whileDown) await whileDown();
    if (downMs) await sleep(downMs);
    await this.spawn();
  }

  async close() {
    await this.stop('SIGKILL');
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  async admin(method, p, body) {
    const r = await fetch(this.url + p, {
      method,
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
    return JSON.parse(text);
  }

  /** A new organization (with `profiles`) and a key of `tier`: `{ org, key, keyId }`. */
  async tenant({ profiles = [], tier = 'pro', name = 'sdk-test' } = {}) {
    const org = await this.admin('POST', '/admin/v1/orgs', { name, profiles });
    const k = await this.admin('POST', `/admin/v1/orgs/${org.id}/keys`, { tier });
    return { org: org.id, key: k.key, keyId: k.id };
  }

  async revokeKey(keyId) {
    return this.admin('POST', `/admin/v1/keys/${keyId}/revoke`);
  }
}

/** A webhook receiver capturing every request (raw body bytes, headers as sent). */
export class Receiver {
  constructor() {
    this.requests = [];
    this.status = 200;
    this.server = createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        this.requests.push({
          method: req.method,
          path: req.url,
          headers: req.headers,
          rawHeaders: req.rawHeaders,
          body,
          text: body.toString('utf8'),
          receivedAt: Date.now(),
        });
        res.writeHead(this.status, { 'content-type': 'text/plain' });
        res.end('ok');
      });
    });
  }

  async start() {
    await new Promise((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  /** Requests to `path`. */
  at(p) {
    return this.requests.filter((r) => r.path === p);
  }

  async waitAt(p, n = 1, timeout = 15_000) {
    await waitFor(() => this.at(p).length >= n, { timeout, what: `${n} request(s) at ${p}` });
    return this.at(p);
  }

  close() {
    return new Promise((r) => {
      this.server.closeAllConnections?.();
      this.server.close(() => r());
    });
  }
}
