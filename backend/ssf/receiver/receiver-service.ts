/**
 * Baton as a Shared Signals receiver (issue 13): upstream transmitters an admin registers, the RFC
 * 8935 push endpoint's handling of each SET (validated first: set-validator.ts), subjects mapped to
 * operators through linked identities, and the actions: revocations through the existing path
 * (RevocationHub.revoke, pushed to every console), each recorded as an `ssf-set-received` event
 * carrying the SET's `jti` and issuer.
 */
import { performance } from 'node:perf_hooks';
import { createLocalJWKSet, type JSONWebKeySet } from 'jose';
import type { Logger } from 'pino';
import { z } from 'zod';
import { BatonError } from '../../../shared/errors.js';
import { constantTimeEqualHex, newId, newSecretToken, sha256Hex } from '../../crypto/secrets.js';
import { lagAwareTimeoutSignal } from '../../lag-aware-timer.js';
import type { Store } from '../../store/repositories.js';
import type { EventLog } from '../../services/event-log.js';
import type { RevocationHub } from '../../services/revocation-hub.js';
import type { IdentityRecord, TransmitterRecord } from './repository.js';
import {
  CAEP,
  JTI_KIND,
  RISC,
  SetRefusal,
  TransmitterKeys,
  jtiKey,
  validateSet,
  type PushErr,
  type ValidSet,
} from './set-validator.js';

const HttpUrl = z
  .string()
  .max(2048)
  .url()
  .refine((u) => isAcceptableUrl(u), 'must be https (http only for a loopback host)');

export const RegisterTransmitterSchema = z
  .strictObject({
    name: z.string().trim().min(1).max(100).optional(),
    issuer: z.string().min(1).max(512),
    /** The `aud` Baton expects in this transmitter's SETs. */
    audience: z.string().min(1).max(512),
    configurationUrl: HttpUrl.optional(),
    jwksUri: HttpUrl.optional(),
    /** A JWKS pinned for an offline site: no fetch ever. */
    jwks: z
      .looseObject({
        keys: z
          .array(z.looseObject({ kty: z.string() }))
          .min(1)
          .max(20),
      })
      .optional(),
    /** How old a SET may be (iat) and still be accepted; default 3600 s. */
    maxAgeSeconds: z
      .int()
      .min(60)
      .max(7 * 86_400)
      .default(3600),
  })
  .refine((v) => [v.configurationUrl, v.jwksUri, v.jwks].filter((x) => x !== undefined).length === 1, {
    message: 'give exactly one of configurationUrl, jwksUri, jwks',
  });

export const CreateStreamSchema = z.strictObject({
  /** The bearer token the upstream issued Baton for its stream management API (not stored). */
  accessToken: z.string().min(1).max(4096),
  /** Baton's public base URL as the upstream reaches it (default: the URL this request came to). */
  endpointBaseUrl: HttpUrl.optional(),
});

export const LinkIdentitySchema = z.discriminatedUnion('format', [
  z.strictObject({ format: z.literal('email'), email: z.email().max(320) }),
  z.strictObject({ format: z.literal('iss_sub'), iss: z.string().min(1).max(512), sub: z.string().min(1).max(512) }),
  z.strictObject({ format: z.literal('opaque'), id: z.string().min(1).max(512) }),
]);

/** How long a request to an upstream transmitter may take, reading its answer included. */
const UPSTREAM_TIMEOUT_MS = 10_000;

/** The event types Baton asks an upstream for when it creates a stream there. */
export const EVENTS_REQUESTED = [
  `${CAEP}session-revoked`,
  `${CAEP}credential-change`,
  `${RISC}account-disabled`,
  `${RISC}account-purged`,
  `${RISC}credential-compromise`,
  `${RISC}sessions-revoked`,
];

export function isAcceptableUrl(value: string): boolean {
  try {
    const url = new URL(value);
    if (url.protocol === 'https:') return true;
    return url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  } catch {
    return false;
  }
}

