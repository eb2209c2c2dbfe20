// ferry's charts: SVG drawn from plain JavaScript, no library, no build step.
// Each chart is a <figure>: the picture (role="img", named), a sentence that
// says what it shows (its text equivalent), and a table view of the same
// numbers. Every drawn mark carries its number as `data-*`, so tests read
// the data rather than pixels. All text goes in as text nodes, never markup.

const SVG = 'http://www.w3.org/2000/svg';
const W = 640; // the viewBox; the picture scales to its box
const H = 180;
const PAD = { left: 56, right: 8, top: 10, bottom: 22 };

/** An SVG element; attributes set one by one (no markup parsed). */
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

let figures = 0;

/** A figure: title, picture, text equivalent, and a table view in <details>. */
function figure(kit, { id, title, summary, svg, headers, rows, extra }) {
  const { h, table } = kit;
  const n = ++figures;
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-labelledby', `chart-title-${n}`);
  svg.setAttribute('aria-describedby', `chart-desc-${n}`);
  svg.classList.add('chart');
  return h('figure', { class: 'chart-card', 'data-chart': id },
    h('figcaption', {}, h('h3', { id: `chart-title-${n}` }, title),
      h('p', { id: `chart-desc-${n}`, class: 'muted small chart-summary' }, summary)),
    extra || null,
    svg,
    h('details', { class: 'table-view' }, h('summary', {}, `Table: ${title}`),
      table(title, headers, rows, { empty: 'No data yet.' })));
}

function timeLabel(t, span) {
  const d = new Date(t * 1000);
  const iso = d.toISOString();
  return span === 'week' ? iso.slice(5, 16).replace('T', ' ') : iso.slice(11, 16);
}

/** Scales for points over time: x by index (points are evenly stepped). */
function frame(points, max) {
  const iw = W - PAD.left - PAD.right;
  const ih = H - PAD.top - PAD.bottom;
  const step = iw / Math.max(points.length, 1);
  const top = max > 0 ? max : 1;
  return {
    step,
    x: (i) => PAD.left + i * step,
    y: (v) => PAD.top + ih - (ih * v) / top,
    h: (v) => (ih * v) / top,
    base: PAD.top + ih,
  };
}

/** Axis lines and labels: the maximum and zero on the left, first and last time below. */
function axes(points, max, fmt, span) {
  const f = frame(points, max);
  const g = s('g', { class: 'axis', 'aria-hidden': 'true' },
    s('line', { x1: PAD.left, x2: W - PAD.right, y1: f.base, y2: f.base }),
    s('text', { x: PAD.left - 4, y: PAD.top + 8, 'text-anchor': 'end' }, fmt(max)),
    s('text', { x: PAD.left - 4, y: f.base, 'text-anchor': 'end' }, fmt(0)));
  if (points.length) {
    g.append(s('text', { x: PAD.left, y: H - 4 }, timeLabel(points[0].t, span)),
      s('text', { x: W - PAD.right, y: H - 4, 'text-anchor': 'end' }, timeLabel(points[points.length - 1].t, span)));
  }
  return g;
}

/** Lines (one per series) over the points, each point a circle holding its value. */
function lines(points, series, fmt, span) {
  const max = Math.max(0, ...series.flatMap((sr) => points.map((p) => sr.value(p) || 0)));
  const f = frame(points, max);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none' }, axes(points, max, fmt, span));
  for (const sr of series) {
    const coords = points.map((p, i) => [f.x(i) + f.step / 2, f.y(sr.value(p) || 0)]);
    const g = s('g', { class: `series ${sr.cls}`, 'data-series': sr.key });
    if (sr.area && coords.length) {
      const d = `M${coords[0][0]},${f.base} ${coords.map(([x, y]) => `L${x},${y}`).join(' ')} L${coords[coords.length - 1][0]},${f.base}Z`;
      g.append(s('path', { d, class: 'area' }));
    }
    g.append(s('polyline', { points: coords.map((c) => c.join(',')).join(' '), class: 'line' }));
    points.forEach((p, i) => g.append(s('circle', {
      cx: coords[i][0], cy: coords[i][1], r: 2.5, 'data-t': p.t, 'data-value': sr.value(p) || 0,
    }, s('title', {}, `${timeLabel(p.t, span)} ${sr.label}: ${fmt(sr.value(p) || 0)}`))));
    svg.append(g);
  }
  return svg;
}

