import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_POLICY, type Policy } from '../../shared/policy.js';
import { CLOSE_CODES } from '../../shared/protocol.js';
import {
  assertError,
  httpJson,
  TestConsole,
  type AdminClient,
  type ConsoleSocket,
  type HttpResult,
  type Json,
} from '../helpers/backend-harness.js';
import { Cluster, ClusterConsole, type ConnectionRecord } from '../helpers/cluster-harness.js';
import { assertIntactStream, eventually } from '../helpers/console-stream.js';
import { enrolOperator } from '../helpers/operator-flow.js';
import { postgresSkip } from '../helpers/postgres-server.js';
import { TEST_ENGINE } from '../helpers/test-database.js';

/**
 * Three real backend processes (`backend/cli.ts --workers 1`) on one PostgreSQL database, each on its
 * own port and data directory with the same signing keys (test/helpers/cluster-harness.ts), consoles
 * on real WebSockets to chosen nodes. Nothing here reaches into a node's memory: what one node knows
 * reaches another only through the database and the cluster bus.
 *
 * The tests run in order: node B is SIGKILLed in the failover test, and the PostgreSQL test runs last
 * on the surviving nodes A and C.
 */
/**
 * The file starts its own PostgreSQL whatever BATON_TEST_DATABASE says, so it runs once, in the default
 * pass of npm test; the second pass (BATON_TEST_DATABASE=postgres) would run the very same thing again.
 */
function skipReason(): false | string {
  const missing = postgresSkip();
  if (missing !== false) return missing;
  if (TEST_ENGINE === 'postgres') {
    const reason =
      'cluster tests start their own PostgreSQL and run in the default pass of npm test (BATON_TEST_DATABASE does not change them)';
    process.stderr.write(`${reason}\n`);
    return reason;
  }
  return false;
}

