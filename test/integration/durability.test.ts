import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AdminClient, TestConsole, TEST_ORIGIN, type ConsoleSocket } from '../helpers/backend-harness.js';
import { readToken, spawnBackend, type BackendProcess } from '../helpers/backend-process.js';
import type { AssuranceEvent, StoredEvent } from '../../shared/events.js';

const BATCH = 100;

async function allEvents(admin: AdminClient, origin: string): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  let after = 0;
  for (;;) {
    const page = (await admin.ok('GET', `/v1/admin/events?origin=${origin}&limit=1000&after=${after}`)) as {
      events: StoredEvent[];
      nextCursor: number;
    };
    out.push(...page.events);
    if (page.events.length < 1000) return out;
    after = page.nextCursor;
  }
}

/** Streams batches as fast as acknowledgements come back; records the highest acknowledged sequence. */
function stream(socket: ConsoleSocket, events: AssuranceEvent[], acked: { seq: number }): Promise<void> {
  let next = 0;
  const sendBatch = () => {
    if (next >= events.length) return;
    socket.send({ type: 'events', events: events.slice(next, next + BATCH) });
    next += BATCH;
  };
  return new Promise((resolve) => {
    socket.ws.on('message', (data: Buffer) => {
      const message = JSON.parse(data.toString('utf8')) as { type: string; upToSeq?: number };
      if (message.type !== 'events-ack') return;
      acked.seq = Math.max(acked.seq, message.upToSeq ?? 0);
      sendBatch();
    });
    socket.ws.on('close', () => resolve());
    // Keep three batches in flight so the kill lands while writes are under way.
    sendBatch();
    sendBatch();
    sendBatch();
  });
}

describe('durability of acknowledged events', () => {
  const dirs: string[] = [];
  const running: BackendProcess[] = [];
  after(() => {
    for (const p of running) p.child.kill('SIGKILL');
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('keeps every acknowledged event after SIGKILL mid-stream, and a full replay adds no duplicates', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'baton-kill-'));
    dirs.push(dataDir);
    const tokenFile = join(dataDir, 'admin-token');
    let backend = await spawnBackend({ dataDir, tokenFile, origin: TEST_ORIGIN });
    running.push(backend);
    let admin = new AdminClient(backend.url, readToken(tokenFile));
    const console = await TestConsole.enrol(backend.url, admin);

    const events = Array.from({ length: 20_000 }, () =>
      console.nextEvent({ type: 'policy-decision', outcome: 'allow', reasons: ['action-allowed'] }),
    );
    const socket = await console.connect();
    await socket.next('welcome');
    const acked = { seq: 0 };
    const streaming = stream(socket, events, acked);
    // Kill once a good part is acknowledged but well before the end.
    while (acked.seq < 3000) await new Promise((r) => setTimeout(r, 5));
    backend.child.kill('SIGKILL');
    const firstOutput = backend.output;
    const { signal } = await backend.exited;
    assert.equal(signal, 'SIGKILL');
    await streaming;
    const ackedBeforeKill = acked.seq;
    assert.ok(ackedBeforeKill < events.length, 'the kill must land mid-stream');

    backend = await spawnBackend({ dataDir, tokenFile, origin: TEST_ORIGIN });
    running.push(backend);
    admin = new AdminClient(backend.url, readToken(tokenFile));
    const reconnecting = new TestConsole(backend.url, console.key, console.id);
    const stored = await allEvents(admin, console.id);
    assert.ok(stored.length >= ackedBeforeKill, `stored ${stored.length} < acknowledged ${ackedBeforeKill}`);
    assert.deepEqual(
      stored.slice(0, ackedBeforeKill).map((e) => e.id),
      events.slice(0, ackedBeforeKill).map((e) => e.id),
      'every acknowledged event is there, in order',
    );

    // The agent replays everything it holds, including what was already stored.
    const again = await reconnecting.connect();
    const welcome = await again.next('welcome');
    assert.ok(welcome.ackedSeq >= ackedBeforeKill);
    const replay = { seq: 0 };
    const done = stream(again, events, replay);
    while (replay.seq < events.length) await new Promise((r) => setTimeout(r, 10));
    await again.close();
    await done;

    const final = await allEvents(admin, console.id);
    assert.equal(final.length, events.length, 'exactly once');
    assert.deepEqual(
      final.map((e) => e.seq),
      events.map((e) => e.seq),
    );
    assert.deepEqual(
      final.flatMap((e) => e.integrity.filter((f) => f !== 'late')),
      [],
      'no gap, no conflict, no broken chain',
    );
    backend.child.kill('SIGTERM');
    const exit = await backend.exited;
    assert.equal(exit.code, 0, 'SIGTERM shuts down cleanly');

    // Secrets never reach the structured log: the bootstrap token is only in the first start's banner.
    const token = readToken(tokenFile);
    const logLines = [...firstOutput, ...backend.output].filter((line) => line.startsWith('{'));
    assert.ok(logLines.length > 3, 'the backend logged JSON lines');
    for (const line of logLines) {
      assert.ok(!line.includes(token), `log line leaks the admin token: ${line}`);
      assert.doesNotMatch(line, /bct_|x-baton-signature"\s*:\s*"[A-Za-z0-9_-]{20}/);
    }
    assert.ok(
      firstOutput.some((line) => !line.startsWith('{') && line.includes(token)),
      'the banner shows it once',
    );
  });
});
