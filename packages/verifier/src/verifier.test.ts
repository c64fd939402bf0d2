import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import {
  ActionTokenVerifier,
  RevocationList,
  bearerChallenge,
  nodeHttpGuard,
  parseBearerChallenge,
  requireAction,
  type VerifiedAction,
} from './index.js';
import { AUD, NOW, jwksServer, refusal, signer, token, type JwksServer, type Signer } from './test-fixtures.js';

const ACTIONS = {
  'customer.view': { level: 'presence' },
  'payment.approve': { level: 'verified', maxAgeSeconds: 300 },
  'payment.post': { level: 'verified', allowServices: true },
} as const;

describe('ActionTokenVerifier', () => {
  let a: Signer;
  let verifier: ActionTokenVerifier;
  let clock = NOW;
  let revocations: RevocationList;
  before(async () => {
    a = await signer('k1');
    revocations = new RevocationList(() => clock);
    verifier = new ActionTokenVerifier({
      audience: AUD,
      jwks: { keys: [a.jwk] },
      actions: ACTIONS,
      clock: () => clock,
      revocations,
    });
  });

  it('accepts a valid token and says who, what, how strongly and since when', async () => {
    const v = await verifier.verify(await token(a), 'payment.approve');
    assert.equal(v.operator, 'op_ada');
    assert.equal(v.level, 'verified');
    assert.equal(v.session, 'ses_1');
    assert.equal(v.authTime, NOW - 60_000);
    assert.equal(v.policyVersion, 3);
    assert.equal(v.breakGlass, false);
    const capped = await verifier.verify(await token(a, { break_glass: true }), 'payment.approve');
    assert.equal(capped.breakGlass, true, "a break-glass session's token says so");
  });

  it('accepts clock skew within the tolerance and refuses beyond it', async () => {
    const ahead = await token(a, {}, NOW + 20_000); // the issuer's clock runs 20 s ahead
    assert.equal((await verifier.verify(ahead, 'payment.approve')).level, 'verified');
    const farAhead = await token(a, {}, NOW + 120_000);
    assert.equal((await refusal(verifier.verify(farAhead, 'payment.approve'))).code, 'TOKEN_NOT_YET_VALID');
  });

  it('answers a level too low with an RFC 9470 challenge naming the acceptable acr values', async () => {
    const presence = await token(a, { level: 'presence', acr: 'urn:baton:acr:presence' });
    const error = await refusal(verifier.verify(presence, 'payment.approve'));
    assert.equal(error.code, 'INSUFFICIENT_USER_AUTHENTICATION');
    assert.equal(error.status, 401);
    assert.equal(
      error.challenge(),
      'Bearer error="insufficient_user_authentication", error_description="\\"payment.approve\\" needs a \\"verified\\" authentication; this one is \\"presence\\"", acr_values="phr phrh", max_age=300',
    );
    // The lower level is enough for the lookup.
    assert.equal(
      (await verifier.verify(await token(a, { level: 'presence', action: 'customer.view' }), 'customer.view')).level,
      'presence',
    );
  });

  it('refuses a missing token, an unconfigured action and a token for another action', async () => {
    assert.equal((await refusal(verifier.verify(undefined, 'payment.approve'))).code, 'TOKEN_MISSING');
    assert.equal((await refusal(verifier.verify(await token(a), 'account.close'))).code, 'ACTION_NOT_CONFIGURED');
    const other = await refusal(verifier.verify(await token(a), 'customer.view'));
    assert.equal(other.code, 'TOKEN_ACTION_MISMATCH');
    assert.equal(other.status, 403);
  });

  it('refuses an assurance token or any other JWT type', async () => {
    const assurance = await new SignJWT({ action: 'payment.approve' })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: 'k1' })
      .setIssuer('urn:baton:backend')
      .setAudience(AUD)
      .setSubject('op_ada')
      .setJti('x')
      .setIssuedAt(Math.floor(NOW / 1000))
      .setExpirationTime(Math.floor(NOW / 1000) + 60)
      .sign(a.key);
    assert.equal((await refusal(verifier.verify(assurance, 'payment.approve'))).code, 'TOKEN_MALFORMED');
  });

  it('applies revocations: session by sid, console and operator for tokens issued up to then', async () => {
    const t1 = await token(a, { sid: 'ses_r' });
    revocations.apply({ epoch: 1, kind: 'session', targetId: 'ses_r', operatorId: 'op_ada', at: NOW });
    assert.equal((await refusal(verifier.verify(t1, 'payment.approve'))).code, 'TOKEN_REVOKED');

    const beforeRevocation = await token(a, { sid: 'ses_2', console: 'con_x' });
    revocations.apply({ epoch: 2, kind: 'console', targetId: 'con_x', operatorId: null, at: NOW });
    assert.equal((await refusal(verifier.verify(beforeRevocation, 'payment.approve'))).code, 'TOKEN_REVOKED');
    // Past the clock-skew margin (30 s by default), a token of that console is no longer concerned.
    const afterRevocation = await token(a, { sid: 'ses_3', console: 'con_x' }, NOW + 31_000);
    clock = NOW + 31_000;
    assert.equal((await verifier.verify(afterRevocation, 'payment.approve')).session, 'ses_3');
    clock = NOW;
    assert.equal(revocations.epoch, 2);
  });

  it('refuses a token signed within the clock-skew margin after an operator, passkey or console revocation', () => {
    const at = NOW + 900; // the revocation committed at …:00.900 by the revoking node's clock
    const list = new RevocationList(() => at + 1000);
    list.apply({ epoch: 1, kind: 'operator', targetId: 'op_ada', operatorId: 'op_ada', at });
    list.apply({ epoch: 2, kind: 'credential', targetId: 'cred_bo', operatorId: 'op_bo', at });
    list.apply({ epoch: 3, kind: 'console', targetId: 'con_9', operatorId: null, at });
    // Signed in the next second (the exchange read the session as active at …:00.899), or by a node
    // whose clock runs up to 5 s ahead (the default margin): refused all the same.
    const next = Math.floor((at + 101) / 1000);
    assert.equal(list.refuses({ sub: 'op_ada', sid: 'ses_1', console: 'con_1', iat: next }), 'subject');
    assert.equal(list.refuses({ sub: 'op_bo', sid: 'ses_2', console: 'con_2', iat: next + 4 }), 'subject');
    assert.equal(list.refuses({ sub: 'op_cy', sid: 'ses_3', console: 'con_9', iat: next + 4 }), 'console');
    // Beyond the margin, and for other operators and consoles, nothing is refused.
    assert.equal(list.refuses({ sub: 'op_ada', sid: 'ses_4', console: 'con_1', iat: next + 6 }), undefined);
    assert.equal(list.refuses({ sub: 'op_cy', sid: 'ses_5', console: 'con_1', iat: next }), undefined);
    // The margin is an option (0: by `iat` alone, as before).
    const exact = new RevocationList(() => at + 1000, { clockToleranceSeconds: 0 });
    exact.apply({ epoch: 1, kind: 'operator', targetId: 'op_ada', operatorId: 'op_ada', at });
    assert.equal(exact.refuses({ sub: 'op_ada', sid: 'ses_1', console: 'con_1', iat: next }), undefined);
    assert.throws(() => new RevocationList(Date.now, { clockToleranceSeconds: -1 }), TypeError);
  });

  it('refuses a service token acting for a human once that human, their passkey, console or session is revoked', async () => {
    const iat = Math.floor(NOW / 1000);
    const list = new RevocationList(() => clock);
    const verifier = new ActionTokenVerifier({
      audience: AUD,
      jwks: { keys: [a.jwk] },
      actions: ACTIONS,
      clock: () => clock,
      revocations: list,
    });
    /** A service token as Baton signs it for a service acting for `op_x`'s session `ses_x` on `con_x`. */
    const acting = (act: Record<string, unknown>) =>
      token(a, {
        action: 'payment.post',
        scope: 'payment.post',
        channel: 'service',
        console: undefined,
        level: undefined,
        acr: undefined,
        auth_time: iat - 60,
        client_id: 'svc_1',
        ...act,
      });
    const cases = [
      { kind: 'operator', targetId: 'op_o', operatorId: 'op_o', act: { sub: 'op_o', sid: 'ses_o', console: 'con_o' } },
      {
        kind: 'credential',
        targetId: 'cred_c',
        operatorId: 'op_c',
        act: { sub: 'op_c', sid: 'ses_c', console: 'con_c' },
      },
      { kind: 'console', targetId: 'con_k', operatorId: null, act: { sub: 'op_k', sid: 'ses_k', console: 'con_k' } },
      { kind: 'session', targetId: 'ses_s', operatorId: 'op_s', act: { sub: 'op_s', sid: 'ses_s', console: 'con_s' } },
    ] as const;
    let epoch = 10;
    for (const { kind, targetId, operatorId, act } of cases) {
      // `sid` as Baton signs it too (the human session); the session case checks `act.sid` alone.
      const svc = await acting({ act, sid: kind === 'session' ? undefined : act.sid });
      const bystander = await acting({ act: { sub: 'op_z', sid: 'ses_z', console: 'con_z' }, sid: 'ses_z' });
      assert.deepEqual((await verifier.verify(svc, 'payment.post')).actor, act);
      list.apply({ epoch: ++epoch, kind, targetId, operatorId, at: NOW + 500 });
      const refused = await refusal(verifier.verify(svc, 'payment.post'));
      assert.equal(refused.code, 'TOKEN_REVOKED', kind);
      assert.equal(refused.status, 401);
      assert.equal((await verifier.verify(bystander, 'payment.post')).operator, 'op_ada');
    }
    // A token signed before `act` carried the console still verifies, and is still refused with its operator.
    const old = await acting({ act: { sub: 'op_old', sid: 'ses_old' }, sid: 'ses_old' });
    assert.deepEqual((await verifier.verify(old, 'payment.post')).actor, { sub: 'op_old', sid: 'ses_old' });
    list.apply({ epoch: ++epoch, kind: 'operator', targetId: 'op_old', operatorId: 'op_old', at: NOW });
    assert.equal((await refusal(verifier.verify(old, 'payment.post'))).code, 'TOKEN_REVOKED');
  });

  it('accepts a service token only where the action allows services, and shows for whom it acts', async () => {
    const service = await token(a, {
      action: 'payment.post',
      channel: 'service',
      level: undefined,
      acr: undefined,
      auth_time: undefined,
      act: { sub: 'op_ada', sid: 'ses_1' },
    });
    const v: VerifiedAction = await verifier.verify(service, 'payment.post');
    assert.equal(v.level, undefined);
    assert.deepEqual(v.actor, { sub: 'op_ada', sid: 'ses_1' });
    const refused = await refusal(
      verifier.verify(await token(a, { channel: 'service', level: undefined }), 'payment.approve'),
    );
    assert.equal(refused.code, 'SERVICE_NOT_ALLOWED');
  });

  it('applies a service revocation: that service’s tokens issued up to then, not another service’s', async () => {
    /** A service token (`channel: service`, `sub` = the service, no session or console) issued at `at`. */
    const serviceToken = (service: string, at = NOW) =>
      new SignJWT({ action: 'payment.post', scope: 'payment.post', channel: 'service', client_id: service })
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' })
        .setIssuer('urn:baton:backend')
        .setAudience(AUD)
        .setSubject(service)
        .setJti(`svc-${service}-${at}`)
        .setIssuedAt(Math.floor(at / 1000))
        .setExpirationTime(Math.floor(at / 1000) + 120)
        .sign(a.key);
    const issuedBefore = await serviceToken('svc_revoked', NOW - 5000);
    const sameSecond = await serviceToken('svc_revoked', NOW);
    const otherService = await serviceToken('svc_other', NOW - 5000);
    assert.equal((await verifier.verify(issuedBefore, 'payment.post')).operator, 'svc_revoked');

    revocations.apply({ epoch: 3, kind: 'service', targetId: 'svc_revoked', operatorId: null, at: NOW });
    const refused = await refusal(verifier.verify(issuedBefore, 'payment.post'));
    assert.equal(refused.code, 'TOKEN_REVOKED');
    assert.equal(refused.status, 401);
    // `iat` has a one-second grain: a token of the revocation's own second counts as issued before it.
    assert.equal((await refusal(verifier.verify(sameSecond, 'payment.post'))).code, 'TOKEN_REVOKED');
    // Scoped to that service: another service's token, and people's tokens, still verify.
    assert.equal((await verifier.verify(otherService, 'payment.post')).operator, 'svc_other');
    assert.equal((await verifier.verify(await token(a), 'payment.approve')).operator, 'op_ada');
    // A token the service got after the revocation and its clock-skew margin (Baton would not issue
    // one, but the list is by time) passes.
    clock = NOW + 31_000;
    try {
      const issuedAfter = await serviceToken('svc_revoked', NOW + 31_000);
      assert.equal((await verifier.verify(issuedAfter, 'payment.post')).operator, 'svc_revoked');
    } finally {
      clock = NOW;
    }
    assert.equal(revocations.epoch, 3);
  });

  it('refuses every token once revocations have been unheard longer than allowed', async () => {
    const strict = new ActionTokenVerifier({
      audience: AUD,
      jwks: { keys: [a.jwk] },
      actions: ACTIONS,
      clock: () => NOW,
      revocations: { refuses: () => undefined, downForMs: () => 5000 },
      maxRevocationLagMs: 2000,
    });
    assert.equal((await refusal(strict.verify(await token(a), 'payment.approve'))).code, 'REVOCATIONS_UNAVAILABLE');
  });
});

