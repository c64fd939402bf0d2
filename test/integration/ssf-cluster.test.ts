import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { AdminClient, TestConsole, httpJson, type Json } from '../helpers/backend-harness.js';
import { spawnBackend, readToken, type BackendProcess } from '../helpers/backend-process.js';
import { Cluster, clusterSkip } from '../helpers/cluster-harness.js';
import { ConformanceReceiver, type ReceivedSet } from '../helpers/ssf-receiver.js';
import { TEST_ENGINE, dropTestDatabase } from '../helpers/test-database.js';

/**
 * The Shared Signals transmitter on real backend processes (issue 13, "a transmitter node killed
 * mid-delivery"): two nodes on one PostgreSQL sharing one push stream, and a single node (the suite's
 * engine) killed and started again. The conformance receiver checks every SET and, here, acknowledges a
 * jti it already has (202, kept in `duplicates`) so that at-least-once delivery is visible.
 *
 * "Mid-delivery" is made certain, not timed: the receiver holds its answers (`setDown('hold')`): the
 * node posting the stream's queue has SETs in flight and none answered when it is SIGKILLed.
 *
 * What at least once allows: the SETs the killed node had posted without seeing the 202 are posted
 * again by the node that takes over (the queue row is deleted only after the answer). So a duplicate
 * is allowed only for a SET the receiver got BEFORE the kill (the round in flight); every SET arrives,
 * and per subject the first arrivals keep the events' order.
 */

const PUSH = 'urn:ietf:rfc:8935';
const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const COMPLIANCE = `${CAEP}device-compliance-change`;
const LOCKED = 'urn:baton:event:session-locked';
/**
 * Short leases: a killed node's stream is taken over after 2 s (default 15 s). One issuer for every
 * node, as in production (by default each node's admin origin, which here differs by port).
 */
const ISSUER = 'https://baton.bank.example';
const SSF_SETTINGS = { issuer: ISSUER, leaseSeconds: 2, retryBaseMs: 50, retryMaxMs: 500 };