/** The canonical key a subject identifier is matched by, or undefined for a format Baton does not map. */
export function identifierOf(
  subject: Record<string, unknown>,
): { format: IdentityRecord['format']; identifier: string } | undefined {
  const s = (k: string) => {
    const v = subject[k];
    return typeof v === 'string' ? v : undefined;
  };
  switch (subject.format) {
    case 'email': {
      const email = s('email');
      return email === undefined ? undefined : { format: 'email', identifier: email.trim().toLowerCase() };
    }
    case 'iss_sub': {
      const iss = s('iss');
      const sub = s('sub');
      return iss === undefined || sub === undefined
        ? undefined
        : { format: 'iss_sub', identifier: JSON.stringify([iss, sub]) };
    }
    case 'opaque': {
      const id = s('id');
      return id === undefined ? undefined : { format: 'opaque', identifier: id };
    }
    default:
      return undefined;
  }
}

/** The subject identifiers a SET's subject offers: itself, or a complex subject's `user`. */
function candidates(subject: Record<string, unknown> | undefined): Record<string, unknown>[] {
  if (subject === undefined) return [];
  if (subject.format === 'complex') {
    const user = subject.user;
    return typeof user === 'object' && user !== null ? [user as Record<string, unknown>] : [];
  }
  return [subject];
}

export interface PushAnswer {
  status: number;
  body: unknown;
}

export interface TransmitterView {
  id: string;
  name: string;
  issuer: string;
  audience: string;
  configurationUrl: string | null;
  jwksUri: string | null;
  pinnedJwks: boolean;
  maxAgeSeconds: number;
  streamId: string | null;
  createdAt: number;
  createdBy: string;
  disabledAt: number | null;
  accepted: number;
  lastSetAt: number | null;
  lastJti: string | null;
  lastAction: string | null;
  pushPath: string;
  rejections: { code: string; count: number; lastAt: number; lastDescription: string }[];
}

export function pushPathOf(id: string): string {
  return `/ssf/receiver/${encodeURIComponent(id)}/events`;
}

/** What an inbound event does (the `action` recorded). */
type Action =
  | 'operator-revoked'
  | 'sessions-revoked'
  | 'credentials-revoked'
  | 'nothing-to-revoke'
  | 'already-revoked'
  | 'last-admin-kept'
  | 'recorded'
  | 'ignored-unknown-event'
  | 'ignored-unknown-subject';

export class SsfReceiver {
  readonly keys = new TransmitterKeys();

  constructor(
    private readonly deps: {
      store: Store;
      events: EventLog;
      revocations: RevocationHub;
      clock: () => number;
      logger: Logger;
      /** The check the admin revoke route makes: refuses to revoke the last admin who can sign in. */
      assertNotLastAdmin: (operatorId: string) => Promise<void>;
      /** fetch (tests may not replace it; real HTTP). */
      fetch?: typeof fetch;
      /** How long a request to an upstream may take (UPSTREAM_TIMEOUT_MS); tests shorten it. */
      upstreamTimeoutMs?: number;
    },
  ) {}

  private get fetch(): typeof fetch {
    return this.deps.fetch ?? fetch;
  }

  // ---- admin ----

