import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConsoleKey } from '../../main/core/console-key.js';
import { DEFAULT_POLICY, type Policy } from '../../shared/policy.js';
import {
  TEST_ORIGIN,
  TestConsole,
  httpJson,
  startTestBackend,
  type HttpResult,
  type Json,
  type TestBackend,
} from '../helpers/backend-harness.js';
import { SoftAuthenticator } from '../helpers/soft-authenticator.js';

/**
 * The break-glass limits hold when requests arrive at once (issue 14 item 7; break-glass.ts,
 * limitsSerialised): each grant's count-then-insert runs after its unit took the backend's event-chain
 * head, so on PostgreSQL two units can no longer both count N-1 and both insert (SQLite serialises
 * writers anyway). N requests fired together: exactly the limit succeed, the rest are refused
 * 429 BREAK_GLASS_LIMIT_REACHED, and the review list holds exactly the limit. No timing assumption:
 * whatever order the requests land in, the counts must come out so.
 */
describe('break-glass: the per-operator and per-site limits hold under concurrent requests', () => {
  let t: TestBackend;
  let kiosk: TestConsole;
  const N = 6;
  const supervisors: SoftAuthenticator[] = [];

  const breakGlass = {
    lifetimeSeconds: 900,
    actions: ['customer.view'],
    maxPerOperatorPerDay: 1,
    maxPerSitePerDay: 2,
    approverRoles: ['supervisor'],
  };
  const newOperator = async (displayName: string, roles: string[] = ['teller']) =>
    ((await t.admin.ok('POST', '/v1/admin/operators', { displayName, roles })) as Json).operator.id as string;
  /** A console enrolled at `site` (TestConsole.enrol gives none). */
  const enrolAt = async (site: string | undefined): Promise<TestConsole> => {
    const channel = 'branch-kiosk';
    const { token } = (await t.admin.ok('POST', '/v1/admin/console-tokens', {
      channel,
      ...(site === undefined ? {} : { site }),
    })) as { token: string };
    const key = ConsoleKey.generate();
    const body = JSON.stringify({ token, publicKey: key.publicJwk(), channel, name: 'race console' });
    const path = '/v1/consoles/enrol';
    const result = await httpJson(`${t.url}${path}`, {
      method: 'POST',
      headers: key.signRequest({ consoleId: undefined, method: 'POST', path, body, now: Date.now() }),
      body,
    });
    assert.equal(result.status, 201, JSON.stringify(result.body));
    return new TestConsole(t.url, key, (result.body as { consoleId: string }).consoleId);
  };
  const grants = async () => (await t.admin.ok('GET', '/v1/admin/break-glass?all=true')).grants as Json[];
  const issue = (operatorId: string, consoleId: string) =>
    t.admin.request('POST', '/v1/admin/break-glass/codes', { operatorId, consoleId, reason: 'race' });
  /** Exactly `limit` successes; every other answer is the stable limit refusal. */
  const assertLimited = (results: HttpResult<Json>[], limit: number, ok: number) => {
    const summary = results.map((r) => `${r.status} ${(r.body.error?.code as string | undefined) ?? ''}`.trim());
    assert.equal(results.filter((r) => r.status === ok).length, limit, summary.join(', '));
    for (const r of results.filter((r) => r.status !== ok)) {
      assert.equal(r.status, 429, summary.join(', '));
      assert.equal(r.body.error?.code, 'BREAK_GLASS_LIMIT_REACHED', summary.join(', '));
    }
  };
  /**
   * One request per console (each asked and answered by its own supervisor's key: distinct keys, so
   * no shared credential row serialises the approvals), then every tap sent at once.
   */
  const tapAllAtOnce = async (operatorIds: string[], consoles: TestConsole[]) => {
    const taps: { on: TestConsole; requestId: string; response: unknown }[] = [];
    for (const [i, on] of consoles.entries()) {
      const asked = await on.ok('POST', '/v1/break-glass/requests', { operatorId: operatorIds[i] });
      const { requestId, options } = asked as Json;
      taps.push({ on, requestId: requestId as string, response: supervisors[i]!.assert(options) });
    }
    return Promise.all(
      taps.map(({ on, requestId, response }) =>
        on.request('POST', `/v1/break-glass/requests/${requestId}/approve`, { response }),
      ),
    );
  };

  before(async () => {
    t = await startTestBackend();
    kiosk = await TestConsole.enrol(t.url, t.admin);
    const current = (await t.admin.ok('GET', '/v1/admin/policy')) as { version: number };
    await t.admin.ok('POST', '/v1/admin/policy', {
      baseVersion: current.version,
      policy: { ...DEFAULT_POLICY, breakGlass } satisfies Policy,
    });
    for (let i = 0; i < N; i++) {
      const id = await newOperator(`Supervisor ${i}`, ['supervisor']);
      const { code } = (await t.admin.ok('POST', `/v1/admin/operators/${id}/enrolment-codes`, {})) as Json;
      const key = new SoftAuthenticator(TEST_ORIGIN);
      const { options } = (await kiosk.ok('POST', '/v1/operators/enrol/options', { code })) as Json;
      await kiosk.ok('POST', '/v1/operators/enrol/verify', { code, response: key.register(options) });
      supervisors.push(key);
    }
  });
  after(() => t.stop());

  it('admin codes: N at once for one operator give exactly maxPerOperatorPerDay', async () => {
    for (let round = 0; round < 3; round++) {
      const operatorId = await newOperator(`Code ${round}`);
      const results = await Promise.all(Array.from({ length: N }, () => issue(operatorId, kiosk.id)));
      assertLimited(results, 1, 201);
      assert.equal((await grants()).filter((g) => g.operatorId === operatorId).length, 1);
    }
  });

  it('admin codes: N at once for N operators of one site give exactly maxPerSitePerDay', async () => {
    for (let round = 0; round < 3; round++) {
      const site = `code-site-${round}`;
      const counter = await enrolAt(site);
      const operators = await Promise.all(Array.from({ length: N }, (_, i) => newOperator(`Site ${round}.${i}`)));
      const results = await Promise.all(operators.map((operatorId) => issue(operatorId, counter.id)));
      assertLimited(results, 2, 201);
      assert.equal((await grants()).filter((g) => g.site === site).length, 2);
    }
  });

  it('supervisor taps: N at once for one operator on N consoles give exactly maxPerOperatorPerDay', async () => {
    const consoles = await Promise.all(Array.from({ length: N }, () => enrolAt(undefined)));
    for (let round = 0; round < 2; round++) {
      const operatorId = await newOperator(`Tap ${round}`);
      const results = await tapAllAtOnce(
        consoles.map(() => operatorId),
        consoles,
      );
      assertLimited(results, 1, 201);
      assert.equal((await grants()).filter((g) => g.operatorId === operatorId).length, 1);
    }
  });

  it('supervisor taps: N at once for N operators on N consoles of one site give exactly maxPerSitePerDay', async () => {
    for (let round = 0; round < 2; round++) {
      const site = `tap-site-${round}`;
      const consoles = await Promise.all(Array.from({ length: N }, () => enrolAt(site)));
      const operators = await Promise.all(consoles.map((_, i) => newOperator(`Tap site ${round}.${i}`)));
      const results = await tapAllAtOnce(operators, consoles);
      assertLimited(results, 2, 201);
      assert.equal((await grants()).filter((g) => g.site === site).length, 2);
    }
  });
});
