import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import type { StoredEvent } from '../../shared/events.js';
import { AdminClient, TEST_ORIGIN, TestConsole, httpJson, type Json } from '../helpers/backend-harness.js';
import { readToken } from '../helpers/backend-process.js';
import { openRawDatabase, sessionWriteFault, type RawDatabase } from '../helpers/raw-database.js';
import { dropTestDatabase, testDatabaseUrl } from '../helpers/test-database.js';
import { assertIntactStream, consoleStream } from '../helpers/console-stream.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';

const ROOT = join(import.meta.dirname, '..', '..');

interface Child {
  child: ChildProcess;
  url: string;
  dataDir: string;
  admin: AdminClient;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output: string[];
  stop(): Promise<void>;
}

/** The real backend CLI in its own process (stdout and stderr piped, never inherited). */
async function startChild(options: { nodeArgs?: string[]; env?: Record<string, string> } = {}): Promise<Child> {
  const dataDir = mkdtempSync(join(tmpdir(), 'baton-faults-'));
  const tokenFile = join(dataDir, 'bootstrap-token');
  const databaseUrl = await testDatabaseUrl(dataDir);
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      ...(options.nodeArgs ?? []),
      join(ROOT, 'backend', 'cli.ts'),
      '--port',
      '0',
      '--data-dir',
      dataDir,
      '--origin',
      TEST_ORIGIN,
      '--bootstrap-token-file',
      tokenFile,
      '--log-level',
      'info',
      '--workers',
      '1',
      ...(databaseUrl === undefined ? [] : ['--database', databaseUrl]),
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } },
  );
  const output: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`backend did not start: ${output.join('\n')}`)), 60_000); // a cold tsx start on a loaded machine
    for (const stream of [child.stdout, child.stderr]) {
      if (stream === null) continue;
      createInterface({ input: stream }).on('line', (line) => {
        output.push(line);
        if (!line.includes('baton backend listening')) return;
        clearTimeout(timer);
        resolve((JSON.parse(line) as { url: string }).url.replace('127.0.0.1', 'localhost'));
      });
    }
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`backend exited with ${String(code)} before listening: ${output.join('\n')}`));
    });
  });
  return {
    child,
    url,
    dataDir,
    admin: new AdminClient(url, readToken(tokenFile)),
    exited,
    output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dataDir, { recursive: true, force: true });
      await dropTestDatabase(dataDir);
    },
  };
}

/**
 * A storage fault while a console's batch is applied (the audit's proof: the session update failing
 * with SQLITE_FULL) once stopped the whole backend, and again on every resend. Here the fault is
 * real: a trigger in the backend's own database makes the engine refuse the update of one session
 * as a full disk would (SQLite: "database or disk is full"; PostgreSQL: SQLSTATE 53100 disk_full).
 */
