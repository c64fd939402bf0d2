/**
 * Baton as a Shared Signals receiver (issue 13): upstream transmitters an admin registers, the RFC
 * 8935 push endpoint's handling of each SET (validated first: set-validator.ts), subjects mapped to
 * operators through linked identities, and the actions: revocations through the existing path
 * (RevocationHub.revoke, pushed to every console), each recorded as an `ssf-set-received` event
 * carrying the SET's `jti` and issuer. A source is enabled, paused (its valid SETs are held, acting on
 * no one, and applied in order when it is resumed) or disabled (refused, nothing held); for a stream
 * Baton created at the upstream, a status change is asked of the upstream too, and a verification
 * event can be asked for and matched by its `state`.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { createLocalJWKSet, type JSONWebKeySet } from 'jose';
import type { Logger } from 'pino';
import { z } from 'zod';
import { BatonError } from '../../../shared/errors.js';
import { constantTimeEqualHex, newId, newSecretToken, sha256Hex } from '../../crypto/secrets.js';
import { lagAwareTimeoutSignal } from '../../lag-aware-timer.js';
import type { Store } from '../../store/repositories.js';
import type { EventLog } from '../../services/event-log.js';
import type { RevocationHub, RevokeHooks } from '../../services/revocation-hub.js';
import { HELD_CLAIM_LEASE_MS, HeldClaimLost, appliedMarks, claimHooks, type HeldClaim } from './held-claims.js';
import {
  SOURCE_STATUSES,
  type HeldSet,
  type IdentityRecord,
  type SourceStatus,
  type TransmitterRecord,
} from './repository.js';
import {
  CAEP,
  JTI_KIND,
  RISC,
  SSF_STREAM_UPDATED,
  SSF_VERIFICATION,
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

/** The upstream's bearer token for its stream management API: used for the one request, never stored. */
const AccessToken = z.string().min(1).max(4096);

export const SourceStatusSchema = z.strictObject({
  status: z.enum(SOURCE_STATUSES),
  reason: z.string().trim().max(500).optional(),
  /** With it, the stream Baton created at the upstream is asked to take the same status (SSF 1.0 status endpoint). */
  accessToken: AccessToken.optional(),
});

export const VerifySourceSchema = z.strictObject({ accessToken: AccessToken });

export const LinkIdentitySchema = z.discriminatedUnion('format', [
  z.strictObject({ format: z.literal('email'), email: z.email().max(320) }),
  z.strictObject({ format: z.literal('iss_sub'), iss: z.string().min(1).max(512), sub: z.string().min(1).max(512) }),
  z.strictObject({ format: z.literal('opaque'), id: z.string().min(1).max(512) }),
]);

/** How long a request to an upstream transmitter may take, reading its answer included. */
const UPSTREAM_TIMEOUT_MS = 10_000;

/** The most SETs a paused source holds; past it a push gets 503 SSF_SOURCE_HOLD_FULL and the upstream retries later. */
export const MAX_HELD_SETS = 10_000;
/** Held SETs applied per read when a source is resumed. */
const DRAIN_BATCH = 100;

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
  status: SourceStatus;
  statusReason: string | null;
  statusChangedAt: number | null;
  statusChangedBy: string | null;
  /** Valid SETs held while paused (applied when resumed), those a resume is applying included. */
  held: number;
  /** What the upstream last said about its stream's status (Baton's request, or its `stream-updated` SET). */
  upstreamStatus: UpstreamStatus | null;
  /** Whether Baton created a stream at the upstream, so a verification event (and a status change there) can be asked for. */
  verifiable: boolean;
  verification: {
    state: string;
    requestedAt: number;
    receivedAt: number | null;
    tookMs: number | null;
    jti: string | null;
    error: string | null;
  } | null;
}

/** What the upstream said about its stream's status, kept with the source (JSON in `upstream_status`). */
export interface UpstreamStatus {
  at: number;
  /**
   * `status-endpoint`: Baton asked it (SSF 1.0 status endpoint) and this is its answer; `not-asked`: the source's
   * status changed without an access token, so the upstream's stream was left as it was; `stream-updated`: the
   * upstream announced a change itself.
   */
  via: 'status-endpoint' | 'not-asked' | 'stream-updated';
  /** The status Baton asked for (status-endpoint, not-asked). */
  asked?: SourceStatus;
  ok: boolean;
  httpStatus?: number;
  /** The status the upstream reports for its stream. */
  status?: string;
  reason?: string;
  error?: string;
}

