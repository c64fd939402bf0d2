import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { BatonAgent } from '../../main/core/agent.js';
import { AgentRig, MemorySecretStore, SoftCeremonyPort } from '../helpers/agent-rig.js';
import { AdminClient, TEST_ORIGIN, startTestBackend, type Json } from '../helpers/backend-harness.js';
import { readToken, spawnBackend, type BackendProcess } from '../helpers/backend-process.js';
import { assertIntactStream, consoleStream, eventually } from '../helpers/console-stream.js';
import { SoftAuthenticator } from '../helpers/soft-authenticator.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const AGENT_CHILD = join(import.meta.dirname, '..', 'helpers', 'agent-child.ts');

/**
 * Operators at work: `authorize('customer.view')` back to back (a few at once, so one fsync carries
 * several decisions), each call resolving only once its policy-decision event is fsync'd in the
 * outbox. They pause while `backlog` events are unacknowledged, which bounds how long the test
 * takes to flush; a backlog that size is still several frames. Runs until `stop()`.
 */
function keepAuthorizing(agent: BatonAgent, backlog = 2000): { readonly allowed: number; stop(): Promise<void> } {
  let stopped = false;
  let allowed = 0;
  const operator = async () => {
    while (!stopped) {
      if ((agent.status.outbox?.pending ?? 0) >= backlog) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        continue;
      }
      const result = await agent.authorize('customer.view');
      if (result.outcome !== 'allow') throw new Error(`authorize gave ${JSON.stringify(result)}`);
      allowed++;
    }
  };
  // Surfaced by stop(); not left to become an unhandled rejection meanwhile.
  const settled = Promise.all([operator(), operator(), operator(), operator()]).then(
    () => undefined,
    (error: unknown) => error,
  );
  return {
    get allowed() {
      return allowed;
    },
    async stop() {
      stopped = true;
      const error = await settled;
      if (error !== undefined) throw new Error('an operator loop failed', { cause: error });
    },
  };
}

function lastSeq(agent: BatonAgent): number {
  return agent.status.outbox?.lastSeq ?? 0;
}

function consoleIdOf(agent: BatonAgent): string {
  const identity = agent.status.identity;
  assert.equal(identity.kind, 'enrolled');
  return identity.consoleId;
}

async function signInOperator(admin: AdminClient, agent: BatonAgent, port: SoftCeremonyPort): Promise<void> {
  const { operator } = (await admin.ok('POST', '/v1/admin/operators', {
    displayName: 'Ada Teller',
    roles: ['teller'],
  })) as Json;
  const { code } = (await admin.ok('POST', `/v1/admin/operators/${operator.id as string}/enrolment-codes`, {})) as Json;
  const authenticator = new SoftAuthenticator(TEST_ORIGIN);
  port.tap(authenticator);
  // Registering the key signs Ada in (issue 12): her session is in front, no second tap.
  const enrolled = await agent.enrolOperator(code as string);
  assert.equal(enrolled.signedIn, true);
  assert.equal(agent.status.front?.operatorName, 'Ada Teller');
}

