/**
 * SCIM provisioning when requests overlap or fail halfway (the review of backend/scim/): a User change
 * is one unit of work built from the User as committed, a deactivation revokes the operator only once
 * it is stored (and its retry revokes an operator still live), and the group→role sync of a directory
 * reads what the previous sync committed. A second `ScimService` on the same backend plays a second
 * cluster node, with hooks that fix the interleaving (no timing is hoped for). Checked as the directory
 * (status, SCIM body) and an admin (the operator revoked or not, its roles) see it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import pg from 'pg';
import pino from 'pino';
import { ScimService } from '../../backend/scim/scim-service.js';
import type { EventLog, UnitOfWork } from '../../backend/services/event-log.js';
import type { RevocationHub } from '../../backend/services/revocation-hub.js';
import type { Store } from '../../backend/store/repositories.js';
import { BatonError } from '../../shared/errors.js';
import { startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';

const USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const OPX = 'urn:baton:params:scim:schemas:extension:2.0:Operator';

/** `target` with its `name` property replaced (methods bound to the original). */
function withProp<T extends object>(target: T, name: string | symbol, value: unknown): T {
  return new Proxy(target, {
    get(t, p) {
      if (p === name) return value;
      const v = (t as Record<string | symbol, unknown>)[p];
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

describe('SCIM provisioning: overlapping and failing requests', () => {
  let t: TestBackend;
  let token = '';

  async function scim(method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }> {
    const response = await fetch(`${t.url}/scim/v2${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/scim+json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: text === '' ? undefined : (JSON.parse(text) as Json) };
  }
  const operator = async (id: string) => ((await t.admin.ok('GET', `/v1/admin/operators/${id}`)) as Json).operator;
  const patchOp = (...ops: Json[]) => ({ schemas: [PATCH], Operations: ops });
  const createUser = async (userName: string, extra: Json = {}) => {
    const r = await scim('POST', '/Users', { schemas: [USER], userName, ...extra });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body;
  };
  /** A second node: its reads outside a unit of work (the store it was given) can run `during` first. */
  function slowNode(revocations: RevocationHub = t.backend.revocations) {
    const b = t.backend;
    const state: { during: (() => Promise<unknown>) | undefined } = { during: undefined };
    const scimRepo = withProp(b.store.scim, 'user', async (directoryId: string, id: string) => {
      const read = await b.store.scim.user(directoryId, id);
      const during = state.during;
      state.during = undefined;
      if (during !== undefined) await during();
      return read;
    });
    const store = withProp(b.store, 'scim', scimRepo);
    const node = new ScimService({
      store,
      events: b.events,
      revocations,
      clock: Date.now,
      logger: pino({ level: 'silent' }),
    });
    return { node, state };
  }

  before(async () => {
    t = await startTestBackend();
    const created = (await t.admin.ok('POST', '/v1/admin/scim/directories', {
      name: 'Okta',
      groupRoles: { Tellers: ['teller'], Supervisors: ['supervisor'] },
    })) as Json;
    token = created.token;
  });
  after(() => t.stop());

  it('a User change is built from the User as committed: no deactivation undone, no live operator of an inactive or deleted User, no lost update', async () => {
    const { node, state } = slowNode();
    const dir = await node.authenticate(`Bearer ${token}`);
    /** Node B's change; node A's (over HTTP) runs after B's read outside a unit if B makes one, else after B. */
    async function overlap(b: () => Promise<unknown>, a: () => Promise<unknown>) {
      state.during = a;
      await b();
      const during = state.during;
      state.during = undefined;
      if (during !== undefined) await during();
    }
    const userOf = async (id: string) => (await scim('GET', `/Users/${id}`)).body;
    /** The User as stored (a GET would revoke an inactive User's live operator before answering). */
    const storedOf = async (id: string) => {
      const s = await t.backend.store.scim.user(dir.id, id);
      assert.ok(s !== undefined);
      return { active: s.active, [OPX]: { operatorId: s.operatorId } };
    };
    const assertLiveIffActive = async (u: Json) => {
      const o = await operator(u[OPX].operatorId);
      assert.equal(o.revokedAt === null, u.active === true, `active ${u.active}, operator revokedAt ${o.revokedAt}`);
    };

    // Node A deactivates while node B applies an attribute PATCH: both stay.
    const u1 = await createUser('overlap1');
    await overlap(
      () => node.patchUser(dir, u1.id, patchOp({ op: 'replace', path: 'title', value: 'Teller' })),
      async () =>
        assert.equal(
          (await scim('PATCH', `/Users/${u1.id}`, patchOp({ op: 'Replace', path: 'active', value: 'False' }))).status,
          200,
        ),
    );
    await assertLiveIffActive(await storedOf(u1.id));
    const f1 = await userOf(u1.id);
    assert.equal(f1.active, false);
    assert.equal(f1.title, 'Teller');
    assert.equal(f1[OPX].operatorId, u1[OPX].operatorId, 'no new operator');

    // The User is disabled; node A enables it while node B applies a PUT active:false: never an inactive User with a live operator.
    const u2 = await createUser('overlap2', { active: false });
    await overlap(
      () => node.replaceUser(dir, u2.id, { schemas: [USER], userName: 'overlap2', active: false }),
      async () =>
        assert.equal(
          (await scim('PATCH', `/Users/${u2.id}`, patchOp({ op: 'replace', value: { active: true } }))).status,
          200,
        ),
    );
    await assertLiveIffActive(await storedOf(u2.id));

    // Two attribute PATCHes: neither is lost.
    const u3 = await createUser('overlap3');
    await overlap(
      () => node.patchUser(dir, u3.id, patchOp({ op: 'add', path: 'title', value: 'Teller' })),
      async () =>
        assert.equal(
          (
            await scim(
              'PATCH',
              `/Users/${u3.id}`,
              patchOp({ op: 'add', path: 'emails', value: [{ type: 'work', value: 'o3@example.com' }] }),
            )
          ).status,
          200,
        ),
    );
    const f3 = await userOf(u3.id);
    assert.equal(f3.title, 'Teller');
    assert.deepEqual(f3.emails, [{ type: 'work', value: 'o3@example.com' }]);

    // Node B deletes while node A enables the User again (a new operator): that operator is revoked too.
    const u4 = await createUser('overlap4', { active: false });
    let enabledAs = '';
    await overlap(
      () => node.deleteUser(dir, u4.id),
      async () => {
        const r = await scim('PATCH', `/Users/${u4.id}`, patchOp({ op: 'replace', path: 'active', value: true }));
        if (r.status === 200) enabledAs = r.body[OPX].operatorId;
      },
    );
    assert.equal((await scim('GET', `/Users/${u4.id}`)).status, 404);
    if (enabledAs !== '')
      assert.notEqual((await operator(enabledAs)).revokedAt, null, 'the operator enabled meanwhile is revoked');
  });

  it('a deactivation that fails to be stored revokes nothing', async () => {
    await createUser('taken');
    const u = await createUser('halfway');
    const r = await scim(
      'PATCH',
      `/Users/${u.id}`,
      patchOp({ op: 'replace', path: 'active', value: false }, { op: 'replace', path: 'userName', value: 'taken' }),
    );
    assert.equal(r.status, 409);
    assert.equal(r.body.scimType, 'uniqueness');
    assert.equal((await scim('GET', `/Users/${u.id}`)).body.active, true);
    assert.equal((await operator(u[OPX].operatorId)).revokedAt, null, 'the User is active: its operator too');
  });

  /**
   * A second node whose next `n` revocations fail after `fail(n)`, as when the database drops the revocation's
   * connection.
   */
  async function nodeWithFailingRevocations() {
    const b = t.backend;
    let failures = 0;
    const flaky = withProp(b.revocations, 'revoke', (...args: Parameters<RevocationHub['revoke']>) => {
      if (failures > 0) {
        failures--;
        return Promise.reject(new Error('connection terminated'));
      }
      return b.revocations.revoke(...args);
    });
    const { node } = slowNode(flaky);
    const dir = await node.authenticate(`Bearer ${token}`);
    return { b, node, dir, fail: (n: number) => (failures = n) };
  }

  it('a revocation that fails after the User is stored inactive is done by the directory’s retry', async () => {
    const { b, node, dir, fail } = await nodeWithFailingRevocations();

    // Created inactive, the revocation fails: the retried POST is 409, a re-sent active:false revokes.
    fail(1);
    await assert.rejects(
      node.createUser(dir, { schemas: [USER], userName: 'inactive', active: false }),
      /connection terminated/,
    );
    const retry = await scim('POST', '/Users', { schemas: [USER], userName: 'inactive', active: false });
    assert.equal(retry.status, 409);
    // Read from the store: a GET would revoke it itself (the next case).
    const found = await b.store.scim.userByName(dir.id, 'inactive');
    assert.equal(found?.active, false);
    assert.equal((await operator(found.operatorId)).revokedAt, null);
    const again = await scim('PATCH', `/Users/${found.id}`, patchOp({ op: 'replace', path: 'active', value: false }));
    assert.equal(again.status, 200);
    assert.notEqual((await operator(found.operatorId)).revokedAt, null);

    // Deactivated, the revocation fails: the directory's retry revokes the operator.
    const u = await createUser('deactivated');
    fail(1);
    await assert.rejects(
      node.patchUser(dir, u.id, patchOp({ op: 'replace', path: 'active', value: false })),
      /connection terminated/,
    );
    assert.equal((await b.store.scim.user(dir.id, u.id))?.active, false);
    assert.equal((await operator(u[OPX].operatorId)).revokedAt, null);
    assert.equal(
      (await scim('PATCH', `/Users/${u.id}`, patchOp({ op: 'replace', path: 'active', value: false }))).status,
      200,
    );
    assert.notEqual((await operator(u[OPX].operatorId)).revokedAt, null);
  });

  it('an inactive User whose operator revocation failed is healed by Baton on the next read (GET, a filter page): no reconciling directory has to re-send it; a read that cannot revoke is 503', async () => {
    const { b, node, dir, fail } = await nodeWithFailingRevocations();
    const base = `${t.url}/scim/v2`;
    /** Deactivated on node B, whose revocation fails once: stored inactive, its operator live. */
    const halfDeactivated = async (userName: string) => {
      const u = await createUser(userName);
      fail(1);
      await assert.rejects(
        node.patchUser(dir, u.id, patchOp({ op: 'replace', path: 'active', value: false })),
        /connection terminated/,
      );
      assert.equal((await b.store.scim.user(dir.id, u.id))?.active, false);
      assert.equal((await operator(u[OPX].operatorId)).revokedAt, null);
      return u;
    };

    // While the revocation still fails, the read fails (503, the directory retries) instead of answering active:false.
    const u = await halfDeactivated('healed-by-get');
    fail(1);
    await assert.rejects(node.userView(dir, await node.getUser(dir, u.id), base), (error: unknown) => {
      assert.ok(error instanceof BatonError);
      assert.equal(error.code, 'BACKEND_BUSY');
      assert.equal(error.status, 503);
      return true;
    });
    fail(1);
    await assert.rejects(node.listUsers(dir, new URLSearchParams(), base), BatonError);
    assert.equal((await operator(u[OPX].operatorId)).revokedAt, null);

    // Entra reconciling: GET the User, sees active:false, sends nothing. The GET itself revoked the operator.
    const got = await scim('GET', `/Users/${u.id}`);
    assert.equal(got.status, 200);
    assert.equal(got.body.active, false);
    assert.notEqual((await operator(u[OPX].operatorId)).revokedAt, null, 'the GET revoked the operator');

    // The same through a filter page (Entra's and Okta's userName eq "…" query).
    const v = await halfDeactivated('healed-by-filter');
    const page = await scim('GET', `/Users?filter=${encodeURIComponent('userName eq "healed-by-filter"')}`);
    assert.equal(page.status, 200);
    assert.equal(page.body.Resources[0].active, false);
    assert.notEqual((await operator(v[OPX].operatorId)).revokedAt, null, 'the list read revoked the operator');
  });

  it('a User stored earlier with a wrongly shaped or case-duplicated attribute can still be patched (deactivated): only what a PATCH touches is checked', async () => {
    const b = t.backend;
    const dir = await slowNode().node.authenticate(`Bearer ${token}`);
    const u = await createUser('legacy-shapes');
    // What the code before the shape checks accepted and stored.
    const stored = await b.store.scim.user(dir.id, u.id);
    assert.ok(stored !== undefined);
    const legacy = { emails: 'x', roles: ['a'], displayName: 'Legacy', DisplayName: 'Twice' };
    assert.ok(await b.store.scim.updateUser({ ...stored, resource: legacy, version: stored.version + 1 }));

    const title = await scim('PATCH', `/Users/${u.id}`, patchOp({ op: 'add', path: 'title', value: 'Teller' }));
    assert.equal(title.status, 200, JSON.stringify(title.body));
    assert.equal(title.body.title, 'Teller');
    // Entra's deactivation.
    const off = await scim('PATCH', `/Users/${u.id}`, patchOp({ op: 'Replace', path: 'active', value: 'False' }));
    assert.equal(off.status, 200, JSON.stringify(off.body));
    assert.equal(off.body.active, false);
    assert.notEqual((await operator(u[OPX].operatorId)).revokedAt, null);
    // What a PATCH touches is still checked; setting the bad attribute right is allowed.
    const bad = await scim('PATCH', `/Users/${u.id}`, patchOp({ op: 'replace', path: 'emails', value: 'still-x' }));
    assert.equal(bad.status, 400);
    assert.equal(bad.body.scimType, 'invalidValue');
    const fixed = await scim(
      'PATCH',
      `/Users/${u.id}`,
      patchOp({ op: 'replace', path: 'emails', value: [{ type: 'work', value: 'l@example.com' }] }),
    );
    assert.equal(fixed.status, 200, JSON.stringify(fixed.body));
    assert.deepEqual(fixed.body.emails, [{ type: 'work', value: 'l@example.com' }]);
    assert.deepEqual(
      (await b.store.scim.user(dir.id, u.id))?.resource.roles,
      ['a'],
      'untouched attributes kept as stored',
    );
  });

  it('two group changes at once (PostgreSQL, two nodes): the roles follow both, none kept that the directory took away', async (ctx) => {
    if (sqliteOnly(ctx)) return;
    const tellers = (await scim('POST', '/Groups', { schemas: [GROUP], displayName: 'Tellers' })).body;
    const supervisors = (await scim('POST', '/Groups', { schemas: [GROUP], displayName: 'Supervisors' })).body;
    const u = await createUser('moved');
    const add = (id: string) => patchOp({ op: 'add', path: 'members', value: [{ value: id }] });
    assert.equal((await scim('PATCH', `/Groups/${tellers.id}`, add(u.id))).status, 200);
    assert.deepEqual((await operator(u[OPX].operatorId)).roles, ['teller']);

    // The directory moves the user: node A takes it out of Tellers, pausing right after reading the directory's
    // groups for the role sync; node B puts it in Supervisors meanwhile.
    const b = await whileNodeAPauses(
      'allGroups',
      'after',
      (nodeA, dir) => nodeA.patchGroup(dir, tellers.id, patchOp({ op: 'remove', path: `members[value eq "${u.id}"]` })),
      () => scim('PATCH', `/Groups/${supervisors.id}`, add(u.id)),
    );
    assert.equal(b.status, 200);
    assert.deepEqual((await operator(u[OPX].operatorId)).roles, ['supervisor']);
    const inTellers = (await scim('GET', `/Groups/${tellers.id}`)).body.members?.some((m: Json) => m.value === u.id);
    assert.ok(inTellers !== true);
  });

  /**
   * Node A (a second `ScimService`): its next unit of work pauses when it calls `method` on the SCIM
   * repository (`when`: before the call, or after it with its answer read), until `release`.
   */
  function pausingNode(method: 'allGroups' | 'lockRoles' | 'userForUpdate', when: 'before' | 'after') {
    const b = t.backend;
    let reached: () => void = () => undefined;
    const reachedP = new Promise<void>((resolve) => (reached = resolve));
    let release: () => void = () => undefined;
    const releaseP = new Promise<void>((resolve) => (release = resolve));
    let armed = true;
    const hookUow = (uow: UnitOfWork): UnitOfWork => {
      const tx = uow.store;
      const scimTx = withProp(tx.scim, method, async (...args: unknown[]) => {
        const pause = armed;
        armed = false;
        if (pause && when === 'before') {
          reached();
          await releaseP;
        }
        const answer = await (tx.scim[method] as (...a: unknown[]) => Promise<unknown>).apply(tx.scim, args);
        if (pause && when === 'after') {
          reached();
          await releaseP;
        }
        return answer;
      });
      return withProp(uow, 'store', withProp(tx, 'scim', scimTx) as Store);
    };
    const events = withProp(b.events, 'atomically', <T>(fn: (uow: UnitOfWork) => Promise<T>) =>
      b.events.atomically((uow) => fn(hookUow(uow))),
    ) as EventLog;
    const node = new ScimService({
      store: b.store,
      events,
      revocations: b.revocations,
      clock: Date.now,
      logger: pino({ level: 'silent' }),
    });
    return { node, reachedP, release: () => release() };
  }

  /** True (the case skipped) on SQLite, which runs writing units one at a time: nothing can interleave there. */
  function sqliteOnly(ctx: TestContext): boolean {
    if (t.databaseUrl !== undefined) return false;
    ctx.skip('PostgreSQL only: SQLite runs writing units one at a time');
    return true;
  }

  /**
   * Two nodes change the directory's state at once. Node A (`pausingNode`) starts its change, and its unit of
   * work pauses at `method`; node B's request (over HTTP) is sent meanwhile, and either finishes or waits for a
   * lock A holds; then A goes on. Returns B's answer, once both are done.
   */
  async function whileNodeAPauses<B>(
    method: 'allGroups' | 'lockRoles' | 'userForUpdate',
    when: 'before' | 'after',
    nodeA: (node: ScimService, dir: Awaited<ReturnType<ScimService['authenticate']>>) => Promise<unknown>,
    nodeB: () => Promise<B>,
  ): Promise<B> {
    const { node, reachedP, release } = pausingNode(method, when);
    const dir = await node.authenticate(`Bearer ${token}`);
    const a = nodeA(node, dir);
    try {
      // A change of A that ends without reaching `method` fails the case here instead of leaving it waiting.
      await Promise.race([reachedP, a.then(() => assert.fail(`node A finished without reaching ${method}`))]);
      const b = nodeB();
      await finishedOrWaiting(b);
      release();
      await a;
      return await b;
    } finally {
      release();
    }
  }

  /** Waits until `other` finishes or waits for a lock (PostgreSQL), whichever comes first. */
  async function finishedOrWaiting(other: Promise<unknown>): Promise<void> {
    const client = new pg.Client({ connectionString: t.databaseUrl });
    await client.connect();
    try {
      let finished = false;
      void other.then(
        () => (finished = true),
        () => (finished = true),
      );
      for (const deadline = Date.now() + 15_000; !finished; ) {
        const { rows } = await client.query<{ n: string }>(
          "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        );
        if (Number(rows[0]?.n) > 0) break;
        assert.ok(Date.now() < deadline, 'the other request neither finished nor waited for a lock');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    } finally {
      await client.end();
    }
  }

  it('two changes of one User at once (PostgreSQL, two nodes): the second waits for the User the first holds, both apply', async (ctx) => {
    if (sqliteOnly(ctx)) return;
    const u = await createUser('held');
    // Node A sets a title; its unit pauses once it has read the User (locked). Node B deactivates the User
    // meanwhile: it must wait for A's unit, then build its change from A's committed User. (Without the lock B
    // commits first, and A's version-checked write is BACKEND_BUSY.)
    const deactivated = await whileNodeAPauses(
      'userForUpdate',
      'after',
      (nodeA, dir) => nodeA.patchUser(dir, u.id, patchOp({ op: 'replace', path: 'title', value: 'Teller' })),
      () => scim('PATCH', `/Users/${u.id}`, patchOp({ op: 'Replace', path: 'active', value: 'False' })),
    );
    assert.equal(deactivated.status, 200, JSON.stringify(deactivated.body));
    const now = (await scim('GET', `/Users/${u.id}`)).body;
    assert.equal(now.title, 'Teller');
    assert.equal(now.active, false);
    assert.notEqual((await operator(u[OPX].operatorId)).revokedAt, null);
  });

  it('a User deleted while its Group changes (PostgreSQL, two nodes): the Group no longer lists it', async (ctx) => {
    if (sqliteOnly(ctx)) return;
    const gone = await createUser('leaver');
    const stays = await createUser('stayer');
    const group = (await scim('POST', '/Groups', { schemas: [GROUP], displayName: 'Branch 12' })).body;
    const add = (id: string) => patchOp({ op: 'add', path: 'members', value: [{ value: id }] });
    assert.equal((await scim('PATCH', `/Groups/${group.id}`, add(gone.id))).status, 200);

    // Node A deletes the User; its unit pauses once it has read the Groups to take the User out of. Node B adds
    // another member to the User's Group meanwhile.
    const b = await whileNodeAPauses(
      'allGroups',
      'after',
      (nodeA, dir) => nodeA.deleteUser(dir, gone.id),
      () => scim('PATCH', `/Groups/${group.id}`, add(stays.id)),
    );
    assert.equal(b.status, 200);

    assert.equal((await scim('GET', `/Users/${gone.id}`)).status, 404);
    const members = ((await scim('GET', `/Groups/${group.id}`)).body.members ?? []) as Json[];
    assert.deepEqual(
      members.map((m) => m.value),
      [stays.id],
      'the deleted User is not left a member of the Group',
    );
  });

  it('a User enabled again while its Group changes (PostgreSQL, two nodes): its new operator gets the Group’s role', async (ctx) => {
    if (sqliteOnly(ctx)) return;
    const u = await createUser('returner');
    const disable = patchOp({ op: 'replace', path: 'active', value: false });
    assert.equal((await scim('PATCH', `/Users/${u.id}`, disable)).status, 200);
    // The Supervisors Group (an earlier case may have made it), which the directory maps to "supervisor".
    const listed = (await scim('GET', `/Groups?filter=${encodeURIComponent('displayName eq "Supervisors"')}`)).body;
    const supervisors =
      (listed.Resources as Json[])[0] ??
      (await scim('POST', '/Groups', { schemas: [GROUP], displayName: 'Supervisors' })).body;

    // Node A adds the (disabled) User to Supervisors; its unit pauses just before the directory's role
    // lock. Node B enables the User again meanwhile: a new operator.
    const enabled = await whileNodeAPauses(
      'lockRoles',
      'before',
      (nodeA, dir) =>
        nodeA.patchGroup(dir, supervisors.id, patchOp({ op: 'add', path: 'members', value: [{ value: u.id }] })),
      () => scim('PATCH', `/Users/${u.id}`, patchOp({ op: 'replace', path: 'active', value: true })),
    );
    assert.equal(enabled.status, 200, JSON.stringify(enabled.body));
    const operatorId = enabled.body[OPX].operatorId as string;
    assert.notEqual(operatorId, u[OPX].operatorId, 'enabled again: a new operator');

    const now = (await scim('GET', `/Users/${u.id}`)).body;
    assert.equal(now.active, true);
    assert.equal(now[OPX].operatorId, operatorId);
    assert.deepEqual((await operator(operatorId)).roles, ['supervisor']);
    assert.equal((await operator(operatorId)).revokedAt, null);
  });
});
