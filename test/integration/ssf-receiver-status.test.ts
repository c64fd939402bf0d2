/**
 * Sources in (Baton as a Shared Signals receiver) paused, resumed, disabled and verified, on the real
 * backend, on the engine the suite runs on (SQLite, or PostgreSQL with BATON_TEST_DATABASE=postgres):
 *
 * - an upstream transmitter written for the tests (test/helpers/ssf-upstream.ts: real RSA keys, a real HTTP
 *   server publishing its ssf-configuration, JWKS, stream, status and verification endpoints, pushing real
 *   SETs to Baton's RFC 8935 endpoint with the push token Baton gave it when it created the stream);
 * - and Baton's own transmitter as the upstream: a second backend, its stream created by the first, its
 *   status changed from the first's admin API, its verification event answered through a real push.
 *
 * A paused source holds an account-disabled SET (202, nobody revoked), resuming applies it and the next
 * SET acts at once; disabling drops what is held and refuses pushes; each change is an `admin-action` with
 * the actor, the previous and new status and the reason, and the upstream's answer is shown (a failure to
 * reach it does not block the local change). A verification asked of the upstream is recorded when the SET
 * carrying its `state` arrives; one carrying another state is not taken as the answer. A `stream-updated` or
 * `verification` SET naming another stream than the source's is refused (SSF_SET_STREAM_MISMATCH) and changes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  assertError,
  httpJson,
  startTestBackend,
  TestConsole,
  type Json,
  type TestBackend,
} from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { ACCESS_TOKEN, AUDIENCE, SsfUpstream } from '../helpers/ssf-upstream.js';

const RISC = 'https://schemas.openid.net/secevent/risc/event-type/';
const SSF = 'https://schemas.openid.net/secevent/ssf/event-type/';

describe('Shared Signals sources in: pause, resume, disable and verify', () => {
  let t: TestBackend;
  const upstream = new SsfUpstream();
  let id = '';

  before(async () => {
    await upstream.start();
    t = await startTestBackend();
    const registered = (await t.admin.ok('POST', '/v1/admin/ssf/transmitters', upstream.registration())) as Json;
    id = registered.transmitter.id;
    assert.equal(registered.transmitter.status, 'enabled');
    assert.equal(registered.transmitter.verifiable, false, 'no stream at the upstream yet');
    await t.admin.ok('POST', `/v1/admin/ssf/transmitters/${id}/stream`, { accessToken: ACCESS_TOKEN });
  });
  after(async () => {
    await t.stop();
    await upstream.stop();
  });

  const source = async (): Promise<Json> =>
    ((await t.admin.ok('GET', `/v1/admin/ssf/transmitters/${id}`)) as Json).transmitter;
  const setStatus = (body: Json) => t.admin.request('POST', `/v1/admin/ssf/transmitters/${id}/status`, body);
  const events = async (type: string): Promise<Json[]> =>
    ((await t.admin.ok('GET', `/v1/admin/events?type=${type}&limit=1000`)) as Json).events;
  const adminActions = async (reason: string): Promise<Json[]> =>
    (await events('admin-action')).filter((e) => (e.reasons as string[]).includes(reason));
  const received = async (jti: string): Promise<Json[]> =>
    (await events('ssf-set-received')).filter((e) => e.detail.jti === jti);
  const operator = async (operatorId: string): Promise<Json> =>
    ((await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json).operator;

  /** An operator with a linked email identity, signed in on a console. */
  async function signedIn(email: string) {
    const console = await TestConsole.enrol(t.url, t.admin);
    const enrolled = await enrolOperator(t.admin, console, { displayName: email });
    await t.admin.ok('POST', `/v1/admin/operators/${enrolled.operatorId}/identities`, { format: 'email', email });
    const session = ((await signIn(console, enrolled.authenticator)).body as Json).session;
    return { ...enrolled, console, session };
  }

  it('a paused source holds an account-disabled SET and revokes no one; resuming applies it, and the next SET acts at once', async () => {
    const dana = await signedIn('dana.paused@bank.example');
    const paused = await setStatus({ status: 'paused', reason: 'IdP incident 4711', accessToken: ACCESS_TOKEN });
    assert.equal(paused.status, 200, JSON.stringify(paused.body));
    assert.equal(paused.body.previousStatus, 'enabled');
    assert.equal(paused.body.transmitter.status, 'paused');
    assert.equal(paused.body.transmitter.statusReason, 'IdP incident 4711');
    // The upstream's stream was asked to pause too (SSF 1.0 status endpoint), and its answer is shown.
    assert.deepEqual(upstream.statusRequests.at(-1), {
      stream_id: 'stream-1',
      status: 'paused',
      reason: 'IdP incident 4711',
    });
    assert.equal(paused.body.upstream.via, 'status-endpoint');
    assert.equal(paused.body.upstream.ok, true);
    assert.equal(paused.body.upstream.status, 'paused');
    assert.equal((await source()).upstreamStatus.status, 'paused');
    // The change is an admin-action: who, from what, to what, why.
    const [pausedEvent] = await adminActions('ssf-transmitter-paused');
    assert.equal(pausedEvent.detail.actor, 'admin:bootstrap');
    assert.equal(pausedEvent.detail.transmitter, id);
    assert.equal(pausedEvent.detail.previousStatus, 'enabled');
    assert.equal(pausedEvent.detail.status, 'paused');
    assert.equal(pausedEvent.detail.reason, 'IdP incident 4711');
    const upstreamEvent = (await adminActions('ssf-transmitter-upstream-status')).at(0);
    assert.equal(upstreamEvent.outcome, 'success');
    assert.equal(upstreamEvent.detail.upstreamStatus, 'paused');

    // A SET pushed meanwhile (a transmitter that has not stopped yet) is accepted and held: nobody is revoked.
    const disabled = await upstream.set(`${RISC}account-disabled`, {
      format: 'email',
      email: 'dana.paused@bank.example',
    });
    assert.equal((await upstream.push(disabled.jwt)).status, 202);
    assert.equal((await operator(dana.operatorId)).revokedAt, null);
    const live = (await t.admin.ok('GET', `/v1/admin/sessions?state=active&limit=1000`)) as Json;
    assert.ok(
      (live.sessions as Json[]).some((s) => s.id === dana.session.id),
      'the session is still active',
    );
    const [held] = await received(disabled.jti);
    assert.equal(held.detail.action, 'held');
    assert.equal(held.outcome, 'info');
    assert.equal(held.subject.operator, dana.operatorId);
    const whilePaused = await source();
    assert.equal(whilePaused.held, 1);
    assert.equal(whilePaused.lastAction, 'held');
    // Held is not lost, nor taken twice: the same jti again is a replay.
    const again = await upstream.push(disabled.jwt);
    assert.equal(again.status, 400);
    assert.equal(again.body.error.code, 'SSF_SET_REPLAYED');

    // Resumed: the held SET acts now (the operator revoked, recorded with when it was held); the upstream resumes.
    const resumed = await setStatus({ status: 'enabled', accessToken: ACCESS_TOKEN });
    assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
    assert.equal(resumed.body.previousStatus, 'paused');
    assert.equal(resumed.body.applied, 1);
    assert.equal(resumed.body.remaining, 0);
    assert.equal(resumed.body.transmitter.status, 'enabled');
    assert.equal(resumed.body.transmitter.held, 0);
    assert.equal(upstream.statusRequests.at(-1).status, 'enabled');
    assert.notEqual((await operator(dana.operatorId)).revokedAt, null);
    const applied = (await received(disabled.jti)).find((e) => e.detail.action !== 'held');
    assert.equal(applied.detail.action, 'operator-revoked');
    assert.equal(typeof applied.detail.heldSince, 'number');
    assert.equal((await source()).lastAction, 'operator-revoked');
    const [enabledEvent] = await adminActions('ssf-transmitter-enabled');
    assert.equal(enabledEvent.detail.previousStatus, 'paused');
    assert.equal(enabledEvent.detail.heldSets, 1);

    // The next SET acts as it arrives.
    const sam = await signedIn('sam.next@bank.example');
    const next = await upstream.set(`${RISC}account-disabled`, { format: 'email', email: 'sam.next@bank.example' });
    assert.equal((await upstream.push(next.jwt)).status, 202);
    assert.notEqual((await operator(sam.operatorId)).revokedAt, null);
    assert.equal((await received(next.jti))[0].detail.action, 'operator-revoked');
    assert.equal((await signIn(sam.console, sam.authenticator)).body.error.code, 'OPERATOR_REVOKED');
  });

  it('pauses locally even when the upstream cannot be reached or no access token is given, and says so', async () => {
    upstream.statusMode = '503';
    try {
      const down = await setStatus({ status: 'paused', reason: 'upstream down', accessToken: ACCESS_TOKEN });
      assert.equal(down.status, 200, JSON.stringify(down.body));
      assert.equal(down.body.transmitter.status, 'paused');
      assert.equal(down.body.upstream.ok, false);
      assert.equal(down.body.upstream.httpStatus, 503);
      assert.match(down.body.upstream.error, /HTTP 503/);
      upstream.statusMode = 'reset';
      const cut = await setStatus({ status: 'enabled', accessToken: ACCESS_TOKEN });
      assert.equal(cut.status, 200, JSON.stringify(cut.body));
      assert.equal(cut.body.transmitter.status, 'enabled');
      assert.equal(cut.body.upstream.ok, false);
      assert.match(cut.body.upstream.error, /could not be reached/);
      // Recorded as failures, and shown with the source.
      const failed = (await adminActions('ssf-transmitter-upstream-status')).filter((e) => e.outcome === 'failure');
      assert.equal(failed.length, 2);
      assert.match((await source()).upstreamStatus.error, /could not be reached/);
    } finally {
      upstream.statusMode = 'ok';
    }
    // Without the upstream's token: the local status changes, the upstream is not asked, and the answer says so.
    const asked = upstream.statusRequests.length;
    const local = await setStatus({ status: 'paused' });
    assert.equal(local.body.transmitter.status, 'paused');
    assert.equal(local.body.upstream.via, 'not-asked');
    assert.equal(upstream.statusRequests.length, asked);
    // The same status again changes nothing and records nothing.
    const before = (await adminActions('ssf-transmitter-paused')).length;
    const same = await setStatus({ status: 'paused' });
    assert.equal(same.body.changed, false);
    assert.equal((await adminActions('ssf-transmitter-paused')).length, before);
    assert.equal((await setStatus({ status: 'enabled' })).body.transmitter.status, 'enabled');
  });

  it('disabling drops what a paused source holds and refuses its pushes; enabled again, it acts', async () => {
    const lee = await signedIn('lee.dropped@bank.example');
    await setStatus({ status: 'paused', reason: 'review' });
    const first = await upstream.set(`${RISC}account-disabled`, { format: 'email', email: 'lee.dropped@bank.example' });
    const second = await upstream.set(`${RISC}sessions-revoked`, {
      format: 'email',
      email: 'lee.dropped@bank.example',
    });
    assert.equal((await upstream.push(first.jwt)).status, 202);
    assert.equal((await upstream.push(second.jwt)).status, 202);
    assert.equal((await source()).held, 2);

    const disabled = await setStatus({ status: 'disabled', reason: 'compromised IdP', accessToken: ACCESS_TOKEN });
    assert.equal(disabled.status, 200, JSON.stringify(disabled.body));
    assert.equal(disabled.body.droppedSets, 2);
    assert.equal(disabled.body.transmitter.status, 'disabled');
    assert.equal(disabled.body.transmitter.held, 0);
    assert.equal(upstream.statusRequests.at(-1).status, 'disabled');
    const [event] = (await adminActions('ssf-transmitter-disabled')).filter(
      (e) => e.detail.reason === 'compromised IdP',
    );
    assert.equal(event.detail.previousStatus, 'paused');
    assert.equal(event.detail.droppedSets, 2);
    assert.deepEqual((event.detail.droppedJtis as string).split(' ').sort(), [first.jti, second.jti].sort());
    // Refused, nothing held, nobody revoked.
    const third = await upstream.set(`${RISC}account-disabled`, { format: 'email', email: 'lee.dropped@bank.example' });
    const refused = await upstream.push(third.jwt);
    assert.equal(refused.status, 403);
    assert.equal(refused.body.err, 'access_denied');
    assert.equal(refused.body.error.code, 'SSF_TRANSMITTER_UNKNOWN');
    assert.equal((await operator(lee.operatorId)).revokedAt, null);
    assert.deepEqual(await received(third.jti), []);
    // DELETE on a disabled source is refused as before.
    assertError(await t.admin.request('DELETE', `/v1/admin/ssf/transmitters/${id}`), 403, 'SSF_TRANSMITTER_UNKNOWN');

    // Enabled again: nothing dropped comes back; the next SET acts.
    const enabled = await setStatus({ status: 'enabled', accessToken: ACCESS_TOKEN });
    assert.equal(enabled.body.previousStatus, 'disabled');
    assert.equal(enabled.body.applied, 0);
    assert.equal((await operator(lee.operatorId)).revokedAt, null);
    assert.equal((await upstream.push(third.jwt)).status, 202);
    assert.notEqual((await operator(lee.operatorId)).revokedAt, null);
  });

  it('records a verification when the SET carrying its state arrives, and not one carrying another state', async () => {
    const asked = await t.admin.request('POST', `/v1/admin/ssf/transmitters/${id}/verify`, {
      accessToken: ACCESS_TOKEN,
    });
    assert.equal(asked.status, 200, JSON.stringify(asked.body));
    const state = asked.body.state as string;
    assert.match(state, /^baton-[A-Za-z0-9_-]{22}$/);
    assert.deepEqual(upstream.verifyRequests.at(-1), { stream_id: 'stream-1', state });
    await upstream.settled();
    assert.deepEqual(upstream.verificationPushes, [202]);
    const verified = await source();
    assert.equal(verified.verifiable, true);
    assert.equal(verified.verification.state, state);
    assert.equal(verified.verification.requestedAt, asked.body.requestedAt);
    assert.ok(verified.verification.receivedAt >= verified.verification.requestedAt);
    assert.equal(verified.verification.tookMs, verified.verification.receivedAt - verified.verification.requestedAt);
    const verification = (await events('ssf-set-received')).find((e) => e.detail.jti === verified.verification.jti);
    assert.equal(verification.detail.action, 'verified');
    assert.equal(verification.detail.event, `${SSF}verification`);

    // The upstream answers the next request with a SET carrying another state: accepted (202), not the answer.
    upstream.verifyMode = 'wrong-state';
    try {
      const second = await t.admin.ok('POST', `/v1/admin/ssf/transmitters/${id}/verify`, {
        accessToken: ACCESS_TOKEN,
      });
      await upstream.settled();
      assert.deepEqual(upstream.verificationPushes, [202, 202]);
      const pending = await source();
      assert.equal(pending.verification.state, second.state);
      assert.equal(pending.verification.receivedAt, null);
      assert.equal(pending.verification.tookMs, null);
      const unmatched = (await events('ssf-set-received')).filter((e) => e.detail.action === 'verification-unmatched');
      assert.equal(unmatched.length, 1);
      assert.equal(unmatched[0].outcome, 'info');
    } finally {
      upstream.verifyMode = 'echo';
    }

    // The upstream refusing the request (a wrong token): a stable error, and the source shows it.
    const refused = await t.admin.request('POST', `/v1/admin/ssf/transmitters/${id}/verify`, {
      accessToken: 'expired-token',
    });
    assertError(refused, 502, 'SSF_UPSTREAM_INVALID');
    assert.match((await source()).verification.error, /HTTP 401/);
    // No token at all: the request is refused before anything is asked.
    assertError(await t.admin.request('POST', `/v1/admin/ssf/transmitters/${id}/verify`, {}), 400, 'SCHEMA_INVALID');

    // A paused source is not verified (resume it first).
    await setStatus({ status: 'paused' });
    assertError(
      await t.admin.request('POST', `/v1/admin/ssf/transmitters/${id}/verify`, { accessToken: ACCESS_TOKEN }),
      409,
      'SSF_SOURCE_NOT_ENABLED',
    );
    await setStatus({ status: 'enabled' });
  });

  it('refuses a stream-updated or verification SET naming another stream: the source keeps its status and verification', async () => {
    const before = (await source()).upstreamStatus;
    const refusedEvent = async (jti: string): Promise<Json> =>
      (await events('ssf-set-refused')).find((e) => e.detail.jti === jti);
    // Signed by the upstream, about a stream that is not the one Baton created there (stream-1).
    const other = await upstream.set(
      `${SSF}stream-updated`,
      { format: 'opaque', id: 'stream-2' },
      { status: 'disabled', reason: 'another receiver' },
    );
    const refused = await upstream.push(other.jwt);
    assert.equal(refused.status, 400);
    assert.equal(refused.body.err, 'invalid_request');
    assert.equal(refused.body.error.code, 'SSF_SET_STREAM_MISMATCH');
    assert.match(refused.body.description, /stream "stream-2"; this source's stream is "stream-1"/);
    assert.deepEqual((await source()).upstreamStatus, before, 'the status it announced is not taken');
    assert.deepEqual(await received(other.jti), []);
    assert.equal((await refusedEvent(other.jti))?.detail.code, 'SSF_SET_STREAM_MISMATCH');
    // Not a stream id at all (an operator's subject): refused alike.
    const notAStream = await upstream.set(
      `${SSF}stream-updated`,
      { format: 'email', email: 'dana.paused@bank.example' },
      { status: 'paused' },
    );
    assert.equal((await upstream.push(notAStream.jwt)).body.error.code, 'SSF_SET_STREAM_MISMATCH');
    assert.deepEqual((await source()).upstreamStatus, before);
    const rejection = ((await source()).rejections as Json[]).find((r) => r.code === 'SSF_SET_STREAM_MISMATCH');
    assert.equal(rejection?.count, 2);

    // The same event about its own stream is taken.
    const own = await upstream.set(
      `${SSF}stream-updated`,
      { format: 'opaque', id: 'stream-1' },
      { status: 'paused', reason: 'maintenance' },
    );
    assert.equal((await upstream.push(own.jwt)).status, 202);
    const said = (await source()).upstreamStatus;
    assert.equal(said.via, 'stream-updated');
    assert.equal(said.status, 'paused');
    assert.equal(said.reason, 'maintenance');

    // A verification SET carrying the state Baton asked for, but naming another stream: refused, not the answer.
    upstream.verifyMode = 'other-stream';
    try {
      const asked = await t.admin.ok('POST', `/v1/admin/ssf/transmitters/${id}/verify`, { accessToken: ACCESS_TOKEN });
      await upstream.settled();
      assert.equal(upstream.verificationPushes.at(-1), 400);
      const pending = (await source()).verification;
      assert.equal(pending.state, asked.state);
      assert.equal(pending.receivedAt, null);
      assert.equal(pending.jti, null);
    } finally {
      upstream.verifyMode = 'echo';
    }
  });

  it('offers no verification for a source without a stream at its upstream (pinned keys, push only)', async () => {
    const pinned = (await t.admin.ok('POST', '/v1/admin/ssf/transmitters', {
      name: 'Offline IdP',
      issuer: 'https://offline-idp.bank.example/',
      audience: AUDIENCE,
      jwks: { keys: [upstream.jwk] },
    })) as Json;
    assert.equal(pinned.transmitter.verifiable, false);
    assertError(
      await t.admin.request('POST', `/v1/admin/ssf/transmitters/${pinned.transmitter.id as string}/verify`, {
        accessToken: ACCESS_TOKEN,
      }),
      409,
      'SSF_SOURCE_NO_STREAM',
    );
    // Its status changes locally (there is no upstream stream to ask: `upstream` is null).
    const paused = await t.admin.request(
      'POST',
      `/v1/admin/ssf/transmitters/${pinned.transmitter.id as string}/status`,
      {
        status: 'paused',
      },
    );
    assert.equal(paused.body.transmitter.status, 'paused');
    assert.equal(paused.body.upstream, null);
    // Validation: an unknown status, an unknown member, an unknown source.
    assertError(await setStatus({ status: 'stopped' }), 400, 'SCHEMA_INVALID');
    assertError(await setStatus({ status: 'paused', extra: true }), 400, 'SCHEMA_INVALID');
    assertError(
      await t.admin.request('POST', '/v1/admin/ssf/transmitters/ssft_nope/status', { status: 'paused' }),
      404,
      'NOT_FOUND',
    );
    // The list filters by status.
    const list = (await t.admin.ok('GET', '/v1/admin/ssf/transmitters?state=paused&limit=50')) as Json;
    assert.deepEqual(
      (list.transmitters as Json[]).map((s) => s.id),
      [pinned.transmitter.id],
    );
  });
});

