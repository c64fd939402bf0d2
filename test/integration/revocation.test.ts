import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { PINGS_PER_TURN } from '../../backend/ws/console-channel.js';
import { CLOSE_CODES } from '../../shared/protocol.js';
import { DEFAULT_POLICY } from '../../shared/policy.js';
import { startTestBackend, TestConsole, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';

describe('revocation and commands reach consoles over the WebSocket', () => {
  let t: TestBackend;
  before(async () => {
    t = await startTestBackend();
  });
  after(() => t.stop());

  it('pushes a session revocation to the console holding it and records its acknowledgement', async () => {
    const console = await TestConsole.enrol(t.url, t.admin);
    const { authenticator } = await enrolOperator(t.admin, console);
    const session = ((await signIn(console, authenticator)).body as Json).session;
    const socket = await console.connect();
    const welcome = await socket.next('welcome');
    assert.equal(welcome.consoleId, console.id);
    const caughtUp = socket.received.find((m) => m.type === 'revocation');
    const epochBefore = caughtUp?.type === 'revocation' ? caughtUp.epoch : 0;

    const revoked = (await t.admin.ok('POST', `/v1/admin/sessions/${session.id as string}/revoke`, {
      reason: 'card reported stolen',
    })) as Json;
    assert.deepEqual(revoked.sessionsRevoked, [session.id]);
    const message = await socket.next('revocation', (m) => m.epoch > epochBefore);
    assert.deepEqual(
      message.items.map((i) => [i.kind, i.targetId, i.reason]),
      [['session', session.id, 'card reported stolen']],
    );
    socket.send({ type: 'ack', of: 'revocation', epoch: message.epoch });
    await console.roundTrip(socket); // the backend has handled the ack

    const deliveries = (await t.admin.ok('GET', `/v1/admin/revocations/${message.epoch}/deliveries`)) as Json;
    assert.equal(deliveries.acknowledged, 1);
    assert.equal(deliveries.deliveries[0].consoleId, console.id);

    // The revoked session cannot be stepped up or ended any more.
    const stepUp = await console.request('POST', `/v1/sessions/${session.id as string}/step-up/options`, {
      action: 'payment.approve',
    });
    assert.equal(stepUp.status, 409);
    assert.equal(stepUp.body.error.code, 'SESSION_NOT_ACTIVE');
    const events = (await t.admin.ok(
      'GET',
      `/v1/admin/events?session=${session.id as string}&type=session-revoked`,
    )) as Json;
    assert.equal(events.events.length, 1);
    assert.equal(events.events[0].detail.reason_admin, 'card reported stolen');
    await socket.close();
  });

  it('pushes an operator revocation to every connected console and refuses that operator afterwards', async () => {
    const a = await TestConsole.enrol(t.url, t.admin);
    const b = await TestConsole.enrol(t.url, t.admin, 'contact-centre');
    const { operatorId, authenticator } = await enrolOperator(t.admin, a, { displayName: 'Fay Leaver' });
    await signIn(a, authenticator);
    const [sa, sb] = await Promise.all([a.connect(), b.connect()]);
    await Promise.all([sa.next('welcome'), sb.next('welcome')]);
    const result = (await t.admin.ok('POST', `/v1/admin/operators/${operatorId}/revoke`, {
      reason: 'left the bank',
    })) as Json;
    assert.ok(result.pushedTo >= 2);
    for (const socket of [sa, sb]) {
      const m = await socket.next('revocation', (r) =>
        r.items.some((i) => i.kind === 'operator' && i.targetId === operatorId),
      );
      assert.equal(m.items[0]?.reason, 'left the bank');
    }
    const refused = await signIn(a, authenticator);
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, 'OPERATOR_REVOKED');
    await Promise.all([sa.close(), sb.close()]);
  });

  it('catches a console up on revocations it missed while disconnected', async () => {
    const console = await TestConsole.enrol(t.url, t.admin);
    const { authenticator, credentialId } = await enrolOperator(t.admin, console, { displayName: 'Gil Away' });
    await signIn(console, authenticator);
    const first = await console.connect();
    await first.next('welcome');
    const known = (await t.admin.ok('GET', '/v1/admin/revocations')) as Json;
    await first.close();

    await t.admin.ok('POST', `/v1/admin/credentials/${credentialId}/revoke`, { reason: 'key lost' });
    const again = await console.connect({ revocationEpoch: known.epoch });
    const catchUp = await again.next('revocation');
    assert.ok(catchUp.epoch > known.epoch);
    assert.ok(
      catchUp.items.some((i) => i.kind === 'credential' && i.targetId === credentialId && i.reason === 'key lost'),
    );
    await again.close();
  });

  it('revokes a console: its socket closes with 4003 and it cannot reconnect or call the API', async () => {
    const console = await TestConsole.enrol(t.url, t.admin);
    const socket = await console.connect();
    await socket.next('welcome');
    await t.admin.ok('POST', `/v1/admin/consoles/${console.id}/revoke`, { reason: 'stolen kiosk' });
    const closed = await socket.closed;
    assert.equal(closed.code, CLOSE_CODES.CONSOLE_REVOKED);
    await assert.rejects(
      console.connect(),
      (error: Error & { status?: number }) => error.status === 403 && /CONSOLE_REVOKED/.test(error.message),
    );
    const call = await console.request('POST', '/v1/sign-in/options', {});
    assert.equal(call.status, 403);
    assert.equal(call.body.error.code, 'CONSOLE_REVOKED');
  });

  it('sends an end-session command, and again after a reconnect until it is acknowledged', async () => {
    const console = await TestConsole.enrol(t.url, t.admin);
    const { authenticator } = await enrolOperator(t.admin, console, { displayName: 'Hal Shift' });
    const session = ((await signIn(console, authenticator)).body as Json).session;
    const socket = await console.connect();
    await socket.next('welcome');
    await t.admin.ok('POST', `/v1/admin/sessions/${session.id as string}/end`, { reason: 'shift over' });
    const command = await socket.next('command');
    assert.equal(command.sessionId, session.id);
    await socket.close();

    const again = await console.connect();
    const resent = await again.next('command');
    assert.equal(resent.commandId, command.commandId);
    again.send({ type: 'ack', of: 'command', commandId: command.commandId });
    await console.roundTrip(again); // the backend has handled the ack
    await again.close();
    const third = await console.connect();
    await third.next('welcome');
    // Pending commands follow the welcome at once; the ack of a later batch comes after them.
    await console.roundTrip(third);
    assert.ok(third.received.some((m) => m.type === 'events-ack'));
    assert.deepEqual(
      third.received.filter((m) => m.type === 'command'),
      [],
      'an acknowledged command is not sent again',
    );
    await third.close();
  });

  it('pushes a newly published policy to connected consoles', async () => {
    const console = await TestConsole.enrol(t.url, t.admin);
    const socket = await console.connect();
    const initial = await socket.next('policy');
    const policy = structuredClone(DEFAULT_POLICY);
    policy.channels['branch-kiosk']!.idleLockSeconds = 60;
    await t.admin.ok('POST', '/v1/admin/policy', { baseVersion: initial.version, policy });
    const pushed = await socket.next('policy', (m) => m.version === initial.version + 1);
    assert.equal(pushed.policy.channels['branch-kiosk']?.idleLockSeconds, 60);
    await socket.close();
  });

  it('keeps an unacknowledged end-session command across a backend restart', async () => {
    const own = await startTestBackend({ dataDir: mkdtempSync(join(tmpdir(), 'baton-restart-')) });
    const console = await TestConsole.enrol(own.url, own.admin);
    const { authenticator } = await enrolOperator(own.admin, console, { displayName: 'Ivy Restart' });
    const session = ((await signIn(console, authenticator)).body as Json).session;
    await own.admin.ok('POST', `/v1/admin/sessions/${session.id as string}/end`, { reason: 'end of shift' });
    await own.stop();

    const restarted = await startTestBackend({ dataDir: own.dataDir }, { adminToken: own.admin.token });
    try {
      const back = new TestConsole(restarted.url, console.key, console.id);
      const socket = await back.connect();
      const command = await socket.next('command');
      assert.equal(command.sessionId, session.id);
      assert.equal(command.reason, 'ended-by-admin', 'a code, never the admin’s words');
      await socket.close();
    } finally {
      await restarted.stop();
      rmSync(own.dataDir, { recursive: true, force: true });
    }
  });

  it('closes a socket that never says hello with 4006 HELLO_REQUIRED', async (t) => {
    const quick = await startTestBackend({ helloTimeoutSeconds: 10 });
    try {
      const console = await TestConsole.enrol(quick.url, quick.admin);
      // The hello deadline runs on a fake clock from the upgrade on: ten seconds take no time.
      t.mock.timers.enable({ apis: ['setTimeout'] });
      const socket = await console.connect({ hello: false });
      t.mock.timers.tick(10_000);
      const error = await socket.next('error');
      assert.equal(error.code, 'HELLO_REQUIRED');
      assert.equal((await socket.closed).code, CLOSE_CODES.HELLO_REQUIRED);
    } finally {
      t.mock.timers.reset();
      await quick.stop();
    }
  });

  it('terminates a console that stops answering heartbeats, after one missed ping and not before', async (t) => {
    // The channel's heartbeat interval runs on a fake clock: two beats take no time.
    t.mock.timers.enable({ apis: ['setInterval'] });
    const quick = await startTestBackend({ heartbeatSeconds: 15 });
    try {
      const console = await TestConsole.enrol(quick.url, quick.admin);
      const socket = await console.connect();
      await socket.next('welcome');
      const online = async () =>
        ((await quick.admin.ok('GET', '/v1/admin/consoles')) as Json).consoles.find((c: Json) => c.id === console.id)
          .online as boolean;
      assert.equal(await online(), true);
      // The peer goes silent: it reads nothing more, so it never answers a ping.
      (socket.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      t.mock.timers.tick(15_000); // first beat: a ping, unanswered
      assert.equal(await online(), true, 'one unanswered ping is allowed');
      t.mock.timers.tick(15_000); // second beat: still no pong, the socket is terminated
      // The admin request is read after the terminated socket's close has been handled.
      assert.equal(await online(), false, 'a silent console is dropped');
      socket.ws.terminate();
    } finally {
      t.mock.timers.reset();
      await quick.stop();
    }
  });

  it('pings hundreds of consoles a slice per turn of the event loop: other work runs between slices, every console is pinged and none is dropped', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    const quick = await startTestBackend({ heartbeatSeconds: 15 });
    // The backend runs in this process: its pings are counted as it sends them.
    const pings = t.mock.method(WebSocket.prototype, 'ping');
    const sockets: WebSocket[] = [];
    try {
      // More than two slices' worth, so that the heartbeat needs at least three turns of the event loop.
      const COUNT = 2 * PINGS_PER_TURN + 50;
      const ready = Array.from({ length: COUNT }, () => undefined);
      for (let i = 0; i < ready.length; i += 10) {
        await Promise.all(
          ready.slice(i, i + 10).map(async () => {
            const console = await TestConsole.enrol(quick.url, quick.admin);
            const socket = await console.connect();
            await socket.next('welcome');
            sockets.push(socket.ws);
          }),
        );
      }
      const pinged = new Set<WebSocket>();
      for (const ws of sockets) ws.on('ping', () => pinged.add(ws));
      const online = async () =>
        ((await quick.admin.ok('GET', '/v1/admin/consoles')) as Json).consoles.filter((c: Json) => c.online === true)
          .length as number;
      const allPinged = async () => {
        const deadline = Date.now() + 10_000;
        while (pinged.size < COUNT) {
          if (Date.now() > deadline) assert.fail(`only ${pinged.size} of ${COUNT} consoles were pinged`);
          await new Promise((resolve) => setImmediate(resolve));
        }
      };

      const before = pings.mock.callCount();
      t.mock.timers.tick(15_000); // a heartbeat starts
      const inTimer = pings.mock.callCount() - before;
      // Work queued now (a revocation arriving, say) runs before the heartbeat has pinged everyone.
      const beforeOtherWork = await new Promise<number>((resolve) =>
        setImmediate(() => resolve(pings.mock.callCount() - before)),
      );
      // Nothing is judged before the loop has read its sockets (heartbeat-freeze.test.ts says why).
      assert.equal(inTimer, 0, 'the heartbeat pings nobody in the timer itself');
      assert.ok(beforeOtherWork > 0, 'the heartbeat pinged a first slice in the next turn');
      assert.ok(
        beforeOtherWork < COUNT,
        `other work ran after ${beforeOtherWork} of ${COUNT} pings, not after all of them`,
      );
      await allPinged();
      assert.equal(pings.mock.callCount() - before, COUNT, 'each console pinged once');
      // Every console answered: the next heartbeat drops none of them.
      pinged.clear();
      t.mock.timers.tick(15_000);
      await allPinged();
      assert.equal(await online(), COUNT);
    } finally {
      for (const ws of sockets) ws.terminate();
      t.mock.timers.reset();
      await quick.stop();
    }
  });
});
