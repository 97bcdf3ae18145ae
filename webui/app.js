// SPDX-License-Identifier: Apache-2.0
//
// The PharosVPN admin UI: one ES module, no build step, no dependencies. Routes are
// /ui/<page>[/<name>] (the server answers every /ui/ path with index.html). Data from the
// API is only ever put in the page as text (textContent, attribute values): never as HTML.
// Mutations send X-CSRF-Token and If-Match with the revision the page read; a 409 shows the
// record as it is now and lets the user reload or apply their change on top of it.
// Open pages follow /api/v1/events (Server-Sent Events) and refresh what they show.
// When the fleet requires review, an edit lands on a proposal branch, not on main: the page
// says so and links to the proposal's review page (/ui/proposals/<branch>).

const API = '/api/v1';
const session = { user: null, csrf: null, revision: null, branch: 'main' };
let current = null;          // the mounted page: { refresh(ev), dirty() }
let events = null;           // the EventSource
let refreshTimer = null;

// ---- DOM helpers (text only) ----

// el('tag', {attrs/props}, ...children): strings become text nodes.
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'checked') e[k] = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  append(e, kids);
  return e;
}

function append(parent, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k === undefined || k === null || k === false) continue;
    parent.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return parent;
}

function replace(parent, ...kids) {
  parent.replaceChildren();
  return append(parent, kids);
}

const short = (rev) => (rev ? String(rev).slice(0, 12) : '—');
const when = (unix) => (unix ? new Date(unix * 1000).toISOString().replace('.000Z', 'Z') : '—');
const firstLine = (s) => String(s || '').split('\n')[0];

function toast(msg) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.textContent = ''; }, 4000);
}

function link(href, text, attrs) {
  return el('a', { href, ...attrs }, text);
}

function table(headers, rows, caption) {
  return el('table', {},
    caption ? el('caption', { class: 'visually-hidden' }, caption) : null,
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows.length ? rows.map((r) => el('tr', {}, r.map((c) => el('td', {}, c))))
      : el('tr', {}, el('td', { colspan: headers.length, class: 'muted' }, 'None.'))));
}

function yesno(v, yes, no, goodWhenTrue = true) {
  return el('span', { class: (v ? goodWhenTrue : !goodWhenTrue) ? 'ok' : 'bad' }, v ? yes : no);
}

// ---- the API ----

class ApiError extends Error {
  constructor(status, data) {
    super((data && (data.message || data.error)) || `HTTP ${status}`);
    this.status = status;
    this.data = data || {};
  }
}

