/**
 * Sources in (Baton as a Shared Signals receiver): a held SET is applied at least once, and once in effect, when the
 * node applying it dies. On the engine the suite runs on (SQLite, or PostgreSQL with BATON_TEST_DATABASE=postgres),
 * against an upstream written for the tests (test/helpers/ssf-upstream.ts).
 *
 * Node A resumes a paused source and dies partway through applying its held SET: from a chosen moment it writes
 * nothing more (its units of work and its source rows are refused, as for a process that is gone). Then node B, a
 * fresh backend on the same database, resumes the source ("Apply held SETs"): while A's claim is within its lease
 * nothing is applied; once the lease has run out, B applies the SET. What the security team must then read: the
 * operator revoked exactly once (one revocation, one `operator-revoked` event), and the SET recorded exactly once
 * (one `ssf-set-received` with `heldSince`, action `operator-revoked`, naming that revocation's epoch).
 *
 * - A dies between the claim and the revocation: before, the claim deleted the held row, so the SET was lost.
 * - A dies after the revocation committed, before the SET was recorded: before, the SET was lost from the audit
 *   trail (no record of it), and the revocation was never tied to it.
 * - A resume that stalls past its lease while a disable drops its SET: its revocation is refused in its own unit (the
 *   claim's check), so a dropped SET is never applied.
 * - A claim a dead node left, written through the store: a disable drops it if nothing was applied for it, keeps it
 *   if a revocation was (it is applied to the end by the next resume, recorded with that revocation).
 * - A session-revoked SET a dead node applied in part: the resume that takes it over ends the sessions that existed
 *   when the dead node's first revocation was made, not one the operator started after it.
 * - A SET a disable kept for a live resume that then died, nothing applied for it: dropped when the source leaves
 *   disabled, never applied by that enable.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { RevocationHub } from '../../backend/services/revocation-hub.js';
import { HELD_CLAIM_LEASE_MS } from '../../backend/ssf/receiver/held-claims.js';
import { startTestBackend, TestConsole, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { ACCESS_TOKEN, SsfUpstream } from '../helpers/ssf-upstream.js';
import { tempDir } from '../helpers/temp-dir.js';
import { dropTestDatabase } from '../helpers/test-database.js';

const RISC = 'https://schemas.openid.net/secevent/risc/event-type/';
const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';

describe('Shared Signals sources in: a held SET survives the node applying it', () => {
  const upstream = new SsfUpstream();
  const dirs: string[] = [];
  /** Every node started (stopped at the end whatever happened: stopping twice is stopping once). */
  const nodes: TestBackend[] = [];
  /** Both nodes' clock: real time, moved on past a claim's lease by the tests. */
  let offset = 0;
  const clock = () => Date.now() + offset;

  before(() => upstream.start());
  after(async () => {
    for (const t of nodes) await t.stop();
    await upstream.stop();
    for (const dir of dirs) await dropTestDatabase(dir);
  });

  /** A node on `dataDir` (a fresh one: a new database), with the admin token of the first node on it. */
  async function node(dataDir: string, adminToken?: string): Promise<TestBackend> {
    const t = await startTestBackend({ dataDir }, { clock, ...(adminToken === undefined ? {} : { adminToken }) });
    nodes.push(t);
    return t;
  }

  /** A source (the upstream, with its stream) on a fresh node, an operator linked to an email, and their SET held. */
  async function heldOnFreshNode(): Promise<{ a: TestBackend; id: string; operatorId: string; jti: string }> {
    const dataDir = tempDir('baton-held-crash-');
    dirs.push(dataDir);
    const a = await node(dataDir);
    const console = await TestConsole.enrol(a.url, a.admin);
    const id = ((await a.admin.ok('POST', '/v1/admin/ssf/transmitters', upstream.registration())) as Json).transmitter
      .id as string;
    await a.admin.ok('POST', `/v1/admin/ssf/transmitters/${id}/stream`, { accessToken: ACCESS_TOKEN });
    const email = `ann.${randomUUID().slice(0, 8)}@bank.example`;
    const { operatorId } = await enrolOperator(a.admin, console, { displayName: 'Ann Teller' });
    await a.admin.ok('POST', `/v1/admin/operators/${operatorId}/identities`, { format: 'email', email });
    await a.admin.ok('POST', `/v1/admin/ssf/transmitters/${id}/status`, { status: 'paused', reason: 'maintenance' });
    const set = await upstream.set(`${RISC}account-disabled`, { format: 'email', email });
    assert.equal((await upstream.push(set.jwt)).status, 202);
    return { a, id, operatorId, jti: set.jti };
  }

  /**
   * Makes node `t` die: from now on it writes nothing (its units of work and its Shared Signals source rows are
   * refused), as a process that is gone. Returns what brings it back, so that it can be stopped cleanly.
   */
  function die(t: TestBackend): () => void {
    const dead = () => Promise.reject(new Error('this node died'));
    const events = t.backend.events as unknown as Record<string, unknown>;
    events.atomically = dead;
    const inbound = t.backend.store.ssfInbound as unknown as Record<string, unknown>;
    const names = Object.getOwnPropertyNames(Object.getPrototypeOf(inbound)).filter((n) => n !== 'constructor');
    for (const name of names) inbound[name] = dead;
    return () => {
      delete events.atomically;
      for (const name of names) delete inbound[name];
    };
  }

  /** Runs `during` at node `t`'s next revocation, `when` it is made: instead of it (`before`) or once committed. */
  function atNextRevocation(t: TestBackend, when: 'before' | 'after', during: () => void): () => void {
    const hub = t.backend.revocations as { revoke: RevocationHub['revoke'] };
    const original = hub.revoke;
    hub.revoke = async function (this: RevocationHub, ...args: Parameters<RevocationHub['revoke']>) {
      hub.revoke = original;
      if (when === 'before') {
        during();
        throw new Error('this node died');
      }
      const outcome = await original.apply(this, args);
      during();
      return outcome;
    };
    return () => (hub.revoke = original);
  }

  const resume = async (t: TestBackend, id: string): Promise<Json> =>
    t.admin.ok('POST', `/v1/admin/ssf/transmitters/${id}/status`, { status: 'enabled' });

  /** What the audit trail says about the SET and its operator. */
  async function trail(t: TestBackend, operatorId: string, jti: string) {
    const events = async (type: string): Promise<Json[]> =>
      ((await t.admin.ok('GET', `/v1/admin/events?type=${type}&limit=1000`)) as Json).events as Json[];
    const revocations = ((await t.admin.ok('GET', `/v1/admin/revocations?kind=operator&target=${operatorId}`)) as Json)
      .revocations as Json[];
    return {
      revokedAt: (((await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json).operator as Json).revokedAt,
      revocations,
      operatorRevoked: (await events('operator-revoked')).filter((e) => e.subject.operator === operatorId),
      applications: (await events('ssf-set-received')).filter(
        (e) => e.detail.jti === jti && e.detail.action !== 'held',
      ),
    };
  }

  /**
   * Node B on A's database (A stopped) resumes: nothing while A's claim holds, then the SET applied once, from B;
   * then `check` on B, which is stopped after it.
   */
  async function takeOverOnNodeB(
    a: TestBackend,
    id: string,
    operatorId: string,
    jti: string,
    check: (b: TestBackend) => Promise<void>,
  ): Promise<void> {
    await a.stop();
    const b = await node(a.dataDir, a.backend.bootstrapAdminToken);
    try {
      await resumeOnNodeB(b, id, operatorId, jti);
      await check(b);
    } finally {
      await b.stop();
    }
  }

  async function resumeOnNodeB(b: TestBackend, id: string, operatorId: string, jti: string): Promise<void> {
    const source = ((await b.admin.ok('GET', `/v1/admin/ssf/transmitters/${id}`)) as Json).transmitter as Json;
    assert.equal(source.status, 'enabled', "A's resume committed the status before it died");
    assert.equal(source.held, 1, 'the SET A claimed is still held: not lost with A');

    const early = await resume(b, id);
    assert.equal(early.applied, 0, "A's claim holds the SET until its lease runs out");
    assert.equal(early.remaining, 1);

    offset += HELD_CLAIM_LEASE_MS + 1000;
    const late = await resume(b, id);
    assert.equal(late.applied, 1, 'once the lease has run out, the next resume applies it');
    assert.equal(late.remaining, 0);
    assert.equal(late.transmitter.held, 0);

    // Resuming again applies nothing more: it was recorded once.
    const again = await resume(b, id);
    assert.equal(again.applied, 0);
    const { applications } = await trail(b, operatorId, jti);
    assert.equal(applications.length, 1, 'the SET recorded once');
  }

  it('a node that dies between the claim and the revocation: the next resume revokes once and records it once', async () => {
    const { a, id, operatorId, jti } = await heldOnFreshNode();
    let revive = () => {};
    const restore = atNextRevocation(a, 'before', () => (revive = die(a)));
    try {
      await a.admin.request('POST', `/v1/admin/ssf/transmitters/${id}/status`, { status: 'enabled' });
    } finally {
      restore();
      revive();
    }
    assert.equal((await trail(a, operatorId, jti)).revokedAt, null, 'A died before revoking anyone');

    await takeOverOnNodeB(a, id, operatorId, jti, async (b) => {
      const after = await trail(b, operatorId, jti);
      assert.notEqual(after.revokedAt, null);
      assert.equal(after.revocations.length, 1, 'revoked once');
      assert.equal(after.operatorRevoked.length, 1);
      const [applied] = after.applications;
      assert.equal(applied.detail.action, 'operator-revoked');
      assert.equal(applied.detail.epochs, String(after.revocations[0]?.epoch));
      assert.equal(typeof applied.detail.heldSince, 'number');
    });
  });

  it('a node that dies after the revocation committed: the next resume revokes nothing twice and records that revocation once', async () => {
    const { a, id, operatorId, jti } = await heldOnFreshNode();
    let revive = () => {};
    const restore = atNextRevocation(a, 'after', () => (revive = die(a)));
    try {
      await a.admin.request('POST', `/v1/admin/ssf/transmitters/${id}/status`, { status: 'enabled' });
    } finally {
      restore();
      revive();
    }
    const byA = await trail(a, operatorId, jti);
    assert.notEqual(byA.revokedAt, null, 'A revoked the operator');
    assert.equal(byA.revocations.length, 1);
    assert.deepEqual(byA.applications, [], 'A died before recording the SET');

    await takeOverOnNodeB(a, id, operatorId, jti, async (b) => {
      const after = await trail(b, operatorId, jti);
      assert.equal(after.revokedAt, byA.revokedAt, 'the revocation A made stands');
      assert.deepEqual(
        after.revocations.map((r) => r.epoch),
        byA.revocations.map((r) => r.epoch),
        'B revoked nothing again',
      );
      assert.equal(after.operatorRevoked.length, 1);
      const [applied] = after.applications;
      // The SET's doing, though B found the operator revoked: the record names A's revocation.
      assert.equal(applied.detail.action, 'operator-revoked');
      assert.equal(applied.detail.epochs, String(byA.revocations[0]?.epoch));
    });
  });

  it('a resume that outlived its lease, its SET dropped by a disable meanwhile: its revocation is refused', async () => {
    const { a, id, operatorId, jti } = await heldOnFreshNode();
    let disabled: Json = null;
    const hub = a.backend.revocations as { revoke: RevocationHub['revoke'] };
    const original = hub.revoke;
    hub.revoke = async function (this: RevocationHub, ...args: Parameters<RevocationHub['revoke']>) {
      hub.revoke = original;
      // The resume stalls past its claim's lease before its revocation; a disable lands meanwhile.
      offset += HELD_CLAIM_LEASE_MS + 1000;
      disabled = await a.admin.ok('POST', `/v1/admin/ssf/transmitters/${id}/status`, { status: 'disabled' });
      return original.apply(this, args);
    };
    let resumed: Json;
    try {
      resumed = await resume(a, id);
    } finally {
      hub.revoke = original;
    }
    assert.equal(disabled.droppedSets, 1, 'nothing was applied for it and its claim had run out: dropped');
    assert.equal(resumed.applied, 0);
    const after = await trail(a, operatorId, jti);
    assert.equal(after.revokedAt, null, 'a dropped SET is never applied, however late its resume');
    assert.deepEqual(after.revocations, []);
    assert.deepEqual(after.applications, []);
  });

  it("a disable drops a dead node's claim that applied nothing, and keeps one that revoked: the next resume records it", async () => {
    const { a, id, operatorId: ann, jti: annJti } = await heldOnFreshNode();
    try {
      // A second SET held, about Bob.
      const console = await TestConsole.enrol(a.url, a.admin);
      const email = `bob.${randomUUID().slice(0, 8)}@bank.example`;
      const { operatorId: bob } = await enrolOperator(a.admin, console, { displayName: 'Bob Teller' });
      await a.admin.ok('POST', `/v1/admin/operators/${bob}/identities`, { format: 'email', email });
      const bobSet = await upstream.set(`${RISC}account-disabled`, { format: 'email', email });
      assert.equal((await upstream.push(bobSet.jwt)).status, 202);

      // What a node that died applying them left, through the store: both claimed, their lease over; for Ann's, the
      // revocation it made and marked (in one unit, as RevokeHooks.stored does).
      const store = a.backend.store.ssfInbound;
      const now = clock();
      for (const jti of [annJti, bobSet.jti]) {
        assert.ok(await store.claimHeld(id, jti, 'hclaim_dead', now - 1, now - HELD_CLAIM_LEASE_MS - 1));
      }
      const revoked = await a.backend.revocations.revoke(
        'operator',
        ann,
        'Shared Signals account-disabled',
        `ssf:${id}`,
        {
          stored: (uow, revocation) =>
            uow.store.ssfInbound.markHeldApplied(id, annJti, `operator:${revocation.epoch}:${revocation.at}`),
        },
      );

      const disabled = (await a.admin.ok('POST', `/v1/admin/ssf/transmitters/${id}/status`, {
        status: 'disabled',
        reason: 'compromised IdP',
      })) as Json;
      assert.equal(disabled.droppedSets, 1, "Bob's SET, nothing applied for it: dropped");
      const event = (
        ((await a.admin.ok('GET', `/v1/admin/events?type=admin-action&limit=1000`)) as Json).events as Json[]
      ).find((e) => (e.reasons as string[]).includes('ssf-transmitter-disabled') && e.detail.transmitter === id);
      assert.equal(event?.detail.droppedJtis, bobSet.jti);
      assert.equal(event?.detail.claimedSets, 1, "Ann's SET, partly applied: kept, and the trail says so");

      const resumed = await resume(a, id);
      assert.equal(resumed.applied, 1);
      assert.equal(resumed.remaining, 0);
      const annTrail = await trail(a, ann, annJti);
      assert.equal(annTrail.revocations.length, 1, 'Ann revoked once');
      assert.equal(annTrail.applications.length, 1);
      assert.equal(annTrail.applications[0]?.detail.action, 'operator-revoked');
      assert.equal(annTrail.applications[0]?.detail.epochs, String(revoked.revocation.epoch));
      const bobTrail = await trail(a, bob, bobSet.jti);
      assert.equal(bobTrail.revokedAt, null, 'a dropped SET is never applied');
      assert.deepEqual(bobTrail.applications, []);
    } finally {
      await a.stop();
    }
  });
  it('a session-revoked SET taken over ends the sessions that existed when it first acted, not one started after', async () => {
    const { a, id, operatorId } = await heldOnFreshNode();
    try {
      const [c0, c1, c2] = [
        await TestConsole.enrol(a.url, a.admin),
        await TestConsole.enrol(a.url, a.admin),
        await TestConsole.enrol(a.url, a.admin),
      ];
      const { operatorId: cy, authenticator } = await enrolOperator(a.admin, c0, { displayName: 'Cy Teller' });
      const email = `cy.${randomUUID().slice(0, 8)}@bank.example`;
      assert.notEqual(cy, operatorId);
      await a.admin.ok('POST', `/v1/admin/operators/${cy}/identities`, { format: 'email', email });
      const sessionOf = async (c: TestConsole) => ((await signIn(c, authenticator)).body as Json).session.id as string;
      const s0 = await sessionOf(c0);
      const s1 = await sessionOf(c1);
      const set = await upstream.set(`${CAEP}session-revoked`, { format: 'email', email });
      assert.equal((await upstream.push(set.jwt)).status, 202);

      // A node that died applying it: claimed (lease over), s1 revoked and marked, s0 not reached.
      const now = clock();
      assert.ok(
        await a.backend.store.ssfInbound.claimHeld(id, set.jti, 'hclaim_dead', now - 1, now - HELD_CLAIM_LEASE_MS - 1),
      );
      await a.backend.revocations.revoke('session', s1, 'Shared Signals session-revoked', `ssf:${id}`, {
        stored: (uow, revocation) =>
          uow.store.ssfInbound.markHeldApplied(id, set.jti, `session:${revocation.epoch}:${revocation.at}`),
      });
      // Signed out, Cy signs in again a second later, on another console.
      offset += 1000;
      const s2 = await sessionOf(c2);

      const resumed = await resume(a, id);
      assert.equal(resumed.remaining, 0);
      const active = (
        ((await a.admin.ok('GET', `/v1/admin/sessions?state=active&limit=1000`)) as Json).sessions as Json[]
      ).map((session) => session.id as string);
      assert.ok(active.includes(s2), 'the session Cy started after the SET first acted is left alone');
      assert.ok(!active.includes(s0), 'the session that existed then, which the dead node had not reached, is ended');
      assert.ok(!active.includes(s1));
      const applications = (
        ((await a.admin.ok('GET', `/v1/admin/events?type=ssf-set-received&limit=1000`)) as Json).events as Json[]
      ).filter((e) => e.detail.jti === set.jti && e.detail.action !== 'held');
      assert.equal(applications.length, 1, 'the SET recorded once');
      assert.equal(applications[0]?.detail.action, 'sessions-revoked');
    } finally {
      await a.stop();
    }
  });

  it('a node whose claim was taken over can neither record nor release the SET the new claimant holds', async () => {
    const { a, id, jti } = await heldOnFreshNode();
    try {
      const inbound = a.backend.store.ssfInbound;
      const now = clock();
      assert.ok(await inbound.claimHeld(id, jti, 'hclaim_stale', now - 1, now - HELD_CLAIM_LEASE_MS - 1));
      assert.ok(await inbound.claimHeld(id, jti, 'hclaim_new', now + HELD_CLAIM_LEASE_MS, now), 'taken over');
      // The stale node wakes up and tries to finish (delete) or release its claim: neither touches the row.
      assert.equal(await inbound.finishHeld(id, jti, 'hclaim_stale'), undefined);
      assert.equal(await inbound.releaseHeld(id, jti, 'hclaim_stale'), undefined);
      assert.equal(await inbound.heldCount(id), 1, 'the SET is still held');
      assert.deepEqual(await inbound.heldSets(id, 10, now), [], 'still claimed by the new claimant, not released');
      assert.deepEqual(
        await inbound.finishHeld(id, jti, 'hclaim_new'),
        { applied: null },
        'the new claimant records it',
      );
      assert.equal(await inbound.heldCount(id), 0);
    } finally {
      await a.stop();
    }
  });

  it('a SET a disable kept for a live resume that then died, nothing applied for it, is dropped when the source leaves disabled', async () => {
    const { a, id, operatorId, jti } = await heldOnFreshNode();
    try {
      const now = clock();
      // A resume's claim, alive when the source is disabled; the resume dies before it revokes anyone.
      assert.ok(await a.backend.store.ssfInbound.claimHeld(id, jti, 'hclaim_live', now + HELD_CLAIM_LEASE_MS, now));
      const disabled = (await a.admin.ok('POST', `/v1/admin/ssf/transmitters/${id}/status`, {
        status: 'disabled',
        reason: 'doubted',
      })) as Json;
      assert.equal(disabled.droppedSets, 0, 'a live resume holds it: the disable leaves it to that resume');

      offset += HELD_CLAIM_LEASE_MS + 1000;
      const enabled = await resume(a, id);
      assert.equal(enabled.droppedSets, 1, 'leaving disabled drops what the dead resume left, nothing applied for it');
      assert.equal(enabled.applied, 0);
      const after = await trail(a, operatorId, jti);
      assert.equal(after.revokedAt, null, 'a SET from the time the source was doubted never acts');
      assert.deepEqual(after.applications, []);
      const event = (
        ((await a.admin.ok('GET', `/v1/admin/events?type=admin-action&limit=1000`)) as Json).events as Json[]
      ).find((e) => (e.reasons as string[]).includes('ssf-transmitter-enabled') && e.detail.transmitter === id);
      assert.equal(event?.detail.droppedJtis, jti, 'the trail names the SET dropped on leaving disabled');
    } finally {
      await a.stop();
    }
  });
});
