import type { ServerResponse, IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { decodeJwt, importJWK, jwtVerify } from 'jose';
import { BatonError } from '../../shared/errors.js';
import type { StreamRevocation } from '../../shared/action-tokens.js';
import { appForAudience, type Policy } from '../../shared/policy.js';
import type { ClusterBus } from '../cluster/bus.js';
import type { RevocationRecord, Store } from '../store/repositories.js';
import { SECURITY_HEADERS } from '../http/http-kit.js';
import { MAX_ACTION_TOKEN_TTL_SECONDS } from './action-token-issuer.js';
import { CATCH_UP_EPOCHS } from '../services/revocation-hub.js';

/** The `aud` an app server's stream login must carry. */
export const REVOCATION_STREAM_AUDIENCE = 'urn:baton:token-revocations';
/** A stream login lives at most this long (its `exp - iat`), and is used once. */
const LOGIN_MAX_SECONDS = 300;
/** How far the clocks of an app server and of Baton may differ (the login's `exp` and `iat`). */
const LOGIN_CLOCK_TOLERANCE_SECONDS = 30;
/** A comment line this often keeps proxies from closing an idle stream. */
const KEEP_ALIVE_MS = 15_000;
/** Revocations older than this concern no token still alive: a new subscriber is not sent them. */
const RELEVANT_MS = (MAX_ACTION_TOKEN_TTL_SECONDS + 60) * 1000;

export function toStreamRevocation(record: RevocationRecord): StreamRevocation {
  return {
    epoch: record.epoch,
    kind: record.kind,
    targetId: record.targetId,
    operatorId: record.operatorId,
    at: record.at,
  };
}

interface Subscriber {
  app: string;
  res: ServerResponse;
  /** The last epoch sent to it. */
  sentUpTo: number;
}

/**
 * Baton's own push channel of revocations for app servers (until the Shared Signals transmitter
 * carries them): a server-sent-events stream, one per app server, each revocation sent once in
 * epoch order with its epoch as the SSE `id`, so a reconnecting client (`Last-Event-ID`) misses
 * nothing. One read of the store per revocation pointer on the cluster bus, whatever the number of
 * subscribers: a revocation committed on any node reaches the app servers connected to every node.
 */
export class RevocationFeed {
  private readonly subscribers = new Set<Subscriber>();
  /** The highest epoch this node read from the store (undefined before the first read). */
  private readUpTo: number | undefined;
  private reading: Promise<unknown> = Promise.resolve();
  private readonly offs: (() => void)[] = [];
  private readonly keepAlive: NodeJS.Timeout;

  constructor(
    private readonly deps: {
      store: Store;
      bus: ClusterBus;
      clock: () => number;
      logger: Logger;
      policy: () => Policy;
    },
  ) {
    this.offs.push(
      deps.bus.subscribe('revocation', ({ epoch }) => this.advance(epoch)),
      deps.bus.onResync(() => this.advance()),
    );
    this.keepAlive = setInterval(() => {
      for (const s of this.subscribers) s.res.write(': keep-alive\n\n');
    }, KEEP_ALIVE_MS);
    this.keepAlive.unref();
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  close(): void {
    clearInterval(this.keepAlive);
    for (const off of this.offs) off();
    for (const s of this.subscribers) s.res.end();
    this.subscribers.clear();
  }

  /**
   * Checks an app server's login: `Authorization: Bearer <JWT>` signed (ES256) with the key of its
   * app in the policy (`apps[].revocationKey`), `iss` = `sub` = the app's audience, `aud` =
   * REVOCATION_STREAM_AUDIENCE, `iat` not in the future (30 s of clock skew allowed), `exp` at most
   * 5 minutes after `iat`, its `jti` used once.
   * APP_AUTH_INVALID otherwise. Returns the app's audience.
   */
  async authenticate(req: IncomingMessage): Promise<string> {
    const header = req.headers.authorization ?? '';
    const match = /^Bearer ([A-Za-z0-9_.-]{1,4096})$/.exec(header);
    if (match?.[1] === undefined) throw new BatonError('APP_AUTH_INVALID', 'Expected "Authorization: Bearer <JWT>"');
    const token = match[1];
    let iss: string | undefined;
    try {
      iss = decodeJwt(token).iss;
    } catch (cause) {
      throw new BatonError('APP_AUTH_INVALID', 'The login is not a JWT', { cause });
    }
    const app = iss === undefined ? undefined : appForAudience(this.deps.policy(), iss);
    if (app?.revocationKey === undefined) {
      throw new BatonError('APP_AUTH_INVALID', 'No app of the policy with this audience has a revocationKey');
    }
    const now = this.deps.clock();
    let payload;
    try {
      const key = await importJWK({ ...app.revocationKey, alg: 'ES256' }, 'ES256');
      ({ payload } = await jwtVerify(token, key, {
        algorithms: ['ES256'],
        issuer: app.audience,
        subject: app.audience,
        audience: REVOCATION_STREAM_AUDIENCE,
        requiredClaims: ['exp', 'iat', 'jti'],
        currentDate: new Date(now),
        clockTolerance: LOGIN_CLOCK_TOLERANCE_SECONDS,
      }));
    } catch (cause) {
      throw new BatonError('APP_AUTH_INVALID', "The login does not verify with the app's revocationKey", { cause });
    }
    const { exp = 0, iat = 0, jti = '' } = payload;
    // jose checks a future `iat` only with `maxTokenAge`: without this, a login signed with a later
    // `iat` (and `exp` = `iat` + 5 minutes) would open the stream from now until then.
    const ahead = iat - Math.floor(now / 1000);
    if (ahead > LOGIN_CLOCK_TOLERANCE_SECONDS) {
      throw new BatonError(
        'APP_AUTH_INVALID',
        `The login was issued in the future (its iat is ${ahead} s ahead of Baton's clock; ${LOGIN_CLOCK_TOLERANCE_SECONDS} s of skew are allowed)`,
      );
    }
    if (exp - iat > LOGIN_MAX_SECONDS)
      throw new BatonError('APP_AUTH_INVALID', 'The login lives longer than 5 minutes');
    const fresh = await this.deps.store.ephemeral.claimOnce(
      'app-stream-login',
      `${app.audience} ${jti}`.slice(0, 400),
      exp * 1000 + 30_000,
      now,
    );
    if (!fresh) throw new BatonError('APP_AUTH_INVALID', 'This login was used already');
    return app.audience;
  }

  /**
   * Starts the stream: the headers, then what the subscriber missed (after `Last-Event-ID`, else the
   * revocations recent enough to concern a live token), then every new revocation as it commits.
   */
  async subscribe(app: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const lastId = Number(req.headers['last-event-id']);
    const current = await this.deps.store.revocations.currentEpoch();
    const since = Number.isSafeInteger(lastId) && lastId >= 0 && lastId <= current ? lastId : undefined;
    const from = since ?? Math.max(0, current - CATCH_UP_EPOCHS);
    const missed = (await this.deps.store.revocations.since(from)).filter(
      (r) => since !== undefined || r.at >= this.deps.clock() - RELEVANT_MS,
    );
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.socket?.setNoDelay(true);
    const subscriber: Subscriber = { app, res, sentUpTo: from };
    res.write(`retry: 1000\nevent: hello\ndata: ${JSON.stringify({ epoch: current })}\n\n`);
    this.send(subscriber, missed);
    subscriber.sentUpTo = Math.max(subscriber.sentUpTo, current);
    this.subscribers.add(subscriber);
    const drop = () => this.subscribers.delete(subscriber);
    req.on('close', drop);
    res.on('close', drop);
    // A revocation committed between the reads above and now: read it for everyone.
    void this.advance();
  }

  private send(subscriber: Subscriber, records: readonly RevocationRecord[]): void {
    let out = '';
    for (const record of records) {
      if (record.epoch <= subscriber.sentUpTo) continue;
      out += `id: ${record.epoch}\nevent: revocation\ndata: ${JSON.stringify(toStreamRevocation(record))}\n\n`;
      subscriber.sentUpTo = record.epoch;
    }
    if (out !== '') subscriber.res.write(out);
  }

  /** Reads what committed after this node's watermark and sends it to every subscriber. Never rejects. */
  private advance(epoch?: number): Promise<void> {
    const run = this.reading.then(async () => {
      if (this.subscribers.size === 0) {
        this.readUpTo = undefined; // nobody to send to: the next subscriber reads for itself
        return;
      }
      if (epoch !== undefined && this.readUpTo !== undefined && epoch <= this.readUpTo) return;
      const after = Math.min(...[...this.subscribers].map((s) => s.sentUpTo));
      const records = await this.deps.store.revocations.since(after);
      for (const s of this.subscribers) this.send(s, records);
      this.readUpTo = records.reduce((max, r) => Math.max(max, r.epoch), after);
    });
    this.reading = run.catch(() => undefined);
    return run.catch((error: unknown) =>
      this.deps.logger.warn(
        { err: error, code: 'REVOCATION_FEED_FAILED' },
        'reading revocations for app servers failed',
      ),
    );
  }
}