async function api(method, path, { body, rev } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET') {
    if (session.csrf) headers['X-CSRF-Token'] = session.csrf;
    if (rev) headers['If-Match'] = `"${rev}"`;
  }
  const r = await fetch(API + path, {
    method, headers, credentials: 'same-origin', cache: 'no-store',
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  let data = null;
  try { data = await r.json(); } catch { data = null; }
  if (r.status === 401 && path !== '/login' && path !== '/me') {
    showLogin('Your session ended; log in again.');
    throw new ApiError(401, data);
  }
  if (!r.ok) throw new ApiError(r.status, data);
  const etag = (r.headers.get('ETag') || '').replace(/^W\//, '').replace(/"/g, '');
  return { data, rev: etag || (data && data.revision) || null };
}

const enc = encodeURIComponent;

// An error from a mutation, as an alert: 409 with the current record and who changed it,
// 422 with the validator's errors verbatim, anything else with its message.
function errorBox(err, { onReload, onRetry } = {}) {
  if (!(err instanceof ApiError)) return el('div', { class: 'alert error', role: 'alert' }, String(err));
  const d = err.data;
  if (err.status === 409 && d.error === 'conflict') {
    const cur = d.current;
    return el('div', { class: 'alert conflict', role: 'alert', 'data-kind': 'conflict' },
      el('p', {}, el('strong', {}, 'Conflict: '), 'this record changed since you loaded it',
        d.changed_by ? [' — by ', el('span', { class: 'changed-by' }, d.changed_by)] : null,
        d.changed_in ? [' in ', el('code', {}, short(d.changed_in))] : null, '.'),
      el('p', {}, 'The record now:'),
      cur && typeof cur === 'object' ? recordView(cur)
        : el('p', { class: 'muted' }, cur === null ? '(deleted)' : String(cur)),
      d.current_yaml ? el('details', {}, el('summary', {}, 'As YAML'), el('pre', {}, d.current_yaml)) : null,
      el('div', { class: 'row' },
        onReload ? el('button', { type: 'button', class: 'secondary', onclick: onReload },
          'Reload (discard my change)') : null,
        onRetry ? el('button', { type: 'button', onclick: () => onRetry(d.revision) },
          'Apply my change on top') : null));
  }
  if (err.status === 422) {
    return el('div', { class: 'alert error', role: 'alert', 'data-kind': 'invalid' },
      el('p', {}, el('strong', {}, 'Refused: '), d.message || 'the fleet would not validate'),
      el('pre', {}, Array.isArray(d.errors) ? d.errors.join('\n') : String(d.errors ?? '')));
  }
  if (err.status === 428) {
    return el('div', { class: 'alert error', role: 'alert' }, 'The server wants the revision you read (If-Match); reload the page.');
  }
  return el('div', { class: 'alert error', role: 'alert', 'data-kind': `http-${err.status}` },
    el('strong', {}, `Error ${err.status}: `), err.message);
}

function recordView(obj) {
  const dl = el('dl', { class: 'record' });
  for (const [k, v] of Object.entries(obj)) {
    let shown;
    if (Array.isArray(v)) {
      shown = v.length === 0 ? '—' : el('ul', {}, v.map((x) => el('li', {},
        x && typeof x === 'object' ? Object.entries(x).map(([a, b]) => `${a}: ${b}`).join(', ') : String(x))));
    } else if (v && typeof v === 'object') shown = JSON.stringify(v);
    else shown = v === null || v === undefined ? '—' : String(v);
    append(dl, [el('dt', {}, k), el('dd', { 'data-field': k }, shown)]);
  }
  return dl;
}

// ---- login and session ----

function setChrome(loggedIn) {
  document.getElementById('nav').hidden = !loggedIn;
  document.getElementById('session').hidden = !loggedIn;
  document.getElementById('whoami').textContent = loggedIn ? session.user : '';
}

function showLogin(msg) {
  session.user = session.csrf = null;
  if (events) { events.close(); events = null; }
  setLive(false);
  setChrome(false);
  current = null;
  const main = document.getElementById('main');
  const err = el('div', { 'aria-live': 'assertive' }, msg ? el('p', { class: 'alert info' }, msg) : null);
  const user = el('input', { type: 'text', id: 'login-user', name: 'user', autocomplete: 'username', required: true });
  const pass = el('input', { type: 'password', id: 'login-pass', name: 'password', autocomplete: 'current-password', required: true });
  const form = el('form', { class: 'stack', id: 'login-form' },
    el('label', { for: 'login-user' }, 'User', user),
    el('label', { for: 'login-pass' }, 'Passphrase', pass),
    el('button', { type: 'submit' }, 'Log in'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    replace(err);
    const btn = form.querySelector('button');
    btn.disabled = true;
    try {
      const r = await api('POST', '/login', { body: { user: user.value, password: pass.value } });
      session.csrf = r.data.csrf;
      pass.value = '';
      await start();
    } catch (ex) {
      replace(err, el('p', { class: 'alert error', role: 'alert' },
        ex.status === 429 ? 'Too many failed logins; wait a few minutes.'
          : ex.status === 401 ? 'Wrong user or passphrase.' : `Login failed: ${ex.message}`));
      btn.disabled = false;
    }
  });
  replace(main, el('section', { class: 'login', 'aria-labelledby': 'login-h' },
    el('h1', { id: 'login-h' }, 'Log in'),
    el('p', { class: 'muted' }, 'Fleet admins sign in with the passphrase set by ', el('code', {}, 'cox admin passwd'), '.'),
    err, form));
  user.focus();
}

async function start() {
  let me;
  try {
    me = (await api('GET', '/me')).data;
  } catch (e) {
    showLogin(e.status === 401 ? null : `Cannot reach the API: ${e.message}`);
    return;
  }
  session.user = me.user;
  session.csrf = me.csrf || session.csrf;
  session.revision = me.revision;
  setChrome(true);
  connectEvents();
  if (!location.pathname.startsWith('/ui/') || location.pathname === '/ui/') {
    history.replaceState(null, '', '/ui/dashboard');
  }
  route();
}

document.getElementById('logout').addEventListener('click', async () => {
  try { await api('POST', '/logout', { body: {} }); } catch { /* the session is gone anyway */ }
  history.replaceState(null, '', '/ui/dashboard');
  showLogin('Logged out.');
});

// ---- live updates ----

// While the event stream is down (EventSource keeps reconnecting on its own), poll instead:
// every POLL_MS ask for the revision and refresh the page as an event would have.
const POLL_MS = 5000;
let pollTimer = null;

function setLive(on) {
  const l = document.getElementById('live');
  l.textContent = on ? 'live' : 'offline (polling)';
  l.classList.toggle('on', on);
  if (on) {
    clearInterval(pollTimer);
    pollTimer = null;
  } else if (!pollTimer) {
    pollTimer = setInterval(pollOnce, POLL_MS);
  }
}

async function pollOnce() {
  let rev;
  try { rev = (await api('GET', '/me')).rev; } catch { return; }
  if (!rev) return;
  if (rev !== session.revision) {
    session.revision = rev;
    scheduleRefresh({ type: 'revision', revision: rev });
  } else if (current && current.wantsStatus) {
    scheduleRefresh({ type: 'status' });
  } else if (current && current.wantsProposals) {
    scheduleRefresh({ type: 'proposal', branch: '', what: 'poll' });
  }
}

function connectEvents() {
  if (events) return;
  events = new EventSource(`${API}/events`);
  events.addEventListener('open', () => setLive(true));
  events.addEventListener('error', () => setLive(false));
  const on = (type) => events.addEventListener(type, (m) => {
    let d = {};
    try { d = JSON.parse(m.data); } catch { /* keep {} */ }
    if (d.revision && (type === 'hello' || mainChange({ type, ...d }))) session.revision = d.revision;
    setLive(true);
    scheduleRefresh({ type, ...d });
  });
  ['hello', 'revision', 'commit', 'status', 'proposal'].forEach(on);
}

// Did the event move the applied branch? A commit to a proposal branch did not.
function mainChange(ev) {
  return ev.type === 'revision' || (ev.type === 'commit' && (!ev.branch || ev.branch === session.branch));
}

function scheduleRefresh(ev) {
  if (!current || !current.refresh) return;
  if (ev.type === 'hello' && !current.loaded) return;
  if (ev.type === 'status' && !current.wantsStatus) return;
  // proposal events (and commits to proposal branches) only for pages that show proposals
  if ((ev.type === 'proposal' || (ev.type === 'commit' && !mainChange(ev))) && !current.wantsProposals) return;
  if (current.wants && !current.wants(ev)) return;
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    if (current && current.refresh) current.refresh(ev).catch(() => {});
  }, 100);
}

// ---- routing ----

