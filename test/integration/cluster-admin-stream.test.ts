import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AdminBrowser } from '../helpers/admin-session.js';
import { startTestBackend, type TestBackend } from '../helpers/backend-harness.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from '../helpers/postgres-server.js';

/**
 * How long a live stream on another node may outlive the admin session (or bootstrap token) that
 * opened it. The pointer crosses the bus in milliseconds; the bound leaves room for a loaded test
 * machine and stays far below the 15 s keep-alive that used to be the only check on another node.
 */
const ENDS_WITHIN_MS = 3_000;

/** A live event stream read as text as it arrives: wait for a line, and for its end. */
class Follower {
  text = '';
  readonly ended: Promise<number>;
  private readonly waiters: (() => void)[] = [];

  private constructor(response: Response) {
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    this.ended = (async () => {
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch {
          break; // destroyed by the server: ended too
        }
        if (chunk.done) break;
        this.text += decoder.decode(chunk.value, { stream: true });
        for (const wake of this.waiters.splice(0)) wake();
      }
      for (const wake of this.waiters.splice(0)) wake();
      return Date.now();
    })();
  }

  static async open(url: string, headers: Record<string, string>): Promise<Follower> {
    const response = await fetch(`${url}/v1/admin/events/stream`, { headers });
    assert.equal(response.status, 200, `the stream opens: ${response.status}`);
    return new Follower(response);
  }

  /** Resolves once `marker` arrived (the stream is live); fails if the stream ends first or after 10 s. */
  async until(marker: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!this.text.includes(marker)) {
      const woke = new Promise<void>((resolve) => this.waiters.push(resolve));
      const timer = new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now())).unref());
      await Promise.race([woke, timer]);
      if (Date.now() >= deadline) throw new Error(`no "${marker}" on the stream; got ${JSON.stringify(this.text)}`);
      if (await settledNow(this.ended)) {
        if (this.text.includes(marker)) return;
        throw new Error(`the stream ended before "${marker}": ${JSON.stringify(this.text)}`);
      }
    }
  }
}

async function settledNow(promise: Promise<unknown>): Promise<boolean> {
  const marker = Symbol('pending');
  return (await Promise.race([promise, Promise.resolve(marker)])) !== marker;
}

/** Fails naming `what` when `promise` has not settled within `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * An admin's live event stream on node B ends as soon as the admin session that opened it ends on
 * node A (signed out, revoked): the unit that ends it publishes a pointer on the cluster bus, and
 * node B closes its streams of that session when the pointer arrives. Two backends in this process on
 * one PostgreSQL are two nodes (two buses, two LISTEN connections); the streams are real HTTP.
 */
describe(
  'admin live streams end on every node with the session (two nodes, one PostgreSQL)',
  { skip: postgresSkip() },
  () => {
    let server: PostgresServer;
    let nodeA: TestBackend;
    let nodeB: TestBackend;
    let root: AdminBrowser | undefined;

    before(async () => {
      server = await startPostgres();
      const databaseUrl = await createDatabase(server.url, 'baton_cluster_admin_stream');
      // A second node with its own data directory: the harness gives it the first one's key-encryption key (ADR 0006).
      nodeA = await startTestBackend({ databaseUrl });
      nodeB = await startTestBackend({ databaseUrl }, { adminToken: nodeA.admin.token });
    });

    after(async () => {
      await nodeB?.stop();
      await nodeA?.stop();
      await server?.stop();
    });

    it('the bootstrap token retired on node A (the first admin passkey) ends its stream on node B at once', async () => {
      const bootstrapOnB = await Follower.open(nodeB.url, { authorization: `Bearer ${nodeA.admin.token}` });
      await bootstrapOnB.until(': connected');
      const first = await nodeA.admin.ok('POST', '/v1/admin/bootstrap', { id: 'root', displayName: 'Root Admin' });
      root = new AdminBrowser(nodeA.url, nodeA.backend.adminOrigin);
      const registered = Date.now();
      assert.equal((await root.register(first.code as string)).status, 201);
      const endedAt = await within(bootstrapOnB.ended, ENDS_WITHIN_MS, "the bootstrap token's stream on node B to end");
      assert.ok(endedAt - registered < ENDS_WITHIN_MS);
      assert.match(bootstrapOnB.text, /: admin session ended/);
    });

    it('an admin signing out on node A ends that session’s streams on node B and on node A at once', async () => {
      // The admin registered in the previous test (signed in by its registration) on node A.
      assert.ok(root !== undefined, 'the previous test registered the first admin');
      const cookie = root.cookie ?? '';
      const onB = await Follower.open(nodeB.url, { cookie });
      const onA = await Follower.open(nodeA.url, { cookie });
      await Promise.all([onB.until(': connected'), onA.until(': connected')]);

      const signedOut = Date.now();
      await root.ok('POST', '/v1/admin/auth/sign-out', {});
      const [endedB, endedA] = await within(
        Promise.all([onB.ended, onA.ended]),
        ENDS_WITHIN_MS,
        'both streams of the signed-out session to end',
      );
      assert.ok(endedB - signedOut < ENDS_WITHIN_MS && endedA - signedOut < ENDS_WITHIN_MS);
      assert.match(onB.text, /: admin session ended/);
      assert.match(onA.text, /: admin session ended/);
    });
  },
);
