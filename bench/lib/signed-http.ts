/**
 * Full sign-ins over console-signed HTTP, as a console makes them: POST /v1/sign-in/options → the
 * soft authenticator's assertion → POST /v1/sign-in/verify, each request signed with the console key,
 * over keep-alive connections. Shared by bench/sign-in-throughput.ts and bench/cluster-sign-in.ts.
 */
import { Agent, request } from 'node:http';
import type { Json, TestConsole } from '../../test/helpers/backend-harness.js';
import type { SoftAuthenticator } from '../../test/helpers/soft-authenticator.js';

/** An operator signing in at one of the benchmark's consoles. */
export interface BenchOperator {
  operatorId: string;
  authenticator: SoftAuthenticator;
  /** Index of the console the operator works at. */
  consoleIndex: number;
}

/** One sign-in's wall time and the part of it the soft authenticator spent signing (client work). */
export interface SignInSample {
  totalMs: number;
  clientMs: number;
  resumed: boolean;
}

export function httpSignIns(url: string, consoles: readonly TestConsole[]) {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const { hostname, port } = new URL(url);
  const post = (console: TestConsole, path: string, payload: unknown): Promise<Json> => {
    const body = JSON.stringify(payload);
    const headers = { ...console.signedHeaders('POST', path, body), 'content-type': 'application/json' };
    return new Promise((resolve, reject) => {
      const req = request({ agent, hostname, port, path, method: 'POST', headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if ((res.statusCode ?? 0) >= 300) reject(new Error(`${path} → ${res.statusCode} ${text}`));
          else resolve(JSON.parse(text) as Json);
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  };
  return {
    agent,
    signIn: async (op: BenchOperator): Promise<SignInSample> => {
      const console = consoles[op.consoleIndex] as TestConsole;
      const t0 = performance.now();
      const { options } = await post(console, '/v1/sign-in/options', {});
      const t1 = performance.now();
      const response = op.authenticator.assert(options);
      const t2 = performance.now();
      const result = await post(console, '/v1/sign-in/verify', { response });
      const t3 = performance.now();
      if (typeof result.token !== 'string' || result.session.operatorId !== op.operatorId) {
        throw new Error('bad sign-in');
      }
      return { totalMs: t3 - t0, clientMs: t2 - t1, resumed: result.resumed === true };
    },
  };
}
