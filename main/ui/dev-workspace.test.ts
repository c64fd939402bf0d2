import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { IpcCaller } from '../core/ipc-dispatcher.js';
import type { DevBridge } from './dev-bridge.js';
import { csp, startDevWorkspace, type DevWorkspace } from './dev-workspace.js';

/**
 * The development stand-in for the workspace preload: what a workspace page gets (window.baton in
 * its HTML, its CSP loosened only for that), and what another page, another Host or a stale page is
 * refused. The agent side is a recording stand-in here; the real agent is in test/e2e/teller-app.spec.ts.
 */
describe('dev workspace (development stand-in for the workspace preload)', () => {
  let app: Server;
  let ws: DevWorkspace;
  const calls: { channel: unknown; caller: IpcCaller }[] = [];
  let front: { id: string } | undefined = { id: 'ses_ada' };
  let activity = 0;
  let appOrigin = '';

  before(async () => {
    app = createServer((req, res) => {
      if (req.url === '/') {
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'content-security-policy': "default-src 'self'; script-src 'nonce-abc'",
        });
        res.end('<!doctype html><html><head><title>App</title></head><body>hello</body></html>');
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ path: req.url, auth: req.headers.authorization ?? null }));
      }
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    const bridge = {
      agent: {
        get status() {
          return { front };
        },
        noteActivity: () => activity++,
      },
      dispatcher: {
        dispatch: (channel: unknown, _payload: unknown, caller: IpcCaller) => {
          calls.push({ channel, caller });
          return Promise.resolve({ ok: true, value: null });
        },
      },
    } as unknown as DevBridge;
    appOrigin = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
    ws = await startDevWorkspace({ bridge, appUrl: `${appOrigin}/` });
  });
  after(async () => {
    await ws?.close();
    app?.closeAllConnections();
    await new Promise<void>((resolve) => app.close(() => resolve()));
  });

  async function page(): Promise<{ id: string; csp: string; html: string }> {
    const res = await fetch(ws.url);
    const html = await res.text();
    const id = /const page = "([^"]+)"/.exec(html)?.[1] ?? '';
    return { id, csp: res.headers.get('content-security-policy') ?? '', html };
  }

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${ws.origin}/__baton/${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: ws.origin, ...headers },
      body: JSON.stringify(body),
    });

  it("puts window.baton into the app's HTML, allows it by hash, and passes everything else through", async () => {
    const { id, csp: policy, html } = await page();
    assert.ok(id.length > 20);
    assert.match(html, /^<!doctype html><html><head><script>\(\(\) => \{/);
    assert.match(html, /Object\.defineProperty\(window, 'baton'/);
    assert.match(policy, /script-src 'nonce-abc' 'sha256-[A-Za-z0-9+/=]+'/);
    assert.match(policy, /connect-src 'self'/);
    const api = await fetch(`${ws.url}api/x`, { headers: { authorization: 'Bearer t' } });
    assert.deepEqual(await api.json(), { path: '/api/x', auth: 'Bearer t' });
  });

  it("calls the agent as the page's own workspace session", async () => {
    const { id } = await page();
    const res = await post('ipc', { page: id, channel: 'workspace:action-token', payload: {} });
    assert.equal(res.status, 200);
    assert.deepEqual(calls.at(-1), {
      channel: 'workspace:action-token',
      caller: { kind: 'workspace', sessionId: 'ses_ada', origin: appOrigin },
    });
    // Another operator in front: the page keeps its own session (the dispatcher then refuses it).
    front = { id: 'ses_bob' };
    await post('ipc', { page: id, channel: 'workspace:get-assurance', payload: {} });
    assert.deepEqual(calls.at(-1)?.caller, { kind: 'workspace', sessionId: 'ses_ada', origin: appOrigin });
    const before = activity;
    await post('activity', { page: id });
    assert.equal(activity, before, "input in Ada's page does not keep Bob's session alive");
    front = { id: 'ses_ada' };
    await post('activity', { page: id });
    assert.equal(activity, before + 1);
  });

  it('refuses another origin, another Host, a page it did not serve, and non-JSON', async () => {
    const { id } = await page();
    const count = calls.length;
    const cross = await post('ipc', { page: id, channel: 'workspace:action-token' }, { origin: 'http://evil.example' });
    assert.equal(cross.status, 403);
    const stale = await post('ipc', { page: 'made-up', channel: 'workspace:action-token' });
    assert.equal(stale.status, 403);
    const text = await post('ipc', { page: id }, { 'content-type': 'text/plain' });
    assert.equal(text.status, 415);
    const rebinding = await new Promise<number>((resolve, reject) => {
      request(ws.url, { headers: { host: 'attacker.example' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });
    assert.equal(rebinding, 421);
    assert.equal(calls.length, count, 'nothing reached the agent');
  });

  it('csp(): keeps inline-allowing policies as they are and adds only what the stand-in needs', () => {
    assert.equal(
      csp("default-src 'self'; script-src 'unsafe-inline'", 'H'),
      "default-src 'self'; script-src 'unsafe-inline'; connect-src 'self'",
    );
    assert.equal(csp("default-src 'none'", 'H'), "default-src 'none'; script-src 'sha256-H'; connect-src 'self'");
    assert.equal(
      csp("script-src-elem 'self'; connect-src https://api", 'H'),
      "script-src-elem 'self' 'sha256-H'; connect-src https://api 'self'",
    );
  });
});
