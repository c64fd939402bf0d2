import { randomUUID } from 'node:crypto';
import { SignJWT, importJWK, type CryptoKey, type JWK } from 'jose';
import { ReconnectLoop } from './reconnect.js';
import { RevocationList, type RevocableToken, type Revocation } from './revocation-list.js';
import type { RevocationSource } from './verifier.js';

/** The `aud` of an app server's login to Baton's revocation stream. */
export const REVOCATION_STREAM_AUDIENCE = 'urn:baton:token-revocations';
/** The stream's path on Baton's backend. */
export const REVOCATION_STREAM_PATH = '/v1/tokens/revocations';

export interface RevocationSubscriptionOptions {
  /** Baton's backend, e.g. `https://baton.bank.example` (the stream is at /v1/tokens/revocations). */
  batonUrl: string | URL;
  /** This app's audience (`apps[].audience`): the login's `iss` and `sub`. */
  audience: string;
  /** The private half of the app's `revocationKey` (EC P-256), as a JWK or a key. */
  privateKey: JWK | CryptoKey;
  /** Where revocations are applied (default a new one). */
  list?: RevocationList;
  /** Called on every connection failure (the subscription retries by itself). */
  onError?: (error: Error) => void;
  /** Called after each revocation is applied (tests, metrics). */
  onRevocation?: (revocation: Revocation) => void;
  /** Delay before reconnecting, doubled up to `maxRetryMs` (defaults 250 ms and 5 s). */
  retryMs?: number;
  maxRetryMs?: number;
  clock?: () => number;
}

/**
 * Follows Baton's revocation stream (server-sent events) and keeps a `RevocationList` current:
 * each revocation is applied the moment it arrives, so a verifier using this subscription refuses a
 * revoked session's token within milliseconds of the revocation, long before the token expires.
 * Reconnects by itself with `Last-Event-ID` (nothing is missed across a drop), logging in again
 * each time with a fresh, single-use JWT signed by the app's key.
 */
export class RevocationSubscription implements RevocationSource {
  readonly list: RevocationList;
  /** Resolves when the first connection has been accepted (its catch-up applied). */
  readonly ready: Promise<void>;
  private markReady!: () => void;
  private abort: AbortController | undefined;
  private readonly clock: () => number;
  private readonly loop: ReconnectLoop;
  private key: Promise<CryptoKey | Uint8Array> | undefined;

  constructor(private readonly options: RevocationSubscriptionOptions) {
    this.clock = options.clock ?? Date.now;
    this.list = options.list ?? new RevocationList(this.clock);
    this.loop = new ReconnectLoop(this.clock, options);
    this.ready = new Promise((resolve) => (this.markReady = resolve));
    void this.loop.run(() => this.connectOnce());
  }

  get connected(): boolean {
    return this.loop.connected;
  }

  refuses(token: RevocableToken): string | undefined {
    return this.list.refuses(token);
  }

  downForMs(): number {
    return this.loop.downForMs();
  }

  close(): void {
    this.loop.close();
    this.abort?.abort();
  }

  private async login(): Promise<string> {
    const given = this.options.privateKey;
    this.key ??= isJwk(given) ? importJWK({ ...given, alg: 'ES256' }, 'ES256') : Promise.resolve(given);
    const now = Math.floor(this.clock() / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
      .setIssuer(this.options.audience)
      .setSubject(this.options.audience)
      .setAudience(REVOCATION_STREAM_AUDIENCE)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(await this.key);
  }

  /** One connection to the stream, read until it drops (it never returns: the loop retries). */
  private async connectOnce(): Promise<void> {
    const url = new URL(REVOCATION_STREAM_PATH, this.options.batonUrl);
    this.abort = new AbortController();
    const headers: Record<string, string> = {
      accept: 'text/event-stream',
      authorization: `Bearer ${await this.login()}`,
    };
    if (this.list.epoch > 0) headers['last-event-id'] = String(this.list.epoch);
    const response = await fetch(url, { headers, signal: this.abort.signal });
    if (!response.ok || response.body === null) {
      const text = await response.text().catch(() => '');
      throw new Error(`Baton's revocation stream answered ${response.status}: ${text.slice(0, 300)}`);
    }
    this.loop.accepted();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error("Baton's revocation stream ended");
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        this.handle(block);
      }
    }
  }

  private handle(block: string): void {
    let event = 'message';
    let data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data += data === '' ? value : `\n${value}`;
    }
    if (event === 'hello') {
      this.loop.up();
      this.markReady();
    } else if (event === 'revocation') {
      const revocation = JSON.parse(data) as Revocation;
      this.list.apply(revocation);
      this.options.onRevocation?.(revocation);
    }
  }
}

function isJwk(key: JWK | CryptoKey): key is JWK {
  return 'kty' in key;
}
