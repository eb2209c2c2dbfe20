// ferry's dashboard: plain ES module, no build step. Every piece of data is
// rendered through textContent / attributes (see `h`), never as HTML.

const API = '/pulp/api/v3';
const REMOTES = `${API}/remotes/container/pull-through/`;
const DISTRIBUTIONS = `${API}/distributions/container/pull-through/`;
const REPOSITORIES = `${API}/repositories/container/container/`;
const PAGE_SIZE = 20;
const LOGIN = `${API}/login/`;
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

/** Where an imported tag came from: the bundle's source, its id and when. */
function importedLine(mark) {
  return `imported ${formatTime(mark.imported_at)} from ${mark.source} (bundle ${mark.bundle.slice(0, 8)})`;
}

function shortDigest(d) {
  return d && d.length > 19 ? `${d.slice(0, 19)}…` : d || '';
}

/** A repository name as text that may wrap after each `/` and nowhere
 * inside a path component (a <wbr> after each slash; CSS keeps words whole). */
function breakable(name) {
  const parts = String(name).split('/');
  return h('span', { class: 'name' }, parts.map((p, i) => (i < parts.length - 1 ? [`${p}/`, h('wbr')] : p)));
}

const enc = encodeURIComponent;

function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, v);
  const s = u.toString();
  return s ? `?${s}` : '';
}

// ---------------------------------------------------------------- session & HTTP

// The login is a session cookie ferry sets HttpOnly: no script on the page,
// this one included, can read it. The page only knows whether it is logged in.
let loggedIn = false;

