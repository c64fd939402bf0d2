import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import {
  validatePointer,
  type BusHandler,
  type ClusterBus,
  type Delivery,
  type Pointer,
  type ResyncHandler,
  type Topic,
} from './bus.js';
import { ConsoleConnectionArbiter } from './console-arbiter.js';

const logger = pino({ level: 'silent' });
const settled = () => new Promise((resolve) => setImmediate(resolve));

/**
 * Nodes on one bus, as PostgreSQL's LISTEN/NOTIFY behaves: a publish goes through the pool (so it
 * succeeds while the node's listening connection is down) and reaches, in one order, only the nodes
 * listening at that moment; what a node missed is gone, and its resync runs when it listens again.
 */
class FakeCluster {
  readonly nodes: FakeNode[] = [];

  node(nodeId: string): FakeNode {
    const node = new FakeNode(this, nodeId);
    this.nodes.push(node);
    return node;
  }
}

class FakeNode {
  readonly origin: string;
  listening = true;
  /** Its publishes fail too (the pool has no connection either). */
  publishFails = false;
  private readonly handlers = new Map<Topic, Set<BusHandler<Topic>>>();
  private readonly resyncs = new Set<ResyncHandler>();

  constructor(
    private readonly cluster: FakeCluster,
    readonly nodeId: string,
  ) {
    this.origin = `bus-${nodeId}`;
  }

  get bus(): ClusterBus {
    return this as unknown as ClusterBus;
  }

  publish<T extends Topic>(topic: T, pointer: Pointer<T>): Promise<void> {
    const valid = validatePointer(topic, pointer);
    if (this.publishFails) return Promise.reject(new Error('no pooled connection in time'));
    for (const node of this.cluster.nodes.filter((n) => n.listening)) {
      queueMicrotask(() => node.deliver(topic, valid, this.origin));
    }
    return Promise.resolve();
  }

  subscribe<T extends Topic>(topic: T, handler: BusHandler<T>): () => void {
    let set = this.handlers.get(topic);
    if (set === undefined) this.handlers.set(topic, (set = new Set()));
    const h = handler as unknown as BusHandler<Topic>;
    set.add(h);
    return () => void set.delete(h);
  }

  onResync(handler: ResyncHandler): () => void {
    this.resyncs.add(handler);
    return () => void this.resyncs.delete(handler);
  }

  /** The listening connection drops; publishes still go through the pool. */
  drop(): void {
    this.listening = false;
  }

  /** It listens again and resyncs. */
  async reconnect(): Promise<void> {
    this.listening = true;
    for (const handler of this.resyncs) await handler({ reason: 'reconnected' });
  }

  private deliver(topic: Topic, pointer: Pointer<Topic>, origin: string): void {
    const delivery: Delivery = { origin, node: this.nodeId, local: origin === this.origin };
    for (const handler of this.handlers.get(topic) ?? []) void handler(pointer, delivery);
  }
}

/** Two nodes with arbiters on one clock; `closed` lists the connections closed as superseded. */
function twoNodes() {
  const cluster = new FakeCluster();
  let now = 1_700_000_000_000;
  const clock = () => (now += 1_000);
  const closed: string[] = [];
  const onClose = (_console: string, connection: string) => void closed.push(connection);
  const a = cluster.node('A');
  const b = cluster.node('B');
  const arbiterA = new ConsoleConnectionArbiter(a.bus, logger, onClose, clock);
  const arbiterB = new ConsoleConnectionArbiter(b.bus, logger, onClose, clock);
  return { a, b, arbiterA, arbiterB, closed };
}

describe('ConsoleConnectionArbiter', () => {
  it('closes the older socket when a console connects again on another node', async () => {
    const { arbiterA, arbiterB, closed } = twoNodes();
    await arbiterA.connected('con_1', 'a1');
    await settled();
    await arbiterB.connected('con_1', 'b1');
    await settled();
    assert.deepEqual(closed, ['a1']);
  });

  it("keeps the console's live socket when a dead one is announced again after a reconnect", async () => {
    const { a, arbiterA, arbiterB, closed } = twoNodes();
    a.drop(); // A's listening connection is down
    await arbiterA.connected('con_1', 'a1'); // the console says hello on A; the echo is lost
    await settled();
    await arbiterB.connected('con_1', 'b1'); // it moves to B while a1 is half-open on A
    await settled();
    await a.reconnect(); // A's resync announces a1 again
    await settled();
    assert.deepEqual(closed, [], 'b1, the newest socket, stays open');
  });

  it('still closes an older socket elsewhere when a newer one is announced again after a reconnect', async () => {
    const { a, arbiterA, arbiterB, closed } = twoNodes();
    await arbiterB.connected('con_1', 'b1');
    await settled();
    a.drop();
    // The console moved to A; its announcement (sent while A does not listen) is lost as well.
    a.publishFails = true;
    await arbiterA.connected('con_1', 'a1');
    a.publishFails = false;
    await settled();
    assert.deepEqual(closed, [], 'nobody heard of a1 yet');
    await a.reconnect();
    await settled();
    assert.deepEqual(closed, ['b1'], 'the late announcement of the newer a1 closed b1');
  });
});