describe('a storage fault during ingest', () => {
  let t: Child;
  let db: RawDatabase;

  before(async () => {
    t = await startChild();
    db = await openRawDatabase(t);
    if (db.engine === 'sqlite') await db.exec('PRAGMA busy_timeout = 5000');
  });
  after(async () => {
    await db.close();
    await t.stop();
  });

  const fault = () => sessionWriteFault(db, 'test_storage_fault');

  it('refuses only the faulty batch with STORAGE_UNAVAILABLE, keeps the backend and other consoles up, and stores the batch once after the fault', async () => {
    const a = await TestConsole.enrol(t.url, t.admin);
    const b = await TestConsole.enrol(t.url, t.admin);
    const { authenticator } = await enrolOperator(t.admin, a, { displayName: 'Fault Fay' });
    const signedIn = await signIn(a, authenticator);
    assert.equal(signedIn.status, 200, JSON.stringify(signedIn.body));
    const sessionId = (signedIn.body as Json).session.id as string;

    // The database now refuses to write this session, as a full disk would.
    await fault().inject(sessionId);

    const batchA = [
      a.nextEvent({ type: 'agent-online', reasons: ['started'] }),
      a.nextEvent({
        type: 'session-locked',
        subject: { console: a.id, session: sessionId },
        reasons: ['operator-locked'],
      }),
    ];
    const batchB = [b.nextEvent({ type: 'agent-online', reasons: ['started'] })];
    const socketA = await a.connect();
    const socketB = await b.connect();
    await socketA.next('welcome');
    await socketB.next('welcome');
    // Both in the same turn, so they would share one group commit.
    socketA.send({ type: 'events', events: batchA });
    socketB.send({ type: 'events', events: batchB });

    const refused = await Promise.race([
      socketA.next('error'),
      t.exited.then(({ code }) => assert.fail(`the backend process exited (${String(code)}) on the fault`)),
    ]);
    assert.equal(refused.code, 'STORAGE_UNAVAILABLE');
    assert.equal((await socketA.closed).code, 4500);
    const ackB = await socketB.next('events-ack');
    assert.equal(ackB.upToSeq, 1, 'the other console’s batch was stored despite the fault in its group commit');

    // The backend is still up and serving: health, the other console's socket, the admin API.
    assert.equal(t.child.exitCode, null, `the backend is still running: ${t.output.slice(-5).join('\n')}`);
    assert.equal((await httpJson(`${t.url}/healthz`, { method: 'GET' })).status, 200);
    socketB.send({ type: 'events', events: [b.nextEvent({ type: 'agent-offline', reasons: ['connection-lost'] })] });
    assert.equal((await socketB.next('events-ack', (m) => m.upToSeq === 2)).upToSeq, 2);
    assert.deepEqual(await consoleStream(t.admin, a.id), [], 'nothing from the refused batch was stored');

    // While the fault lasts, a resend is refused the same way, and the backend stays up.
    const again = await a.connect();
    assert.equal((await again.next('welcome')).ackedSeq, 0);
    again.send({ type: 'events', events: batchA });
    assert.equal((await again.next('error')).code, 'STORAGE_UNAVAILABLE');
    await again.closed;
    assert.equal(t.child.exitCode, null);

    // The fault is gone: the same batch is stored, exactly once, and the session change with it.
    await fault().heal();
    const healed = await a.connect();
    assert.equal((await healed.next('welcome')).ackedSeq, 0);
    healed.send({ type: 'events', events: batchA });
    assert.equal((await healed.next('events-ack')).upToSeq, 2);
    healed.send({ type: 'events', events: batchA });
    await healed.next('events-ack', (m) => m.upToSeq === 2 && m.findings.length === 0);
    await assertIntactStream(t.admin, a.id, 2);
    const sessions = (await t.admin.ok('GET', `/v1/admin/sessions?console=${a.id}`)) as Json;
    assert.equal(sessions.sessions.find((s: Json) => s.id === sessionId)?.state, 'suspended');
    const recorded = (await t.admin.ok(
      'GET',
      `/v1/admin/events?origin=backend&session=${sessionId}&type=session-suspended`,
    )) as { events: StoredEvent[] };
    assert.equal(recorded.events.length, 1, 'the backend recorded the suspension once');
    assert.deepEqual(recorded.events[0]?.reasons, ['operator-locked', 'reported-by-console']);
    await Promise.all([healed.close(), socketB.close()]);
  });
});

/**
 * A fault no path contained (a bug) must not leave a half-working backend, nor die with a raw stack
 * trace and Node's generic exit code: the backend logs BACKEND_FAULT, closes consoles as on
 * shutdown and exits with 70 for its supervisor.
 */
describe('a fault the backend cannot contain', () => {
  for (const fault of ['rejection', 'exception'] as const) {
    it(`stops cleanly with BACKEND_FAULT and exit code 70 on an ${fault === 'rejection' ? 'unhandled rejection' : 'uncaught exception'}`, async () => {
      const t = await startChild({
        nodeArgs: ['--import', join(ROOT, 'test', 'helpers', 'inject-fault.ts')],
        env: { BATON_TEST_FAULT: fault },
      });
      try {
        const c = await TestConsole.enrol(t.url, t.admin);
        const socket = await c.connect();
        await socket.next('welcome');
        t.child.kill('SIGUSR2');
        const [closed, exited] = await Promise.all([socket.closed, t.exited]);
        assert.equal(closed.code, 1001, 'the console was told the backend is going away, and will reconnect');
        assert.deepEqual(exited, { code: 70, signal: null });
        const line = t.output.find((l) => l.includes('"BACKEND_FAULT"'));
        assert.ok(line !== undefined, `one log line names the fault: ${t.output.slice(-5).join('\n')}`);
        const logged = JSON.parse(line) as { code: string; fault: string };
        assert.equal(logged.fault, fault === 'rejection' ? 'unhandledRejection' : 'uncaughtException');
        assert.ok(
          t.output.some((l) => l.includes('baton backend stopped')),
          'the store was closed by a clean stop',
        );
      } finally {
        await t.stop();
      }
    });
  }
});
