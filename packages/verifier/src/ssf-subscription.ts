import { createRemoteJWKSet } from 'jose';
import { KeysWait, missingEvents, SetApplier, SetRefused, SSF_REVOCATION_EVENTS } from './ssf-sets.js';
import { ReconnectLoop } from './reconnect.js';
import { RevocationList, TOKEN_HORIZON_MS, type RevocableToken, type Revocation } from './revocation-list.js';
import type { RevocationSource } from './verifier.js';

/** How long the status read after an empty poll may take before it counts as failed. */
const STATUS_READ_TIMEOUT_MS = 10_000;

/** RFC 8936 poll delivery. */
export const SSF_POLL_METHOD = 'urn:ietf:rfc:8936';
export { SSF_REVOCATION_EVENTS };

export interface SsfSubscriptionOptions {
  /** Baton's Shared Signals issuer, e.g. `https://baton.bank.example` (it serves /.well-known/ssf-configuration). */
  batonUrl: string | URL;
  /**
   * A receiver token the Baton admin issued for this app (`POST /v1/admin/ssf/receivers`): `ssf.manage`
   * lets the subscription find or create its poll stream; `ssf.read` is enough with `streamId`.
   */
  token: string;
  /** An existing poll stream of this receiver; without it, the receiver's first poll stream asking for session-revoked is used, or one is created. */
  streamId?: string;
  /** Where revocations are applied (default a new one; share one with a `RevocationSubscription` to follow both). */
  list?: RevocationList;
  /** SET signature algorithms accepted (default RS256 and ES256, what Baton's transmitter signs with). */
  algorithms?: string[];
  /** Called on every failure (the subscription retries by itself) and on every SET it refuses. */
  onError?: (error: Error) => void;
  /** Called after each revocation is applied (tests, metrics). */
  onRevocation?: (revocation: Revocation) => void;
  /** Delay before retrying, doubled up to `maxRetryMs` (defaults 250 ms and 5 s). */
  retryMs?: number;
  maxRetryMs?: number;
  clock?: () => number;
}

interface SsfConfiguration {
  issuer: string;
  jwks_uri: string;
  configuration_endpoint: string;
  status_endpoint?: string;
}

interface StreamView {
  stream_id: string;
  aud: string | string[];
  delivery: { method: string; endpoint_url?: string };
  events_supported?: string[];
  events_requested?: string[];
  events_delivered?: string[];
}

/**
 * Follows Baton's Shared Signals stream (SSF 1.0, CAEP) by polling (RFC 8936) and keeps a
 * `RevocationList` current, as `RevocationSubscription` does from Baton's own feed. Every SET is
 * verified against Baton's SSF JWKS (`typ` secevent+jwt, `iss`, the stream's `aud`), then:
 * - CAEP `session-revoked`: the session (`sub_id.session`) is refused;
 * - CAEP `credential-change` with `change_type` `revoke` or `delete`: the operator's (`sub_id.user`) tokens issued up to then;
 * - CAEP `device-compliance-change` to `not-compliant`: the console's (`sub_id.device`) tokens issued up to then;
 * - `urn:baton:event:operator-revoked`: the operator's tokens issued up to then.
 * A SET is acknowledged only once applied; one that fails verification is reported in `setErrs`; one that cannot be
 * checked because Baton's keys cannot be had now is left to be handed out again, and counts in `downForMs()`.
 * Long polls (`returnImmediately: false`), so a revocation arrives as soon as Baton has queued it.
 * Service-account revocations are not Shared Signals events: they come only on Baton's own feed.
 */
export class SsfSubscription implements RevocationSource {
  readonly list: RevocationList;
  /** Resolves when the stream is found or created and the first poll has been answered. */
  readonly ready: Promise<void>;
  /** The stream followed, once known. */
  streamId: string | undefined;
  private markReady!: () => void;
  private abort: AbortController | undefined;
  private readonly clock: () => number;
  private readonly loop: ReconnectLoop;
  private readonly sets: SetApplier;
  private setUpDone: Awaited<ReturnType<SsfSubscription['setUp']>> | undefined;
  private jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  private ack: string[] = [];
  private setErrs: Record<string, { err: string; description: string }> = {};
  /** The SETs handed out that wait for Baton's keys. */
  private readonly keysWait: KeysWait;
  /**
   * Since when the stream may have been paused or disabled at Baton (SSF 1.0 §8.1.2.1: it holds or drops its events,
   * so revocations go unheard meanwhile): the last moment it was known enabled before Baton said so. Undefined while
   * it is enabled.
   */
  private notEnabledSince: number | undefined;
  /** The last moment the stream was known enabled (SETs arrived, or the status said so). */
  private enabledAt: number;
  /** Baton said `disabled` since the stream was last known enabled: what it dropped meanwhile is never heard. */
  private sawDisabled = false;
  /**
   * After a disable: from when, and until when, the stream still counts as unheard once enabled again (every token
   * issued before it was enabled has expired by then: a revocation the disable dropped could concern any of them).
   * Apart from `notEnabledSince`, which a later pause sets again.
   */
  private gap: { since: number; until: number } | undefined;

