/**
 * Resident memory of an agent core holding 10 operator sessions and 100,000 queued (journaled,
 * unacknowledged) events, beside an idle Node process with the same imports.
 *
 * The backend runs in a child process; the agent core runs in another child
 * (bench/lib/agent-memory-child.ts, started with --expose-gc) that loads the agent's modules and no
 * backend code. The agent reaches the backend through a TcpProxy in this process. A policy whose
 * `branch-kiosk` channel allows `--sessions` sessions is published first; the agent enrols, signs in
 * that many operators (real ceremonies with software authenticators), then this process cuts the
 * proxy and the agent journals `--events` `policy-decision` events through `authorize()` while
 * offline. Memory is read with `process.memoryUsage()` after four `global.gc()` calls at each stage.
 *
 *   node --import tsx bench/agent-memory.ts [--sessions 10] [--events 100000] [--concurrency 256]
 */
import { execFileSync, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { TcpProxy } from '../test/helpers/tcp-proxy.js';
import type { MemoryChildMessage } from './lib/agent-memory-child.js';
import { BackendProcess } from './lib/backend-process.js';
import { publishPolicy } from './lib/bench-agent.js';
import { fmt, fmtInt, heading, printJsonLine, printTable } from './lib/report.js';

const { values: args } = parseArgs({
  options: {
    sessions: { type: 'string', default: '10' },
    events: { type: 'string', default: '100000' },
    concurrency: { type: 'string', default: '256' },
  },
});
const SESSIONS = Number(args.sessions);
const EVENTS = Number(args.events);
const CONCURRENCY = Number(args.concurrency);
const CHANNEL = 'branch-kiosk';
const MIB = 2 ** 20;

type Stage = Extract<MemoryChildMessage, { type: 'stage' }>;

/** Runs the child in `mode`; `onCutPlease` is answered by cutting the connection. */
function runChild(
  mode: 'idle' | 'agent',
  env: Record<string, string>,
  onCutPlease: () => void,
): Promise<{ stages: Stage[]; done: Extract<MemoryChildMessage, { type: 'done' }> | undefined }> {
  const script = fileURLToPath(new URL('./lib/agent-memory-child.ts', import.meta.url));
  const child = fork(script, [], {
    execArgv: ['--expose-gc', '--import', 'tsx'],
    env: { ...process.env, ...env, BENCH_MODE: mode },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const stages: Stage[] = [];
  let done: Extract<MemoryChildMessage, { type: 'done' }> | undefined;
  child.on('message', (raw: unknown) => {
    const message = raw as MemoryChildMessage;
    if (message.type === 'stage') stages.push(message);
    else if (message.type === 'done') done = message;
    else {
      onCutPlease();
      child.send({ type: 'cut' });
    }
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve({ stages, done });
      else reject(new Error(`agent-memory-child (${mode}) exited with ${code ?? signal ?? 'unknown'}`));
    });
  });
}

const mib = (bytes: number) => fmt(bytes / MIB, 1);

/** An empty Node process (optionally with the tsx loader) reading its memory after full GCs: the floor. */
function emptyNode(stage: string, flags: string[]): Stage {
  const code = 'for (let i = 0; i < 4; i++) gc(); process.stdout.write(JSON.stringify(process.memoryUsage()))';
  const memory = JSON.parse(
    execFileSync(process.execPath, ['--expose-gc', ...flags, '-e', code], { encoding: 'utf8' }),
  ) as NodeJS.MemoryUsage;
  return { type: 'stage', stage, memory, sessions: 0, queued: 0 };
}

async function main(): Promise<void> {
  heading('agent memory (sessions and queued events)');
  const backend = await BackendProcess.start({ exposeGc: false });
  const proxy = await TcpProxy.start({ host: '127.0.0.1', port: Number(new URL(backend.url).port) });
  try {
    const policyVersion = await publishPolicy(backend.admin, (policy) => {
      policy.channels[CHANNEL].maxSessions = Math.max(SESSIONS, policy.channels[CHANNEL].maxSessions as number);
    });
    console.log(
      `backend pid ${backend.child.pid} at ${backend.url}; policy v${policyVersion} lets ${CHANNEL} hold ` +
        `${SESSIONS} sessions; the agent child reaches the backend through a TcpProxy at ${proxy.url}; ` +
        `${fmtInt(EVENTS)} events queued offline through authorize(), ${CONCURRENCY} in flight`,
    );

    const floors = [
      emptyNode('node, nothing loaded', []),
      emptyNode('node + tsx loader, nothing loaded', ['--import', 'tsx']),
    ];
    const idle = await runChild('idle', {}, () => undefined);
    const agent = await runChild(
      'agent',
      {
        BENCH_BACKEND_URL: proxy.url,
        BENCH_ADMIN_URL: backend.url,
        BENCH_ADMIN_TOKEN: backend.adminToken,
        BENCH_CHANNEL: CHANNEL,
        BENCH_SESSIONS: String(SESSIONS),
        BENCH_EVENTS: String(EVENTS),
        BENCH_CONCURRENCY: String(CONCURRENCY),
      },
      () => proxy.cut(),
    );
    const baseline = idle.stages[0];
    const loaded = agent.stages[0];
    const sessions = agent.stages.at(-2);
    const queued = agent.stages.at(-1);
    if (baseline === undefined || loaded === undefined || sessions === undefined || queued === undefined)
      throw new Error('the agent child did not report every stage');
    if (agent.done === undefined) throw new Error('the agent child did not finish');

    printTable(
      'memory after full GC (MiB)',
      ['stage', 'sessions', 'queued', 'RSS', 'heapUsed', 'heapTotal', 'external', 'arrayBuffers', 'RSS − idle'],
      [...floors, baseline, ...agent.stages].map((s) => [
        s.stage,
        fmtInt(s.sessions),
        fmtInt(s.queued),
        mib(s.memory.rss),
        mib(s.memory.heapUsed),
        mib(s.memory.heapTotal),
        mib(s.memory.external),
        mib(s.memory.arrayBuffers),
        mib(s.memory.rss - baseline.memory.rss),
      ]),
    );
    const queuedEvents = queued.queued - sessions.queued;
    const perEvent = (field: 'rss' | 'heapUsed') => (queued.memory[field] - sessions.memory[field]) / queuedEvents;
    printTable(
      'per queued event and on disk',
      ['queued events', 'RSS B/event', 'heapUsed B/event', 'journal on disk', 'disk B/event', 'queued in s'],
      [
        [
          fmtInt(queuedEvents),
          fmtInt(perEvent('rss')),
          fmtInt(perEvent('heapUsed')),
          `${mib(agent.done.journalBytes)} MiB`,
          fmtInt(agent.done.journalBytes / queued.queued),
          fmt(agent.done.queueSeconds, 1),
        ],
      ],
    );
    printTable(
      'same-run ratios',
      ['ratio', 'value'],
      [
        ['agent RSS (10 sessions + queue) ÷ idle RSS', fmt(queued.memory.rss / baseline.memory.rss)],
        [
          'heapUsed held by the queue ÷ journal bytes on disk',
          fmt((queued.memory.heapUsed - sessions.memory.heapUsed) / agent.done.journalBytes),
        ],
      ],
    );
    printJsonLine('agent-memory', {
      sessions: SESSIONS,
      events: EVENTS,
      stages: [...floors, baseline, ...agent.stages].map((s) => ({
        stage: s.stage,
        sessions: s.sessions,
        queued: s.queued,
        rss: s.memory.rss,
        heapUsed: s.memory.heapUsed,
        heapTotal: s.memory.heapTotal,
        external: s.memory.external,
        arrayBuffers: s.memory.arrayBuffers,
      })),
      rssBytesPerQueuedEvent: perEvent('rss'),
      heapBytesPerQueuedEvent: perEvent('heapUsed'),
      journalBytes: agent.done.journalBytes,
    });
  } finally {
    await proxy.stop();
    await backend.stop();
  }
}

await main();
