// The air-gap actions in the browser (admin): prefetch with live progress,
// pins of whole caches, export bundles (downloaded by the browser itself,
// streamed to disk) and import bundles (uploaded with progress). Every
// write goes through the session cookie from this page, as app.js's do.

const POLL_MS = 500;
/** A prefetch is watched at most this long (it goes on on the server). */
const WATCH_MS = 6 * 60 * 60 * 1000;

/** Lines of a textarea: trimmed, without blanks and `#` comments. */
function linesOf(text) {
  return text.split(/[\n,]/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
}

function field(h, id, label, attrs, hint) {
  return [h('label', { for: id }, label), h(attrs.rows ? 'textarea' : 'input', { id, type: attrs.rows ? undefined : 'text', ...attrs }),
    hint ? h('p', { class: 'muted small', id: `${id}-hint` }, hint) : null];
}

function meter(h, label, done, total, fmt) {
  const ratio = total > 0 ? Math.min(1, done / total) : 0;
  return h('div', { class: 'meter' },
    h('span', {}, `${label}: ${fmt(done)} of ${fmt(total)}`),
    h('progress', { max: 1, value: ratio.toFixed(4), 'aria-label': label, 'data-done': done, 'data-total': total }));
}

async function airgapPage(kit, show) {
  const { h, api, listAll, session, DISTRIBUTIONS, API } = kit;
  if (!session.auth) {
    show('Air gap', h('div', { class: 'notice', role: 'note' },
      h('p', {}, 'Log in as admin to prefetch, pin, export and import.'),
      h('a', { class: 'button', href: '#/login?next=%23%2Fairgap' }, 'Log in')));
    return;
  }
  show('Air gap', h('p', { class: 'muted' }, 'Loading…'));
  const [distributions, status] = await Promise.all([listAll(DISTRIBUTIONS), api(`${API}/status/`)]);
  const caches = [...distributions].sort((a, b) => (a.base_path < b.base_path ? -1 : 1));
  show('Air gap',
    h('p', { class: 'muted' }, 'Fill the cache before the link goes, keep what matters from eviction, and carry images across in a bundle.'),
    h('div', { class: 'forms airgap' },
      prefetchForm(kit, caches),
      exportForm(kit, caches),
      importForm(kit)),
    pinsSection(kit, caches, status));
}

// ---------------------------------------------------------------- prefetch

function prefetchForm(kit, caches) {
  const { h, api, errorBox } = kit;
  const progress = h('div', { class: 'progress', 'aria-live': 'polite' });
  const form = h('form', {
    class: 'card form',
    'aria-labelledby': 'prefetch-title',
    onsubmit: async (e) => {
      e.preventDefault();
      const f = form.elements;
      const dist = caches.find((d) => d.pulp_href === f.cache.value);
      const body = { references: linesOf(f.references.value), referrers: f.referrers.checked };
      const platforms = f.platforms.value.trim();
      if (platforms) body.platforms = platforms;
      progress.replaceChildren(h('p', { class: 'muted' }, 'Starting…'));
      const button = form.querySelector('button[type=submit]');
      button.disabled = true;
      try {
        const { task } = await api(`${dist.pulp_href}prefetch/`, { method: 'POST', body });
        await watch(kit, task, dist.base_path, progress, form);
      } catch (ex) {
        progress.replaceChildren(errorBox(ex));
      } finally {
        button.disabled = false;
      }
    },
  },
  h('h3', { id: 'prefetch-title' }, 'Prefetch'),
  h('label', { for: 'prefetch-cache' }, 'Cache'),
  h('select', { id: 'prefetch-cache', name: 'cache', required: true },
    caches.map((d) => h('option', { value: d.pulp_href }, d.base_path))),
  field(h, 'prefetch-references', 'Images, one per line', {
    name: 'references', rows: 5, required: true, spellcheck: 'false', placeholder: 'library/alpine:3.20\nlibrary/nginx:1.*\nlibrary/busybox@sha256:…',
  }, 'repository:tag (wildcards in the tag), or repository@digest, within the cache.'),
  field(h, 'prefetch-platforms', 'Platforms (optional)', { name: 'platforms', placeholder: 'linux/amd64,linux/arm64 or all' },
    'Empty: this ferry\'s own platform.'),
  h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'referrers' }), ' Also signatures and SBOMs (referrers)'),
  h('button', { type: 'submit', disabled: caches.length === 0 }, 'Start prefetch'),
  progress);
  return form;
}