const pages = {
  dashboard: pageDashboard,
  nodes: pageNodes,
  users: pageUsers,
  history: pageHistory,
  audit: pageAudit,
  tokens: pageTokens,
  proposals: pageProposals,
};

function navigate(href) {
  history.pushState(null, '', href);
  route();
}

document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a[href]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith('/ui/')) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', () => { if (session.user) route(); });

function route() {
  const parts = location.pathname.replace(/^\/ui\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const name = pages[parts[0]] ? parts[0] : 'dashboard';
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const main = document.getElementById('main');
  replace(main, el('p', {}, 'Loading…'));
  clearTimeout(refreshTimer);
  const page = { loaded: false, wantsStatus: false, wantsProposals: false, wants: null, refresh: null };
  current = page;
  const params = new URLSearchParams(location.search);
  Promise.resolve(pages[name](main, page, parts.slice(1), params)).then(() => {
    page.loaded = true;
    const h = main.querySelector('h1');
    if (h) { h.setAttribute('tabindex', '-1'); document.title = `${h.textContent} · PharosVPN`; }
  }).catch((e) => {
    if (e instanceof ApiError && e.status === 401) return;
    replace(main, el('h1', {}, 'Error'), errorBox(e));
  });
}

// A page section whose content reloads: load() returns the nodes to show.
// Loads that overlap (two events in a row) show the newest one's result.
function section(load) {
  const box = el('div', { class: 'section' });
  let seq = 0;
  const run = async (ev) => {
    const mine = ++seq;
    try {
      const kids = await load(ev);
      if (mine === seq) replace(box, kids);
    } catch (e) {
      if (mine === seq && !(e instanceof ApiError && e.status === 401)) replace(box, errorBox(e));
    }
  };
  return { box, run };
}

// ---- dashboard ----

function statusView(s, props) {
  const nodes = s.nodes || [];
  const reachable = nodes.filter((n) => n.reachable).length;
  const drifting = nodes.filter((n) => n.drift).length;
  const card = (label, value, cls, id) => el('div', { class: 'card' },
    el('dt', {}, label), el('dd', { class: cls, id }, value));
  return [
    el('dl', { class: 'cards' },
      card('Fleet', s.fleet || '—'),
      card('Validity', s.valid ? 'valid' : 'invalid head', s.valid ? 'ok' : 'bad', 'fleet-valid'),
      card('Applied revision', short(s.applied_revision), 'mono', 'applied-rev'),
      card('Branch head', short(s.head), 'mono', 'head-rev'),
      card('Converged', s.converged ? 'yes' : 'no', s.converged ? 'ok' : 'warn'),
      card('Nodes reachable', `${reachable} / ${nodes.length}`, reachable === nodes.length ? 'ok' : 'warn'),
      card('Nodes drifting', String(drifting), drifting ? 'warn' : 'ok'),
      card('Users · devices', `${s.users ?? '—'} · ${s.devices ?? '—'}`, '', 'user-count'),
      props ? card('Open proposals', [link('/ui/proposals', String(openProposals(props).length), { id: 'proposal-count' }),
        props.review_required ? el('span', { class: 'muted' }, ' · review required') : null]) : null),
    s.refused_revision ? el('div', { class: 'alert error', role: 'alert', id: 'refused' },
      el('p', {}, el('strong', {}, 'Last refused revision: '), el('code', {}, short(s.refused_revision)),
        ' — it did not validate, so nodes keep the applied revision.'),
      el('pre', {}, s.refused_errors || '')) : null,
    el('h2', {}, 'Nodes'),
    table(['Node', 'Reachable', 'Phase', 'Applied revision', 'Drift', 'Last error'],
      nodes.map((n) => [
        link(`/ui/nodes#node-${n.name}`, n.name),
        yesno(n.reachable, 'reachable', 'unreachable'),
        n.phase || '—',
        el('code', {}, short(n.applied_revision)),
        n.drift ? el('span', { class: 'warn' }, 'drift') : el('span', { class: 'ok' }, 'in sync'),
        n.last_error ? el('span', { class: 'bad' }, n.last_error) : '—',
      ]), 'Nodes'),
    el('p', { class: 'muted' }, 'Revision served: ', el('code', { id: 'served-rev' }, short(s.revision)),
      ` · cox ${s.version || ''}`),
  ];
}

async function pageDashboard(main, page) {
  const s = section(async () => {
    const [st, pr] = await Promise.all([api('GET', '/status'), proposalsList().catch(() => null)]);
    if (st.data.branch) session.branch = st.data.branch;
    return statusView(st.data, pr);
  });
  replace(main, el('h1', {}, 'Dashboard'), s.box);
  await s.run();
  page.wantsStatus = true;
  page.wantsProposals = true;
  page.refresh = s.run;
}

// ---- nodes ----

async function pageNodes(main, page) {
  const s = section(async () => {
    const { data } = await api('GET', '/nodes');
    return [table(['Node', 'Region', 'Roles', 'Control', 'Reachable', 'Phase', 'Applied', 'Drift', 'Peers', 'Last seen', 'Last error'],
      data.nodes.map((n) => [
        el('span', { id: `node-${n.name}` }, n.name), n.region || '—', (n.roles || []).join(', ') || '—',
        n.control ? el('code', {}, n.control) : '—',
        yesno(n.reachable, 'yes', 'no'), n.phase || '—', el('code', {}, short(n.applied_revision)),
        n.drift ? el('span', { class: 'warn' }, 'drift') : 'no', String(n.peers ?? '—'),
        when(n.last_seen_unix), n.last_error ? el('span', { class: 'bad' }, n.last_error) : '—',
      ]), 'Nodes'),
    el('p', { class: 'muted' }, 'Nodes are edited in git (', el('code', {}, 'nodes/'), ' in fleet.git).')];
  });
  replace(main, el('h1', {}, 'Nodes'), s.box);
  await s.run();
  page.wantsStatus = true;
  page.refresh = s.run;
}

// ---- users ----

const PAGE = 50;

function field(id, label, input) {
  input.id = id;
  return el('label', { for: id }, label, input);
}

function roleSelect() {
  return el('select', { name: 'role' },
    el('option', { value: 'user' }, 'user'), el('option', { value: 'admin' }, 'admin'));
}

async function pageUsers(main, page, rest, params) {
  if (rest.length) return pageUser(main, page, rest[0]);
  const offset = Math.max(0, parseInt(params.get('offset') || '0', 10) || 0);
  let rev = null;
  const s = section(async () => {
    const r = await api('GET', `/users?offset=${offset}&limit=${PAGE}`);
    rev = r.rev;
    const { users, total } = r.data;
    const pager = el('nav', { class: 'row', 'aria-label': 'Pages' },
      offset > 0 ? link(`/ui/users?offset=${Math.max(0, offset - PAGE)}`, '← Previous') : null,
      el('span', { class: 'muted' }, total ? `${offset + 1}–${Math.min(total, offset + users.length)} of ${total}` : 'No users'),
      offset + PAGE < total ? link(`/ui/users?offset=${offset + PAGE}`, 'Next →') : null);
    return [table(['Name', 'Full name', 'Email', 'Role', 'Status', 'Devices'],
      users.map((u) => [link(`/ui/users/${enc(u.name)}`, u.name), u.full_name || '—', u.email || '—',
        u.role, u.disabled ? el('span', { class: 'warn' }, 'disabled') : 'enabled', String(u.devices)]), 'Users'),
    pager];
  });

  const msg = el('div', { 'aria-live': 'polite' });
  const f = {
    name: el('input', { type: 'text', required: true, pattern: '[a-z0-9][a-z0-9._\\-]*', autocomplete: 'off' }),
    email: el('input', { type: 'email', autocomplete: 'off' }),
    full_name: el('input', { type: 'text', autocomplete: 'off' }),
    role: roleSelect(),
    disabled: el('input', { type: 'checkbox' }),
    dev: el('input', { type: 'text', autocomplete: 'off' }),
    key: el('input', { type: 'text', autocomplete: 'off', class: 'mono' }),
    addr: el('input', { type: 'text', autocomplete: 'off' }),
  };
  const form = el('form', { class: 'stack', id: 'new-user' },
    field('nu-name', 'Name (lowercase letters, digits, . _ -)', f.name),
    field('nu-full', 'Full name', f.full_name),
    field('nu-email', 'Email', f.email),
    field('nu-role', 'Role', f.role),
    el('label', { class: 'check', for: 'nu-disabled' }, f.disabled, 'Disabled'),
    el('fieldset', {}, el('legend', {}, 'First device (optional)'),
      field('nu-dev', 'Device name', f.dev), field('nu-key', 'WireGuard public key', f.key),
      field('nu-addr', 'Address (optional; allocated when empty)', f.addr)),
    el('div', { class: 'row' }, el('button', { type: 'submit' }, 'Create user')), msg);
  f.disabled.id = 'nu-disabled';
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { name: f.name.value.trim(), role: f.role.value, disabled: f.disabled.checked };
    if (f.email.value.trim()) body.email = f.email.value.trim();
    if (f.full_name.value) body.full_name = f.full_name.value;
    if (f.dev.value.trim() || f.key.value.trim()) {
      const d = { name: f.dev.value.trim(), public_key: f.key.value.trim() };
      if (f.addr.value.trim()) d.address = f.addr.value.trim();
      body.devices = [d];
    }
    replace(msg);
    try {
      const r = await api('POST', '/users', { body, rev: rev || session.revision });
      if (r.data.proposal) {
        toast(`Proposed as ${r.data.branch}`);
        form.reset();
        replace(msg, proposedBox(r.data));
        return;
      }
      toast(`User ${body.name} created in ${short(r.data.revision)}`);
      navigate(`/ui/users/${enc(body.name)}`);
    } catch (ex) {
      if (ex.status !== 401) replace(msg, errorBox(ex, { onReload: () => { s.run(); replace(msg); } }));
    }
  });
  replace(main, el('h1', {}, 'Users and devices'), reviewNote(), s.box,
    el('details', { id: 'new-user-box' }, el('summary', {}, 'Add a user'), form));
  await s.run();
  page.refresh = s.run;
}

