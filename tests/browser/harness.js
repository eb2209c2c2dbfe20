// The harness of the browser tests: a real docker-registry upstream, a real
// ferry (target/debug/ferry, or $FERRY_BIN), skopeo, and OCI images built
// here. Every server listens on 127.0.0.1 on a free port.

import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const FERRY_BIN = process.env.FERRY_BIN || path.join(ROOT, 'target', 'debug', 'ferry');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const PASSWORD = 'browser-test-Pa55';
const STEP_TIMEOUT = 15_000;

// ---------------------------------------------------------------- processes

const children = [];

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Runs a program to completion (bounded), failing with its output. */
function run(cmd, args, { timeout = 120_000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

function startProcess(cmd, args, { env = {}, log }) {
  const out = fs.openSync(log, 'a');
  const child = spawn(cmd, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', out],
  });
  children.push(child);
  return child;
}

/** Polls `url` until it answers (any status), at most `ms`. */
async function waitHttp(url, child, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${child.spawnfile} exited (${child.exitCode}) before answering ${url}`);
    try {
      await fetch(url, { signal: AbortSignal.timeout(2000) });
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`${url} did not answer within ${ms} ms: ${e.message}`);
      await new Promise((r) => setTimeout(r, 50)); // poll interval, not synchronization
    }
  }
}

async function startUpstream(workDir) {
  const port = await freePort();
  const dir = path.join(workDir, 'upstream');
  fs.mkdirSync(dir, { recursive: true });
  const config = path.join(dir, 'config.yml');
  fs.writeFileSync(config, [
    'version: 0.1',
    'log:', '  level: info',
    'storage:', `  filesystem:`, `    rootdirectory: ${path.join(dir, 'storage')}`, '  delete:', '    enabled: true',
    'http:', `  addr: 127.0.0.1:${port}`, '  secret: ferry-browser-secret',
    'health:', '  storagedriver:', '    enabled: false',
    '',
  ].join('\n'));
  const child = startProcess('docker-registry', ['serve', config], { log: path.join(dir, 'registry.log') });
  // Drain stdout: a full pipe would block the registry.
  child.stdout.resume();
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`${url}/v2/`, child);
  return { host: `127.0.0.1:${port}`, url };
}

/** ferry with a cache `hub` of `upstreamUrl`; `top` adds top-level config
 * lines, `caches` more caches ({ base_path, upstream, private, lines }). */
async function startFerry(workDir, upstreamUrl, { name = 'ferry', top = [], caches = [] } = {}) {
  const dir = path.join(workDir, name);
  fs.mkdirSync(dir, { recursive: true });
  const config = path.join(dir, 'ferry.toml');
  const cacheLines = (c) => ['', '[[cache]]', `base_path = ${JSON.stringify(c.base_path)}`,
    `upstream = ${JSON.stringify(c.upstream)}`, ...(c.private ? ['private = true'] : []), ...(c.lines || [])];
  fs.writeFileSync(config, [
    'listen = "127.0.0.1:0"',
    `data_dir = ${JSON.stringify(path.join(dir, 'data'))}`,
    ...top,
    ...[...caches, { base_path: 'hub', upstream: upstreamUrl }].flatMap(cacheLines),
    '',
  ].join('\n'));
  const child = startProcess(FERRY_BIN, ['serve', '--config', config], {
    env: { FERRY_ADMIN_PASSWORD: PASSWORD, RUST_LOG: 'info' },
    log: path.join(dir, 'ferry.log'),
  });
  const addr = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`ferry did not print "listening on" within 30 s:\n${buf}`)), 30_000);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`ferry exited (${code}):\n${buf}`)); });
    child.stdout.on('data', (chunk) => {
      buf += chunk;
      const m = buf.match(/listening on (\S+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
  });
  child.stdout.resume();
  return { host: addr, url: `http://${addr}`, child, data: path.join(dir, 'data') };
}

// ---------------------------------------------------------------- an image

const sha256 = (b) => createHash('sha256').update(b).digest('hex');

/** A one-file ustar archive. */
function tarOf(name, content) {
  const header = Buffer.alloc(512);
  const put = (s, off, len) => header.write(s, off, len, 'ascii');
  const octal = (n, len) => n.toString(8).padStart(len - 1, '0');
  put(name, 0, 100);
  put(octal(0o755, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(content.length, 12), 124, 12);
  put(octal(1_700_000_000, 12), 136, 12);
  put('        ', 148, 8);
  put('0', 156, 1);
  put('ustar\u000000', 257, 8);
  let sum = 0;
  for (const b of header) sum += b;
  put(`${octal(sum, 7)}\u0000`, 148, 8);
  const pad = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([header, content, pad, Buffer.alloc(1024)]);
}

/** Writes an OCI layout holding one image tagged `tag`; returns its digests. */
/** An OCI layout with one image tagged `tag`; `upstreamFields` replaces
 * what an upstream's image controls: config fields (`config`), the history
 * (`history`) and the manifest's `annotations`. */
function writeOciLayout(dir, tag, text = 'hello from the ferry browser test\n', upstreamFields = {}) {
  const blobs = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const put = (data) => {
    const d = sha256(data);
    fs.writeFileSync(path.join(blobs, d), data);
    return { digest: `sha256:${d}`, size: data.length };
  };
  const tar = tarOf('hello.txt', Buffer.from(text));
  const layer = put(zlib.gzipSync(tar));
  const config = put(Buffer.from(JSON.stringify({
    created: '2024-05-01T12:00:00Z',
    architecture: 'amd64',
    os: 'linux',
    config: { Entrypoint: ['/bin/hello'], Cmd: ['--greet'], ...upstreamFields.config },
    rootfs: { type: 'layers', diff_ids: [`sha256:${sha256(tar)}`] },
    history: upstreamFields.history || [{ created: '2024-05-01T12:00:00Z', created_by: 'COPY hello.txt /' }],
  })));
  const manifest = put(Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
    ...(upstreamFields.annotations && { annotations: upstreamFields.annotations }),
  })));
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      ...manifest,
      annotations: { 'org.opencontainers.image.ref.name': tag },
    }],
  }));
  return { manifest: manifest.digest, layer, config };
}

/** Runs `work(i)` for i in 0..n, at most `width` at a time. */
async function pool(n, width, work) {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) await work(next++);
  }));
}

/** Fails unless `resp` has the status wanted. Reads the body either way:
 * an unread body keeps its connection busy. */
async function expectStatus(resp, status, what) {
  const body = await resp.text();
  if (resp.status !== status) throw new Error(`${what}: HTTP ${resp.status} ${body}`);
}

const skopeo = (...args) => run('skopeo', ['--insecure-policy', ...args]);

async function upstreamDigest(upstream, repo, tag) {
  const resp = await fetch(`${upstream.url}/v2/${repo}/manifests/${tag}`, {
    headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  assert.equal(resp.status, 200);
  return resp.headers.get('docker-content-digest');
}

/** Headless Chromium, as every browser test starts it. */
function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-quic', '--no-first-run'],
  });
}

/** Kills every process the harness started. */
function stopAll() {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
}

export {
  PASSWORD, STEP_TIMEOUT, children, expectStatus, launchChromium, pool, run, skopeo, startFerry, startUpstream,
  stopAll, upstreamDigest, writeOciLayout,
};
