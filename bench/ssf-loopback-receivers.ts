/**
 * Loopback RFC 8935 push receivers in a process of their own, for bench/ssf-delivery.ts (b): each
 * answers 202 at once and counts what it got, so that the benchmark's own CPU figure is the
 * transmitter's (backend and consoles), and the receivers' CPU is reported beside it.
 *
 * Started with `fork`; argv[2] = how many receivers. Sends `{urls}` once listening; on `{ask: 'counts'}`
 * answers `{counts, cpuMs}` (cpuMs: this process's CPU since it started listening); on `{ask: 'when',
 * atLeast}` answers `{done: true, counts, cpuMs}` once every receiver holds at least that many.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const n = Number(process.argv[2] ?? '4');
const counts = Array.from({ length: n }, () => 0);
/** Asked `{ask: 'when', atLeast}`: answers `{done: true, counts, cpuMs}` once every receiver holds that many. */
let atLeast: number | undefined;
const answerWhenDone = () => {
  if (atLeast === undefined || counts.some((c) => c < (atLeast as number))) return;
  atLeast = undefined;
  const cpu = process.cpuUsage(cpu0);
  process.send?.({ done: true, counts, cpuMs: (cpu.user + cpu.system) / 1000 });
};
const servers = counts.map((_, i) => {
  const server = createServer((req, res) => {
    req.on('data', () => undefined);
    req.on('end', () => {
      res.writeHead(202).end();
      counts[i] = (counts[i] ?? 0) + 1;
      answerWhenDone();
    });
  });
  server.keepAliveTimeout = 60_000;
  return server;
});
await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))));
const cpu0 = process.cpuUsage();
process.send?.({ urls: servers.map((s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}/events`) });
process.on('message', (message: { ask?: string; atLeast?: number }) => {
  if (message.ask === 'when') {
    atLeast = message.atLeast;
    answerWhenDone();
  }
  if (message.ask === 'counts') {
    const cpu = process.cpuUsage(cpu0);
    process.send?.({ counts, cpuMs: (cpu.user + cpu.system) / 1000 });
  }
  if (message.ask === 'exit') {
    for (const s of servers) s.closeAllConnections();
    process.exit(0);
  }
});
