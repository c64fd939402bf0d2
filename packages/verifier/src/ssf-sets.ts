import { decodeJwt, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { RevocationList, Revocation } from './revocation-list.js';

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
/** The SET event types this subscription asks for and acts on. */
export const SSF_REVOCATION_EVENTS = [
  `${CAEP}session-revoked`,
  `${CAEP}credential-change`,
  `${CAEP}device-compliance-change`,
  'urn:baton:event:operator-revoked',
  'urn:baton:event:service-revoked',
] as const;

/** The revocation events this version acts on that `stream` supports but does not deliver yet. */
export function missingEvents(stream: { events_supported?: string[]; events_delivered?: string[] }): string[] {
  const delivered = new Set(stream.events_delivered ?? []);
  return SSF_REVOCATION_EVENTS.filter((e) => (stream.events_supported ?? []).includes(e) && !delivered.has(e));
}

type SimpleSubject = { format: string; id?: string; sub?: string; iss?: string };

/**
 * A SET this subscription refuses, reported to Baton in `setErrs` (RFC 8936 §2.4, RFC 8935 error codes). `transient`:
 * not the SET's fault but Baton's keys that could not be had now (a timeout, a refused connection, an error status,
 * a body that is not a key set): by poll the SET is neither acknowledged nor reported in `setErrs` (reported, Baton
 * would never hand it out again, and the revocation it carries would be lost), by push it is answered 503; Baton
 * sends it again either way, and until a SET verifies again the receiver counts as not hearing revocations
 * (`downForMs()`).
 */
export class SetRefused extends Error {
  constructor(
    readonly err: 'invalid_request' | 'invalid_key' | 'invalid_issuer' | 'invalid_audience' | 'authentication_failed',
    message: string,
    readonly transient = false,
  ) {
    super(message);
  }
}

/**
 * jose's errors when the key set could not be had now, as against a SET that does not verify: every error a SET's
 * own content causes carries a jose code (JWSInvalid, JWTInvalid, JOSEAlgNotAllowed, JWKSNoMatchingKey…).
 */
function keysUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  if (error instanceof TypeError && code === undefined) return true; // fetch failed: refused, reset, DNS
  if (code === 'ERR_JWKS_TIMEOUT' || code === 'ERR_JWKS_INVALID') return true;
  // jose 6's generic JOSEError for a JWKS answered with anything but 200, or with a body that is not JSON.
  return (
    code === 'ERR_JOSE_GENERIC' &&
    /^(Expected 200 OK|Failed to parse the JSON Web Key Set)/.test(String((error as Error).message))
  );
}

/**
 * The SETs waiting for Baton's keys (by `jti`) and since when: while any waits, the revocations they may carry are
 * unheard (`downForMs()`). A SET is done once applied or refused for good. Fail-closed until then: if Baton never
 * hands a waiting SET out again (its stream disabled, its queue dropped), the wait lasts until the receiver restarts.
 */
export class KeysWait {
  private readonly waiting = new Set<string>();
  private since: number | undefined;

  constructor(private readonly clock: () => number) {}

  waits(jti: string): void {
    this.waiting.add(jti);
    this.since ??= this.clock();
  }

  done(jti: string): void {
    this.waiting.delete(jti);
    if (this.waiting.size === 0) this.since = undefined;
  }

  forMs(): number {
    return this.since === undefined ? 0 : this.clock() - this.since;
  }
}

/** A SET's `jti` read without verifying it (only to track it), or '' if it has none. */
export function jtiOf(set: string): string {
  try {
    const { jti } = decodeJwt(set);
    return typeof jti === 'string' ? jti : '';
  } catch {
    return '';
  }
}

/**
 * Verifies Baton's Security Event Tokens (RFC 8417; SSF 1.0, CAEP) and applies the revocations they
 * carry to a RevocationList; shared by the poll (RFC 8936) and push (RFC 8935) receivers.
 */
