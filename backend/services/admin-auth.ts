import type { IncomingMessage } from 'node:http';
import { randomBytes } from 'node:crypto';
import { BatonError } from '../../shared/errors.js';
import { newId, sha256Hex } from '../crypto/secrets.js';
import type { AdminSessionRecord } from '../store/admin-repositories.js';
import type { Logger } from 'pino';
import type { Store } from '../store/repositories.js';
import type { StoredEvent } from '../../shared/events.js';
import type { ClusterBus } from '../cluster/bus.js';
import type { EventLog, UnitOfWork } from './event-log.js';
import { AdminApiTokens, apiTokenStreamKey, type ApiTokenPrincipal } from './admin-api-tokens.js';

/**
 * Admin sessions follow the strictest level NIST 800-63B rev 4 describes (AAL3): at most 12 hours
 * in all and 15 minutes without activity. A destructive action needs a user-verified passkey
 * assertion made in the last 5 minutes (step-up).
 */
export const ADMIN_SESSION_MAX_MS = 12 * 3600 * 1000;
export const ADMIN_SESSION_IDLE_MS = 15 * 60 * 1000;
export const ADMIN_STEP_UP_MS = 5 * 60 * 1000;
/** Where live streams held with the bootstrap token are kept (admin session ids start with `adm`). */
const BOOTSTRAP_STREAMS = 'admin:bootstrap';
/** Why a session ended when its operator lost the admin role (read back to answer ADMIN_ROLE_REQUIRED). */
const ROLE_REMOVED = 'admin-role-removed';
/** Why a session ended when its passkey was suspended (its signature counter went back: a possible copy). */
const CREDENTIAL_SUSPENDED = 'credential-suspended';

/** Who is acting on an admin request. */
export type AdminPrincipal =
  | { kind: 'bootstrap'; actor: 'admin:bootstrap' }
  | { kind: 'admin'; actor: string; operatorId: string; session: AdminSessionRecord }
  /** A script's admin API token (admin-api-tokens.ts): scoped, expiring, every use recorded. */
  | ApiTokenPrincipal;

export interface AdminAuthDeps {
  store: Store;
  events: EventLog;
  clock: () => number;
  /** The admin console's exact origin (resolved once the backend listens). */
  origin: () => string;
  logger: Logger;
  /**
   * The cluster bus: an admin session ended on any node closes its live streams on every node at once
   * (`admin-session-ended`, published inside the unit that ended it, so delivered with its commit).
   */
  bus: ClusterBus;
}

/** The actor string recorded for an admin's actions: the operator id of the real person. */
export function adminActor(operatorId: string): string {
  return `operator:${operatorId}`;
}

function cookieValues(header: string | undefined, name: string): string[] {
  if (header === undefined) return [];
  return header
    .split(';')
    .map((part) => part.trim())
    .filter((part) => part.startsWith(`${name}=`))
    .map((part) => part.slice(name.length + 1));
}

/**
 * Authenticates admin requests (session cookie, or the bootstrap token until the first admin has a
 * passkey), enforces idle and absolute limits, step-up freshness and the CSRF origin check, and
 * ends admin sessions (sign-out, revocation, expiry) together with the live streams they hold.
 *
 * Every decision reads the store, never this node's memory: an admin session, the bootstrap token's
 * state and whether an admin passkey exists are the same on every node of a cluster. The only thing
 * held here is the list of live streams open on this node, so they can be closed at once: the unit
 * that ends a session publishes `admin-session-ended` on the cluster bus, and every node (this one
 * included) closes the streams it holds for that session when the pointer arrives. After the bus
 * reconnects (pointers may have been missed), every stream held here is checked against the store.
 */
export class AdminAuth {
  private readonly streams = new Map<string, Map<() => void, AdminPrincipal>>();
  /** Admin API tokens for scripts (checked against the store on every request). */
  readonly apiTokens: AdminApiTokens;

  constructor(private readonly deps: AdminAuthDeps) {
    this.apiTokens = new AdminApiTokens({ store: deps.store, events: deps.events, clock: deps.clock });
    deps.bus.subscribe('admin-session-ended', ({ sessionId }) => this.closeStreams(sessionId));
    deps.bus.onResync((info) => (info.reason === 'connected' ? undefined : this.recheckStreams()));
    deps.events.subscribe({ origin: 'backend' }, (event) => {
      this.onBackendEvent(event).catch((error: unknown) =>
        deps.logger.error({ err: error, event: event.id }, 'ending admin sessions after a revocation failed'),
      );
    });
  }