describe('remote JWKS with rotation', () => {
  let jwks: JwksServer;
  before(async () => {
    jwks = await jwksServer();
  });
  after(() => jwks.close());

  it('caches the keys, fetches again for a new kid after a rotation, and refuses a kid still unknown', async () => {
    const k1 = await signer('k1');
    const k2 = await signer('k2');
    jwks.published = [k1.jwk];
    let now = NOW;
    const verifier = new ActionTokenVerifier({ audience: AUD, jwksUrl: jwks.url, actions: ACTIONS, clock: () => now });
    await verifier.verify(await token(k1), 'payment.approve');
    await verifier.verify(await token(k1), 'payment.approve');
    assert.equal(jwks.fetches, 1, 'the JWKS is cached');
    now += 2000;
    jwks.published = [k2.jwk, k1.jwk]; // Baton rotated: k2 signs, k1 stays published
    assert.equal((await verifier.verify(await token(k2, {}, now), 'payment.approve')).level, 'verified');
    assert.equal(jwks.fetches, 2);
    const stranger = await signer('k9');
    assert.equal(
      (await refusal(verifier.verify(await token(stranger, {}, now), 'payment.approve'))).code,
      'TOKEN_KEY_UNKNOWN',
    );
    assert.equal(jwks.fetches, 2, 'an unknown kid within the cooldown does not fetch again');
  });
});

