import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import { BatonError } from '../../shared/errors.js';
import type { AssuranceEvent, EventDraft } from '../../shared/events.js';
import { MAX_EVENTS_PER_BATCH, MAX_MESSAGE_BYTES } from '../../shared/protocol.js';
import { silentLogger } from './agent-types.js';
import { MemoryOutbox } from '../../test/helpers/fake-agent-context.js';
import { MAX_BATCHES_IN_FLIGHT, OutboxUplink, eventsFrame } from './outbox-uplink.js';

const draft = (n: number, pad = 0): EventDraft => ({
  type: 'policy-decision',
  subject: { console: 'con_1' },
  outcome: 'allow',
  reasons: [`r${n}${'x'.repeat(pad)}`],
});

/** The seq numbers in each frame sent. */
function frames(sent: string[]): number[][] {
  return sent.map((text) => (JSON.parse(text) as { events: AssuranceEvent[] }).events.map((e) => e.seq));
}

describe('OutboxUplink', () => {
  let outbox: MemoryOutbox;
  let sent: string[];
  let deferred: (() => void)[];
  let errors: unknown[];
  let connected: boolean;
  let uplink: OutboxUplink;

  beforeEach(() => {
    outbox = new MemoryOutbox();
    sent = [];
    deferred = [];
    errors = [];
    connected = true;
    uplink = new OutboxUplink({
      outbox,
      send: (text) => connected && sent.push(text) > 0,
      consoleId: 'con_1',
      logger: silentLogger,
      onJournalError: (error) => errors.push(error),
      defer: (fn) => deferred.push(fn),
    });
  });

  const runDeferred = () => deferred.splice(0).forEach((fn) => fn());

  test('sends nothing before the welcome, then the backlog in one frame after what the backend holds', async () => {
    for (let i = 1; i <= 5; i++) await uplink.record(draft(i));
    runDeferred();
    assert.equal(sent.length, 0);
    assert.equal(uplink.welcomed(2, 'h2'), 5, 'the backlog to flush ends at the last event');
    assert.equal(outbox.ackedSeq, 2);
    uplink.pump();
    assert.deepEqual(frames(sent), [[3, 4, 5]]);
  });

  test('a burst of records is sent once the turn is over, in as few frames as fit', async () => {
    uplink.welcomed(0, 'genesis');
    await Promise.all([1, 2, 3].map((i) => uplink.record(draft(i))));
    assert.equal(deferred.length, 1, 'one pump scheduled for the burst');
    runDeferred();
    assert.deepEqual(frames(sent), [[1, 2, 3]]);
  });

  test(`keeps at most ${MAX_BATCHES_IN_FLIGHT} batches unacknowledged and sends the next as each is acknowledged`, async () => {
    const total = MAX_EVENTS_PER_BATCH * (MAX_BATCHES_IN_FLIGHT + 2);
    for (let i = 1; i <= total; i++) await uplink.record(draft(i));
    uplink.welcomed(0, 'genesis');
    uplink.pump();
    assert.equal(sent.length, MAX_BATCHES_IN_FLIGHT);
    assert.equal(uplink.acknowledged(MAX_EVENTS_PER_BATCH, []), true);
    assert.equal(sent.length, MAX_BATCHES_IN_FLIGHT + 1);
    assert.equal(outbox.ackedSeq, MAX_EVENTS_PER_BATCH);
    assert.equal(frames(sent).at(-1)?.[0], MAX_EVENTS_PER_BATCH * MAX_BATCHES_IN_FLIGHT + 1);
  });

  test('an acknowledgement past what was sent drops only what was sent', async () => {
    for (let i = 1; i <= 3; i++) await uplink.record(draft(i));
    uplink.welcomed(0, 'genesis');
    connected = false;
    uplink.pump();
    connected = true;
    await uplink.record(draft(4));
    assert.equal(uplink.acknowledged(1_000, []), true);
    assert.equal(outbox.ackedSeq, 0, 'nothing was sent, so nothing may be dropped');
    uplink.pump();
    uplink.acknowledged(1_000, []);
    assert.equal(outbox.ackedSeq, 4);
  });

  test('an acknowledgement before the welcome or after the close is ignored', async () => {
    await uplink.record(draft(1));
    assert.equal(uplink.acknowledged(1, []), false);
    uplink.welcomed(0, 'genesis');
    uplink.pump();
    uplink.closed();
    assert.equal(uplink.acknowledged(1, []), false);
    assert.equal(outbox.ackedSeq, 0);
  });

  test('after a reconnect, what was in flight and not acknowledged is sent again', async () => {
    for (let i = 1; i <= 3; i++) await uplink.record(draft(i));
    uplink.welcomed(0, 'genesis');
    uplink.pump();
    uplink.closed();
    await uplink.record(draft(4));
    runDeferred();
    assert.equal(sent.length, 1, 'nothing is sent while closed');
    uplink.welcomed(1, 'h1');
    uplink.pump();
    assert.deepEqual(frames(sent), [
      [1, 2, 3],
      [2, 3, 4],
    ]);
  });

  test('a journal lost while the key was kept continues from the backend’s head', async () => {
    assert.equal(uplink.welcomed(40, 'h40'), 40);
    await uplink.record(draft(1));
    runDeferred();
    assert.deepEqual(frames(sent), [[41]]);
  });

  test('reports outbox-near-full once per filling, and again only after draining below half', async () => {
    outbox.max = 10;
    for (let i = 1; i <= 9; i++) await uplink.record(draft(i));
    await uplink.record(draft(10));
    const reports = () => outbox.emitted.filter((d) => d.type === 'outbox-near-full');
    assert.equal(reports().length, 1);
    assert.deepEqual(reports()[0]?.subject, { console: 'con_1' });
    uplink.welcomed(3, 'h3');
    uplink.acknowledged(3, []);
    assert.equal(reports().length, 1, 'still above half: not re-armed');
    uplink.welcomed(9, 'h9');
    uplink.acknowledged(9, []);
    for (let i = 1; i <= 8; i++) await uplink.record(draft(i));
    assert.equal(reports().length, 2);
  });

  test('an event the journal refuses is shown and counted, and recording never rejects', async () => {
    outbox.failing = new BatonError('OUTBOX_FULL', 'full');
    await uplink.record(draft(1));
    assert.equal(uplink.journalFailures, 1);
    assert.equal((errors[0] as BatonError).code, 'OUTBOX_FULL');
  });
});

describe('eventsFrame', () => {
  test('stops before the frame would exceed the largest message the backend accepts', () => {
    const outbox = new MemoryOutbox();
    const pad = Math.floor(MAX_MESSAGE_BYTES / 3);
    for (let i = 1; i <= 4; i++) void outbox.emit(draft(i, pad));
    const frame = eventsFrame(outbox, outbox.pendingAfter(0, 10));
    assert.equal(frame?.lastSeq, 2);
    assert.ok(Buffer.byteLength(frame?.text ?? '') <= MAX_MESSAGE_BYTES);
    assert.deepEqual(frames([frame?.text ?? '']), [[1, 2]]);
  });

  test('always sends at least one event, and nothing for an empty batch', () => {
    const outbox = new MemoryOutbox();
    void outbox.emit(draft(1, MAX_MESSAGE_BYTES));
    assert.equal(eventsFrame(outbox, outbox.pendingAfter(0, 10))?.lastSeq, 1);
    assert.equal(eventsFrame(outbox, []), undefined);
  });
});