/** Polls the prefetch task, drawing its progress, until it ends (bounded). */
async function watch(kit, taskHref, basePath, progress, form) {
  const { h, api, formatBytes, errorBox } = kit;
  const until = Date.now() + WATCH_MS;
  for (;;) {
    const task = await api(taskHref);
    const [images = {}, bytes = {}] = task.progress_reports || [];
    const finished = !['running', 'waiting'].includes(task.state);
    const parts = [
      h('p', { class: 'task-state', 'data-state': task.state },
        finished ? (task.state === 'completed' ? `Done: ${images.done} of ${images.total} images of ${basePath} are cached.` : `Prefetch ${task.state}.`)
          : `Prefetching into ${basePath}…`),
      meter(h, 'Images', images.done || 0, images.total || 0, String),
      meter(h, 'Bytes', bytes.done || 0, bytes.total || 0, formatBytes),
    ];
    if (task.error) parts.push(errorBox(task.error.description || JSON.stringify(task.error)));
    if (!form.isConnected) return; // the user moved on; the prefetch goes on
    progress.replaceChildren(...parts);
    if (finished) {
      if (task.state === 'completed') progress.firstChild.classList.add('ok');
      return;
    }
    if (Date.now() > until) {
      progress.append(h('p', { class: 'muted' }, 'Still running; reopen this page to look again.'));
      return;
    }
    await new Promise((r) => setTimeout(r, POLL_MS)); // the poll interval
  }
}

// ---------------------------------------------------------------- export

/** The selection the export form describes (the API's `Selection`). */
function selectionOf(f) {
  const sel = {
    caches: [...f.querySelectorAll('input[name=cache]:checked')].map((c) => c.value),
    repositories: linesOf(f.elements.repositories.value),
    tags: linesOf(f.elements.tags.value),
    pinned: f.elements.pinned.checked,
    referrers: f.elements.referrers.checked,
    zstd: f.elements.zstd.checked,
  };
  const platforms = f.elements.platforms.value.trim();
  if (platforms) sel.platforms = platforms;
  return sel;
}

function exportForm(kit, caches) {
  const { h, api, errorBox, formatBytes, API } = kit;
  const result = h('div', { class: 'plan', 'aria-live': 'polite' });
  // The download itself: a plain form POST the browser saves as a file, so
  // a bundle of any size streams to disk rather than into this page.
  const download = h('form', { method: 'post', action: `${API}/bundles/export/`, class: 'hidden-form' },
    h('input', { type: 'hidden', name: 'selection' }));
  const form = h('form', {
    class: 'card form',
    'aria-labelledby': 'export-title',
    onsubmit: async (e) => {
      e.preventDefault();
      const selection = selectionOf(form);
      result.replaceChildren(h('p', { class: 'muted' }, 'Planning…'));
      try {
        const plan = await api(`${API}/bundles/plan/`, { method: 'POST', body: selection });
        const refs = plan.references || [];
        const bytes = (plan.blobs || []).reduce((a, b) => a + (b.size || 0), 0);
        const leftOut = plan.left_out || [];
        if (!refs.length) {
          result.replaceChildren(errorBox('Nothing matches this selection: no bundle to build.'));
          return;
        }
        result.replaceChildren(
          h('p', { class: 'ok', role: 'status' }, `Bundle ${plan.id}: ${refs.length} image${refs.length === 1 ? '' : 's'}, ${(plan.blobs || []).length} blobs, ${formatBytes(bytes)}. The download has started.`),
          h('details', {}, h('summary', {}, 'Images in the bundle'), h('ul', { class: 'refs' }, refs.map((r) => h('li', {}, r.reference)))),
          leftOut.length ? h('div', { class: 'error' }, h('p', {}, 'Left out (never pulled whole):'),
            h('ul', {}, leftOut.map((l) => h('li', {}, `${l.reference}: ${l.reason}`)))) : null);
        download.elements.selection.value = JSON.stringify(selection);
        download.submit();
      } catch (ex) {
        result.replaceChildren(errorBox(ex));
      }
    },
  },
  h('h3', { id: 'export-title' }, 'Export a bundle'),
  h('fieldset', { class: 'caches' }, h('legend', {}, 'Caches (none ticked: all)'),
    caches.map((d) => h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'cache', value: d.base_path }), ` ${d.base_path}`))),
  field(h, 'export-repositories', 'Repositories (optional)', { name: 'repositories', rows: 2, spellcheck: 'false', placeholder: 'hub/library/alpine\nhub/team/*' },
    'Full names with the cache, one per line; * and ? match.'),
  field(h, 'export-tags', 'Tags (optional)', { name: 'tags', placeholder: '1.*, latest' }),
  field(h, 'export-platforms', 'Platforms (optional)', { name: 'platforms', placeholder: 'linux/amd64' }, 'Empty: every platform stored.'),
  h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'pinned' }), ' Only pinned images'),
  h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'referrers' }), ' With signatures and SBOMs'),
  h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'zstd' }), ' Compress (zstd)'),
  h('button', { type: 'submit' }, 'Build and download'),
  result);
  // Beside the form, not in it: forms do not nest.
  return h('div', { class: 'export' }, form, download);
}

// ---------------------------------------------------------------- import

/** The import's report as a verdict a person reads. */
function verdict(h, formatBytes, r) {
  const lines = [
    h('p', { class: 'ok', role: 'status' }, `Imported: ${r.imported.length} tag${r.imported.length === 1 ? '' : 's'} new or moved, ${r.unchanged.length} unchanged; ${r.blobs_stored} blobs stored (${formatBytes(r.bytes_stored)}), ${r.blobs_present} already here. Bundle ${r.bundle} from ${r.source}.`),
    r.imported.length ? h('ul', { class: 'refs' }, r.imported.map((t) => h('li', {}, t))) : null,
  ];
  if (r.pinned?.length) lines.push(h('p', { class: 'muted' }, `Pinned: ${r.pinned.join(', ')}`));
  if (r.pin_refused?.length) lines.push(h('p', { class: 'error' }, `Pins refused (over a max_size): ${r.pin_refused.join(', ')}`));
  return lines;
}

