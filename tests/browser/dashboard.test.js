// Browser tests of ferry's dashboard: a real docker-registry upstream, a real
// ferry (target/debug/ferry, or $FERRY_BIN), real skopeo pulls, and headless
// Chromium driven by playwright-core. Everything listens on 127.0.0.1.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {
  PASSWORD, STEP_TIMEOUT, expectStatus, launchChromium, pool, run, skopeo, startFerry, startUpstream, stopAll,
  upstreamDigest, writeOciLayout,
} from './harness.js';

// Hostile strings. Each one, were it inserted as HTML, would create an
// element marked `data-xss` (or `id=xss`): found in the DOM whether or not
// the page's CSP lets a script run, which a `window.__xss` flag is not.
const PAYLOADS = [
  '<img src=x data-xss onerror=window.__xss=1>',
  '<b id=xss data-xss>bold</b>',
  '"><svg data-xss onload=window.__xss=1>',
  "'><iframe data-xss srcdoc=x></iframe>",
  '<script data-xss>window.__xss=1</script>',
  '</code><a data-xss href=javascript:alert(1)>x</a>',
];
const XSS = PAYLOADS.join(' ');

/** Fails if the page holds an element made of hostile data. */
async function assertNoMarkupFromData(page, what) {
  const made = await page.evaluate(() => [...document.querySelectorAll('[data-xss], #xss')].map((e) => e.outerHTML));
  assert.deepEqual(made, [], `${what}: elements were made of the data`);
  // The charts are SVG the page draws itself (svg.chart); no other such element.
  assert.equal(await page.locator('main img, main svg:not(.chart), main iframe, main script, main b').count(), 0, `${what}: no element was made of the data`);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
}
let workDir;

// ---------------------------------------------------------------- the tests