  constructor(private readonly options: SsfSubscriptionOptions) {
    this.clock = options.clock ?? Date.now;
    this.list = options.list ?? new RevocationList(this.clock);
    this.loop = new ReconnectLoop(this.clock, options);
    this.keysWait = new KeysWait(this.clock);
    this.enabledAt = this.clock();
    this.ready = new Promise((resolve) => (this.markReady = resolve));
    this.sets = new SetApplier({
      list: this.list,
      clock: this.clock,
      ...(options.algorithms === undefined ? {} : { algorithms: options.algorithms }),
      ...(options.onRevocation === undefined ? {} : { onRevocation: options.onRevocation }),
    });
    void this.loop.run(() => this.pollOnce());
  }

  get connected(): boolean {
    return this.loop.connected;
  }

  refuses(token: RevocableToken): string | undefined {
    return this.list.refuses(token);
  }

  /**
   * How long revocations may have gone unheard: the stream down, a SET waiting for Baton's keys, or the stream paused
   * or disabled at Baton (an admin's pause holds every revocation until it is enabled again).
   */
  downForMs(): number {
    const now = this.clock();
    if (this.gap !== undefined && now >= this.gap.until) this.gap = undefined;
    const notEnabled = this.notEnabledSince === undefined ? 0 : Math.max(0, now - this.notEnabledSince);
    const gap = this.gap === undefined ? 0 : Math.max(0, now - this.gap.since);
    return Math.max(this.loop.downForMs(), this.keysWait.forMs(), notEnabled, gap);
  }

  close(): void {
    this.loop.close();
    this.abort?.abort();
  }

