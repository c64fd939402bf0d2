import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { buildRenderer } from '../../main/ui/build-renderer.js';
import { DevBridge } from '../../main/ui/dev-bridge.js';
import { startUiServer, type UiServer } from '../../main/ui/ui-server.js';
import { DEV_BRIDGE_MAX_PAYLOAD, DEV_BRIDGE_PATH } from '../../shared/dev-bridge-protocol.js';
import { MemorySecretStore } from '../helpers/agent-rig.js';
import { startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';

/** A page (or an attacker) on the bridge socket: sends calls, collects replies and pushed events. */
class BridgePeer {
  readonly frames: Json[] = [];
  private waiters: { test: (f: Json) => boolean; resolve: (f: Json) => void }[] = [];
  private nextId = 1;
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const frame = JSON.parse((data as Buffer).toString('utf8')) as Json;
      this.frames.push(frame);
      this.waiters = this.waiters.filter((w) => (w.test(frame) ? (w.resolve(frame), false) : true));
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  }

  /** `origin: null` sends no Origin header at all (a program, not a browser page). */
  static connect(ui: UiServer, origin: string | null = ui.origin): Promise<BridgePeer> {
    const ws = new WebSocket(`ws://localhost:${ui.port}${DEV_BRIDGE_PATH}`, {
      ...(origin === null ? {} : { origin }),
      perMessageDeflate: false,
      maxPayload: 1 << 20,
    });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new BridgePeer(ws)));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`refused: ${res.statusCode}`)));
      ws.once('error', reject);
    });
  }

  next(test: (f: Json) => boolean, ms = 5000): Promise<Json> {
    const found = this.frames.find(test);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no such frame')), ms);
      this.waiters.push({ test, resolve: (f) => (clearTimeout(timer), resolve(f)) });
    });
  }

  async call(channel: unknown, payload?: unknown): Promise<Json> {
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ id, channel, payload }));
    return (await this.next((f) => f.id === id)).result;
  }

  async sendRaw(data: string | Buffer): Promise<Json> {
    const seen = this.frames.length;
    this.ws.send(data);
    return (await this.next((f) => this.frames.indexOf(f) >= seen && f.id === null)).result;
  }

  async close(): Promise<void> {
    this.ws.close();
    await this.closed;
  }
}