export class SetApplier {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly o: {
      list: RevocationList;
      clock: () => number;
      algorithms?: string[];
      onRevocation?: (revocation: Revocation) => void;
    },
  ) {}

  private get clock(): () => number {
    return this.o.clock;
  }

  private get list(): RevocationList {
    return this.o.list;
  }

  /** Verifies one SET and applies the revocation it carries (SETs of other types are acknowledged and ignored). */
  async apply(
    set: string,
    expect: { issuer: string; audience: string | string[]; jwks: JWTVerifyGetKey },
  ): Promise<void> {
    let claims: JWTPayload & Record<string, unknown>;
    const verify = async () =>
      (
        await jwtVerify(set, expect.jwks, {
          issuer: expect.issuer,
          audience: expect.audience,
          typ: 'secevent+jwt',
          algorithms: this.o.algorithms ?? ['RS256', 'ES256'],
        })
      ).payload;
    // A key set jose fetched less than its cooldown (30 s) ago is not fetched again for a `kid` it lacks: a SET
    // signed with a key Baton has just rotated to would be refused for good without jose looking. Fetched once more
    // for it, then judged (a `kid` Baton does not hold is refused as before).
    const remote = expect.jwks as { coolingDown?: unknown; reload?: unknown };
    const coolingDown = remote.coolingDown === true && typeof remote.reload === 'function';
    try {
      try {
        claims = await verify();
      } catch (error) {
        if (!coolingDown || (error as { code?: unknown }).code !== 'ERR_JWKS_NO_MATCHING_KEY') throw error;
        await (remote.reload as () => Promise<void>)();
        claims = await verify();
      }
    } catch (error) {
      if (keysUnavailable(error)) {
        throw new SetRefused('invalid_key', `Baton's keys could not be fetched: ${(error as Error).message}`, true);
      }
      const code = (error as { code?: string }).code ?? '';
      if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') {
        const claim = (error as { claim?: string }).claim;
        throw new SetRefused(
          claim === 'aud' ? 'invalid_audience' : claim === 'iss' ? 'invalid_issuer' : 'invalid_request',
          (error as Error).message,
        );
      }
      throw new SetRefused(
        code.startsWith('ERR_JWKS') || code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED'
          ? 'invalid_key'
          : 'invalid_request',
        (error as Error).message,
      );
    }
    const jti = typeof claims.jti === 'string' ? claims.jti : '';
    if (this.seen.has(jti)) return; // at-least-once delivery: a SET seen again was already applied
    const events = claims.events as Record<string, Record<string, unknown>> | undefined;
    const entries = events === undefined ? [] : Object.entries(events);
    if (entries.length !== 1) throw new SetRefused('invalid_request', 'A SET must carry exactly one event');
    const [type, event] = entries[0] as [string, Record<string, unknown>];
    const subject = (claims.sub_id ?? {}) as Record<string, SimpleSubject | string>;
    const member = (name: string): string | undefined => {
      const m = subject[name];
      if (typeof m !== 'object' || m === null) return undefined;
      return m.format === 'iss_sub' ? m.sub : m.id;
    };
    const at =
      typeof event.event_timestamp === 'number'
        ? event.event_timestamp * 1000
        : typeof claims.iat === 'number'
          ? claims.iat * 1000
          : this.clock();
    const operator = member('user') ?? null;
    let revocation: Revocation | undefined;
    if (type === `${CAEP}session-revoked`) {
      const session = member('session');
      if (session !== undefined)
        revocation = { epoch: 0, kind: 'session', targetId: session, operatorId: operator, at };
      else if (operator !== null)
        revocation = { epoch: 0, kind: 'operator', targetId: operator, operatorId: operator, at };
    } else if (type === `${CAEP}credential-change`) {
      if ((event.change_type === 'revoke' || event.change_type === 'delete') && operator !== null) {
        const aaguid = typeof event.fido2_aaguid === 'string' ? event.fido2_aaguid : 'credential';
        revocation = { epoch: 0, kind: 'credential', targetId: aaguid, operatorId: operator, at };
      }
    } else if (type === `${CAEP}device-compliance-change`) {
      const device = member('device');
      if (event.current_status === 'not-compliant' && device !== undefined) {
        revocation = { epoch: 0, kind: 'console', targetId: device, operatorId: null, at };
      }
    } else if (type === 'urn:baton:event:operator-revoked' && operator !== null) {
      revocation = { epoch: 0, kind: 'operator', targetId: operator, operatorId: operator, at };
    } else if (type === 'urn:baton:event:service-revoked') {
      // A service account (its complex subject's `application`): its tokens issued up to then.
      const service = member('application');
      if (service !== undefined) revocation = { epoch: 0, kind: 'service', targetId: service, operatorId: null, at };
    }
    this.remember(jti);
    if (revocation === undefined) return;
    this.list.apply(revocation);
    this.o.onRevocation?.(revocation);
  }

  /** The jtis applied in the last 11 minutes (a redelivered SET is not applied twice). */
  private remember(jti: string): void {
    const now = this.clock();
    this.seen.set(jti, now);
    if (this.seen.size > 10_000) {
      for (const [key, at] of this.seen) if (at < now - 11 * 60 * 1000) this.seen.delete(key);
    }
  }
}
