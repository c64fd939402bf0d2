import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRemoteJWKSet } from 'jose';
import { RevocationList, type RevocableToken, type Revocation } from './revocation-list.js';
import { jtiOf, KeysWait, missingEvents, SetApplier, SetRefused, SSF_REVOCATION_EVENTS } from './ssf-sets.js';
import type { RevocationSource } from './verifier.js';

/** RFC 8935 push delivery. */
export const SSF_PUSH_METHOD = 'urn:ietf:rfc:8935';
/** Largest SET accepted (Baton's are about 1 KiB). */
const MAX_SET_BYTES = 64 * 1024;

export interface SsfPushReceiverOptions {
  /** Baton's Shared Signals issuer (it serves /.well-known/ssf-configuration). */
  batonUrl: string | URL;
  /** A receiver token with `ssf.manage` (POST /v1/admin/ssf/receivers): the receiver finds or creates its push stream. */
  token: string;
  /**
   * Where Baton POSTs the SETs: this app server's URL of `handle` (https; plain http only on loopback).
   * The receiver's push stream is the one with this `endpoint_url` (created if there is none).
   */
  endpointUrl: string;
  list?: RevocationList;
  /** SET signature algorithms accepted (default RS256 and ES256). */
  algorithms?: string[];
  onError?: (error: Error) => void;
  onRevocation?: (revocation: Revocation) => void;
  clock?: () => number;
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
 * Receives Baton's Shared Signals by push (RFC 8935): Baton POSTs each SET to `endpointUrl` with the
 * `Authorization` value this receiver set on its stream (a fresh random one at every start); `handle`
 * checks it, verifies the SET against Baton's SSF JWKS and applies it to the RevocationList, answering
 * 202, or 400 / 401 with RFC 8935's `{err, description}` (Baton keeps a refused SET's error on the
 * stream), or 503 when Baton's keys cannot be had now (Baton sends it again). Lower latency than polling, but the
 * app server must be reachable from Baton, and a silent Baton cannot be told from a quiet one: once the stream is
 * set up, `downForMs()` counts only while a SET waits for Baton's keys (use the poll subscription or Baton's feed
 * with `maxRevocationLagMs` to fail closed on silence).
 */
export class SsfPushReceiver implements RevocationSource {
  readonly list: RevocationList;
  /** Resolves when the push stream is set up with this start's authorization (rejects if it cannot be). */
  readonly ready: Promise<void>;
  streamId: string | undefined;
  private readonly authorization = `Bearer ${randomBytes(32).toString('base64url')}`;
  private readonly sets: SetApplier;
  private expect:
    | { issuer: string; audience: string | string[]; jwks: ReturnType<typeof createRemoteJWKSet> }
    | undefined;
  private readonly clock: () => number;
  private readonly startedAt: number;
  private readonly keysWait: KeysWait;

  constructor(private readonly options: SsfPushReceiverOptions) {
    this.clock = options.clock ?? Date.now;
    this.startedAt = this.clock();
    this.keysWait = new KeysWait(this.clock);
    this.list = options.list ?? new RevocationList(this.clock);
    this.sets = new SetApplier({
      list: this.list,
      clock: this.clock,
      ...(options.algorithms === undefined ? {} : { algorithms: options.algorithms }),
      ...(options.onRevocation === undefined ? {} : { onRevocation: options.onRevocation }),
    });
    this.ready = this.setUp();
    this.ready.catch((error: unknown) => options.onError?.(error instanceof Error ? error : new Error(String(error))));
  }

  refuses(token: RevocableToken): string | undefined {
    return this.list.refuses(token);
  }

  /**
   * Until the stream is set up, how long since the start; then 0 (a push receiver cannot see silence), unless a SET
   * pushed waits for Baton's keys: since when, until a SET verifies again.
   */
  downForMs(): number {
    if (this.expect === undefined) return this.clock() - this.startedAt;
    return this.keysWait.forMs();
  }

  private async call(url: string | URL, method = 'GET', body?: unknown): Promise<unknown> {
    const response = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${this.options.token}`,
        accept: 'application/json',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) {
      throw new Error(
        `Baton's Shared Signals ${new URL(url).pathname} answered ${response.status}: ${text.slice(0, 300)}`,
      );
    }
    return text === '' ? undefined : (JSON.parse(text) as unknown);
  }

  private async setUp(): Promise<void> {
    const config = (await this.call(new URL('/.well-known/ssf-configuration', this.options.batonUrl))) as {
      issuer: string;
      jwks_uri: string;
      configuration_endpoint: string;
    };
    const delivery = {
      method: SSF_PUSH_METHOD,
      endpoint_url: this.options.endpointUrl,
      authorization_header: this.authorization,
    };
    const mine = (await this.call(config.configuration_endpoint)) as StreamView[];
    const found = mine.find(
      (s) => s.delivery.method === SSF_PUSH_METHOD && s.delivery.endpoint_url === this.options.endpointUrl,
    );
    const stream = (
      found === undefined
        ? await this.call(config.configuration_endpoint, 'POST', {
            delivery,
            events_requested: SSF_REVOCATION_EVENTS,
            description: 'Action-token verifier (@baton/verifier), push',
          })
        : await this.call(config.configuration_endpoint, 'PATCH', {
            stream_id: found.stream_id,
            delivery,
            // A stream made by an earlier version may lack an event this one acts on (service-revoked): add it.
            ...(missingEvents(found).length === 0
              ? {}
              : {
                  events_requested: [
                    ...(found.events_requested ?? found.events_delivered ?? []),
                    ...missingEvents(found),
                  ],
                }),
          })
    ) as StreamView;
    this.streamId = stream.stream_id;
    this.expect = { issuer: config.issuer, audience: stream.aud, jwks: createRemoteJWKSet(new URL(config.jwks_uri)) };
  }

  /** The `node:http` handler for `endpointUrl` (POST, `application/secevent+jwt`). */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const answer = (status: number, err?: string, description?: string) => {
      const text = err === undefined ? '' : JSON.stringify({ err, description });
      res.writeHead(status, {
        ...(text === '' ? {} : { 'content-type': 'application/json' }),
        'content-length': Buffer.byteLength(text),
        'cache-control': 'no-store',
      });
      res.end(text);
    };
    if (req.method !== 'POST') return answer(405, 'invalid_request', 'POST a SET');
    const given = createHash('sha256')
      .update(req.headers.authorization ?? '')
      .digest();
    const expected = createHash('sha256').update(this.authorization).digest();
    if (!timingSafeEqual(given, expected))
      return answer(401, 'authentication_failed', 'Wrong or missing authorization');
    if (this.expect === undefined) return answer(503, 'invalid_request', 'Not set up yet');
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_SET_BYTES) return answer(400, 'invalid_request', 'The SET is too large');
      chunks.push(chunk);
    }
    const set = Buffer.concat(chunks).toString('utf8').trim();
    try {
      await this.sets.apply(set, this.expect);
      this.keysWait.done(jtiOf(set));
      answer(202);
    } catch (error) {
      const refused = error instanceof SetRefused ? error : new SetRefused('invalid_request', (error as Error).message);
      this.options.onError?.(refused);
      if (refused.transient) this.keysWait.waits(jtiOf(set));
      else this.keysWait.done(jtiOf(set));
      // Baton's keys out of reach now: 503 (RFC 8935 keeps 400 for a SET that is wrong); Baton's push retries.
      answer(refused.transient ? 503 : 400, refused.err, refused.message.slice(0, 200));
    }
  }
}
