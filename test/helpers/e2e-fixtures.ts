import { test as base, expect, type BrowserContext, type CDPSession, type Page, type Request } from '@playwright/test';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { startTestBackend, TestConsole, type HttpResult, type Json, type TestBackend } from './backend-harness.js';
import { BUNDLE_PATH, CEREMONY_CSP, startCeremonyServer, type CeremonyServer } from './e2e-ceremony-server.js';

/** What the bundled `renderer/ceremony.ts` puts on the page as `window.BatonCeremony`. */
interface CeremonyGlobal {
  runRegistration(options: PublicKeyCredentialCreationOptionsJSON): Promise<RegistrationResponseJSON>;
  runAuthentication(options: PublicKeyCredentialRequestOptionsJSON): Promise<AuthenticationResponseJSON>;
}

declare global {
  interface Window {
    BatonCeremony: CeremonyGlobal;
  }
}

/** The CDP virtual authenticator options these tests use (a subset of WebAuthn.VirtualAuthenticatorOptions). */
export interface AuthenticatorOptions {
  protocol: 'ctap2' | 'u2f';
  transport: 'usb' | 'nfc' | 'ble' | 'internal' | 'cable' | 'hybrid';
  hasResidentKey: boolean;
  hasUserVerification: boolean;
  isUserVerified: boolean;
  automaticPresenceSimulation: boolean;
  defaultBackupEligibility?: boolean;
  defaultBackupState?: boolean;
}

/** A hardware security key: resident keys, UV capable and verified, device-bound (BE=0). */
export const SECURITY_KEY: AuthenticatorOptions = {
  protocol: 'ctap2',
  transport: 'usb',
  hasResidentKey: true,
  hasUserVerification: true,
  isUserVerified: true,
  automaticPresenceSimulation: true,
};

/** One CDP virtual authenticator: one operator's passkey device. */
export class VirtualAuthenticator {
  constructor(
    private readonly cdp: CDPSession,
    readonly id: string,
  ) {}

  /** Whether the next user-verification gesture succeeds (a correct PIN or fingerprint). */
  async setUserVerified(isUserVerified: boolean): Promise<void> {
    await this.cdp.send('WebAuthn.setUserVerified', { authenticatorId: this.id, isUserVerified });
  }

  /**
   * Makes the authenticator answer with the UV flag clear (UP only) while still signing correctly:
   * a user-presence-only assertion. Chromium's virtual authenticator has no other way to give one for
   * a discoverable credential: with `isUserVerified: false` a UV-capable authenticator fails the
   * ceremony (NotAllowedError), and one without UV cannot create a resident key at all.
   */
  async answerWithPresenceOnly(on: boolean): Promise<void> {
    await this.cdp.send('WebAuthn.setResponseOverrideBits', { authenticatorId: this.id, isBadUV: on });
  }

  async credentials(): Promise<{ credentialId: string; isResidentCredential: boolean; signCount: number }[]> {
    const { credentials } = await this.cdp.send('WebAuthn.getCredentials', { authenticatorId: this.id });
    return credentials;
  }
}

/**
 * The console renderer in a real Chromium: a page with no network of its own, on which the browser
 * half of each ceremony runs, plus the CDP session that holds its virtual authenticators.
 */
export class CeremonyPage {
  readonly requests: Request[] = [];
  readonly problems: string[] = [];

