/**
 * The admin API's lists at estate scale (issue 12): search, sort, name filters and cursor paging for
 * consoles, operators, sessions, events and revocations, over real HTTP on the suite's engine. The
 * estate is seeded straight into the backend's store (a few hundred rows), as an estate grows.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Store } from '../../backend/store/repositories.js';
import { assertError, startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';

const SITES = ['Leeds', 'York', 'Hull'];
const CONSOLES = 120;
const OPERATORS = 150;

async function seed(store: Store, now: number): Promise<void> {
  for (let i = 0; i < CONSOLES; i++) {
    const n = String(i).padStart(3, '0');
    await store.consoles.insert({
      id: `con_estate${n}`,
      name: `Teller ${n}`,
      channel: 'branch-kiosk',
      site: SITES[i % SITES.length] ?? null,
      publicJwk: '{}',
      jkt: `jkt-estate-${n}`,
      enrolledAt: now - i * 1000,
      lastSeenAt: i % 2 === 0 ? now : null,
      policyVersion: 1,
      revocationEpoch: 0,
      revokedAt: i % 10 === 0 ? now : null,
      revokedReason: i % 10 === 0 ? 'stolen' : null,
    });
  }
  for (let i = 0; i < OPERATORS; i++) {
    const n = String(i).padStart(3, '0');
    await store.operators.insert({
      id: `op_estate${n}`,
      displayName: i === 7 ? 'Zoë Quinn' : `Operator ${n}`,
      roles: i % 50 === 0 ? ['teller', 'supervisor'] : ['teller'],
      webauthnUserId: `wa-estate-${n}`,
      createdAt: now - (OPERATORS - i) * 1000,
      failedAttempts: 0,
      revokedAt: null,
      revokedReason: null,
    });
  }
}

describe('admin lists at estate scale', () => {
  let t: TestBackend;
  const get = async (path: string): Promise<Json> => t.admin.ok('GET', path);

  before(async () => {
    t = await startTestBackend();
    await seed(t.backend.services.store, Date.now());
    // Events about two operators and a console, recorded as the backend records its own facts.
    for (let i = 0; i < 30; i++) {
      await t.backend.services.events.record({
        type: 'admin-action',
        subject: { operator: i % 3 === 0 ? 'op_estate007' : 'op_estate008', console: 'con_estate005' },
        outcome: i % 2 === 0 ? 'success' : 'info',
        reasons: ['estate-test'],
      });
    }
  });
  after(() => t.stop());

  it('pages every console exactly once, sorted by name, forward and back', async () => {
    const seen: string[] = [];
    const pages: Json[] = [];
    let cursor: string | null = null;
    do {
      const page: Json = await get(
        `/v1/admin/consoles?sort=name&limit=25${cursor === null ? '' : `&cursor=${cursor}`}&q=teller`,
      );
      pages.push(page);
      seen.push(...(page.consoles as Json[]).map((c) => c.name as string));
      cursor = page.page.next as string | null;
    } while (cursor !== null);
    assert.equal(seen.length, CONSOLES);
    assert.equal(new Set(seen).size, CONSOLES);
    assert.deepEqual(seen, [...seen].sort());
    assert.equal(pages[0].total, CONSOLES);
    assert.equal(pages[0].page.prev, null, 'the first page has no previous page');
    // The previous page of the third is the second, row for row.
    const back: Json = await get(`/v1/admin/consoles?sort=name&limit=25&q=teller&cursor=${pages[2].page.prev}`);
    assert.deepEqual(
      (back.consoles as Json[]).map((c) => c.id),
      (pages[1].consoles as Json[]).map((c) => c.id),
    );
    assert.ok(back.page.next !== null && back.page.prev !== null);
  });

  it('sorts descending and filters by site and state, by name as typed', async () => {
    const page: Json = await get('/v1/admin/consoles?sort=name&order=desc&site=york&state=active&limit=5');
    const names = (page.consoles as Json[]).map((c) => c.name as string);
    assert.deepEqual(names, [...names].sort().reverse());
    assert.ok((page.consoles as Json[]).every((c) => c.site === 'York' && c.revokedAt === null));
    // 40 of the 120 are at York; every tenth console is revoked (of York's, those numbered 0, 30, 60, 90).
    assert.equal(page.total, 36);
  });

  it('searches operators by part of a name, any case, and sorts by creation', async () => {
    const found: Json = await get(`/v1/admin/operators?q=${encodeURIComponent('ZOË')}`);
    assert.deepEqual(
      (found.operators as Json[]).map((o) => o.id),
      ['op_estate007'],
    );
    const newest: Json = await get('/v1/admin/operators?sort=created&order=desc&limit=3&role=supervisor');
    assert.deepEqual(
      (newest.operators as Json[]).map((o) => o.id),
      ['op_estate100', 'op_estate050', 'op_estate000'],
    );
  });

  it('filters events by an operator name and a console name, newest first, with names for the ids', async () => {
    const page: Json = await get(
      `/v1/admin/events?operator=${encodeURIComponent('zoë quinn')}&console=${encodeURIComponent('Teller 005')}&limit=4&order=desc`,
    );
    const events = page.events as Json[];
    assert.equal(events.length, 4);
    assert.ok(events.every((e) => e.subject.operator === 'op_estate007'));
    const cursors = events.map((e) => e.cursor as number);
    assert.deepEqual(
      cursors,
      [...cursors].sort((a, b) => b - a),
    );
    assert.equal(page.names.operators.op_estate007, 'Zoë Quinn');
    assert.equal(page.names.consoles.con_estate005.name, 'Teller 005');
    // Deep paging: the cursor continues where the page stopped, without overlap, to the last of 10.
    const rest: Json = await get(
      `/v1/admin/events?operator=op_estate007&console=Teller%20005&limit=100&order=desc&cursor=${page.page.next}`,
    );
    assert.equal((rest.events as Json[]).length, 6);
    assert.ok((rest.events as Json[]).every((e) => (e.cursor as number) < Math.min(...cursors)));
    assert.equal(rest.page.next, null);
    // A search by name finds the same events; a filter that names nobody finds nothing.
    const searched: Json = await get(`/v1/admin/events?q=zo%C3%AB&type=admin-action&outcome=success`);
    assert.ok((searched.events as Json[]).length > 0);
    assert.ok(
      (searched.events as Json[]).every((e) => e.subject.operator === 'op_estate007' && e.outcome === 'success'),
    );
    const nobody: Json = await get('/v1/admin/events?operator=Nobody%20Here&sort=received');
    assert.deepEqual(nobody.events, []);
  });

  it('lists sessions with operator and console names, filtered by name', async () => {
    const store = t.backend.services.store;
    const now = Date.now();
    for (let i = 0; i < 12; i++) {
      await store.sessions.insert({
        id: `ses_estate${String(i).padStart(2, '0')}`,
        operatorId: i < 5 ? 'op_estate007' : 'op_estate009',
        consoleId: `con_estate00${i % 3}`,
        channel: 'branch-kiosk',
        credentialId: 'cred_none',
        level: 'verified',
        authTime: now,
        startedAt: now - i * 1000,
        expiresAt: now + 3_600_000,
        state: 'active',
        suspendedAt: null,
        endedAt: null,
        endReason: null,
      });
    }
    const page: Json = await get('/v1/admin/sessions?operator=Zo%C3%AB%20Quinn&sort=started&order=asc&limit=2');
    assert.deepEqual(
      (page.sessions as Json[]).map((s) => s.id),
      ['ses_estate04', 'ses_estate03'],
    );
    assert.equal(page.total, 5);
    assert.equal(page.sessions[0].operatorName, 'Zoë Quinn');
    assert.match(String(page.sessions[0].consoleName), /^Teller 00\d$/);
    const atSite: Json = await get('/v1/admin/sessions?site=Leeds&state=active');
    assert.ok((atSite.sessions as Json[]).every((s) => s.consoleSite === 'Leeds'));
    assert.equal(atSite.total, 4);
  });

  it('refuses a cursor it did not make, a cursor of another list or sort, an unknown sort key and a huge page', async () => {
    assertError(await t.admin.request('GET', '/v1/admin/consoles?cursor=not-a-cursor'), 400, 'ADMIN_CURSOR_INVALID');
    const forged = Buffer.from('{"t":"consoles","s":"name","o":"asc","d":"a","k":[{"$gt":""},1]}').toString(
      'base64url',
    );
    assertError(await t.admin.request('GET', `/v1/admin/consoles?cursor=${forged}`), 400, 'ADMIN_CURSOR_INVALID');
    const page: Json = await get('/v1/admin/consoles?limit=2');
    assertError(
      await t.admin.request('GET', `/v1/admin/operators?cursor=${page.page.next}`),
      400,
      'ADMIN_CURSOR_INVALID',
    );
    assertError(
      await t.admin.request('GET', `/v1/admin/consoles?sort=site&cursor=${page.page.next}`),
      400,
      'ADMIN_CURSOR_INVALID',
    );
    const sort = await t.admin.request('GET', '/v1/admin/consoles?sort=public_jwk');
    assertError(sort, 400, 'ADMIN_SORT_UNKNOWN');
    assert.match(String(sort.body.error.message), /name, site, channel, enrolled, lastSeen/);
    assertError(await t.admin.request('GET', '/v1/admin/events?sort=time;DROP'), 400, 'ADMIN_SORT_UNKNOWN');
    assertError(await t.admin.request('GET', '/v1/admin/operators?limit=5000'), 400, 'SCHEMA_INVALID');
  });

  it('keeps the unpaged answers older callers rely on', async () => {
    const all: Json = await get('/v1/admin/consoles');
    assert.equal((all.consoles as Json[]).length, CONSOLES);
    assert.equal(all.page, undefined);
    const events: Json = await get('/v1/admin/events?operator=op_estate008&limit=5');
    const cursors = (events.events as Json[]).map((e) => e.cursor as number);
    assert.deepEqual(
      cursors,
      [...cursors].sort((a, b) => a - b),
      'the after-mode pages oldest first, as before',
    );
    assert.equal(events.nextCursor, cursors.at(-1));
  });
});
