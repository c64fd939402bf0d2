import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildRenderer } from '../../main/ui/build-renderer.js';
import { startUiServer, type UiServer } from '../../main/ui/ui-server.js';

/** A raw HTTP request: the path goes on the wire exactly as given (no normalisation by a client). */
function raw(
  server: UiServer,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: server.port, method, path, headers: { host: `localhost:${server.port}`, ...headers } },
      (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('the UI server (what the shell and the dev bridge serve the operator UI with)', () => {
  let dir: string;
  let devDir: string;
  let prod: UiServer;
  let dev: UiServer;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-ui-'));
    devDir = mkdtempSync(join(tmpdir(), 'baton-ui-dev-'));
    await buildRenderer(dir);
    await buildRenderer(devDir, { development: true });
    // A stray file in the production directory is never served.
    writeFileSync(join(dir, 'dev-bridge-client.js'), 'window.baton = {}');
    writeFileSync(join(dir, 'secret.txt'), 'not for the page');
    prod = await startUiServer({ dir });
    dev = await startUiServer({ dir: devDir, devBridge: true });
  });

  after(async () => {
    await prod.close();
    await dev.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(devDir, { recursive: true, force: true });
  });

  test('listens on loopback only and names its origin as localhost (WebAuthn refuses 127.0.0.1)', () => {
    assert.equal((prod.server.address() as { address: string }).address, '127.0.0.1');
    assert.equal(prod.origin, `http://localhost:${prod.port}`);
  });

  test('serves the page with a strict CSP: own scripts only, no inline code or eval, no framing, no network', async () => {
    const res = await raw(prod, 'GET', '/');
    assert.equal(res.status, 200);
    assert.match(res.body, /<script src="operator-ui.js" defer><\/script>/);
    assert.doesNotMatch(res.body, /dev-bridge-client/);
    const csp = String(res.headers['content-security-policy']);
    assert.equal(
      csp,
      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'none'; " +
        "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    );
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|ws:/);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(res.headers['x-frame-options'], 'DENY');
    assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
    for (const [path, type] of [
      ['/operator-ui.js', 'text/javascript; charset=utf-8'],
      ['/operator-ui.css', 'text/css; charset=utf-8'],
      ['/favicon.svg', 'image/svg+xml'],
    ] as const) {
      const asset = await raw(prod, 'GET', path);
      assert.equal(asset.status, 200, path);
      assert.equal(asset.headers['content-type'], type);
      assert.equal(asset.headers['content-security-policy'], csp);
    }
  });

  test('the production server never serves the dev bridge client, even when the file is there', async () => {
    assert.equal((await raw(prod, 'GET', '/dev-bridge-client.js')).status, 404);
    assert.equal((await raw(prod, 'GET', '/secret.txt')).status, 404);
  });

  test('in development the page may open the bridge socket on its own origin, and nothing else', async () => {
    const res = await raw(dev, 'GET', '/');
    assert.match(res.body, /<script src="dev-bridge-client.js" defer><\/script>\s*<script src="operator-ui.js"/);
    assert.match(
      String(res.headers['content-security-policy']),
      new RegExp(`connect-src 'self' ws://localhost:${dev.port};`),
    );
    assert.equal((await raw(dev, 'GET', '/dev-bridge-client.js')).status, 200);
  });

  test('refuses directory traversal and anything that is not a built file', async () => {
    for (const path of [
      '/../package.json',
      '/..%2fpackage.json',
      '/%2e%2e/%2e%2e/etc/passwd',
      '//etc/passwd',
      '/operator-ui.js/../index.html',
      '/.%2Foperator-ui.js',
      '/..\\..\\package.json',
      '/index.html%00.js',
      '/__proto__',
      '/constructor',
      '/secret.txt',
      '/OPERATOR-UI.JS',
    ]) {
      const res = await raw(prod, 'GET', path);
      assert.equal(res.status, 404, path);
      assert.equal(res.body, 'Not found\n', path);
      assert.ok(res.headers['content-security-policy'], `${path}: a 404 carries the CSP too`);
    }
  });

  test('allows GET and HEAD only', async () => {
    const head = await raw(prod, 'HEAD', '/operator-ui.js');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE']) {
      const res = await raw(prod, method, '/');
      assert.equal(res.status, 405, method);
      assert.equal(res.headers.allow, 'GET, HEAD');
    }
  });

  test('refuses a request for another host name (a DNS-rebinding page reaching loopback)', async () => {
    const res = await raw(prod, 'GET', '/', { host: `evil.example:${prod.port}` });
    assert.equal(res.status, 421);
    assert.doesNotMatch(res.body, /operator-ui/);
  });

  test('says plainly when the UI has not been built', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'baton-ui-empty-'));
    try {
      await assert.rejects(startUiServer({ dir: empty }), /The operator UI is not built .*npm run build:renderer/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
