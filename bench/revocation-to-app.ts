/**
 * Issue 14: an admin revokes a session → the line-of-business app server refuses that session's
 * still-unexpired action token. The backend runs in its own process (bench/lib/backend-child.ts);
 * the sample teller app (examples/teller-app, @baton/verifier following Baton's revocation stream)
 * and the measuring client run in this one. Same-run anchor: the plain revocation → console figure,
 * the console holding the session receiving the `revocation` push on its WebSocket.
 *
 * Per sample (one after another): sign in, exchange for a `customer.view` token, one accepted call
 * to the app server; then the admin's revoke. Measured from sending the revoke request:
 *   - console: the console's WebSocket has the `revocation` message;
 *   - app heard: the app server's subscription has applied the revocation (its `onRevocation`);
 *   - app refuses: the app server's HTTP answer to the next call with the token, 401 TOKEN_REVOKED
 *     (the call is sent the moment the app heard it: one loopback round trip after "app heard").
 * With --ssf, the app server's process also follows Baton's Shared Signals stream, by poll (RFC 8936)
 * and by push (RFC 8935) to an endpoint in this process, SETs verified against /ssf/jwks.json, timed the
 * same way ("app heard (SSF …)").
 *
 *   node --import tsx bench/revocation-to-app.ts [--samples 200] [--warmup 10] [--ssf]
 */
import { cpuUsage } from 'node:process';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { startTellerApp } from '../examples/teller-app/teller-app.js';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SsfPushReceiver, SsfSubscription, type Revocation } from '../packages/verifier/src/index.js';
import { TestConsole, type Json } from '../test/helpers/backend-harness.js';
import { appKeyPair, exchange, publishPolicy, tellerPolicy } from '../test/helpers/action-token-fixtures.js';
import { enrolOperator, signIn } from '../test/helpers/operator-flow.js';
import { BackendProcess } from './lib/backend-process.js';
import { fmt, heading, printJsonLine, printTable, summarize, verdict, wallMs, type Summary } from './lib/report.js';
import { connectConsole } from './lib/ws-console.js';

const { values: args } = parseArgs({
  options: {
    samples: { type: 'string', default: '200' },
    warmup: { type: 'string', default: '10' },
    ssf: { type: 'boolean', default: false },
  },
});
const SAMPLES = Number(args.samples);
const WARMUP = Number(args.warmup);
const GOAL_P99_MS = 50;

/** One-shot waiters keyed by what they wait for. */
class Waiters<T> {
  private readonly map = new Map<string, (value: T) => void>();
  wait(key: string): Promise<T> {
    return new Promise((resolve) => this.map.set(key, resolve));
  }
  settle(key: string, value: T): void {
    const resolve = this.map.get(key);
    this.map.delete(key);
    resolve?.(value);
  }
}

