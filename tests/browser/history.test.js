// The overview's history charts against /metrics: after known cold and warm
// pulls the drawn values (the SVG's data-* attributes, not pixels) equal
// what ferry's counters say, and after a restart the curve is still there.
// Real docker-registry upstream, real ferry (history_step_secs = 1), skopeo,
// headless Chromium.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  STEP_TIMEOUT, launchChromium, skopeo, startFerry, startUpstream, stopAll, writeOciLayout,
} from './harness.js';

/** ferry's counters: { name: sum over series matching `labels` }. */
async function metrics(ferry) {
  const text = await (await fetch(`${ferry.url}/metrics`)).text();
  const sum = (name, labels = {}) => text.split('\n').reduce((a, line) => {
    const m = line.match(/^(\w+)(?:\{([^}]*)\})?\s+(\S+)/);
    if (!m || m[1] !== name) return a;
    const have = Object.fromEntries([...(m[2] || '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    return Object.entries(labels).every(([k, v]) => have[k] === v) ? a + Number(m[3]) : a;
  }, 0);
  const hits = sum('ferry_cache_requests_total', { result: 'hit' });
  const misses = sum('ferry_cache_requests_total', { result: 'miss' });
  return {
    requests: hits + misses,
    hits,
    served: sum('ferry_served_bytes_total'),
    upstream: sum('ferry_upstream_fetched_bytes_total'),
  };
}

/** What the overview's charts drew: sums of each series' data values. */
async function drawn(page) {
  return page.evaluate(() => {
    const sum = (sel, attr = 'data-value') => [...document.querySelectorAll(sel)].reduce((a, e) => a + Number(e.getAttribute(attr)), 0);
    const top = (chart) => [...document.querySelectorAll(`[data-chart=${chart}] .hbar`)].map((e) => [e.dataset.label, Number(e.dataset.value)]);
    return {
      requests: sum('[data-chart=requests] .bar'),
      hits: sum('[data-chart=requests] .bar', 'data-hits'),
      served: sum('[data-chart=bytes] [data-series=served] circle'),
      upstream: sum('[data-chart=bytes] [data-series=upstream] circle'),
      saved: Number(document.querySelector('[data-field=bytes_saved]').dataset.value),
      points: document.querySelectorAll('[data-chart=requests] .bar').length,
      byPulls: top('top-pulls'),
      bySize: top('top-size'),
    };
  });
}

describe('history charts', { timeout: 600_000 }, () => {
  let workDir;
  let upstream;
  let ferry;
  let browser;
  const images = {};

  before(async () => {
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-history-'));
    upstream = await startUpstream(workDir);
    for (const [name, text] of [['alpha', 'alpha\n'.repeat(4000)], ['beta', 'beta\n']]) {
      const layout = path.join(workDir, name);
      images[name] = writeOciLayout(layout, 'v1', text);
      await skopeo('copy', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${upstream.host}/library/${name}:v1`);
    }
    ferry = await startFerry(workDir, upstream.url, { top: ['history_step_secs = 1'] });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    stopAll();
    if (workDir && !process.env.FERRY_BROWSER_KEEP) fs.rmSync(workDir, { recursive: true, force: true });
  });

  let pulls = 0;
  const pull = (name) => skopeo('copy', '--src-tls-verify=false', `docker://${ferry.host}/hub/library/${name}:v1`,
    `oci:${path.join(workDir, `pulled-${pulls++}`)}:v1`);

  async function overview() {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT);
    page.errors = [];
    page.on('pageerror', (e) => page.errors.push(e));
    await page.goto(`${ferry.url}/#/`);
    await page.locator('[data-chart=requests] svg').waitFor();
    return page;
  }

  test('after cold and warm pulls the charts draw what /metrics counts, and keep it over a restart', async () => {
    await pull('alpha'); // cold: every look-up a miss, fetched upstream
    await pull('beta');
    await pull('alpha'); // warm: new layouts, so every blob is asked again
    await pull('alpha');

    const page = await overview();
    const seen = await drawn(page);
    const counted = await metrics(ferry);
    assert.equal(seen.requests, counted.requests, 'requests');
    assert.equal(seen.hits, counted.hits, 'hits');
    assert.ok(counted.hits > 0 && counted.hits < counted.requests, `warm and cold pulls: ${JSON.stringify(counted)}`);
    assert.equal(seen.served, counted.served, 'bytes served');
    assert.equal(seen.upstream, counted.upstream, 'bytes from upstream');
    assert.equal(seen.saved, Math.max(0, counted.served - counted.upstream), 'bytes saved');
    assert.deepEqual(seen.byPulls.map(([name]) => name), ['hub/library/alpha', 'hub/library/beta'], 'alpha pulled most');
    assert.ok(seen.byPulls[0][1] > seen.byPulls[1][1], JSON.stringify(seen.byPulls));
    assert.equal(seen.bySize[0][0], 'hub/library/alpha', 'alpha is the largest');

    // The text equivalent and the table view say the same.
    const summary = await page.locator('[data-chart=requests] .chart-summary').innerText();
    assert.match(summary, new RegExp(`^${counted.requests} requests over the last hour, ${counted.hits} served from the cache`));
    await page.getByText('Table: Requests and hit ratio').click();
    const rows = page.locator('[data-chart=requests] tbody tr');
    assert.equal(await rows.count(), seen.points);
    assert.deepEqual(page.errors, []);
    await page.context().close();

    // A graceful restart: the counters start again at 0, the history stays.
    ferry.child.kill('SIGTERM');
    await new Promise((resolve) => (ferry.child.exitCode !== null ? resolve() : ferry.child.once('exit', resolve)));
    ferry = await startFerry(workDir, upstream.url, { top: ['history_step_secs = 1'] });
    assert.equal((await metrics(ferry)).requests, 0, 'a restarted ferry counts from 0');
    const again = await overview();
    const kept = await drawn(again);
    assert.equal(kept.requests, counted.requests, 'the requests before the restart are still drawn');
    assert.equal(kept.served, counted.served);
    assert.equal(kept.upstream, counted.upstream);
    assert.deepEqual(again.errors, []);
    await again.context().close();
  });
});