/** Requests per step as bars, the hits drawn inside them. */
function requestBars(points, span) {
  const max = Math.max(0, ...points.map((p) => p.requests || 0));
  const f = frame(points, max);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none' }, axes(points, max, String, span));
  const g = s('g', { class: 'bars', 'data-series': 'requests' });
  points.forEach((p, i) => {
    const req = p.requests || 0;
    const hits = p.hits || 0;
    const w = Math.max(f.step - 1, 0.5);
    g.append(s('g', { class: 'bar', 'data-t': p.t, 'data-value': req, 'data-hits': hits },
      s('rect', { class: 'miss', x: f.x(i), y: f.y(req), width: w, height: f.h(req) }),
      s('rect', { class: 'hit', x: f.x(i), y: f.y(hits), width: w, height: f.h(hits) }),
      s('title', {}, `${timeLabel(p.t, span)}: ${req} requests, ${hits} hits`)));
  });
  svg.append(g);
  return svg;
}

/** Horizontal bars, one per item: `parts` stacked (e.g. pinned inside used). */
function hbars(items, { value, label, max, fmt, parts = [] }) {
  const rowH = 22;
  const left = 200;
  const height = Math.max(items.length, 1) * rowH + 4;
  const top = Math.max(max ?? 0, ...items.map(value), 1);
  const scale = (v) => ((W - left - 80) * v) / top;
  const svg = s('svg', { viewBox: `0 0 ${W} ${height}`, class: 'hbars' });
  items.forEach((it, i) => {
    const y = i * rowH + 2;
    const v = value(it);
    const name = label(it);
    const g = s('g', { class: 'hbar', 'data-label': name, 'data-value': v },
      s('text', { x: left - 6, y: y + 14, 'text-anchor': 'end', class: 'label' }, name.length > 30 ? `…${name.slice(-29)}` : name),
      s('rect', { class: 'track', x: left, y: y + 3, width: scale(top), height: rowH - 8 }),
      s('rect', { class: 'value', x: left, y: y + 3, width: scale(v), height: rowH - 8 }),
      s('text', { x: left + scale(top) + 4, y: y + 14, class: 'label' }, fmt(v)),
      s('title', {}, `${name}: ${fmt(v)}`));
    for (const p of parts) {
      const pv = p.value(it);
      g.setAttribute(`data-${p.key}`, pv);
      g.insertBefore(s('rect', { class: p.cls, x: left, y: y + 3, width: scale(pv), height: rowH - 8 }), g.querySelector('text:last-of-type'));
    }
    if (it.limit != null) {
      g.setAttribute('data-max', it.limit);
      g.append(s('line', { class: 'limit', x1: left + scale(it.limit), x2: left + scale(it.limit), y1: y, y2: y + rowH - 2 }));
    }
    svg.append(g);
  });
  return svg;
}

const pct = (hits, requests) => (requests ? `${((100 * hits) / requests).toFixed(1)} %` : '—');

const SPAN_WORDS = { hour: 'the last hour', day: 'the last day', week: 'the last week' };