const session = {
  get auth() { return loggedIn; },
  /** Trades the password for the session cookie; the password is not kept. */
  async login(password) {
    const basic = btoa(unescape(encodeURIComponent(`admin:${password}`)));
    await request(LOGIN, { method: 'POST', headers: { Authorization: `Basic ${basic}` } });
    loggedIn = true;
  },
  async logout() {
    loggedIn = false;
    await request(LOGIN, { method: 'DELETE' }).catch(() => {});
  },
  /** Whether the browser holds a live session (a cheap authenticated GET). */
  async check() {
    loggedIn = await request(LOGIN).then(() => true, () => false);
  },
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
  if (body !== undefined) hdrs['Content-Type'] = 'application/json';
  const resp = await fetch(path, {
    method,
    headers: hdrs,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: auth ? 'same-origin' : 'omit',
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
      loggedIn = false; // the session ended (expired, or ferry restarted)
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
  m.replaceChildren(h('h1', {}, breakable(title)));
  append(m, children);
  document.title = `${title} · ferry`;
}

function errorBox(err) {
  return h('p', { class: 'error', role: 'alert' }, err instanceof Error ? err.message : String(err));
}

/** Whether `e` is the server keeping a page to the admin (`browse = "admin"`)
 * from a visitor who is not logged in. */
function needsLogin(e) {
  return e instanceof HttpError && e.status === 401 && !session.auth;
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
  // podman refuses a plain-HTTP registry unless told so.
  const insecure = location.protocol === 'http:' ? ' --tls-verify=false' : '';
  const line = `podman pull${insecure} ${location.host}/${ref}`;
  return h('span', { class: 'pull' }, h('code', {}, breakable(line)), copyButton(line, `Copy pull command for ${ref}`));
}

/** A message for the next render of the page (after an action re-routes). */
let flash = null;

function takeFlash() {
  const f = flash;
  flash = null;
  return f;
}

function badge(ok, yes, no) {
  return h('span', { class: `badge ${ok ? 'ok' : 'bad'}` }, ok ? yes : no);
}

function renderSession() {
  const el = document.getElementById('session');
  if (!el) return;
  if (session.auth) {
    el.replaceChildren(h('span', {}, 'admin'), ' ',
      h('button', { type: 'button', onclick: async () => { await session.logout(); renderSession(); route(); } }, 'Log out'));
  } else {
    el.replaceChildren(h('a', { class: 'button', href: `#/login${qs({ next: location.hash })}` }, 'Log in'));
  }
}

function hashLink(path, params) {
  return `#${path}${qs(params || {})}`;
}

// ---------------------------------------------------------------- pages

// The pages kept in modules of their own, loaded with this script's
// version (their URLs are cached for a week, like this one's).
const charts = () => import(`./charts.js${new URL(import.meta.url).search}`);
const airgap = () => import(`./airgap.js${new URL(import.meta.url).search}`);
/** What those modules use of this one. */
const kit = () => ({
  h, api, request, table, errorBox, formatBytes, formatTime, listAll, route, stat,
  API, DISTRIBUTIONS, REPOSITORIES, session,
});

const SPANS = [['hour', 'Hour'], ['day', 'Day'], ['week', 'Week']];

/** The history charts for `span`, or why there are none. */
async function historySection(status, span) {
  const nav = h('nav', { class: 'spans', 'aria-label': 'Time span' }, SPANS.map(([key, label]) => h('a', {
    class: 'button span', href: hashLink('/', key === 'hour' ? {} : { span: key }), 'aria-current': key === span ? 'true' : null,
  }, label)));
  try {
    const [history, { overviewCharts }] = await Promise.all([
      api(`${API}/status/history/${qs({ span })}`),
      charts(),
    ]);
    return [h('div', { class: 'history-head' }, h('h2', {}, 'History'), nav),
      h('div', { class: 'charts' }, overviewCharts(kit(), history, status))];
  } catch (e) {
    if (e instanceof Stale) throw e;
    return [h('div', { class: 'history-head' }, h('h2', {}, 'History'), nav),
      needsLogin(e) ? loginPrompt('the history') : errorBox(e)];
  }
}

async function overview(params = new URLSearchParams()) {
  const show = view();
  const span = SPANS.some(([k]) => k === params.get('span')) ? params.get('span') : 'hour';
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
  // The counters reset when ferry restarts: say since when they count.
  const since = status.started_at ? `since ${formatTime(status.started_at)}` : null;
  document.getElementById('version').textContent = version ? `ferry ${version.version}` : '';

  const stats = h('dl', { class: 'stats', 'aria-label': 'Totals' },
    stat('Cached', `${formatBytes(status.storage.cached_bytes)} in ${status.storage.cached_objects} objects`),
    stat('Disk free', `${formatBytes(status.storage.free)} of ${formatBytes(status.storage.total)}`),
    stat('Hit ratio', hits + misses ? `${((100 * hits) / (hits + misses)).toFixed(1)} % (${hits} hits, ${misses} misses)` : '—', since),
    stat('Served / fetched', `${formatBytes(served)} / ${formatBytes(fetched)}`, since),
    stat('Downloads in flight', status.downloads_in_flight));

  // Anyone sees the public distributions' names and descriptions (none
  // when browsing is kept to the admin).
  const distributions = await listAll(DISTRIBUTIONS).catch(() => []);
  const distByBase = new Map(distributions.map((d) => [d.base_path, d]));
  const upstreams = [...status.upstreams].sort((a, b) => (a.base_path < b.base_path ? -1 : a.base_path > b.base_path ? 1 : 0));
  const rows = upstreams.map((u) => {
    const dist = distByBase.get(u.base_path);
    return [
      h('div', {}, h('a', { href: hashLink(`/cache/${enc(u.base_path)}`), class: 'cache-link' }, u.base_path),
        dist && dist.name !== u.base_path ? h('div', { class: 'muted small' }, dist.name) : null,
        dist?.description ? h('div', { class: 'muted small desc' }, dist.description) : null),
      h('span', { class: 'url' }, u.url),
      h('span', {}, upstreamBadge(u), u.private ? h('span', { class: 'badge' }, 'private') : null),
      h('span', { class: 'num', 'data-field': 'repositories' }, u.repositories),
      h('span', { class: 'num', 'data-field': 'tags' }, u.tags),
      h('span', { class: 'num', 'data-field': 'blobs' }, u.blobs),
      h('span', { class: 'num' }, h('span', { 'data-field': 'bytes' }, formatBytes(u.bytes)),
        u.max_size != null ? h('div', { class: 'muted small', 'data-field': 'max_size' }, `max ${formatBytes(u.max_size)}`) : null),
    ];
  });
  const history = await historySection(status, span);
  show('Overview',
    stats,
    h('h2', {}, 'Caches'),
    table('Caches', ['Cache', 'Upstream', 'Status', 'Repositories', 'Tags', 'Blobs', 'On disk'], rows,
      { empty: 'No caches yet.' }),
    history);
}

function stat(label, value, note) {
  return h('div', { class: 'stat' }, h('dt', {}, label), h('dd', {}, value),
    note ? h('dd', { class: 'muted small' }, note) : null);
}

/** unknown (not contacted since start), reachable, down (with why), rate limited. */
function upstreamBadge(u) {
  const state = u.state || (u.reachable ? 'reachable' : 'down');
  const kind = { reachable: 'ok', down: 'bad', rate_limited: 'bad' }[state] || '';
  return h('span', { class: `badge ${kind}`, title: u.cause || '' }, state.replace('_', ' '));
}

/** A column header that sorts the list by `key` (server-side `ordering`). */
function sortHeader(label, key, ordering, go) {
  const current = ordering === key || ordering === `-${key}`;
  const desc = ordering === `-${key}`;
  // Names read best A→Z; sizes and times biggest / latest first.
  const next = current ? (desc ? key : `-${key}`) : (key === 'name' ? key : `-${key}`);
  return h('th', { scope: 'col', 'aria-sort': current ? (desc ? 'descending' : 'ascending') : 'none' },
    h('button', { type: 'button', class: 'sort', onclick: () => go({ ordering: next, offset: '0' }) },
      `${label}${current ? (desc ? ' ▼' : ' ▲') : ''}`));
}

async function cachePage(basePath, params) {
  const show = view();
  const q = params.get('q') || '';
  const ordering = params.get('ordering') || 'name';
  const offset = Math.max(0, Number(params.get('offset')) || 0);
  const go = (changes) => {
    const next = { q, ordering, offset: String(offset), ...changes };
    if (next.offset === '0') delete next.offset;
    if (next.ordering === 'name') delete next.ordering;
    location.hash = hashLink(`/cache/${enc(basePath)}`, next);
  };
  const search = h('form', { class: 'search', role: 'search', onsubmit: (e) => { e.preventDefault(); go({ q: e.target.elements.q.value.trim(), offset: '0' }); } },
    h('label', { for: 'repo-search' }, 'Search repositories'),
    h('input', { id: 'repo-search', name: 'q', type: 'search', value: q, autocomplete: 'off' }),
    h('button', { type: 'submit' }, 'Search'));
  const crumbs = h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Overview'), ' / ', breakable(basePath));
  show(`Cache ${basePath}`, crumbs, search, h('p', { class: 'muted' }, 'Loading…'));
  // Filtering, sorting and paging all happen on the server.
  let page;
  try {
    page = await api(`${REPOSITORIES}${qs({ cache: basePath, name__contains: q, ordering, limit: PAGE_SIZE, offset })}`);
  } catch (e) {
    if (!needsLogin(e)) throw e;
    show(`Cache ${basePath}`, crumbs, loginPrompt('the repositories of this cache'));
    return;
  }
  const rows = page.results.map((r) => [
    h('a', { href: hashLink(`/repo/${enc(r.name)}`), class: 'repo-link' }, breakable(r.name.slice(basePath.length + 1))),
    h('span', { class: 'num' }, r.tag_count),
    h('span', { class: 'num', 'data-field': 'size' }, formatBytes(r.size)),
    formatTime(r.last_pulled),
    // A reference the repository holds (its latest tag), not an implied `:latest`.
    r.pull_reference ? pullLine(r.pull_reference) : '—',
  ]);
  show(`Cache ${basePath}`, crumbs, search,
    table(`Repositories of ${basePath}`, [
      sortHeader('Name', 'name', ordering, go), 'Tags',
      sortHeader('Size', 'size', ordering, go), sortHeader('Last pulled', 'last_pulled', ordering, go), 'Pull',
    ], rows, { empty: q ? 'No repository matches.' : 'No repositories pulled through this cache yet.' }),
    pager({ count: page.count, offset, limit: PAGE_SIZE }, (o) => go({ offset: String(o) })));
}

async function repoPage(name, params) {
  const show = view();
  const offset = Math.max(0, Number(params.get('offset')) || 0);
  const crumbs = h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Overview'), ' / ', breakable(name));
  show(name, crumbs, h('p', { class: 'muted' }, 'Loading…'));
  const repo = await findRepository(name);
  if (!repo) {
    show(name, crumbs, repo === null ? errorBox('No such repository (it may have been deleted or evicted).')
      : loginPrompt('the tags of this repository'));
    return;
  }
  const admin = Boolean(session.auth);
  const page = await api(`${API}/content/container/tags/${qs({ repository_version: repo.latest_version_href, limit: PAGE_SIZE, offset })}`);
  const cache = repo.cache;
  const message = h('div', { 'aria-live': 'polite', class: 'message' }, takeFlash());
  const fail = (e) => message.replaceChildren(errorBox(e));
  const action = (label, aria, run) => h('button', { type: 'button', 'aria-label': aria, onclick: run }, label);
  const rows = page.results.map((t) => [
    h('span', {}, h('span', { class: 'tag' }, t.name),
      t.pinned ? h('div', { class: 'muted small', 'data-field': 'pinned' }, 'pinned') : null,
      t.imported ? h('div', { class: 'muted small', 'data-field': 'imported' }, importedLine(t.imported)) : null),
    h('a', { href: hashLink(`/manifest/${enc(name)}/${enc(t.digest)}`), class: 'digest', title: t.digest }, h('code', {}, t.digest)),
    h('span', { class: 'small' }, t.media_type,
      t.platforms && t.platforms.length ? h('div', { class: 'muted small platforms' }, t.platforms.join(', ')) : null),
    h('span', { class: 'num' }, formatBytes(t.size)),
    formatTime(t.last_pulled),
    formatTime(t.last_confirmed),
    pullLine(`${name}:${t.name}`),
    admin && h('span', { class: 'actions' },
      // A tag of a pinned repository (or cache) is held by that pin.
      repo.pinned ? null : pinButton(t.pinned, `tag ${t.name}`, t.pulp_href, fail),
      action('Check upstream', `Check tag ${t.name} upstream now`, async () => {
        message.replaceChildren(h('p', { class: 'muted' }, `Checking ${t.name} upstream…`));
        try {
          const fresh = await api(`${t.pulp_href}refresh/`, { method: 'POST' });
          flash = h('p', { class: 'ok', role: 'status' }, fresh.digest !== t.digest
            ? `${t.name} moved upstream: now ${fresh.digest}`
            : `${t.name} is current (confirmed ${formatTime(fresh.last_confirmed)}).`);
          await route();
        } catch (e) { fail(e); }
      }),
      h('button', {
        type: 'button',
        class: 'danger',
        'aria-label': `Delete tag ${t.name}`,
        onclick: async () => {
          if (!confirm(`Delete the tag ${t.name} from the cache?`)) return;
          try {
            await api(`${repo.pulp_href}remove/`, { method: 'POST', body: { content_units: [t.pulp_href] } });
            await route();
          } catch (e) { fail(e); }
        },
      }, 'Delete')),
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
        fail(e);
      }
    },
  }, 'Delete repository');
  const pinRepo = pinButton(repo.pinned, `repository ${name}`, repo.pulp_href, fail);
  show(name,
    repoCrumbs(repo),
    h('dl', { class: 'stats', 'aria-label': 'Repository' },
      stat('Tags', repo.tag_count), stat('On disk', formatBytes(repo.size)),
      stat('Last pulled', formatTime(repo.last_pulled)), stat('Version', repo.latest_version_href.split('/').filter(Boolean).pop()),
      repo.imported ? stat('Imported', importedLine(repo.imported)) : null),
    message,
    h('h2', {}, 'Tags'),
    table(`Tags of ${name}`, ['Tag', 'Digest', 'Media type', 'Size', 'Last pulled', 'Last confirmed', 'Pull', ...(admin ? ['Manage'] : [])],
      rows.map((cells) => cells.filter((c) => c !== false)), { empty: 'No tags cached.' }),
    pager({ count: page.count, offset, limit: PAGE_SIZE }, (o) => { location.hash = hashLink(`/repo/${enc(name)}`, o ? { offset: o } : {}); }),
    admin && [h('h2', {}, 'Manage'), h('p', { class: 'actions' }, pinRepo, del),
      h('p', { class: 'muted small' }, repo.pinned ? 'Pinned: quota eviction never removes its tags.' : 'Pin it to keep its tags from quota eviction.')]);
}

