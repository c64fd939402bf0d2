/**
 * Fast user switching inside the agent core: a console with 5 signed-in operators, each tap
 * bringing another operator's (suspended) session to the front. The backend runs in a child
 * process; the agent core (`BatonAgent`, real backend client, real journal) runs here and every tap
 * is a real ceremony: signed `/v1/sign-in/options`, a software-authenticator assertion, signed
 * `/v1/sign-in/verify` (the backend verifies, resumes the session and commits durably).
 *
 * Timed per switch with process.hrtime.bigint(), without changing main/core:
 * - core: from `BackendClient.request('/v1/sign-in/verify')` resolving (the backend's verdict in
 *   hand, parsed and schema-checked) to the `onStatus` listener seeing the operator in front — the
 *   agent applying the answer (`SessionManager.signedIn`, the switch event journaled, status built
 *   and delivered). `request` is observed by wrapping the prototype method in this process.
 * - core + decode: the same, from the verify request's `response` event (headers in hand), so it adds reading
 *   the body, JSON parsing and the schema check.
 * - full tap: from `agent.tapIn()` to the operator in front, both HTTP round trips included.
 *
 *   node --import tsx bench/agent-switch-latency.ts [--switches 2000] [--warmup 100] [--operators 5]
 *     [--samples-out <file.json>]
 *
 * `--samples-out` writes every timed core and full-tap sample (ms, in order) as JSON, for
 * `bench/compare-ui-samples.ts --paths core,full --percentiles 50,99 --decimals 3` over alternated runs of two trees.
 */
import { writeFileSync } from 'node:fs';
import { ClientRequest } from 'node:http';
import { parseArgs } from 'node:util';
import { BackendClient } from '../main/core/backend-client.js';
import { SessionManager } from '../main/core/session-manager.js';
import { wrapMethod } from './lib/agent-probes.js';
import { BackendProcess } from './lib/backend-process.js';
import { enrolOperators, startBenchAgent, untilStatus, type BenchAgent } from './lib/bench-agent.js';
import { fmt, fmtInt, heading, printJsonLine, printTable, summarize, verdict, type Summary } from './lib/report.js';

const { values: args } = parseArgs({
  options: {
    switches: { type: 'string', default: '2000' },
    warmup: { type: 'string', default: '100' },
    operators: { type: 'string', default: '5' },
    /** contact-centre allows 5 sessions per console in the default policy. */
    channel: { type: 'string', default: 'contact-centre' },
    'samples-out': { type: 'string' },
  },
});
const SWITCHES = Number(args.switches);
const WARMUP = Number(args.warmup);
const OPERATORS = Number(args.operators);
const CHANNEL = args.channel;
const GOAL_CORE_P99_MS = 5;
const OPTIONS_PATH = '/v1/sign-in/options';
const VERIFY_PATH = '/v1/sign-in/verify';

/** Timestamps of the tap being measured (hrtime, ns). */
interface Marks {
  operatorId: string;
  tappedAt: bigint;
  optionsSentAt?: bigint;
  optionsAt?: bigint;
  verifySentAt?: bigint;
  headersAt?: bigint;
  answeredAt?: bigint;
  /** `SessionManager.signedIn` entered and returned (the listeners run inside it). */
  appliedFrom?: bigint;
  appliedTo?: bigint;
  frontAt?: bigint;
}

let current: Marks | undefined;