describe('Shared Signals sources in: Baton’s own transmitter as the upstream (a second backend)', () => {
  let upstream: TestBackend;
  let baton: TestBackend;
  let token = '';
  let id = '';
  let streamId = '';

  before(async () => {
    upstream = await startTestBackend();
    baton = await startTestBackend();
    const issuer = ((await httpJson(`${upstream.url}/.well-known/ssf-configuration`, { method: 'GET' })).body as Json)
      .issuer as string;
    const issued = (await upstream.admin.ok('POST', '/v1/admin/ssf/receivers', {
      name: 'Baton at the branches',
      scopes: ['ssf.manage', 'ssf.read'],
      audience: AUDIENCE,
    })) as Json;
    token = issued.token;
    const registered = (await baton.admin.ok('POST', '/v1/admin/ssf/transmitters', {
      name: 'Head-office Baton',
      issuer,
      audience: AUDIENCE,
      configurationUrl: `${upstream.url}/.well-known/ssf-configuration`,
    })) as Json;
    id = registered.transmitter.id;
    const created = (await baton.admin.ok('POST', `/v1/admin/ssf/transmitters/${id}/stream`, {
      accessToken: token,
    })) as Json;
    streamId = created.stream.stream_id;
  });
  after(async () => {
    await baton?.stop();
    await upstream?.stop();
  });

  const upstreamStream = async (): Promise<Json> =>
    ((await upstream.admin.ok('GET', '/v1/admin/ssf/streams')) as Json).streams.find((s: Json) => s.id === streamId);
  const source = async (): Promise<Json> =>
    ((await baton.admin.ok('GET', `/v1/admin/ssf/transmitters/${id}`)) as Json).transmitter;

  it('verifies through the real transmitter: its verification SET is pushed and recorded with its state', async () => {
    const asked = (await baton.admin.ok('POST', `/v1/admin/ssf/transmitters/${id}/verify`, {
      accessToken: token,
    })) as Json;
    const deadline = Date.now() + 15_000;
    let verified = await source();
    while (verified.verification.receivedAt === null && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      verified = await source();
    }
    assert.equal(verified.verification.state, asked.state);
    assert.notEqual(verified.verification.receivedAt, null, 'the verification SET arrived');
    assert.ok(verified.verification.tookMs >= 0);
    // The transmitter's side saw Baton accept it: it records that once Baton's 202 is back and its unit committed,
    // which may be after Baton recorded the SET (waited for, bounded).
    let there = await upstreamStream();
    while (there.verification?.acceptedAt == null && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      there = await upstreamStream();
    }
    assert.notEqual(there.verification.acceptedAt, null, "the transmitter recorded Baton's acceptance");
  });

  it('pauses and resumes the upstream stream along with the source', async () => {
    const paused = (await baton.admin.ok('POST', `/v1/admin/ssf/transmitters/${id}/status`, {
      status: 'paused',
      reason: 'maintenance window',
      accessToken: token,
    })) as Json;
    assert.equal(paused.transmitter.status, 'paused');
    assert.equal(paused.upstream.ok, true, JSON.stringify(paused.upstream));
    assert.equal(paused.upstream.status, 'paused');
    const there = await upstreamStream();
    assert.equal(there.status, 'paused');
    assert.equal(there.statusReason, 'maintenance window');
    // The transmitter records who paused it: this receiver, through its status endpoint.
    const actions = ((await upstream.admin.ok('GET', '/v1/admin/events?type=admin-action&limit=1000')) as Json).events;
    assert.ok(
      actions.some((e: Json) => e.reasons.includes('ssf-stream-paused') && e.detail.actor.startsWith('receiver:')),
    );

    const resumed = (await baton.admin.ok('POST', `/v1/admin/ssf/transmitters/${id}/status`, {
      status: 'enabled',
      accessToken: token,
    })) as Json;
    assert.equal(resumed.transmitter.status, 'enabled');
    assert.equal(resumed.upstream.status, 'enabled');
    assert.equal((await upstreamStream()).status, 'enabled');
    // The transmitter announces its changes with stream-updated SETs: once delivered, the source shows what it said.
    const deadline = Date.now() + 15_000;
    let said = (await source()).upstreamStatus;
    while (said?.via !== 'stream-updated' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      said = (await source()).upstreamStatus;
    }
    assert.equal(said?.via, 'stream-updated');
  });
});
