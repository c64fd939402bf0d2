import type { IncomingMessage, ServerResponse } from 'node:http';
import { VerificationError } from './errors.js';
import type { ActionTokenVerifier, VerifiedAction } from './verifier.js';

/** The bearer token of a request (`Authorization: Bearer …`), or undefined. */
export function bearerToken(req: Pick<IncomingMessage, 'headers'>): string | undefined {
  const header = req.headers.authorization;
  const match = typeof header === 'string' ? /^Bearer\s+([A-Za-z0-9_.~+/-]+=*)\s*$/i.exec(header) : null;
  return match?.[1];
}

/** Answers a refusal: its status, `WWW-Authenticate` (RFC 6750 / RFC 9470) and a JSON body with its code. */
export function sendRefusal(res: ServerResponse, error: VerificationError, realm?: string): void {
  const body = JSON.stringify(error.toJSON());
  res.writeHead(error.status, {
    'www-authenticate': error.challenge(realm),
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

type ActionOf<R> = string | ((req: R) => string);

/**
 * For plain `node:http`: `const verified = await guard(req, res)` resolves to the verified token,
 * or to undefined once it has answered the refusal itself (401/403 with the challenge).
 */
export function nodeHttpGuard(
  verifier: ActionTokenVerifier,
  action: ActionOf<IncomingMessage>,
  options: { realm?: string } = {},
): (req: IncomingMessage, res: ServerResponse) => Promise<VerifiedAction | undefined> {
  return async (req, res) => {
    try {
      return await verifier.verify(bearerToken(req), typeof action === 'string' ? action : action(req));
    } catch (error) {
      if (!(error instanceof VerificationError)) throw error;
      sendRefusal(res, error, options.realm);
      return undefined;
    }
  };
}

/** The parts of an Express request and response the middleware uses (Express is not a dependency). */
interface ExpressLikeRequest extends Pick<IncomingMessage, 'headers'> {
  baton?: VerifiedAction;
}
interface ExpressLikeResponse extends ServerResponse {
  locals?: Record<string, unknown>;
}

/**
 * Express (4 and 5) middleware: `app.post('/payments', requireAction(verifier, 'payment.approve'), handler)`.
 * On success `req.baton` (and `res.locals.baton`) hold the verified token; a refusal is answered here.
 */
export function requireAction<R extends ExpressLikeRequest>(
  verifier: ActionTokenVerifier,
  action: ActionOf<R>,
  options: { realm?: string } = {},
): (req: R, res: ExpressLikeResponse, next: (error?: unknown) => void) => void {
  return (req, res, next) => {
    verifier.verify(bearerToken(req), typeof action === 'string' ? action : action(req)).then(
      (verified) => {
        req.baton = verified;
        if (res.locals !== undefined) res.locals.baton = verified;
        next();
      },
      (error: unknown) => {
        if (error instanceof VerificationError) sendRefusal(res, error, options.realm);
        else next(error);
      },
    );
  };
}
