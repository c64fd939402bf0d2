import assert from 'node:assert/strict';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  ActionTokenVerifier,
  SsfSubscription,
  TOKEN_HORIZON_MS,
  VerificationError,
  type Revocation,
} from '../../packages/verifier/src/index.js';
import {
  appKeyPair,
  exchange,
  publishPolicy,
  tellerPolicy,
  TELLER_AUDIENCE,
} from '../helpers/action-token-fixtures.js';
import { startTestBackend, TestConsole, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { startTellerApp } from '../../examples/teller-app/teller-app.js';
import { SignJWT, generateKeyPair } from 'jose';
import type { SoftAuthenticator } from '../helpers/soft-authenticator.js';

/**
 * @baton/verifier following Baton's Shared Signals stream (RFC 8936 poll, SETs verified against
 * /ssf/jwks.json) instead of Baton's own revocation feed, against the real transmitter: a revoked
 * session, a withdrawn passkey and a revoked console each refuse the tokens they concern before
 * those expire; a SET that does not verify is not applied and Baton hears why; a restarted app
 * server finds its stream again and catches up on what was queued while it was down.
 */
/** Polls `condition` (no fixed sleep-then-assert); gives up after 20 s so a regression fails instead of hanging. */
async function waitFor(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A fresh session of `operator` on `on`, and a customer.view token for it. */
async function tokenOf(on: TestConsole, authenticator: SoftAuthenticator): Promise<{ sid: string; token: string }> {
  const signedIn = (await signIn(on, authenticator)).body as Json;
  const answer = (await exchange(on, signedIn.token as string, 'customer.view')).body as Json;
  assert.equal(typeof answer.access_token, 'string', JSON.stringify(answer));
  return { sid: signedIn.session.id as string, token: answer.access_token as string };
}

/** Why `verifier` refuses `token` for customer.view (its error code), or undefined. */
async function refusalBy(verifier: ActionTokenVerifier, token: string): Promise<string | undefined> {
  return verifier.verify(token, 'customer.view').then(
    () => undefined,
    (e: unknown) => (e instanceof VerificationError ? e.code : String(e)),
  );
}

describe('the verifier learns revocations from Baton’s Shared Signals stream', () => {
  let t: TestBackend;
  let receiverToken: string;
  let console1: TestConsole;
  let ada: { operatorId: string; credentialId: string; authenticator: SoftAuthenticator };
  const heard: Revocation[] = [];
  let ssf: SsfSubscription;
  let verifier: ActionTokenVerifier;

  before(async () => {
    // A SET handed out to a poll the app server abandoned (it stopped) is handed out again after 1 s, not 30.
    t = await startTestBackend({ ssf: { pollRedeliverSeconds: 1 } });
    const keys = await appKeyPair();
    await publishPolicy(t.admin, tellerPolicy(keys.publicJwk, 600));
    const issued = (await t.admin.ok('POST', '/v1/admin/ssf/receivers', {
      name: 'Teller app server',
      scopes: ['ssf.manage'],
    })) as Json;
    receiverToken = issued.token as string;
    ssf = new SsfSubscription({ batonUrl: t.url, token: receiverToken, onRevocation: (r) => heard.push(r) });
    await ssf.ready;
    verifier = new ActionTokenVerifier({
      audience: TELLER_AUDIENCE,
      jwksUrl: `${t.url}/v1/tokens/jwks.json`,
      actions: { 'customer.view': { level: 'presence' } },
      revocations: ssf,
      maxRevocationLagMs: 10_000,
    });
    console1 = await TestConsole.enrol(t.url, t.admin);
    ada = await enrolOperator(t.admin, console1);
  });
  after(async () => {
    ssf?.close();
    await t?.stop();
  });

  const refusal = (token: string) => refusalBy(verifier, token);

  /** Waits until the subscription has applied a revocation matching `match` (what the app server would act on). */
  async function until(match: (r: Revocation) => boolean): Promise<void> {
    await waitFor(() => heard.some(match), 'the revocation to be applied');
  }

  it('a revoked session: its token is refused once the session-revoked SET is in, before it expires', async () => {
    const { sid, token } = await tokenOf(console1, ada.authenticator);
    assert.equal(await refusal(token), undefined);
    await t.admin.ok('POST', `/v1/admin/sessions/${sid}/revoke`, { reason: 'left the counter' });
    await until((r) => r.kind === 'session' && r.targetId === sid);
    assert.equal(await refusal(token), 'TOKEN_REVOKED');
    const exp = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as { exp: number };
    assert.ok(exp.exp * 1000 > Date.now() + 60_000, 'refused long before it expires');
    assert.ok(ssf.streamId?.startsWith('str_'), 'the subscription created its own poll stream');
  });

  /**
   * An app server of its own (its own receiver, so its own poll stream): its subscription (on `clock`), a verifier
   * failing closed past 200 ms of unheard revocations, a live token of Ada's, and the admin's status change of the
   * subscription's stream.
   */
  async function ownAppServer(name: string, clock?: () => number) {
    const own = (await t.admin.ok('POST', '/v1/admin/ssf/receivers', { name, scopes: ['ssf.manage'] })) as Json;
    const sub = new SsfSubscription({
      batonUrl: t.url,
      token: own.token as string,
      ...(clock === undefined ? {} : { clock }),
    });
    await sub.ready;
    const strict = new ActionTokenVerifier({
      audience: TELLER_AUDIENCE,
      jwksUrl: `${t.url}/v1/tokens/jwks.json`,
      actions: { 'customer.view': { level: 'presence' } },
      revocations: sub,
      maxRevocationLagMs: 200,
    });
    const { token } = await tokenOf(console1, ada.authenticator);
    assert.equal(await refusalBy(strict, token), undefined);
    const id = sub.streamId as string;
    const status = (value: string) => t.admin.ok('POST', `/v1/admin/ssf/streams/${id}/status`, { status: value });
    return { sub, id, status, refusal: () => refusalBy(strict, token) };
  }

  it('a stream an admin paused at Baton counts as revocations unheard: past maxRevocationLagMs tokens are refused until it is enabled again', async () => {
    const { sub, status, refusal: refusalNow } = await ownAppServer('Second app server');
    try {
      // Paused, Baton holds every SET (a revocation meanwhile would go unheard): the stream cannot say so itself,
      // the status endpoint does.
      await status('paused');
      await waitFor(() => sub.downForMs() > 200, 'the subscription to count the paused stream as unheard');
      assert.equal(await refusalNow(), 'REVOCATIONS_UNAVAILABLE');
      await status('enabled');
      await waitFor(() => sub.downForMs() === 0, 'the subscription to hear the stream again');
      assert.equal(await refusalNow(), undefined);
    } finally {
      sub.close();
    }
  });

  it('a stream disabled at Baton (what it held dropped) still counts as unheard once enabled again, until the tokens issued before have expired', async () => {
    let now = Date.now();
    const { sub, id, status, refusal: refusalNow } = await ownAppServer('Third app server', () => now);
    try {
      const backlog = async () =>
        (((await t.admin.ok('GET', '/v1/admin/ssf/streams')) as Json).streams as Json[]).find((x) => x.id === id)
          ?.backlog as number;
      await status('disabled');
      now += 1000; // after the disable: the subscription's last "known enabled" is before this, whenever it read it
      await waitFor(() => sub.downForMs() >= 1000, 'the subscription to count the disabled stream as unheard');
      assert.equal(await refusalNow(), 'REVOCATIONS_UNAVAILABLE');
      // Enabled again: its stream-updated SET is queued, handed out and acknowledged (the subscription has read it).
      await status('enabled');
      await waitFor(async () => (await backlog()) === 0, 'the stream-updated SET to be taken and acknowledged');
      assert.ok(sub.downForMs() >= 1000, 'what the disable dropped may concern any token issued before');
      assert.equal(await refusalNow(), 'REVOCATIONS_UNAVAILABLE');
      now += TOKEN_HORIZON_MS; // every token issued before the stream was enabled again has expired by now
      assert.equal(sub.downForMs(), 0);
    } finally {
      sub.close();
    }
  });

  it('a withdrawn passkey (credential-change revoke) and a revoked console (device-compliance-change) refuse the tokens issued up to then', async () => {
    const { token: beforeWithdrawal } = await tokenOf(console1, ada.authenticator);
    // A second passkey of another operator on a second console, to revoke the console alone.
    const console2 = await TestConsole.enrol(t.url, t.admin);
    const bob = await enrolOperator(t.admin, console2, { displayName: 'Bob Cashier' });
    const { token: onConsole2 } = await tokenOf(console2, bob.authenticator);
    assert.equal(await refusal(beforeWithdrawal), undefined);
    assert.equal(await refusal(onConsole2), undefined);

    await t.admin.ok('POST', `/v1/admin/credentials/${ada.credentialId}/revoke`, { reason: 'key lost' });
    await until((r) => r.kind === 'credential' && r.operatorId === ada.operatorId);
    assert.equal(await refusal(beforeWithdrawal), 'TOKEN_REVOKED');

    await t.admin.ok('POST', `/v1/admin/consoles/${console2.id}/revoke`, { reason: 'stolen' });
    await until((r) => r.kind === 'console' && r.targetId === console2.id);
    assert.equal(await refusal(onConsole2), 'TOKEN_REVOKED');
  });

  it('a restarted app server finds its stream again and catches up on what was queued while it was down', async () => {
    const carol = await enrolOperator(t.admin, console1, { displayName: 'Carol Clerk' });
    const { sid, token } = await tokenOf(console1, carol.authenticator);
    const stream = ssf.streamId;
    ssf.close();
    await t.admin.ok('POST', `/v1/admin/sessions/${sid}/revoke`, { reason: 'end of shift' });
    const back = new SsfSubscription({ batonUrl: t.url, token: receiverToken, onRevocation: (r) => heard.push(r) });
    try {
      await back.ready;
      assert.equal(back.streamId, stream);
      const again = new ActionTokenVerifier({
        audience: TELLER_AUDIENCE,
        jwksUrl: `${t.url}/v1/tokens/jwks.json`,
        actions: { 'customer.view': { level: 'presence' } },
        revocations: back,
      });
      await until((r) => r.kind === 'session' && r.targetId === sid);
      await assert.rejects(again.verify(token, 'customer.view'), { code: 'TOKEN_REVOKED' });
    } finally {
      back.close();
    }
  });

  it('a SET that does not verify is not applied, and Baton is told why (setErrs)', async () => {
    const dan = await enrolOperator(t.admin, console1, { displayName: 'Dan Desk' });
    const { sid, token } = await tokenOf(console1, dan.authenticator);
    // An app server that accepts only ES256 SETs (Baton signs RS256 here): every SET fails verification.
    const errors: Error[] = [];
    const strict = new SsfSubscription({
      batonUrl: t.url,
      token: receiverToken,
      algorithms: ['ES256'],
      onError: (e) => errors.push(e),
      onRevocation: (r) => heard.push(r),
    });
    const strictVerifier = new ActionTokenVerifier({
      audience: TELLER_AUDIENCE,
      jwksUrl: `${t.url}/v1/tokens/jwks.json`,
      actions: { 'customer.view': { level: 'presence' } },
      revocations: strict,
    });
    try {
      await strict.ready;
      await t.admin.ok('POST', `/v1/admin/sessions/${sid}/revoke`, { reason: 'end of shift' });
      await waitFor(() => errors.some((e) => /alg/i.test(e.message)), 'the SET to be refused');
      assert.equal(
        heard.some((r) => r.targetId === sid),
        false,
        'an unverified SET changes nothing',
      );
      assert.equal((await strictVerifier.verify(token, 'customer.view')).session, sid);
      // Baton shows the refusal on the stream (the admin's Integrations view).
      let listed = '';
      await waitFor(async () => {
        listed = JSON.stringify(await t.admin.ok('GET', '/v1/admin/ssf/streams'));
        return /invalid_request|invalid_key/.test(listed);
      }, 'the stream to show the refusal');
    } finally {
      strict.close();
    }
  });
  it('by push (RFC 8935): the teller app server takes the SETs at /ssf/events and refuses the revoked session; a push without its authorization, or a SET Baton did not sign, changes nothing', async () => {
    const pushedHere: Revocation[] = [];
    const app = await startTellerApp({
      batonUrl: t.url,
      ssfPushToken: receiverToken,
      onRevocation: (r) => pushedHere.push(r),
    });
    try {
      await app.push?.ready;
      const erin = await enrolOperator(t.admin, console1, { displayName: 'Erin Teller' });
      const { sid, token } = await tokenOf(console1, erin.authenticator);
      const lookup = () => fetch(`${app.url}/api/customers/c-1001`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal((await lookup()).status, 200);

      // Someone on the network posts a revocation of their own: without the stream's authorization…
      const { privateKey } = await generateKeyPair('RS256');
      const forged = await new SignJWT({
        sub_id: { format: 'complex', session: { format: 'opaque', id: sid } },
        events: { 'https://schemas.openid.net/secevent/caep/event-type/session-revoked': { event_timestamp: 1 } },
      })
        .setProtectedHeader({ alg: 'RS256', typ: 'secevent+jwt', kid: 'not-batons' })
        .setIssuer(t.backend.adminOrigin)
        .setAudience('anything')
        .setJti('forged-1')
        .setIssuedAt()
        .sign(privateKey);
      const post = (authorization?: string) =>
        fetch(`${app.url}/ssf/events`, {
          method: 'POST',
          headers: {
            'content-type': 'application/secevent+jwt',
            ...(authorization === undefined ? {} : { authorization }),
          },
          body: forged,
        });
      const unauthenticated = await post();
      assert.equal(unauthenticated.status, 401);
      assert.equal(((await unauthenticated.json()) as Json).err, 'authentication_failed');
      // …and with it (as if it had leaked), a SET not signed by Baton is refused all the same.
      const leaked = (app.push as unknown as { authorization: string }).authorization;
      const unsigned = await post(leaked);
      assert.equal(unsigned.status, 400);
      assert.match(((await unsigned.json()) as Json).err as string, /invalid_key|invalid_request|invalid_audience/);
      assert.equal(pushedHere.length, 0);
      assert.equal((await lookup()).status, 200, 'the session still stands');

      // Baton's own push of the admin's revocation: refused at once.
      await t.admin.ok('POST', `/v1/admin/sessions/${sid}/revoke`, { reason: 'end of shift' });
      await waitFor(() => pushedHere.some((r) => r.kind === 'session' && r.targetId === sid), 'the pushed SET');
      const refused = await lookup();
      assert.equal(refused.status, 401);
      assert.equal(((await refused.json()) as Json).error.code, 'TOKEN_REVOKED');
    } finally {
      await app.close();
    }
  });
});

describe('the verifier when Baton’s keys cannot be had for a while (a proxy in front of Baton answers 503)', () => {
  let keysDown = true;
  let backendPort = 0;
  let t: TestBackend;
  let proxyUrl: string;
  // Between the app server and Baton (Baton's SSF issuer is the proxy's URL, so its jwks_uri is too): everything
  // is passed on, but the key set is answered 503 while `keysDown`.
  const proxy = createServer((req, res) => {
    if (keysDown && req.url === '/ssf/jwks.json') {
      res.writeHead(503).end('maintenance');
      return;
    }
    const upstream = httpRequest(
      { host: 'localhost', port: backendPort, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });

  before(async () => {
    await new Promise<void>((resolve) => proxy.listen(0, 'localhost', resolve));
    proxyUrl = `http://localhost:${(proxy.address() as AddressInfo).port}`;
    t = await startTestBackend({ ssf: { issuer: proxyUrl, pollRedeliverSeconds: 1 } });
    backendPort = t.backend.port;
  });
  after(async () => {
    proxy.closeAllConnections();
    proxy.close();
    await t?.stop();
  });

  it('a SET that cannot be checked is neither applied nor refused: tokens are refused meanwhile, and once the keys are back it is applied', async () => {
    const keys = await appKeyPair();
    await publishPolicy(t.admin, tellerPolicy(keys.publicJwk, 600));
    const { token: receiverToken } = (await t.admin.ok('POST', '/v1/admin/ssf/receivers', {
      name: 'Teller app server',
      scopes: ['ssf.manage'],
    })) as { token: string };
    // Before the stream exists: the console's enrolment and the passkey's registration are not SETs of it, so the
    // first SET it holds is the revocation below.
    const desk = await TestConsole.enrol(t.url, t.admin);
    const fay = await enrolOperator(t.admin, desk, { displayName: 'Fay Teller' });
    const { sid, token } = await tokenOf(desk, fay.authenticator);
    const heard: Revocation[] = [];
    const errors: Error[] = [];
    const ssf = new SsfSubscription({
      batonUrl: proxyUrl,
      token: receiverToken,
      onRevocation: (r) => heard.push(r),
      onError: (e) => errors.push(e),
    });
    try {
      await ssf.ready;
      const verifier = new ActionTokenVerifier({
        audience: TELLER_AUDIENCE,
        jwksUrl: `${t.url}/v1/tokens/jwks.json`,
        actions: { 'customer.view': { level: 'presence' } },
        revocations: ssf,
        maxRevocationLagMs: 300,
      });
      assert.equal(await refusalBy(verifier, token), undefined);

      await t.admin.ok('POST', `/v1/admin/sessions/${sid}/revoke`, { reason: 'end of shift' });
      await waitFor(() => errors.some((e) => /keys could not be fetched/.test(e.message)), 'the SET to wait for keys');
      // Not applied, and not taken for applied either: past maxRevocationLagMs the verifier fails closed.
      await waitFor(
        async () => (await refusalBy(verifier, token)) === 'REVOCATIONS_UNAVAILABLE',
        'tokens refused while a revocation waits for keys',
      );
      assert.equal(
        heard.some((r) => r.targetId === sid),
        false,
      );

      keysDown = false;
      // Not reported as refused (Baton would never hand it out again): handed out again, now verified and applied.
      await waitFor(() => heard.some((r) => r.kind === 'session' && r.targetId === sid), 'the SET handed out again');
      assert.equal(await refusalBy(verifier, token), 'TOKEN_REVOKED');
      assert.equal(ssf.downForMs(), 0);
      const streams = JSON.stringify(await t.admin.ok('GET', '/v1/admin/ssf/streams'));
      assert.doesNotMatch(streams, /invalid_key/, 'Baton was not told the SET was refused');
    } finally {
      ssf.close();
    }
  });
});
