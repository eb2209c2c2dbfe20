// The README's pictures, taken from a realistic cache so they never drift
// from the product: three caches (one whose upstream is down), dozens of
// repositories of different sizes, a pinned repository, a quota, a
// prefetch, and a history of pulls spread over a minute and more
// (`history_step_secs = 1`: one point a second stands in for the minutes of
// a real day; the charts are the same code). Real docker-registry upstream,
// real ferry, headless Chromium.
//
// The PNGs go to $FERRY_SCREENSHOTS (e.g. `FERRY_SCREENSHOTS=docs`), else to
// a temporary directory that is removed: the test checks them either way.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  PASSWORD, STEP_TIMEOUT, expectStatus, launchChromium, pool, skopeo, startFerry, startUpstream, stopAll, writeOciLayout,
} from './harness.js';

const auth = { Authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}` };
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
/** Seconds of traffic recorded into the history (one point each). */
const ROUNDS = 75;

/** A PNG's width and height, from its IHDR chunk. */
function pngSize(file) {
  const b = fs.readFileSync(file);
  assert.equal(b.subarray(1, 4).toString('latin1'), 'PNG', `${file} is a PNG`);
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}

/** A deterministic sequence in [0, 1) (the same pictures every run). */
function random(seed) {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
}

describe('README screenshots', { timeout: 900_000 }, () => {
  let workDir;
  let shots;
  let upstream;
  let ferry;
  let browser;
  const repos = []; // [cache, repository, image]

  before(async () => {
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-shots-'));
    shots = process.env.FERRY_SCREENSHOTS ? path.resolve(process.env.FERRY_SCREENSHOTS) : path.join(workDir, 'shots');
    fs.mkdirSync(shots, { recursive: true });
    upstream = await startUpstream(workDir);
    // Base images of different sizes, then dozens of repositories of them.
    const bases = [];
    for (const [i, kib] of [64, 900, 2400, 300, 5200, 1500].entries()) {
      const layout = path.join(workDir, `base${i}`);
      bases.push({ repo: `base/image${i}`, image: writeOciLayout(layout, 'v1', randomBytes(kib << 10)) });
      await skopeo('copy', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${upstream.host}/base/image${i}:v1`);
    }
    const names = {
      hub: ['library/alpine', 'library/nginx', 'library/postgres', 'library/redis', 'library/python', 'library/node',
        'library/golang', 'library/busybox', 'library/debian', 'library/ubuntu', 'library/traefik', 'library/rabbitmq',
        'grafana/grafana', 'prom/prometheus', 'library/memcached', 'library/httpd'],
      ghcr: ['fluxcd/source-controller', 'fluxcd/kustomize-controller', 'cert-manager/controller', 'actions/runner',
        'external-secrets/external-secrets', 'kyverno/kyverno', 'dexidp/dex', 'argoproj/argocd', 'open-telemetry/collector',
        'stefanprodan/podinfo'],
      internal: ['team-a/api', 'team-a/worker', 'team-b/web', 'team-b/batch', 'platform/base'],
    };
    const manifests = await Promise.all(bases.map(async (b) => Buffer.from(await (await fetch(
      `${upstream.url}/v2/${b.repo}/manifests/v1`, { headers: { Accept: OCI_MANIFEST } })).arrayBuffer())));
    const all = Object.entries(names).flatMap(([cache, list]) => list.map((repo) => [cache, repo]));
    await pool(all.length, 8, async (i) => {
      const [cache, repo] = all[i];
      const b = i % bases.length;
      for (const blob of [bases[b].image.layer, bases[b].image.config]) {
        await expectStatus(await fetch(`${upstream.url}/v2/${repo}/blobs/uploads/?mount=${blob.digest}&from=${bases[b].repo}`,
          { method: 'POST' }), 201, `mount into ${repo}`);
      }
      for (const tag of ['v1', 'latest']) {
        await expectStatus(await fetch(`${upstream.url}/v2/${repo}/manifests/${tag}`, {
          method: 'PUT', headers: { 'Content-Type': OCI_MANIFEST }, body: manifests[b],
        }), 201, `PUT ${repo}:${tag}`);
      }
      repos.push([cache, repo, bases[b].image]);
    });
    repos.sort((a, b) => (`${a[0]}/${a[1]}` < `${b[0]}/${b[1]}` ? -1 : 1)); // the same order every run
    ferry = await startFerry(workDir, upstream.url, {
      top: ['history_step_secs = 1', 'max_size = "48MiB"'],
      caches: [
        { base_path: 'ghcr', upstream: upstream.url, lines: ['max_size = "40MiB"'] },
        { base_path: 'internal', upstream: upstream.url, private: true },
        // An upstream that went away: the page shows it down.
        { base_path: 'legacy', upstream: 'http://127.0.0.1:9' },
      ],
    });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    stopAll();
    if (workDir && !process.env.FERRY_BROWSER_KEEP) fs.rmSync(workDir, { recursive: true, force: true });
  });

  /** One image pulled through ferry: its manifest and every blob. */
  async function pullImage(cache, repo, image) {
    const headers = cache === 'internal' ? auth : {};
    const base = `${ferry.url}/v2/${cache}/${repo}`;
    await expectStatus(await fetch(`${base}/manifests/v1`, { headers: { ...headers, Accept: OCI_MANIFEST } }), 200, `pull ${cache}/${repo}`);
    for (const blob of [image.config, image.layer]) {
      await expectStatus(await fetch(`${base}/blobs/${blob.digest}`, { headers }), 200, `blob of ${cache}/${repo}`);
    }
  }

  test('a realistic cache, pictured: overview with its history, the air-gap page, a repository', async () => {
    // A minute and more of traffic: every repository once (cold), then a
    // few popular ones often (warm), a burst in the middle.
    const rnd = random(17);
    for (let round = 0; round < ROUNDS; round++) {
      const started = Date.now();
      const batch = round < 8 ? repos.slice(round * 4, round * 4 + 4)
        : Array.from({ length: Math.floor(rnd() * (round > 40 && round < 50 ? 12 : 4)) }, () => repos[Math.floor(rnd() ** 2 * repos.length)]);
      await Promise.all(batch.map(([cache, repo, image]) => pullImage(cache, repo, image)));
      if (round === 30) {
        await fetch(`${ferry.url}/v2/legacy/library/alpine/manifests/v1`).then((r) => r.arrayBuffer()); // down: counted
      }
      // Pacing the traffic over the history's steps (not synchronisation).
      await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - started))));
    }
    // A pinned repository.
    const found = await (await fetch(`${ferry.url}/pulp/api/v3/repositories/container/container/?name=hub/library/postgres`, { headers: auth })).json();
    await expectStatus(await fetch(`${ferry.url}${found.results[0].pulp_href}pin/`, { method: 'POST', headers: auth }), 200, 'pin');

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT);
    const errors = [];
    page.on('pageerror', (e) => errors.push(e));
    await page.goto(`${ferry.url}/#/login`);
    await page.getByLabel('Admin password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('button', { name: 'Log out' }).waitFor();

    await page.goto(`${ferry.url}/#/`);
    await page.locator('[data-chart=requests] svg').waitFor();
    const points = await page.locator('[data-chart=requests] .bar').count();
    assert.ok(points >= ROUNDS, `${points} points for ${ROUNDS} seconds of traffic`);
    assert.equal(await page.locator('[data-chart=upstreams] [data-cache]').count(), 4, 'every cache');
    assert.ok(await page.locator('[data-chart=upstreams] [data-cache=legacy] .reach.down').count() > 0, 'legacy shown down');
    assert.equal(await page.locator('[data-chart=top-pulls] .hbar').count(), 10);
    await page.screenshot({ path: path.join(shots, 'overview.png'), fullPage: true });

    // The air-gap page, after a prefetch ran.
    await page.goto(`${ferry.url}/#/airgap`);
    const form = page.locator('form').filter({ has: page.getByRole('heading', { name: 'Prefetch' }) });
    await form.getByLabel('Cache').selectOption({ label: 'hub' });
    await form.getByLabel('Images, one per line').fill('library/alpine:latest\nlibrary/nginx:latest\nlibrary/redis:*');
    await form.getByLabel('Platforms (optional)').fill('linux/amd64');
    await form.getByRole('button', { name: 'Start prefetch' }).click();
    await form.getByText(/^Done: 4 of 4 images of hub are cached\.$/).waitFor({ timeout: 60_000 });
    await page.screenshot({ path: path.join(shots, 'airgap.png'), fullPage: true });

    // A repository the prefetch filled, one tag pinned in the page.
    await page.goto(`${ferry.url}/#/repo/${encodeURIComponent('hub/library/redis')}`);
    await page.getByRole('button', { name: 'Pin tag latest' }).click();
    await page.getByText(/^Pinned tag latest; /).waitFor();
    await page.getByRole('row').filter({ hasText: 'latest' }).locator('[data-field=pinned]').waitFor();
    await page.screenshot({ path: path.join(shots, 'repository.png'), fullPage: true });
    // The same pages at 375 px: nothing scrolls sideways.
    await page.setViewportSize({ width: 375, height: 740 });
    for (const hash of ['#/', '#/airgap']) {
      await page.goto(`${ferry.url}/${hash}`);
      await page.locator(hash === '#/' ? '[data-chart=requests] svg' : 'form').first().waitFor();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `${hash} scrolls sideways by ${overflow}px at 375 px`);
    }
    assert.deepEqual(errors, []);
    await context.close();

    for (const name of ['overview.png', 'airgap.png', 'repository.png']) {
      const { width, height } = pngSize(path.join(shots, name));
      assert.equal(width, 1280, name);
      assert.ok(height >= 600, `${name} is ${height} px high`);
    }
  });
});