  async register(
    input: z.infer<typeof RegisterTransmitterSchema>,
    actor: string,
  ): Promise<{ transmitter: TransmitterView; pushToken: string }> {
    let jwksUri = input.jwksUri ?? null;
    if (input.configurationUrl !== undefined) {
      const config = await this.upstreamConfiguration(input.configurationUrl);
      if (config.issuer !== input.issuer) {
        throw new BatonError(
          'SSF_UPSTREAM_INVALID',
          `The upstream's configuration names issuer "${config.issuer}", not "${input.issuer}"`,
        );
      }
      jwksUri = config.jwks_uri;
    }
    if (input.jwks !== undefined) {
      try {
        createLocalJWKSet(input.jwks as unknown as JSONWebKeySet);
      } catch (cause) {
        throw new BatonError('SCHEMA_INVALID', 'jwks is not a usable JWK Set', { cause });
      }
    }
    const pushToken = newSecretToken('bssf');
    const record: TransmitterRecord = {
      id: newId('ssft'),
      name: input.name ?? input.issuer,
      issuer: input.issuer,
      audience: input.audience,
      configurationUrl: input.configurationUrl ?? null,
      jwksUri,
      pinnedJwks: input.jwks === undefined ? null : JSON.stringify(input.jwks),
      pushTokenHash: sha256Hex(pushToken),
      maxAgeSeconds: input.maxAgeSeconds,
      streamId: null,
      createdAt: this.deps.clock(),
      createdBy: actor,
      disabledAt: null,
      accepted: 0,
      lastSetAt: null,
      lastJti: null,
      lastAction: null,
    };
    await this.deps.events.atomically(async (uow) => {
      await uow.store.ssfInbound.insertTransmitter(record);
      await uow.record({
        type: 'admin-action',
        subject: {},
        outcome: 'success',
        reasons: ['ssf-transmitter-registered'],
        detail: {
          actor,
          transmitter: record.id,
          iss: record.issuer,
          audience: record.audience,
          pinned: input.jwks !== undefined,
        },
      });
    });
    return { transmitter: await this.view(record), pushToken };
  }

  async list(): Promise<TransmitterView[]> {
    const all = await this.deps.store.ssfInbound.listTransmitters();
    return Promise.all(all.map((t) => this.view(t)));
  }

  async get(id: string): Promise<TransmitterView> {
    return this.view(await this.transmitter(id));
  }

  async disable(id: string, actor: string): Promise<TransmitterView> {
    await this.transmitter(id);
    await this.deps.events.atomically(async (uow) => {
      if (!(await uow.store.ssfInbound.disableTransmitter(id, this.deps.clock()))) {
        throw new BatonError('SSF_TRANSMITTER_UNKNOWN', `The transmitter "${id}" is already disabled`);
      }
      await uow.record({
        type: 'admin-action',
        subject: {},
        outcome: 'success',
        reasons: ['ssf-transmitter-disabled'],
        detail: { actor, transmitter: id },
      });
    });
    this.keys.forget(id);
    return this.get(id);
  }

