// ferry's dashboard: plain ES module, no build step. Every piece of data is
// rendered through textContent / attributes (see `h`), never as HTML.

const API = '/pulp/api/v3';
const REMOTES = `${API}/remotes/container/pull-through/`;
const DISTRIBUTIONS = `${API}/distributions/container/pull-through/`;
const REPOSITORIES = `${API}/repositories/container/container/`;
const PAGE_SIZE = 20;
const AUTH_KEY = 'ferry.auth';
const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

// ---------------------------------------------------------------- helpers

let generation = 0;

/** Builds an element; strings and numbers become text nodes, never HTML. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = String(v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function formatBytes(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

function formatTime(s) {
  if (!s) return '—';
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? String(s) : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function shortDigest(d) {
  return d && d.length > 19 ? `${d.slice(0, 19)}…` : d || '';
}

const enc = encodeURIComponent;

function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, v);
  const s = u.toString();
  return s ? `?${s}` : '';
}

// ---------------------------------------------------------------- session & HTTP

const session = {
  get auth() { return sessionStorage.getItem(AUTH_KEY); },
  login(password) { sessionStorage.setItem(AUTH_KEY, btoa(unescape(encodeURIComponent(`admin:${password}`)))); },
  logout() { sessionStorage.removeItem(AUTH_KEY); },
};

class HttpError extends Error {
  constructor(status, body) {
    super(describeError(status, body));
    this.status = status;
    this.body = body;
  }
}

function describeError(status, body) {
  if (body && typeof body === 'object') {
    if (body.detail) return `${status}: ${body.detail}`;
    if (body.errors && body.errors[0]) return `${status}: ${body.errors[0].message || body.errors[0].code}`;
    const parts = Object.entries(body).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(' ') : JSON.stringify(v)}`);
    if (parts.length) return `${status}: ${parts.join('; ')}`;
  }
  return `HTTP ${status}${typeof body === 'string' && body ? `: ${body.slice(0, 200)}` : ''}`;
}

async function request(path, { method = 'GET', body, headers = {}, auth = true } = {}) {
  const hdrs = { ...headers };
  if (auth && session.auth) hdrs.Authorization = `Basic ${session.auth}`;
  if (body !== undefined) hdrs['Content-Type'] = 'application/json';
  const resp = await fetch(path, {
    method,
    headers: hdrs,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'omit',
    cache: 'no-store',
  });
  const type = resp.headers.get('content-type') || '';
  const text = await resp.text();
  let data = text;
  if (type.includes('json') && text) {
    try { data = JSON.parse(text); } catch { /* keep the text */ }
  }
  if (!resp.ok) {
    if (resp.status === 401 && auth && session.auth && path.startsWith(API)) {
      session.logout();
      renderSession();
    }
    throw new HttpError(resp.status, data);
  }
  return data;
}

const api = (path, opts) => request(path, opts);

/** Every result of a paginated list (bounded: at most `max` items). */
async function listAll(base, params = {}, max = 1000) {
  const out = [];
  let offset = 0;
  for (;;) {
    const page = await api(`${base}${qs({ ...params, limit: 200, offset })}`);
    out.push(...page.results);
    offset += page.results.length;
    if (!page.next || page.results.length === 0 || out.length >= max) return out;
  }
}

// ---------------------------------------------------------------- metrics