/** Every chart of the overview, from `history/` and `status/`. */
function overviewCharts(kit, history, status) {
  const { formatBytes } = kit;
  const span = history.span;
  const when = SPAN_WORDS[span] || span;
  const points = history.points || [];
  const totals = history.totals || {};
  const time = (p) => kit.formatTime(new Date(p.t * 1000).toISOString());
  const out = [];

  out.push(figure(kit, {
    id: 'requests',
    title: 'Requests and hit ratio',
    summary: `${totals.requests ?? 0} requests over ${when}, ${totals.hits ?? 0} served from the cache (hit ratio ${pct(totals.hits, totals.requests)}).`,
    svg: requestBars(points, span),
    headers: ['Time', 'Requests', 'Hits', 'Hit ratio'],
    rows: points.map((p) => [time(p), String(p.requests || 0), String(p.hits || 0), pct(p.hits, p.requests)]),
    extra: kit.h('p', { class: 'legend small' }, kit.h('span', { class: 'key hit' }), ' hits ', kit.h('span', { class: 'key miss' }), ' misses'),
  }));

  const saved = (p) => p.bytes_saved ?? Math.max(0, (p.bytes_served || 0) - (p.bytes_upstream || 0));
  out.push(figure(kit, {
    id: 'bytes',
    title: 'Bytes served and fetched from upstream',
    summary: `Over ${when}: ${formatBytes(totals.bytes_served)} served, ${formatBytes(totals.bytes_upstream)} fetched from upstreams; the cache saved ${formatBytes(totals.bytes_saved)} of upstream traffic.`,
    svg: lines(points, [
      { key: 'served', label: 'served', cls: 'served', value: (p) => p.bytes_served },
      { key: 'upstream', label: 'from upstream', cls: 'upstream', value: (p) => p.bytes_upstream },
      { key: 'saved', label: 'saved', cls: 'saved', value: saved, area: true },
    ], formatBytes, span),
    headers: ['Time', 'Served', 'From upstream', 'Saved'],
    rows: points.map((p) => [time(p), formatBytes(p.bytes_served || 0), formatBytes(p.bytes_upstream || 0), formatBytes(saved(p))]),
    extra: kit.h('p', { class: 'saved-total' }, kit.h('span', { class: 'big', 'data-field': 'bytes_saved', 'data-value': totals.bytes_saved ?? 0 }, formatBytes(totals.bytes_saved ?? 0)),
      ' of upstream traffic saved ', kit.h('span', { class: 'legend small' }, kit.h('span', { class: 'key served' }), ' served ',
        kit.h('span', { class: 'key upstream' }), ' from upstream ', kit.h('span', { class: 'key saved' }), ' saved')),
  }));

  const peak = Math.max(0, ...points.map((p) => p.downloads_in_flight || 0));
  out.push(figure(kit, {
    id: 'downloads',
    title: 'Downloads in flight',
    summary: `Now ${status.downloads_in_flight}; at most ${peak} at a step over ${when}.`,
    svg: lines(points, [{ key: 'downloads', label: 'downloads', cls: 'downloads', value: (p) => p.downloads_in_flight }], String, span),
    headers: ['Time', 'Downloads in flight'],
    rows: points.map((p) => [time(p), String(p.downloads_in_flight || 0)]),
  }));

  const caches = [...(status.upstreams || [])].sort((a, b) => (a.base_path < b.base_path ? -1 : 1));
  const diskItems = caches.map((u) => ({ name: u.base_path, bytes: u.bytes, pinned: u.pinned_bytes || 0, limit: u.max_size }));
  const st = status.storage || {};
  out.push(figure(kit, {
    id: 'disk',
    title: 'Disk used, quota and pins',
    summary: `${formatBytes(st.cached_bytes)} cached (${formatBytes(st.pinned_bytes)} pinned), ${formatBytes(st.free)} free of ${formatBytes(st.total)}. Per cache: ${diskItems.map((d) => `${d.name} ${formatBytes(d.bytes)}${d.limit != null ? ` of ${formatBytes(d.limit)}` : ''}, ${formatBytes(d.pinned)} pinned`).join('; ') || 'none'}.`,
    svg: hbars(diskItems, {
      value: (d) => d.bytes, label: (d) => d.name, fmt: formatBytes, max: Math.max(0, ...diskItems.map((d) => d.limit || 0)),
      parts: [{ key: 'pinned', cls: 'pinned', value: (d) => d.pinned }],
    }),
    headers: ['Cache', 'Used', 'Pinned', 'max_size'],
    rows: diskItems.map((d) => [d.name, formatBytes(d.bytes), formatBytes(d.pinned), d.limit != null ? formatBytes(d.limit) : 'none']),
    extra: kit.h('p', { class: 'legend small' }, kit.h('span', { class: 'key value' }), ' used ', kit.h('span', { class: 'key pinned' }), ' pinned ',
      kit.h('span', { class: 'key limit' }), ' max_size'),
  }));

  const lastPoint = points[points.length - 1] || {};
  out.push(figure(kit, {
    id: 'disk-history',
    title: 'Disk used and pinned over time',
    summary: `Over ${when}: ${formatBytes(Math.min(lastPoint.disk_used || 0, ...points.map((p) => p.disk_used || 0)))} at the least, ${formatBytes(Math.max(0, ...points.map((p) => p.disk_used || 0)))} at the most; now ${formatBytes(lastPoint.disk_used || 0)} stored, ${formatBytes(lastPoint.pinned || 0)} of it pinned${history.max_size != null ? `, of a max_size of ${formatBytes(history.max_size)}` : ''}.`,
    svg: lines(points, [
      { key: 'disk', label: 'stored', cls: 'served', value: (p) => p.disk_used },
      { key: 'pinned', label: 'pinned', cls: 'pinned', value: (p) => p.pinned, area: true },
      // The global quota, when there is one: the headroom shows.
      ...(history.max_size != null ? [{ key: 'max_size', label: 'max_size', cls: 'limit', value: () => history.max_size }] : []),
    ], formatBytes, span),
    headers: ['Time', 'Stored', 'Pinned'],
    rows: points.map((p) => [time(p), formatBytes(p.disk_used || 0), formatBytes(p.pinned || 0)]),
    extra: kit.h('p', { class: 'legend small' }, kit.h('span', { class: 'key served' }), ' stored ', kit.h('span', { class: 'key pinned' }), ' pinned',
      history.max_size != null ? [kit.h('span', { class: 'key limit' }), ' max_size'] : null),
  }));

  out.push(upstreamsChart(kit, history, when));

  const top = history.top_repositories || {};
  const byPulls = top.by_pulls || [];
  const bySize = top.by_size || [];
  out.push(figure(kit, {
    id: 'top-pulls',
    title: 'Top repositories by pulls',
    summary: byPulls.length ? `Over ${when}: ${byPulls.slice(0, 5).map((r) => `${r.name} ${r.pulls}`).join(', ')}.` : 'No pulls yet.',
    svg: hbars(byPulls, { value: (r) => r.pulls, label: (r) => r.name, fmt: String }),
    headers: ['Repository', 'Pulls'],
    rows: byPulls.map((r) => [r.name, String(r.pulls)]),
  }));
  out.push(figure(kit, {
    id: 'top-size',
    title: 'Top repositories by size',
    summary: bySize.length ? `${bySize.slice(0, 5).map((r) => `${r.name} ${formatBytes(r.bytes)}`).join(', ')}.` : 'Nothing cached yet.',
    svg: hbars(bySize, { value: (r) => r.bytes, label: (r) => r.name, fmt: formatBytes }),
    headers: ['Repository', 'Size'],
    rows: bySize.map((r) => [r.name, formatBytes(r.bytes)]),
  }));
  return out;
}