/** Re-reads `GET /v1/admin/ssf/streams` until `predicate` holds on the answer. */
async function adminView(admin: AdminClient, predicate: (answer: Json) => boolean, what: string): Promise<Json> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const answer = (await admin.ok('GET', '/v1/admin/ssf/streams')) as Json;
    if (predicate(answer)) return answer;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(answer)}`);
    await sleep(25);
  }
}

/** The console a device SET is about. */
const deviceOf = (set: ReceivedSet): string => (set.claims.sub_id as Json).device?.id as string;

/** Per subject (the device), the first arrival of each SET in order: `compliant` then `not-compliant`. */
function complianceOrder(sets: readonly ReceivedSet[]): Map<string, string[]> {
  const order = new Map<string, string[]>();
  for (const set of sets) {
    if (set.type !== COMPLIANCE) continue;
    const list = order.get(deviceOf(set)) ?? [];
    list.push(String(set.event.current_status));
    order.set(deviceOf(set), list);
  }
  return order;
}

describe(
  'Shared Signals on two nodes of one PostgreSQL: one delivers a stream; killed mid-delivery, the other takes over',
  { skip: clusterSkip() },
  () => {
    let cluster: Cluster;
    let receiver: ConformanceReceiver;
    let streamId: string;
    const admin = (name: string) => cluster.admin(name);

    before(async () => {
      cluster = await Cluster.startWithConfig(['A', 'B'], { ssf: SSF_SETTINGS });
      for (const node of cluster.nodes) {
        const config = await httpJson(`${node.url}/.well-known/ssf-configuration`, { method: 'GET' });
        assert.equal(config.body.issuer, ISSUER, `node ${node.name} publishes the cluster's issuer`);
      }
      const issued = (await admin('A').ok('POST', '/v1/admin/ssf/receivers', {
        name: 'Core banking',
        scopes: ['ssf.manage'],
      })) as Json;
      receiver = await new ConformanceReceiver({
        issuer: ISSUER,
        audience: issued.receiver.audience as string,
        jwksUri: `${cluster.node('B').url}/ssf/jwks.json`,
        acceptDuplicates: true,
      }).listen();
      const created = await httpJson(`${cluster.node('B').url}/ssf/streams`, {
        method: 'POST',
        headers: { authorization: `Bearer ${issued.token as string}` },
        body: JSON.stringify({
          delivery: { method: PUSH, endpoint_url: receiver.url },
          events_requested: [COMPLIANCE, LOCKED],
        }),
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      streamId = created.body.stream_id as string;
    });

    after(async () => {
      await receiver?.close();
      await cluster?.stop();
    });

    /** Enrols `n` consoles, alternately through node A and node B (the enrolment is a `compliant` SET each). */
    async function enrol(n: number): Promise<TestConsole[]> {
      const consoles: TestConsole[] = [];
      for (let i = 0; i < n; i++) {
        const node = i % 2 === 0 ? 'A' : 'B';
        consoles.push(await TestConsole.enrol(cluster.node(node).url, admin(node)));
      }
      return consoles;
    }

    /** Revokes each console, alternately through node B and node A: a burst of `not-compliant` SETs. */
    async function revokeAll(consoles: TestConsole[]): Promise<void> {
      await Promise.all(
        consoles.map((c, i) =>
          admin(i % 2 === 0 ? 'B' : 'A').ok('POST', `/v1/admin/consoles/${c.id}/revoke`, { reason: 'branch closed' }),
        ),
      );
    }

    const settledOn = (name: string, stream: (s: Json) => boolean) =>
      adminView(
        admin(name),
        (a) => stream(a.streams.find((s: Json) => s.id === streamId) ?? {}),
        `the stream settled, as node ${name} shows it`,
      );

    it('in normal operation one node signs each SET and one pushes it, once; both nodes show the same stream', async () => {
      const before = await Promise.all(['A', 'B'].map((n) => adminView(admin(n), () => true, 'the view')));
      const consoles = await enrol(6);
      await revokeAll(consoles);
      const ids = new Set(consoles.map((c) => c.id));
      await receiver.waitFor(
        (sets) => sets.filter((s) => s.type === COMPLIANCE && ids.has(deviceOf(s))).length === 12,
        30_000,
        '6 enrolments and 6 revocations',
      );
      assert.deepEqual(receiver.rejected, []);
      assert.deepEqual(receiver.duplicates, [], 'nothing delivered twice');
      for (const [device, statuses] of complianceOrder(receiver.accepted)) {
        if (ids.has(device)) assert.deepEqual(statuses, ['compliant', 'not-compliant'], `order for ${device}`);
      }
      // Both nodes show the queue emptied; the same status, counts and last error from either node.
      const views = await Promise.all(
        ['A', 'B'].map((n) => settledOn(n, (s) => s.backlog === 0 && s.deliveredCount >= 12 && s.latency?.count >= 12)),
      );
      const [onA, onB] = views.map((v) => v.streams.find((s: Json) => s.id === streamId) as Json);
      const stable = (s: Json) => {
        const { lagMs: _lag, deliveringNode: _node, ...rest } = s;
        return rest;
      };
      assert.deepEqual(stable(onA as Json), stable(onB as Json), 'node A and node B show the same stream');
      assert.equal(onA?.status, 'enabled');
      // Each SET signed by one node (the fan-out lease holder) and pushed by one: no work done twice.
      const signed = views.map((v, i) => v.node.signed - before[i]?.node.signed);
      const pushed = views.map((v, i) => v.node.pushed - before[i]?.node.pushed);
      assert.equal(signed[0]! + signed[1]!, 12, `SETs signed on A and B: ${signed.join(', ')}`);
      assert.ok(signed.includes(0), `one node maps the event log to SETs: ${signed.join(', ')}`);
      assert.equal(views.filter((v) => v.node.fanout === true).length, 1, 'one fan-out lease holder');
      assert.equal(pushed[0]! + pushed[1]!, 12, `SETs pushed by A and B: ${pushed.join(', ')}`);
    });

    it('a node SIGKILLed mid-delivery: the other takes the stream over and everything arrives, in order per subject, duplicates only of the round in flight', async () => {
      const consoles = await enrol(12);
      const ids = new Set(consoles.map((c) => c.id));
      await receiver.waitFor(
        (sets) => sets.filter((s) => s.type === COMPLIANCE && ids.has(deviceOf(s))).length === 12,
        30_000,
        'the 12 enrolments',
      );
      // One console also locks its session 20 times: 20 SETs about one subject, which must keep their order.
      const locker = consoles[0] as TestConsole;
      const socket = await new TestConsole(cluster.node('A').url, locker.key, locker.id).connect();
      await socket.next('welcome');
      const locks = Array.from({ length: 20 }, () => locker.nextEvent({ type: 'session-locked', reasons: ['idle'] }));
      receiver.setDown('hold');
      socket.send({ type: 'events', events: locks });
      await socket.next('events-ack', (m: Json) => m.upToSeq >= (locks.at(-1)?.seq ?? 0));
      await socket.close();
      await revokeAll(consoles);
      // Mid-delivery: the node holding the lease has posted SETs and holds them unanswered (one per subject lane).
      await receiver.until(() => receiver.holding >= 1, 'a push in flight');
      const view = await adminView(
        admin('A'),
        (a) => a.streams.some((s: Json) => s.id === streamId && s.deliveringNode !== null),
        'the delivering node',
      );
      const owner = view.streams.find((s: Json) => s.id === streamId).deliveringNode as string;
      const victim = cluster.nodes.find((n) => new RegExp(`\\b${String(n.child.pid)}\\b`).test(owner));
      assert.ok(victim !== undefined, `the lease holder ${owner} is one of the nodes`);
      const survivor = cluster.nodes.find((n) => n !== victim) as (typeof cluster.nodes)[number];
      const seenBeforeKill = new Set(receiver.accepted.map((s) => s.jti));
      await cluster.kill(victim.name);
      receiver.useJwks(`${survivor.url}/ssf/jwks.json`);
      receiver.setDown('no');

      // Everything arrives through the survivor: 12 revocations, 20 locks.
      await receiver.waitFor(
        (sets) =>
          sets.filter((s) => s.type === COMPLIANCE && ids.has(deviceOf(s))).length === 24 &&
          sets.filter((s) => s.type === LOCKED && deviceOf(s) === locker.id).length === 20,
        45_000,
        `the 12 revocations and 20 locks through node ${survivor.name} (${cluster.state(survivor.name)})`,
      );
      assert.deepEqual(receiver.rejected, []);
      for (const [device, statuses] of complianceOrder(receiver.accepted)) {
        if (ids.has(device)) assert.deepEqual(statuses, ['compliant', 'not-compliant'], `order for ${device}`);
      }
      assert.deepEqual(
        receiver.accepted
          .filter((s) => s.type === LOCKED && deviceOf(s) === locker.id)
          .map((s) => s.event.baton_event_id),
        locks.map((e) => e.id),
        'the 20 locks of one subject, every one, in order',
      );
      // Each Baton event became one SET (one jti), whichever node mapped it.
      const perEvent = new Map<string, Set<string>>();
      for (const set of receiver.accepted) {
        const key =
          set.type === LOCKED
            ? String(set.event.baton_event_id)
            : `${deviceOf(set)} ${String(set.event.current_status)}`;
        perEvent.set(key, (perEvent.get(key) ?? new Set()).add(set.jti));
      }
      assert.ok(
        [...perEvent.values()].every((jtis) => jtis.size === 1),
        'one jti per event',
      );
      // At least once, visibly: duplicates only of SETs received before the kill (posted, answer never seen).
      const late = receiver.duplicates.filter((d) => !seenBeforeKill.has(d.jti));
      assert.deepEqual(
        late.map((d) => d.jti),
        [],
        'no duplicate of a SET first received after the kill',
      );
      assert.ok(receiver.duplicates.length >= 1, 'the SETs in flight at the kill were posted again');
      assert.ok(receiver.duplicates.length <= seenBeforeKill.size);
      await settledOn(survivor.name, (s) => s.backlog === 0 && s.status === 'enabled');
      // The fan-out lease moves on its own clock: the holder renews it with every unit it commits, so it can
      // outlive the delivery lease by up to leaseSeconds; the survivor holds it within that and the 1 s sweep.
      const final = await adminView(
        admin(survivor.name),
        (a) => a.node?.fanout === true,
        `node ${survivor.name} holding the fan-out lease`,
      );
      assert.equal(final.node.fanout, true, `node ${survivor.name} maps the event log now`);
    });
  },
);