/** Polls (the bridge's own view of its socket) until `test` holds. */
async function until(test: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!test()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('the development bridge (the IPC contract over a loopback WebSocket)', () => {
  let backend: TestBackend;
  let ui: UiServer;
  let bridge: DevBridge;
  const dirs: string[] = [];

  before(async () => {
    const uiDir = mkdtempSync(join(tmpdir(), 'baton-ui-dev-'));
    const dataDir = mkdtempSync(join(tmpdir(), 'baton-agent-'));
    dirs.push(uiDir, dataDir);
    await buildRenderer(uiDir, { development: true });
    ui = await startUiServer({ dir: uiDir, devBridge: true });
    backend = await startTestBackend({ origins: [ui.origin] });
    const { token } = (await backend.admin.ok('POST', '/v1/admin/console-tokens', { channel: 'branch-kiosk' })) as Json;
    bridge = await DevBridge.start({
      ui,
      agent: { backendUrl: backend.url, channel: 'branch-kiosk', dataDir, agentVersion: 'test', enrolmentToken: token },
      deps: { secrets: new MemorySecretStore() },
    });
  });

  after(async () => {
    await bridge.close();
    await ui.close();
    await backend.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  test('refuses a socket from another origin, or one that does not say where it comes from', async () => {
    for (const origin of [
      null,
      'http://evil.example',
      `http://127.0.0.1:${ui.port}`,
      'null',
      `https://localhost:${ui.port}`,
    ]) {
      await assert.rejects(BridgePeer.connect(ui, origin), /refused: 403/, String(origin));
    }
    assert.equal(bridge.connected, false);
  });

  test('refuses to start on a production UI server (no bridge in the CSP)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-ui-'));
    dirs.push(dir);
    await buildRenderer(dir);
    const prod = await startUiServer({ dir });
    try {
      await assert.rejects(
        DevBridge.start({
          ui: prod,
          agent: { backendUrl: backend.url, channel: 'branch-kiosk', dataDir: dir, agentVersion: 'test' },
          deps: { secrets: new MemorySecretStore() },
        }),
        /needs a UI server started with devBridge: true/,
      );
    } finally {
      await prod.close();
    }
  });

  test('carries the contract: status on request and pushed; answers with IpcResults', async () => {
    const page = await BridgePeer.connect(ui);
    try {
      const status = await page.call('agent:get-status', {});
      assert.equal(status.ok, true);
      assert.equal(status.value.identity.kind, 'enrolled');
      assert.doesNotMatch(JSON.stringify(status.value), /token|privateKey|credentialId/i);
      // Locking with nobody signed in is a no-op, and answers ok.
      assert.deepEqual(await page.call('session:lock', {}), { ok: true, value: {} });
      // Stepping up with nobody in front is refused in words, and the pushed status carries the notice.
      const refused = await page.call('action:authorize', { action: 'payment.approve' });
      assert.deepEqual(refused.value.outcome, 'refused');
      assert.equal(refused.value.code, 'NO_SESSION_IN_FRONT');
      // The status carrying the notice was pushed before that answer, but the page has not said
      // it is ready (subscribed): it was held, not sent and not dropped. `ui:ready` delivers it.
      assert.deepEqual(
        page.frames.filter((f) => f.event !== undefined),
        [],
        'nothing is pushed before ui:ready',
      );
      assert.deepEqual(await page.call('ui:ready', {}), { ok: true, value: {} });
      const pushed = await page.next(
        (f) => f.event === 'agent:status' && f.payload.notice?.code === 'NO_SESSION_IN_FRONT',
      );
      assert.equal(pushed.payload.identity.kind, 'enrolled');
    } finally {
      await page.close();
    }
  });

  test('bad JSON, a bad envelope, an unknown or forbidden channel and bad arguments get stable codes; the socket stays up', async () => {
    const page = await BridgePeer.connect(ui);
    try {
      assert.equal((await page.sendRaw('{not json')).error.code, 'BAD_JSON');
      assert.equal((await page.sendRaw(Buffer.from([1, 2, 3]))).error.code, 'BAD_JSON');
      assert.equal((await page.sendRaw(JSON.stringify({ channel: 'agent:get-status' }))).error.code, 'SCHEMA_INVALID');
      assert.equal((await page.sendRaw(JSON.stringify([1, 2]))).error.code, 'SCHEMA_INVALID');
      assert.equal(
        (await page.sendRaw(JSON.stringify({ id: -1, channel: 'agent:get-status' }))).error.code,
        'SCHEMA_INVALID',
      );
      assert.equal((await page.call('agent:delete-everything', {})).error.code, 'NOT_FOUND');
      assert.equal((await page.call('__proto__', {})).error.code, 'NOT_FOUND');
      // A workspace channel is not the operator UI's.
      assert.equal((await page.call('workspace:get-assurance', {})).error.code, 'NOT_FOUND');
      assert.equal((await page.call('console:enrol', { token: 5 })).error.code, 'SCHEMA_INVALID');
      assert.equal((await page.call('action:authorize', { action: 'Approve Payment!' })).error.code, 'SCHEMA_INVALID');
      assert.equal((await page.call('session:tap-in', { operator: 'someone-else' })).error.code, 'SCHEMA_INVALID');
      const answer = await page.call('ceremony:answer', {
        requestId: '6f1c1a5e-2a0b-4c7e-9d7e-1a2b3c4d5e6f',
        outcome: 'ok',
        response: {},
      });
      assert.equal(answer.error.code, 'CHALLENGE_UNKNOWN');
      assert.equal((await page.call('agent:get-status', {})).ok, true);
    } finally {
      await page.close();
    }
  });

  test('one page at a time', async () => {
    const first = await BridgePeer.connect(ui);
    try {
      await assert.rejects(BridgePeer.connect(ui), /refused: 409/);
    } finally {
      await first.close();
    }
    await until(() => !bridge.connected);
    const second = await BridgePeer.connect(ui);
    await second.close();
  });

  test('an oversized frame closes the socket (1009) without harming the agent', async () => {
    const page = await BridgePeer.connect(ui);
    page.ws.send(
      JSON.stringify({ id: 1, channel: 'operator:enrol', payload: { code: 'x'.repeat(DEV_BRIDGE_MAX_PAYLOAD) } }),
    );
    assert.equal((await page.closed).code, 1009);
    await until(() => !bridge.connected);
    const again = await BridgePeer.connect(ui);
    assert.equal((await again.call('agent:get-status', {})).value.connection, bridge.agent.status.connection);
    await again.close();
  });

  test('a page that goes away mid-tap cancels the ceremony instead of leaving the console waiting', async () => {
    const page = await BridgePeer.connect(ui);
    await page.call('ui:ready', {});
    page.ws.send(JSON.stringify({ id: 1, channel: 'session:tap-in', payload: {} }));
    const request = await page.next((f) => f.event === 'ceremony:request');
    assert.equal(request.payload.kind, 'get');
    assert.equal(request.payload.purpose, 'sign-in');
    page.ws.terminate();
    await page.closed;
    await until(() => bridge.agent.status.phase.kind === 'idle');
    assert.equal(bridge.agent.status.notice?.code, 'CEREMONY_CANCELLED');
  });
});
