import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { DEFAULT_POLICY, type PolicyVersion } from '../../shared/policy.js';
import type { Store } from '../store/repositories.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import { EventLog } from './event-log.js';
import { InProcessBus } from '../cluster/bus.js';
import { PolicyService } from './policy-service.js';

const logger = pino({ level: 'silent' });
const clock = () => Date.UTC(2026, 0, 1);

describe('PolicyService on the async store', () => {
  let dir: string;
  let store: Store;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'baton-policy-'));
    store = openSqliteStore({ dataDir: dir, durability: 'normal' });
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('publishes the default once when nodes start together on an empty database', async () => {
    const [a, b] = await Promise.all([
      PolicyService.open(
        store,
        new EventLog(store, clock, logger, new InProcessBus({ nodeId: 'node-test', logger })),
        clock,
        logger,
      ),
      PolicyService.open(
        store,
        new EventLog(store, clock, logger, new InProcessBus({ nodeId: 'node-test', logger })),
        clock,
        logger,
      ),
    ]);
    assert.equal(a.version.version, 1);
    assert.equal(b.version.version, 1);
    assert.equal((await store.policies.list()).length, 1);
    const changes = await new EventLog(store, clock, logger, new InProcessBus({ nodeId: 'node-test', logger })).query({
      type: 'policy-changed',
      limit: 10,
    });
    assert.equal(changes.length, 1);
  });

  it('moves another node to a version published elsewhere on refresh, tells its listeners once, never moves back', async () => {
    const here = await PolicyService.open(
      store,
      new EventLog(store, clock, logger, new InProcessBus({ nodeId: 'node-test', logger })),
      clock,
      logger,
    );
    // The other node's store answers `latest` with an older version once asked to (a stale read).
    const stale: { version?: PolicyVersion } = {};
    const policies = store.policies;
    const view: Store = {
      ...store,
      policies: {
        latest: () => (stale.version === undefined ? policies.latest() : Promise.resolve(stale.version)),
        get: (version) => policies.get(version),
        list: () => policies.list(),
        insert: (version) => policies.insert(version),
      },
    };
    const there = await PolicyService.open(view, new EventLog(view, clock, logger), clock, logger);
    const heard: number[] = [];
    there.onPublish((v) => heard.push(v.version));
    const published = await here.publish(DEFAULT_POLICY, here.version.version, 'admin:a');
    assert.equal(there.version.version, published.version - 1, 'no change without a refresh');
    await there.refresh();
    await there.refresh();
    assert.equal(there.version.version, published.version);
    assert.deepEqual(heard, [published.version]);
    stale.version = { ...published, version: published.version - 1 };
    await there.refresh();
    assert.equal(there.version.version, published.version);
    assert.deepEqual(heard, [published.version]);
  });

  it('refuses a publish from an outdated base with POLICY_VERSION_CONFLICT, from any node', async () => {
    const a = await PolicyService.open(
      store,
      new EventLog(store, clock, logger, new InProcessBus({ nodeId: 'node-test', logger })),
      clock,
      logger,
    );
    const b = await PolicyService.open(
      store,
      new EventLog(store, clock, logger, new InProcessBus({ nodeId: 'node-test', logger })),
      clock,
      logger,
    );
    const base = a.version.version;
    const results = await Promise.allSettled([
      a.publish(DEFAULT_POLICY, base, 'admin:a'),
      b.publish(DEFAULT_POLICY, base, 'admin:b'),
    ]);
    const fulfilled = results.filter((r) => r.status === 'fulfilled');
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(fulfilled.length, 1);
    assert.equal(rejected.length, 1);
    assert.equal((rejected[0]?.reason as { code?: string }).code, 'POLICY_VERSION_CONFLICT');
    assert.equal((await store.policies.latest())?.version, base + 1);
  });

  it('keeps a published version when a listener throws', async () => {
    const service = await PolicyService.open(
      store,
      new EventLog(store, clock, logger, new InProcessBus({ nodeId: 'node-test', logger })),
      clock,
      logger,
    );
    service.onPublish(() => {
      throw new Error('push failed');
    });
    const published = await service.publish(DEFAULT_POLICY, service.version.version, 'admin:a');
    assert.equal(service.version.version, published.version);
  });
});