/** Parses Prometheus text into [{name, labels, value}]. */
function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([A-Za-z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

function metricSum(metrics, name, pred = () => true) {
  return metrics.filter((m) => (m.name === name || m.name === `${name}_total`) && pred(m.labels))
    .reduce((a, m) => a + m.value, 0);
}

// ---------------------------------------------------------------- UI pieces

const main = () => document.getElementById('main');

class Stale extends Error {}

/** The render function of the route being shown now: a page that finishes
 * after the user moved on throws `Stale` instead of drawing over the page. */
function view() {
  const mine = generation;
  return (title, ...children) => {
    if (mine !== generation) throw new Stale();
    render(title, ...children);
  };
}

function render(title, ...children) {
  const m = main();
  m.replaceChildren(h('h1', { text: title }));
  append(m, children);
  document.title = `${title} · ferry`;
}

function errorBox(err) {
  return h('p', { class: 'error', role: 'alert' }, err instanceof Error ? err.message : String(err));
}

function loginPrompt(what) {
  return h('div', { class: 'notice', role: 'note' },
    h('p', {}, `Log in as admin to see ${what}.`),
    h('a', { class: 'button', href: `#/login${qs({ next: location.hash })}` }, 'Log in'));
}

function table(caption, headers, rows, { empty = 'Nothing here yet.' } = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('caption', { class: 'sr-only' }, caption),
      h('thead', {}, h('tr', {}, headers.map((x) => (x instanceof Node ? x : h('th', { scope: 'col' }, x))))),
      h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((c, i) => h('td', { 'data-label': typeof headers[i] === 'string' ? headers[i] : headers[i].textContent }, c)))))));
}

function pager(page, onPage) {
  const { count, offset, limit } = page;
  const from = count === 0 ? 0 : offset + 1;
  const to = Math.min(offset + limit, count);
  return h('nav', { class: 'pager', 'aria-label': 'Pagination' },
    h('button', { type: 'button', disabled: offset <= 0, onclick: () => onPage(Math.max(0, offset - limit)) }, '← Previous'),
    h('span', { class: 'range', 'aria-live': 'polite' }, `${from}–${to} of ${count}`),
    h('button', { type: 'button', disabled: offset + limit >= count, onclick: () => onPage(offset + limit) }, 'Next →'));
}

function copyButton(text, label) {
  const btn = h('button', { type: 'button', class: 'copy', 'aria-label': label }, 'Copy');
  btn.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      btn.textContent = 'Copied';
    } catch {
      // No clipboard (plain HTTP on another host): select the text instead.
      const code = btn.previousElementSibling;
      const range = document.createRange();
      range.selectNodeContents(code);
      const sel = getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      btn.textContent = 'Press Ctrl+C';
    }
    setTimeout(() => { btn.textContent = 'Copy'; }, 2000);
  });
  return btn;
}

function pullLine(ref) {
  const line = `podman pull ${location.host}/${ref}`;
  return h('span', { class: 'pull' }, h('code', {}, line), copyButton(line, `Copy pull command for ${ref}`));
}

function badge(ok, yes, no) {
  return h('span', { class: `badge ${ok ? 'ok' : 'bad'}` }, ok ? yes : no);
}

function renderSession() {
  const el = document.getElementById('session');
  if (!el) return;
  if (session.auth) {
    el.replaceChildren(h('span', {}, 'admin'), ' ',
      h('button', { type: 'button', onclick: () => { session.logout(); renderSession(); route(); } }, 'Log out'));
  } else {
    el.replaceChildren(h('a', { class: 'button', href: `#/login${qs({ next: location.hash })}` }, 'Log in'));
  }
}

function hashLink(path, params) {
  return `#${path}${qs(params || {})}`;
}

// ---------------------------------------------------------------- pages

