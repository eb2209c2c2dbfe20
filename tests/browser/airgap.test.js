// The air-gap actions in the browser: prefetch with progress, pins that hold
// through a quota squeeze, an export downloaded by the browser and imported
// through a second ferry's page, and a tampered bundle refused there. Real
// docker-registry upstream, real ferries, skopeo, headless Chromium.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  PASSWORD, STEP_TIMEOUT, launchChromium, skopeo, startFerry, startUpstream, stopAll, writeOciLayout,
} from './harness.js';

const auth = { Authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}` };

/** Sum of a Prometheus counter's series whose labels include `labels`. */
async function metric(ferry, name, labels = {}) {
  const text = await (await fetch(`${ferry.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = line.match(/^(\w+)(?:\{([^}]*)\})?\s+(\S+)/);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] || '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

async function repository(ferry, name) {
  const resp = await fetch(`${ferry.url}/pulp/api/v3/repositories/container/container/?name=${encodeURIComponent(name)}`, { headers: auth });
  assert.equal(resp.status, 200);
  return (await resp.json()).results[0];
}

/** Pushes an image whose one layer is `size` random (incompressible) bytes. */
async function pushImage(workDir, upstream, repo, tag, size) {
  const layout = path.join(workDir, `${repo.replaceAll('/', '_')}-${tag}`);
  const image = writeOciLayout(layout, tag, randomBytes(size));
  await skopeo('copy', '--dest-tls-verify=false', `oci:${layout}:${tag}`, `docker://${upstream.host}/${repo}:${tag}`);
  return image;
}