  /**
   * A revoked operator, or a revoked or suspended credential (a signature counter that went back: a
   * possible copy), ends the admin sessions resting on it at once, live streams included, on every
   * node (the ending unit publishes `admin-session-ended`). Every node that sees the event tries; a
   * session ends (and is recorded) once. Should this never run (the node stopped first), the
   * session's next request and its streams' next keep-alive find the credential's state in the store
   * (`checkSession`) and end it then. An admin passkey registered anywhere (the admin console, or a
   * console) retires the bootstrap token at once, and with it any live stream it still holds.
   */
  private async onBackendEvent(event: StoredEvent): Promise<void> {
    const operator = event.subject.operator;
    if (operator === undefined) return;
    const { store } = this.deps;
    const reason =
      event.type === 'operator-revoked'
        ? 'operator-revoked'
        : event.type === 'credential-change' && event.detail?.change_type === 'revoke'
          ? 'credential-revoked'
          : event.type === 'credential-counter-regressed' && event.reasons.includes('credential-suspended')
            ? CREDENTIAL_SUSPENDED
            : undefined;
    if (reason !== undefined) {
      for (const session of await store.admin.liveSessions()) {
        if (session.operatorId !== operator) continue;
        if (reason !== 'operator-revoked' && session.credentialId !== event.subject.credential) continue;
        await this.end(session, reason);
      }
    }
    if (
      event.type === 'credential-change' &&
      event.detail?.change_type === 'create' &&
      (await store.admin.adminPasskeyExists())
    ) {
      await this.retireBootstrap();
    }
  }

  get secureCookies(): boolean {
    return this.deps.origin().startsWith('https:');
  }

  /** `__Host-` on https (Secure, Path=/, no Domain); a plain name on http://localhost. */
  get cookieName(): string {
    return this.secureCookies ? '__Host-baton_admin' : 'baton_admin';
  }

  sessionCookie(token: string): string {
    return `${this.cookieName}=${token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${ADMIN_SESSION_MAX_MS / 1000}${this.secureCookies ? '; Secure' : ''}`;
  }

  clearedCookie(): string {
    return `${this.cookieName}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${this.secureCookies ? '; Secure' : ''}`;
  }

  /**
   * Starts an admin session after a verified ceremony, in the caller's unit of work (`tx`); returns
   * the cookie secret (never stored).
   */
  async startSession(
    tx: Store,
    operatorId: string,
    credentialId: string,
    stepUp: boolean,
  ): Promise<{ token: string; session: AdminSessionRecord }> {
    const now = this.deps.clock();
    const token = randomBytes(32).toString('base64url');
    const session: AdminSessionRecord = {
      id: newId('adm'),
      tokenHash: sha256Hex(token),
      operatorId,
      credentialId,
      createdAt: now,
      lastSeenAt: now,
      expiresAt: now + ADMIN_SESSION_MAX_MS,
      // The sign-in itself was a fresh user-verified assertion.
      stepUpAt: stepUp ? now : null,
      endedAt: null,
      endReason: null,
    };
    await tx.admin.insertSession(session);
    return { token, session };
  }