  private constructor(
    readonly page: Page,
    readonly cdp: CDPSession,
  ) {
    page.on('request', (request) => this.requests.push(request));
    page.on('pageerror', (error) => this.problems.push(`pageerror: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') this.problems.push(`console.error: ${message.text()}`);
    });
  }

  static async open(context: BrowserContext, page: Page, server: CeremonyServer): Promise<CeremonyPage> {
    const cdp = await context.newCDPSession(page);
    const ceremony = new CeremonyPage(page, cdp);
    const response = await page.goto(`${server.origin}/`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toBe(CEREMONY_CSP);
    await page.waitForFunction(() => typeof window.BatonCeremony?.runAuthentication === 'function');
    await cdp.send('WebAuthn.enable', { enableUI: false });
    return ceremony;
  }

  get origin(): string {
    return new URL(this.page.url()).origin;
  }

  async addAuthenticator(options: Partial<AuthenticatorOptions> = {}): Promise<VirtualAuthenticator> {
    const { authenticatorId } = await this.cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { ...SECURITY_KEY, ...options },
    });
    return new VirtualAuthenticator(this.cdp, authenticatorId);
  }

  register(options: PublicKeyCredentialCreationOptionsJSON): Promise<RegistrationResponseJSON> {
    return this.page.evaluate((o) => window.BatonCeremony.runRegistration(o), options);
  }

  authenticate(options: PublicKeyCredentialRequestOptionsJSON): Promise<AuthenticationResponseJSON> {
    return this.page.evaluate((o) => window.BatonCeremony.runAuthentication(o), options);
  }

  /** Writes a line on the page so the end-of-test screenshot shows what happened. */
  async note(text: string): Promise<void> {
    await this.page.evaluate((line) => {
      const item = document.createElement('li');
      item.textContent = line;
      document.getElementById('log')?.append(item);
    }, text);
  }

  /** The page loaded itself and its bundle, nothing else: every request a same-origin GET. */
  expectNoNetworkOfItsOwn(): void {
    const allowed = new Set(['/', BUNDLE_PATH, '/favicon.ico']);
    const seen = this.requests.map((r) => ({ method: r.method(), url: new URL(r.url()), type: r.resourceType() }));
    expect(seen.filter((r) => ['fetch', 'xhr', 'websocket', 'eventsource'].includes(r.type))).toEqual([]);
    for (const r of seen) {
      expect(r.method).toBe('GET');
      expect(r.url.origin).toBe(this.origin);
      expect(allowed.has(r.url.pathname)).toBe(true);
    }
    expect(this.problems).toEqual([]);
  }
}

/**
 * The console's main process: the only party that talks to the backend, every request signed with
 * the console key. It fetches options, hands them to the renderer and posts back what comes out.
 */
export class ConsoleMain {
  constructor(
    readonly baton: TestBackend,
    readonly console: TestConsole,
  ) {}

  /** Creates an operator and issues an enrolment code, as an administrator would. */
  async newOperator(displayName: string): Promise<{ operatorId: string; code: string }> {
    const { operator } = (await this.baton.admin.ok('POST', '/v1/admin/operators', {
      displayName,
      roles: ['teller'],
    })) as Json;
    const { code } = (await this.baton.admin.ok(
      'POST',
      `/v1/admin/operators/${operator.id as string}/enrolment-codes`,
      {},
    )) as Json;
    return { operatorId: operator.id as string, code: code as string };
  }

  async enrolOptions(code: string): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const { options } = (await this.console.ok('POST', '/v1/operators/enrol/options', { code })) as Json;
    return options as PublicKeyCredentialCreationOptionsJSON;
  }

  /** Runs the registration ceremony on `ceremony` and returns the backend's raw answer. */
  async enrol(ceremony: CeremonyPage, code: string): Promise<HttpResult<Json>> {
    const response = await ceremony.register(await this.enrolOptions(code));
    return this.console.request('POST', '/v1/operators/enrol/verify', { code, response });
  }

  async signInOptions(): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const { options } = (await this.console.ok('POST', '/v1/sign-in/options', {})) as Json;
    return options as PublicKeyCredentialRequestOptionsJSON;
  }

  /** Usernameless sign-in: no user is named, the authenticator offers its discoverable credential. */
  async signIn(ceremony: CeremonyPage): Promise<{ response: AuthenticationResponseJSON; result: HttpResult<Json> }> {
    const response = await ceremony.authenticate(await this.signInOptions());
    return { response, result: await this.console.request('POST', '/v1/sign-in/verify', { response }) };
  }

  async stepUpOptions(sessionId: string, action: string): Promise<Json> {
    return this.console.ok('POST', `/v1/sessions/${sessionId}/step-up/options`, { action });
  }

  async stepUp(
    ceremony: CeremonyPage,
    sessionId: string,
    options: PublicKeyCredentialRequestOptionsJSON,
    action: string,
  ) {
    const response = await ceremony.authenticate(options);
    return this.console.request('POST', `/v1/sessions/${sessionId}/step-up/verify`, { action, response });
  }

  async credentialsOf(operatorId: string): Promise<Json[]> {
    const { credentials } = (await this.baton.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json;
    return credentials as Json[];
  }
}

interface E2EFixtures {
  /** The console renderer page on the pinned origin, with the CDP WebAuthn domain enabled. */
  ceremony: CeremonyPage;
  /** A fresh backend pinned to the renderer's origin, and an enrolled branch-kiosk console. */
  consoleMain: ConsoleMain;
}

interface E2EWorkerFixtures {
  /** The page server for the pinned origin, shared by the worker's tests. */
  renderer: CeremonyServer;
}

export const test = base.extend<E2EFixtures, E2EWorkerFixtures>({
  renderer: [
    // Playwright reads fixture dependencies from the first parameter's destructuring pattern.
    // eslint-disable-next-line no-empty-pattern
    async ({}, use) => {
      const server = await startCeremonyServer();
      await use(server);
      await server.close();
    },
    { scope: 'worker' },
  ],
  consoleMain: async ({ renderer }, use) => {
    const baton = await startTestBackend({ origins: [renderer.origin] });
    try {
      const console = await TestConsole.enrol(baton.url, baton.admin, 'branch-kiosk');
      await use(new ConsoleMain(baton, console));
    } finally {
      await baton.stop();
    }
  },
  ceremony: async ({ context, page, renderer }, use, testInfo) => {
    const ceremony = await CeremonyPage.open(context, page, renderer);
    await use(ceremony);
    const path = testInfo.outputPath('end-of-test.png');
    await page.screenshot({ path, fullPage: true });
    await testInfo.attach('end-of-test', { path, contentType: 'image/png' });
  },
});

export { expect };
