import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestBackend, TestConsole, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';

/**
 * Many consoles reconnecting at once (a failover): the backend reads their records, chain heads and
 * pending commands in groups (backend/store/grouped-reads.ts). Each console must still be welcomed
 * with its own head, and get its own end-session commands and nobody else's.
 */
describe('a burst of console hellos', () => {
  let t: TestBackend;
  before(async () => {
    t = await startTestBackend();
  });
  after(() => t.stop());

  it('welcomes each console of a burst with its own chain head and sends it only its own pending commands', async () => {
    const consoles: TestConsole[] = [];
    for (let i = 0; i < 24; i++) consoles.push(await TestConsole.enrol(t.url, t.admin));
    // Different heads: console i has stored i % 4 + 1 events.
    for (const [i, console] of consoles.entries()) {
      const socket = await console.connect();
      await socket.next('welcome');
      for (let n = 0; n <= i % 4; n++) await console.roundTrip(socket);
      await socket.close();
    }
    // Sessions on every third console, ended by an admin while the console is away: a pending command each.
    const { authenticator } = await enrolOperator(t.admin, consoles[0]!, { displayName: 'Burst Teller' });
    const ended = new Map<string, string>();
    for (const console of consoles.filter((_, i) => i % 3 === 0)) {
      const signedIn = await signIn(console, authenticator);
      assert.equal(signedIn.status, 200, JSON.stringify(signedIn.body));
      const session = (signedIn.body as Json).session as Json;
      await t.admin.ok('POST', `/v1/admin/sessions/${session.id as string}/end`, { reason: 'shift over' });
      ended.set(console.id, session.id as string);
    }

    // All at once.
    const sockets = await Promise.all(consoles.map((console) => console.connect()));
    const welcomes = await Promise.all(sockets.map((socket) => socket.next('welcome')));
    for (const [i, console] of consoles.entries()) {
      assert.equal(welcomes[i]!.consoleId, console.id);
      assert.equal(welcomes[i]!.ackedSeq, (i % 4) + 1, `console ${i}: its own stored head`);
      assert.equal(welcomes[i]!.lastHash, console.lastHash, `console ${i}: its own chain's hash`);
    }
    // The socket is ordered: once a batch sent now is acknowledged, every command of the hello has arrived.
    await Promise.all(consoles.map((console, i) => console.roundTrip(sockets[i]!)));
    for (const [i, console] of consoles.entries()) {
      const commands = sockets[i]!.received.filter((m) => m.type === 'command');
      const expected = ended.get(console.id);
      // Distinct: on PostgreSQL a periodic resync may send an unacknowledged command again (as the agent expects).
      assert.deepEqual(
        [...new Set(commands.map((c) => (c.type === 'command' ? c.sessionId : undefined)))],
        expected === undefined ? [] : [expected],
        `console ${i}: its own pending commands only`,
      );
    }
    await Promise.all(sockets.map((socket) => socket.close()));
  });
});