/** A copy of the tar `bundle` with one byte of the entry `name`'s data flipped. */
function tamper(bundle, name, out) {
  const buf = Buffer.from(fs.readFileSync(bundle));
  for (let off = 0; off + 512 <= buf.length;) {
    const entry = buf.toString('latin1', off, off + 100).replace(/\0.*$/s, '');
    if (!entry) break;
    const size = parseInt(buf.toString('latin1', off + 124, off + 136).replace(/\0.*$/s, '').trim(), 8);
    if (entry.replace(/^\.\//, '') === name) {
      buf[off + 512 + Math.floor(size / 2)] ^= 0xff;
      fs.writeFileSync(out, buf);
      return;
    }
    off += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error(`${name} is not in ${bundle}`);
}

describe('air-gap actions in the browser', { timeout: 600_000 }, () => {
  let workDir;
  let upstream;
  let ferry;
  let island; // a second ferry whose upstream is unreachable
  let browser;

  before(async () => {
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-airgap-'));
    upstream = await startUpstream(workDir);
    ferry = await startFerry(workDir, upstream.url, {
      // Room for two of the three 6 MiB images pushed for the squeeze.
      caches: [{ base_path: 'small', upstream: upstream.url, lines: ['max_size = "14MiB"'] }],
    });
    island = await startFerry(workDir, 'http://127.0.0.1:9', { name: 'island' });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    stopAll();
    if (workDir && !process.env.FERRY_BROWSER_KEEP) fs.rmSync(workDir, { recursive: true, force: true });
  });

  async function adminPage(target, hash = '#/airgap') {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT);
    page.errors = [];
    page.on('pageerror', (e) => page.errors.push(e));
    await page.goto(`${target.url}/#/login`);
    await page.getByLabel('Admin password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('button', { name: 'Log out' }).waitFor();
    await page.goto(`${target.url}/${hash}`);
    return page;
  }

  test('a prefetch started in the browser shows its progress and leaves the images cached', async () => {
    const v1 = await pushImage(workDir, upstream, 'library/pf', 'v1', 256 << 10);
    const v2 = await pushImage(workDir, upstream, 'library/pf', 'v2', 256 << 10);
    const page = await adminPage(ferry);
    const form = page.locator('form').filter({ has: page.getByRole('heading', { name: 'Prefetch' }) });
    await form.getByLabel('Cache').selectOption({ label: 'hub' });
    await form.getByLabel('Images, one per line').fill('library/pf:v*\n');
    await form.getByLabel('Platforms (optional)').fill('linux/amd64');
    await form.getByRole('button', { name: 'Start prefetch' }).click();
    await form.getByText('Done: 2 of 2 images of hub are cached.').waitFor({ timeout: 60_000 });
    const images = form.getByRole('progressbar', { name: 'Images' });
    assert.equal(await images.getAttribute('data-done'), '2');
    assert.equal(await images.getAttribute('data-total'), '2');
    const bytes = form.getByRole('progressbar', { name: 'Bytes' });
    assert.ok(Number(await bytes.getAttribute('data-done')) >= v1.layer.size + v2.layer.size);

    // Cached: both tags are there, and pulling them fetches no blob upstream.
    assert.equal((await repository(ferry, 'hub/library/pf')).tag_count, 2);
    const misses = await metric(ferry, 'ferry_cache_requests_total', { kind: 'blob', result: 'miss' });
    for (const tag of ['v1', 'v2']) {
      await skopeo('copy', '--src-tls-verify=false', `docker://${ferry.host}/hub/library/pf:${tag}`, `oci:${path.join(workDir, 'pf-pulled')}:${tag}`);
    }
    assert.equal(await metric(ferry, 'ferry_cache_requests_total', { kind: 'blob', result: 'miss' }), misses);
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });

  test('a tag pinned in the browser stays through a quota squeeze', async () => {
    const six = 6 << 20;
    const images = {};
    for (const name of ['a', 'b', 'c']) images[name] = await pushImage(workDir, upstream, `example/${name}`, 'v1', six);
    // Each pull into a new layout: skopeo skips blobs its destination holds.
    let pulls = 0;
    const pull = (name) => skopeo('copy', '--src-tls-verify=false', `docker://${ferry.host}/small/example/${name}:v1`, `oci:${path.join(workDir, `squeeze-${name}-${pulls++}`)}:v1`);
    await pull('a');
    await pull('b');

    // a is the least recently pulled: the admin pins its tag in the browser.
    const page = await adminPage(ferry, `#/repo/${encodeURIComponent('small/example/a')}`);
    const row = page.getByRole('row').filter({ hasText: 'v1' });
    await row.getByRole('button', { name: 'Pin tag v1' }).click();
    await page.getByText(/^Pinned tag v1; .* pinned in this cache\.$/).waitFor();
    await page.getByRole('row').filter({ hasText: 'v1' }).locator('[data-field=pinned]').waitFor();
    await page.getByRole('row').filter({ hasText: 'v1' }).getByRole('button', { name: 'Unpin tag v1' }).waitFor();

    // c does not fit beside a and b: b goes, the pinned a stays.
    await pull('c');
    const upstreamBytes = () => metric(ferry, 'ferry_upstream_fetched_bytes_total');
    let before = await upstreamBytes();
    await pull('a');
    const forA = (await upstreamBytes()) - before;
    assert.ok(forA < images.a.layer.size, `a's layer came from upstream again (${forA} bytes): it was evicted`);
    before = await upstreamBytes();
    await pull('b');
    assert.ok((await upstreamBytes()) - before >= images.b.layer.size, 'b was evicted, and fetched again');

    // The air-gap page reports the cache's pinned bytes.
    await page.goto(`${ferry.url}/#/airgap`);
    const cacheRow = page.getByRole('row').filter({ hasText: 'small' });
    const pinned = await cacheRow.locator('[data-field=pinned_bytes]').innerText();
    assert.match(pinned, /^6\.\d MiB$/);
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });

  test('an export downloaded from the browser imports into a second ferry; a tampered one is refused', async () => {
    const image = await pushImage(workDir, upstream, 'library/carry', 'v3', 512 << 10);
    await skopeo('copy', '--src-tls-verify=false', `docker://${ferry.host}/hub/library/carry:v3`, `oci:${path.join(workDir, 'carry-pulled')}:v3`);

    const page = await adminPage(ferry);
    const form = page.locator('form').filter({ has: page.getByRole('heading', { name: 'Export a bundle' }) });
    await form.getByLabel('hub').check();
    await form.getByLabel('Repositories (optional)').fill('hub/library/carry');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      form.getByRole('button', { name: 'Build and download' }).click(),
    ]).catch(async (e) => { throw new Error(`${e.message}\n${await form.innerText()}`); });
    await form.getByText(/^Bundle [0-9a-f-]{36}: 1 image, 3 blobs, .*The download has started\.$/).waitFor();
    assert.match(download.suggestedFilename(), /\.tar$/);
    const bundle = path.join(workDir, download.suggestedFilename());
    await download.saveAs(bundle);
    assert.equal(await download.failure(), null);
    assert.deepEqual(page.errors, []);
    await page.context().close();

    // The island ferry refuses a bundle with one flipped byte in the layer...
    const tampered = path.join(workDir, 'tampered.tar');
    tamper(bundle, `blobs/sha256/${image.layer.digest.slice(7)}`, tampered);
    const other = await adminPage(island);
    const importForm = other.locator('form').filter({ has: other.getByRole('heading', { name: 'Import a bundle' }) });
    await importForm.getByLabel('Bundle file').setInputFiles(tampered);
    await importForm.getByRole('button', { name: 'Upload and import' }).click();
    const refusal = importForm.getByRole('alert');
    await refusal.waitFor({ timeout: 60_000 });
    assert.match(await refusal.innerText(), /^Refused \(HTTP 4\d\d\): .*sha256:[0-9a-f]{64}.* No tag was imported\.$/s);
    assert.equal(await repository(island, 'hub/library/carry'), undefined, 'nothing imported');

    // ... and imports the bundle as downloaded, which then serves pulls offline.
    await importForm.getByLabel('Bundle file').setInputFiles(bundle);
    await importForm.getByRole('button', { name: 'Upload and import' }).click();
    await importForm.getByText(/^Imported: 1 tag new or moved, 0 unchanged; \d blobs stored .*, \d already here\./).waitFor({ timeout: 60_000 })
      .catch(async (e) => { throw new Error(`${e.message}\n${await importForm.innerText()}`); });
    await importForm.getByRole('listitem').filter({ hasText: 'hub/library/carry:v3' }).waitFor();
    const uploaded = importForm.getByRole('progressbar', { name: 'Uploaded' });
    assert.equal(await uploaded.count(), 0, 'the verdict replaced the progress');
    const out = await skopeo('inspect', '--tls-verify=false', '--format', '{{.Digest}}', `docker://${island.host}/hub/library/carry:v3`);
    assert.equal(out.trim(), image.manifest);
    await skopeo('copy', '--src-tls-verify=false', `docker://${island.host}/hub/library/carry:v3`, `oci:${path.join(workDir, 'carry-island')}:v3`);
    assert.deepEqual(other.errors, []);
    await other.context().close();
  });
});