async function pageUser(main, page, name) {
  let rec = null;       // the record as read at `rev`
  let rev = null;
  let dirty = false;
  const msg = el('div', { 'aria-live': 'polite', id: 'user-msg' });
  const notice = el('div', { 'aria-live': 'polite', id: 'user-notice' });
  const f = {
    email: el('input', { type: 'email', autocomplete: 'off' }),
    full_name: el('input', { type: 'text', autocomplete: 'off' }),
    role: roleSelect(),
    disabled: el('input', { type: 'checkbox', id: 'eu-disabled' }),
  };
  const revShown = el('code', { id: 'user-rev' });
  const devBox = el('div', { id: 'devices' });

  const fill = () => {
    f.email.value = rec.email || '';
    f.full_name.value = rec.full_name || '';
    f.role.value = rec.role || 'user';
    f.disabled.checked = !!rec.disabled;
    revShown.textContent = short(rev);
    editForm.dataset.rev = rev;          // loaded (the tests wait for it)
    dirty = false;
    replace(notice);
    replace(devBox, table(['Device', 'Public key', 'Address', ''],
      (rec.devices || []).map((d) => [d.name, el('code', {}, d.public_key || '—'), d.address || '—',
        el('button', { type: 'button', class: 'danger', 'aria-label': `Remove device ${d.name}`,
          onclick: () => removeDevice(d.name) }, 'Remove')]), 'Devices'));
  };

  const load = async () => {
    const r = await api('GET', `/users/${enc(name)}`);
    rec = r.data;
    rev = r.rev;
    fill();
  };

  const mutate = async (method, path, body, okText, base) => {
    replace(msg);
    try {
      const r = await api(method, path, { body, rev: base || rev });
      if (r.data.proposal) {
        toast(`Proposed as ${r.data.branch}`);
        replace(msg, proposedBox(r.data));
        return r;
      }
      toast(okText);
      replace(msg, el('p', { class: 'alert success', role: 'status' }, `${okText} (revision ${short(r.data.revision)}).`));
      return r;
    } catch (ex) {
      if (ex.status === 401) return null;
      replace(msg, errorBox(ex, {
        onReload: async () => { replace(msg); await load(); },
        onRetry: ex.status === 409 ? async (newRev) => { await mutate(method, path, body, okText, newRev); } : null,
      }));
      return null;
    }
  };

  const editForm = el('form', { class: 'stack', id: 'edit-user' },
    field('eu-full', 'Full name', f.full_name),
    field('eu-email', 'Email', f.email),
    field('eu-role', 'Role', f.role),
    el('label', { class: 'check', for: 'eu-disabled' }, f.disabled, 'Disabled'),
    el('div', { class: 'row' }, el('button', { type: 'submit' }, 'Save'),
      el('button', { type: 'button', class: 'secondary', onclick: () => load() }, 'Reload'),
      el('span', { class: 'muted' }, 'Read at ', revShown)));
  editForm.addEventListener('input', () => { dirty = true; });
  editForm.addEventListener('change', () => { dirty = true; });
  editForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { email: f.email.value.trim() || null, full_name: f.full_name.value || null,
      role: f.role.value, disabled: f.disabled.checked,
      devices: (rec.devices || []).map((d) => ({ name: d.name, public_key: d.public_key, address: d.address })) };
    for (const k of Object.keys(body)) if (body[k] === null) delete body[k];
    if (!body.disabled && !rec.disabled) delete body.disabled;
    const r = await mutate('PUT', `/users/${enc(name)}`, body, `Saved ${name}`);
    if (r) { dirty = false; await load(); }
  });

  const dn = el('input', { type: 'text', required: true, autocomplete: 'off' });
  const dk = el('input', { type: 'text', required: true, autocomplete: 'off', class: 'mono' });
  const devForm = el('form', { class: 'stack', id: 'add-device' },
    field('ad-name', 'Device name', dn), field('ad-key', 'WireGuard public key', dk),
    el('div', { class: 'row' }, el('button', { type: 'submit' }, 'Add device')));
  devForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const r = await mutate('POST', `/users/${enc(name)}/devices`, { name: dn.value.trim(), public_key: dk.value.trim() },
      `Added device ${dn.value.trim()}`);
    if (r) { dn.value = dk.value = ''; await load(); }
  });

  async function removeDevice(dev) {
    if (!window.confirm(`Remove device ${dev} of ${name}?`)) return;
    const r = await mutate('DELETE', `/users/${enc(name)}/devices/${enc(dev)}`, undefined, `Removed device ${dev}`);
    if (r) await load();
  }

  const delBtn = el('button', { type: 'button', class: 'danger', id: 'delete-user', onclick: async () => {
    if (!window.confirm(`Delete user ${name} and all their devices?`)) return;
    const r = await mutate('DELETE', `/users/${enc(name)}`, undefined, `Deleted ${name}`);
    if (r && !r.data.proposal) navigate('/ui/users');
  } }, 'Delete user');

  replace(main, el('p', {}, link('/ui/users', '← Users')),
    el('h1', {}, 'User ', el('span', { id: 'user-name' }, name)), reviewNote(), notice, msg,
    el('h2', {}, 'Details'), editForm,
    el('h2', {}, 'Devices'), devBox, el('details', {}, el('summary', {}, 'Add a device'), devForm),
    el('h2', {}, 'Danger zone'), delBtn);
  await load();
  page.refresh = async (ev) => {
    if (ev.type === 'hello' || (ev.revision && ev.revision === rev)) return;
    if (dirty) {
      replace(notice, el('p', { class: 'alert info' }, 'The fleet changed since you loaded this user (now ',
        el('code', {}, short(ev.revision)), '). Saving checks whether this user changed. ',
        el('button', { type: 'button', class: 'secondary', onclick: () => load() }, 'Reload now')));
      return;
    }
    try { await load(); } catch (e) {
      if (e.status === 404) replace(notice, el('p', { class: 'alert info' }, 'This user no longer exists at the newest revision.'));
    }
  };
}