  private async json(
    url: string | URL,
    init: RequestInit = {},
    timeoutMs?: number,
  ): Promise<{ status: number; body: unknown }> {
    const abort = new AbortController();
    this.abort = abort;
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => abort.abort(), timeoutMs);
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        ...init,
        headers: {
          authorization: `Bearer ${this.options.token}`,
          accept: 'application/json',
          ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        signal: abort.signal,
      });
      text = await response.text();
    } finally {
      clearTimeout(timer);
    }
    if (!response.ok)
      throw new Error(
        `Baton's Shared Signals ${new URL(url).pathname} answered ${response.status}: ${text.slice(0, 300)}`,
      );
    return { status: response.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
  }

  /** The transmitter's metadata and this receiver's poll stream (found or created). */
  private async setUp(): Promise<{ config: SsfConfiguration; stream: StreamView; endpoint: string }> {
    const config = (await this.json(new URL('/.well-known/ssf-configuration', this.options.batonUrl)))
      .body as SsfConfiguration;
    let stream: StreamView | undefined;
    const streams = new URL(config.configuration_endpoint);
    if (this.options.streamId !== undefined) {
      streams.searchParams.set('stream_id', this.options.streamId);
      stream = (await this.json(streams)).body as StreamView;
    } else {
      const mine = (await this.json(streams)).body as StreamView[];
      stream = mine.find(
        (s) => s.delivery.method === SSF_POLL_METHOD && (s.events_delivered ?? []).includes(SSF_REVOCATION_EVENTS[0]),
      );
    }
    if (stream !== undefined) stream = await this.widened(new URL(config.configuration_endpoint), stream);
    stream ??= (
      await this.json(streams, {
        method: 'POST',
        body: JSON.stringify({
          delivery: { method: SSF_POLL_METHOD },
          events_requested: SSF_REVOCATION_EVENTS,
          description: 'Action-token verifier (@baton/verifier)',
        }),
      })
    ).body as StreamView;
    if (stream.delivery.method !== SSF_POLL_METHOD || stream.delivery.endpoint_url === undefined) {
      throw new Error(`Stream ${stream.stream_id} is not a poll stream (RFC 8936)`);
    }
    this.streamId = stream.stream_id;
    return { config, stream, endpoint: stream.delivery.endpoint_url };
  }

  /**
   * A stream made by an earlier version (or by hand) may lack an event this one acts on (service-revoked): asked
   * for, keeping what it has. If that cannot be done (a receiver token with `ssf.read` only), the stream is used as
   * it is and `onError` says which revocations it will not hear.
   */
  private async widened(endpoint: URL, stream: StreamView): Promise<StreamView> {
    const missing = missingEvents(stream);
    if (missing.length === 0) return stream;
    try {
      const answer = await this.json(endpoint, {
        method: 'PATCH',
        body: JSON.stringify({
          stream_id: stream.stream_id,
          events_requested: [...(stream.events_requested ?? stream.events_delivered ?? []), ...missing],
        }),
      });
      return answer.body as StreamView;
    } catch (error) {
      this.options.onError?.(
        new Error(
          `Stream ${stream.stream_id} does not deliver ${missing.join(', ')} and could not be changed to: ` +
            `those revocations are not heard (${(error as Error).message})`,
        ),
      );
      return stream;
    }
  }

  /** One poll (set up the stream first if needed): acknowledges what the previous poll applied, applies what it gets. */
  private async pollOnce(): Promise<void> {
    const setUp = (this.setUpDone ??= await this.setUp());
    const jwks = (this.jwks ??= createRemoteJWKSet(new URL(setUp.config.jwks_uri)));
    const first = !this.loop.connected;
    const { body } = await this.json(setUp.endpoint, {
      method: 'POST',
      body: JSON.stringify({
        ack: this.ack,
        ...(Object.keys(this.setErrs).length === 0 ? {} : { setErrs: this.setErrs }),
        maxEvents: 100,
        returnImmediately: first,
      }),
    });
    this.ack = [];
    this.setErrs = {};
    this.loop.up();
    const sets = (body as { sets?: Record<string, string> }).sets ?? {};
    for (const [jti, set] of Object.entries(sets)) {
      try {
        await this.sets.apply(set, { issuer: setUp.config.issuer, audience: setUp.stream.aud, jwks });
        this.ack.push(jti);
        this.keysWait.done(jti);
      } catch (error) {
        const refused =
          error instanceof SetRefused ? error : new SetRefused('invalid_request', (error as Error).message);
        this.options.onError?.(refused);
        if (!refused.transient) {
          this.setErrs[jti] = { err: refused.err, description: refused.message.slice(0, 200) };
          this.keysWait.done(jti);
          continue;
        }
        // Baton's keys out of reach now: this SET and the rest of the batch are neither acknowledged nor reported
        // (each would wait for the keys again), so Baton hands them out again; revocations count as unheard.
        this.keysWait.waits(jti);
        break;
      }
    }
    // SETs arrived: the stream is enabled. An empty answer may be a quiet stream or a paused one (a paused stream
    // hands out nothing and, being paused, cannot say so on the stream): Baton's status endpoint tells.
    if (Object.keys(sets).length > 0) this.knownEnabled();
    else await this.checkStatus(setUp.config);
    if (first) this.markReady();
  }

  /**
   * Reads the stream's status (SSF 1.0 §8.1.2.1), within STATUS_READ_TIMEOUT_MS; a failure to read it changes nothing
   * and is reported (`onError`).
   */
  private async checkStatus(config: SsfConfiguration): Promise<void> {
    if (config.status_endpoint === undefined || this.streamId === undefined) return;
    const url = new URL(config.status_endpoint);
    url.searchParams.set('stream_id', this.streamId);
    try {
      const answer = await this.json(url, {}, STATUS_READ_TIMEOUT_MS);
      const status = (answer.body as { status?: unknown } | undefined)?.status;
      if (status === 'enabled') this.knownEnabled();
      else if (status === 'paused' || status === 'disabled') {
        // Since the last moment it was known enabled: it may have been paused right after (held SETs, unheard).
        this.notEnabledSince ??= this.enabledAt;
        if (status === 'disabled') this.sawDisabled = true;
      }
    } catch (error) {
      this.options.onError?.(error as Error);
    }
  }

  /** The stream is enabled now. After a disable it still counts as unheard until the tokens of before have expired. */
  private knownEnabled(): void {
    const now = this.clock();
    this.enabledAt = now;
    if (this.sawDisabled) {
      this.sawDisabled = false;
      this.gap = { since: this.notEnabledSince ?? now, until: now + TOKEN_HORIZON_MS };
    }
    this.notEnabledSince = undefined;
  }
}