/** Pin or unpin (`POST <href>pin/` / `unpin/`), then show the page again. */
function pinButton(pinned, what, href, fail) {
  return h('button', {
    type: 'button',
    'aria-label': `${pinned ? 'Unpin' : 'Pin'} ${what}`,
    onclick: async () => {
      try {
        const state = await api(`${href}${pinned ? 'unpin' : 'pin'}/`, { method: 'POST' });
        flash = h('p', { class: 'ok', role: 'status' }, `${state.pinned ? 'Pinned' : 'Unpinned'} ${what}; ${formatBytes(state.cache_pinned_bytes)} pinned in this cache.`);
        await route();
      } catch (e) { fail(e); }
    },
  }, pinned ? 'Unpin' : 'Pin');
}

/** The repository called `name`: null when there is none, undefined after
 * the server asked for a login (`browse = "admin"`). */
async function findRepository(name) {
  try {
    const found = await api(`${REPOSITORIES}${qs({ name, limit: 1 })}`);
    return found.results[0] || null;
  } catch (e) {
    if (needsLogin(e)) return undefined;
    throw e;
  }
}

/** Overview / cache / repository, each a link; `last` (if any) after them. */
function repoCrumbs(repo, last) {
  const { cache, name } = repo;
  const rest = name.slice(cache.length + 1);
  return h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Overview'), ' / ',
    h('a', { href: hashLink(`/cache/${enc(cache)}`) }, breakable(cache)), ' / ',
    last ? [h('a', { href: hashLink(`/repo/${enc(name)}`) }, breakable(rest)), ' / ', last] : breakable(rest));
}