describe('Shared Signals on one backend process killed mid-delivery and started again', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'baton-ssf-kill-'));
  const tokenFile = join(dataDir, 'bootstrap-admin-token');
  const configFile = join(dataDir, 'ssf-config.json');
  let node: BackendProcess;
  let receiver: ConformanceReceiver;
  let admin: AdminClient;

  const start = () =>
    spawnBackend({ dataDir, tokenFile, origin: 'http://localhost:8471', extra: ['--config', configFile] });

  before(async () => {
    writeFileSync(configFile, JSON.stringify({ ssf: SSF_SETTINGS }));
    node = await start();
    admin = new AdminClient(node.url, readToken(tokenFile));
  });

  after(async () => {
    await receiver?.close();
    if (node?.child.exitCode === null && node.child.signalCode === null) {
      node.child.kill('SIGTERM');
      await node.exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
    await dropTestDatabase(dataDir);
  });

  it(`(${TEST_ENGINE}) delivers after the restart everything queued or in flight at the SIGKILL, in order, duplicates only of the round in flight`, async () => {
    const issued = (await admin.ok('POST', '/v1/admin/ssf/receivers', {
      name: 'SIEM',
      scopes: ['ssf.manage'],
    })) as Json;
    receiver = await new ConformanceReceiver({
      issuer: ISSUER,
      audience: issued.receiver.audience as string,
      jwksUri: `${node.url}/ssf/jwks.json`,
      acceptDuplicates: true,
    }).listen();
    const created = await httpJson(`${node.url}/ssf/streams`, {
      method: 'POST',
      headers: { authorization: `Bearer ${issued.token as string}` },
      body: JSON.stringify({ delivery: { method: PUSH, endpoint_url: receiver.url }, events_requested: [LOCKED] }),
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const console = await TestConsole.enrol(node.url, admin);
    const socket = await console.connect();
    await socket.next('welcome');
    const locks = Array.from({ length: 30 }, () => console.nextEvent({ type: 'session-locked', reasons: ['idle'] }));
    receiver.setDown('hold');
    socket.send({ type: 'events', events: locks });
    await socket.next('events-ack', (m: Json) => m.upToSeq >= (locks.at(-1)?.seq ?? 0));
    // One subject: one push in flight, held; 29 queued behind it.
    await receiver.until(() => receiver.holding >= 1, 'a push in flight');
    const seenBeforeKill = new Set(receiver.accepted.map((s) => s.jti));
    await socket.close();
    node.child.kill('SIGKILL');
    await node.exited;
    receiver.setDown('no');
    node = await start();
    receiver.useJwks(`${node.url}/ssf/jwks.json`);
    await receiver.waitFor((sets) => sets.filter((s) => s.type === LOCKED).length === 30, 30_000, 'the 30 locks');
    assert.deepEqual(receiver.rejected, []);
    assert.deepEqual(
      receiver.accepted.filter((s) => s.type === LOCKED).map((s) => s.event.baton_event_id),
      locks.map((e) => e.id),
      'every lock, once each, in order',
    );
    assert.ok(receiver.duplicates.length >= 1, 'the SET in flight at the kill was posted again');
    assert.deepEqual(
      receiver.duplicates.filter((d) => !seenBeforeKill.has(d.jti)).map((d) => d.jti),
      [],
      'duplicates only of what was in flight at the kill',
    );
  });
});
