/**
 * Parts of issue 13 that were built but not exercised end to end (real backend, real HTTP):
 *
 * - the transmitter signing with ES256 (`ssf.signingAlgorithm`), and a rotation of that key with overlap;
 * - the add/remove subject endpoints (SSF 1.0 §8.1.3): a removed subject gets no more events, an added one
 *   gets them again; bad subjects refused `SCHEMA_INVALID`; `ssf.manage` required;
 * - CAEP `assurance-level-change` for a step-up (NIST-AAL namespace, both levels, the direction);
 * - an inbound RISC `account-purged` revoking the linked operator, recorded with the SET's jti and issuer.
 *
 * (`session-presented` for an online resume is covered by ssf-transmitter-resume.test.ts.)
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SignJWT, createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, type JWK } from 'jose';
import {
  startTestBackend,
  TestConsole,
  assertError,
  httpJson,
  type Json,
  type TestBackend,
} from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { ConformanceReceiver, type ReceivedSet } from '../helpers/ssf-receiver.js';

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const RISC = 'https://schemas.openid.net/secevent/risc/event-type/';
const PUSH = 'urn:ietf:rfc:8935';
const POLL = 'urn:ietf:rfc:8936';

/** A receiver's bearer-authenticated call to the transmitter. */
function as(t: TestBackend, token: string | undefined) {
  return (method: string, path: string, body?: unknown) =>
    httpJson(`${t.url}${path}`, {
      method,
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
}

async function issueReceiver(t: TestBackend, name: string, scopes: string[]) {
  const issued = (await t.admin.ok('POST', '/v1/admin/ssf/receivers', { name, scopes })) as Json;
  return { token: issued.token as string, audience: issued.receiver.audience as string };
}

/** A poll stream for `events`, and a conformance receiver draining it (every SET must pass its checks). */
async function pollStream(t: TestBackend, token: string, audience: string, events: string[]) {
  const created = await as(t, token)('POST', '/ssf/streams', { delivery: { method: POLL }, events_requested: events });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const stream = created.body as Json;
  const receiver = new ConformanceReceiver({
    issuer: t.backend.adminOrigin,
    audience,
    jwksUri: `${t.url}/ssf/jwks.json`,
  });
  const endpoint = stream.delivery.endpoint_url as string;
  const drain = (done: (sets: ReceivedSet[]) => boolean, what: string) =>
    receiver.drainPoll(endpoint, token, done, what);
  return { id: stream.stream_id as string, drain };
}

const userOf = (set: ReceivedSet) => (set.claims.sub_id as Json).user?.sub as string | undefined;
const sessionOf = (set: ReceivedSet) => (set.claims.sub_id as Json).session?.id as string | undefined;

describe('Shared Signals transmitter with ES256 keys (ssf.signingAlgorithm)', () => {
  let t: TestBackend;
  let offset = 0;
  let receiver: ConformanceReceiver;
  before(async () => {
    t = await startTestBackend(
      { ssf: { signingAlgorithm: 'ES256', keyOverlapHours: 1, retryBaseMs: 20, retryMaxMs: 200 } },
      { clock: () => Date.now() + offset },
    );
  });
  after(async () => {
    await receiver?.close();
    await t.stop();
  });

  it('signs SETs with ES256 that verify against jwks_uri; a rotation keeps the old key for the overlap, new SETs carry the new kid', async () => {
    const meta = (await httpJson(`${t.url}/.well-known/ssf-configuration`, { method: 'GET' })).body as Json;
    const jwksUri = meta.jwks_uri as string;
    const readJwks = async () => (await httpJson(jwksUri, { method: 'GET' })).body as { keys: Json[] };
    const initial = await readJwks();
    assert.equal(initial.keys.length, 1);
    const [first] = initial.keys;
    assert.equal(first.kty, 'EC');
    assert.equal(first.crv, 'P-256');
    assert.equal(first.alg, 'ES256');
    assert.equal(first.d, undefined, 'no private member is published');
    const oldKid = first.kid as string;

    const r = await issueReceiver(t, 'ES256 receiver', ['ssf.manage']);
    // Only ES256 accepted: an RS256 SET would be refused by the receiver.
    receiver = await new ConformanceReceiver({
      issuer: t.backend.adminOrigin,
      audience: r.audience,
      jwksUri,
      algorithms: ['ES256'],
    }).listen();
    const created = await as(t, r.token)('POST', '/ssf/streams', {
      delivery: { method: PUSH, endpoint_url: receiver.url },
      events_requested: [`${CAEP}device-compliance-change`],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));

    const deviceSet = async (consoleId: string) => {
      await receiver.waitFor(
        (s) => s.some((x) => (x.claims.sub_id as Json).device?.id === consoleId),
        15_000,
        `the compliance SET of ${consoleId}`,
      );
      return receiver.accepted.find((x) => (x.claims.sub_id as Json).device?.id === consoleId) as ReceivedSet;
    };
    const before = await deviceSet((await TestConsole.enrol(t.url, t.admin)).id);
    assert.equal(before.header.alg, 'ES256');
    assert.equal(before.header.kid, oldKid);
    assert.equal(before.header.typ, 'secevent+jwt');
    // Verified again, independently of the receiver, with the keys published at jwks_uri.
    const verified = await jwtVerify(before.raw, createLocalJWKSet(initial as { keys: JWK[] }), {
      algorithms: ['ES256'],
      typ: 'secevent+jwt',
    });
    assert.equal(verified.payload.iss, t.backend.adminOrigin);

    const rotated = (await t.admin.ok('POST', '/v1/admin/ssf/keys/rotate', {})) as Json;
    assert.equal(rotated.previous, oldKid);
    assert.notEqual(rotated.current, oldKid);
    const during = await readJwks();
    assert.deepEqual(
      during.keys.map((k) => k.kid).sort(),
      [oldKid, rotated.current].sort(),
      'both keys published during the overlap',
    );
    assert.ok(during.keys.every((k) => k.alg === 'ES256' && k.kty === 'EC' && k.d === undefined));
    // A SET signed before the rotation (it may still sit in a queue) verifies against the JWKS of now.
    await jwtVerify(before.raw, createLocalJWKSet(during as { keys: JWK[] }), { algorithms: ['ES256'] });
    const listed = ((await t.admin.ok('GET', '/v1/admin/ssf/keys')) as Json).keys as Json[];
    assert.equal(listed.find((k) => k.kid === oldKid)?.retiredAt === null, false, 'the old key is retired');
    assert.equal(listed.find((k) => k.kid === rotated.current)?.retiredAt, null);

    const afterRotation = await deviceSet((await TestConsole.enrol(t.url, t.admin)).id);
    assert.equal(afterRotation.header.alg, 'ES256');
    assert.equal(afterRotation.header.kid, rotated.current, 'new SETs carry the new kid');
    await jwtVerify(afterRotation.raw, createLocalJWKSet(during as { keys: JWK[] }), { algorithms: ['ES256'] });
    assert.deepEqual(receiver.rejected, []);

    // Past the overlap (keyOverlapHours: 1) the retired key is no longer published.
    offset = 2 * 3600 * 1000;
    assert.deepEqual(
      (await readJwks()).keys.map((k) => k.kid),
      [rotated.current],
    );
  });
});

describe('Shared Signals transmitter: subjects, step-ups; receiver: account-purged', () => {
  let t: TestBackend;
  before(async () => {
    t = await startTestBackend({ ssf: { retryBaseMs: 20, retryMaxMs: 200 } });
  });
  after(() => t.stop());

  it('removing a subject stops its events, adding it back resumes them; bad subjects and missing scope refused', async () => {
    const manager = await issueReceiver(t, 'Subject manager', ['ssf.manage', 'ssf.read']);
    const stream = await pollStream(t, manager.token, manager.audience, [`${CAEP}session-established`]);
    const call = as(t, manager.token);

    // Scope: a read-only token may not change subjects; no token at all is refused.
    const reader = await issueReceiver(t, 'Subject reader', ['ssf.read']);
    const subject = { format: 'opaque', id: 'anyone' };
    for (const path of ['/ssf/subjects/add', '/ssf/subjects/remove']) {
      const refused = await fetch(`${t.url}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${reader.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ stream_id: stream.id, subject }),
      });
      assert.equal(refused.status, 403, path);
      assert.equal(((await refused.json()) as Json).error.code, 'SSF_SCOPE_INSUFFICIENT', path);
      assert.equal(refused.headers.get('www-authenticate'), 'Bearer error="insufficient_scope", scope="ssf.manage"');
      assertError(await as(t, undefined)('POST', path, { stream_id: stream.id, subject }), 401, 'SSF_TOKEN_MISSING');
      // Bad input: an unknown format, malformed subjects, an unknown stream.
      for (const bad of [
        { format: 'carrier-pigeon', id: 'x' },
        { format: 'email', email: 'not-an-email' },
        { format: 'iss_sub', iss: t.backend.adminOrigin },
        { format: 'opaque', id: '' },
        { format: 'complex' },
        { format: 'opaque', id: 'x', colour: 'blue' },
      ]) {
        assertError(await call('POST', path, { stream_id: stream.id, subject: bad }), 400, 'SCHEMA_INVALID');
      }
      assertError(await call('POST', path, { stream_id: stream.id }), 400, 'SCHEMA_INVALID');
      assertError(await call('POST', path, { stream_id: 'str_nope', subject }), 404, 'SSF_STREAM_NOT_FOUND');
    }

    const removed = await enrolOperator(t.admin, await TestConsole.enrol(t.url, t.admin), { displayName: 'Rem Oved' });
    const user = { format: 'iss_sub', iss: t.backend.adminOrigin, sub: removed.operatorId };
    const gone = await call('POST', '/ssf/subjects/remove', { stream_id: stream.id, subject: user });
    assert.equal(gone.status, 204, JSON.stringify(gone.body));
    // A device removed too: nobody's sign-in on that console is sent.
    const quietConsole = await TestConsole.enrol(t.url, t.admin);
    const device = { format: 'opaque', id: quietConsole.id };
    assert.equal((await call('POST', '/ssf/subjects/remove', { stream_id: stream.id, subject: device })).status, 204);

    const consoleA = await TestConsole.enrol(t.url, t.admin);
    const whileRemoved = await signIn(consoleA, removed.authenticator);
    assert.equal(whileRemoved.status, 200, JSON.stringify(whileRemoved.body));
    const onQuiet = await enrolOperator(t.admin, quietConsole, { displayName: 'Quinn Quiet' });
    assert.equal((await signIn(quietConsole, onQuiet.authenticator)).status, 200);
    // A marker after both: another operator, on another console, is still sent.
    const other = await enrolOperator(t.admin, await TestConsole.enrol(t.url, t.admin), { displayName: 'Otto' });
    const markerConsole = await TestConsole.enrol(t.url, t.admin);
    assert.equal((await signIn(markerConsole, other.authenticator)).status, 200);
    let sets = await stream.drain((s) => s.some((x) => userOf(x) === other.operatorId), 'the marker');
    assert.deepEqual(
      sets.filter((x) => userOf(x) === removed.operatorId || userOf(x) === onQuiet.operatorId),
      [],
      'no session-established about the removed user or on the removed device',
    );

    // Added back (200 {}), the user's next sign-in is sent again.
    const added = await call('POST', '/ssf/subjects/add', { stream_id: stream.id, subject: user });
    assert.equal(added.status, 200, JSON.stringify(added.body));
    assert.deepEqual(added.body, {});
    const consoleB = await TestConsole.enrol(t.url, t.admin);
    const back = await signIn(consoleB, removed.authenticator);
    assert.equal(back.status, 200, JSON.stringify(back.body));
    const backSession = (back.body as Json).session.id as string;
    sets = await stream.drain((s) => s.some((x) => sessionOf(x) === backSession), "the added user's sign-in");
    const about = sets.filter((x) => userOf(x) === removed.operatorId);
    assert.deepEqual(
      about.map((x) => sessionOf(x)),
      [backSession],
      'only the sign-in after the subject was added back',
    );
    assert.equal((about[0]?.claims.sub_id as Json).device.id, consoleB.id);
  });

  it('a step-up is sent as CAEP assurance-level-change: NIST-AAL, nist-aal1 → nist-aal2, increase', async () => {
    const r = await issueReceiver(t, 'Assurance watcher', ['ssf.manage', 'ssf.read']);
    const stream = await pollStream(t, r.token, r.audience, [
      `${CAEP}assurance-level-change`,
      `${CAEP}session-established`,
    ]);
    const console = await TestConsole.enrol(t.url, t.admin);
    const { operatorId, authenticator } = await enrolOperator(t.admin, console, { displayName: 'Stella Stepper' });
    // Presence only (no user verification): AAL1.
    const signed = (await signIn(console, authenticator, { userVerified: false })).body as Json;
    assert.equal(signed.session.aal, 1);
    const session = signed.session.id as string;
    const { options, decision } = (await console.ok('POST', `/v1/sessions/${session}/step-up/options`, {
      action: 'payment.approve',
    })) as Json;
    assert.equal(decision.outcome, 'step-up');
    const stepped = (await console.ok('POST', `/v1/sessions/${session}/step-up/verify`, {
      action: 'payment.approve',
      response: authenticator.assert(options, { userVerified: true }),
    })) as Json;
    assert.equal(stepped.session.level, 'verified');

    const sets = await stream.drain(
      (s) => s.some((x) => x.type === `${CAEP}assurance-level-change` && sessionOf(x) === session),
      'the assurance-level-change',
    );
    const changes = sets.filter((x) => x.type === `${CAEP}assurance-level-change` && sessionOf(x) === session);
    assert.equal(changes.length, 1, 'one SET for the one step-up');
    const [change] = changes;
    assert.ok(change);
    assert.equal(userOf(change), operatorId);
    assert.equal((change.claims.sub_id as Json).device.id, console.id);
    assert.equal(change.event.namespace, 'NIST-AAL');
    assert.equal(change.event.previous_level, 'nist-aal1');
    assert.equal(change.event.current_level, 'nist-aal2');
    assert.equal(change.event.change_direction, 'increase');
    assert.equal(change.event.initiating_entity, 'user');
    assert.equal(typeof change.event.event_timestamp, 'number');
    // After the session's establishment, in the queue's order.
    const established = sets.find((x) => x.type === `${CAEP}session-established` && sessionOf(x) === session);
    assert.ok(established);
    assert.ok(sets.indexOf(established) < sets.indexOf(change));
  });

  it('an inbound RISC account-purged revokes the linked operator through the revocation path, recorded with its jti and issuer', async () => {
    // An upstream identity provider whose key Baton holds pinned (no fetch).
    const issuer = 'https://idp.bank.example/';
    const audience = 'https://baton.bank.example/ssf';
    const pair = await generateKeyPair('RS256', { modulusLength: 2048 });
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'idp-1', alg: 'RS256', use: 'sig' };
    const registered = (await t.admin.ok('POST', '/v1/admin/ssf/transmitters', {
      name: 'Workforce IdP',
      issuer,
      audience,
      jwks: { keys: [jwk] },
    })) as Json;
    const transmitterId = registered.transmitter.id as string;

    const console = await TestConsole.enrol(t.url, t.admin);
    const { operatorId, authenticator } = await enrolOperator(t.admin, console, { displayName: 'Pat Purged' });
    await t.admin.ok('POST', `/v1/admin/operators/${operatorId}/identities`, {
      format: 'email',
      email: 'pat.purged@bank.example',
    });
    const session = ((await signIn(console, authenticator)).body as Json).session.id as string;
    const socket = await console.connect();
    await socket.next('welcome');

    const jti = randomUUID();
    const now = Math.floor(Date.now() / 1000);
    const jwt = await new SignJWT({
      iss: issuer,
      jti,
      iat: now,
      aud: audience,
      sub_id: { format: 'email', email: 'Pat.Purged@bank.example' },
      events: { [`${RISC}account-purged`]: { event_timestamp: now } },
    })
      .setProtectedHeader({ alg: 'RS256', typ: 'secevent+jwt', kid: 'idp-1' })
      .sign(pair.privateKey);
    const pushed = await fetch(registered.pushEndpoint as string, {
      method: 'POST',
      headers: {
        'content-type': 'application/secevent+jwt',
        authorization: `Bearer ${registered.pushToken as string}`,
      },
      body: jwt,
    });
    assert.equal(pushed.status, 202, await pushed.text());

    // Pushed to the console over the revocation path, and acknowledged.
    const m = await socket.next('revocation', (x) =>
      x.items.some((i) => i.kind === 'operator' && i.targetId === operatorId),
    );
    const item = m.items.find((i) => i.kind === 'operator' && i.targetId === operatorId);
    assert.match(item?.reason ?? '', /account-purged/);
    assert.ok((item?.reason ?? '').includes(issuer), item?.reason);
    socket.send({ type: 'ack', of: 'revocation', epoch: m.epoch });
    await console.roundTrip(socket);
    const deliveries = (await t.admin.ok('GET', `/v1/admin/revocations/${m.epoch}/deliveries`)) as Json;
    assert.ok(
      (deliveries.deliveries as Json[]).some((d) => d.consoleId === console.id && d.ackedAt != null),
      JSON.stringify(deliveries),
    );

    // The operator is revoked: the session is over, no sign-in any more.
    assert.notEqual(((await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json).operator.revokedAt, null);
    const revokedSessions = (await t.admin.ok('GET', '/v1/admin/sessions?state=revoked&limit=1000')) as Json;
    assert.ok((revokedSessions.sessions as Json[]).some((s) => s.id === session));
    assert.equal((await signIn(console, authenticator)).body.error.code, 'OPERATOR_REVOKED');

    // The audit trail: the SET's jti and issuer, and the revocation made by this transmitter.
    const received = (
      (await t.admin.ok('GET', '/v1/admin/events?type=ssf-set-received&limit=1000')) as Json
    ).events.find((e: Json) => e.detail.jti === jti);
    assert.ok(received, 'an ssf-set-received event with the jti');
    assert.equal(received.detail.iss, issuer);
    assert.equal(received.detail.event, `${RISC}account-purged`);
    assert.equal(received.detail.action, 'operator-revoked');
    assert.equal(received.detail.transmitter, transmitterId);
    assert.equal(received.subject.operator, operatorId);
    assert.equal(received.detail.epochs, String(m.epoch));
    const revoked = (await t.admin.ok('GET', `/v1/admin/events?operator=${operatorId}&type=operator-revoked`)) as Json;
    assert.equal(revoked.events.length, 1);
    assert.equal(revoked.events[0].detail.actor, `ssf:${transmitterId}`);
    await socket.close();
  });
});