  /**
   * Who sent this request. The session cookie wins over a bearer token; a cookie request that
   * changes something must come from the admin console's origin.
   */
  async authenticate(req: IncomingMessage, options: { stream?: boolean } = {}): Promise<AdminPrincipal> {
    const cookies = cookieValues(req.headers.cookie, this.cookieName);
    if (cookies.length > 0) {
      const principal = await this.fromCookie(cookies);
      // CSRF. SameSite=Strict does not separate sites that share a registrable domain (another
      // port on localhost, a sibling subdomain), so: a state-changing request must name the admin
      // origin; any request that names another origin, or that the browser marks as coming from
      // another origin (Fetch Metadata), is refused, reads and the audit export included.
      if (req.method !== 'GET' && req.method !== 'HEAD') this.checkOrigin(req);
      else if (req.headers.origin !== undefined) this.checkOrigin(req);
      const site = req.headers['sec-fetch-site'];
      if (site !== undefined && site !== 'same-origin' && site !== 'none') {
        throw new BatonError(
          'ADMIN_ORIGIN_MISMATCH',
          `Expected a request from the admin console at ${this.deps.origin()}, got a ${site} request`,
        );
      }
      if (!options.stream) await this.deps.store.admin.touchSession(principal.session.id, this.deps.clock());
      return principal;
    }
    const header = req.headers.authorization;
    if (header === undefined) {
      throw new BatonError(
        'ADMIN_AUTH_REQUIRED',
        'Sign in to the admin console, or send "Authorization: Bearer <bootstrap token>" before the first admin exists',
      );
    }
    const match = /^Bearer ([A-Za-z0-9_-]{10,200})$/.exec(header);
    if (match?.[1] !== undefined && AdminApiTokens.looksLikeToken(match[1])) {
      return this.apiTokens.authenticate(match[1], req.method ?? 'GET', req.url ?? '/');
    }
    const state = match === null ? undefined : await this.deps.store.admin.bootstrapToken(sha256Hex(match[1] ?? ''));
    if (state === undefined) throw new BatonError('ADMIN_AUTH_INVALID', 'The admin token is not valid');
    if (state === 'enabled' && (await this.deps.store.admin.adminPasskeyExists())) {
      await this.retireBootstrap();
      return this.authenticate(req, options);
    }
    if (state === 'disabled') {
      throw new BatonError(
        'ADMIN_BOOTSTRAP_DISABLED',
        'The bootstrap token was disabled when the first admin registered a passkey; sign in to the admin console',
      );
    }
    return { kind: 'bootstrap', actor: 'admin:bootstrap' };
  }

  /** Destructive actions: the admin must have stepped up (a fresh UV assertion) within ADMIN_STEP_UP_MS. */
  requireStepUp(principal: AdminPrincipal): void {
    if (principal.kind === 'bootstrap') return; // no passkey exists yet; the token is the only credential
    // Its scope was checked when it was presented (a `read` token never reaches a change).
    if (principal.kind === 'api-token') return;
    const at = principal.session.stepUpAt;
    if (at === null || this.deps.clock() - at > ADMIN_STEP_UP_MS) {
      throw new BatonError(
        'ADMIN_STEP_UP_REQUIRED',
        `This action needs a fresh passkey confirmation (within ${ADMIN_STEP_UP_MS / 60000} minutes): POST /v1/admin/auth/step-up/options, then /verify`,
      );
    }
  }

  /**
   * What hands over the keys (making an admin, an admin's enrolment code) needs a person: an admin
   * with a fresh step-up, or the bootstrap token before the first admin exists; never an API token.
   */
  requirePerson(principal: AdminPrincipal): void {
    if (principal.kind === 'api-token') {
      throw new BatonError(
        'ADMIN_API_TOKEN_SCOPE',
        "An admin API token cannot make an admin or issue an admin's enrolment code: an admin signed in with a passkey must",
      );
    }
    this.requireStepUp(principal);
  }

  /**
   * Closes the live streams an API token holds on this node (it was just revoked here). Other nodes
   * close theirs when the revoking unit's `admin-session-ended` pointer arrives (`AdminApiTokens.revoke`).
   */
  closeApiTokenStreams(tokenId: string): void {
    this.closeStreams(apiTokenStreamKey(tokenId));
  }

  /** Browser-only endpoints and cookie requests that change state must come from the admin console. */
  checkOrigin(req: IncomingMessage): void {
    const origin = req.headers.origin;
    if (origin !== this.deps.origin()) {
      throw new BatonError(
        'ADMIN_ORIGIN_MISMATCH',
        `Expected a request from the admin console at ${this.deps.origin()}, got origin ${origin === undefined ? '(none)' : `"${origin}"`}`,
      );
    }
  }

  /** Records a fresh step-up, in the caller's unit of work. */
  async recordStepUp(tx: Store, session: AdminSessionRecord): Promise<void> {
    await tx.admin.recordStepUp(session.id, this.deps.clock());
  }

  /** Ends the session (sign-out, revocation, expiry) and closes its live streams on this node. */
  async end(session: AdminSessionRecord, reason: string): Promise<void> {
    await this.deps.events.atomically((uow) => this.endIn(uow, session, reason));
  }