async function overview() {
  const show = view();
  show('Overview', h('p', { class: 'muted' }, 'Loading…'));
  const [status, metricsText] = await Promise.all([
    api(`${API}/status/`, { auth: false }),
    request('/metrics', { auth: false }).catch(() => ''),
  ]);
  const metrics = parseMetrics(typeof metricsText === 'string' ? metricsText : '');
  const hits = metricSum(metrics, 'ferry_cache_requests', (l) => l.result === 'hit');
  const misses = metricSum(metrics, 'ferry_cache_requests', (l) => l.result === 'miss');
  const served = metricSum(metrics, 'ferry_served_bytes');
  const fetched = metricSum(metrics, 'ferry_upstream_fetched_bytes');
  const version = (status.versions || []).find((v) => v.component === 'ferry');
  document.getElementById('version').textContent = version ? `ferry ${version.version}` : '';

  const stats = h('dl', { class: 'stats', 'aria-label': 'Totals' },
    stat('Cached', `${formatBytes(status.storage.cached_bytes)} in ${status.storage.cached_objects} objects`),
    stat('Disk free', `${formatBytes(status.storage.free)} of ${formatBytes(status.storage.total)}`),
    stat('Hit ratio', hits + misses ? `${((100 * hits) / (hits + misses)).toFixed(1)} % (${hits} hits, ${misses} misses)` : '—'),
    stat('Served / fetched', `${formatBytes(served)} / ${formatBytes(fetched)}`),
    stat('Downloads in flight', status.downloads_in_flight));

  let details = null;
  let detailError = null;
  if (session.auth) {
    try {
      details = await cacheDetails(status.upstreams.map((u) => u.base_path));
    } catch (e) {
      detailError = e;
    }
  }
  const distByBase = new Map((details?.distributions || []).map((d) => [d.base_path, d]));
  const rows = status.upstreams.map((u) => {
    const d = details?.perCache.get(u.base_path);
    const dist = distByBase.get(u.base_path);
    return [
      h('div', {}, h('a', { href: hashLink(`/cache/${enc(u.base_path)}`), class: 'cache-link' }, u.base_path),
        dist && dist.name !== u.base_path ? h('div', { class: 'muted small' }, dist.name) : null,
        dist?.description ? h('div', { class: 'muted small desc' }, dist.description) : null),
      h('span', { class: 'url' }, u.url),
      h('span', {}, badge(u.reachable, 'reachable', 'unreachable'), u.private ? h('span', { class: 'badge' }, 'private') : null),
      h('span', { class: 'num', 'data-field': 'repositories' }, d ? d.repositories : '—'),
      h('span', { class: 'num', 'data-field': 'tags' }, d ? d.tags : '—'),
      h('span', { class: 'num', 'data-field': 'blobs' }, d ? d.blobs : '—'),
      h('span', { class: 'num', 'data-field': 'bytes' }, d ? formatBytes(d.bytes) : '—'),
    ];
  });
  show('Overview',
    stats,
    h('h2', {}, 'Caches'),
    session.auth ? null : loginPrompt('repositories, tags and sizes per cache'),
    detailError ? errorBox(detailError) : null,
    table('Caches', ['Cache', 'Upstream', 'Status', 'Repositories', 'Tags', 'Blobs', 'On disk'], rows,
      { empty: 'No caches yet.' }));
}

function stat(label, value) {
  return h('div', { class: 'stat' }, h('dt', {}, label), h('dd', {}, value));
}

/** Per cache: repositories, tags, distinct blobs and their bytes. */
async function cacheDetails(basePaths) {
  const [repos, tags, distributions] = await Promise.all([
    listAll(REPOSITORIES),
    listAll(`${API}/content/container/tags/`, {}, 5000),
    listAll(DISTRIBUTIONS),
  ]);
  // Longest base path first, so nested base paths get their own repositories.
  const sorted = [...basePaths].sort((a, b) => b.length - a.length);
  const cacheOf = (name) => sorted.find((b) => name.startsWith(`${b}/`));
  const perCache = new Map(basePaths.map((b) => [b, { repositories: 0, tags: 0, blobs: 0, bytes: 0, repos: [] }]));
  for (const r of repos) {
    const c = perCache.get(cacheOf(r.name));
    if (c) { c.repositories++; c.repos.push(r); }
  }
  for (const t of tags) {
    const c = perCache.get(cacheOf(t.repository));
    if (c) c.tags++;
  }
  await Promise.all([...perCache.values()].map(async (c) => {
    const seen = new Map();
    // Bounded: the blobs of the first 50 repositories.
    await Promise.all(c.repos.slice(0, 50).map(async (r) => {
      const blobs = await listAll(`${API}/content/container/blobs/`, { repository_version: r.latest_version_href });
      for (const b of blobs) seen.set(b.digest, b.size || 0);
    }));
    c.blobs = seen.size;
    c.bytes = [...seen.values()].reduce((a, b) => a + b, 0);
  }));
  return { perCache, distributions };
}

