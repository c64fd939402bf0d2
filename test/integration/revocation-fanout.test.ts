import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CLOSE_CODES } from '../../shared/protocol.js';
import {
  startTestBackend,
  TestConsole,
  type ConsoleSocket,
  type Json,
  type TestBackend,
} from '../helpers/backend-harness.js';
import { enrolOperator } from '../helpers/operator-flow.js';

/**
 * A revocation to many consoles at once (issue 10): the acknowledgements, read on the backend's fast
 * path when spelled as the agent sends them and through the schema otherwise, are all recorded, and
 * what the schema refuses stays refused.
 */
describe('revocation fan-out: every acknowledgement recorded', () => {
  let t: TestBackend;
  before(async () => {
    t = await startTestBackend();
  });
  after(() => t.stop());

  /** What an admin sees of a revocation's deliveries, once `acknowledged` reaches `count` (or the last answer). */
  async function deliveriesOnceAcknowledged(epoch: number, count: number): Promise<Json> {
    for (let i = 0; ; i++) {
      const seen = (await t.admin.ok('GET', `/v1/admin/revocations/${epoch}/deliveries`)) as Json;
      if ((seen.acknowledged as number) >= count || i >= 200) return seen;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  async function connected(n: number): Promise<{ console: TestConsole; socket: ConsoleSocket }[]> {
    const out = [];
    for (let i = 0; i < n; i++) {
      const console = await TestConsole.enrol(t.url, t.admin);
      const socket = await console.connect({ revocationEpoch: await t.backend.revocations.currentEpoch() });
      await socket.next('welcome');
      out.push({ console, socket });
    }
    return out;
  }

  /** `n` consoles connected, an operator enrolled on the first, then revoked by the admin: the consoles and the epoch. */
  async function operatorRevokedWith(n: number, displayName: string) {
    const consoles = await connected(n);
    const { operatorId } = await enrolOperator(t.admin, consoles[0]?.console as TestConsole, { displayName });
    const result = (await t.admin.ok('POST', `/v1/admin/operators/${operatorId}/revoke`, { reason: 'left' })) as Json;
    return { consoles, operatorId, epoch: result.epoch as number };
  }

  it('an operator revoked with 12 consoles connected: each acknowledges (in any spelling) and the admin sees 12 of 12', async () => {
    const { consoles, operatorId, epoch } = await operatorRevokedWith(12, 'Ivy Gone');
    for (const [i, { socket }] of consoles.entries()) {
      const message = await socket.next('revocation', (m) => m.epoch === epoch);
      assert.equal(message.items[0]?.targetId, operatorId);
      // As the agent spells it (the backend's fast path), and two other valid spellings (the schema's path).
      socket.send(
        i === 0
          ? `{ "type": "ack", "of": "revocation", "epoch": ${epoch} }`
          : i === 1
            ? `{"epoch":${epoch},"of":"revocation","type":"ack"}`
            : { type: 'ack', of: 'revocation', epoch },
      );
    }
    const seen = await deliveriesOnceAcknowledged(epoch, 12);
    const ours = new Set(consoles.map((c) => c.console.id));
    const rows = (seen.deliveries as { consoleId: string; ackedAt: number | null }[]).filter((d) =>
      ours.has(d.consoleId),
    );
    assert.equal(rows.length, 12, 'a delivery row for every console');
    assert.deepEqual(
      rows.filter((d) => d.ackedAt === null).map((d) => d.consoleId),
      [],
      'every console recorded as acknowledged',
    );
    await Promise.all(consoles.map(({ socket }) => socket.close()));
  });

  it('the revocations list read before the consoles answer counts every console it was sent to, not "no console was connected"', async () => {
    const { consoles, epoch } = await operatorRevokedWith(3, 'Jon Away');
    // No console has answered yet: this node writes its rows once they do, or at the end of its wait.
    const list = (await t.admin.ok('GET', '/v1/admin/revocations?limit=10')) as Json;
    const row = (list.revocations as { epoch: number; deliveries: { sent: number } }[]).find((r) => r.epoch === epoch);
    assert.equal(row?.deliveries.sent, 3);
    await Promise.all(consoles.map(({ socket }) => socket.close()));
  });

  it('an acknowledgement the schema refuses is refused however it is spelled', async () => {
    for (const bad of [
      '{"type":"ack","of":"revocation","epoch":0}',
      '{"type":"ack","of":"revocation","epoch":-1}',
      '{"type":"ack","of":"revocation","epoch":1.5}',
      '{"type":"ack","of":"revocation","epoch":1,"extra":true}',
      '{"type":"ack","of":"revocation","epoch":99999999999999999999}',
    ]) {
      const { socket } = (await connected(1))[0] as { socket: ConsoleSocket };
      socket.send(bad);
      const error = await socket.next('error');
      assert.equal(error.code, 'SCHEMA_INVALID', bad);
      assert.equal((await socket.closed).code, CLOSE_CODES.SCHEMA_INVALID, bad);
    }
  });

  it('an acknowledgement of an epoch the backend never sent is a protocol violation: refused, the socket closed, nothing recorded; its real acknowledgement on a new socket counts', async () => {
    const { consoles, epoch } = await operatorRevokedWith(1, 'Kit Bogus');
    const { console, socket: first } = consoles[0] as { console: TestConsole; socket: ConsoleSocket };
    await first.next('revocation', (m) => m.epoch === epoch);
    const known = (await t.backend.store.consoles.get(console.id))?.revocationEpoch;
    // As the agent spells it (the fast path) and as the schema reads it: a jump far beyond anything sent.
    let socket = first;
    for (const bogus of [
      `{"type":"ack","of":"revocation","epoch":${epoch + 1_000_000}}`,
      `{ "type": "ack", "of": "revocation", "epoch": ${epoch + 1} }`,
    ]) {
      if (socket !== first) {
        // A reconnect: the catch-up hands it the revocation again (not acknowledged yet).
        await socket.next('welcome');
        await socket.next('revocation', (m) => m.epoch === epoch);
      }
      socket.send(bogus);
      const error = await socket.next('error');
      assert.equal(error.code, 'REVOCATION_ACK_EPOCH_UNKNOWN', bogus);
      assert.equal(error.fatal, true, bogus);
      assert.equal((await socket.closed).code, CLOSE_CODES.SCHEMA_INVALID, bogus);
      socket = await console.connect({ revocationEpoch: known ?? 0 });
    }
    // Nothing recorded: the row (written at the end of the fan-out's wait) unacknowledged, the console's epoch unmoved.
    const before = (await t.admin.ok('GET', `/v1/admin/revocations/${epoch}/deliveries`)) as Json;
    assert.deepEqual(
      (before.deliveries as { consoleId: string; ackedAt: number | null }[]).map((d) => [d.consoleId, d.ackedAt]),
      [[console.id, null]],
    );
    assert.equal((await t.backend.store.consoles.get(console.id))?.revocationEpoch, known);
    // On its new socket, once handed the revocation again, its acknowledgement of that epoch is recorded.
    await socket.next('revocation', (m) => m.epoch === epoch);
    socket.send({ type: 'ack', of: 'revocation', epoch });
    const seen = await deliveriesOnceAcknowledged(epoch, 1);
    assert.notEqual((seen.deliveries as { ackedAt: number | null }[])[0]?.ackedAt ?? null, null);
    assert.equal((await t.backend.store.consoles.get(console.id))?.revocationEpoch, epoch);
    await socket.close();
  });

  it('a revocation pushed while a console’s hello is being answered reaches it after its catch-up, never before it', async () => {
    // Before, the push went out at once: the console's epoch rose above what its catch-up had yet to bring, so a
    // console that dropped in between asked next time only for what followed, and never got the rest.
    const { consoles, epoch: first } = await operatorRevokedWith(1, 'Lou Before');
    const { console, socket: old } = consoles[0] as { console: TestConsole; socket: ConsoleSocket };
    const { operatorId: later } = await enrolOperator(t.admin, console, { displayName: 'Max Later' });
    await old.close();
    // Its next hello's catch-up waits at a gate (the hub's own read, unchanged) while another operator is revoked.
    const hub = t.backend.revocations;
    const catchUp = hub.catchUp.bind(hub);
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let arrived: () => void = () => undefined;
    const atGate = new Promise<void>((resolve) => (arrived = resolve));
    hub.catchUp = async (...args) => {
      arrived();
      await gate;
      return catchUp(...args);
    };
    try {
      const socket = await console.connect({ revocationEpoch: first - 1 });
      await socket.next('welcome');
      await atGate;
      const revoked = (await t.admin.ok('POST', `/v1/admin/operators/${later}/revoke`, { reason: 'left' })) as Json;
      open();
      const live = await socket.next('revocation', (m) => m.items.length === 1 && m.items[0]?.targetId === later);
      const [caughtUp] = socket.received.filter((m) => m.type === 'revocation');
      assert.ok(caughtUp?.type === 'revocation' && caughtUp !== live, 'the catch-up came first');
      assert.deepEqual(
        caughtUp.items.map((i) => i.epoch),
        [first, revoked.epoch as number],
        'the catch-up (read after the commit) has both',
      );
      assert.equal(live.epoch, revoked.epoch);
      await socket.close();
    } finally {
      hub.catchUp = catchUp;
      open();
    }
  });

  it('a console away during the fan-out gets the revocation when it reconnects, and its acknowledgement is recorded', async () => {
    const { console, socket } = (await connected(1))[0] as { console: TestConsole; socket: ConsoleSocket };
    const known = await t.backend.revocations.currentEpoch();
    await socket.close();
    const { operatorId } = await enrolOperator(t.admin, console, { displayName: 'Jo Away' });
    const result = (await t.admin.ok('POST', `/v1/admin/operators/${operatorId}/revoke`, { reason: 'left' })) as Json;
    const epoch = result.epoch as number;
    const again = await console.connect({ revocationEpoch: known });
    const catchUp = await again.next('revocation');
    assert.ok(catchUp.epoch >= epoch);
    assert.ok(catchUp.items.some((i) => i.kind === 'operator' && i.targetId === operatorId));
    again.send({ type: 'ack', of: 'revocation', epoch: catchUp.epoch });
    const seen = await deliveriesOnceAcknowledged(epoch, 1);
    const row = (seen.deliveries as { consoleId: string; ackedAt: number | null }[]).find(
      (d) => d.consoleId === console.id,
    );
    assert.ok(row !== undefined && row.ackedAt !== null, 'its delivery is recorded as acknowledged');
    await again.close();
  });
});
