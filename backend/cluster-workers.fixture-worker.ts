/**
 * A tiny stand-in for a backend worker, for backend/cluster-workers.test.ts: it follows the same
 * protocol as backend/cli.ts does in a worker (explicit identity, inherited lock, ready message,
 * SIGTERM = graceful stop, SIGINT left to the supervisor) without a database.
 * FIXTURE_MODE: `ok`, `fail-start` (worker 1 exits 1 before it is ready), `crash-loop` (worker 0 exits
 * 70 once FIXTURE_DIR/go exists, so at once after each restart), `hang-on-stop` (ignores SIGTERM). GET /crash exits 70.
 */
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';
import { CLOSE_CODES } from '../shared/protocol.js';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertInheritedDataDirLock, clusterWorkerIdentity, nodeIdFor, reportWorkerReady } from './cluster-workers.js';

const identity = clusterWorkerIdentity();
if (identity === undefined) throw new Error('not started by the supervisor');
const dir = process.env.FIXTURE_DIR ?? '';
const mode = process.env.FIXTURE_MODE ?? 'ok';
assertInheritedDataDirLock(dir, identity.lockHolder);
const nodeId = nodeIdFor(undefined, true);

if (mode === 'fail-start' && identity.index === 1) {
  process.stderr.write('fixture worker 1: failing to start\n');
  process.exit(1);
}

const server = createServer((req, res) => {
  if (req.url === '/crash') process.exit(70);
  res.setHeader('connection', 'close');
  res.end(JSON.stringify({ pid: process.pid, index: identity.index, nodeId }));
});
// WebSocket upgrades reach the workers through the supervisor's round robin as any connection does.
const sockets = new WebSocketServer({ noServer: true });
server.on('upgrade', (req, socket, head) => {
  sockets.handleUpgrade(req, socket, head, (ws) =>
    ws.send(JSON.stringify({ pid: process.pid, index: identity.index })),
  );
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  reportWorkerReady({ nodeId, port, url: `http://127.0.0.1:${port}` });
  // Worker 0 crashes once the test has seen the cluster up (it writes `go`), and at once after every restart.
  if (mode === 'crash-loop' && identity.index === 0) {
    setInterval(() => {
      if (existsSync(join(dir, 'go'))) process.exit(70);
    }, 20);
  }
});

process.on('SIGINT', () => writeFileSync(join(dir, `sigint-${identity.index}-${process.pid}`), ''));
process.on('SIGTERM', () => {
  if (mode === 'hang-on-stop') return;
  writeFileSync(join(dir, `stopped-${identity.index}-${process.pid}`), '');
  for (const ws of sockets.clients) ws.close(CLOSE_CODES.GOING_AWAY);
  server.close(() => process.exit(0));
});