  /**
   * Creates a push stream at the upstream (SSF 1.0 §7.1.1: POST to its `configuration_endpoint`)
   * delivering to this transmitter's push endpoint with a fresh push token (the old one stops working).
   */
  async createStream(
    id: string,
    input: z.infer<typeof CreateStreamSchema>,
    requestBase: string,
    actor: string,
  ): Promise<{ transmitter: TransmitterView; stream: Record<string, unknown> }> {
    const t = await this.transmitter(id);
    if (t.disabledAt !== null) throw new BatonError('SSF_TRANSMITTER_UNKNOWN', `The transmitter "${id}" is disabled`);
    if (t.configurationUrl === null) {
      throw new BatonError(
        'SCHEMA_INVALID',
        'This transmitter was registered without a configuration URL: it can only push',
      );
    }
    const config = await this.upstreamConfiguration(t.configurationUrl);
    if (config.configuration_endpoint === undefined) {
      throw new BatonError('SSF_UPSTREAM_INVALID', 'The upstream publishes no configuration_endpoint');
    }
    const pushToken = newSecretToken('bssf');
    const endpoint = `${(input.endpointBaseUrl ?? requestBase).replace(/\/$/, '')}${pushPathOf(id)}`;
    const deadline = lagAwareTimeoutSignal(this.deps.upstreamTimeoutMs ?? UPSTREAM_TIMEOUT_MS);
    let answer: Response;
    try {
      answer = await this.fetch(config.configuration_endpoint, {
        method: 'POST',
        headers: { authorization: `Bearer ${input.accessToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          delivery: {
            method: 'urn:ietf:rfc:8935',
            endpoint_url: endpoint,
            authorization_header: `Bearer ${pushToken}`,
          },
          events_requested: EVENTS_REQUESTED,
          description: 'Baton (shared workstation sessions)',
        }),
        signal: deadline.signal,
      });
    } catch (cause) {
      deadline.clear();
      throw new BatonError('SSF_UPSTREAM_INVALID', `The upstream's configuration endpoint could not be reached`, {
        cause,
      });
    }
    const stream = (await answer.json().catch(() => undefined)) as Record<string, unknown> | undefined;
    deadline.clear(); // the deadline covered reading the answer too, as AbortSignal.timeout's did
    if (!answer.ok || stream === undefined || typeof stream.stream_id !== 'string') {
      throw new BatonError('SSF_UPSTREAM_INVALID', `The upstream refused the stream (HTTP ${answer.status})`);
    }
    const streamId = stream.stream_id;
    await this.deps.events.atomically(async (uow) => {
      await uow.store.ssfInbound.setStream(id, streamId, sha256Hex(pushToken));
      await uow.record({
        type: 'admin-action',
        subject: {},
        outcome: 'success',
        reasons: ['ssf-stream-created'],
        detail: { actor, transmitter: id, stream: streamId.slice(0, 200) },
      });
    });
    return { transmitter: await this.get(id), stream };
  }

  async identities(operatorId: string): Promise<IdentityRecord[]> {
    if ((await this.deps.store.operators.get(operatorId)) === undefined) {
      throw new BatonError('OPERATOR_UNKNOWN', `No operator "${operatorId}"`);
    }
    return this.deps.store.ssfInbound.identitiesOf(operatorId);
  }

  async link(operatorId: string, input: z.infer<typeof LinkIdentitySchema>, actor: string): Promise<IdentityRecord> {
    const key = identifierOf(input);
    if (key === undefined) throw new BatonError('SCHEMA_INVALID', 'Unsupported subject identifier');
    const { format: _format, ...rest } = input;
    const record: IdentityRecord = {
      id: newId('idn'),
      operatorId,
      format: key.format,
      identifier: key.identifier,
      subject: { format: input.format, ...rest },
      createdAt: this.deps.clock(),
      createdBy: actor,
    };
    await this.deps.events.atomically(async (uow) => {
      if ((await uow.store.operators.get(operatorId)) === undefined) {
        throw new BatonError('OPERATOR_UNKNOWN', `No operator "${operatorId}"`);
      }
      if (!(await uow.store.ssfInbound.insertIdentity(record))) {
        const other = await uow.store.ssfInbound.findIdentity(key.format, key.identifier);
        throw new BatonError(
          'SSF_IDENTITY_TAKEN',
          `This ${key.format} identity is already linked to operator "${other?.operatorId ?? '?'}"`,
        );
      }
      await uow.record({
        type: 'admin-action',
        subject: { operator: operatorId },
        outcome: 'success',
        reasons: ['ssf-identity-linked'],
        detail: { actor, identity: record.id, format: record.format },
      });
    });
    return record;
  }

  async unlink(operatorId: string, identityId: string, actor: string): Promise<IdentityRecord> {
    return this.deps.events.atomically(async (uow) => {
      const removed = await uow.store.ssfInbound.deleteIdentity(operatorId, identityId);
      if (removed === undefined)
        throw new BatonError('NOT_FOUND', `Operator "${operatorId}" has no identity "${identityId}"`);
      await uow.record({
        type: 'admin-action',
        subject: { operator: operatorId },
        outcome: 'success',
        reasons: ['ssf-identity-unlinked'],
        detail: { actor, identity: identityId, format: removed.format },
      });
      return removed;
    });
  }

  // ---- the push endpoint (RFC 8935) ----

  /** Handles one push; never throws for a refusal (the answer carries it). */
  async push(
    transmitterId: string,
    authorization: string | undefined,
    contentType: string | undefined,
    body: Buffer,
  ): Promise<PushAnswer> {
    const t = await this.deps.store.ssfInbound.getTransmitter(transmitterId);
    if (t === undefined || t.disabledAt !== null) {
      return refusal(
        new SetRefusal('SSF_TRANSMITTER_UNKNOWN', 'access_denied', 'No enabled transmitter is registered here'),
      );
    }
    const token = /^Bearer\s+(\S+)$/i.exec(authorization ?? '')?.[1];
    if (token === undefined || !constantTimeEqualHex(sha256Hex(token), t.pushTokenHash)) {
      await this.refused(
        t,
        new SetRefusal('SSF_PUSH_AUTH_FAILED', 'authentication_failed', 'Missing or wrong push bearer token'),
      );
      return refusal(
        new SetRefusal('SSF_PUSH_AUTH_FAILED', 'authentication_failed', 'Missing or wrong push bearer token'),
      );
    }
    let set: ValidSet;
    try {
      set = await validateSet(t, body, contentType, {
        keys: this.keys,
        store: this.deps.store,
        now: this.deps.clock(),
      });
    } catch (error) {
      if (!(error instanceof SetRefusal)) throw error;
      await this.refused(t, error);
      return refusal(error);
    }
    try {
      await this.act(t, set);
    } catch (error) {
      // Not acted on: the jti is released so the transmitter's retry is accepted, and it is told to retry.
      await this.deps.store.ephemeral.take(JTI_KIND, jtiKey(t.id, set.jti)).catch(() => undefined);
      throw error;
    }
    return { status: 202, body: null };
  }

  /** Refusals of unsigned or forged pushes not written yet, per transmitter and code. */
  private readonly unsigned = new Map<
    string,
    { id: string; code: string; count: number; at: number; description: string }
  >();
  private readonly unsignedWrittenAt = new Map<string, number>();

  /** The first refusal after a quiet second is written before the answer; the next ones within it, by a timer. */
  private async countUnsigned(id: string, refusal: SetRefusal, now: number): Promise<void> {
    const key = `${id} ${refusal.code}`;
    const pending = this.unsigned.get(key);
    if (pending !== undefined) {
      pending.count += 1;
      pending.at = now;
      pending.description = refusal.message;
      return;
    }
    this.unsigned.set(key, { id, code: refusal.code, count: 1, at: now, description: refusal.message });
    const wait = (this.unsignedWrittenAt.get(key) ?? Number.NEGATIVE_INFINITY) + 1000 - performance.now();
    const write = async () => {
      const entry = this.unsigned.get(key);
      this.unsigned.delete(key);
      this.unsignedWrittenAt.set(key, performance.now());
      if (entry === undefined) return;
      await this.deps.store.ssfInbound.recordRejection(entry.id, entry.code, entry.at, entry.description, entry.count);
    };
    if (wait <= 0) {
      await write();
      return;
    }
    setTimeout(() => {
      write().catch((error: unknown) =>
        this.deps.logger.warn({ err: error, transmitter: id }, 'counting refused pushes failed'),
      );
    }, wait).unref();
  }

  /** Counts a refusal for the admin console; a refusal of a signed SET is also an event (its claims are authentic). */
  private async refused(t: TransmitterRecord, refusal: SetRefusal): Promise<void> {
    const now = this.deps.clock();
    try {
      if (!refusal.authentic) {
        // Anyone can send these: counted in memory and written at most once a second per transmitter and
        // code, so a flood of forged pushes costs the database one write a second, not one per request.
        await this.countUnsigned(t.id, refusal, now);
        return;
      }
      await this.deps.store.ssfInbound.recordRejection(t.id, refusal.code, now, refusal.message);
      await this.deps.events.record({
        type: 'ssf-set-refused',
        subject: {},
        outcome: 'failure',
        reasons: [refusal.code.toLowerCase().replace(/_/g, '-')],
        detail: {
          transmitter: t.id,
          iss: refusal.claims?.iss ?? null,
          jti: refusal.claims?.jti ?? null,
          code: refusal.code,
          err: refusal.err,
          description: refusal.message.slice(0, 500),
        },
      });
    } catch (error) {
      this.deps.logger.warn({ err: error, transmitter: t.id, code: refusal.code }, 'recording a refused SET failed');
    }
  }

  private async act(t: TransmitterRecord, set: ValidSet): Promise<void> {
    const name =
      set.type.startsWith(CAEP) || set.type.startsWith(RISC) ? set.type.slice(set.type.lastIndexOf('/') + 1) : set.type;
    let operatorId: string | undefined;
    for (const candidate of candidates(set.subject)) {
      const key = identifierOf(candidate);
      if (key === undefined) continue;
      operatorId = (await this.deps.store.ssfInbound.findIdentity(key.format, key.identifier))?.operatorId;
      if (operatorId !== undefined) break;
    }
    const actor = `ssf:${t.id}`;
    const why = reasonOf(set, name, t.issuer);
    const epochs: number[] = [];
    let action: Action;
    if (!set.known) action = 'ignored-unknown-event';
    else if (operatorId === undefined) action = 'ignored-unknown-subject';
    else action = await this.apply(set, name, operatorId, why, actor, epochs);
    const now = this.deps.clock();
    await this.deps.events.atomically(async (uow) => {
      await uow.store.ssfInbound.recordAccepted(t.id, now, set.jti, action);
      await uow.record({
        type: 'ssf-set-received',
        subject: operatorId === undefined ? {} : { operator: operatorId },
        outcome: action.startsWith('ignored') || action === 'recorded' ? 'info' : 'success',
        reasons: [`ssf-${action}`],
        detail: {
          transmitter: t.id,
          iss: set.iss,
          jti: set.jti,
          event: set.type.slice(0, 500),
          action,
          epochs: epochs.join(' ') || null,
          txn: set.txn ?? null,
        },
      });
    });
  }

  private async apply(
    set: ValidSet,
    name: string,
    operatorId: string,
    why: string,
    actor: string,
    epochs: number[],
  ): Promise<Action> {
    const { store, revocations } = this.deps;
    const revoke = async (kind: 'operator' | 'credential' | 'session', id: string): Promise<boolean> => {
      try {
        epochs.push((await revocations.revoke(kind, id, why, actor)).revocation.epoch);
        return true;
      } catch (error) {
        // Already revoked or ended meanwhile: nothing left to do for this one.
        if (error instanceof BatonError && /_REVOKED$|SESSION_NOT_ACTIVE|SESSION_UNKNOWN/.test(error.code))
          return false;
        throw error;
      }
    };
    const sessions = async (): Promise<Action> => {
      let any = false;
      for (const s of await store.sessions.liveForOperator(operatorId)) any = (await revoke('session', s.id)) || any;
      return any ? 'sessions-revoked' : 'nothing-to-revoke';
    };
    const credentials = async (aaguid?: string): Promise<Action> => {
      let any = false;
      for (const c of await store.operators.listCredentials(operatorId)) {
        if (c.revokedAt !== null) continue;
        if (aaguid !== undefined && c.aaguid.toLowerCase() !== aaguid.toLowerCase()) continue;
        any = (await revoke('credential', c.id)) || any;
      }
      return any ? 'credentials-revoked' : 'nothing-to-revoke';
    };
    switch (name) {
      case 'account-disabled':
      case 'account-purged': {
        const operator = await store.operators.get(operatorId);
        if (operator === undefined || operator.revokedAt !== null) return 'already-revoked';
        try {
          // Only an admin can be the last one (the check reads every admin's passkeys): not before every push.
          if (operator.roles.includes('admin')) await this.deps.assertNotLastAdmin(operatorId);
        } catch (error) {
          if (error instanceof BatonError && error.code === 'LAST_ADMIN') {
            // The last admin keeps Baton: their sessions end, the account stays (an admin decides).
            await sessions();
            return 'last-admin-kept';
          }
          throw error;
        }
        return (await revoke('operator', operatorId)) ? 'operator-revoked' : 'already-revoked';
      }
      case 'credential-compromise':
        return credentials();
      case 'sessions-revoked':
      case 'session-revoked':
        return sessions();
      case 'credential-change': {
        const change = set.event.change_type;
        if (change !== 'revoke' && change !== 'delete') return 'recorded';
        const aaguid = typeof set.event.fido2_aaguid === 'string' ? set.event.fido2_aaguid : undefined;
        // A Baton passkey named by its AAGUID is revoked; another credential of the upstream's (a
        // password, an upstream passkey) ends the sessions that may rest on it.
        return aaguid !== undefined ? credentials(aaguid) : sessions();
      }
      default:
        // account-enabled, identifier-changed: recorded; a revocation is never undone by a signal.
        return 'recorded';
    }
  }

  private async transmitter(id: string): Promise<TransmitterRecord> {
    const t = await this.deps.store.ssfInbound.getTransmitter(id);
    if (t === undefined) throw new BatonError('NOT_FOUND', `No transmitter "${id}"`);
    return t;
  }

  private async view(t: TransmitterRecord): Promise<TransmitterView> {
    return {
      id: t.id,
      name: t.name,
      issuer: t.issuer,
      audience: t.audience,
      configurationUrl: t.configurationUrl,
      jwksUri: t.jwksUri,
      pinnedJwks: t.pinnedJwks !== null,
      maxAgeSeconds: t.maxAgeSeconds,
      streamId: t.streamId,
      createdAt: t.createdAt,
      createdBy: t.createdBy,
      disabledAt: t.disabledAt,
      accepted: t.accepted,
      lastSetAt: t.lastSetAt,
      lastJti: t.lastJti,
      lastAction: t.lastAction,
      pushPath: pushPathOf(t.id),
      rejections: await this.deps.store.ssfInbound.rejections(t.id),
    };
  }

  private async upstreamConfiguration(
    url: string,
  ): Promise<{ issuer: string; jwks_uri: string; configuration_endpoint?: string }> {
    let body: unknown;
    const deadline = lagAwareTimeoutSignal(this.deps.upstreamTimeoutMs ?? UPSTREAM_TIMEOUT_MS);
    try {
      const answer = await this.fetch(url, {
        headers: { accept: 'application/json' },
        signal: deadline.signal,
      });
      if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
      body = await answer.json();
    } catch (cause) {
      throw new BatonError('SSF_UPSTREAM_INVALID', `The upstream's configuration (${url}) could not be read`, {
        cause,
      });
    } finally {
      deadline.clear();
    }
    const parsed = z
      .looseObject({
        issuer: z.string().min(1),
        jwks_uri: HttpUrl,
        configuration_endpoint: HttpUrl.optional(),
      })
      .safeParse(body);
    if (!parsed.success)
      throw new BatonError('SSF_UPSTREAM_INVALID', `The upstream's configuration lacks issuer or a usable jwks_uri`);
    return parsed.data;
  }
}

/** The reason pushed to consoles and recorded with the revocation. */
function reasonOf(set: ValidSet, name: string, issuer: string): string {
  const admin = set.event.reason_admin;
  const text =
    typeof admin === 'object' && admin !== null
      ? ((admin as Record<string, unknown>).en ?? Object.values(admin as Record<string, unknown>)[0])
      : undefined;
  const base = `Shared Signals ${name} from ${issuer}`;
  return (typeof text === 'string' && text !== '' ? `${base}: ${text}` : base).slice(0, 300);
}

/** RFC 8935's error body, with Baton's stable code beside it. */
export function refusal(error: SetRefusal): PushAnswer {
  const status =
    error.code === 'SSF_PUSH_AUTH_FAILED'
      ? 401
      : error.code === 'SSF_TRANSMITTER_UNKNOWN'
        ? 403
        : error.code === 'SSF_KEYS_UNAVAILABLE'
          ? 503
          : 400;
  return {
    status,
    body: {
      err: error.err satisfies PushErr,
      description: `${error.message} (${error.code})`,
      error: { code: error.code, message: error.message },
    },
  };
}