  /**
   * Ends the session in the caller's unit of work and records it (once: false when it had already
   * ended); its live streams on this node close once the unit has committed.
   */
  async endIn(uow: UnitOfWork, session: AdminSessionRecord, reason: string): Promise<boolean> {
    // Closed even when another unit (or node) ended it first: a stream here must not outlive it.
    uow.afterCommit(() => this.closeStreams(session.id));
    if (!(await uow.store.admin.endSession(session.id, this.deps.clock(), reason))) return false;
    // Every other node closes its streams of this session when the commit delivers this pointer.
    await uow.publish('admin-session-ended', { sessionId: session.id });
    await uow.record({
      type: 'admin-action',
      subject: { operator: session.operatorId },
      outcome: 'info',
      reasons: ['admin-session-ended', reason],
      detail: { actor: adminActor(session.operatorId), adminSession: session.id },
    });
    return true;
  }

  /**
   * Retires the bootstrap token for good (and the admin enrolment codes it minted), records that
   * once, and closes the live streams it holds on this node. Idempotent.
   */
  async retireBootstrap(): Promise<void> {
    await this.deps.events.atomically((uow) => this.retireBootstrapIn(uow));
  }

  /** `retireBootstrap` in the caller's unit of work; the streams close once it has committed. */
  async retireBootstrapIn(uow: UnitOfWork): Promise<void> {
    uow.afterCommit(() => this.closeStreams(BOOTSTRAP_STREAMS));
    const { tokensDisabled, codesRevoked } = await uow.store.admin.retireBootstrap(this.deps.clock());
    if (tokensDisabled === 0 && codesRevoked === 0) return;
    await uow.publish('admin-session-ended', { sessionId: BOOTSTRAP_STREAMS });
    await uow.record({
      type: 'admin-action',
      subject: {},
      outcome: 'info',
      reasons: ['bootstrap-token-disabled'],
      detail: { actor: 'admin:bootstrap', codesRevoked },
    });
  }

  /**
   * Ends every live admin session of an operator (their admin role was removed: the admin console,
   * or a SCIM directory) in the caller's unit of work; their live streams close once it has
   * committed, on every node (each ending publishes `admin-session-ended` in the unit).
   */
  async endOperatorSessionsIn(uow: UnitOfWork, operatorId: string, reason: 'admin-role-removed'): Promise<void> {
    for (const session of await uow.store.admin.liveSessions()) {
      if (session.operatorId === operatorId) await this.endIn(uow, session, reason);
    }
  }

  /**
   * Whether a principal that opened a live stream may still read it (checked on every keep-alive,
   * besides the immediate closes on sign-out, revocation, role removal and bootstrap retirement).
   */
  async stillAllowed(principal: AdminPrincipal): Promise<boolean> {
    if (principal.kind === 'api-token') return this.apiTokens.stillValid(principal.tokenId);
    if (principal.kind === 'bootstrap') {
      if (!(await this.deps.store.admin.adminPasskeyExists())) return true;
      await this.retireBootstrap();
      return false;
    }
    const session = await this.deps.store.admin.sessionByTokenHash(principal.session.tokenHash);
    if (session === undefined) return false;
    try {
      await this.checkSession(session);
      return true;
    } catch {
      return false;
    }
  }

  /** Registers a live stream held by an admin session (or the bootstrap token), closed when it ends. */
  holdStream(principal: AdminPrincipal, close: () => void): () => void {
    const key =
      principal.kind === 'bootstrap'
        ? BOOTSTRAP_STREAMS
        : principal.kind === 'api-token'
          ? apiTokenStreamKey(principal.tokenId)
          : principal.session.id;
    let held = this.streams.get(key);
    if (held === undefined) {
      held = new Map();
      this.streams.set(key, held);
    }
    held.set(close, principal);
    return () => {
      held.delete(close);
      if (held.size === 0 && this.streams.get(key) === held) this.streams.delete(key);
    };
  }

  private closeStreams(key: string): void {
    const held = this.streams.get(key);
    this.streams.delete(key);
    for (const close of held?.keys() ?? []) close();
  }