// ---- history ----

function diffView(text) {
  const pre = el('pre', { class: 'diff' });
  for (const line of String(text).split('\n')) {
    const cls = line.startsWith('+') && !line.startsWith('+++') ? 'add'
      : line.startsWith('-') && !line.startsWith('---') ? 'del' : line.startsWith('@@') ? 'hunk' : null;
    pre.append(cls ? el('span', { class: cls }, line) : document.createTextNode(line), cls ? '' : '\n');
  }
  return pre;
}

// What a commit did to every node: its plan against its first parent (computed by the
// server's worker, so it is filled in when it comes).
function commitPlan(rev) {
  const box = el('div', { id: 'commit-plan-box', 'aria-live': 'polite' },
    el('p', { class: 'muted' }, 'Computing the plan…'));
  const show = (d) => {
    const p = d && d.plan;
    if (!p) return replace(box, el('p', { class: 'muted', id: 'commit-plan-none' }, 'The first commit: there is nothing to compare it with.'));
    return replace(box, el('p', {}, 'Against its parent ', el('code', {}, short(d.parent)), ': ',
      el('span', { class: p.status === 'clean' ? 'ok' : 'bad', 'data-status': p.status }, p.status),
      p.changes !== undefined ? ` · ${p.changes} node${p.changes === 1 ? '' : 's'} change` : ''),
    p.plan ? el('pre', { id: 'commit-plan' }, p.plan) : null,
    p.errors ? el('pre', { id: 'commit-plan-errors', class: 'bad' }, p.errors) : null);
  };
  api('GET', `/history/${enc(rev)}/plan`).then((r) => show(r.data)).catch((e) => {
    if (e instanceof ApiError && e.status === 401) return;
    if (e instanceof ApiError && e.data && e.data.plan) show(e.data);   // 422: the commit did not validate
    else replace(box, errorBox(e));
  });
  return box;
}

