// marquee dashboard: one vanilla script, no build step, no dependencies.
//
// Rules this file keeps:
// - Every piece of data from the server is put on the page as text
//   (`textContent` / text nodes through `h()`); nothing is ever assigned to
//   innerHTML, so a payload containing <script> shows as text.
// - The credential lives in sessionStorage (this tab only) and goes out as a
//   request header (`x-api-key` or `Authorization: Bearer`), never in a URL.
//   Live tail uses fetch() streaming for the same reason: EventSource cannot
//   set headers.
'use strict';

(function () {
  const STORE_KEY = 'marquee.dashboard.credential';
  const TAIL_MAX = 200;

  // ---- DOM helpers --------------------------------------------------------

  /** Builds an element; string/number children become text nodes. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = String(v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    append(el, children);
    return el;
  }
  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }
  const $ = (id) => document.getElementById(id);

  function fmtTime(s) {
    if (!s) return '—';
    const d = new Date(s);
    if (isNaN(d)) return String(s);
    return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
  }
  function ago(s) {
    if (!s) return 'never';
    const secs = Math.round((Date.now() - new Date(s).getTime()) / 1000);
    if (secs < 60) return secs + ' s ago';
    if (secs < 3600) return Math.round(secs / 60) + ' min ago';
    if (secs < 86400) return Math.round(secs / 3600) + ' h ago';
    return Math.round(secs / 86400) + ' d ago';
  }
  function pct(x) { return x === null || x === undefined ? '—' : (x * 100).toFixed(x === 1 || x === 0 ? 0 : 1) + ' %'; }
  function pretty(v) {
    if (typeof v === 'string') {
      try { return JSON.stringify(JSON.parse(v), null, 2); } catch (_) { return v; }
    }
    return JSON.stringify(v, null, 2);
  }
  function badge(kind, text) { return h('span', { class: 'badge ' + kind }, text); }
  function empty(title, ...what) { return h('div', { class: 'empty' }, h('strong', {}, title), ...what); }
  function errorBox(e) { return h('p', { class: 'error', role: 'alert' }, e && e.message ? e.message : String(e)); }
  function stat(n, label) { return h('div', { class: 'stat' }, h('span', { class: 'n' }, n), h('span', { class: 'l' }, label)); }
  function toIso(local) { return local ? new Date(local).toISOString() : null; }

  // ---- the API ------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }

  function credential() {
    try { return JSON.parse(sessionStorage.getItem(STORE_KEY) || 'null'); } catch (_) { return null; }
  }
  function authHeaders(cred) {
    if (!cred) return {};
    return cred.kind === 'admin' ? { authorization: 'Bearer ' + cred.value } : { 'x-api-key': cred.value };
  }

  async function api(method, path, body, cred) {
    const c = cred || credential();
    const init = { method, headers: Object.assign({ accept: 'application/json' }, authHeaders(c)), cache: 'no-store' };
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let resp;
    try { resp = await fetch(path, init); } catch (e) { throw new ApiError(0, 'network', 'The server did not answer (' + e.message + ').'); }
    const text = await resp.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (_) { /* not JSON */ }
    if (!resp.ok) {
      const err = json && json.error ? json.error : { code: 'http_' + resp.status, message: 'HTTP ' + resp.status };
      throw new ApiError(resp.status, err.code, err.message);
    }
    return json;
  }
  const enc = encodeURIComponent;

  // ---- sign-in ------------------------------------------------------------

  async function signIn(value) {
    value = value.trim();
    if (!value) throw new ApiError(0, 'empty', 'Enter an API key or the admin token.');
    const cred = { kind: value.startsWith('sk_') ? 'key' : 'admin', value };
    try {
      if (cred.kind === 'key') {
        await api('GET', '/v1/endpoints?limit=1', undefined, cred);
      } else {
        const orgs = await api('GET', '/admin/v1/orgs', undefined, cred);
        cred.orgs = (orgs.data || []).length;
      }
    } catch (e) {
      if (e.status === 401 || e.status === 403) {
        throw new ApiError(e.status, e.code, (cred.kind === 'key' ? 'That API key was refused: ' : 'That admin token was refused: ') + e.message);
      }
      throw e;
    }
    sessionStorage.setItem(STORE_KEY, JSON.stringify({ kind: cred.kind, value: cred.value }));
  }

  function signOut() {
    stopTail();
    sessionStorage.removeItem(STORE_KEY);
    location.hash = '';
    render();
  }

  // ---- routing ------------------------------------------------------------

  const ORG_NAV = [
    ['#/overview', 'Overview'], ['#/endpoints', 'Endpoints'], ['#/tail', 'Live tail'],
    ['#/attendance', 'Attendance'], ['#/event-types', 'Event types'], ['/dashboard/api', 'API reference'],
  ];
  const ADMIN_NAV = [['#/orgs', 'Organizations'], ['/dashboard/api', 'API reference']];

  let renderSeq = 0;

  function route() {
    const parts = (location.hash || '').replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
    return parts;
  }

  async function render() {
    const seq = ++renderSeq;
    stopTail();
    const cred = credential();
    const signin = $('signin'), view = $('view'), nav = $('nav'), who = $('who');
    if (!cred) {
      signin.hidden = false; view.hidden = true; nav.hidden = true; who.hidden = true;
      document.title = 'Sign in · marquee dashboard';
      return;
    }
    signin.hidden = true; view.hidden = false; nav.hidden = false; who.hidden = false;
    $('who-label').textContent = cred.kind === 'admin' ? 'Signed in with the admin token' : 'Signed in with key ' + cred.value.slice(0, 12) + '…';
    let parts = route();
    const items = cred.kind === 'admin' ? ADMIN_NAV : ORG_NAV;
    if (!parts.length || !items.some(([href]) => href === '#/' + parts[0])) {
      parts = [cred.kind === 'admin' ? 'orgs' : 'overview'];
    }
    const links = clear($('nav-links'));
    for (const [href, label] of items) {
      const current = href === '#/' + parts[0];
      links.appendChild(h('li', {}, h('a', { href, 'aria-current': current ? 'page' : null }, label)));
    }
    clear(view);
    const page = PAGES[parts[0]];
    try {
      await page(view, parts.slice(1), () => seq === renderSeq);
    } catch (e) {
      if (seq !== renderSeq) return;
      if (e.status === 401) { sessionStorage.removeItem(STORE_KEY); render(); showSigninError('Your credential is no longer accepted: ' + e.message); return; }
      view.appendChild(errorBox(e));
    }
  }

  /** The page heading; it takes focus so keyboard and screen-reader users land on the new page. */
  function heading(view, text) {
    const el = h('h1', { tabindex: '-1' }, text);
    view.appendChild(el);
    document.title = text + ' · marquee dashboard';
    el.focus({ preventScroll: true });
    return el;
  }

  function showSigninError(msg) {
    const el = $('signin-error');
    el.textContent = msg;
    el.hidden = false;
  }

  // ---- shared data --------------------------------------------------------

  async function listAll(path, maxPages) {
    const out = [];
    let after = null;
    for (let i = 0; i < (maxPages || 10); i++) {
      const sep = path.includes('?') ? '&' : '?';
      const page = await api('GET', path + sep + 'limit=100' + (after ? '&after=' + enc(after) : ''));
      out.push(...(page.data || []));
      if (!page.has_more || !page.next_cursor) break;
      after = page.next_cursor;
    }
    return out;
  }

  async function endpointsWithStats() {
    const eps = await listAll('/v1/endpoints', 5);
    const stats = await Promise.all(eps.map((e) => api('GET', '/v1/endpoints/' + enc(e.id) + '/stats').catch(() => null)));
    return eps.map((e, i) => ({ ep: e, stats: stats[i] }));
  }

  function health(ep, st) {
    if (!ep.enabled) return badge('bad', 'Disabled' + (ep.disabled_reason ? ': ' + ep.disabled_reason : ''));
    if (ep.failing_since) return badge('bad', 'Failing since ' + ago(ep.failing_since));
    if (st && st.last_failure_at && (!st.last_success_at || st.last_failure_at > st.last_success_at)) return badge('warn', 'Last attempt failed');
    if (st && st.last_success_at) return badge('ok', 'Healthy');
    return badge('neutral', 'No deliveries yet');
  }
  function isFailing(ep, st) {
    return !ep.enabled || !!ep.failing_since || !!(st && st.last_failure_at && (!st.last_success_at || st.last_failure_at > st.last_success_at));
  }

  // ---- pages --------------------------------------------------------------

  const PAGES = {};

  PAGES.overview = async function (view, _args, alive) {
    heading(view, 'Overview');
    const [msgs, eps] = await Promise.all([api('GET', '/v1/messages?order=desc&limit=100'), endpointsWithStats()]);
    if (!alive()) return;
    const now = Date.now();
    const recent = msgs.data || [];
    const lastMin = recent.filter((m) => now - new Date(m.received_at).getTime() <= 60000).length;
    const last5 = recent.filter((m) => now - new Date(m.received_at).getTime() <= 300000).length;
    const capped = (n) => (n === recent.length && msgs.has_more ? '≥ ' + n : String(n));
    const totals = { delivered: 0, failed: 0, pending: 0, retrying: 0, attempts: 0 };
    for (const { stats } of eps) {
      if (!stats) continue;
      totals.delivered += stats.delivered; totals.failed += stats.failed;
      totals.pending += stats.pending; totals.retrying += stats.retrying; totals.attempts += stats.attempts_last_hour;
    }
    view.appendChild(h('section', { 'aria-labelledby': 'ov-flow' },
      h('h2', { id: 'ov-flow' }, 'Message flow'),
      h('div', { class: 'grid' },
        stat(capped(lastMin), 'messages in the last minute'),
        stat(last5 ? (last5 / 5).toFixed(1) : '0', 'messages/min, last 5 min' + (last5 === recent.length && msgs.has_more ? ' (at least)' : '')),
        stat(String(eps.length), 'endpoints'),
        stat(String(totals.attempts), 'delivery attempts, last hour'))));

    const outcomes = [['Delivered', totals.delivered, 'ok'], ['Failed', totals.failed, 'bad'], ['Retrying', totals.retrying, 'warn'], ['Pending', totals.pending, '']];
    const max = Math.max(1, ...outcomes.map((o) => o[1]));
    const bars = h('div', { class: 'bars', role: 'list' });
    for (const [label, n, kind] of outcomes) {
      const fill = h('span', {});
      fill.style.width = (100 * n / max).toFixed(1) + '%';
      bars.appendChild(h('div', { class: 'bar-row', role: 'listitem' }, h('span', {}, label),
        h('div', { class: 'bar ' + kind, 'aria-hidden': 'true' }, fill), h('span', { class: 'mono' }, String(n))));
    }
    view.appendChild(h('section', { 'aria-labelledby': 'ov-out' }, h('h2', { id: 'ov-out' }, 'Deliveries by outcome'),
      eps.length ? h('div', { class: 'card' }, bars, h('p', { class: 'hint' }, 'Delivered and failed count deliveries settled since each endpoint was created; retrying and pending are waiting now.'))
        : empty('No endpoints yet', 'Add one on the ', h('a', { href: '#/endpoints' }, 'Endpoints'), ' page (or POST /v1/endpoints) and deliveries will show here.')));

    const failing = eps.filter(({ ep, stats }) => isFailing(ep, stats));
    const fsec = h('section', { 'aria-labelledby': 'ov-fail' }, h('h2', { id: 'ov-fail' }, 'Failing endpoints'));
    if (!failing.length) {
      fsec.appendChild(empty(eps.length ? 'No failing endpoints' : 'Nothing to watch yet', eps.length ? 'Every endpoint answered its last attempt with a 2xx.' : 'Failing endpoints will be listed here.'));
    } else {
      const ul = h('ul', {});
      for (const { ep, stats } of failing) {
        ul.appendChild(h('li', {}, h('a', { href: '#/endpoints/' + enc(ep.id) }, ep.url), ' ', health(ep, stats),
          ' ', h('span', { class: 'muted' }, 'last failure ' + ago(stats && stats.last_failure_at))));
      }
      fsec.appendChild(h('div', { class: 'card' }, ul));
    }
    view.appendChild(fsec);

    const msec = h('section', { 'aria-labelledby': 'ov-msgs' }, h('h2', { id: 'ov-msgs' }, 'Latest messages'));
    if (!recent.length) {
      msec.appendChild(empty('No messages yet', 'Publish one with POST /v1/messages, or watch them arrive on the ', h('a', { href: '#/tail' }, 'Live tail'), '.'));
    } else {
      const tbody = h('tbody', {});
      for (const m of recent.slice(0, 10)) {
        tbody.appendChild(h('tr', {}, h('td', {}, fmtTime(m.received_at)), h('td', { class: 'mono' }, m.type),
          h('td', { class: 'mono' }, (m.channels || []).join(', ')), h('td', { class: 'mono hide-narrow' }, m.id)));
      }
      msec.appendChild(h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Received'), h('th', { scope: 'col' }, 'Type'), h('th', { scope: 'col' }, 'Channels'), h('th', { scope: 'col', class: 'hide-narrow' }, 'Id'))), tbody)));
    }
    view.appendChild(msec);
  };

  PAGES.endpoints = async function (view, args, alive) {
    if (args[0]) return endpointPage(view, args[0], alive);
    heading(view, 'Endpoints');
    const eps = await endpointsWithStats();
    if (!alive()) return;
    if (!eps.length) {
      view.appendChild(empty('No endpoints yet', 'Add a webhook receiver below; marquee signs and delivers every matching message to it.'));
    } else {
      const tbody = h('tbody', {});
      for (const { ep, stats } of eps) {
        tbody.appendChild(h('tr', {},
          h('td', { class: 'url' }, h('a', { href: '#/endpoints/' + enc(ep.id) }, ep.url), ep.description ? h('div', { class: 'muted' }, ep.description) : null),
          h('td', { 'data-label': 'Health' }, health(ep, stats)),
          h('td', { 'data-label': 'Success rate' }, pct(stats && stats.success_rate_last_hour)),
          h('td', { 'data-label': 'Last failure' }, ago(stats && stats.last_failure_at)),
          h('td', { class: 'mono hide-narrow' }, ep.format)));
      }
      view.appendChild(h('div', { class: 'table-wrap stack' }, h('table', {},
        h('caption', { class: 'muted' }, 'Success rate is over the last hour; open an endpoint for its attempts and actions.'),
        h('thead', {}, h('tr', {}, ...['URL', 'Health', 'Success rate', 'Last failure'].map((t) => h('th', { scope: 'col' }, t)), h('th', { scope: 'col', class: 'hide-narrow' }, 'Format'))),
        tbody)));
    }
    const out = h('div', {});
    const form = h('form', { id: 'create-endpoint' },
      h('fieldset', {}, h('legend', {}, 'Add an endpoint'),
        h('label', { for: 'ep-url' }, 'URL'), h('input', { id: 'ep-url', name: 'url', type: 'url', required: true, placeholder: 'https://example.com/webhooks' }),
        h('label', { for: 'ep-types' }, 'Event types (comma-separated; empty = all; a trailing * matches a prefix)'), h('input', { id: 'ep-types', name: 'types', placeholder: 'fan_checkin, drop_*' }),
        h('label', { for: 'ep-channels' }, 'Channels (comma-separated; empty = all)'), h('input', { id: 'ep-channels', name: 'channels', placeholder: 'venue:stubbs-austin' }),
        h('button', { type: 'submit' }, 'Add endpoint'), out));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clear(out);
      const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
      try {
        const ep = await api('POST', '/v1/endpoints', { url: $('ep-url').value.trim(), types: list($('ep-types').value), channels: list($('ep-channels').value) });
        out.appendChild(secretBox(ep, 'Endpoint created. Its signing secret is shown only now:'));
        out.appendChild(h('p', {}, h('a', { href: '#/endpoints/' + enc(ep.id) }, 'Open ' + ep.url)));
      } catch (e) { out.appendChild(errorBox(e)); }
    });
    view.appendChild(form);
  };

  function secretBox(ep, intro) {
    return h('div', { class: 'secret', role: 'status' }, h('p', {}, intro), h('code', { class: 'new-secret' }, ep.secret || '(none)'),
      ep.identifier ? h('p', {}, 'Identifier: ', h('code', {}, ep.identifier)) : null,
      h('p', { class: 'hint' }, 'Copy it to your receiver now: marquee never shows it again.'));
  }

  async function endpointPage(view, id, alive) {
    const [ep, stats] = await Promise.all([api('GET', '/v1/endpoints/' + enc(id)), api('GET', '/v1/endpoints/' + enc(id) + '/stats')]);
    if (!alive()) return;
    heading(view, 'Endpoint ' + ep.url);
    view.appendChild(h('p', {}, h('a', { href: '#/endpoints' }, '← All endpoints')));
    view.appendChild(h('div', { class: 'grid' },
      stat(health(ep, stats), 'health'), stat(pct(stats.success_rate_last_hour), 'success rate, last hour'),
      stat(String(stats.delivered), 'delivered'), stat(String(stats.failed), 'failed (exhausted)'),
      stat(String(stats.retrying), 'retrying'), stat(String(stats.pending), 'pending')));
    view.appendChild(h('dl', { class: 'kv card' },
      h('dt', {}, 'Id'), h('dd', { class: 'mono' }, ep.id),
      h('dt', {}, 'Format'), h('dd', {}, ep.format),
      h('dt', {}, 'Types'), h('dd', {}, (ep.types || []).length ? ep.types.join(', ') : 'all'),
      h('dt', {}, 'Channels'), h('dd', {}, (ep.channels || []).length ? ep.channels.join(', ') : 'all'),
      h('dt', {}, 'Last success'), h('dd', {}, fmtTime(stats.last_success_at)),
      h('dt', {}, 'Last failure'), h('dd', {}, fmtTime(stats.last_failure_at))));

    // Actions.
    const out = h('div', { id: 'action-result', 'aria-live': 'polite' });
    const toggle = h('button', { type: 'button', class: ep.enabled ? 'danger' : '' }, ep.enabled ? 'Disable endpoint' : 'Enable endpoint');
    toggle.addEventListener('click', async () => {
      clear(out);
      try { await api('PATCH', '/v1/endpoints/' + enc(id), { enabled: !ep.enabled }); render(); } catch (e) { out.appendChild(errorBox(e)); }
    });
    const ping = h('button', { type: 'button', class: 'secondary' }, 'Send test ping');
    ping.addEventListener('click', async () => {
      clear(out);
      ping.disabled = true;
      try {
        const a = await api('POST', '/v1/endpoints/' + enc(id) + '/test');
        out.appendChild(h('p', { class: a.status === 'succeeded' ? 'notice' : 'error' }, 'Test ping ' + a.status + ': ' +
          (a.status_code ? 'HTTP ' + a.status_code : a.error_kind || '') + (a.error ? ' — ' + a.error : '') + ' (' + a.duration_ms + ' ms)'));
        loadAttempts();
      } catch (e) { out.appendChild(errorBox(e)); }
      ping.disabled = false;
    });
    const rotate = h('button', { type: 'button', class: 'secondary' }, 'Rotate secret…');
    const confirmRotate = h('button', { type: 'button', class: 'danger', hidden: true }, 'Confirm: rotate the signing secret');
    rotate.addEventListener('click', () => { confirmRotate.hidden = false; confirmRotate.focus(); });
    confirmRotate.addEventListener('click', async () => {
      clear(out); confirmRotate.hidden = true;
      try {
        const r = await api('POST', '/v1/endpoints/' + enc(id) + '/secret/rotate');
        out.appendChild(secretBox(r, 'New signing secret (shown only now; the previous one keeps signing during the overlap if the format carries two signatures):'));
      } catch (e) { out.appendChild(errorBox(e)); }
    });
    view.appendChild(h('section', { 'aria-labelledby': 'ep-actions' }, h('h2', { id: 'ep-actions' }, 'Actions'),
      h('div', { class: 'card' }, toggle, ping, rotate, confirmRotate, out)));

    // Replay and recover.
    const rOut = h('div', { 'aria-live': 'polite' });
    const replay = h('form', { class: 'inline' }, h('fieldset', {}, h('legend', {}, 'Replay a time range from the log'),
      h('div', { class: 'row' }, h('div', {}, h('label', { for: 'replay-since' }, 'Messages received since'), h('input', { id: 'replay-since', type: 'datetime-local', required: true, step: '1' }))),
      h('p', { class: 'hint' }, 'Queues a new delivery of every matching message since then (also ones older than the retry window).'),
      h('button', { type: 'submit' }, 'Replay'), rOut));
    replay.addEventListener('submit', async (ev) => {
      ev.preventDefault(); clear(rOut);
      try {
        let body = { since: toIso($('replay-since').value) }, queued = 0, r;
        for (let i = 0; i < 20; i++) {
          r = await api('POST', '/v1/endpoints/' + enc(id) + '/replay', body);
          queued += r.queued;
          if (!r.has_more) break;
          body = { after: r.next_cursor };
        }
        rOut.appendChild(h('p', { class: 'notice' }, 'Queued ' + queued + ' deliveries.' + (r && r.has_more ? ' More remain: replay again from later.' : '')));
      } catch (e) { rOut.appendChild(errorBox(e)); }
    });
    const cOut = h('div', { 'aria-live': 'polite' });
    const recover = h('form', { class: 'inline' }, h('fieldset', {}, h('legend', {}, 'Recover failed deliveries'),
      h('div', { class: 'row' },
        h('div', {}, h('label', { for: 'recover-since' }, 'Failed since'), h('input', { id: 'recover-since', type: 'datetime-local', required: true, step: '1' })),
        h('div', {}, h('label', { for: 'recover-until' }, 'Until (empty: now)'), h('input', { id: 'recover-until', type: 'datetime-local', step: '1' }))),
      h('button', { type: 'submit' }, 'Recover'), cOut));
    recover.addEventListener('submit', async (ev) => {
      ev.preventDefault(); clear(cOut);
      try {
        const body = { since: toIso($('recover-since').value) };
        if ($('recover-until').value) body.until = toIso($('recover-until').value);
        const r = await api('POST', '/v1/endpoints/' + enc(id) + '/recover', body);
        cOut.appendChild(h('p', { class: 'notice' }, 'Queued ' + r.queued + ' failed deliveries again.'));
      } catch (e) { cOut.appendChild(errorBox(e)); }
    });
    view.appendChild(h('section', { 'aria-labelledby': 'ep-redo' }, h('h2', { id: 'ep-redo' }, 'Replay and recover'), replay, recover));

    // Attempts.
    const list = h('div', { id: 'attempts' });
    const filter = h('select', { id: 'attempt-filter' }, h('option', { value: '' }, 'All'), h('option', { value: 'failed' }, 'Failed'), h('option', { value: 'succeeded' }, 'Succeeded'));
    const refresh = h('button', { type: 'button', class: 'secondary', id: 'attempts-refresh' }, 'Refresh');
    const open = new Set();
    let loading = 0;
    async function loadAttempts() {
      const mine = ++loading;
      let all;
      try {
        all = await listAll('/v1/endpoints/' + enc(id) + '/attempts' + (filter.value ? '?status=' + filter.value : ''), 20);
      } catch (e) { clear(list).appendChild(errorBox(e)); return; }
      if (mine !== loading || !alive()) return;
      clear(list);
      const shown = all.slice(-50).reverse();
      if (!shown.length) {
        list.appendChild(empty('No attempts yet', 'Publish a message this endpoint matches, or send a test ping above.'));
        return;
      }
      for (const a of shown) list.appendChild(attemptView(ep, a, open, loadAttempts));
      if (all.length > 50) list.appendChild(h('p', { class: 'muted' }, 'Showing the 50 newest of ' + all.length + ' attempts.'));
    }
    filter.addEventListener('change', loadAttempts);
    refresh.addEventListener('click', loadAttempts);
    view.appendChild(h('section', { 'aria-labelledby': 'ep-attempts' }, h('h2', { id: 'ep-attempts' }, 'Attempts (newest first)'),
      h('div', { class: 'row' }, h('div', {}, h('label', { for: 'attempt-filter' }, 'Show'), filter), h('div', {}, refresh)), list));
    await loadAttempts();
  }

  function attemptView(ep, a, open, reload) {
    const ok = a.status === 'succeeded';
    const d = h('details', { class: 'attempt', 'data-attempt': a.id, 'data-status': a.status, open: open.has(a.id) });
    d.appendChild(h('summary', {}, badge(ok ? 'ok' : 'bad', ok ? 'Succeeded' : 'Failed'),
      h('span', { class: 'mono' }, a.status_code ? 'HTTP ' + a.status_code : (a.error_kind || '')),
      h('span', {}, fmtTime(a.started_at)), h('span', { class: 'muted' }, 'attempt ' + a.attempt + ', ' + a.duration_ms + ' ms'),
      a.test ? badge('neutral', 'test ping') : h('span', { class: 'mono muted hide-narrow' }, a.message_id || '')));
    const body = h('div', { class: 'body' });
    d.appendChild(body);
    let loaded = false;
    async function fill() {
      if (loaded) return;
      loaded = true;
      const resend = h('button', { type: 'button', class: 'resend' }, 'Resend this message');
      const rOut = h('span', { 'aria-live': 'polite' });
      resend.addEventListener('click', async () => {
        clear(rOut);
        try {
          const r = await api('POST', '/v1/messages/' + enc(a.message_id) + '/resend', { endpoint_id: ep.id });
          rOut.appendChild(h('span', { class: 'notice' }, 'Queued ' + r.queued + ' new delivery; the attempt appears above shortly.'));
          setTimeout(reload, 800); setTimeout(reload, 2500);
        } catch (e) { rOut.appendChild(errorBox(e)); }
      });
      append(body, [
        h('h3', {}, 'Response'),
        h('dl', { class: 'kv' }, h('dt', {}, 'Status'), h('dd', { class: 'response-status' }, a.status_code ? String(a.status_code) : 'no response'),
          h('dt', {}, 'Error'), h('dd', {}, a.error || '—'), h('dt', {}, 'Attempt id'), h('dd', { class: 'mono' }, a.id),
          h('dt', {}, 'Delivery id'), h('dd', { class: 'mono' }, a.delivery_id)),
        h('h3', {}, 'Response headers'), h('pre', { class: 'response-headers' }, pretty(a.response_headers || {})),
        h('h3', {}, 'Response body'), h('pre', { class: 'response-body' }, a.response_body ? a.response_body : '(empty)'),
      ]);
      if (a.test || !a.message_id) {
        body.appendChild(h('p', { class: 'muted' }, 'A test ping is not a message in the log: its request is not kept and it cannot be resent.'));
        return;
      }
      const req = h('div', { class: 'request' }, h('p', { class: 'muted' }, 'Loading the request…'));
      append(body, [h('h3', {}, 'Request'), req, resend, rOut]);
      try {
        const r = await api('GET', '/v1/messages/' + enc(a.message_id) + '/attempts/' + enc(a.id) + '/request');
        clear(req);
        const lines = Object.entries(r.headers || {}).map(([k, v]) => k + ': ' + v).join('\n');
        append(req, [h('p', { class: 'mono' }, r.method + ' ' + r.url),
          h('pre', { class: 'request-headers' }, lines),
          (r.redacted || []).length ? h('p', { class: 'hint' }, 'Signatures (' + r.redacted.join(', ') + ') depend on the signing secret and are not shown.') : null,
          h('pre', { class: 'request-body' }, typeof r.body === 'string' ? r.body : pretty(r.body))]);
      } catch (e) { clear(req).appendChild(errorBox(e)); }
    }
    d.addEventListener('toggle', () => { if (d.open) { open.add(a.id); fill(); } else open.delete(a.id); });
    if (open.has(a.id)) fill();
    return d;
  }

  // ---- live tail ------------------------------------------------------------

  let tail = null; // { ctrl: AbortController }

  function stopTail() {
    if (tail) { tail.ctrl.abort(); tail = null; }
  }

  function typeMatcher(spec) {
    const pats = spec.split(',').map((s) => s.trim()).filter(Boolean);
    if (!pats.length) return () => true;
    return (t) => pats.some((p) => (p.endsWith('*') ? t.startsWith(p.slice(0, -1)) : t === p));
  }

  PAGES.tail = async function (view) {
    heading(view, 'Live tail');
    const status = h('p', { class: 'status-line', id: 'tail-status', role: 'status' }, 'Not connected.');
    const rows = h('ul', { class: 'tail', id: 'tail-list', 'aria-live': 'off' });
    const placeholder = empty('Nothing yet', 'Name one or more channels and press Start: messages published on them appear here as they are committed.');
    const start = h('button', { type: 'submit', id: 'tail-start' }, 'Start');
    const stop = h('button', { type: 'button', class: 'secondary', id: 'tail-stop', disabled: true }, 'Stop');
    const saved = JSON.parse(sessionStorage.getItem('marquee.dashboard.tail') || '{}');
    const form = h('form', { id: 'tail-form' }, h('fieldset', {}, h('legend', {}, 'Filters'),
      h('div', { class: 'row' },
        h('div', {}, h('label', { for: 'tail-channels' }, 'Channels (comma-separated, at least one)'),
          h('input', { id: 'tail-channels', required: true, placeholder: 'venue:stubbs-austin', value: saved.channels || '' })),
        h('div', {}, h('label', { for: 'tail-types' }, 'Types (optional; trailing * matches a prefix)'),
          h('input', { id: 'tail-types', placeholder: 'fan_checkin, drop_*', value: saved.types || '' }))),
      start, stop));
    view.appendChild(form);
    view.appendChild(status);
    view.appendChild(placeholder);
    view.appendChild(rows);
    stop.addEventListener('click', () => { stopTail(); status.textContent = 'Stopped.'; start.disabled = false; stop.disabled = true; });
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const channels = $('tail-channels').value.split(',').map((s) => s.trim()).filter(Boolean);
      if (!channels.length) { status.textContent = 'Name at least one channel, e.g. venue:stubbs-austin.'; return; }
      sessionStorage.setItem('marquee.dashboard.tail', JSON.stringify({ channels: $('tail-channels').value, types: $('tail-types').value }));
      const matches = typeMatcher($('tail-types').value);
      stopTail();
      clear(rows); placeholder.hidden = false;
      start.disabled = true; stop.disabled = false;
      runTail(channels, matches, status, rows, placeholder).finally(() => { start.disabled = false; stop.disabled = true; });
    });
  };

  async function runTail(channels, matches, status, rows, placeholder) {
    const ctrl = new AbortController();
    tail = { ctrl };
    status.textContent = 'Connecting…';
    const qs = channels.map((c) => 'channel=' + enc(c)).join('&');
    let resp;
    try {
      resp = await fetch('/v1/stream/sse?' + qs, { headers: Object.assign({ accept: 'text/event-stream' }, authHeaders(credential())), signal: ctrl.signal, cache: 'no-store' });
    } catch (e) {
      if (!ctrl.signal.aborted) status.textContent = 'Could not connect: ' + e.message;
      return;
    }
    if (!resp.ok) {
      let msg = 'HTTP ' + resp.status;
      try { const j = await resp.json(); if (j.error) msg = j.error.message; } catch (_) { /* not JSON */ }
      status.textContent = 'Refused: ' + msg;
      return;
    }
    status.textContent = 'Connected to ' + channels.join(', ') + ': waiting for messages.';
    status.dataset.state = 'connected';
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    let count = 0;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let cut;
        while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut).replace(/^\r?\n\r?\n/, '');
          const ev = parseSse(block);
          if (!ev) continue;
          let frame;
          try { frame = JSON.parse(ev.data); } catch (_) { continue; }
          if (ev.event === 'error' || frame.event === 'error') {
            status.textContent = 'Stream error: ' + (frame.message || frame.code || ev.data);
            continue;
          }
          if (!frame.type || !matches(frame.type)) continue;
          placeholder.hidden = true;
          rows.insertBefore(tailRow(frame), rows.firstChild);
          while (rows.childNodes.length > TAIL_MAX) rows.removeChild(rows.lastChild);
          count++;
          status.textContent = 'Connected to ' + channels.join(', ') + ': ' + count + ' message' + (count === 1 ? '' : 's') + ' shown.';
        }
      }
      if (!ctrl.signal.aborted) status.textContent = 'The server closed the stream. Press Start to reconnect.';
    } catch (e) {
      if (!ctrl.signal.aborted) status.textContent = 'Disconnected: ' + e.message;
    }
    delete status.dataset.state;
  }

  function parseSse(block) {
    let event = 'message', data = [], id = null;
    for (const line of block.split(/\r?\n/)) {
      if (!line || line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'event') event = value; else if (field === 'data') data.push(value); else if (field === 'id') id = value;
    }
    return data.length ? { event, data: data.join('\n'), id } : null;
  }

  function tailRow(f) {
    return h('li', { 'data-id': f.id },
      h('div', { class: 'meta' }, h('strong', { class: 'mono' }, f.type), h('span', { class: 'mono' }, f.channel),
        h('span', {}, fmtTime(f.occurred_at)), h('span', { class: 'mono muted' }, f.id)),
      h('pre', { class: 'payload' }, pretty(f.payload)));
  }

  // ---- attendance -----------------------------------------------------------

  PAGES.attendance = async function (view, args, alive) {
    heading(view, args[0] ? 'Attendance: ' + args[0] : 'Attendance');
    let items;
    try {
      if (args[0]) items = [await api('GET', '/v1/attendance/' + enc(args[0]))];
      else { const r = await api('GET', '/v1/attendance'); items = (r && r.data) || []; }
    } catch (e) {
      if (!alive()) return;
      if (e.status === 404 && args[0] && e.message && !/route/i.test(e.message)) {
        view.appendChild(empty('No attendance for ' + args[0], 'Check-ins for this event have not been published yet. ', h('a', { href: '#/attendance' }, 'All events')));
        return;
      }
      if (e.status === 404 || e.status === 405) {
        view.appendChild(empty('Attendance is not available on this server yet',
          'This marquee build has no attendance read model (GET /v1/attendance answered ' + e.status + '). ',
          'Once it does, each event\'s count, capacity, gates and milestones appear here; meanwhile watch check-ins on the ',
          h('a', { href: '#/tail' }, 'Live tail'), '.'));
        return;
      }
      throw e;
    }
    if (!alive()) return;
    if (args[0]) view.appendChild(h('p', {}, h('a', { href: '#/attendance' }, '← All events')));
    if (!items.length) {
      view.appendChild(empty('No attendance yet', 'Events appear here once check-ins are published for them (e.g. fan_checkin with an event_id).'));
      return;
    }
    for (const a of items) view.appendChild(attendanceCard(a, !args[0]));
  };

  function attendanceCard(a, link) {
    const card = h('section', { class: 'card attendance', 'aria-label': 'Attendance of ' + a.event_id });
    card.appendChild(h('h2', {}, link ? h('a', { href: '#/attendance/' + enc(a.event_id) }, a.event_id) : a.event_id));
    const cap = a.capacity;
    card.appendChild(h('p', { class: 'status-line' }, String(a.count) + (cap ? ' of ' + cap + ' checked in (' + pct(a.count / cap) + ')' : ' checked in')));
    if (cap) {
      const fill = h('span', {});
      fill.style.width = Math.min(100, 100 * a.count / cap).toFixed(1) + '%';
      card.appendChild(h('div', { class: 'meter', role: 'meter', 'aria-valuemin': '0', 'aria-valuemax': String(cap), 'aria-valuenow': String(a.count), 'aria-label': 'Attendance' }, fill));
    }
    card.appendChild(h('dl', { class: 'kv' }, h('dt', {}, 'Doors opened'), h('dd', {}, fmtTime(a.opened_at)),
      h('dt', {}, 'Last check-in'), h('dd', {}, fmtTime(a.last_checkin_at))));
    const gates = Object.entries(a.gates || {});
    card.appendChild(h('h3', {}, 'Gates'));
    card.appendChild(gates.length ? h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Gate'), h('th', { scope: 'col' }, 'Check-ins'))),
      h('tbody', {}, gates.map(([g, n]) => h('tr', {}, h('td', {}, g), h('td', {}, String(n))))))) : h('p', { class: 'muted' }, 'No gate counts yet.'));
    const ms = a.milestones || [];
    card.appendChild(h('h3', {}, 'Milestones'));
    card.appendChild(ms.length ? h('ul', {}, ms.map((m) => h('li', {}, String(m.threshold) + ' reached at ' + fmtTime(m.ts) + (m.count !== undefined ? ' (count ' + m.count + ')' : ''))))
      : h('p', { class: 'muted' }, 'No milestone reached yet.'));
    return card;
  }

  // ---- event types ----------------------------------------------------------

  PAGES['event-types'] = async function (view, _args, alive) {
    heading(view, 'Event types');
    const r = await api('GET', '/v1/event-types');
    if (!alive()) return;
    const types = (r && r.data) || [];
    if (!types.length) {
      view.appendChild(empty('No event types',
        'Enable a platform profile for this organization (marquee org set-profiles ORG --profile revolution) to get its catalog, or define your own with PUT /v1/event-types/{type}.'));
      return;
    }
    const search = h('input', { id: 'type-search', type: 'search', placeholder: 'order., fan_checkin…' });
    const list = h('div', { id: 'type-list' });
    const draw = () => {
      clear(list);
      const q = search.value.trim().toLowerCase();
      const shown = types.filter((t) => !q || t.type.toLowerCase().includes(q) || (t.description || '').toLowerCase().includes(q));
      if (!shown.length) { list.appendChild(empty('No type matches', 'Clear the search to see all ' + types.length + ' types.')); return; }
      for (const t of shown) {
        const rules = ['dedup', 'coalesce', 'project'].filter((k) => t[k] !== undefined && t[k] !== null);
        list.appendChild(h('details', { class: 'item' },
          h('summary', {}, h('strong', { class: 'mono' }, t.type), badge('neutral', t.source), h('span', { class: 'muted' }, t.description || '')),
          h('div', { class: 'body' }, h('h3', {}, 'Schema'), h('pre', {}, t.schema ? pretty(t.schema) : '(no schema: any object)'),
            rules.length ? [h('h3', {}, 'Rules'), h('pre', {}, pretty(Object.fromEntries(rules.map((k) => [k, t[k]]))))] : null)));
      }
    };
    search.addEventListener('input', draw);
    view.appendChild(h('div', {}, h('label', { for: 'type-search' }, 'Search ' + types.length + ' types'), search));
    view.appendChild(list);
    draw();
  };

  // ---- administration ---------------------------------------------------------

  PAGES.orgs = async function (view, _args, alive) {
    heading(view, 'Organizations');
    const r = await api('GET', '/admin/v1/orgs');
    if (!alive()) return;
    const orgs = (r && r.data) || [];
    const list = h('div', { id: 'org-list' });
    if (!orgs.length) list.appendChild(empty('No organizations yet', 'Create one below, then give it an API key.'));
    for (const o of orgs) list.appendChild(orgView(o));
    view.appendChild(list);
    const out = h('div', { 'aria-live': 'polite' });
    const form = h('form', {}, h('fieldset', {}, h('legend', {}, 'Create an organization'),
      h('label', { for: 'org-name' }, 'Name'), h('input', { id: 'org-name', required: true }),
      h('button', { type: 'submit' }, 'Create'), out));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault(); clear(out);
      try { await api('POST', '/admin/v1/orgs', { name: $('org-name').value.trim() }); render(); } catch (e) { out.appendChild(errorBox(e)); }
    });
    view.appendChild(form);
  };

  function orgView(o) {
    const d = h('details', { class: 'item', 'data-org': o.id });
    d.appendChild(h('summary', {}, h('strong', {}, o.name), h('span', { class: 'mono muted' }, o.id),
      (o.profiles || []).length ? badge('neutral', o.profiles.join(', ')) : null));
    const body = h('div', { class: 'body' });
    d.appendChild(body);
    let loaded = false;
    async function load() {
      clear(body);
      let keys;
      try { keys = (await api('GET', '/admin/v1/orgs/' + enc(o.id) + '/keys')).data || []; } catch (e) { body.appendChild(errorBox(e)); return; }
      if (!keys.length) body.appendChild(empty('No keys', 'Create a key below to let this organization use the API.'));
      else {
        const tbody = h('tbody', {});
        for (const k of keys) {
          const revoke = h('button', { type: 'button', class: 'danger' }, 'Revoke');
          const sure = h('button', { type: 'button', class: 'danger', hidden: true }, 'Confirm revoke');
          revoke.addEventListener('click', () => { sure.hidden = false; revoke.hidden = true; sure.focus(); });
          sure.addEventListener('click', async () => { try { await api('POST', '/admin/v1/keys/' + enc(k.id) + '/revoke'); load(); } catch (e) { body.appendChild(errorBox(e)); } });
          tbody.appendChild(h('tr', {}, h('td', {}, k.name || '—'), h('td', { class: 'mono' }, k.prefix), h('td', {}, k.tier),
            h('td', {}, k.revoked_at ? badge('bad', 'revoked ' + ago(k.revoked_at)) : badge('ok', 'active')),
            h('td', { class: 'hide-narrow' }, fmtTime(k.created_at)), h('td', {}, k.revoked_at ? '' : [revoke, sure])));
        }
        body.appendChild(h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {},
          ...['Name', 'Prefix', 'Tier', 'Status'].map((t) => h('th', { scope: 'col' }, t)), h('th', { scope: 'col', class: 'hide-narrow' }, 'Created'), h('th', { scope: 'col' }, h('span', { class: 'muted' }, 'Actions')))), tbody)));
      }
      const out = h('div', { 'aria-live': 'polite' });
      const nameId = 'key-name-' + o.id, tierId = 'key-tier-' + o.id;
      const form = h('form', {}, h('fieldset', {}, h('legend', {}, 'Create a key'),
        h('div', { class: 'row' },
          h('div', {}, h('label', { for: nameId }, 'Name (optional)'), h('input', { id: nameId })),
          h('div', {}, h('label', { for: tierId }, 'Tier'), h('select', { id: tierId }, ['pro', 'free', 'enterprise'].map((t) => h('option', { value: t }, t))))),
        h('button', { type: 'submit' }, 'Create key'), out));
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault(); clear(out);
        const body2 = { tier: $(tierId).value };
        if ($(nameId).value.trim()) body2.name = $(nameId).value.trim();
        try {
          const k = await api('POST', '/admin/v1/orgs/' + enc(o.id) + '/keys', body2);
          await load();
          body.appendChild(h('div', { class: 'secret', role: 'status' }, h('p', {}, 'New key (shown only now):'), h('code', { class: 'new-secret' }, k.key)));
        } catch (e) { out.appendChild(errorBox(e)); }
      });
      body.appendChild(form);
    }
    d.addEventListener('toggle', () => { if (d.open && !loaded) { loaded = true; load(); } });
    return d;
  }

  // ---- start ----------------------------------------------------------------

  document.addEventListener('DOMContentLoaded', () => {
    $('signin-form').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const btn = $('signin-submit'), err = $('signin-error');
      err.hidden = true;
      btn.disabled = true;
      try {
        await signIn($('credential').value);
        $('credential').value = '';
        render();
      } catch (e) {
        showSigninError(e.message);
        $('credential').focus();
      } finally { btn.disabled = false; }
    });
    $('sign-out').addEventListener('click', signOut);
    window.addEventListener('hashchange', render);
    render();
  });
})();