/** Observes the two sign-in requests and the application of the verdict without changing them. */
function instrumentCore(): void {
  wrapMethod(
    BackendClient.prototype,
    'request',
    (request) =>
      function (this: BackendClient, method, path, body, schema) {
        const marks = current;
        const sentAt = process.hrtime.bigint();
        return request.call(this, method, path, body, schema).then((answer) => {
          const at = process.hrtime.bigint();
          if (marks !== undefined && path === OPTIONS_PATH)
            Object.assign(marks, { optionsSentAt: sentAt, optionsAt: at });
          if (marks !== undefined && path === VERIFY_PATH)
            Object.assign(marks, { verifySentAt: sentAt, answeredAt: at });
          return answer;
        });
      } as typeof request,
  );
  wrapMethod(
    SessionManager.prototype,
    'signedIn',
    (signedIn) =>
      function (this: SessionManager, outcome) {
        const marks = current;
        if (marks !== undefined) marks.appliedFrom = process.hrtime.bigint();
        const session = signedIn.call(this, outcome);
        if (marks !== undefined) marks.appliedTo = process.hrtime.bigint();
        return session;
      },
  );
  // The agent's HTTP client is node:http (main/core/signed-http.ts): the verify answer's headers are
  // in hand when its ClientRequest emits 'response'.
  wrapMethod(
    ClientRequest.prototype,
    'emit',
    (emit) =>
      function (this: ClientRequest, event: string | symbol, ...rest: unknown[]) {
        const marks = current;
        if (event === 'response' && marks !== undefined && this.path.split('?')[0] === VERIFY_PATH) {
          marks.headersAt = process.hrtime.bigint();
        }
        return emit.call(this, event, ...rest);
      },
  );
}

const ms = (from: bigint | undefined, to: bigint | undefined): number =>
  from === undefined || to === undefined ? Number.NaN : Number(to - from) / 1e6;

function row(name: string, s: Summary): string[] {
  return [name, fmtInt(s.n), fmt(s.mean, 3), fmt(s.p50, 3), fmt(s.p95, 3), fmt(s.p99, 3), fmt(s.max, 3)];
}