async function manifestPage(name, digest) {
  const show = view();
  let crumbs = h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Overview'), ' / ',
    h('a', { href: hashLink(`/repo/${enc(name)}`) }, breakable(name)), ' / ', h('code', {}, shortDigest(digest)));
  show(`Manifest`, crumbs, h('p', { class: 'muted' }, 'Loading…'));
  const repo = await findRepository(name);
  if (repo === undefined) {
    show('Manifest', crumbs, loginPrompt('this manifest'));
    return;
  }
  if (repo) crumbs = repoCrumbs(repo, h('code', {}, shortDigest(digest)));
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
      try {
        await session.login(form.elements.password.value);
        form.reset();
        renderSession();
        location.hash = next.startsWith('#/login') ? '#/' : next;
      } catch (ex) {
        err.replaceChildren(errorBox(ex.status === 401 ? 'Wrong password.' : ex));
      }
    },
  },
  h('p', {}, 'The admin account of this ferry (user “admin”). The password is sent once; this browser then holds a session cookie no script can read.'),
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
  const message = h('div', { 'aria-live': 'polite', class: 'message' }, takeFlash());
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

  const editArea = h('div', { class: 'edit-area' });
  const edit = (what, label, form) => h('button', {
    type: 'button',
    'aria-label': `Edit ${what} ${label}`,
    onclick: () => {
      editArea.replaceChildren(form());
      editArea.querySelector('input, select')?.focus();
    },
  }, 'Edit');
  const patch = async (href, body, what) => {
    try {
      await api(href, { method: 'PATCH', body });
      flash = h('p', { class: 'ok', role: 'status' }, `Saved ${what}.`);
      await route();
    } catch (ex) { fail(ex); }
  };
  const editRemote = (r) => h('form', {
    class: 'card form',
    'aria-labelledby': 'edit-remote',
    onsubmit: async (e) => {
      e.preventDefault();
      const f = e.target.elements;
      const body = { url: f.url.value.trim(), tls_validation: f.tls.checked };
      // Credentials are write-only: fields left empty keep what is stored.
      if (f.username.value) body.username = f.username.value;
      if (f.rpassword.value) body.password = f.rpassword.value;
      if (f.clear.checked) { body.username = null; body.password = null; }
      await patch(r.pulp_href, body, `remote ${r.name}`);
    },
  },
  h('h3', { id: 'edit-remote' }, `Edit remote ${r.name}`),
  field('edit-remote-url', 'Upstream URL', { name: 'url', type: 'url', required: true, value: r.url }),
  field('edit-remote-username', `New username (empty: keep${isSet(r, 'username') ? ' the stored one' : ' none'})`, { name: 'username', autocomplete: 'off' }),
  field('edit-remote-password', `New password (empty: keep${isSet(r, 'password') ? ' the stored one' : ' none'})`, { name: 'rpassword', type: 'password', autocomplete: 'new-password' }),
  h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'clear' }), ' Remove the stored credentials'),
  h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'tls', checked: r.tls_validation !== false }), ' Verify the upstream\'s TLS certificate'),
  h('button', { type: 'submit' }, 'Save remote'),
  h('button', { type: 'button', onclick: () => editArea.replaceChildren() }, 'Cancel'));
  const editDistribution = (d) => h('form', {
    class: 'card form',
    'aria-labelledby': 'edit-distribution',
    onsubmit: async (e) => {
      e.preventDefault();
      const f = e.target.elements;
      await patch(d.pulp_href, {
        base_path: f.base_path.value.trim(),
        remote: f.remote.value,
        description: f.description.value.trim() || null,
        private: f.private.checked,
      }, `distribution ${d.name}`);
    },
  },
  h('h3', { id: 'edit-distribution' }, `Edit distribution ${d.name}`),
  field('edit-dist-base-path', 'Base path', { name: 'base_path', required: true, value: d.base_path }),
  h('label', { for: 'edit-dist-remote' }, 'Remote'),
  h('select', { id: 'edit-dist-remote', name: 'remote', required: true },
    remotes.map((r) => h('option', { value: r.pulp_href, selected: r.pulp_href === d.remote }, `${r.name} (${r.url})`))),
  field('edit-dist-description', 'Description', { name: 'description', value: d.description || '' }),
  h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'private', checked: !!d.private }), ' Private (pulls need the admin login)'),
  h('button', { type: 'submit' }, 'Save distribution'),
  h('button', { type: 'button', onclick: () => editArea.replaceChildren() }, 'Cancel'));

  show('Manage', message,
    editArea,
    h('h2', {}, 'Distributions'),
    table('Distributions', ['Name', 'Base path', 'Remote', 'Description', ''], distributions.map((d) => [
      h('span', { class: 'dist-name' }, d.name),
      h('a', { href: hashLink(`/cache/${enc(d.base_path)}`) }, d.base_path),
      remoteName.get(d.remote) || d.remote,
      h('span', { class: 'desc' }, d.description || ''),
      d.ferry_source === 'config' ? h('span', { class: 'muted small' }, 'from config')
        : h('span', { class: 'actions' }, edit('distribution', d.name, () => editDistribution(d)), remove('distribution', d.pulp_href, d.name)),
    ]), { empty: 'No distributions.' }),
    h('h2', {}, 'Remotes'),
    table('Remotes', ['Name', 'URL', ''], remotes.map((r) => [
      h('span', { class: 'remote-name' }, r.name),
      h('span', { class: 'url' }, r.url),
      r.ferry_source === 'config' ? h('span', { class: 'muted small' }, 'from config')
        : h('span', { class: 'actions' }, edit('remote', r.name, () => editRemote(r)), remove('remote', r.pulp_href, r.name)),
    ]), { empty: 'No remotes.' }),
    h('div', { class: 'forms' }, remoteForm, distForm));
}

/** Whether a write-only field of a remote holds a value (`hidden_fields`). */
function isSet(remote, name) {
  return (remote.hidden_fields || []).some((f) => f.name === name && f.is_set);
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
      case undefined: await overview(params); break;
      case 'airgap': await (await airgap()).airgapPage(kit(), view()); break;
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
session.check().finally(() => { renderSession(); route(); });