async function pageHistory(main, page, rest) {
  if (rest.length) {
    const { data } = await api('GET', `/history/${enc(rest[0])}`);
    replace(main, el('p', {}, link('/ui/history', '← History')),
      el('h1', {}, 'Commit ', el('code', {}, short(data.revision))),
      el('p', {}, 'By ', data.author, data.email ? ` <${data.email}>` : '', ' at ', when(data.time_unix)),
      el('h2', {}, 'Message'), el('pre', { id: 'commit-message' }, data.message),
      el('h2', {}, 'Changes'), data.diff ? diffView(data.diff) : el('p', { class: 'muted' }, 'No changes.'),
      el('h2', {}, 'Plan'), commitPlan(data.revision));
    return;
  }
  const s = section(async () => {
    const { data } = await api('GET', '/history?limit=100');
    return table(['Revision', 'When', 'Author', 'Message'], data.commits.map((c) => [
      link(`/ui/history/${c.revision}`, short(c.revision), { class: 'mono' }), when(c.time_unix), c.author,
      firstLine(c.message)]), 'Commits on the applied branch');
  });
  replace(main, el('h1', {}, 'History'), s.box);
  await s.run();
  page.refresh = s.run;
}

// ---- audit ----

async function pageAudit(main, page) {
  const s = section(async () => {
    const { data } = await api('GET', '/audit?limit=200');
    const v = data.verify || {};
    return [
      v.intact ? el('p', { class: 'alert success', id: 'audit-verify' }, `The hash chain is intact (${v.entries} entries).`)
        : el('p', { class: 'alert error', role: 'alert', id: 'audit-verify' },
          `The hash chain is broken at entry ${v.first_bad}: ${v.why || 'unknown'}.`),
      table(['#', 'When', 'Actor', 'Action', 'Object', 'Detail'], data.entries.map((e) => [
        String(e.seq), when(e.time_unix), e.actor, e.action, e.object, e.detail]), 'Audit log')];
  });
  replace(main, el('h1', {}, 'Audit log'), s.box);
  await s.run();
  page.refresh = s.run;
}

// ---- tokens ----

async function pageTokens(main, page) {
  const created = el('div', { 'aria-live': 'polite', id: 'token-created' });
  const s = section(async () => {
    const { data } = await api('GET', '/tokens');
    const now = Date.now() / 1000;
    return table(['ID', 'Name', 'Scope', 'Status', 'Created', 'Expires', 'Last used', 'Created by', ''],
      data.tokens.map((t) => {
        const status = t.revoked_unix ? 'revoked' : t.expires_unix <= now ? 'expired' : 'active';
        return [String(t.id), t.name, t.scope, el('span', { class: status === 'active' ? 'ok' : 'muted' }, status),
          when(t.created_unix), when(t.expires_unix), when(t.last_used_unix), t.created_by,
          status === 'active' ? el('button', { type: 'button', class: 'danger', 'aria-label': `Revoke token ${t.name}`,
            onclick: async () => {
              if (!window.confirm(`Revoke token ${t.name}?`)) return;
              try { await api('DELETE', `/tokens/${enc(String(t.id))}`); toast(`Revoked ${t.name}`); replace(created); await s.run(); } catch (ex) {
                if (ex.status !== 401) replace(created, errorBox(ex));
              }
            } }, 'Revoke') : ''];
      }), 'API tokens');
  });
  const name = el('input', { type: 'text', required: true, pattern: '[a-z][a-z0-9._\\-]{0,63}', autocomplete: 'off' });
  const scope = el('select', {}, ['read', 'write', 'admin'].map((x) => el('option', { value: x }, x)));
  const days = el('input', { type: 'number', min: '1', max: '366', value: '30' });
  const form = el('form', { class: 'stack', id: 'new-token' },
    field('nt-name', 'Name', name), field('nt-scope', 'Scope', scope), field('nt-days', 'Valid for (days)', days),
    el('div', { class: 'row' }, el('button', { type: 'submit' }, 'Create token')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    replace(created);
    try {
      const r = await api('POST', '/tokens', { body: { name: name.value.trim(), scope: scope.value,
        ttl_seconds: Math.round(Number(days.value) * 86400) } });
      name.value = '';
      replace(created, el('div', { class: 'alert success', role: 'status' },
        el('p', {}, el('strong', {}, `Token ${r.data.name} (${r.data.scope})`), ' — copy it now: it is shown only this once.'),
        el('output', { class: 'secret', id: 'token-value' }, r.data.token),
        el('button', { type: 'button', class: 'secondary', onclick: () => navigator.clipboard && navigator.clipboard.writeText(r.data.token) }, 'Copy')));
      await s.run();
    } catch (ex) {
      if (ex.status !== 401) replace(created, errorBox(ex));
    }
  });
  replace(main, el('h1', {}, 'API tokens'), created, s.box, el('h2', {}, 'New token'), form);
  await s.run();
  page.refresh = s.run;
}