heading('revocation → app server');
console.log(
  `load average at start: ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
const backend = await BackendProcess.start();
const keys = await appKeyPair();
const policyVersion = await publishPolicy(backend.admin, tellerPolicy(keys.publicJwk, 600));
const console_ = await TestConsole.enrol(backend.url, backend.admin);
const { authenticator } = await enrolOperator(backend.admin, console_);

const atConsole = new Waiters<number>();
let lastEpoch = 0;
const socket = await connectConsole(
  backend.url,
  console_,
  (message, ws) => {
    if (message.type !== 'revocation' || message.epoch <= lastEpoch) return;
    const at = wallMs();
    lastEpoch = message.epoch;
    ws.send(JSON.stringify({ type: 'ack', of: 'revocation', epoch: message.epoch }));
    for (const item of message.items) atConsole.settle(item.targetId, at);
  },
  { policyVersion, revocationEpoch: 0 },
);

const heardByApp = new Waiters<number>();
const app = await startTellerApp({
  batonUrl: backend.url,
  revocationKey: keys.privateJwk,
  onRevocation: (r: Revocation) => heardByApp.settle(r.targetId, wallMs()),
});
await app.subscription?.ready;

const heardBySsf = new Waiters<number>();
let ssf: SsfSubscription | undefined;
let push: SsfPushReceiver | undefined;
let pushServer: Server | undefined;
const heardByPush = new Waiters<number>();
if (args.ssf) {
  const issued = (await backend.admin.ok('POST', '/v1/admin/ssf/receivers', {
    name: 'bench app server',
    scopes: ['ssf.manage'],
  })) as Json;
  ssf = new SsfSubscription({
    batonUrl: backend.url,
    token: issued.token as string,
    onRevocation: (r) => {
      if (r.kind === 'session') heardBySsf.settle(r.targetId, wallMs());
    },
  });
  await ssf.ready;
  // And by push (RFC 8935): a small endpoint in this process takes Baton's SETs.
  const endpoint = createServer((req, res) => void push?.handle(req, res));
  await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
  pushServer = endpoint;
  push = new SsfPushReceiver({
    batonUrl: backend.url,
    token: issued.token as string,
    endpointUrl: `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}/ssf/events`,
    onRevocation: (r) => {
      if (r.kind === 'session') heardByPush.settle(r.targetId, wallMs());
    },
  });
  await push.ready;
}

const samples = {
  console: [] as number[],
  heard: [] as number[],
  refused: [] as number[],
  ssf: [] as number[],
  push: [] as number[],
};
const cpuStart = cpuUsage();
const childCpuStart = await backend.request<{ cpu: NodeJS.CpuUsage }>('cpu').catch(() => undefined);
for (let i = 0; i < WARMUP + SAMPLES; i++) {
  const signedIn = (await signIn(console_, authenticator)).body as Json;
  const sid = signedIn.session.id as string;
  const token = ((await exchange(console_, signedIn.token as string, 'customer.view')).body as Json)
    .access_token as string;
  const call = () => fetch(`${app.url}/api/customers/c-1001`, { headers: { authorization: `Bearer ${token}` } });
  const accepted = await call();
  await accepted.arrayBuffer();
  if (accepted.status !== 200) throw new Error(`the app server refused a live token: ${accepted.status}`);

  const consoleAt = atConsole.wait(sid);
  const appHeard = heardByApp.wait(sid);
  const ssfHeard = args.ssf ? heardBySsf.wait(sid) : Promise.resolve(Number.NaN);
  const pushHeard = args.ssf ? heardByPush.wait(sid) : Promise.resolve(Number.NaN);
  const t0 = wallMs();
  const revoked = backend.admin.ok('POST', `/v1/admin/sessions/${sid}/revoke`, { reason: 'bench' });
  const refusedAt = appHeard.then(async (heardAt) => {
    const answer = await call();
    const body = (await answer.json()) as Json;
    const at = wallMs();
    if (answer.status !== 401 || body.error?.code !== 'TOKEN_REVOKED') {
      throw new Error(`the app server did not refuse the revoked token: ${answer.status} ${JSON.stringify(body)}`);
    }
    return { heardAt, at };
  });
  const [, c, r, s, p] = await Promise.all([revoked, consoleAt, refusedAt, ssfHeard, pushHeard]);
  if (i < WARMUP) continue;
  samples.console.push(c - t0);
  samples.heard.push(r.heardAt - t0);
  samples.refused.push(r.at - t0);
  if (args.ssf) samples.ssf.push(s - t0);
  if (args.ssf) samples.push.push(p - t0);
}
const cpu = cpuUsage(cpuStart);
const childCpuEnd = await backend.request<{ cpu: NodeJS.CpuUsage }>('cpu').catch(() => undefined);

const row = (what: string, s: Summary) => [what, fmt(s.p50), fmt(s.p95), fmt(s.p99), fmt(s.max)];
const figures = {
  console: summarize(samples.console),
  appHeard: summarize(samples.heard),
  appRefuses: summarize(samples.refused),
  ...(args.ssf ? { appHeardSsf: summarize(samples.ssf), appHeardSsfPush: summarize(samples.push) } : {}),
};
printTable(
  `from sending the admin's revoke request (${SAMPLES} sessions, one after another, after ${WARMUP} warm-up)`,
  ['until', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms'],
  [
    row('the console has the revocation push (anchor)', figures.console),
    row("the app server's verifier has it (SSE feed)", figures.appHeard),
    row('the app server answers 401 TOKEN_REVOKED', figures.appRefuses),
    ...(figures.appHeardSsf === undefined
      ? []
      : [
          row("the app server's verifier has it (SSF poll, RFC 8936)", figures.appHeardSsf),
          row("the app server's verifier has it (SSF push, RFC 8935)", figures.appHeardSsfPush ?? summarize([])),
        ]),
  ],
);
const ratio = figures.appRefuses.p50 / figures.console.p50;
printTable(
  'goal',
  ['goal', 'measured', 'verdict'],
  [
    [
      `revocation → the app server refuses, p99 ≤ ${GOAL_P99_MS} ms`,
      fmt(figures.appRefuses.p99),
      verdict(figures.appRefuses.p99 <= GOAL_P99_MS),
    ],
    ['app refuses ÷ console push, p50 (same run)', `x${fmt(ratio)}`, '—'],
  ],
);
const perSample = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000 / (WARMUP + SAMPLES);
console.log(
  `CPU per sample (sign-in, exchange, two app calls, revoke): this process ${fmt(perSample(cpu))} ms` +
    (childCpuStart?.cpu !== undefined && childCpuEnd?.cpu !== undefined
      ? `, backend ${fmt(
          (childCpuEnd.cpu.user - childCpuStart.cpu.user + childCpuEnd.cpu.system - childCpuStart.cpu.system) /
            1000 /
            (WARMUP + SAMPLES),
        )} ms`
      : ''),
);
console.log(
  `load average at end: ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
printJsonLine('revocation-to-app', { ...figures, ratioToConsoleP50: ratio, load: loadavg()[0] });

ssf?.close();
pushServer?.closeAllConnections();
pushServer?.close();
socket.ws.close();
await app.close();
await backend.stop();
