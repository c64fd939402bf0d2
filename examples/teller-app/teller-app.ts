import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWK } from 'jose';
import {
  ActionTokenVerifier,
  RevocationSubscription,
  SsfPushReceiver,
  SsfSubscription,
  RevocationList,
  nodeHttpGuard,
  type ActionRequirement,
  type Revocation,
} from '../../packages/verifier/src/index.js';
import { TELLER_PAGE } from './teller-page.js';

/** The sample teller app's audience in Baton's policy (`apps[].audience`). */
export const TELLER_AUDIENCE = 'urn:bank:teller';

/** What the teller app asks of each action: a lookup needs any tap, a payment a verified one within 5 minutes. */
export const TELLER_ACTIONS: Readonly<Record<string, ActionRequirement>> = {
  'customer.view': { level: 'presence' },
  'payment.approve': { level: 'verified', maxAgeSeconds: 300 },
};

export interface TellerAppOptions {
  /** Baton's backend (JWKS and revocation stream). */
  batonUrl: string;
  /** The private half of the app's `revocationKey` in Baton's policy: revocations are followed on Baton's own feed. */
  revocationKey?: JWK;
  /**
   * Or a Shared Signals receiver token (`POST /v1/admin/ssf/receivers`, scope `ssf.manage`): revocations are
   * followed on Baton's SSF stream (RFC 8936 poll) instead. Without either, revocations are not followed.
   */
  ssfToken?: string;
  /**
   * Or a receiver token with which the app takes Baton's SETs by push (RFC 8935) at `<its url>/ssf/events`
   * (Baton must be able to reach the app: https, or http on loopback).
   */
  ssfPushToken?: string;
  audience?: string;
  port?: number;
  host?: string;
  clock?: () => number;
  onRevocation?: (revocation: Revocation) => void;
  /** Called when the revocation stream cannot be followed (it retries by itself). */
  onRevocationError?: (error: Error) => void;
}

export interface TellerApp {
  url: string;
  verifier: ActionTokenVerifier;
  subscription: RevocationSubscription | SsfSubscription | undefined;
  /** The push receiver, with `ssfPushToken`. */
  push: SsfPushReceiver | undefined;
  /** Payments approved so far (id → who approved). */
  approvals: Map<string, { by: string; level: string | undefined; session: string | undefined }>;
  close(): Promise<void>;
}

const CUSTOMERS: Record<string, { id: string; name: string; balance: number }> = {
  'c-1001': { id: 'c-1001', name: 'Grace Hopper', balance: 125_000 },
  'c-1002': { id: 'c-1002', name: 'Alan Turing', balance: 4_200 },
};

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

/**
 * A small line-of-business server built only on @baton/verifier: a customer lookup (no step-up) and
 * a payment approval (step-up to `verified` within 5 minutes). Every API call carries a Baton action
 * token; a refusal answers 401/403 with its `WWW-Authenticate` challenge (RFC 9470 for a step-up).
 */
export async function startTellerApp(options: TellerAppOptions): Promise<TellerApp> {
  const audience = options.audience ?? TELLER_AUDIENCE;
  const clock = options.clock ?? Date.now;
  const subscription =
    options.ssfToken !== undefined
      ? new SsfSubscription({
          batonUrl: options.batonUrl,
          token: options.ssfToken,
          clock,
          ...(options.onRevocation === undefined ? {} : { onRevocation: options.onRevocation }),
          ...(options.onRevocationError === undefined ? {} : { onError: options.onRevocationError }),
        })
      : options.revocationKey === undefined
        ? undefined
        : new RevocationSubscription({
            batonUrl: options.batonUrl,
            audience,
            privateKey: options.revocationKey,
            clock,
            ...(options.onRevocation === undefined ? {} : { onRevocation: options.onRevocation }),
            ...(options.onRevocationError === undefined ? {} : { onError: options.onRevocationError }),
          });
  const verifier = new ActionTokenVerifier({
    audience,
    jwksUrl: new URL('/v1/tokens/jwks.json', options.batonUrl),
    actions: TELLER_ACTIONS,
    clock,
    ...(subscription === undefined ? {} : { revocations: subscription }),
    ...(options.ssfPushToken === undefined
      ? {}
      : { revocations: { refuses: (t) => pushed.refuses(t), downForMs: () => push?.downForMs() ?? 0 } }),
  });
  const pushed = new RevocationList(clock);
  let push: SsfPushReceiver | undefined;
  const lookup = nodeHttpGuard(verifier, 'customer.view', { realm: 'teller' });
  const approve = nodeHttpGuard(verifier, 'payment.approve', { realm: 'teller' });
  const approvals: TellerApp['approvals'] = new Map();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const { pathname } = new URL(req.url ?? '/', 'http://teller.invalid');
    if (pathname === '/ssf/events' && push !== undefined) {
      await push.handle(req, res);
      return;
    }
    if (req.method === 'GET' && pathname === '/') {
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-security-policy': "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
      });
      res.end(TELLER_PAGE.replace('__AUDIENCE__', audience));
      return;
    }
    const customer = /^\/api\/customers\/([a-z0-9-]{1,40})$/.exec(pathname);
    if (req.method === 'GET' && customer?.[1] !== undefined) {
      const verified = await lookup(req, res);
      if (verified === undefined) return;
      const found = CUSTOMERS[customer[1]];
      json(res, found === undefined ? 404 : 200, found ?? { error: { code: 'CUSTOMER_UNKNOWN' } });
      return;
    }
    const payment = /^\/api\/payments\/([a-z0-9-]{1,40})\/approve$/.exec(pathname);
    if (req.method === 'POST' && payment?.[1] !== undefined) {
      const verified = await approve(req, res);
      if (verified === undefined) return;
      approvals.set(payment[1], { by: verified.operator, level: verified.level, session: verified.session });
      json(res, 200, { approved: payment[1], by: verified.operator, level: verified.level });
      return;
    }
    json(res, 404, { error: { code: 'NOT_FOUND' } });
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) json(res, 500, { error: { code: 'INTERNAL' } });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${options.host ?? '127.0.0.1'}:${port}`;
  if (options.ssfPushToken !== undefined) {
    push = new SsfPushReceiver({
      batonUrl: options.batonUrl,
      token: options.ssfPushToken,
      endpointUrl: `${url}/ssf/events`,
      list: pushed,
      clock,
      ...(options.onRevocation === undefined ? {} : { onRevocation: options.onRevocation }),
      ...(options.onRevocationError === undefined ? {} : { onError: options.onRevocationError }),
    });
  }
  return {
    url,
    verifier,
    subscription,
    push,
    approvals,
    close: async () => {
      subscription?.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