async function cachePage(basePath, params) {
  const show = view();
  const q = params.get('q') || '';
  const desc = params.get('sort') === '-name';
  const offset = Math.max(0, Number(params.get('offset')) || 0);
  const go = (changes) => {
    const next = { q, sort: desc ? '-name' : '', offset: String(offset), ...changes };
    if (next.offset === '0') delete next.offset;
    location.hash = hashLink(`/cache/${enc(basePath)}`, next);
  };
  const search = h('form', { class: 'search', role: 'search', onsubmit: (e) => { e.preventDefault(); go({ q: e.target.elements.q.value.trim(), offset: '0' }); } },
    h('label', { for: 'repo-search' }, 'Search repositories'),
    h('input', { id: 'repo-search', name: 'q', type: 'search', value: q, autocomplete: 'off' }),
    h('button', { type: 'submit' }, 'Search'));
  const crumbs = h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Overview'), ' / ', basePath);
  if (!session.auth) {
    show(`Cache ${basePath}`, crumbs, loginPrompt('the repositories of this cache'));
    return;
  }
  show(`Cache ${basePath}`, crumbs, search, h('p', { class: 'muted' }, 'Loading…'));
  // The cache's repositories are those named `<base_path>/...`; the search
  // narrows them with name__contains. The API lists in name order, so the
  // reverse order reads the mirrored page and turns it around.
  const filters = { name__icontains: `${basePath}/`, name__contains: q };
  let page;
  let results;
  if (!desc) {
    page = await api(`${REPOSITORIES}${qs({ ...filters, limit: PAGE_SIZE, offset })}`);
    results = page.results;
  } else {
    const first = await api(`${REPOSITORIES}${qs({ ...filters, limit: 1 })}`);
    const end = Math.max(0, first.count - offset);
    const start = Math.max(0, end - PAGE_SIZE);
    page = end > start ? await api(`${REPOSITORIES}${qs({ ...filters, limit: end - start, offset: start })}`) : { count: first.count, results: [] };
    results = [...page.results].reverse();
  }
  const sortButton = h('th', { scope: 'col', 'aria-sort': desc ? 'descending' : 'ascending' },
    h('button', { type: 'button', class: 'sort', onclick: () => go({ sort: desc ? '' : '-name', offset: '0' }) },
      `Name ${desc ? '▼' : '▲'}`));
  const rows = results.map((r) => [
    h('a', { href: hashLink(`/repo/${enc(r.name)}`), class: 'repo-link' }, r.name.slice(basePath.length + 1)),
    formatTime(r.pulp_last_updated),
    pullLine(r.name),
  ]);
  show(`Cache ${basePath}`, crumbs, search,
    table(`Repositories of ${basePath}`, [sortButton, 'Last updated', 'Pull'], rows,
      { empty: q ? 'No repository matches.' : 'No repositories pulled through this cache yet.' }),
    pager({ count: page.count, offset, limit: PAGE_SIZE }, (o) => go({ offset: String(o) })));
}