// ---- proposals ----
//
// A proposal is any branch but the applied one: proposals/<id> opened by an edit when the
// fleet requires review, or a branch pushed from outside. Branch names have slashes: the
// review page is /ui/proposals/<branch> (the route's remaining segments, joined), and the
// API takes the name in ?branch=.

const proposalHref = (branch) => `/ui/proposals/${String(branch).split('/').map(enc).join('/')}`;
const openProposals = (d) => (d.proposals || []).filter((p) => p.state === 'open');

async function proposalsList() {
  const { data } = await api('GET', '/proposals');
  if (data.branch) session.branch = data.branch;
  return data;
}

// Under the heading of the users' pages: whether saving here commits or proposes.
function reviewNote() {
  const box = el('div', { id: 'review-note' });
  proposalsList().then((d) => {
    if (d.review_required) {
      replace(box, el('p', { class: 'alert info' }, 'This fleet requires review: a change saved here opens a proposal, and ',
        el('code', {}, d.branch), ' changes once another admin has approved it and it is merged (',
        link('/ui/proposals', 'proposals'), ').'));
    }
  }).catch(() => {});
  return box;
}

// The reply to an edit that went to a proposal branch.
function proposedBox(d) {
  return el('div', { class: 'alert info', role: 'status', id: 'proposed' },
    el('p', {}, el('strong', {}, 'Proposed as ', el('code', { class: 'branch' }, d.branch)), ' — waiting for review.'),
    el('p', {}, el('code', {}, session.branch), ' does not change until the proposal is approved and merged; ',
      'what you see below is ', el('code', {}, session.branch), '. ',
      link(proposalHref(d.branch), 'Open the review page', { id: 'proposed-link' })));
}

function approvalsView(p) {
  const a = p.approvals || [];
  if (!a.length) return el('span', { class: 'muted' }, 'none');
  return a.map((x, i) => [i ? ', ' : '', el('span', { class: x.counts ? 'ok' : 'muted', 'data-approver': x.user },
    x.user, x.counts ? '' : ' (does not count)')]);
}

function stateView(p) {
  return el('span', { class: `pill ${p.state === 'open' ? 'warn' : 'ok'}`, 'data-state': p.state }, p.state);
}

async function pageProposals(main, page, rest) {
  if (rest.length) return pageProposal(main, page, rest.join('/'));
  const s = section(async () => {
    const d = await proposalsList();
    const list = [...(d.proposals || [])].sort((a, b) => (a.state === 'open' ? 0 : 1) - (b.state === 'open' ? 0 : 1)
      || (b.time_unix || 0) - (a.time_unix || 0));
    return [
      el('p', { class: d.review_required ? 'alert info' : 'muted', id: 'review-mode' }, d.review_required
        ? ['This fleet requires review: every edit opens a proposal, and another admin approves it before it is merged into ',
          el('code', {}, d.branch), '.']
        : ['Review is not required: edits made here commit to ', el('code', {}, d.branch),
          '. Branches pushed to fleet.git are listed here and can be reviewed and merged.']),
      el('p', { class: 'muted', id: 'proposal-summary' }, `${openProposals(d).length} open · ${list.length} in all`),
      table(['Branch', 'Title', 'Authors', 'Ahead / behind', 'Approvals', 'State', 'Last commit'],
        list.map((p) => [
          link(proposalHref(p.branch), p.branch, { class: 'mono', 'data-branch': p.branch }),
          p.title || '—',
          (p.authors || []).join(', ') || '—',
          `${p.ahead} / ${p.behind}`,
          [approvalsView(p), p.approved ? el('span', { class: 'ok' }, ' · approved') : null],
          stateView(p),
          when(p.time_unix),
        ]), 'Proposals'),
    ];
  });
  replace(main, el('h1', {}, 'Proposals'), s.box);
  await s.run();
  page.wantsProposals = true;
  page.refresh = s.run;
}

function mergeView(m) {
  if (!m) return el('p', { class: 'muted' }, 'No merge preview.');
  const status = el('span', { class: m.status === 'clean' ? 'ok' : 'bad', id: 'merge-status', 'data-status': m.status }, m.status);
  const onto = m.onto ? [' onto ', el('code', {}, short(m.onto))] : null;
  switch (m.status) {
    case 'clean':
      return [el('p', {}, 'Merging it now: ', status, onto, ` · ${m.changes ?? 0} node${m.changes === 1 ? '' : 's'} change.`),
        el('pre', { id: 'merge-plan' }, m.plan || '')];
    case 'conflict':
      return [el('p', {}, 'Merging it now: ', status, onto,
        ' — the proposal and the branch changed the same lines of these files; update the proposal:'),
      el('ul', { id: 'merge-conflicts' }, (m.conflicts || []).map((c) => el('li', {}, el('code', {}, c))))];
    case 'invalid':
      return [el('p', {}, 'Merging it now: ', status, onto, ' — the merged fleet would not validate:'),
        el('pre', { id: 'merge-errors', class: 'bad' }, m.errors || '')];
    case 'nothing':
      return el('p', {}, 'Merging it now: ', status, ' — everything in it is already in the branch.');
    default:
      return [el('p', {}, 'Merging it now: ', status, onto),
        m.errors ? el('pre', { id: 'merge-errors', class: 'bad' }, m.errors) : null];
  }
}