describe('middleware', () => {
  it('node:http: answers a refusal with its status, challenge and code; passes a valid token on', async () => {
    const s = await signer('k1');
    const verifier = new ActionTokenVerifier({
      audience: AUD,
      jwks: { keys: [s.jwk] },
      actions: ACTIONS,
      clock: () => NOW,
    });
    const guard = nodeHttpGuard(verifier, 'payment.approve', { realm: 'teller' });
    const server = createServer((req, res) => {
      void guard(req, res).then((v) => {
        if (v === undefined) return;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ approvedBy: v.operator }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    try {
      const ok = await fetch(base, { headers: { authorization: `Bearer ${await token(s)}` } });
      assert.deepEqual(await ok.json(), { approvedBy: 'op_ada' });
      const low = await fetch(base, { headers: { authorization: `Bearer ${await token(s, { level: 'presence' })}` } });
      assert.equal(low.status, 401);
      const challenge = parseBearerChallenge(low.headers.get('www-authenticate') ?? '');
      assert.equal(challenge?.realm, 'teller');
      assert.equal(challenge?.error, 'insufficient_user_authentication');
      assert.equal(challenge?.acr_values, 'phr phrh');
      assert.equal(challenge?.max_age, '300');
      assert.equal(((await low.json()) as { error: { code: string } }).error.code, 'INSUFFICIENT_USER_AUTHENTICATION');
      const none = await fetch(base);
      assert.equal(none.status, 401);
      assert.match(none.headers.get('www-authenticate') ?? '', /error="invalid_request"/);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('Express-style: sets req.baton and calls next, or answers the refusal without calling next', async () => {
    const s = await signer('k1');
    const verifier = new ActionTokenVerifier({
      audience: AUD,
      jwks: { keys: [s.jwk] },
      actions: ACTIONS,
      clock: () => NOW,
    });
    const middleware = requireAction(verifier, 'payment.approve');
    const server = createServer((req, res) => {
      const request = req as typeof req & { baton?: VerifiedAction };
      middleware(request, Object.assign(res, { locals: {} as Record<string, unknown> }), (error?: unknown) => {
        res.writeHead(error === undefined ? 200 : 500);
        res.end(request.baton?.operator ?? 'none');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    try {
      const ok = await fetch(base, { headers: { authorization: `Bearer ${await token(s)}` } });
      assert.equal(await ok.text(), 'op_ada');
      const bad = await fetch(base, { headers: { authorization: 'Bearer not.a.token' } });
      assert.equal(bad.status, 401);
      assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'TOKEN_MALFORMED');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('challenges', () => {
  it('quotes values and reads them back', () => {
    const header = bearerChallenge({ error: 'invalid_token', description: 'a "quoted" \\ value', realm: 'r' });
    assert.equal(header, 'Bearer realm="r", error="invalid_token", error_description="a \\"quoted\\" \\\\ value"');
    assert.deepEqual(parseBearerChallenge(header), {
      realm: 'r',
      error: 'invalid_token',
      error_description: 'a "quoted" \\ value',
    });
    assert.equal(parseBearerChallenge('Basic realm="x"'), undefined);
  });
});