  /** After missed pointers: every stream held here whose principal may no longer read it is closed. */
  private async recheckStreams(): Promise<void> {
    for (const [key, held] of [...this.streams]) {
      const principal = held.values().next().value;
      if (principal === undefined) continue;
      let allowed: boolean;
      try {
        allowed = await this.stillAllowed(principal);
      } catch {
        allowed = false; // not knowing is not a yes: the reader reconnects and is checked again
      }
      if (!allowed) this.closeStreams(key);
    }
  }

  /**
   * Session secrets should not survive a restart of the backend (NIST 800-63B): every admin signs
   * in again. The composition root calls this only where one start is the whole backend's restart
   * (the embedded single-process mode), never when one node of a cluster starts: that would sign the
   * other nodes' admins out. Called once the backend owns its port (and, from the CLI, its data
   * directory), never before: a second start that fails must not sign the running backend's admins out.
   */
  async endSessionsFromEarlierRun(): Promise<void> {
    await this.deps.store.admin.endAllSessions(this.deps.clock(), 'backend-restarted');
  }

  /**
   * Ends sessions past their idle or absolute limit (their streams with them). Several nodes may
   * sweep at once: a session ends (and is recorded) once.
   */
  async sweep(): Promise<void> {
    const now = this.deps.clock();
    for (const session of await this.deps.store.admin.liveSessions()) {
      const reason = this.expiryReason(session, now);
      if (reason !== undefined) await this.end(session, reason);
    }
  }

  private expiryReason(session: AdminSessionRecord, now: number): string | undefined {
    if (now >= session.expiresAt) return 'expired';
    if (now - session.lastSeenAt >= ADMIN_SESSION_IDLE_MS) return 'idle-timeout';
    return undefined;
  }

  private async fromCookie(values: string[]): Promise<Extract<AdminPrincipal, { kind: 'admin' }>> {
    const valid = values.find((v) => /^[A-Za-z0-9_-]{43}$/.test(v));
    const session = valid === undefined ? undefined : await this.deps.store.admin.sessionByTokenHash(sha256Hex(valid));
    if (session === undefined) throw new BatonError('ADMIN_AUTH_INVALID', 'The admin session is not known');
    return this.checkSession(session);
  }

  /** Throws unless the session is live, in time, and its operator, passkey and admin role still hold. */
  private async checkSession(session: AdminSessionRecord): Promise<Extract<AdminPrincipal, { kind: 'admin' }>> {
    if (session.endedAt !== null && session.endReason === ROLE_REMOVED) {
      throw new BatonError(
        'ADMIN_ROLE_REQUIRED',
        'The admin session ended when its operator lost the admin role; an admin can sign in again',
      );
    }
    if (session.endedAt !== null) {
      throw new BatonError('ADMIN_SESSION_EXPIRED', `The admin session has ended (${session.endReason ?? 'ended'})`);
    }
    const reason = this.expiryReason(session, this.deps.clock());
    if (reason !== undefined) {
      await this.end(session, reason);
      throw new BatonError('ADMIN_SESSION_EXPIRED', `The admin session has ended (${reason}); sign in again`);
    }
    const operator = await this.deps.store.operators.get(session.operatorId);
    const credential = await this.deps.store.operators.getCredential(session.credentialId);
    if (operator === undefined || operator.revokedAt !== null || credential?.revokedAt !== null) {
      await this.end(session, operator?.revokedAt == null ? 'credential-revoked' : 'operator-revoked');
      throw new BatonError('ADMIN_SESSION_EXPIRED', 'The admin session has ended: its operator or passkey was revoked');
    }
    // A suspended passkey may be a copy in someone else's hands, and this session may be theirs: it
    // ends for good (reinstating the passkey later does not bring it back); the admin signs in again.
    if (credential.suspendedAt !== null) {
      await this.end(session, CREDENTIAL_SUSPENDED);
      throw new BatonError(
        'ADMIN_SESSION_EXPIRED',
        'The admin session has ended: its passkey was suspended (its signature counter went backwards, a possible copy)',
      );
    }
    if (!operator.roles.includes('admin')) {
      await this.end(session, ROLE_REMOVED);
      throw new BatonError('ADMIN_ROLE_REQUIRED', `Operator "${operator.id}" does not hold the admin role`);
    }
    return { kind: 'admin', actor: adminActor(operator.id), operatorId: operator.id, session };
  }
}
