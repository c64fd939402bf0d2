import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { KeyEncryptionKey, keyEncryptionKeyPath } from '../../crypto/key-encryption-key.js';
import { EventLog } from '../../services/event-log.js';
import type { Store } from '../../store/repositories.js';
import { openSqliteStore } from '../../store/sqlite-store.js';
import { SsfTransmitterConfigSchema } from './config.js';
import { TransmitterKeys } from './keys.js';
import { TransmitterRepository } from './repository.js';
import { POLL_METHOD, SsfTransmitter } from './transmitter.js';

const EXPIRED = 'urn:baton:event:session-expired';

/**
 * The fan-out after a unit of work that failed for another reason than the lease (the store unreachable; on
 * PostgreSQL, a unit ended by the server after idling past the lease, see `fanoutUnit`): nothing of it was
 * committed, and the events it was mapping must still become SETs. Before, the batch left `pending` with the
 * failure and the next batch's unit wrote the cursor past it: those events never became SETs.
 */
describe('Shared Signals fan-out: a failed unit of work skips no event', () => {
  let dir: string;
  let store: Store;
  let events: EventLog;
  let transmitter: SsfTransmitter;
  const enqueue = Object.getOwnPropertyDescriptor(TransmitterRepository.prototype, 'enqueue');
  const logs: { code?: string }[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-ssf-fanout-'));
    KeyEncryptionKey.create(keyEncryptionKeyPath(dir, {}));
    store = openSqliteStore({ dataDir: dir, durability: 'normal' });
    const logger = pino(
      { level: 'info' },
      {
        write: (line: string) => {
          logs.push(JSON.parse(line) as { code?: string });
        },
      },
    );
    events = new EventLog(store, Date.now, logger);
    const config = SsfTransmitterConfigSchema.parse({ issuer: 'https://baton.test' });
    const keys = await TransmitterKeys.open({
      store,
      dataDir: dir,
      kekFile: keyEncryptionKeyPath(dir, {}),
      clock: Date.now,
      algorithm: config.signingAlgorithm,
      logger,
    });
    transmitter = new SsfTransmitter({
      store,
      events,
      keys,
      config,
      clock: Date.now,
      logger,
      nodeId: 'node-1',
      issuer: () => 'https://baton.test',
    });
    await transmitter.start();
  });

  after(async () => {
    if (enqueue !== undefined) Object.defineProperty(TransmitterRepository.prototype, 'enqueue', enqueue);
    await transmitter?.stop();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('maps the failed batch again from the stored cursor, each event once', async () => {
    const { receiver } = await transmitter.issueReceiver({ name: 'Core banking', scopes: ['ssf.manage'] }, 'admin');
    const stream = await transmitter.createStream(receiver, {
      delivery: { method: POLL_METHOD },
      events_requested: [EXPIRED],
    });
    const streamId = stream.stream_id as string;
    const expire = async (console: string) =>
      (await events.record({ type: 'session-expired', subject: { console }, outcome: 'info', reasons: ['idle'] })).id;

    const first = await expire('c1');
    await transmitter.settled();
    // The next fan-out unit fails once (its insert of the SETs), as a unit whose connection the server ended does.
    let failures = 0;
    type Enqueue = TransmitterRepository['enqueue'];
    const original = enqueue?.value as (
      this: TransmitterRepository,
      ...args: Parameters<Enqueue>
    ) => ReturnType<Enqueue>;
    TransmitterRepository.prototype.enqueue = function (this: TransmitterRepository, ...args) {
      if (failures === 0) {
        failures++;
        return Promise.reject(new Error('Connection terminated unexpectedly'));
      }
      return original.apply(this, args);
    };
    const failed = await expire('c2');
    await transmitter.settled();
    assert.equal(failures, 1, 'the unit mapping the second event failed');
    assert.ok(logs.some((l) => l.code === 'SSF_FANOUT_FAILED'));
    const later = await expire('c3');
    await transmitter.settled();

    // Within a few sweeps (1 s each) every event is a SET, once.
    const got: string[] = [];
    const deadline = Date.now() + 10_000;
    while (got.length < 3 && Date.now() < deadline) {
      const answer = await transmitter.poll(receiver, streamId, { maxEvents: 100, returnImmediately: true });
      const sets = Object.entries(answer.sets as Record<string, string>);
      for (const [, jwt] of sets) {
        const claims = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString()) as {
          events: Record<string, { baton_event_id: string }>;
        };
        got.push(claims.events[EXPIRED]?.baton_event_id ?? '');
      }
      await transmitter.poll(receiver, streamId, { ack: sets.map(([jti]) => jti), maxEvents: 0 });
      if (got.length < 3) await sleep(100);
    }
    assert.deepEqual(got, [first, failed, later]);
  });
});
