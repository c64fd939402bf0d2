/**
 * The naive fan-out anchor (../shared/anchors/ws-broadcast.mjs: one plain `ws` server, N clients in a
 * child process, one message to all, wait for every answer) with the clients' work per message
 * switchable, to show how much of an all-acknowledged round on this machine is the simulated
 * consoles' own CPU (they share the two cores with the server):
 *
 *   plain    what the anchor's clients do: answer 'ack' without reading the message;
 *   parse    what every simulated console of bench/cluster-revocation.ts must do: decode and
 *            JSON.parse the frame, answer a JSON ack naming its epoch;
 *   receipt  parse, plus a receipt per console and epoch in a Map (what bench/lib/revocation-receipts.ts keeps).
 *
 * Nothing of Baton runs here. Modes are alternated in one run, so their figures share the minutes.
 *
 *   node --import tsx bench/anchor-client-work.ts [--consoles 10000] [--rounds 20] [--sets 4]
 *
 * Prints one JSON line per run (mode, all-acked p50 / p99, CPU ms per round of the server and of the
 * clients' process) and a table of the means per mode.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket, { WebSocketServer, type RawData } from 'ws';
import { fmt, printTable } from './lib/report.js';

const MODES = ['plain', 'parse', 'receipt'] as const;
type Mode = (typeof MODES)[number];

interface RunResult {
  mode: Mode;
  p50: number;
  p99: number;
  serverCpuMs: number;
  clientCpuMs: number;
}

if (process.argv[2] === '--clients')
  runClients(Number(process.argv[3]), Number(process.argv[4]), process.argv[5] as Mode);
else await main();

/** The child: `n` clients of the server at `port`, each answering every message as `mode` says. */
function runClients(port: number, n: number, mode: Mode): void {
  const receipts = new Map<number, Map<string, number>>();
  let open = 0;
  for (let i = 0; i < n; i++) {
    const id = `console-${i}`;
    const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
    ws.on('open', () => {
      if (++open === n) process.send?.('ready');
    });
    ws.on('message', (data: RawData) => {
      if (mode === 'plain') {
        ws.send('ack');
        return;
      }
      const message = JSON.parse((data as Buffer).toString('utf8')) as { epoch: number };
      const at = performance.now();
      ws.send(JSON.stringify({ type: 'ack', of: 'revocation', epoch: message.epoch }));
      if (mode !== 'receipt') return;
      let byConsole = receipts.get(message.epoch);
      if (byConsole === undefined) receipts.set(message.epoch, (byConsole = new Map()));
      if (!byConsole.has(id)) byConsole.set(id, at);
    });
    ws.on('error', (error) => console.error('client error', error.message));
  }
  process.on('message', (m) => {
    if (m === 'cpu') process.send?.({ cpu: process.cpuUsage() });
  });
}

async function runOnce(mode: Mode, consoles: number, rounds: number): Promise<RunResult> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false, maxPayload: 64 * 1024 });
  await once(wss, 'listening');
  let acks = 0;
  let waiting: { need: number; resolve: () => void } | undefined;
  wss.on('connection', (ws) =>
    ws.on('message', () => {
      acks++;
      if (waiting !== undefined && acks >= waiting.need) {
        const w = waiting;
        waiting = undefined;
        w.resolve();
      }
    }),
  );
  const { port } = wss.address() as { port: number };
  const child = fork(fileURLToPath(import.meta.url), ['--clients', String(port), String(consoles), mode], {
    execArgv: process.execArgv,
  });
  try {
    await new Promise<void>((resolve) => child.on('message', (m) => m === 'ready' && resolve()));
    while (wss.clients.size < consoles) await new Promise((r) => setTimeout(r, 50));
    const clientCpu = () =>
      new Promise<number>((resolve) => {
        child.once('message', (m) => {
          const { cpu } = m as { cpu: NodeJS.CpuUsage };
          resolve((cpu.user + cpu.system) / 1000);
        });
        child.send('cpu');
      });
    // The anchor's message: a revocation of one operator, padded to its size.
    const payload = (epoch: number) =>
      JSON.stringify({
        type: 'revocation',
        epoch,
        items: [{ kind: 'operator', id: 'o'.repeat(36), reason: 'revoked by admin', at: Date.now() }],
        pad: 'x'.repeat(300),
      });
    const client0 = await clientCpu();
    const server0 = process.cpuUsage();
    const latencies: number[] = [];
    for (let r = 1; r <= rounds; r++) {
      acks = 0;
      const data = payload(r);
      const t0 = performance.now();
      const done = new Promise<void>((resolve) => (waiting = { need: consoles, resolve }));
      for (const client of wss.clients) client.send(data);
      await done;
      latencies.push(performance.now() - t0);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const server = process.cpuUsage(server0);
    const clientMs = (await clientCpu()) - client0;
    latencies.sort((a, b) => a - b);
    return {
      mode,
      p50: anchorPercentile(latencies, 0.5),
      p99: anchorPercentile(latencies, 0.99),
      serverCpuMs: (server.user + server.system) / 1000 / rounds,
      clientCpuMs: clientMs / rounds,
    };
  } finally {
    child.kill();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  }
}

/** The anchor's own percentile (../shared/anchors/load.mjs), so `plain` reports what the anchor does. */
function anchorPercentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      consoles: { type: 'string', default: '10000' },
      rounds: { type: 'string', default: '20' },
      sets: { type: 'string', default: '4' },
    },
  });
  const consoles = Number(values.consoles);
  const rounds = Number(values.rounds);
  const sets = Number(values.sets);
  const results: RunResult[] = [];
  for (let set = 0; set < sets; set++) {
    for (const mode of MODES) {
      const load = loadavg()[0]?.toFixed(2);
      const result = await runOnce(mode, consoles, rounds);
      results.push(result);
      console.log(JSON.stringify({ benchmark: 'anchor-client-work', consoles, rounds, load1: load, ...result }));
    }
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  printTable(
    `anchor with the clients' work switched (${consoles} clients, ${rounds} rounds a run, ${sets} runs a mode, means)`,
    ['clients do', 'all acked p50 ms', 'p99 ms', 'server CPU ms / round', 'clients CPU ms / round'],
    MODES.map((mode) => {
      const of = results.filter((r) => r.mode === mode);
      return [
        mode,
        fmt(mean(of.map((r) => r.p50)), 1),
        fmt(mean(of.map((r) => r.p99)), 1),
        fmt(mean(of.map((r) => r.serverCpuMs)), 0),
        fmt(mean(of.map((r) => r.clientCpuMs)), 0),
      ];
    }),
  );
}