describe('ferry dashboard', { timeout: 900_000 }, () => {
  let upstream;
  let ferry;
  let browser;
  let context;
  let image;

  before(async () => {
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-browser-'));
    upstream = await startUpstream(workDir);
    const layout = path.join(workDir, 'layout');
    image = writeOciLayout(layout, 'v1');
    await skopeo('copy', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${upstream.host}/library/demo:v1`);
    ferry = await startFerry(workDir, upstream.url);
    // A pull through ferry fills the cache.
    await skopeo('copy', '--src-tls-verify=false', `docker://${ferry.host}/hub/library/demo:v1`, `oci:${path.join(workDir, 'pulled')}:v1`);
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    stopAll();
    if (workDir && !process.env.FERRY_BROWSER_KEEP) fs.rmSync(workDir, { recursive: true, force: true });
  });

  async function newPage({ width = 1280, height = 860, login = false } = {}) {
    context = await browser.newContext({ viewport: { width, height } });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT);
    const errors = [];
    page.on('pageerror', (e) => errors.push(e));
    page.errors = errors;
    await page.goto(`${ferry.url}/`);
    if (login) {
      await page.getByRole('link', { name: 'Log in' }).first().click();
      await page.getByLabel('Admin password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByRole('button', { name: 'Log out' }).waitFor();
    }
    return page;
  }

  test('serves the page and its assets with types and caching', async () => {
    const index = await fetch(`${ferry.url}/`);
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type'), /^text\/html/);
    assert.equal(index.headers.get('cache-control'), 'no-cache');
    const html = await index.text();
    const js = html.match(/src="(\/ui\/app\.js\?v=[0-9a-f]+)"/);
    assert.ok(js, 'index.html references the versioned app.js');
    const asset = await fetch(`${ferry.url}${js[1]}`);
    assert.equal(asset.status, 200);
    assert.match(asset.headers.get('content-type'), /^text\/javascript/);
    assert.match(asset.headers.get('cache-control'), /max-age=\d{5,}/);
    assert.equal(asset.headers.get('content-encoding'), 'gzip', 'compressed for a browser that accepts gzip');
    assert.match(await asset.text(), /^\/\/ ferry's dashboard/, 'and decompresses to the script');
    const plain = await new Promise((resolve, reject) => {
      // node's fetch always asks for gzip; a client that does not gets plain bytes.
      http.get(`${ferry.url}${js[1]}`, { headers: { 'accept-encoding': 'identity' } }, (res) => {
        res.resume();
        resolve(res.headers);
      }).on('error', reject);
    });
    assert.equal(plain['content-encoding'], undefined);
    assert.equal((await fetch(`${ferry.url}/ui/nope.js`)).status, 404);
  });

  test('without credentials: status, counts and public content are shown read-only', async () => {
    const page = await newPage();
    const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: 'hub', exact: true }) });
    await row.getByText('reachable', { exact: true }).waitFor();
    await row.getByText(upstream.url).waitFor();
    await row.locator('[data-field=repositories]').filter({ hasText: /^1$/ }).waitFor();
    assert.equal(await page.getByRole('button', { name: /Delete|Edit/ }).count(), 0, 'read-only');
    await row.getByRole('link', { name: 'hub', exact: true }).click();
    await page.getByRole('link', { name: 'library/demo' }).waitFor();
    assert.equal(await page.getByRole('button', { name: /Delete|Edit|Check/ }).count(), 0, 'read-only');
    assert.deepEqual(page.errors, []);
    await context.close();
  });

  test('overview, repository, tag and manifest pages', async () => {
    const page = await newPage({ login: true });
    await page.goto(`${ferry.url}/#/`);
    const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: 'hub', exact: true }) });
    await row.locator('[data-field=repositories]').filter({ hasText: /^1$/ }).waitFor();
    await row.locator('[data-field=tags]').filter({ hasText: /^1$/ }).waitFor();
    await row.locator('[data-field=blobs]').filter({ hasText: /^2$/ }).waitFor();
    await page.getByLabel('Totals').getByText('Hit ratio').waitFor();
    assert.doesNotMatch(await page.locator('main').innerText(), /null|undefined|NaN/);

    // The cache's repositories, searchable.
    await row.getByRole('link', { name: 'hub', exact: true }).click();
    await page.getByRole('heading', { name: 'Cache hub' }).waitFor();
    await page.getByRole('link', { name: 'library/demo' }).waitFor();
    await page.getByLabel('Search repositories').fill('nothing-like-this');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByText('No repository matches.').waitFor();
    await page.getByLabel('Search repositories').fill('dem');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('link', { name: 'library/demo' }).click();

    // The repository's tags: the digest is upstream's.
    const digest = await upstreamDigest(upstream, 'library/demo', 'v1');
    assert.equal(digest, image.manifest);
    await page.getByRole('heading', { name: 'hub/library/demo' }).waitFor();
    const tagRow = page.getByRole('row').filter({ hasText: 'v1' });
    await tagRow.getByRole('link', { name: digest }).waitFor();
    await tagRow.getByText(`podman pull --tls-verify=false ${ferry.host}/hub/library/demo:v1`).waitFor();
    await tagRow.getByText('application/vnd.oci.image.manifest.v1+json').waitFor();

    // The manifest: its layer, the config's platform and entrypoint.
    await tagRow.getByRole('link', { name: digest }).click();
    await page.getByRole('heading', { name: /^Layers \(1,/ }).waitFor();
    const layerRow = page.getByRole('row').filter({ hasText: image.layer.digest });
    await layerRow.getByText('application/vnd.oci.image.layer.v1.tar+gzip').waitFor();
    await layerRow.getByText(`${(image.layer.size / 1024).toFixed(1)} KiB`).or(layerRow.getByText(`${image.layer.size} B`)).waitFor();
    await page.getByText('linux/amd64').waitFor();
    await page.getByText('["/bin/hello"]').waitFor();
    await page.getByText('COPY hello.txt /').waitFor();
    assert.deepEqual(page.errors, []);
    await context.close();
  });

  test('the admin creates a remote and a distribution; pulls go through it', async () => {
    const page = await newPage({ login: true });
    await page.getByRole('link', { name: 'Manage' }).click();
    await page.getByRole('heading', { name: 'New remote' }).waitFor();
    await page.getByLabel('Name', { exact: true }).first().fill('upstream-two');
    await page.getByLabel('Upstream URL').fill(upstream.url);
    await page.getByRole('button', { name: 'Create remote' }).click();
    await page.getByRole('row').filter({ hasText: 'upstream-two' }).waitFor();

    const form = page.locator('form').filter({ has: page.getByRole('heading', { name: /New distribution/ }) });
    await form.getByLabel('Name', { exact: true }).fill('mirror');
    await form.getByLabel('Base path').fill('mirror');
    await form.getByLabel('Remote').selectOption({ label: `upstream-two (${upstream.url})` });
    await form.getByRole('button', { name: 'Create distribution' }).click();
    await page.getByRole('row').filter({ has: page.getByRole('link', { name: 'mirror', exact: true }) }).waitFor();

    await skopeo('copy', '--src-tls-verify=false', `docker://${ferry.host}/mirror/library/demo:v1`, `oci:${path.join(workDir, 'mirror')}:v1`);
    const out = await skopeo('inspect', '--tls-verify=false', '--format', '{{.Digest}}', `docker://${ferry.host}/mirror/library/demo:v1`);
    assert.equal(out.trim(), image.manifest);

    // And it shows on the overview.
    await page.getByRole('link', { name: 'Overview' }).click();
    const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: 'mirror', exact: true }) });
    await row.locator('[data-field=repositories]').filter({ hasText: /^1$/ }).waitFor();
    assert.deepEqual(page.errors, []);
    await context.close();
  });

  test('hostile names and descriptions are shown as text, never run', async () => {
    const page = await newPage({ login: true });
    await page.getByRole('link', { name: 'Manage' }).click();
    await page.getByLabel('Name', { exact: true }).first().fill(`evil ${XSS}`);
    await page.getByLabel('Upstream URL').fill(upstream.url);
    await page.getByRole('button', { name: 'Create remote' }).click();
    await page.getByRole('row').filter({ hasText: `evil ${XSS}` }).waitFor();

    const form = page.locator('form').filter({ has: page.getByRole('heading', { name: /New distribution/ }) });
    await form.getByLabel('Name', { exact: true }).fill(`dist ${XSS}`);
    await form.getByLabel('Base path').fill('evil');
    await form.getByLabel('Remote').selectOption({ label: `evil ${XSS} (${upstream.url})` });
    await form.getByLabel('Description (optional)').fill(XSS);
    await form.getByRole('button', { name: 'Create distribution' }).click();
    const row = page.getByRole('row').filter({ hasText: `dist ${XSS}` });
    await row.getByText(XSS, { exact: true }).waitFor();
    await row.getByText(`evil ${XSS}`, { exact: true }).waitFor();

    await assertNoMarkupFromData(page, 'the admin page');

    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByText(`dist ${XSS}`, { exact: true }).waitFor();
    await page.getByText(XSS, { exact: true }).waitFor();
    await assertNoMarkupFromData(page, 'the overview');
    assert.deepEqual(page.errors, []);
    await context.close();
  });

  test('hostile image metadata from the upstream is shown as text, never as markup', async () => {
    // What an upstream's image controls: config (entrypoint, command,
    // working directory, labels), history steps and comments, annotations.
    const upstreamFields = {
      config: {
        Entrypoint: [PAYLOADS[0], PAYLOADS[1]],
        Cmd: [PAYLOADS[2], PAYLOADS[3]],
        WorkingDir: `/srv/${PAYLOADS[4]}`,
        Labels: Object.fromEntries(PAYLOADS.map((p, i) => [`label${i}`, p])),
      },
      history: [
        ...PAYLOADS.map((p) => ({ created: '2024-05-01T12:00:00Z', created_by: `RUN ${p}` })),
        { created: '2024-05-01T12:00:00Z', comment: `comment ${XSS}`, empty_layer: true },
      ],
      annotations: Object.fromEntries(PAYLOADS.map((p, i) => [`org.example.a${i}`, p])),
    };
    const layout = path.join(workDir, 'hostile');
    const hostile = writeOciLayout(layout, 'v1', 'hostile\n', upstreamFields);
    await skopeo('copy', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${upstream.host}/library/hostile:v1`);
    await skopeo('copy', '--src-tls-verify=false', `docker://${ferry.host}/hub/library/hostile:v1`, `oci:${path.join(workDir, 'hostile-pulled')}:v1`);

    const page = await newPage({ login: true });
    await page.goto(`${ferry.url}/#/repo/${encodeURIComponent('hub/library/hostile')}`);
    await page.getByRole('heading', { name: 'hub/library/hostile' }).waitFor();
    await page.getByRole('link', { name: hostile.manifest }).click();
    await page.getByRole('heading', { name: /^Layers \(1,/ }).waitFor();
    const { config } = upstreamFields;
    await page.getByText(JSON.stringify(config.Entrypoint), { exact: true }).waitFor();
    await page.getByText(JSON.stringify(config.Cmd), { exact: true }).waitFor();
    await page.getByText(config.WorkingDir, { exact: true }).waitFor();
    for (const p of PAYLOADS) await page.getByText(`RUN ${p}`, { exact: true }).waitFor();
    await page.getByText(`comment ${XSS} (no layer)`, { exact: true }).waitFor();
    await assertNoMarkupFromData(page, 'the manifest page');
    assert.deepEqual(page.errors, []);
    await context.close();
  });

  test('readable at 375 px: no horizontal scrolling, controls reachable', async () => {
    const page = await newPage({ width: 375, height: 740, login: true });
    await page.goto(`${ferry.url}/#/repo/${encodeURIComponent('hub/library/demo')}`);
    await page.getByRole('heading', { name: 'hub/library/demo' }).waitFor();
    await page.getByText(`podman pull --tls-verify=false ${ferry.host}/hub/library/demo:v1`).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `page scrolls sideways by ${overflow}px`);
    // The keyboard reaches the copy button.
    let reached = false;
    for (let i = 0; i < 30 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement?.classList.contains('copy'));
    }
    assert.ok(reached, 'Tab reaches the Copy button');
    await context.close();
  });
  test('tags: size and times; the admin checks a tag upstream, deletes it, edits a distribution', async () => {
    const layoutA = path.join(workDir, 'moving-a');
    const layoutB = path.join(workDir, 'moving-b');
    const a = writeOciLayout(layoutA, 'latest', 'version A\n');
    const b = writeOciLayout(layoutB, 'latest', 'version B, which moved\n');
    await skopeo('copy', '--dest-tls-verify=false', `oci:${layoutA}:latest`, `docker://${upstream.host}/library/moving:latest`);
    await skopeo('copy', '--src-tls-verify=false', `docker://${ferry.host}/hub/library/moving:latest`, `oci:${path.join(workDir, 'moving-pulled')}:latest`);
    // The tag moves upstream; within its TTL ferry still answers the old digest.
    await skopeo('copy', '--dest-tls-verify=false', `oci:${layoutB}:latest`, `docker://${upstream.host}/library/moving:latest`);
    assert.equal(await upstreamDigest(upstream, 'library/moving', 'latest'), b.manifest);

    const page = await newPage({ login: true });
    page.on('dialog', (d) => d.accept());
    await page.goto(`${ferry.url}/#/repo/${encodeURIComponent('hub/library/moving')}`);
    const tagRow = page.getByRole('row').filter({ hasText: 'latest' });
    await tagRow.getByRole('link', { name: a.manifest }).waitFor();
    const size = a.layer.size + a.config.size; // plus the manifest's own bytes
    const shown = await tagRow.locator('td[data-label=Size]').innerText();
    assert.match(shown, /^\d+(\.\d)? (B|KiB)$/, shown);
    assert.ok(parseFloat(shown) * (shown.endsWith('KiB') ? 1024 : 1) > size, `${shown} counts the layer and config`);
    assert.notEqual(await tagRow.locator('td[data-label="Last pulled"]').innerText(), '—');

    await tagRow.getByRole('button', { name: 'Check tag latest upstream now' }).click();
    await page.getByText(`latest moved upstream: now ${b.manifest}`).waitFor();
    await page.getByRole('row').filter({ hasText: 'latest' }).getByRole('link', { name: b.manifest }).waitFor();
    const out = await skopeo('inspect', '--tls-verify=false', '--format', '{{.Digest}}', `docker://${ferry.host}/hub/library/moving:latest`);
    assert.equal(out.trim(), b.manifest, 'pulls see the refreshed tag at once');

    await page.getByRole('row').filter({ hasText: 'latest' }).getByRole('button', { name: 'Delete tag latest' }).click();
    await page.getByText('No tags cached.').waitFor();
    const auth = { Authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}` };
    const repos = await (await fetch(`${ferry.url}/pulp/api/v3/repositories/container/container/?name=hub/library/moving`, { headers: auth })).json();
    assert.equal(repos.results[0].tag_count, 0);

    // Edit a distribution: the change shows, and pulls still work through it.
    await page.getByRole('link', { name: 'Manage' }).click();
    await page.getByRole('button', { name: 'Edit distribution mirror' }).click();
    const edit = page.locator('form').filter({ has: page.getByRole('heading', { name: 'Edit distribution mirror' }) });
    await edit.getByLabel('Description').fill('edited in the browser');
    await edit.getByRole('button', { name: 'Save distribution' }).click();
    await page.getByText('Saved distribution mirror.').waitFor();
    await page.getByRole('row').filter({ hasText: 'edited in the browser' }).waitFor();
    assert.deepEqual(page.errors, []);
    await context.close();
  });

  test('an imported, pinned tag says where it came from', async () => {
    // A plain OCI layout, as `skopeo copy ... oci:DIR:TAG` writes it, imported
    // through the API under a repository the upstream has never had.
    const layout = path.join(workDir, 'carried');
    const carried = writeOciLayout(layout, 'v7', 'carried across the gap\n');
    const bundle = path.join(workDir, 'carried.tar');
    await run('tar', ['-cf', bundle, '-C', layout, '.']);
    const auth = { Authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}` };
    const imported = await fetch(`${ferry.url}/pulp/api/v3/bundles/import/?to=hub/library/carried&pin=true`, {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/x-tar' },
      body: fs.readFileSync(bundle),
    });
    assert.equal(imported.status, 200, await imported.clone().text());
    assert.deepEqual((await imported.json()).imported, ['hub/library/carried:v7']);

    const page = await newPage({ login: true });
    await page.goto(`${ferry.url}/#/repo/${encodeURIComponent('hub/library/carried')}`);
    const tagRow = page.getByRole('row').filter({ hasText: 'v7' });
    await tagRow.getByRole('link', { name: carried.manifest }).waitFor();
    assert.match(await tagRow.locator('[data-field=imported]').innerText(), /^imported \d{4}-\d\d-\d\d .* from oci-layout \(bundle [0-9a-f]{8}\)$/);
    assert.equal(await tagRow.locator('[data-field=pinned]').innerText(), 'pinned');
    await page.getByRole('definition').filter({ hasText: 'from oci-layout' }).waitFor();
    assert.deepEqual(page.errors, []);
    await context.close();
  });

  test('large caches page on the server: 2,000 repositories and 5,000 tags', { timeout: 600_000 }, async () => {
    // Upstream: 2,000 repositories and one repository with 5,000 tags, all
    // of the demo image (blobs mounted, manifest re-tagged).
    const manifest = await (await fetch(`${upstream.url}/v2/library/demo/manifests/v1`, {
      headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
    })).arrayBuffer();
    const putManifest = async (repo, tag) => {
      const resp = await fetch(`${upstream.url}/v2/${repo}/manifests/${tag}`, {
        method: 'PUT',
        headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
        body: Buffer.from(manifest),
        signal: AbortSignal.timeout(30_000),
      });
      await expectStatus(resp, 201, `PUT ${repo}:${tag}`);
    };
    const mount = async (repo, digest) => {
      const resp = await fetch(`${upstream.url}/v2/${repo}/blobs/uploads/?mount=${digest}&from=library/demo`, {
        method: 'POST',
        signal: AbortSignal.timeout(30_000),
      });
      await expectStatus(resp, 201, `mount ${digest} into ${repo}`);
    };
    const REPOS = 2000;
    const TAGS = 5000;
    const hubBefore = async () => (await (await fetch(`${ferry.url}/pulp/api/v3/status/`)).json())
      .upstreams.find((u) => u.base_path === 'hub');
    const before = await hubBefore();
    const repoName = (i) => `many/r${String(i).padStart(4, '0')}`;
    await pool(REPOS, 16, async (i) => {
      await mount(repoName(i), image.layer.digest);
      await mount(repoName(i), image.config.digest);
      await putManifest(repoName(i), 'v1');
    });
    await mount('library/tags', image.layer.digest);
    await mount('library/tags', image.config.digest);
    await pool(TAGS, 16, (i) => putManifest('library/tags', `t${String(i).padStart(4, '0')}`));

    // Pull every one of them through ferry (manifests; the blobs are shared).
    const get = async (ref) => {
      const [repo, tag] = ref.split(':');
      const resp = await fetch(`${ferry.url}/v2/hub/${repo}/manifests/${tag}`, {
        headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
        signal: AbortSignal.timeout(30_000),
      });
      await expectStatus(resp, 200, `pull ${ref} through ferry`);
    };
    await pool(REPOS, 16, (i) => get(`${repoName(i)}:v1`));
    await pool(TAGS, 16, (i) => get(`library/tags:t${String(i).padStart(4, '0')}`));

    const page = await newPage({ login: true });
    await page.goto(`${ferry.url}/#/cache/hub`);
    const repoCount = before.repositories + REPOS + 1; // and library/tags
    await page.getByText(`1–20 of ${repoCount}`).waitFor();
    assert.equal(await page.locator('main tbody tr').count(), 20, 'one page rendered, not everything');
    await page.getByRole('button', { name: 'Next →' }).click();
    await page.getByText(`21–40 of ${repoCount}`).waitFor();
    await page.getByLabel('Search repositories').fill('r1999');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByText('1–1 of 1').waitFor();
    await page.getByRole('link', { name: 'many/r1999' }).waitFor();

    await page.goto(`${ferry.url}/#/repo/${encodeURIComponent('hub/library/tags')}`);
    await page.getByText(`1–20 of ${TAGS}`).waitFor();
    assert.equal(await page.locator('main tbody tr').count(), 20);
    await page.getByRole('row').filter({ hasText: 't0000' }).getByRole('link', { name: image.manifest }).waitFor();

    // The overview counts everything (no cap).
    await page.goto(`${ferry.url}/#/`);
    const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: 'hub', exact: true }) });
    await row.locator('[data-field=repositories]').filter({ hasText: new RegExp(`^${repoCount}$`) }).waitFor();
    await row.locator('[data-field=tags]').filter({ hasText: new RegExp(`^${before.tags + REPOS + TAGS}$`) }).waitFor();
    assert.deepEqual(page.errors, []);
    await context.close();
  });
});
