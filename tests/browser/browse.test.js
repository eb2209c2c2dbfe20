// Browsing without a login, in headless Chromium: with `browse = "public"`
// (the default) an anonymous visitor reads every public cache (search,
// tags, manifests) and nothing of a private distribution; with
// `browse = "admin"` the visitor sees the login and `/v2/_catalog` answers
// 401. Also the dashboard polish: names wrap at slashes, one header size,
// caches in base-path order, a favicon.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  PASSWORD, STEP_TIMEOUT, launchChromium, skopeo, startFerry, startUpstream, stopAll, writeOciLayout,
} from './harness.js';

const LONG = 'library/wrapping-test-repository-with-a-rather-long-name';

/** The characters after which the text of `el` wraps onto a new line. */
function lineBreaks(el) {
  const chars = [];
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (let i = 0; i < node.data.length; i++) {
      const range = document.createRange();
      range.setStart(node, i);
      range.setEnd(node, i + 1);
      const rect = range.getClientRects()[0];
      if (rect) chars.push({ c: node.data[i], top: rect.top });
    }
  }
  const breaks = [];
  for (let i = 1; i < chars.length; i++) if (chars[i].top > chars[i - 1].top + 2) breaks.push(chars[i - 1].c);
  return breaks;
}

describe('browsing without a login', { timeout: 600_000 }, () => {
  let workDir;
  let upstream;
  let open;
  let closed;
  let browser;
  let demo;

  before(async () => {
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-browse-'));
    upstream = await startUpstream(workDir);
    demo = writeOciLayout(path.join(workDir, 'demo'), 'v1');
    writeOciLayout(path.join(workDir, 'secret'), 'v1', 'only the private cache has this\n');
    for (const [layout, ref] of [['demo', 'library/demo:v1'], ['demo', `${LONG}:v2`], ['secret', 'library/secret:v1']]) {
      await skopeo('copy', '--dest-tls-verify=false', `oci:${path.join(workDir, layout)}:v1`, `docker://${upstream.host}/${ref}`);
    }
    // Listed out of order on purpose: the overview sorts by base path.
    open = await startFerry(workDir, upstream.url, {
      caches: [{ base_path: 'zz-secret', upstream: upstream.url, private: true }, { base_path: 'mirror', upstream: upstream.url }],
    });
    const pull = (ferry, ref, ...creds) => skopeo('copy', '--src-tls-verify=false', ...creds,
      `docker://${ferry.host}/${ref}`, `dir:${fs.mkdtempSync(path.join(workDir, 'pulled-'))}`);
    await pull(open, 'hub/library/demo:v1');
    await pull(open, `hub/${LONG}:v2`);
    await pull(open, 'zz-secret/library/secret:v1', `--src-creds=admin:${PASSWORD}`);
    closed = await startFerry(workDir, upstream.url, { name: 'closed', top: ['browse = "admin"'] });
    await pull(closed, 'hub/library/demo:v1');
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    stopAll();
    if (workDir && !process.env.FERRY_BROWSER_KEEP) fs.rmSync(workDir, { recursive: true, force: true });
  });

  /** A fresh, logged-out tab on `hash` of `ferry`; its context closes with `done`. */
  async function visit(ferry, hash, { width = 1280, height = 860 } = {}) {
    const context = await browser.newContext({ viewport: { width, height } });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT);
    page.errors = [];
    page.on('pageerror', (e) => page.errors.push(e));
    page.done = async () => {
      assert.deepEqual(page.errors, []);
      await context.close();
    };
    await page.goto(`${ferry.url}/${hash}`);
    return page;
  }

  test('an anonymous visitor finds a pulled repository by search and opens its tags and a manifest', async () => {
    const page = await visit(open, '#/');
    const cacheLinks = page.locator('main a.cache-link');
    await cacheLinks.first().waitFor();
    assert.deepEqual(await cacheLinks.allInnerTexts(), ['hub', 'mirror'], 'public caches, by base path');
    await page.getByRole('link', { name: 'Log in' }).waitFor();

    await page.getByRole('link', { name: 'hub', exact: true }).click();
    await page.getByLabel('Search repositories').fill('dem');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByText('1–1 of 1').waitFor();
    const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: 'library/demo' }) });
    // The list's pull line names the tag the repository has.
    await row.getByText(`podman pull --tls-verify=false ${open.host}/hub/library/demo:v1`).waitFor();
    await row.getByRole('link', { name: 'library/demo' }).click();

    await page.getByRole('heading', { name: 'hub/library/demo' }).waitFor();
    const tagRow = page.getByRole('row').filter({ hasText: 'v1' });
    await tagRow.getByRole('link', { name: demo.manifest }).waitFor();
    await tagRow.getByText(`podman pull --tls-verify=false ${open.host}/hub/library/demo:v1`).waitFor();
    assert.match(await tagRow.locator('td[data-label=Size]').innerText(), /^\d+(\.\d)? (B|KiB)$/);
    assert.notEqual(await tagRow.locator('td[data-label="Last pulled"]').innerText(), '—');
    assert.equal(await page.getByRole('button', { name: /Delete|Check/ }).count(), 0, 'no write actions');
    assert.equal(await page.getByRole('columnheader', { name: 'Manage' }).count(), 0);

    await tagRow.getByRole('link', { name: demo.manifest }).click();
    await page.getByRole('heading', { name: /^Layers \(1,/ }).waitFor();
    await page.getByRole('row').filter({ hasText: demo.layer.digest }).waitFor();
    await page.getByText('linux/amd64').waitFor();
    // Breadcrumbs: Overview / hub / library/demo / digest, the cache a link.
    const crumbs = page.locator('main .crumbs');
    assert.match(await crumbs.innerText(), /^Overview \/ hub \/ library\/demo \/ sha256:/);
    await crumbs.getByRole('link', { name: 'hub', exact: true }).click();
    await page.getByRole('heading', { name: 'Cache hub' }).waitFor();
    await page.done();
  });

  test('a private distribution\'s repositories never appear', async () => {
    const page = await visit(open, '#/cache/hub');
    await page.getByRole('link', { name: 'library/demo' }).waitFor();
    await page.getByLabel('Search repositories').fill('secret');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByText('No repository matches.').waitFor();
    await page.goto(`${open.url}/#/cache/zz-secret`);
    await page.getByText('No repositories pulled through this cache yet.').waitFor();
    await page.goto(`${open.url}/#/repo/${encodeURIComponent('zz-secret/library/secret')}`);
    await page.getByText('No such repository').waitFor();
    await page.goto(`${open.url}/#/`);
    await page.locator('main a.cache-link').first().waitFor();
    assert.doesNotMatch(await page.locator('main').innerText(), /zz-secret/);
    // The registry agrees.
    const catalog = await (await fetch(`${open.url}/v2/_catalog`)).json();
    assert.deepEqual(catalog.repositories, ['hub/library/demo', `hub/${LONG}`]);
    await page.done();
  });

  test('with browsing closed the visitor sees the login and _catalog answers 401', async () => {
    const page = await visit(closed, '#/cache/hub');
    await page.getByText('Log in as admin to see the repositories of this cache.').waitFor();
    assert.equal(await page.getByRole('link', { name: 'library/demo' }).count(), 0);
    await page.goto(`${closed.url}/#/repo/${encodeURIComponent('hub/library/demo')}`);
    await page.getByText('Log in as admin to see the tags of this repository.').waitFor();
    await page.goto(`${closed.url}/#/manifest/${encodeURIComponent('hub/library/demo')}/${encodeURIComponent(demo.manifest)}`);
    await page.getByText('Log in as admin to see this manifest.').waitFor();
    const catalog = await fetch(`${closed.url}/v2/_catalog`);
    assert.equal(catalog.status, 401);
    assert.match(catalog.headers.get('www-authenticate'), /^Bearer realm="http:\/\/[^"]+\/token",service="ferry"/);
    await catalog.text();
    const tags = await fetch(`${closed.url}/v2/hub/library/demo/tags/list`);
    assert.equal(tags.status, 401);
    await tags.text();

    // The admin logs in and browses.
    await page.goto(`${closed.url}/#/cache/hub`);
    await page.getByRole('main').getByRole('link', { name: 'Log in' }).click();
    await page.getByLabel('Admin password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('link', { name: 'library/demo' }).waitFor();
    await page.done();
  });

  test('names wrap only at slashes and hyphens; one header size; a favicon', async () => {
    for (const width of [375, 820]) {
      const page = await visit(open, `#/cache/hub`, { width });
      const link = page.getByRole('link', { name: LONG });
      await link.waitFor();
      const breaks = await link.evaluate(lineBreaks);
      for (const c of breaks) assert.ok(c === '/' || c === '-', `at ${width} px the name wraps after "${c}": ${breaks}`);
      if (width === 375) assert.ok(breaks.length > 0, 'the long name does wrap at 375 px');
      if (width === 820) {
        const sizes = await page.locator('main thead th').evaluateAll((ths) => ths.map((th) => getComputedStyle(th.querySelector('button') || th).fontSize));
        assert.equal(new Set(sizes).size, 1, `header font sizes: ${sizes}`);
      }
      await page.goto(`${open.url}/#/repo/${encodeURIComponent(`hub/${LONG}`)}`);
      const heading = page.getByRole('heading', { name: `hub/${LONG}` });
      await heading.waitFor();
      for (const c of await heading.evaluate(lineBreaks)) assert.ok(c === '/' || c === '-', `heading wraps after "${c}"`);
      await page.done();
    }
    const page = await visit(open, '#/');
    const href = await page.locator('link[rel=icon]').getAttribute('href');
    const icon = await fetch(new URL(href, open.url));
    assert.equal(icon.status, 200);
    assert.equal(icon.headers.get('content-type'), 'image/svg+xml');
    assert.match(await icon.text(), /^<svg /);
    await page.done();
  });
});