const UpstreamStatusSchema = z.looseObject({
  at: z.number(),
  via: z.enum(['status-endpoint', 'not-asked', 'stream-updated']),
  asked: z.enum(SOURCE_STATUSES).optional(),
  ok: z.boolean(),
  httpStatus: z.number().optional(),
  status: z.string().optional(),
  reason: z.string().optional(),
  error: z.string().optional(),
});

/** The answer to a status change: the source as it is now, what the upstream said, and what became of held SETs. */
export interface StatusChange {
  transmitter: TransmitterView;
  previousStatus: SourceStatus;
  changed: boolean;
  /** null when the source has no stream Baton created at the upstream (nothing to ask). */
  upstream: UpstreamStatus | null;
  /** Resumed: held SETs applied now, and those left (an error stopped the run; resuming again goes on). */
  applied?: number;
  remaining?: number;
  /** Disabled: the held SETs dropped (not those a resume had claimed: they are applied to the end). */
  droppedSets?: number;
}

export function pushPathOf(id: string): string {
  return `/ssf/receiver/${encodeURIComponent(id)}/events`;
}

/** What an inbound event does (the `action` recorded). */
type Action =
  | 'held'
  | 'verified'
  | 'verification-unmatched'
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
      status: 'enabled',
      statusReason: null,
      statusChangedAt: null,
      statusChangedBy: null,
      upstreamStatus: null,
      verifyState: null,
      verifyRequestedAt: null,
      verifyReceivedAt: null,
      verifyJti: null,
      verifyError: null,
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

  /** `DELETE …/transmitters/:id`: disables the source (as `setStatus` with `disabled`); an already disabled one is refused. */
  async disable(id: string, actor: string): Promise<TransmitterView> {
    const t = await this.transmitter(id);
    if (t.status === 'disabled') {
      throw new BatonError('SSF_TRANSMITTER_UNKNOWN', `The transmitter "${id}" is already disabled`);
    }
    return (await this.setStatus(id, { status: 'disabled' }, actor)).transmitter;
  }

  /**
   * Pauses, resumes or disables a source. The local change comes first, in one unit of work with its
   * `admin-action` event (`ssf-transmitter-<status>`: actor, previous and new status, reason; the row locked, so of
   * two changes at once the second records the first's status as previous): it takes effect whatever the upstream
   * does. Paused: valid SETs are held (202), acting on no one. Disabled: pushes are refused and the held SETs dropped
   * (their jtis in the event), but for those a resume claimed before it (`claimedSets`: applied to the end, see
   * `drainHeld`). Resumed: the held SETs are applied, oldest first. Then, for a stream Baton created at
   * the upstream and with the upstream's access token, the upstream is asked to set its stream to the same status;
   * its answer (or why it could not be reached) is kept with the source, recorded, and returned — never an error.
   */
  async setStatus(id: string, input: z.infer<typeof SourceStatusSchema>, actor: string): Promise<StatusChange> {
    const reason = input.reason === undefined || input.reason === '' ? null : input.reason;
    const now = this.deps.clock();
    const local = await this.deps.events.atomically(async (uow) => {
      const repo = uow.store.ssfInbound;
      const current = (await repo.lockTransmitter(id)) ? await repo.getTransmitter(id) : undefined;
      if (current === undefined) throw new BatonError('NOT_FOUND', `No transmitter "${id}"`);
      if (current.status === input.status && current.statusReason === reason) {
        return { previous: current.status, changed: false, dropped: [] as string[], record: current };
      }
      // Disabled: nothing is held for it (as a transmitter's disabled stream holds nothing, SSF 1.0 §8.1.2.1), but
      // for the SETs a resume claimed before (being applied, or partly applied by a node that died): they are not
      // taken back, and are applied to the end (by the next resume if their claimant died).
      // Leaving disabled: a SET kept by the disable for a resume that has since died, with nothing applied for it,
      // goes now (it came from the time the source was doubted); one partly applied is finished by the resume.
      const dropped = input.status === 'disabled' || current.status === 'disabled' ? await repo.dropHeld(id, now) : [];
      const held = await repo.heldCount(id);
      await repo.setStatus(id, input.status, reason, now, actor);
      await uow.record({
        type: 'admin-action',
        subject: {},
        outcome: 'success',
        reasons: [`ssf-transmitter-${input.status}`],
        detail: {
          actor,
          transmitter: id,
          previousStatus: current.status,
          status: input.status,
          reason,
          ...(input.status === 'disabled'
            ? {
                droppedSets: dropped.length,
                droppedJtis: dropped.slice(0, 100).join(' ') || null,
                ...(held > 0 ? { claimedSets: held } : {}),
              }
            : {
                heldSets: held,
                ...(current.status === 'disabled'
                  ? { droppedSets: dropped.length, droppedJtis: dropped.slice(0, 100).join(' ') || null }
                  : {}),
              }),
        },
      });
      return { previous: current.status, changed: true, dropped, record: current };
    });
    if (input.status === 'disabled') this.keys.forget(id);

    const change: Omit<StatusChange, 'transmitter' | 'upstream'> = {
      previousStatus: local.previous,
      changed: local.changed,
    };
    if (input.status === 'disabled' || local.previous === 'disabled') change.droppedSets = local.dropped.length;
    // Resumed: what was held is applied first, then the upstream is told (what it held comes after).
    if (input.status === 'enabled') Object.assign(change, await this.drainHeld(id));

    let upstream: UpstreamStatus | null = null;
    const t = local.record;
    if (t.streamId !== null && t.configurationUrl !== null) {
      if (input.accessToken !== undefined) {
        upstream = await this.askUpstreamStatus(t, input.status, reason, input.accessToken, actor);
      } else if (local.changed) {
        upstream = {
          at: this.deps.clock(),
          via: 'not-asked',
          asked: input.status,
          ok: false,
          error: 'no access token was given: the upstream stream keeps its status',
        };
        await this.deps.store.ssfInbound.setUpstreamStatus(id, JSON.stringify(upstream));
      } else {
        upstream = upstreamStatusOf(t.upstreamStatus);
      }
    }
    return { ...change, upstream, transmitter: await this.get(id) };
  }

  /** SSF 1.0 §8.1.2.2: POST {stream_id, status, reason} to the upstream's status endpoint; the answer, recorded. */
  private async askUpstreamStatus(
    t: TransmitterRecord,
    status: SourceStatus,
    reason: string | null,
    accessToken: string,
    actor: string,
  ): Promise<UpstreamStatus> {
    let answer: UpstreamStatus;
    try {
      const configurationUrl = t.configurationUrl ?? '';
      const config = await this.upstreamConfiguration(configurationUrl);
      if (config.status_endpoint === undefined) throw new Error('the upstream publishes no status_endpoint');
      const endpoint = pinnedEndpoint(configurationUrl, 'status_endpoint', config.status_endpoint);
      const result = await this.upstreamPost(endpoint, accessToken, {
        stream_id: t.streamId,
        status,
        ...(reason === null ? {} : { reason }),
      });
      const body = (typeof result.body === 'object' && result.body !== null ? result.body : {}) as Record<
        string,
        unknown
      >;
      answer = {
        at: this.deps.clock(),
        via: 'status-endpoint',
        asked: status,
        ok: result.ok,
        httpStatus: result.status,
        ...(typeof body.status === 'string' ? { status: body.status.slice(0, 32) } : {}),
        ...(typeof body.reason === 'string' ? { reason: body.reason.slice(0, 500) } : {}),
        ...(result.ok ? {} : { error: `the upstream answered HTTP ${result.status}` }),
      };
    } catch (cause) {
      const message = cause instanceof BatonError ? `${cause.message} (${cause.code})` : fetchFailure(cause);
      answer = {
        at: this.deps.clock(),
        via: 'status-endpoint',
        asked: status,
        ok: false,
        error: `the upstream could not be reached: ${message}`.slice(0, 500),
      };
    }
    await this.deps.events.atomically(async (uow) => {
      await uow.store.ssfInbound.setUpstreamStatus(t.id, JSON.stringify(answer));
      await uow.record({
        type: 'admin-action',
        subject: {},
        outcome: answer.ok ? 'success' : 'failure',
        reasons: ['ssf-transmitter-upstream-status'],
        detail: {
          actor,
          transmitter: t.id,
          stream: (t.streamId ?? '').slice(0, 200),
          asked: status,
          httpStatus: answer.httpStatus ?? null,
          upstreamStatus: answer.status ?? null,
          error: answer.error ?? null,
        },
      });
    });
    return answer;
  }

  /**
   * Applies a resumed source's held SETs, oldest first, each as if it had just arrived (`ssf-set-received` with
   * `heldSince`): at least once, and once in effect (held-claims.ts). Each is claimed before it is applied, in a unit
   * of its own: the source's row locked (as a status change and a hold take it), its status read under that lock
   * (`enabled`, or the run stops: paused again, or disabled and what it held dropped), and the held row marked with
   * this claim and a lease (HELD_CLAIM_LEASE_MS), if no other resume holds it (one that is applying it, or a node
   * that died less than a lease ago). Each revocation applied for it checks the claim and marks the row in its own
   * unit; the row is deleted in the unit that records the SET, by the claim that holds it. So a SET is applied by one
   * resume at a time; a disable drops no SET a resume claimed (it is applied to the end); a node that dies between
   * the claim and the record leaves the row claimed, with what it revoked, for the next resume on any node once the
   * lease has run out, which revokes what is left, nothing twice, and records the SET once with every revocation made
   * for it. If applying fails, the claim is released (the SET is held again in its place, with what was applied for
   * it) and the run stops.
   */
  private async drainHeld(id: string): Promise<{ applied: number; remaining: number }> {
    const inbound = this.deps.store.ssfInbound;
    let applied = 0;
    try {
      for (;;) {
        const batch = await inbound.heldSets(id, DRAIN_BATCH, this.deps.clock());
        if (batch.length === 0) break;
        for (const held of batch) {
          const claim = await this.claimHeld(id, held.jti);
          // Paused or disabled again meanwhile: the rest waits (or was dropped).
          if (claim === 'stopped') return { applied, remaining: await inbound.heldCount(id) };
          if (claim === 'gone') continue; // applied, or being applied, by another resume
          let outcome: 'applied' | 'taken-over';
          try {
            outcome = await this.act(claim.source, heldSetOf(held), { since: held.receivedAt, ...claim });
          } catch (error) {
            await this.releaseHeld(id, held.jti, claim.claim);
            throw error;
          }
          if (outcome === 'applied') applied += 1;
        }
      }
    } catch (error) {
      this.deps.logger.warn({ err: error, transmitter: id, applied }, 'applying held SETs stopped');
    }
    return { applied, remaining: await inbound.heldCount(id) };
  }

  /** Claims one held SET for applying (see `drainHeld`): the source as it is and the claim, `stopped` unless enabled, `gone`. */
  private async claimHeld(
    id: string,
    jti: string,
  ): Promise<(HeldClaim & { source: TransmitterRecord }) | 'stopped' | 'gone'> {
    const claim = newId('hclaim');
    return this.deps.events.atomically(async (uow) => {
      const repo = uow.store.ssfInbound;
      const current = (await repo.lockTransmitter(id)) ? await repo.getTransmitter(id) : undefined;
      if (current?.status !== 'enabled') return 'stopped';
      const now = this.deps.clock();
      const taken = await repo.claimHeld(id, jti, claim, now + HELD_CLAIM_LEASE_MS, now);
      return taken === undefined ? 'gone' : { source: current, claim, applied: taken.applied };
    });
  }

  /**
   * A claimed SET that could not be applied is held again, in its place, with what was applied for it; for a source
   * disabled meanwhile, one nothing was applied for is dropped (as the disable dropped the others).
   */
  private async releaseHeld(id: string, jti: string, claim: string): Promise<void> {
    try {
      const dropped = await this.deps.events.atomically(async (uow) => {
        const repo = uow.store.ssfInbound;
        const current = (await repo.lockTransmitter(id)) ? await repo.getTransmitter(id) : undefined;
        const released = await repo.releaseHeld(id, jti, claim);
        if (released === undefined || released.applied !== null || current?.status !== 'disabled') return false;
        return repo.deleteHeld(id, jti);
      });
      if (dropped) this.deps.logger.warn({ transmitter: id, jti }, 'a held SET not applied was dropped: disabled');
    } catch (error) {
      // The claim stays until its lease runs out; then the next resume takes the SET over.
      this.deps.logger.error({ err: error, transmitter: id, jti }, 'a held SET not applied could not be released');
    }
  }

  /**
   * Asks the upstream for a verification event (SSF 1.0 §8.1.4: POST {stream_id, state} to its
   * `verification_endpoint`) with a fresh `state`. The state is stored first (the event may arrive before the
   * upstream's answer); the SET that carries it back (push) is recorded as the answer: `verification.receivedAt`.
   */
  async verify(
    id: string,
    input: z.infer<typeof VerifySourceSchema>,
    actor: string,
  ): Promise<{ state: string; requestedAt: number; transmitter: TransmitterView }> {
    const t = await this.transmitter(id);
    if (t.streamId === null || t.configurationUrl === null) {
      throw new BatonError(
        'SSF_SOURCE_NO_STREAM',
        `The source "${id}" has no stream Baton created at its upstream (it only pushes to Baton): there is nothing to ask for a verification event`,
      );
    }
    if (t.status !== 'enabled') {
      throw new BatonError('SSF_SOURCE_NOT_ENABLED', `The source "${id}" is ${t.status}: resume it before verifying`);
    }
    const config = await this.upstreamConfiguration(t.configurationUrl);
    if (config.verification_endpoint === undefined) {
      throw new BatonError('SSF_UPSTREAM_INVALID', 'The upstream publishes no verification_endpoint');
    }
    const verificationEndpoint = pinnedEndpoint(
      t.configurationUrl,
      'verification_endpoint',
      config.verification_endpoint,
    );
    const state = `baton-${randomBytes(16).toString('base64url')}`;
    const requestedAt = this.deps.clock();
    await this.deps.store.ssfInbound.setVerifyRequested(id, state, requestedAt);
    let failure: string | undefined;
    try {
      const result = await this.upstreamPost(verificationEndpoint, input.accessToken, {
        stream_id: t.streamId,
        state,
      });
      if (!result.ok) failure = `the upstream answered HTTP ${result.status}`;
    } catch (cause) {
      failure = `the upstream could not be reached: ${fetchFailure(cause)}`;
    }
    if (failure !== undefined) {
      await this.deps.store.ssfInbound.setVerifyError(id, state, failure);
      throw new BatonError('SSF_UPSTREAM_INVALID', `The verification request was refused: ${failure}`);
    }
    this.deps.logger.info({ transmitter: id, actor }, 'Shared Signals verification asked of an upstream by an admin');
    return { state, requestedAt, transmitter: await this.get(id) };
  }

  /**
   * A JSON POST to the upstream's stream management API with its bearer token, within the upstream deadline. A
   * redirect is not followed (it fails: the token and body go only where the configuration said).
   */
  private async upstreamPost(
    url: string,
    accessToken: string,
    body: unknown,
  ): Promise<{ ok: boolean; status: number; body: unknown }> {
    const deadline = lagAwareTimeoutSignal(this.deps.upstreamTimeoutMs ?? UPSTREAM_TIMEOUT_MS);
    try {
      const answer = await this.fetch(url, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${accessToken}`,
          'content-type': 'application/json',
          accept: 'application/json',
        },
        body: JSON.stringify(body),
        signal: deadline.signal,
        redirect: 'error',
      });
      const text = await answer.text();
      let parsed: unknown;
      try {
        parsed = text === '' ? undefined : JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      return { ok: answer.ok, status: answer.status, body: parsed };
    } finally {
      deadline.clear();
    }
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
    if (t.status === 'disabled') throw new BatonError('SSF_TRANSMITTER_UNKNOWN', `The transmitter "${id}" is disabled`);
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
    const configurationEndpoint = pinnedEndpoint(
      t.configurationUrl,
      'configuration_endpoint',
      config.configuration_endpoint,
    );
    const pushToken = newSecretToken('bssf');
    const endpoint = `${(input.endpointBaseUrl ?? requestBase).replace(/\/$/, '')}${pushPathOf(id)}`;
    const deadline = lagAwareTimeoutSignal(this.deps.upstreamTimeoutMs ?? UPSTREAM_TIMEOUT_MS);
    let answer: Response;
    try {
      answer = await this.fetch(configurationEndpoint, {
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
        redirect: 'error',
      });
    } catch (cause) {
      deadline.clear();
      throw new BatonError(
        'SSF_UPSTREAM_INVALID',
        `The upstream's configuration endpoint could not be reached: ${fetchFailure(cause)}`,
        { cause },
      );
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
    // Disabled: refused before anything else (and alike for an unknown id: an anonymous caller learns nothing).
    if (t === undefined || t.status === 'disabled') {
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
    // In a unit of work: durable before the transmitter is told to retry. Taken outside one, SQLite commits
    // it without a flush (sqlite-ephemeral.ts), and a power loss could restore the claim: the retry of a
    // signal never acted on would then be refused as a replay, and the signal lost.
    const release = () =>
      this.deps.store
        .transaction((tx) => tx.ephemeral.take(JTI_KIND, jtiKey(t.id, set.jti)))
        .catch((error: unknown) =>
          this.deps.logger.error(
            { err: error, transmitter: t.id, jti: set.jti },
            'a SET not acted on could not be released',
          ),
        );
    try {
      // Paused: a SET that could act on an operator is held, not acted on; SSF's own events about the stream
      // (verification, stream-updated) act on no one and are taken as they come.
      if (t.status === 'paused' && !isStreamEvent(set)) {
        const held = await this.hold(t, set);
        if (held === 'held') return { status: 202, body: null };
        if (held !== 'enabled') {
          // Not kept: the jti is released, so the transmitter's retry is judged afresh.
          await release();
          const refused =
            held === 'full'
              ? new SetRefusal(
                  'SSF_SOURCE_HOLD_FULL',
                  'access_denied',
                  `This source is paused and already holds ${MAX_HELD_SETS} SETs: retry later`,
                  true,
                  { jti: set.jti, iss: set.iss },
                )
              : new SetRefusal('SSF_TRANSMITTER_UNKNOWN', 'access_denied', 'No enabled transmitter is registered here');
          if (held === 'full') await this.refused(t, refused);
          return refusal(refused);
        }
        // Resumed meanwhile: acted on as usual.
      }
      await this.act(t, set);
    } catch (error) {
      // Not acted on: the jti is released so the transmitter's retry is accepted, and it is told to retry.
      await release();
      throw error;
    }
    return { status: 202, body: null };
  }

  /**
   * Holds a valid SET of a paused source (its row locked, its status read again: a resume or a disable meanwhile
   * wins), recorded as `ssf-set-received` with action `held` in the same unit. `enabled`: the source was resumed
   * meanwhile (act on it); `disabled`: refuse it; `full`: it already holds MAX_HELD_SETS.
   */
  private async hold(t: TransmitterRecord, set: ValidSet): Promise<'held' | 'enabled' | 'disabled' | 'full'> {
    const operatorId = await this.operatorOf(set);
    const now = this.deps.clock();
    return this.deps.events.atomically(async (uow) => {
      const repo = uow.store.ssfInbound;
      const current = (await repo.lockTransmitter(t.id)) ? await repo.getTransmitter(t.id) : undefined;
      if (current === undefined || current.status === 'disabled') return 'disabled';
      if (current.status === 'enabled') return 'enabled';
      if ((await repo.heldCount(t.id)) >= MAX_HELD_SETS) return 'full';
      await repo.holdSet(t.id, { jti: set.jti, receivedAt: now, set: JSON.stringify(set) });
      await repo.recordAccepted(t.id, now, set.jti, 'held');
      await uow.record({
        type: 'ssf-set-received',
        subject: operatorId === undefined ? {} : { operator: operatorId },
        outcome: 'info',
        reasons: ['ssf-held'],
        detail: {
          transmitter: t.id,
          iss: set.iss,
          jti: set.jti,
          event: set.type.slice(0, 500),
          action: 'held',
          epochs: null,
          txn: set.txn ?? null,
        },
      });
      return 'held';
    });
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

  /** The operator a SET's subject maps to (an SSF event about the stream itself names no one). */
  private async operatorOf(set: ValidSet): Promise<string | undefined> {
    if (isStreamEvent(set)) return undefined;
    for (const candidate of candidates(set.subject)) {
      const key = identifierOf(candidate);
      if (key === undefined) continue;
      const operatorId = (await this.deps.store.ssfInbound.findIdentity(key.format, key.identifier))?.operatorId;
      if (operatorId !== undefined) return operatorId;
    }
    return undefined;
  }

  /**
   * Acts on one valid SET. `held`: a held SET applied on resume, claimed first (`drainHeld`): its revocations check
   * and mark the claim, and its row is deleted with the event that records it; `taken-over` when the claim lost it
   * meanwhile (another resume took it over after the lease, and records it: nothing recorded here).
   */
  private async act(
    t: TransmitterRecord,
    set: ValidSet,
    held?: HeldClaim & { since: number },
  ): Promise<'applied' | 'taken-over'> {
    const name =
      set.type.startsWith(CAEP) || set.type.startsWith(RISC) ? set.type.slice(set.type.lastIndexOf('/') + 1) : set.type;
    const operatorId = await this.operatorOf(set);
    const actor = `ssf:${t.id}`;
    const why = reasonOf(set, name, t.issuer);
    let epochs: number[] = [];
    let action: Action | undefined;
    const marks = held === undefined ? undefined : appliedMarks(held.applied);
    const claimed =
      held === undefined || marks === undefined
        ? undefined
        : { prior: marks.kinds, since: marks.since, hooks: claimHooks(t.id, set.jti, held.claim, this.deps.clock) };
    try {
      if (isStreamEvent(set))
        action = undefined; // decided in the unit below
      else if (!set.known) action = 'ignored-unknown-event';
      else if (operatorId === undefined) action = 'ignored-unknown-subject';
      else action = await this.apply(set, name, operatorId, why, actor, epochs, claimed);
    } catch (error) {
      if (!(error instanceof HeldClaimLost)) throw error;
      this.deps.logger.info({ transmitter: t.id, jti: set.jti }, 'a held SET being applied was taken over');
      return 'taken-over';
    }
    const now = this.deps.clock();
    return this.deps.events.atomically(async (uow) => {
      const repo = uow.store.ssfInbound;
      if (held !== undefined) {
        // Deleted with the event that records it, by the claim that holds it (the source's row first: lock order).
        await repo.lockTransmitter(t.id);
        const finished = await repo.finishHeld(t.id, set.jti, held.claim);
        if (finished === undefined) return 'taken-over';
        // Every revocation made for it: this resume's, and those of a resume that died applying it.
        epochs = appliedMarks(finished.applied).epochs;
      }
      let taken: Action = action ?? 'recorded';
      if (set.type === SSF_VERIFICATION) {
        // The answer to Baton's request only when it carries the state Baton is waiting for.
        const state = set.event.state;
        taken =
          typeof state === 'string' && (await repo.markVerified(t.id, state, now, set.jti))
            ? 'verified'
            : 'verification-unmatched';
      } else if (set.type === SSF_STREAM_UPDATED) {
        const said: UpstreamStatus = {
          at: now,
          via: 'stream-updated',
          ok: true,
          status: String(set.event.status),
          ...(typeof set.event.reason === 'string' ? { reason: set.event.reason.slice(0, 500) } : {}),
        };
        await repo.setUpstreamStatus(t.id, JSON.stringify(said));
      }
      await repo.recordAccepted(t.id, now, set.jti, taken, held === undefined);
      await uow.record({
        type: 'ssf-set-received',
        subject: operatorId === undefined ? {} : { operator: operatorId },
        outcome:
          taken.startsWith('ignored') || taken === 'recorded' || taken === 'verification-unmatched'
            ? 'info'
            : 'success',
        reasons: [`ssf-${taken}`],
        detail: {
          transmitter: t.id,
          iss: set.iss,
          jti: set.jti,
          event: set.type.slice(0, 500),
          action: taken,
          epochs: epochs.join(' ') || null,
          txn: set.txn ?? null,
          ...(held === undefined ? {} : { heldSince: held.since }),
        },
      });
      return 'applied';
    });
  }

  /**
   * The revocations a SET asks for. `claimed`: a held SET's claim (`act`): its revocations carry the claim's hooks,
   * and `prior` holds the kinds a resume that died applying it revoked already (found revoked now, they still count
   * as this SET's doing); `since`, the time of its first revocation: only sessions and passkeys that existed then are
   * this SET's business (one the operator started after the dead resume's revocations is left alone).
   */
  private async apply(
    set: ValidSet,
    name: string,
    operatorId: string,
    why: string,
    actor: string,
    epochs: number[],
    claimed?: { prior: ReadonlySet<string>; since: number | undefined; hooks: RevokeHooks },
  ): Promise<Action> {
    const { store, revocations } = this.deps;
    const prior = claimed?.prior ?? new Set<string>();
    const since = claimed?.since ?? Number.POSITIVE_INFINITY;
    const revoke = async (kind: 'operator' | 'credential' | 'session', id: string): Promise<boolean> => {
      try {
        epochs.push((await revocations.revoke(kind, id, why, actor, claimed?.hooks)).revocation.epoch);
        return true;
      } catch (error) {
        // Already revoked or ended meanwhile: nothing left to do for this one.
        if (error instanceof BatonError && /_REVOKED$|SESSION_NOT_ACTIVE|SESSION_UNKNOWN/.test(error.code))
          return false;
        throw error;
      }
    };
    const sessions = async (): Promise<Action> => {
      let any = prior.has('session');
      for (const s of await store.sessions.liveForOperator(operatorId)) {
        if (s.startedAt <= since) any = (await revoke('session', s.id)) || any;
      }
      return any ? 'sessions-revoked' : 'nothing-to-revoke';
    };
    const credentials = async (aaguid?: string): Promise<Action> => {
      let any = prior.has('credential');
      for (const c of await store.operators.listCredentials(operatorId)) {
        if (c.revokedAt !== null || c.createdAt > since) continue;
        if (aaguid !== undefined && c.aaguid.toLowerCase() !== aaguid.toLowerCase()) continue;
        any = (await revoke('credential', c.id)) || any;
      }
      return any ? 'credentials-revoked' : 'nothing-to-revoke';
    };
    switch (name) {
      case 'account-disabled':
      case 'account-purged': {
        // Revoked for this SET by a resume that died before recording it: this SET's doing all the same.
        const revokedBefore: Action = prior.has('operator') ? 'operator-revoked' : 'already-revoked';
        const operator = await store.operators.get(operatorId);
        if (operator === undefined || operator.revokedAt !== null) return revokedBefore;
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
        return (await revoke('operator', operatorId)) ? 'operator-revoked' : revokedBefore;
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
      status: t.status,
      statusReason: t.statusReason,
      statusChangedAt: t.statusChangedAt,
      statusChangedBy: t.statusChangedBy,
      held: await this.deps.store.ssfInbound.heldCount(t.id),
      upstreamStatus: upstreamStatusOf(t.upstreamStatus),
      verifiable: t.streamId !== null && t.configurationUrl !== null,
      verification:
        t.verifyState === null || t.verifyRequestedAt === null
          ? null
          : {
              state: t.verifyState,
              requestedAt: t.verifyRequestedAt,
              receivedAt: t.verifyReceivedAt,
              tookMs: t.verifyReceivedAt === null ? null : t.verifyReceivedAt - t.verifyRequestedAt,
              jti: t.verifyJti,
              error: t.verifyError,
            },
    };
  }

  private async upstreamConfiguration(url: string): Promise<{
    issuer: string;
    jwks_uri: string;
    configuration_endpoint?: string | undefined;
    status_endpoint?: string | undefined;
    verification_endpoint?: string | undefined;
  }> {
    let body: unknown;
    const deadline = lagAwareTimeoutSignal(this.deps.upstreamTimeoutMs ?? UPSTREAM_TIMEOUT_MS);
    try {
      const answer = await this.fetch(url, {
        headers: { accept: 'application/json' },
        signal: deadline.signal,
        redirect: 'error',
      });
      if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
      body = await answer.json();
    } catch (cause) {
      throw new BatonError(
        'SSF_UPSTREAM_INVALID',
        `The upstream's configuration (${url}) could not be read${isRedirect(cause) ? `: ${fetchFailure(cause)}` : ''}`,
        { cause },
      );
    } finally {
      deadline.clear();
    }
    const parsed = z
      .looseObject({
        issuer: z.string().min(1),
        jwks_uri: HttpUrl,
        configuration_endpoint: HttpUrl.optional(),
        status_endpoint: HttpUrl.optional(),
        verification_endpoint: HttpUrl.optional(),
      })
      .safeParse(body);
    if (!parsed.success)
      throw new BatonError('SSF_UPSTREAM_INVALID', `The upstream's configuration lacks issuer or a usable jwks_uri`);
    return parsed.data;
  }
}

/**
 * An endpoint the upstream's configuration names (configuration, status, verification), taken only on the origin
 * (scheme, host, port) of the configuration URL the admin registered: a configuration document that names another
 * host is refused (SSF_UPSTREAM_INVALID), so the upstream's access token and Baton's requests go nowhere else.
 */
export function pinnedEndpoint(configurationUrl: string, member: string, endpoint: string): string {
  const origin = new URL(configurationUrl).origin;
  if (new URL(endpoint).origin !== origin) {
    throw new BatonError(
      'SSF_UPSTREAM_INVALID',
      `The upstream's ${member} (${endpoint.slice(0, 300)}) is not on its configuration URL's origin (${origin}): not used`,
    );
  }
  return endpoint;
}

/** A fetch refused because the answer was a redirect (`redirect: 'error'`). */
function isRedirect(cause: unknown): boolean {
  return (
    cause instanceof Error &&
    (/redirect/i.test(cause.message) || (cause.cause instanceof Error && /redirect/i.test(cause.cause.message)))
  );
}

/** Why a request to an upstream failed, in words (a redirect, which Baton does not follow, said as such). */
function fetchFailure(cause: unknown): string {
  if (!(cause instanceof Error)) return String(cause);
  if (isRedirect(cause)) return 'the upstream answered with a redirect, which Baton does not follow';
  const inner = cause.cause instanceof Error ? cause.cause.message : '';
  return inner === '' ? cause.message : `${cause.message} (${inner})`;
}

/** SSF's own events about the stream (verification, stream-updated): they name no operator and are never held. */
function isStreamEvent(set: ValidSet): boolean {
  return set.type === SSF_VERIFICATION || set.type === SSF_STREAM_UPDATED;
}

/** A held SET as it was validated. */
function heldSetOf(held: HeldSet): ValidSet {
  return JSON.parse(held.set) as ValidSet;
}

function upstreamStatusOf(json: string | null): UpstreamStatus | null {
  if (json === null) return null;
  try {
    const parsed = UpstreamStatusSchema.safeParse(JSON.parse(json));
    return parsed.success ? (parsed.data as UpstreamStatus) : null;
  } catch {
    return null;
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
        : error.code === 'SSF_KEYS_UNAVAILABLE' || error.code === 'SSF_SOURCE_HOLD_FULL'
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
