/**
 * A conformance receiver for Baton's Shared Signals transmitter: a real HTTP server (RFC 8935 push
 * endpoint) and a poll client (RFC 8936), that verifies every SET with jose against the
 * transmitter's JWKS and holds it to the SSF 1.0 and CAEP Interoperability Profile rules, written
 * here from the specifications (not from backend/ssf/set.ts, which it checks):
 *
 * - header `typ` is `secevent+jwt`; `alg` RS256 with a key of at least 2048 bits (ES256 when the
 *   test allows it), a `kid` found in the JWKS;
 * - claims `iss` (the transmitter's issuer), `aud` (this receiver's), `iat` (integer, not in the
 *   future), `jti` (never seen before: a replay is refused), `sub_id` (a subject identifier with a
 *   known `format`; complex members are simple subjects); no `sub`, no `exp`;
 * - `events` holds exactly one event; CAEP events carry their required members (session-revoked
 *   a non-empty `reason_admin`; assurance-level-change `namespace`, `current_level` nist-aal1..3;
 *   credential-change `credential_type` and `change_type`; device-compliance-change both statuses);
 *   `event_timestamp` an integer.
 *
 * What breaks a rule is answered 400 with RFC 8935's `{err, description}` and kept in `rejected`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, decodeProtectedHeader, importJWK, jwtVerify, type JWTPayload } from 'jose';
import { NETWORK_WAIT_MS, describeRequest, withDeadline } from './deadline.js';

export interface ReceivedSet {
  jti: string;
  header: Record<string, unknown>;
  claims: JWTPayload & Record<string, unknown>;
  /** The one event's type URI and body. */
  type: string;
  event: Record<string, unknown>;
  raw: string;
}

export interface ConformanceOptions {
  issuer: string;
  audience: string;
  jwksUri: string;
  /** Algorithms accepted (default RS256 only: the interop profile). */
  algorithms?: string[];
  /** The Authorization header value the transmitter must send (push). */
  expectAuthorization?: string;
  /**
   * At-least-once delivery made visible: a SET whose jti was already accepted is answered 202 and kept
   * in `duplicates` (RFC 8935 lets a receiver acknowledge a SET it already has), instead of refused.
   */
  acceptDuplicates?: boolean;
}

const SUBJECT_FORMATS: Record<string, string[]> = {
  opaque: ['id'],
  email: ['email'],
  iss_sub: ['iss', 'sub'],
  phone_number: ['phone_number'],
  account: ['uri'],
  did: ['url'],
  uri: ['uri'],
};
const COMPLEX_MEMBERS = new Set(['user', 'device', 'session', 'application', 'tenant', 'org_unit', 'group']);
const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';

export class ConformanceReceiver {
  readonly accepted: ReceivedSet[] = [];
  readonly rejected: { err: string; description: string }[] = [];
  /** Push requests answered while down. */
  refusedWhileDown = 0;
  /** SETs received again (same jti) while `acceptDuplicates`. */
  readonly duplicates: ReceivedSet[] = [];
  /** Pushes checked and recorded but not answered yet (`setDown('hold')`). */
  private readonly held: ServerResponse[] = [];
  private server: Server | undefined;
  private jwks;
  private readonly seen = new Set<string>();
  private down: 'no' | '503' | 'reset' | 'hold' = 'no';
  private waiters: (() => void)[] = [];
  url = '';

  constructor(readonly options: ConformanceOptions) {
    this.jwks = createRemoteJWKSet(new URL(options.jwksUri), { cooldownDuration: 0, cacheMaxAge: 0 });
  }

  /** The transmitter's JWKS moved (a restarted test backend listens on another port). */
  useJwks(uri: string): void {
    this.options.jwksUri = uri;
    this.jwks = createRemoteJWKSet(new URL(uri), { cooldownDuration: 0, cacheMaxAge: 0 });
  }

