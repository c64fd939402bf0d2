/**
 * Sources in (Baton as a Shared Signals receiver): held SETs claimed before they are applied, and an upstream's
 * endpoints pinned to its configuration URL's origin, on the real backend, on the engine the suite runs on (SQLite,
 * or PostgreSQL with BATON_TEST_DATABASE=postgres), against an upstream written for the tests (real keys, a real HTTP
 * server: test/helpers/ssf-upstream.ts).
 *
 * - A disable that lands while a resume is applying (ordered by hooking the first revocation of the resume, no
 *   sleeps): the SET being applied was claimed before it, so it is not listed as dropped; the SETs the disable lists
 *   as dropped are never applied (their operators keep their accounts).
 * - Two resumes at once (the second runs inside the first's first revocation): each held SET is applied once.
 * - A resume that stops partway (its first revocation fails): the SET is held again, the source is enabled and still
 *   holds; a new SET acts at once; applying the held SETs again (the same status request) applies the rest.
 * - An upstream whose configuration names a verification, status or configuration endpoint on another origin is
 *   refused (SSF_UPSTREAM_INVALID) and nothing is sent there; a redirect from an endpoint is not followed.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { RevocationHub } from '../../backend/services/revocation-hub.js';
import { assertError, startTestBackend, TestConsole, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator } from '../helpers/operator-flow.js';
import { ACCESS_TOKEN, SsfUpstream } from '../helpers/ssf-upstream.js';

const RISC = 'https://schemas.openid.net/secevent/risc/event-type/';

describe('Shared Signals sources in: held SETs claimed once, upstream endpoints pinned', () => {
  let t: TestBackend;
  let console: TestConsole;
  const upstream = new SsfUpstream();
  let id = '';

  before(async () => {
    await upstream.start();
    t = await startTestBackend();
    console = await TestConsole.enrol(t.url, t.admin);
    const registered = (await t.admin.ok('POST', '/v1/admin/ssf/transmitters', upstream.registration())) as Json;
    id = registered.transmitter.id;
    await t.admin.ok('POST', `/v1/admin/ssf/transmitters/${id}/stream`, { accessToken: ACCESS_TOKEN });
  });
  after(async () => {
    await t.stop();
    await upstream.stop();
  });

  const source = async (): Promise<Json> =>
    ((await t.admin.ok('GET', `/v1/admin/ssf/transmitters/${id}`)) as Json).transmitter;
  const setStatus = async (body: Json): Promise<Json> => {
    const answer = await t.admin.request('POST', `/v1/admin/ssf/transmitters/${id}/status`, body);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body;
  };
  /** The applications of a held SET (its `ssf-set-received` events other than the hold). */
  const applications = async (jti: string): Promise<Json[]> =>
    (((await t.admin.ok('GET', `/v1/admin/events?type=ssf-set-received&limit=1000`)) as Json).events as Json[]).filter(
      (e) => e.detail.jti === jti && e.detail.action !== 'held',
    );
  const revokedAt = async (operatorId: string): Promise<unknown> =>
    (((await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json).operator as Json).revokedAt;

  type Held = { operatorId: string; jti: string };
  /** The `n`th of the SETs held (asserted there). */
  const nth = (held: Held[], n: number): Held => {
    const h = held[n];
    assert.ok(h);
    return h;
  };
  /** An operator with a linked email identity, and an account-disabled SET about them pushed by the upstream (202). */
  async function disabledSetAbout(name: string): Promise<Held> {
    const email = `${name}.${randomUUID().slice(0, 8)}@bank.example`;
    const { operatorId } = await enrolOperator(t.admin, console, { displayName: name });
    await t.admin.ok('POST', `/v1/admin/operators/${operatorId}/identities`, { format: 'email', email });
    const set = await upstream.set(`${RISC}account-disabled`, { format: 'email', email });
    assert.equal((await upstream.push(set.jwt)).status, 202);
    return { operatorId, jti: set.jti };
  }
  /** Operators with linked email identities, and an account-disabled SET about each held by the paused source. */
  async function heldAbout(...names: string[]): Promise<Held[]> {
    const out: Held[] = [];
    await setStatus({ status: 'paused', reason: 'held for the test' });
    for (const name of names) out.push(await disabledSetAbout(name));
    assert.equal((await source()).held, names.length);
    return out;
  }

  /** Runs `during` once, inside the next revocation (before it), as a request landing while a resume applies. */
  function duringFirstRevocation(during: () => Promise<void>): { restore: () => void } {
    const hub = t.backend.revocations as { revoke: RevocationHub['revoke'] };
    const original = hub.revoke;
    let first = true;
    hub.revoke = async function (this: RevocationHub, ...args: Parameters<RevocationHub['revoke']>) {
      if (first) {
        first = false;
        await during();
      }
      return original.apply(this, args);
    };
    return { restore: () => (hub.revoke = original) };
  }

  it('a disable that lands while a resume applies a held SET: what it lists as dropped is never applied', async () => {
    const three = await heldAbout('ann', 'bob', 'cy');
    const [ann, bob, cy] = [nth(three, 0), nth(three, 1), nth(three, 2)];
    let disabled: Json = null;
    const hook = duringFirstRevocation(async () => {
      disabled = await setStatus({ status: 'disabled', reason: 'compromised IdP' });
    });
    try {
      const resumed = await setStatus({ status: 'enabled' });
      assert.equal(resumed.applied, 1);
      assert.equal(resumed.remaining, 0);
    } finally {
      hook.restore();
    }
    assert.ok(disabled);
    // Ann's SET was claimed (taken from the held ones) before the disable: applied, and not listed as dropped.
    assert.notEqual(await revokedAt(ann.operatorId), null);
    assert.equal((await applications(ann.jti)).length, 1);
    assert.equal(disabled.droppedSets, 2);
    const event = (
      ((await t.admin.ok('GET', `/v1/admin/events?type=admin-action&limit=1000`)) as Json).events as Json[]
    ).find((e) => (e.reasons as string[]).includes('ssf-transmitter-disabled'));
    assert.deepEqual((event?.detail.droppedJtis as string).split(' ').sort(), [bob.jti, cy.jti].sort());
    // Dropped: never applied.
    for (const dropped of [bob, cy]) {
      assert.equal(await revokedAt(dropped.operatorId), null);
      assert.deepEqual(await applications(dropped.jti), []);
    }
    assert.equal((await source()).status, 'disabled');
    await setStatus({ status: 'enabled' });
  });

  it('two resumes at once apply each held SET exactly once', async () => {
    const held = await heldAbout('dee', 'eve', 'fay');
    let second: Json = null;
    const hook = duringFirstRevocation(async () => {
      second = await setStatus({ status: 'enabled' });
    });
    let first: Json;
    try {
      first = await setStatus({ status: 'enabled' });
    } finally {
      hook.restore();
    }
    assert.ok(second);
    // The second resume applied what the first had not claimed yet; the first, its one SET (the rest gone).
    assert.equal(first.applied + second.applied, 3);
    assert.equal(first.remaining, 0);
    for (const h of held) {
      assert.ok(h);
      const applied = await applications(h.jti);
      assert.equal(applied.length, 1, `${h.jti} applied once`);
      assert.equal(applied[0].detail.action, 'operator-revoked');
      assert.notEqual(await revokedAt(h.operatorId), null);
    }
    assert.equal((await source()).held, 0);
  });

  it('a resume that stops partway keeps what it could not apply; a new SET acts at once; applying again goes on', async () => {
    const two = await heldAbout('gus', 'hal');
    const [gus, hal] = [nth(two, 0), nth(two, 1)];
    const hook = duringFirstRevocation(() => Promise.reject(new Error('the database went away')));
    let stopped: Json;
    try {
      stopped = await setStatus({ status: 'enabled' });
    } finally {
      hook.restore();
    }
    // Nothing lost: the SET whose revocation failed is held again, in its place, and the run stopped there.
    assert.equal(stopped.applied, 0);
    assert.equal(stopped.remaining, 2);
    assert.equal(stopped.transmitter.status, 'enabled');
    assert.equal(stopped.transmitter.held, 2);
    assert.equal(await revokedAt(gus.operatorId), null);

    // Enabled while older SETs are held: a new SET acts as it arrives (a stuck one delays no revocation).
    const ivy = await disabledSetAbout('ivy');
    assert.notEqual(await revokedAt(ivy.operatorId), null);
    assert.equal((await source()).held, 2);

    // The same request again (the console's "Apply held SETs") applies the rest, oldest first, once each.
    const again = await setStatus({ status: 'enabled' });
    assert.equal(again.changed, false);
    assert.equal(again.applied, 2);
    assert.equal(again.remaining, 0);
    for (const h of [gus, hal]) {
      assert.notEqual(await revokedAt(h.operatorId), null);
      assert.equal((await applications(h.jti)).length, 1);
    }
    const [gusAt, halAt] = [(await applications(gus.jti))[0], (await applications(hal.jti))[0]];
    assert.ok((gusAt?.cursor as number) < (halAt?.cursor as number), 'oldest first');
  });

  /**
   * Runs `test` with the upstream's management endpoints so (`foreign`, `redirect`: SsfUpstream.endpoints), given what
   * was asked of the upstream since; then they are back on its own origin, and the source is enabled again.
   */
  async function withEndpoints(
    mode: SsfUpstream['endpoints'],
    test: (sent: () => string[]) => Promise<void>,
  ): Promise<void> {
    upstream.endpoints = mode;
    try {
      const before = upstream.requests.length;
      await test(() => upstream.requests.slice(before));
    } finally {
      upstream.endpoints = 'ok';
    }
    await setStatus({ status: 'enabled' });
  }
  /** Asks for the upstream to verify the stream, or to create it: refused with SSF_UPSTREAM_INVALID. */
  const refused = async (what: 'verify' | 'stream'): Promise<void> =>
    assertError(
      await t.admin.request('POST', `/v1/admin/ssf/transmitters/${id}/${what}`, { accessToken: ACCESS_TOKEN }),
      502,
      'SSF_UPSTREAM_INVALID',
    );

  it('refuses an endpoint on another origin than the configuration URL, and sends nothing there', () =>
    withEndpoints('foreign', async (sent) => {
      await refused('verify');
      await refused('stream');
      const paused = await setStatus({ status: 'paused', accessToken: ACCESS_TOKEN });
      assert.equal(paused.transmitter.status, 'paused', 'the local change is made');
      assert.equal(paused.upstream.ok, false);
      assert.match(paused.upstream.error, /SSF_UPSTREAM_INVALID/);
      assert.ok(sent().length > 0, 'the configuration was read');
      assert.deepEqual(
        sent().filter((r) => !r.endsWith('/.well-known/ssf-configuration')),
        [],
        'nothing but the configuration was asked',
      );
    }));

  it('does not follow a redirect from an upstream endpoint (nor send the token and body on)', () =>
    withEndpoints('redirect', async (sent) => {
      await refused('verify');
      assert.match((await source()).verification.error, /redirect/);
      await refused('stream');
      const paused = await setStatus({ status: 'paused', accessToken: ACCESS_TOKEN });
      assert.equal(paused.upstream.ok, false);
      assert.match(paused.upstream.error, /redirect/);
      assert.ok(sent().some((r) => r.startsWith('POST') && r.endsWith('/ssf/verify')));
      assert.deepEqual(
        sent().filter((r) => r.includes('/elsewhere')),
        [],
        'no redirect followed',
      );
    }));
});