/** Uploads `file` with progress (XMLHttpRequest: fetch reports none for
 * uploads). The browser reads the file from disk as it sends it. */
function upload(url, file, onProgress) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    const zstd = /\.(zst|zstd)$/i.test(file.name);
    xhr.setRequestHeader('Content-Type', zstd ? 'application/zstd' : 'application/x-tar');
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      let body = xhr.responseText;
      try { body = JSON.parse(body); } catch { /* keep the text */ }
      resolve({ status: xhr.status, body });
    };
    xhr.onerror = () => resolve({ status: 0, body: 'The connection failed during the upload.' });
    xhr.send(file);
  });
}

function importForm(kit) {
  const { h, API, formatBytes, errorBox } = kit;
  const result = h('div', { class: 'import-result', 'aria-live': 'polite' });
  const form = h('form', {
    class: 'card form',
    'aria-labelledby': 'import-title',
    onsubmit: async (e) => {
      e.preventDefault();
      const f = form.elements;
      const file = f.bundle.files[0];
      if (!file) return;
      const params = new URLSearchParams();
      if (f.to.value.trim()) params.set('to', f.to.value.trim());
      if (f.pin.checked) params.set('pin', 'true');
      if (f.trusted_key.value.trim()) params.set('trusted_key', f.trusted_key.value.trim());
      const button = form.querySelector('button[type=submit]');
      button.disabled = true;
      const bar = (loaded, total) => result.replaceChildren(
        h('p', { class: 'muted' }, loaded < total ? `Uploading ${file.name}…` : 'Uploaded; checking and storing…'),
        meter(h, 'Uploaded', loaded, total, formatBytes));
      bar(0, file.size);
      const q = params.toString();
      const { status, body } = await upload(`${API}/bundles/import/${q ? `?${q}` : ''}`, file, bar);
      button.disabled = false;
      if (status === 200 && body && Array.isArray(body.imported)) {
        result.replaceChildren(...verdict(h, formatBytes, body));
      } else {
        const why = body && typeof body === 'object' ? (body.detail || JSON.stringify(body)) : String(body || '');
        result.replaceChildren(errorBox(`Refused${status ? ` (HTTP ${status})` : ''}: ${why} No tag was imported.`));
      }
    },
  },
  h('h3', { id: 'import-title' }, 'Import a bundle'),
  h('label', { for: 'import-file' }, 'Bundle file'),
  h('input', { id: 'import-file', name: 'bundle', type: 'file', required: true, accept: '.tar,.zst,.zstd,application/x-tar' }),
  field(h, 'import-to', 'Into repository (optional)', { name: 'to', placeholder: 'hub/library/app' }, 'For a plain OCI layout, which names no repository.'),
  field(h, 'import-key', 'Trusted public key (optional)', { name: 'trusted_key', rows: 2, spellcheck: 'false' }, 'Refuses a bundle not signed by it.'),
  h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'pin' }), ' Pin what is imported'),
  h('button', { type: 'submit' }, 'Upload and import'),
  result);
  return form;
}

// ---------------------------------------------------------------- pins

function pinsSection(kit, caches, status) {
  const { h, api, table, formatBytes, errorBox, route } = kit;
  const message = h('div', { 'aria-live': 'polite' });
  const pinned = new Map((status.upstreams || []).map((u) => [u.base_path, u]));
  const rows = caches.map((d) => {
    const u = pinned.get(d.base_path) || {};
    const action = d.pinned ? 'unpin' : 'pin';
    return [
      h('span', {}, d.base_path, d.pinned ? h('span', { class: 'badge ok', 'data-field': 'pinned' }, 'pinned') : null),
      h('span', { class: 'num' }, formatBytes(u.bytes)),
      h('span', { class: 'num', 'data-field': 'pinned_bytes' }, formatBytes(u.pinned_bytes || 0)),
      u.max_size != null ? formatBytes(u.max_size) : 'none',
      h('button', {
        type: 'button',
        'aria-label': `${d.pinned ? 'Unpin' : 'Pin'} cache ${d.base_path}`,
        onclick: async () => {
          try {
            await api(`${d.pulp_href}${action}/`, { method: 'POST' });
            await route();
          } catch (e) { message.replaceChildren(errorBox(e)); }
        },
      }, d.pinned ? 'Unpin' : 'Pin'),
    ];
  });
  return [h('h2', {}, 'Pins'),
    h('p', { class: 'muted' }, 'Pinned content is never evicted to make room. Pin single repositories and tags on their pages.'),
    message,
    table('Pinned caches', ['Cache', 'Used', 'Pinned', 'max_size', ''], rows, { empty: 'No caches.' })];
}

export { airgapPage };