describe('agent faults: every event reaches the backend exactly once, in order, chained', () => {
  const dirs: string[] = [];
  const children: ChildProcess[] = [];
  const cleanups: (() => Promise<void> | void)[] = [];
  const tempDir = (prefix: string) => {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(dir);
    return dir;
  };
  after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const cleanup of cleanups.reverse()) await cleanup();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('the backend is killed with SIGKILL mid-stream and restarted on the same data', async () => {
    const backendDir = tempDir('baton-faults-backend-');
    const tokenFile = join(backendDir, 'admin-token');
    let backend: BackendProcess = await spawnBackend({ dataDir: backendDir, tokenFile, origin: TEST_ORIGIN });
    children.push(backend.child);
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port: Number(new URL(backend.url).port) });
    cleanups.push(() => proxy.stop());
    const admin = () => new AdminClient(backend.url, readToken(tokenFile));
    const { token } = (await admin().ok('POST', '/v1/admin/console-tokens', { channel: 'branch-kiosk' })) as Json;

    // The child backend runs on real time, so the agent does too (signatures must be within ±5 min).
    const port = new SoftCeremonyPort();
    const agent = await BatonAgent.start(
      {
        backendUrl: proxy.url,
        channel: 'branch-kiosk',
        rpId: 'localhost',
        origin: TEST_ORIGIN,
        dataDir: tempDir('baton-faults-agent-'),
        agentVersion: 'test',
        enrolmentToken: token as string,
      },
      { secrets: new MemorySecretStore(), ceremonies: port, random: () => 0 },
    );
    cleanups.push(() => agent.stop());
    await eventually(() => agent.status.connection === 'online', 'the agent online');
    await signInOperator(admin(), agent, port);
    const consoleId = consoleIdOf(agent);

    const work = keepAuthorizing(agent);
    await eventually(() => (agent.status.outbox?.ackedSeq ?? 0) >= 300, 'the stream under way');
    backend.child.kill('SIGKILL');
    const { signal } = await backend.exited;
    assert.equal(signal, 'SIGKILL');
    const killedAt = lastSeq(agent);
    // Restarted on the same data directory (it binds a new port; the proxy follows it).
    const restarting = spawnBackend({ dataDir: backendDir, tokenFile, origin: TEST_ORIGIN });
    await eventually(() => agent.status.connection === 'offline', 'the agent to notice the backend is gone');
    // The operator keeps working while the backend is down: the decisions queue in the outbox,
    // more than several frames' worth.
    await eventually(() => lastSeq(agent) > killedAt && (agent.status.outbox?.pending ?? 0) >= 1000, 'a backlog');
    backend = await restarting;
    children.push(backend.child);
    proxy.retarget({ host: '127.0.0.1', port: Number(new URL(backend.url).port) });
    const reconnectedFrom = lastSeq(agent);
    await eventually(
      () => agent.status.connection === 'online' && (agent.status.outbox?.ackedSeq ?? 0) > reconnectedFrom,
      'the agent back online and flushing',
      30_000,
    );
    // Still streaming after the restart, then the operator stops.
    await eventually(() => lastSeq(agent) >= reconnectedFrom + 200, 'more events after the restart');
    await work.stop();
    await eventually(
      () => agent.status.connection === 'online' && agent.status.outbox?.pending === 0,
      'the outbox flushed',
    );

    const journaled = lastSeq(agent);
    assert.ok(work.allowed >= 800, `the operator worked throughout (${work.allowed} decisions)`);
    const stored = await assertIntactStream(admin(), consoleId, journaled);
    assert.ok(
      stored.filter((e) => e.type === 'policy-decision').length >= work.allowed,
      'every decision the operator acted on is stored',
    );
    assert.ok(
      stored.some((e) => e.type === 'agent-offline') && stored.some((e) => e.type === 'agent-online'),
      'going offline and coming back are events too',
    );
  });

  it('the agent process is killed with SIGKILL mid-stream and restarted on the same data', async () => {
    const backend = await startTestBackend();
    cleanups.push(() => backend.stop());
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port: backend.backend.port });
    cleanups.push(() => proxy.stop());
    const { operator } = (await backend.admin.ok('POST', '/v1/admin/operators', {
      displayName: 'Ada Teller',
      roles: ['teller'],
    })) as Json;
    const operatorCode = async () =>
      ((await backend.admin.ok('POST', `/v1/admin/operators/${operator.id as string}/enrolment-codes`, {})) as Json)
        .code as string;
    const { token } = (await backend.admin.ok('POST', '/v1/admin/console-tokens', { channel: 'branch-kiosk' })) as Json;
    const home = tempDir('baton-faults-child-');
    const dataDir = join(home, 'data');
    const secrets = join(home, 'secrets', 'console.json');
    const printed: number[] = [];

    const run = async (options: { enrolmentToken?: string; count?: number }) => {
      const args = [
        '--import',
        'tsx',
        AGENT_CHILD,
        '--backend',
        proxy.url,
        '--origin',
        TEST_ORIGIN,
        '--data-dir',
        dataDir,
        '--secrets',
        secrets,
        '--operator-code',
        await operatorCode(),
        ...(options.enrolmentToken === undefined ? [] : ['--enrolment-token', options.enrolmentToken]),
        ...(options.count === undefined ? [] : ['--count', String(options.count)]),
      ];
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      const state = { consoleId: '', seqs: [] as number[], flushed: undefined as number | undefined, stderr: '' };
      const recoveries: Json[] = [];
      child.stderr.on('data', (chunk: Buffer) => (state.stderr += chunk.toString('utf8')));
      createInterface({ input: child.stdout }).on('line', (line) => {
        const [word, value = ''] = line.split(' ', 2);
        if (word === 'seq') {
          state.seqs.push(Number(value));
          printed.push(Number(value));
        } else if (word === 'online') state.consoleId = value;
        else if (word === 'flushed') state.flushed = Number(value);
        else if (word === 'recovery') recoveries.push(JSON.parse(line.slice('recovery '.length)));
      });
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.once('exit', (code, signal) => resolve({ code, signal })),
      );
      const seen = (test: () => boolean, what: string) =>
        eventually(
          () => {
            if (child.exitCode !== null)
              throw new Error(`agent child exited early (${child.exitCode}): ${state.stderr}`);
            return test();
          },
          what,
          30_000,
        );
      const kill = async () => {
        child.kill('SIGKILL');
        const { signal } = await exited;
        assert.equal(signal, 'SIGKILL');
      };
      return { state, recoveries, seen, kill, exited };
    };

    // 1. Killed while online and streaming: acknowledgements race the kill.
    const first = await run({ enrolmentToken: token as string });
    await first.seen(() => first.state.seqs.length >= 300, 'the first run streaming');
    await first.kill();
    const consoleId = first.state.consoleId;
    assert.match(consoleId, /^con_/);

    // 2. Restarted on the same data; killed again while the network is down, so the journal holds
    //    events the backend has never seen.
    const second = await run({});
    await second.seen(() => second.state.seqs.length >= 100, 'the second run streaming');
    assert.equal(second.state.consoleId, consoleId, 'the restarted agent is the same console');
    proxy.cut();
    const cutAt = Math.max(...second.state.seqs);
    await second.seen(() => second.state.seqs.some((s) => s >= cutAt + 100), 'events queued while cut off');
    await second.kill();
    const storedBeforeReplay = (await consoleStream(backend.admin, consoleId)).length;
    const maxPrinted = Math.max(...printed);
    assert.ok(
      storedBeforeReplay < maxPrinted,
      `the kill left events only the journal holds (${storedBeforeReplay} stored, ${maxPrinted} emitted)`,
    );

    // 3. Restarted again with the network back: it replays the journal, works a little more and flushes.
    proxy.restore();
    const third = await run({ count: 50 });
    const { code } = await third.exited;
    assert.equal(code, 0, `the third run finishes cleanly: ${third.state.stderr}`);
    assert.equal(third.state.consoleId, consoleId);
    const journaled = third.state.flushed;
    assert.ok(journaled !== undefined && journaled >= maxPrinted + 50, `flushed through ${journaled}`);
    for (const r of [...second.recoveries, ...third.recoveries]) {
      assert.deepEqual(r.corrupt, [], 'a SIGKILL leaves at most a torn tail, never a corrupt line');
    }
    assert.ok(third.recoveries[0].recovered > 0, 'the last restart found the events the backend never acknowledged');

    await assertIntactStream(backend.admin, consoleId, journaled);
    assert.ok(
      printed.every((seq) => seq >= 1 && seq <= journaled),
      'every sequence number an authorize call confirmed is stored',
    );
  });

  it('the connection drops again and again while events are generated', async () => {
    const rig = await AgentRig.start();
    cleanups.push(() => rig.stop());
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port: rig.backend.backend.port });
    cleanups.push(() => proxy.stop());
    const { agent, port } = await rig.agent({ backendUrl: proxy.url });
    const ada = await rig.operator(agent, port, 'Ada Teller');
    port.tap(ada.authenticator);
    await agent.tapIn();
    const consoleId = consoleIdOf(agent);

    const work = keepAuthorizing(agent);
    let drops = 0;
    for (let round = 0; round < 12; round++) {
      const from = lastSeq(agent);
      // Odd rounds cut right after reconnecting, while the backlog is still in flight.
      if (round % 2 === 0) await eventually(() => lastSeq(agent) >= from + 30, 'events flowing');
      proxy.cut();
      drops++;
      await rig.until(agent, (s) => s.connection === 'offline', 'offline after the cut');
      const offlineFrom = lastSeq(agent);
      await eventually(() => lastSeq(agent) >= offlineFrom + 20, 'events queued while cut off');
      // The first outage is long: its backlog is more than one frame (256 KiB) can carry.
      if (round === 0) await eventually(() => (agent.status.outbox?.pending ?? 0) >= 1000, 'a backlog');
      proxy.restore();
      await rig.reconnect(agent);
      if (round % 3 === 2) {
        // The shell's "network changed" hint: the agent drops its own socket and reconnects.
        agent.dropConnection();
        drops++;
        await rig.until(agent, (s) => s.connection !== 'online', 'the dropped socket noticed');
        await rig.reconnect(agent);
      }
    }
    await work.stop();
    await rig.until(agent, (s) => s.connection === 'online' && s.outbox?.pending === 0, 'the outbox flushed');

    assert.ok(drops >= 16, `${drops} drops`);
    const journaled = lastSeq(agent);
    const stored = await assertIntactStream(rig.backend.admin, consoleId, journaled);
    assert.ok(
      stored.filter((e) => e.type === 'agent-offline').length >= 12,
      'each outage is on the record as an agent-offline event',
    );
    assert.equal(agent.status.connection, 'online');
    assert.equal(agent.status.outbox?.pending, 0);
  });
});
