import WebSocket from 'ws';
import type { ConsoleKey } from '../../main/core/console-key.js';
import { CONSOLE_WS_PATH, PROTOCOL_VERSION, type BackendMessage } from '../../shared/protocol.js';
import type { TestConsole } from '../../test/helpers/backend-harness.js';

/**
 * A lean console WebSocket for the benchmarks: signed upgrade (the real console signature), `hello`,
 * and a message callback. Unlike the test harness's ConsoleSocket it keeps no history, so ten
 * thousand of them fit in one client process.
 */
export interface LeanSocket {
  ws: WebSocket;
  welcome: Extract<BackendMessage, { type: 'welcome' }>;
}

export function connectConsole(
  baseUrl: string,
  console: Pick<TestConsole, 'id' | 'signedHeaders'>,
  onMessage: (message: BackendMessage, ws: WebSocket) => void,
  hello: {
    policyVersion: number;
    revocationEpoch: number;
    /** As the agent sends it once it holds a policy: the hash of that policy (a match means no policy push). */
    policyHash?: string;
    /** As the agent sends it: its outbox backlog (the backend stores it for the admin console). */
    outbox?: { pending: number; max: number };
  },
): Promise<LeanSocket> {
  const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}${CONSOLE_WS_PATH}`, {
    headers: console.signedHeaders('GET', CONSOLE_WS_PATH),
    perMessageDeflate: false,
  });
  return new Promise((resolve, reject) => {
    let welcomed = false;
    ws.on('message', (data: Buffer) => {
      const message = JSON.parse(data.toString('utf8')) as BackendMessage;
      if (!welcomed && message.type === 'welcome') {
        welcomed = true;
        resolve({ ws, welcome: message });
        return;
      }
      onMessage(message, ws);
    });
    ws.once('open', () => {
      ws.send(
        JSON.stringify({
          type: 'hello',
          protocol: PROTOCOL_VERSION,
          policyVersion: hello.policyVersion,
          revocationEpoch: hello.revocationEpoch,
          ...(hello.policyHash === undefined ? {} : { policyHash: hello.policyHash }),
          ...(hello.outbox === undefined ? {} : { outbox: hello.outbox }),
          agentVersion: 'bench',
        }),
      );
    });
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    ws.once('error', reject);
    ws.once('close', (code) => {
      if (!welcomed) reject(new Error(`closed before welcome (${code})`));
    });
  });
}

/** A console identity that exists only as a key and an id (inserted into the store directly). */
export class BareConsole {
  constructor(
    readonly id: string,
    readonly key: ConsoleKey,
  ) {}

  signedHeaders(method: string, path: string, body = ''): Record<string, string> {
    return this.key.signRequest({ consoleId: this.id, method, path, body, now: Date.now() });
  }
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>) {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      for (;;) {
        const i = next++;
        if (i >= items.length) return;
        results[i] = await fn(items[i] as T, i);
      }
    }),
  );
  return results;
}