async function main(): Promise<void> {
  heading('agent switch latency (fast user switching inside the core)');
  instrumentCore();
  const backend = await BackendProcess.start({ exposeGc: false });
  let bench: BenchAgent | undefined;
  try {
    const t0 = performance.now();
    bench = await startBenchAgent({ backendUrl: backend.url, admin: backend.admin, channel: CHANNEL });
    const { agent, port } = bench;
    const maxSessions = agent.policy.channels[CHANNEL]?.maxSessions ?? 0;
    if (maxSessions < OPERATORS) throw new Error(`channel ${CHANNEL} allows ${maxSessions} sessions, not ${OPERATORS}`);
    const operators = await enrolOperators(bench, backend.admin, OPERATORS);
    // First tap of each operator starts their session; every later tap resumes it.
    const sessionOf = new Map<string, string>();
    for (const op of operators) {
      port.tap(op.authenticator);
      sessionOf.set(op.id, (await agent.tapIn()).id);
    }
    console.log(
      `backend pid ${backend.child.pid} at ${backend.url}, durability "${backend.durability}"; agent core in pid ` +
        `${process.pid}, channel ${CHANNEL} (maxSessions ${maxSessions}); ${OPERATORS} operators enrolled and signed ` +
        `in in ${fmt((performance.now() - t0) / 1000, 1)}s; ${WARMUP} warm-up + ${SWITCHES} measured switches, round robin`,
    );

    agent.onStatus((status) => {
      const marks = current;
      if (marks === undefined || marks.answeredAt === undefined || marks.frontAt !== undefined) return;
      if (status.front?.operatorId === marks.operatorId && status.front.state === 'active')
        marks.frontAt = process.hrtime.bigint();
    });

    const core: number[] = [];
    const decode: number[] = [];
    const full: number[] = [];
    const apply: number[] = [];
    const optionsRoundTrip: number[] = [];
    const verifyRoundTrip: number[] = [];
    const assertion: number[] = [];
    const problems: string[] = [];
    let resumed = 0;
    for (let i = 0; i < WARMUP + SWITCHES; i++) {
      const op = operators[(i + 1) % OPERATORS] ?? operators[0];
      if (op === undefined) throw new Error('no operators');
      if (agent.status.front?.operatorId === op.id) problems.push(`switch ${i}: ${op.id} already in front`);
      port.tap(op.authenticator);
      const marks: Marks = { operatorId: op.id, tappedAt: process.hrtime.bigint() };
      current = marks;
      const snapshot = await agent.tapIn();
      current = undefined;
      if (snapshot.operatorId !== op.id || agent.status.front?.operatorId !== op.id)
        problems.push(`switch ${i}: ${op.id} tapped, ${agent.status.front?.operatorId ?? 'nobody'} in front`);
      if (marks.frontAt === undefined) problems.push(`switch ${i}: no status event with ${op.id} in front`);
      if (i < WARMUP) continue;
      if (snapshot.id === sessionOf.get(op.id)) resumed++;
      core.push(ms(marks.answeredAt, marks.frontAt));
      decode.push(ms(marks.headersAt, marks.frontAt));
      apply.push(ms(marks.appliedFrom, marks.appliedTo));
      full.push(ms(marks.tappedAt, marks.frontAt));
      optionsRoundTrip.push(ms(marks.optionsSentAt, marks.optionsAt));
      verifyRoundTrip.push(ms(marks.verifySentAt, marks.answeredAt));
      assertion.push(port.assertionMs);
    }
    const sessions = agent.status.sessions.length;
    // Every switch journaled a session-switched event; the backend must have acknowledged them all.
    const flushed = await untilStatus(agent, (s) => s.outbox?.pending === 0, 'the switch events to be acknowledged');

    const coreS = summarize(core);
    if (args['samples-out'] !== undefined) {
      const labels = { core: 'core: verdict in hand → operator in front', full: 'full tap → operator in front' };
      writeFileSync(args['samples-out'], `${JSON.stringify({ labels, core, full })}\n`);
    }
    const decodeS = summarize(decode);
    const fullS = summarize(full);
    printTable(
      `switch latency, ${OPERATORS} signed-in operators (ms)`,
      ['interval', 'n', 'mean', 'p50', 'p95', 'p99', 'max'],
      [
        row('core: verdict in hand → operator in front', coreS),
        row('  of which SessionManager.signedIn', summarize(apply)),
        row('core + decode: response headers → in front', decodeS),
        row('full tap: tapIn() → in front', fullS),
        row('  of which options request (n/a: asked ahead)', summarize(optionsRoundTrip)),
        row('  of which verify request (signed HTTP)', summarize(verifyRoundTrip)),
        row('  of which soft authenticator assertion', summarize(assertion)),
      ],
    );
    printTable(
      'same-run ratios',
      ['ratio', 'p50', 'p99'],
      [
        ['core ÷ full tap', fmt(coreS.p50 / fullS.p50, 4), fmt(coreS.p99 / fullS.p99, 4)],
        ['core + decode ÷ full tap', fmt(decodeS.p50 / fullS.p50, 4), fmt(decodeS.p99 / fullS.p99, 4)],
      ],
    );
    printTable(
      'checks',
      ['measured switches', 'resumed own session', 'sessions at end', 'events acked (lastSeq)', 'problems'],
      [
        [
          fmtInt(SWITCHES),
          fmtInt(resumed),
          fmtInt(sessions),
          fmtInt(flushed.outbox?.ackedSeq ?? 0),
          fmtInt(problems.length),
        ],
      ],
    );
    for (const p of problems.slice(0, 10)) console.log(`  problem: ${p}`);
    printTable(
      'goals',
      ['goal', 'measured', 'verdict'],
      [[`core switch p99 ≤ ${GOAL_CORE_P99_MS} ms`, `${fmt(coreS.p99, 3)} ms`, verdict(coreS.p99 <= GOAL_CORE_P99_MS)]],
    );
    printJsonLine('agent-switch-latency', {
      operators: OPERATORS,
      switches: SWITCHES,
      coreMs: coreS,
      coreWithDecodeMs: decodeS,
      fullTapMs: fullS,
      resumed,
      problems: problems.length,
      goalCoreP99Met: coreS.p99 <= GOAL_CORE_P99_MS,
    });
    if (problems.length > 0 || resumed !== SWITCHES || sessions !== OPERATORS) process.exitCode = 1;
  } finally {
    await bench?.close();
    await backend.stop();
  }
}

await main();
