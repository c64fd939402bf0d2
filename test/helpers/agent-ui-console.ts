import { rmSync } from 'node:fs';
import type { BrowserContext, CDPSession, Page } from '@playwright/test';
import { buildRenderer } from '../../main/ui/build-renderer.js';
import { DevBridge } from '../../main/ui/dev-bridge.js';
import { startUiServer, type UiServer } from '../../main/ui/ui-server.js';
import { MemorySecretStore, reconnectOnClock } from './agent-rig.js';
import { startTestBackend, type Json, type TestBackend } from './backend-harness.js';
import { SECURITY_KEY, type AuthenticatorOptions } from './e2e-fixtures.js';
import { FakeClock } from './fake-clock.js';
import { TcpProxy } from './tcp-proxy.js';
import { tempDir } from './temp-dir.js';

let built: Promise<string> | undefined;

/** The dev renderer, built once per process exactly as `npm run build:renderer` builds it. */
export function devRendererDir(): Promise<string> {
  built ??= (async () => {
    const dir = tempDir('baton-renderer-dev-');
    await buildRenderer(dir, { development: true });
    return dir;
  })();
  return built;
}

/** CDP's stored form of a credential (WebAuthn.Credential), kept while the key is unplugged. */
interface StoredCredential {
  credentialId: string;
  isResidentCredential: boolean;
  rpId?: string;
  privateKey: string;
  userHandle?: string;
  signCount: number;
}

/**
 * One operator's security key as a CDP virtual authenticator. Only one key is plugged in at a
 * time (Chromium would otherwise pick among them): `plugIn()` recreates the authenticator with its
 * credentials and counters, `unplug()` removes it and keeps them.
 */
export class VirtualKey {
  private credentials: StoredCredential[] = [];
  id: string | undefined;

  constructor(
    private readonly cdp: CDPSession,
    readonly owner: string,
    private readonly options: AuthenticatorOptions = SECURITY_KEY,
  ) {}

  async plugIn(): Promise<void> {
    if (this.id !== undefined) return;
    const { authenticatorId } = await this.cdp.send('WebAuthn.addVirtualAuthenticator', { options: this.options });
    this.id = authenticatorId;
    for (const credential of this.credentials) {
      await this.cdp.send('WebAuthn.addCredential', { authenticatorId, credential });
    }
  }

  async unplug(): Promise<void> {
    if (this.id === undefined) return;
    const { credentials } = await this.cdp.send('WebAuthn.getCredentials', { authenticatorId: this.id });
    this.credentials = credentials as StoredCredential[];
    await this.cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: this.id });
    this.id = undefined;
  }

  /** Whether the next PIN or fingerprint check succeeds. */
  async setUserVerified(isUserVerified: boolean): Promise<void> {
    await this.cdp.send('WebAuthn.setUserVerified', { authenticatorId: this.plugged(), isUserVerified });
  }

  /** Answers with the UV flag clear (a plain touch), still signing correctly. */
  async presenceOnly(on: boolean): Promise<void> {
    await this.cdp.send('WebAuthn.setResponseOverrideBits', { authenticatorId: this.plugged(), isBadUV: on });
  }

  private plugged(): string {
    if (this.id === undefined) throw new Error(`${this.owner}'s key is not plugged in`);
    return this.id;
  }
}

/**
 * A console under test: a real backend on a fake clock the agent shares, the real agent core in
 * this process behind the dev bridge (through a TCP relay the test can cut), and the operator UI
 * served by the UI server exactly as the shell serves it, open in a Chromium page.
 */
export class UiConsole {
  readonly keys: VirtualKey[] = [];
  readonly problems: string[] = [];

  private constructor(
    readonly clock: FakeClock,
    readonly backend: TestBackend,
    readonly proxy: TcpProxy,
    readonly ui: UiServer,
    readonly bridge: DevBridge,
    readonly page: Page,
    readonly cdp: CDPSession,
    private readonly dataDir: string,
  ) {
    page.on('pageerror', (error) => this.problems.push(`pageerror: ${error.message}`));
    // The renderer has no network of its own: its own files, and (development only) the bridge socket.
    page.on('request', (request) => {
      const url = new URL(request.url());
      const own = ['/', '/operator-ui.js', '/operator-ui.css', '/favicon.svg', '/dev-bridge-client.js'];
      if (request.method() !== 'GET' || url.origin !== ui.origin || !own.includes(url.pathname)) {
        this.problems.push(`request of its own: ${request.method()} ${request.url()}`);
      }
    });
    page.on('websocket', (socket) => {
      if (socket.url() !== `ws://localhost:${ui.port}/bridge`) this.problems.push(`websocket: ${socket.url()}`);
    });
    page.on('console', (message) => {
      if (message.type() === 'error') this.problems.push(`console.error: ${message.text()}`);
    });
  }

  static async open(
    context: BrowserContext,
    page: Page,
    channel = 'branch-kiosk',
    /** More backend configuration (e.g. `adminConsoleDir` for a spec that also opens the admin console). */
    backendConfig: Record<string, unknown> = {},
  ): Promise<UiConsole> {
    const ui = await startUiServer({ dir: await devRendererDir(), devBridge: true });
    const clock = new FakeClock(Date.now());
    const backend = await startTestBackend({ origins: [ui.origin], ...backendConfig }, { clock: () => clock.now() });
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port: backend.backend.port });
    const dataDir = tempDir('baton-agent-ui-');
    const bridge = await DevBridge.start({
      ui,
      agent: { backendUrl: proxy.url, channel, dataDir, agentVersion: 'e2e' },
      deps: { secrets: new MemorySecretStore(), clock, random: () => 0.5 },
    });
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    const console = new UiConsole(clock, backend, proxy, ui, bridge, page, cdp, dataDir);
    await page.goto(ui.url);
    return console;
  }

  key(owner: string, options?: AuthenticatorOptions): VirtualKey {
    const key = new VirtualKey(this.cdp, owner, options);
    this.keys.push(key);
    return key;
  }

  /** Unplugs every other key and plugs this one in: the next tap is `key`'s. */
  async use(key: VirtualKey): Promise<VirtualKey> {
    for (const other of this.keys) if (other !== key) await other.unplug();
    await key.plugIn();
    return key;
  }

  async consoleToken(channel = 'branch-kiosk'): Promise<string> {
    const { token } = (await this.backend.admin.ok('POST', '/v1/admin/console-tokens', { channel })) as Json;
    return token as string;
  }

  /** An operator and a one-time enrolment code, as an admin would issue them. */
  async newOperator(displayName: string): Promise<{ operatorId: string; code: string }> {
    const { operator } = (await this.backend.admin.ok('POST', '/v1/admin/operators', {
      displayName,
      roles: ['teller'],
    })) as Json;
    const { code } = (await this.backend.admin.ok(
      'POST',
      `/v1/admin/operators/${operator.id as string}/enrolment-codes`,
      {},
    )) as Json;
    return { operatorId: operator.id as string, code: code as string };
  }

  async revoke(kind: 'sessions' | 'operators' | 'credentials' | 'consoles', id: string): Promise<void> {
    await this.backend.admin.ok('POST', `/v1/admin/${kind}/${encodeURIComponent(id)}/revoke`, { reason: 'e2e' });
  }

  /** Moves the agent's clock on in steps (its reconnect backoff runs on it) until it is online again. */
  reconnect(ms = 20_000): Promise<void> {
    return reconnectOnClock(this.bridge.agent, this.clock, ms);
  }

  async close(): Promise<void> {
    await this.bridge.close();
    await this.ui.close();
    await this.proxy.stop();
    await this.backend.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
