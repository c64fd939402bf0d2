import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FakeClock } from '../../test/helpers/fake-clock.js';
import { SYNC_WAIT_MS, SyncMachine, caughtUp, type SyncProgress, type SyncTarget } from './sync-machine.js';

const TARGET: SyncTarget = { policyVersion: 3, policyHash: 'h3', revocationEpoch: 7, flushTo: 20 };
const DONE: SyncProgress = { policyVersion: 3, policyHash: 'h3', revocationEpoch: 7, ackedSeq: 20 };

function welcomedMachine(clock = new FakeClock()): SyncMachine {
  const machine = new SyncMachine(clock);
  machine.connect();
  machine.opened();
  machine.welcomed(TARGET);
  return machine;
}

describe('SyncMachine', () => {
  test('a first connection goes connecting → syncing → online only once the welcome’s target is met', () => {
    const machine = new SyncMachine(new FakeClock());
    assert.equal(machine.connection, 'stopped');
    machine.connect();
    assert.equal(machine.connection, 'connecting');
    machine.opened();
    assert.equal(machine.connection, 'syncing');
    assert.equal(machine.checkCaughtUp(DONE), false, 'nothing counts before the welcome');
    assert.deepEqual(machine.welcomed(TARGET), { reason: 'started', offlineMs: undefined });
    assert.equal(machine.checkCaughtUp({ ...DONE, ackedSeq: 19 }), false, 'backlog not flushed');
    assert.equal(machine.connection, 'syncing');
    assert.equal(machine.checkCaughtUp(DONE), true);
    assert.equal(machine.connection, 'online');
    assert.equal(machine.checkCaughtUp(DONE), false, 'the transition happens once');
  });

  test('caught up needs revocations applied, the announced policy held and the backlog acknowledged', () => {
    assert.equal(caughtUp(TARGET, DONE), true);
    assert.equal(caughtUp(TARGET, { ...DONE, revocationEpoch: 6 }), false);
    assert.equal(caughtUp(TARGET, { ...DONE, policyVersion: 2 }), false);
    assert.equal(caughtUp(TARGET, { ...DONE, policyHash: 'edited-in-place' }), false);
    assert.equal(caughtUp({ ...TARGET, policyVersion: 0 }, { ...DONE, policyVersion: 0, policyHash: undefined }), true);
    assert.equal(caughtUp(TARGET, { ...DONE, revocationEpoch: 8, ackedSeq: 25 }), true);
  });

  test('an outage is journaled once, however many redials fail, and the welcome reports its whole length', async () => {
    const clock = new FakeClock();
    const machine = welcomedMachine(clock);
    machine.checkCaughtUp(DONE);
    assert.deepEqual(machine.closed(), { journal: true });
    assert.equal(machine.connection, 'offline');
    await clock.advance(1_000);
    assert.equal(machine.closed(), undefined, 'a failed redial is the same outage');
    machine.opened();
    await clock.advance(500);
    assert.deepEqual(machine.closed(), { journal: true }, 'a socket that opened and closed again is on the record');
    await clock.advance(2_000);
    machine.opened();
    assert.deepEqual(machine.welcomed(TARGET), { reason: 'reconnected', offlineMs: 3_500 });
  });

  test('an outage after the welcome but before catching up starts a new offline period', async () => {
    const clock = new FakeClock();
    const machine = welcomedMachine(clock);
    machine.closed();
    await clock.advance(4_000);
    machine.opened();
    assert.deepEqual(machine.welcomed(TARGET), { reason: 'reconnected', offlineMs: 4_000 });
  });

  test('a console that never reached the backend journals its first failure, and no agent-online until welcomed', () => {
    const machine = new SyncMachine(new FakeClock());
    machine.connect();
    assert.deepEqual(machine.closed(), { journal: true });
    machine.opened();
    assert.deepEqual(machine.welcomed(TARGET), { reason: 'started', offlineMs: 0 });
  });

  test('a second welcome on a live connection needs no agent-online and keeps the console online', () => {
    const machine = welcomedMachine();
    machine.checkCaughtUp(DONE);
    assert.equal(machine.welcomed(TARGET), undefined);
    assert.equal(machine.connection, 'online');
  });

  test('a ceremony waiting for the sync is released as soon as the console is online', async () => {
    const clock = new FakeClock();
    const machine = welcomedMachine(clock);
    const settled = machine.settled();
    machine.checkCaughtUp(DONE);
    assert.equal(await settled, 'online');
    assert.equal(clock.pendingTimers, 0, 'its timer is cancelled');
  });

  test('a ceremony waiting for the sync is released when the connection drops, and sees offline', async () => {
    const machine = welcomedMachine();
    const settled = machine.settled();
    machine.closed();
    assert.equal(await settled, 'offline');
  });

  test('a ceremony waits at most SYNC_WAIT_MS and then sees the console still syncing', async () => {
    const clock = new FakeClock();
    const machine = welcomedMachine(clock);
    let result: string | undefined;
    void machine.settled().then((connection) => (result = connection));
    await clock.advance(SYNC_WAIT_MS - 1);
    assert.equal(result, undefined);
    await clock.advance(1);
    assert.equal(result, 'syncing');
  });

  test('stopping releases waiters and a later connect dials again', async () => {
    const machine = new SyncMachine(new FakeClock());
    machine.connect();
    const settled = machine.settled();
    machine.stop();
    assert.equal(await settled, 'stopped');
    assert.equal(await machine.settled(), 'stopped', 'stopped does not wait');
    machine.connect();
    assert.equal(machine.connection, 'connecting');
  });
});