async function pageProposal(main, page, branch) {
  const msg = el('div', { 'aria-live': 'polite', id: 'proposal-msg' });
  let shown = null;     // the proposal as shown: actions use its head
  let busy = false;

  const act = async (what, method, path, done) => {
    if (!shown || busy) return;
    busy = true;
    replace(msg);
    try {
      const r = await api(method, `${path}?branch=${enc(branch)}`, { rev: shown.head });
      await done(r.data);
    } catch (ex) {
      if (ex.status === 401) return;
      const d = ex.data || {};
      if (ex.status === 409 && d.error === 'proposal_changed') {
        replace(msg, el('div', { class: 'alert conflict', role: 'alert', 'data-kind': 'proposal-changed' },
          el('p', {}, el('strong', {}, 'The proposal changed '), 'since you loaded it (its head is now ',
            el('code', {}, short(d.head)), `). Nothing was ${what}; the page shows it as it is now — review it again.`)));
        await s.run();
      } else if (ex.status === 409 && d.error === 'merge_conflict') {
        replace(msg, el('div', { class: 'alert error', role: 'alert', 'data-kind': 'merge-conflict' },
          el('p', {}, el('strong', {}, 'Not merged: '), d.message || 'it conflicts with the branch'),
          el('ul', {}, (d.conflicts || []).map((c) => el('li', {}, el('code', {}, c))))));
        await s.run();
      } else {
        replace(msg, errorBox(ex));
      }
    } finally {
      busy = false;
    }
  };

  const approve = () => act('approved', 'POST', '/proposal/approve', async () => {
    toast(`Approved ${branch}`);
    replace(msg, el('p', { class: 'alert success', role: 'status' }, `You approved ${short(shown.head)}.`));
    await s.run();
  });
  const merge = () => act('merged', 'POST', '/proposal/merge', async (d) => {
    toast(`Merged ${branch}`);
    replace(msg, el('div', { class: 'alert success', role: 'status', id: 'merged' },
      el('p', {}, el('strong', {}, 'Merged '), el('code', {}, d.merged || branch), ' into ', el('code', {}, d.branch),
        ' as ', link(`/ui/history/${d.revision}`, short(d.revision), { class: 'mono', id: 'merged-commit' }),
        ` · ${d.changes ?? 0} node${d.changes === 1 ? '' : 's'} change.`),
      d.plan ? el('pre', {}, d.plan) : null));
    await s.run();
  });
  const close = () => {
    if (!window.confirm(`Close ${branch}? Its branch is deleted.`)) return;
    act('closed', 'DELETE', '/proposal', async () => {
      toast(`Closed ${branch}`);
      navigate('/ui/proposals');
    });
  };

  const s = section(async () => {
    let p;
    try {
      const r = await api('GET', `/proposal?branch=${enc(branch)}`);
      p = r.data;
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        shown = null;
        return el('p', { class: 'alert info', id: 'proposal-gone' },
          'There is no such proposal (any more): it was merged or closed. ', link('/ui/proposals', 'All proposals'));
      }
      throw e;
    }
    shown = p;
    const open = p.state === 'open';
    const mine = (p.approvals || []).some((a) => a.user === session.user);
    const m = p.merge || {};
    const blocked = ['conflict', 'invalid', 'nothing'].includes(m.status);
    const notes = [];
    if (open && p.you_wrote_it && p.review_required) notes.push('You wrote this proposal: another admin must approve it.');
    else if (open && mine) notes.push('You approved this head.');
    if (open && !p.can_merge && p.review_required && !p.approved) notes.push('It needs an approval by an admin who wrote none of it before it can be merged.');
    if (open && p.can_merge && blocked) notes.push('It cannot be merged as it is: see the merge preview.');
    const actions = open ? el('div', { class: 'row', id: 'proposal-actions' },
      el('button', { type: 'button', id: 'approve', disabled: !p.can_approve, onclick: approve }, 'Approve'),
      el('button', { type: 'button', id: 'merge', disabled: !p.can_merge || blocked, onclick: merge }, `Merge into ${session.branch}`),
      p.ours ? el('button', { type: 'button', class: 'danger', id: 'close', onclick: close }, 'Close') : null)
      : null;
    return [
      recordView({
        title: p.title || '—',
        state: p.state,
        authors: (p.authors || []).join(', ') || '—',
        head: short(p.head),
        base: short(p.base),
        'ahead / behind': `${p.ahead} / ${p.behind}`,
        approved: p.approved ? 'yes' : 'no',
      }),
      el('p', {}, 'Approvals of this head: ', el('span', { id: 'approvals' }, approvalsView(p))),
      notes.length ? el('div', { id: 'proposal-notes' }, notes.map((n) => el('p', { class: 'muted' }, n))) : null,
      actions,
      el('h2', {}, 'Merge preview'), el('div', { id: 'merge-preview' }, mergeView(m)),
      el('h2', {}, 'Changes'), p.diff ? diffView(p.diff) : el('p', { class: 'muted' }, 'No changes.'),
    ];
  });
  replace(main, el('p', {}, link('/ui/proposals', '← Proposals')),
    el('h1', {}, 'Proposal ', el('code', { id: 'proposal-branch' }, branch)), msg, s.box);
  await s.run();
  page.wantsProposals = true;
  // this branch's events, any branch's push (branch ""), and whatever moves the applied
  // branch (the merge preview is against it)
  page.wants = (ev) => ev.type !== 'status' && (ev.type !== 'proposal' || !ev.branch || ev.branch === branch)
    && (ev.type !== 'commit' || mainChange(ev) || ev.branch === branch);
  page.refresh = s.run;
}

start();