describe('a cluster of three backend processes on one PostgreSQL', { skip: skipReason() }, () => {
  let cluster: Cluster;
  const consoles: ClusterConsole[] = [];
  const sockets: ConsoleSocket[] = [];

  before(async () => {
    cluster = await Cluster.start(['A', 'B', 'C']);
  });

  after(async () => {
    await Promise.all(consoles.map((c) => c.stop()));
    await Promise.all(sockets.map((s) => s.close()));
    await cluster?.stop();
  });

  const url = (name: string) => cluster.node(name).url;
  const admin = (name: string): AdminClient => cluster.admin(name);

  /** A console enrolled through `node`, as TestConsole bound to each node's URL. */
  async function enrol(node: string): Promise<TestConsole> {
    return TestConsole.enrol(url(node), admin(node));
  }
  const on = (console: TestConsole, node: string) => new TestConsole(url(node), console.key, console.id);

  /** A console that connects to `urls` in turn (first one first), started and welcomed on the first. */
  async function connected(console: TestConsole, nodes: string[]): Promise<ClusterConsole> {
    const agent = new ClusterConsole(
      console,
      nodes.map((n) => url(n)),
    );
    consoles.push(agent);
    agent.start();
    await agent.until(() => agent.currentUrl === url(nodes[0] ?? ''), `a welcome from node ${nodes[0] ?? ''}`);
    return agent;
  }

  /** Fails naming `what` when `promise` has not settled within `ms` (a call that hangs is a failure). */
  function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      promise.finally(() => clearTimeout(timer)),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
      }),
    ]);
  }

  /** Journals `perTick` events on every console each `everyMs`: batches keep flowing until stopped. */
  function load(agents: ClusterConsole[], perTick = 5, everyMs = 25): { stop(): void } {
    const timer = setInterval(() => {
      for (const agent of agents) agent.produce(perTick);
    }, everyMs);
    return { stop: () => clearInterval(timer) };
  }

  async function health(node: string, path: '/healthz' | '/readyz' = '/healthz'): Promise<HttpResult<Json>> {
    let response: Response;
    try {
      response = await fetch(`${url(node)}${path}`);
    } catch (error) {
      throw new Error(`GET ${path} on node ${node}: ${(error as Error).message}; ${cluster.state(node)}`);
    }
    return { status: response.status, body: (await response.json()) as Json };
  }

  it('takes a sign-in challenge issued on node A on node B, once: the same assertion on node C is refused', async () => {
    const console = await enrol('A');
    const { authenticator } = await enrolOperator(admin('A'), console, { displayName: 'Cross-node teller' });
    const { options } = (await on(console, 'A').ok('POST', '/v1/sign-in/options', {})) as Json;
    const response = authenticator.assert(options);
    const verified = await on(console, 'B').request('POST', '/v1/sign-in/verify', { response });
    assert.equal(verified.status, 200, `node B verifies node A's challenge: ${JSON.stringify(verified.body)}`);
    assert.equal(typeof verified.body.session?.id, 'string', 'a session was opened');
    const again = await on(console, 'C').request('POST', '/v1/sign-in/verify', { response });
    assertError(again, 400, 'CHALLENGE_UNKNOWN');
    // The nodes share the token signing keys (copied from node A): a token node B issued verifies on every node.
    const jwks = await Promise.all(
      ['A', 'B', 'C'].map(
        async (node) => (await httpJson(`${url(node)}/.well-known/jwks.json`, { method: 'GET' })).body,
      ),
    );
    assert.deepEqual(jwks[1], jwks[0], 'node B publishes the keys node A does');
    assert.deepEqual(jwks[2], jwks[0], 'node C publishes the keys node A does');
  });

  it('refuses on nodes C and B a signed console request node A accepted (CONSOLE_SIGNATURE_REPLAYED)', async () => {
    const console = await enrol('A');
    const path = '/v1/sign-in/options';
    const body = '{}';
    const headers = console.signedHeaders('POST', path, body);
    const accepted = await httpJson(`${url('A')}${path}`, { method: 'POST', headers, body });
    assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
    for (const node of ['C', 'B']) {
      const replayed = await httpJson(`${url(node)}${path}`, { method: 'POST', headers, body });
      assertError(replayed, 401, 'CONSOLE_SIGNATURE_REPLAYED');
    }
  });

  it('delivers a revocation issued on node A to consoles on nodes B and C, and shows their acks on node A', async () => {
    const onB = await connected(await enrol('B'), ['B']);
    const onC = await connected(await enrol('C'), ['C']);
    const { operator } = (await admin('A').ok('POST', '/v1/admin/operators', {
      displayName: 'Revoked across nodes',
      roles: ['teller'],
    })) as Json;
    const { epoch } = (await admin('A').ok('POST', `/v1/admin/operators/${operator.id as string}/revoke`, {
      reason: 'cluster test',
    })) as { epoch: number };
    for (const [agent, node] of [
      [onB, 'B'],
      [onC, 'C'],
    ] as const) {
      await agent.until(
        () => agent.received('revocation').some((m) => m.epoch >= epoch && m.items.some((i) => i.epoch === epoch)),
        `the revocation of epoch ${epoch} (issued on node A) on the console connected to node ${node}`,
        10_000,
      );
    }
    await eventually(
      async () => {
        const view = (await admin('A').ok('GET', `/v1/admin/revocations/${epoch}/deliveries`)) as Json;
        const deliveries = view.deliveries as { consoleId: string; ackedAt: number | null }[];
        return [onB.id, onC.id].every((id) => deliveries.some((d) => d.consoleId === id && d.ackedAt !== null));
      },
      `node A's delivery view of epoch ${epoch} to show the acks of the consoles on nodes B and C`,
      10_000,
    );
  });

  it('delivers a policy published on node B to consoles connected to node A', async () => {
    const agents = [await connected(await enrol('A'), ['A']), await connected(await enrol('A'), ['A'])];
    const current = (await admin('B').ok('GET', '/v1/admin/policy')) as { version: number; policy: Policy };
    const policy = structuredClone(current.policy ?? DEFAULT_POLICY) as Json;
    policy.channels['branch-kiosk'].idleLockSeconds = policy.channels['branch-kiosk'].idleLockSeconds === 60 ? 90 : 60;
    const published = (await admin('B').ok('POST', '/v1/admin/policy', {
      baseVersion: current.version,
      policy,
    })) as { version: number };
    assert.ok(published.version > current.version);
    for (const agent of agents) {
      await agent.until(
        () => agent.received('policy').some((m) => m.version === published.version),
        `policy version ${published.version} (published on node B) on a console connected to node A`,
        10_000,
      );
      const pushed = agent.received('policy').find((m) => m.version === published.version);
      assert.equal(
        pushed?.policy.channels['branch-kiosk']?.idleLockSeconds,
        policy.channels['branch-kiosk'].idleLockSeconds,
      );
    }
  });

  it('keeps only the newest socket of a console connected to two nodes at once', async () => {
    const console = await enrol('A');
    const first = await on(console, 'A').connect();
    sockets.push(first);
    await first.next('welcome');
    const second = await on(console, 'C').connect();
    sockets.push(second);
    await second.next('welcome');
    const closed = await within(first.closed, 10_000, "the close of the older socket (node A) after node C's welcome");
    assert.equal(closed.code, CLOSE_CODES.SUPERSEDED, `closed with SUPERSEDED: ${JSON.stringify(closed)}`);
    assert.equal(second.ws.readyState, second.ws.OPEN, 'the newest socket (node C) stays open');
    await on(console, 'C').roundTrip(second);
  });

  it('moves the consoles of a SIGKILLed node B to nodes A and C mid-ingest: every event stored once, chains intact', async () => {
    const agents = [
      await connected(await enrol('B'), ['B', 'A', 'C']),
      await connected(await enrol('B'), ['B', 'C', 'A']),
      await connected(await enrol('B'), ['B', 'A', 'C']),
    ];
    const flow = load(agents);
    try {
      for (const agent of agents) {
        await agent.until(() => agent.acked >= 40, 'at least 40 events acknowledged by node B before the kill');
      }
      await cluster.kill('B');
      const ackedAtKill = agents.map((a) => a.acked);
      for (const agent of agents) {
        await agent.until(
          () => agent.currentUrl === url('A') || agent.currentUrl === url('C'),
          'a welcome from node A or C after node B was killed',
          15_000,
        );
      }
      for (const [i, agent] of agents.entries()) {
        const target = (ackedAtKill[i] ?? 0) + 40;
        await agent.until(() => agent.acked >= target, `${target} events acknowledged after the move`, 15_000);
      }
    } finally {
      flow.stop();
    }
    for (const agent of agents) await agent.drained();
    for (const agent of agents) {
      const closedOnB = agent.connections.find((c) => c.url === url('B') && c.welcomed);
      assert.ok(closedOnB?.close !== undefined, 'the socket to node B closed when B died');
      await assertIntactStream(admin('A'), agent.id, agent.produced);
    }
    const backend = (await admin('C').ok('GET', '/v1/admin/events/verify?origin=backend')) as Json;
    assert.equal(backend.intact, true, `the backend's own chain verifies: ${JSON.stringify(backend.problems)}`);
  });

  it('survives PostgreSQL stopping under load: clear errors meanwhile, nothing acknowledged lost, nodes recover', async () => {
    const agents = [
      await connected(await enrol('A'), ['A', 'C']),
      await connected(await enrol('A'), ['A', 'C']),
      await connected(await enrol('C'), ['C', 'A']),
    ];
    const console = await enrol('A');
    // The bank's directory provisions over SCIM: while the database is away it reads SCIM's own error shape.
    const directory = (await admin('A').ok('POST', '/v1/admin/scim/directories', { name: 'Entra ID' })) as Json;
    const flow = load(agents);
    const understood = new Set(['DATABASE_UNREACHABLE', 'STORAGE_UNAVAILABLE', 'NODE_STALE']);
    try {
      for (const agent of agents) {
        await agent.until(() => agent.acked >= 30, 'at least 30 events acknowledged before PostgreSQL stops');
      }
      const seen = agents.map((a) => a.connections.length);
      await cluster.server.kill();
      const ackedAtStop = agents.map((a) => a.acked);
      for (const node of ['A', 'C']) {
        await eventually(
          async () => (await health(node)).status === 503,
          `node ${node}'s /healthz to report 503 while PostgreSQL is down`,
          15_000,
        );
        const ready = await health(node, '/readyz');
        assert.equal(
          ready.status,
          503,
          `node ${node} leaves the load balancer's rotation: ${JSON.stringify(ready.body)}`,
        );
        const answer = await within(
          on(console, node).request('POST', '/v1/sign-in/options', {}),
          10_000,
          `node ${node} to answer a signed request while PostgreSQL is down (not hang)`,
        );
        assert.equal(answer.status, 503, JSON.stringify(answer.body));
        assert.ok(
          understood.has(answer.body.error?.code as string),
          `a clear code, not ${JSON.stringify(answer.body)}`,
        );
        const scimResponse = await within(
          fetch(`${url(node)}/scim/v2/Users?filter=${encodeURIComponent('userName eq "a@bank.example"')}`, {
            headers: { authorization: `Bearer ${directory.token as string}` },
          }),
          10_000,
          `node ${node} to answer a SCIM request while PostgreSQL is down (not hang)`,
        );
        const scim = (await scimResponse.json()) as Json;
        assert.equal(scimResponse.status, 503, JSON.stringify(scim));
        assert.match(scimResponse.headers.get('content-type') ?? '', /^application\/scim\+json/);
        assert.deepEqual(scim.schemas, ['urn:ietf:params:scim:api:messages:2.0:Error']);
        assert.equal(scim.status, '503');
        assert.equal(scim.error?.code, 'DATABASE_UNREACHABLE', JSON.stringify(scim));
        // Stable codes and the node's own plain words: never the driver's text (host, port, what failed how).
        const down = await health(node);
        assert.equal(down.body.database?.error, 'DATABASE_UNREACHABLE', JSON.stringify(down.body));
        for (const body of [down.body, ready.body, answer.body, scim]) {
          assert.doesNotMatch(
            JSON.stringify(body),
            /ECONNREFUSED|ECONNRESET|terminat|timeout exceeded|127\.0\.0\.1|postgres:\/\//,
          );
        }
      }
      const signals = (agent: ClusterConsole, from: number): string[] =>
        agent.connections
          .slice(from)
          .flatMap((c: ConnectionRecord) => [...c.errors, ...(c.refused?.code === undefined ? [] : [c.refused.code])]);
      for (const [i, agent] of agents.entries()) {
        await agent.until(
          () => signals(agent, seen[i] ?? 0).length > 0,
          'a storage error on the socket or a refused reconnect while PostgreSQL is down',
          15_000,
        );
        const codes = signals(agent, seen[i] ?? 0);
        assert.deepEqual(
          codes.filter((c) => !understood.has(c)),
          [],
          `every code a console got while the database was away is one it understands: ${codes.join(', ')}`,
        );
        const closes = agent.connections.slice(seen[i] ?? 0).flatMap((c) => (c.close === undefined ? [] : [c.close]));
        assert.deepEqual(
          closes.filter((c) => c.code !== CLOSE_CODES.INTERNAL && c.code !== CLOSE_CODES.GOING_AWAY),
          [],
          `sockets closed with a code the console reconnects on: ${JSON.stringify(closes)}`,
        );
      }
      await cluster.server.restart();
      for (const node of ['A', 'C']) {
        await eventually(
          async () => {
            const answer = await health(node);
            return answer.status === 200 && answer.body.status === 'ok';
          },
          `node ${node}'s /healthz back to 200 ok after PostgreSQL returned`,
          30_000,
        );
        await eventually(
          async () => (await health(node, '/readyz')).status === 200,
          `node ${node}'s /readyz back to 200 after PostgreSQL returned`,
          30_000,
        );
      }
      for (const [i, agent] of agents.entries()) {
        const target = Math.max(agent.acked, ackedAtStop[i] ?? 0) + 30;
        await agent.until(
          () => agent.acked >= target,
          `${target} events acknowledged after PostgreSQL returned`,
          20_000,
        );
      }
    } finally {
      flow.stop();
    }
    for (const agent of agents) await agent.drained(30_000);
    for (const agent of agents) await assertIntactStream(admin('C'), agent.id, agent.produced);
    // Recovered by itself: a node may flap stale once more while its bus reconnects to a server that is
    // still starting, but it must serve signed requests again within the bound without anyone's help.
    let last: unknown;
    await eventually(
      async () => {
        const signedIn = await on(console, 'C').request('POST', '/v1/sign-in/options', {});
        last = signedIn.body;
        return signedIn.status === 200;
      },
      'node C serving signed requests again',
      30_000,
    ).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}; its last answer: ${JSON.stringify(last)}`);
    });
  });
});