  async listen(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/events`;
    return this;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server === undefined ? resolve() : this.server.close(() => resolve())));
  }

  /**
   * While down, pushes get 503 (`'503'`) or a reset connection (`'reset'`). `'hold'`: a push is checked
   * and recorded as received, but not answered until the mode changes (a transmitter mid-delivery).
   */
  setDown(mode: 'no' | '503' | 'reset' | 'hold'): void {
    this.down = mode;
    if (mode === 'hold') return;
    for (const res of this.held.splice(0)) if (!res.destroyed) res.writeHead(202).end();
  }

  /** How many pushes are being held unanswered. */
  get holding(): number {
    return this.held.length;
  }

  /** Resolves once `test` holds (checked after each SET received, held or duplicate), or rejects after `ms`. */
  until(test: () => boolean, what: string, ms = 30_000): Promise<void> {
    return this.waitFor(() => test(), ms, what);
  }

  /** Resolves once `predicate` holds on what was accepted (checked after each SET), or rejects after `ms`. */
  waitFor(predicate: (sets: ReceivedSet[]) => boolean, ms = 15_000, what = 'the SETs expected'): Promise<void> {
    if (predicate(this.accepted)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(
          new Error(
            `timed out waiting for ${what}; accepted: ${this.accepted.map((s) => s.type.split('/').pop()).join(', ')}; rejected: ${JSON.stringify(this.rejected)}`,
          ),
        );
      }, ms);
      const check = () => {
        if (!predicate(this.accepted)) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      this.waiters.push(check);
    });
  }

  /** SETs of one event type (its short CAEP/SSF name or full URI). */
  ofType(type: string): ReceivedSet[] {
    return this.accepted.filter((s) => s.type === type || s.type.endsWith(`/${type}`) || s.type.endsWith(`:${type}`));
  }

  /**
   * Checks one SET against the rules; returns it, or throws `{err, description}`. Replays (a jti
   * already accepted) are refused. Used by push and by the poll client.
   */
  async check(jwt: string): Promise<ReceivedSet> {
    const fail = (err: string, description: string): never => {
      throw Object.assign(new Error(description), { err, description });
    };
    let header: Record<string, unknown>;
    try {
      header = decodeProtectedHeader(jwt) as Record<string, unknown>;
    } catch {
      return fail('invalid_request', 'not a JWS');
    }
    if (header.typ !== 'secevent+jwt') fail('invalid_request', `typ must be secevent+jwt, got ${String(header.typ)}`);
    const algorithms = this.options.algorithms ?? ['RS256'];
    if (!algorithms.includes(String(header.alg))) fail('invalid_key', `alg ${String(header.alg)} not accepted`);
    if (typeof header.kid !== 'string') fail('invalid_key', 'no kid');
    let payload: JWTPayload & Record<string, unknown>;
    try {
      const result = await jwtVerify(jwt, this.jwks, { algorithms, typ: 'secevent+jwt' });
      payload = result.payload as JWTPayload & Record<string, unknown>;
    } catch (error) {
      return fail('invalid_key', `signature: ${(error as Error).message}`);
    }
    if (header.alg === 'RS256') {
      const jwksUri = this.options.jwksUri;
      const { keys } = await withDeadline(describeRequest('GET', jwksUri), async (signal) => {
        const response = await fetch(jwksUri, { signal });
        return (await response.json()) as { keys: { kid: string; n?: string }[] };
      });
      const jwk = keys.find((k) => k.kid === header.kid);
      const bits = jwk?.n === undefined ? 0 : Buffer.from(jwk.n, 'base64url').length * 8;
      if (bits < 2048) fail('invalid_key', `RSA key of ${bits} bits (interop profile: at least 2048)`);
      await importJWK(jwk as never, 'RS256');
    }
    if (payload.iss !== this.options.issuer) fail('invalid_issuer', `iss ${String(payload.iss)}`);
    const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (!aud.includes(this.options.audience)) fail('invalid_audience', `aud ${JSON.stringify(payload.aud)}`);
    if ('sub' in payload) fail('invalid_request', 'sub is forbidden');
    if ('exp' in payload) fail('invalid_request', 'exp is forbidden');
    if (typeof payload.jti !== 'string' || payload.jti === '') fail('invalid_request', 'jti missing');
    if (typeof payload.iat !== 'number' || !Number.isInteger(payload.iat))
      fail('invalid_request', 'iat must be an integer');
    if ((payload.iat as number) > Date.now() / 1000 + 60) fail('invalid_request', 'iat in the future');
    if ('txn' in payload && typeof payload.txn !== 'string') fail('invalid_request', 'txn must be a string');
    checkSubject(payload.sub_id, fail, true);
    const events = payload.events as Record<string, Record<string, unknown>> | undefined;
    if (events === undefined || typeof events !== 'object') return fail('invalid_request', 'events missing');
    const entries = Object.entries(events);
    if (entries.length !== 1) fail('invalid_request', `exactly one event per SET, got ${entries.length}`);
    const [type, event] = entries[0] as [string, Record<string, unknown>];
    checkEvent(type, event, fail);
    const jti = payload.jti as string;
    const set = { jti, header, claims: payload, type, event, raw: jwt };
    if (this.seen.has(jti)) {
      if (this.options.acceptDuplicates === true) return Object.assign(set, { duplicate: true });
      fail('invalid_request', `jti ${jti} replayed`);
    }
    this.seen.add(jti);
    return set;
  }

  private record(set: ReceivedSet & { duplicate?: boolean }): void {
    if (set.duplicate === true) this.duplicates.push(set);
    else this.accepted.push(set);
    for (const waiter of [...this.waiters]) waiter();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (this.down === 'reset') {
      this.refusedWhileDown++;
      req.socket.destroy();
      return;
    }
    if (this.down === '503') {
      this.refusedWhileDown++;
      res.writeHead(503).end();
      return;
    }
    const refuse = (err: string, description: string) => {
      this.rejected.push({ err, description });
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ err, description }));
    };
    if (req.method !== 'POST') return refuse('invalid_request', 'POST only');
    if (req.headers['content-type'] !== 'application/secevent+jwt') {
      return refuse('invalid_request', `content-type ${String(req.headers['content-type'])}`);
    }
    if (
      this.options.expectAuthorization !== undefined &&
      req.headers.authorization !== this.options.expectAuthorization
    ) {
      return refuse('authentication_failed', 'wrong or missing Authorization');
    }
    try {
      const set = await this.check(Buffer.concat(chunks).toString('utf8'));
      this.record(set);
      if (this.down === 'hold') {
        this.held.push(res);
        for (const waiter of [...this.waiters]) waiter();
        return;
      }
      res.writeHead(202).end();
    } catch (error) {
      const e = error as { err?: string; description?: string; message: string };
      refuse(e.err ?? 'invalid_request', e.description ?? e.message);
    }
  }

  /**
   * One RFC 8936 poll; every SET returned is checked (and refused ones reported in `setErrs` next
   * time by the caller). Returns the accepted jtis and what was refused. A poll with no answer within
   * `timeoutMs` fails naming its endpoint.
   */
  async poll(
    endpoint: string,
    token: string,
    body: {
      ack?: string[];
      setErrs?: Record<string, { err: string; description: string }>;
      maxEvents?: number;
      returnImmediately?: boolean;
    },
    timeoutMs = NETWORK_WAIT_MS,
  ): Promise<{
    status: number;
    accepted: string[];
    errors: Record<string, { err: string; description: string }>;
    moreAvailable: boolean;
    raw: Record<string, string>;
  }> {
    // A long poll is answered within the transmitter's pollWaitSeconds (25 s by default): inside the bound.
    const { status, text } = await withDeadline(
      describeRequest('POST', endpoint),
      async (signal) => {
        const response = await fetch(endpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify(body),
          signal,
        });
        return { status: response.status, text: await response.text() };
      },
      timeoutMs,
    );
    if (status !== 200) return { status, accepted: [], errors: {}, moreAvailable: false, raw: {} };
    const answer = JSON.parse(text) as { sets: Record<string, string>; moreAvailable: boolean };
    const accepted: string[] = [];
    const errors: Record<string, { err: string; description: string }> = {};
    for (const [jti, jwt] of Object.entries(answer.sets)) {
      try {
        const set = await this.check(jwt);
        if (set.jti !== jti)
          throw Object.assign(new Error('map key is not the jti'), {
            err: 'invalid_request',
            description: 'map key is not the jti',
          });
        this.record(set);
        accepted.push(jti);
      } catch (error) {
        const e = error as { err?: string; description?: string; message: string };
        errors[jti] = { err: e.err ?? 'invalid_request', description: e.description ?? e.message };
      }
    }
    return { status: 200, accepted, errors, moreAvailable: answer.moreAvailable, raw: answer.sets };
  }

  /**
   * Polls `endpoint` (acknowledging what it accepted) until `done` holds on every SET accepted so far, each of
   * which must pass the checks above; throws after 15 s naming `what` and what came. Returns what was accepted.
   */
  async drainPoll(
    endpoint: string,
    token: string,
    done: (sets: ReceivedSet[]) => boolean,
    what: string,
  ): Promise<ReceivedSet[]> {
    const deadline = Date.now() + 15_000;
    let ack: string[] = [];
    for (;;) {
      const answer = await this.poll(endpoint, token, { ack, returnImmediately: true });
      if (answer.status !== 200) throw new Error(`the poll answered ${answer.status}`);
      if (Object.keys(answer.errors).length > 0) {
        throw new Error(`a SET failed the conformance checks: ${JSON.stringify(answer.errors)}`);
      }
      ack = answer.accepted;
      if (done(this.accepted)) break;
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${what}; got ${this.accepted.map((s) => s.type).join(', ')}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    if (ack.length > 0) await this.poll(endpoint, token, { ack, returnImmediately: true });
    return this.accepted;
  }
}

function checkSubject(subject: unknown, fail: (err: string, d: string) => never, complexAllowed: boolean): void {
  if (subject === null || typeof subject !== 'object') fail('invalid_request', 'sub_id missing');
  const s = subject as Record<string, unknown>;
  if (s.format === 'complex' && complexAllowed) {
    const members = Object.keys(s).filter((k) => k !== 'format');
    if (members.length === 0) fail('invalid_request', 'empty complex subject');
    for (const m of members) {
      if (!COMPLEX_MEMBERS.has(m)) fail('invalid_request', `unknown complex member ${m}`);
      checkSubject(s[m], fail, false);
    }
    return;
  }
  const required = SUBJECT_FORMATS[String(s.format)];
  if (required === undefined) fail('invalid_request', `subject format ${String(s.format)}`);
  for (const key of required ?? [])
    if (typeof s[key] !== 'string' || s[key] === '')
      fail('invalid_request', `subject ${String(s.format)} lacks ${key}`);
  const extra = Object.keys(s).filter((k) => k !== 'format' && !(required ?? []).includes(k));
  if (extra.length > 0) fail('invalid_request', `subject ${String(s.format)} has extra members ${extra.join(',')}`);
}

function langMap(v: unknown): boolean {
  return (
    v !== null &&
    typeof v === 'object' &&
    Object.keys(v).length > 0 &&
    Object.values(v).every((x) => typeof x === 'string' && x !== '')
  );
}

function checkEvent(type: string, e: Record<string, unknown>, fail: (err: string, d: string) => never): void {
  if ('event_timestamp' in e && !Number.isInteger(e.event_timestamp))
    fail('invalid_request', 'event_timestamp not an integer');
  if ('initiating_entity' in e && !['admin', 'user', 'policy', 'system'].includes(String(e.initiating_entity))) {
    fail('invalid_request', 'initiating_entity');
  }
  if (!type.startsWith(CAEP)) return;
  const name = type.slice(CAEP.length);
  switch (name) {
    case 'session-revoked':
      if (!langMap(e.reason_admin)) fail('invalid_request', 'session-revoked without reason_admin (interop profile)');
      break;
    case 'assurance-level-change':
      if (e.namespace !== 'NIST-AAL' || !/^nist-aal[123]$/.test(String(e.current_level)))
        fail('invalid_request', 'assurance-level-change namespace/current_level');
      break;
    case 'credential-change':
      if (
        !['fido2-roaming', 'fido2-platform', 'password', 'pin', 'x509', 'app', 'phone-voice', 'phone-sms'].includes(
          String(e.credential_type),
        )
      ) {
        fail('invalid_request', `credential_type ${String(e.credential_type)}`);
      }
      if (!['create', 'revoke', 'update', 'delete'].includes(String(e.change_type)))
        fail('invalid_request', 'change_type');
      break;
    case 'device-compliance-change':
      for (const k of ['previous_status', 'current_status']) {
        if (!['compliant', 'not-compliant'].includes(String(e[k]))) fail('invalid_request', `${k}`);
      }
      break;
    case 'session-established':
    case 'session-presented':
      if ('amr' in e && !Array.isArray(e.amr)) fail('invalid_request', 'amr must be an array');
      break;
    default:
      fail('invalid_request', `unknown CAEP event ${name}`);
  }
}
