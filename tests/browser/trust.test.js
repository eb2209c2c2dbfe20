// What other origins can make the admin's browser do with ferry: a manifest
// a hostile upstream labels text/html, a page on another origin forging
// writes, a script looking for the admin password. Real docker-registry,
// real ferry, headless Chromium; the one fake is named as such below.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {
  PASSWORD, STEP_TIMEOUT, startUpstream, startFerry, writeOciLayout, expectStatus, skopeo,
  launchChromium, stopAll,
} from './harness.js';

const REMOTES = '/pulp/api/v3/remotes/container/pull-through/';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const BASIC = `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`;

/** Starts an HTTP server on 127.0.0.1; resolves to {server, url}. */
function listen(handler) {
  return new Promise((resolve, reject) => {
    const server = http.createServer(handler);
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${server.address().port}` }));
  });
}

/** FAKE upstream: relays every request to the real docker-registry, but
 * labels the manifests of `library/evil` `text/html` (bytes untouched, so
 * their digest still matches): what a hostile upstream can do. */
function startFakeRelabelingUpstream(upstreamUrl) {
  const target = new URL(upstreamUrl);
  return listen((req, res) => {
    const out = http.request({
      host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers,
    }, (up) => {
      const headers = { ...up.headers };
      if (req.url.startsWith('/v2/library/evil/manifests/') && up.statusCode === 200) headers['content-type'] = 'text/html';
      res.writeHead(up.statusCode, headers);
      up.pipe(res);
    });
    out.on('error', (e) => { res.writeHead(502); res.end(String(e)); });
    req.pipe(out);
  });
}

async function remoteNames(ferry) {
  const resp = await fetch(`${ferry.url}${REMOTES}?limit=1000`, { headers: { Authorization: BASIC } });
  assert.equal(resp.status, 200);
  return (await resp.json()).results.map((r) => r.name);
}

// In a manifest annotation: run as a page, it reads the credentials the
// dashboard keeps and creates a remote. Single quotes only, so that the
// JSON around it leaves it intact.
const EVIL_SCRIPT = "<script>const a = sessionStorage.getItem('ferry.auth'); "
  + "fetch('/pulp/api/v3/remotes/container/pull-through/', { method: 'POST', credentials: 'same-origin', "
  + "headers: Object.assign({ 'Content-Type': 'application/json' }, a ? { Authorization: 'Basic ' + a } : {}), "
  + "body: JSON.stringify({ name: 'pwned-by-manifest', url: 'http://127.0.0.1:9' }) })"
  + ".then((r) => { document.title = 'ran ' + r.status; });</script>";

describe('trust boundaries in the browser', { timeout: 300_000 }, () => {
  let workDir;
  let upstream;
  let fake;
  let ferry;
  let browser;
  let evilDigest;
  const servers = [];

  before(async () => {
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-trust-'));
    upstream = await startUpstream(workDir);
    const layout = path.join(workDir, 'layout');
    writeOciLayout(layout, 'v1');
    for (const repo of ['library/demo', 'library/evil']) {
      await skopeo('copy', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${upstream.host}/${repo}:v1`);
    }
    // library/evil:v1 gets a manifest with a script in an annotation.
    const manifest = await (await fetch(`${upstream.url}/v2/library/evil/manifests/v1`, {
      headers: { Accept: OCI_MANIFEST },
    })).json();
    manifest.annotations = { note: EVIL_SCRIPT };
    const put = await fetch(`${upstream.url}/v2/library/evil/manifests/v1`, {
      method: 'PUT', headers: { 'Content-Type': OCI_MANIFEST }, body: JSON.stringify(manifest),
    });
    evilDigest = put.headers.get('docker-content-digest');
    await expectStatus(put, 201, 'PUT the evil manifest');
    fake = await startFakeRelabelingUpstream(upstream.url);
    servers.push(fake.server);
    ferry = await startFerry(workDir, fake.url);
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    for (const s of servers) s.close();
    stopAll();
    if (workDir && !process.env.FERRY_BROWSER_KEEP) fs.rmSync(workDir, { recursive: true, force: true });
  });

  async function loggedIn(contextOptions = {}) {
    const context = await browser.newContext(contextOptions);
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT);
    page.errors = [];
    page.on('pageerror', (e) => page.errors.push(e));
    await page.goto(`${ferry.url}/#/login`);
    await page.getByLabel('Admin password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('button', { name: 'Log out' }).waitFor();
    return { context, page };
  }

  test('after login no script can read the admin password or the session', async () => {
    const { context, page } = await loggedIn();
    const stored = await page.evaluate(() => JSON.stringify({
      session: Object.fromEntries(Object.entries(sessionStorage)),
      local: Object.fromEntries(Object.entries(localStorage)),
      cookie: document.cookie,
    }));
    for (const secret of [PASSWORD, BASIC.slice('Basic '.length)]) {
      assert.ok(!stored.includes(secret), `script-readable storage holds the password: ${stored}`);
    }
    assert.equal(JSON.parse(stored).cookie, '', 'the session cookie is HttpOnly');
    const cookies = await context.cookies(ferry.url);
    const session = cookies.find((c) => c.name === 'ferry_session');
    assert.ok(session, `a session cookie: ${JSON.stringify(cookies)}`);
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');

    // The session works for the page's own writes and survives a reload.
    await page.reload();
    await page.getByRole('button', { name: 'Log out' }).waitFor();
    await page.getByRole('link', { name: 'Manage' }).click();
    await page.getByLabel('Name', { exact: true }).first().fill('made-in-session');
    await page.getByLabel('Upstream URL').fill(upstream.url);
    await page.getByRole('button', { name: 'Create remote' }).click();
    await page.getByRole('row').filter({ hasText: 'made-in-session' }).waitFor();

    // Logging out ends it on the server too.
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('link', { name: 'Log in' }).first().waitFor();
    const status = await page.evaluate(async (url) => (await fetch(url, { credentials: 'same-origin' })).status, `${ferry.url}${REMOTES}`);
    assert.equal(status, 401);
    assert.deepEqual(page.errors, []);
    await context.close();
  });

  test('a page on another origin cannot create a remote while the admin is logged in', async () => {
    // The admin is logged in to the dashboard, and the browser also knows
    // the password for ferry (as after answering a Basic prompt).
    const { context, page } = await loggedIn({ httpCredentials: { username: 'admin', password: PASSWORD } });
    const target = `${ferry.url}${REMOTES}`;
    const attacker = await listen((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      // A text/plain form whose body is JSON, and a no-cors fetch.
      res.end(`<!doctype html><title>cat pictures</title>
<form id="f" method="POST" action="${target}" enctype="text/plain">
<input type="hidden" name='{"name":"csrf-form","url":"http://127.0.0.1:9","x":"' value='"}'>
</form>
<script>
fetch(${JSON.stringify(target)}, { method: 'POST', mode: 'no-cors', credentials: 'include',
  headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify({ name: 'csrf-fetch', url: 'http://127.0.0.1:9' }) })
  .finally(() => { window.fetched = true; document.getElementById('f').submit(); });
</script>`);
    });
    servers.push(attacker.server);
    const answers = [];
    page.on('response', (r) => {
      if (r.url() === target && r.request().method() === 'POST') answers.push(r.status());
    });
    await page.goto(`${attacker.url}/`);
    // The form's answer replaces the page: both requests were answered.
    await page.waitForURL(target);
    assert.ok(answers.length >= 2, `both forged requests were answered: ${answers}`);
    assert.ok(answers.every((s) => s === 403), `forged writes refused: ${answers}`);
    const names = await remoteNames(ferry);
    assert.ok(!names.some((n) => n.startsWith('csrf')), `no forged remote: ${names}`);
    await context.close();
  });

  test('a page on another origin cannot download a bundle with the admin\'s session', async () => {
    // The dashboard downloads bundles by a form POST (selection=<JSON>); the
    // same form from another origin's page (same site: the cookie rides
    // along, and the browser knows the password) must get nothing.
    const { context, page } = await loggedIn({ httpCredentials: { username: 'admin', password: PASSWORD } });
    const target = `${ferry.url}/pulp/api/v3/bundles/export/`;
    const attacker = await listen((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end(`<!doctype html><title>cat pictures</title>
<form id="f" method="POST" action="${target}"><input type="hidden" name="selection" value="{}"></form>
<script>document.getElementById('f').submit();</script>`);
    });
    servers.push(attacker.server);
    const answers = [];
    page.on('response', (r) => {
      if (r.url() === target && r.request().method() === 'POST') answers.push(r.status());
    });
    let downloads = 0;
    page.on('download', () => { downloads++; });
    await page.goto(`${attacker.url}/`);
    await page.waitForURL(target);
    assert.deepEqual(answers, [403], 'the forged export is refused');
    assert.match(await page.locator('body').innerText(), /another origin/);
    assert.equal(downloads, 0, 'no bundle was downloaded');
    await context.close();
  });

  test('a manifest an upstream labels text/html is refused, never shown as a page', async () => {
    const url = `${ferry.url}/v2/hub/library/evil/manifests/${evilDigest}`;
    // A client's pull: the upstream's answer is refused, nothing stored.
    const pulled = await fetch(url, { headers: { Accept: OCI_MANIFEST } });
    const pulledBody = await pulled.text();
    assert.equal(pulled.status, 502, pulledBody);
    assert.match(pulledBody, /text\/html/);

    // The admin, logged in, opens the manifest's address in the dashboard's
    // tab: whatever ferry answers, nothing of it runs on ferry's origin.
    const { context, page } = await loggedIn();
    const resp = await page.goto(url);
    assert.notEqual(resp.status(), 200);
    const headers = resp.headers();
    assert.equal(headers['content-type'], 'application/json');
    assert.equal(headers['x-content-type-options'], 'nosniff');
    assert.match(headers['content-security-policy'], /default-src 'none'.*sandbox/);
    assert.doesNotMatch(await page.title(), /^ran/);
    assert.ok(!(await remoteNames(ferry)).includes('pwned-by-manifest'));

    // An honest manifest through the same upstream: its declared type and
    // the data-only headers.
    const demo = await page.request.get(`${ferry.url}/v2/hub/library/demo/manifests/v1`, { headers: { Accept: OCI_MANIFEST } });
    assert.equal(demo.status(), 200);
    assert.equal(demo.headers()['content-type'], OCI_MANIFEST);
    assert.equal(demo.headers()['x-content-type-options'], 'nosniff');
    assert.match(demo.headers()['content-security-policy'], /sandbox/);
    await context.close();
  });
});