async function repoPage(name, params) {
  const show = view();
  const offset = Math.max(0, Number(params.get('offset')) || 0);
  const basePath = name.includes('/') ? name.slice(0, name.indexOf('/')) : name;
  const crumbs = h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Overview'), ' / ', name);
  if (!session.auth) {
    show(name, crumbs, loginPrompt('the tags of this repository'));
    return;
  }
  show(name, crumbs, h('p', { class: 'muted' }, 'Loading…'));
  const found = await api(`${REPOSITORIES}${qs({ name, limit: 1 })}`);
  const repo = found.results[0];
  if (!repo) {
    show(name, crumbs, errorBox('No such repository (it may have been deleted or evicted).'));
    return;
  }
  const [status, page] = await Promise.all([
    api(`${API}/status/`, { auth: false }).catch(() => null),
    api(`${API}/content/container/tags/${qs({ repository_version: repo.latest_version_href, limit: PAGE_SIZE, offset })}`),
  ]);
  const cache = (status?.upstreams || []).map((u) => u.base_path)
    .sort((a, b) => b.length - a.length).find((b) => name.startsWith(`${b}/`)) || basePath;
  const rows = page.results.map((t) => [
    h('span', { class: 'tag' }, t.name),
    h('a', { href: hashLink(`/manifest/${enc(name)}/${enc(t.digest)}`), class: 'digest', title: t.digest }, h('code', {}, t.digest)),
    h('span', { class: 'small' }, t.media_type),
    formatTime(t.last_confirmed),
    pullLine(`${name}:${t.name}`),
  ]);
  const del = h('button', {
    type: 'button',
    class: 'danger',
    onclick: async () => {
      if (!confirm(`Delete the repository ${name} and its cached content?`)) return;
      try {
        await api(repo.pulp_href, { method: 'DELETE' });
        location.hash = hashLink(`/cache/${enc(cache)}`);
      } catch (e) {
        del.after(errorBox(e));
      }
    },
  }, 'Delete repository');
  show(name,
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Overview'), ' / ',
      h('a', { href: hashLink(`/cache/${enc(cache)}`) }, cache), ' / ', name.slice(cache.length + 1)),
    h('h2', {}, 'Tags'),
    table(`Tags of ${name}`, ['Tag', 'Digest', 'Media type', 'Last confirmed', 'Pull'], rows, { empty: 'No tags cached.' }),
    pager({ count: page.count, offset, limit: PAGE_SIZE }, (o) => { location.hash = hashLink(`/repo/${enc(name)}`, o ? { offset: o } : {}); }),
    h('h2', {}, 'Manage'),
    del);
}

async function manifestPage(name, digest) {
  const show = view();
  const crumbs = h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Overview'), ' / ',
    h('a', { href: hashLink(`/repo/${enc(name)}`) }, name), ' / ', h('code', {}, shortDigest(digest)));
  show(`Manifest`, crumbs, h('p', { class: 'muted' }, 'Loading…'));
  const manifest = await request(`/v2/${name}/manifests/${digest}`, { headers: { Accept: MANIFEST_ACCEPT } });
  const m = typeof manifest === 'string' ? JSON.parse(manifest) : manifest;
  const parts = [crumbs,
    h('dl', { class: 'facts' },
      stat('Repository', name),
      stat('Digest', h('code', {}, digest)),
      stat('Media type', m.mediaType || '—'),
      stat('Pull', pullLine(`${name}@${digest}`)))];
  if (Array.isArray(m.manifests)) {
    parts.push(h('h2', {}, 'Platforms'),
      table('Platforms', ['Platform', 'Digest', 'Size'], m.manifests.map((c) => [
        c.platform ? `${c.platform.os}/${c.platform.architecture}${c.platform.variant ? `/${c.platform.variant}` : ''}` : (c.artifactType || '—'),
        h('a', { href: hashLink(`/manifest/${enc(name)}/${enc(c.digest)}`) }, h('code', {}, c.digest)),
        formatBytes(c.size),
      ])));
    show('Manifest', ...parts);
    return;
  }
  const layers = m.layers || [];
  const total = layers.reduce((a, l) => a + (l.size || 0), 0);
  parts.push(h('h2', {}, `Layers (${layers.length}, ${formatBytes(total)})`),
    table('Layers', ['#', 'Digest', 'Media type', 'Size'], layers.map((l, i) => [
      String(i + 1), h('code', { class: 'digest', title: l.digest }, l.digest), h('span', { class: 'small' }, l.mediaType), formatBytes(l.size),
    ]), { empty: 'No layers.' }));
  if (m.config?.digest) {
    parts.push(h('h2', {}, 'Configuration'));
    try {
      const config = await request(`/v2/${name}/blobs/${m.config.digest}`);
      const c = typeof config === 'string' ? JSON.parse(config) : config;
      const cc = c.config || {};
      parts.push(h('dl', { class: 'facts config' },
        stat('Platform', `${c.os || '?'}/${c.architecture || '?'}${c.variant ? `/${c.variant}` : ''}`),
        stat('Created', formatTime(c.created)),
        stat('Entrypoint', cc.Entrypoint ? h('code', {}, JSON.stringify(cc.Entrypoint)) : '—'),
        stat('Command', cc.Cmd ? h('code', {}, JSON.stringify(cc.Cmd)) : '—'),
        stat('Working directory', cc.WorkingDir || '—'),
        stat('Config', h('code', {}, m.config.digest))));
      const history = c.history || [];
      if (history.length) {
        parts.push(h('h3', {}, 'History'),
          table('History', ['Created', 'Step'], history.map((x) => [
            formatTime(x.created),
            h('code', { class: 'step' }, `${x.created_by || x.comment || ''}${x.empty_layer ? ' (no layer)' : ''}`),
          ])));
      }
    } catch (e) {
      parts.push(errorBox(e));
    }
  }
  show('Manifest', ...parts);
}