/** Per cache: a strip of reachability (one cell per step) and the upstream's response time. */
function upstreamsChart(kit, history, when) {
  const caches = history.caches || [];
  const rowH = 40;
  const left = 120;
  const iw = W - left - 60;
  const svg = s('svg', { viewBox: `0 0 ${W} ${Math.max(caches.length, 1) * rowH + 4}`, class: 'upstreams' });
  const rows = [];
  caches.forEach((c, ci) => {
    const pts = c.points || [];
    const y0 = ci * rowH + 2;
    const step = iw / Math.max(pts.length, 1);
    const maxMs = Math.max(1, ...pts.map((p) => p.upstream_ms || 0));
    const g = s('g', { class: 'cache', 'data-cache': c.base_path },
      s('text', { x: left - 6, y: y0 + 22, 'text-anchor': 'end', class: 'label' }, c.base_path));
    const coords = [];
    pts.forEach((p, i) => {
      const known = p.upstream_up !== null && p.upstream_up !== undefined;
      const state = !known ? 'unknown' : p.upstream_up ? 'up' : 'down';
      g.append(s('rect', {
        class: `reach ${state}`, x: left + i * step, y: y0 + 28, width: Math.max(step - 0.5, 0.5), height: 8, 'data-t': p.t, 'data-up': state,
      }, s('title', {}, `${state}`)));
      if (p.upstream_ms != null) {
        const x = left + i * step + step / 2;
        const y = y0 + 24 - (20 * p.upstream_ms) / maxMs;
        coords.push(`${x},${y}`);
        g.append(s('circle', { class: 'ms', cx: x, cy: y, r: 1.8, 'data-t': p.t, 'data-value': p.upstream_ms }));
      }
    });
    if (coords.length) g.insertBefore(s('polyline', { class: 'line ms', points: coords.join(' ') }), g.children[1] || null);
    g.append(s('text', { x: W - 56, y: y0 + 22, class: 'label' }, `≤ ${Math.round(maxMs)} ms`));
    svg.append(g);
    const up = pts.filter((p) => p.upstream_up === true).length;
    const down = pts.filter((p) => p.upstream_up === false).length;
    const timed = pts.filter((p) => p.upstream_ms != null);
    const avg = timed.length ? Math.round(timed.reduce((a, p) => a + p.upstream_ms, 0) / timed.length) : null;
    rows.push({ name: c.base_path, up, down, avg, max: timed.length ? Math.round(maxMs) : null });
  });
  const fmtMs = (v) => (v == null ? '—' : `${v} ms`);
  return figure(kit, {
    id: 'upstreams',
    title: 'Upstream reachability and response time',
    summary: rows.length ? `Over ${when}: ${rows.map((r) => `${r.name} reachable in ${r.up} steps, down in ${r.down}, answers in ${fmtMs(r.avg)} on average`).join('; ')}.` : 'No caches.',
    svg,
    headers: ['Cache', 'Steps reachable', 'Steps down', 'Average response', 'Slowest step'],
    rows: rows.map((r) => [r.name, String(r.up), String(r.down), fmtMs(r.avg), fmtMs(r.max)]),
    extra: kit.h('p', { class: 'legend small' }, kit.h('span', { class: 'key up' }), ' reachable ', kit.h('span', { class: 'key down' }), ' down ',
      kit.h('span', { class: 'key unknown' }), ' not asked; the line: time to the upstream\'s answer'),
  });
}

export { overviewCharts };