function loginPage(params) {
  const show = view();
  const next = params.get('next') || '#/';
  const err = h('div', { 'aria-live': 'assertive' });
  const form = h('form', {
    class: 'card form',
    onsubmit: async (e) => {
      e.preventDefault();
      const password = form.elements.password.value;
      session.login(password);
      try {
        await api(`${REMOTES}${qs({ limit: 1 })}`);
        renderSession();
        location.hash = next.startsWith('#/login') ? '#/' : next;
      } catch (ex) {
        session.logout();
        err.replaceChildren(errorBox(ex.status === 401 ? 'Wrong password.' : ex));
      }
    },
  },
  h('p', {}, 'The admin account of this ferry (user “admin”). The credentials stay in this tab only.'),
  h('label', { for: 'password' }, 'Admin password'),
  h('input', { id: 'password', name: 'password', type: 'password', required: true, autocomplete: 'current-password' }),
  h('button', { type: 'submit' }, 'Log in'),
  err);
  show('Log in', form);
  form.elements.password.focus();
}

async function adminPage() {
  const show = view();
  if (!session.auth) {
    show('Manage', loginPrompt('and change remotes and distributions'));
    return;
  }
  show('Manage', h('p', { class: 'muted' }, 'Loading…'));
  const [remotes, distributions] = await Promise.all([listAll(REMOTES), listAll(DISTRIBUTIONS)]);
  const remoteName = new Map(remotes.map((r) => [r.pulp_href, r.name]));
  const message = h('div', { 'aria-live': 'polite', class: 'message' });
  const fail = (e) => message.replaceChildren(errorBox(e));
  const remove = (what, href, label) => h('button', {
    type: 'button',
    class: 'danger',
    'aria-label': `Delete ${what} ${label}`,
    onclick: async () => {
      if (!confirm(`Delete ${what} ${label}?`)) return;
      try { await api(href, { method: 'DELETE' }); await route(); } catch (e) { fail(e); }
    },
  }, 'Delete');

  const remoteForm = h('form', {
    class: 'card form',
    'aria-labelledby': 'new-remote',
    onsubmit: async (e) => {
      e.preventDefault();
      const f = e.target.elements;
      const body = { name: f.name.value.trim(), url: f.url.value.trim() };
      if (f.username.value) { body.username = f.username.value; body.password = f.rpassword.value; }
      try { await api(REMOTES, { method: 'POST', body }); await route(); } catch (ex) { fail(ex); }
    },
  },
  h('h3', { id: 'new-remote' }, 'New remote'),
  field('remote-name', 'Name', { name: 'name', required: true }),
  field('remote-url', 'Upstream URL', { name: 'url', type: 'url', required: true, placeholder: 'https://registry-1.docker.io' }),
  field('remote-username', 'Username (optional)', { name: 'username', autocomplete: 'off' }),
  field('remote-password', 'Password (optional)', { name: 'rpassword', type: 'password', autocomplete: 'new-password' }),
  h('button', { type: 'submit' }, 'Create remote'));

  const distForm = h('form', {
    class: 'card form',
    'aria-labelledby': 'new-distribution',
    onsubmit: async (e) => {
      e.preventDefault();
      const f = e.target.elements;
      const body = {
        name: f.name.value.trim(),
        base_path: f.base_path.value.trim(),
        remote: f.remote.value,
        private: f.private.checked,
      };
      if (f.description.value.trim()) body.description = f.description.value.trim();
      try { await api(DISTRIBUTIONS, { method: 'POST', body }); await route(); } catch (ex) { fail(ex); }
    },
  },
  h('h3', { id: 'new-distribution' }, 'New distribution (cache)'),
  field('dist-name', 'Name', { name: 'name', required: true }),
  field('dist-base-path', 'Base path', { name: 'base_path', required: true, placeholder: 'docker' }),
  h('label', { for: 'dist-remote' }, 'Remote'),
  h('select', { id: 'dist-remote', name: 'remote', required: true },
    remotes.map((r) => h('option', { value: r.pulp_href }, `${r.name} (${r.url})`))),
  field('dist-description', 'Description (optional)', { name: 'description' }),
  h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'private' }), ' Private (pulls need the admin login)'),
  h('button', { type: 'submit', disabled: remotes.length === 0 }, 'Create distribution'),
  remotes.length ? null : h('p', { class: 'muted small' }, 'Create a remote first.'));

  show('Manage', message,
    h('h2', {}, 'Distributions'),
    table('Distributions', ['Name', 'Base path', 'Remote', 'Description', ''], distributions.map((d) => [
      h('span', { class: 'dist-name' }, d.name),
      h('a', { href: hashLink(`/cache/${enc(d.base_path)}`) }, d.base_path),
      remoteName.get(d.remote) || d.remote,
      h('span', { class: 'desc' }, d.description || ''),
      d.ferry_source === 'config' ? h('span', { class: 'muted small' }, 'from config') : remove('distribution', d.pulp_href, d.name),
    ]), { empty: 'No distributions.' }),
    h('h2', {}, 'Remotes'),
    table('Remotes', ['Name', 'URL', ''], remotes.map((r) => [
      h('span', { class: 'remote-name' }, r.name),
      h('span', { class: 'url' }, r.url),
      r.ferry_source === 'config' ? h('span', { class: 'muted small' }, 'from config') : remove('remote', r.pulp_href, r.name),
    ]), { empty: 'No remotes.' }),
    h('div', { class: 'forms' }, remoteForm, distForm));
}

function field(id, label, attrs) {
  return [h('label', { for: id }, label), h('input', { id, type: 'text', ...attrs })];
}

// ---------------------------------------------------------------- routing

async function route() {
  const mine = ++generation;
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = raw.split('?');
  const params = new URLSearchParams(query);
  const seg = path.split('/').filter(Boolean).map((s) => { try { return decodeURIComponent(s); } catch { return s; } });
  document.querySelectorAll('nav a').forEach((a) => {
    const current = (a.getAttribute('href') === '#/' && seg.length === 0) || a.getAttribute('href') === `#/${seg[0]}`;
    if (current) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  });
  try {
    switch (seg[0]) {
      case undefined: await overview(); break;
      case 'cache': await cachePage(seg[1], params); break;
      case 'repo': await repoPage(seg[1], params); break;
      case 'manifest': await manifestPage(seg[1], seg[2]); break;
      case 'login': loginPage(params); break;
      case 'admin': await adminPage(); break;
      default: render('Not found', h('p', {}, 'No such page. '), h('a', { href: '#/' }, 'Back to the overview'));
    }
  } catch (e) {
    if (mine !== generation) return;
    if (e instanceof HttpError && e.status === 401) {
      render('Log in needed', errorBox(e), loginPrompt('this page'));
    } else {
      render('Error', errorBox(e));
    }
  }
  if (mine === generation && document.activeElement === document.body) main().focus({ preventScroll: true });
}

window.addEventListener('hashchange', () => { route(); main().focus({ preventScroll: true }); });
renderSession();
route();
