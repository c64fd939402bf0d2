import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint } from 'jose';
import { CONSOLE_HEADERS, NONCE_PATTERN, SIGNATURE_WINDOW_MS, signingInput } from '../../shared/console-auth.js';
import { BatonError } from '../../shared/errors.js';
import type { P256PublicJwk } from '../../shared/http-api.js';
import type { EphemeralRepository } from '../store/repositories.js';

export type HeaderBag = Record<string, string | string[] | undefined>;

export interface SignedRequest {
  method: string;
  path: string;
  headers: HeaderBag;
  body: Uint8Array;
}

/** The namespace of console request nonces in the store's ephemeral table. */
export const NONCE_KIND = 'console-nonce';

/**
 * Remembers nonces, in the store every node shares, long enough that a captured request can never
 * be replayed to any node: a timestamp is accepted within ±W of the clock, so a request signed at
 * `t` stays acceptable until `t + W`, and its nonce is kept until then. The expiry follows from the
 * request's own timestamp, not from the clock of the node that claimed it, so nodes whose clocks
 * differ agree on it. The nonces survive a restart with the database; expired ones are deleted by
 * the store's sweep (the server runs it).
 *
 * Claims are grouped: a claim made while no claim statement is running goes to the store at once (a
 * lone signed request, the usual case, waits for nothing); those made while one is running are
 * written together after it (`EphemeralRepository.claimMany`, one statement on PostgreSQL), so
 * thousands of consoles reconnecting at once after a failover cost a few round trips instead of one
 * each. A nonce claimed twice in one group is a replay: the second is refused.
 */
export class ReplayGuard {
  /** Claims waiting for the next statement, by key. */
  private pending = new Map<string, { expiresAt: number; settle: (claimed: boolean | Error) => void }>();
  /** A claim statement is running: new claims wait for it and go together after it. */
  private running = false;

  constructor(
    private readonly ephemeral: EphemeralRepository,
    private readonly clock: () => number,
  ) {}

  /** Returns false when the nonce was already claimed (by any node) and can still be replayed. */
  claim(key: string, signedAt: number): Promise<boolean> {
    if (this.pending.has(key)) return Promise.resolve(false);
    return new Promise((resolve, reject) => {
      this.pending.set(key, {
        expiresAt: signedAt + SIGNATURE_WINDOW_MS + 1,
        settle: (claimed) => (claimed instanceof Error ? reject(claimed) : resolve(claimed)),
      });
      if (!this.running) this.claimPending();
    });
  }

  /** Writes the waiting claims in one statement, then the ones that arrived meanwhile. Never rejects. */
  private claimPending(): void {
    const group = this.pending;
    this.pending = new Map();
    this.running = true;
    const entries = [...group].map(([key, c]) => ({ key, expiresAt: c.expiresAt }));
    let written: Promise<Set<string>>;
    try {
      written = this.ephemeral.claimMany(NONCE_KIND, entries, this.clock());
    } catch (error) {
      written = Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    written
      .then(
        (claimed) => {
          for (const [key, c] of group) c.settle(claimed.has(key));
        },
        (error: unknown) => {
          const failure = error instanceof Error ? error : new Error(String(error));
          for (const c of group.values()) c.settle(failure);
        },
      )
      .finally(() => {
        this.running = false;
        if (this.pending.size > 0) this.claimPending();
      })
      .catch(() => undefined);
  }
}

function header(headers: HeaderBag, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** RFC 7638 SHA-256 thumbprint of a console's public key: the `jkt` its tokens are bound to (`cnf.jkt`). */
export function jwkThumbprint(jwk: P256PublicJwk): Promise<string> {
  return calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, 'sha256');
}

export function importConsoleKey(jwk: P256PublicJwk): KeyObject {
  try {
    const key = createPublicKey({ key: { ...jwk }, format: 'jwk' });
    if (key.asymmetricKeyType !== 'ec') throw new Error('not an EC key');
    return key;
  } catch (cause) {
    throw new BatonError('PUBLIC_KEY_INVALID', 'The console public key is not a valid P-256 point', { cause });
  }
}

export interface SignatureHeaders {
  consoleId: string | undefined;
  timestamp: number;
  nonce: string;
  signature: Buffer;
}

/** Reads the signature headers; throws CONSOLE_AUTH_MISSING when any is absent or malformed. */
export function readSignatureHeaders(headers: HeaderBag): SignatureHeaders {
  const timestamp = header(headers, CONSOLE_HEADERS.timestamp);
  const nonce = header(headers, CONSOLE_HEADERS.nonce);
  const signature = header(headers, CONSOLE_HEADERS.signature);
  if (timestamp === undefined || nonce === undefined || signature === undefined) {
    throw new BatonError(
      'CONSOLE_AUTH_MISSING',
      `Expected the ${CONSOLE_HEADERS.timestamp}, ${CONSOLE_HEADERS.nonce} and ${CONSOLE_HEADERS.signature} headers`,
    );
  }
  if (!/^\d{1,16}$/.test(timestamp) || !NONCE_PATTERN.test(nonce) || !/^[A-Za-z0-9_-]{86}$/.test(signature)) {
    throw new BatonError('CONSOLE_AUTH_MISSING', 'Malformed console signature headers');
  }
  return {
    consoleId: header(headers, CONSOLE_HEADERS.console),
    timestamp: Number(timestamp),
    nonce,
    signature: Buffer.from(signature, 'base64url'),
  };
}

/**
 * Checks a request's signature with the given key, its freshness and its nonce.
 * Order: freshness first (cheap), then the signature, then the nonce is claimed — so a forged
 * request cannot burn a legitimate console's nonce.
 */
export async function verifySignedRequest(
  request: SignedRequest,
  parsed: SignatureHeaders,
  consoleId: string,
  key: KeyObject,
  replay: ReplayGuard,
  now: number,
): Promise<void> {
  if (Math.abs(now - parsed.timestamp) > SIGNATURE_WINDOW_MS) {
    throw new BatonError('CONSOLE_SIGNATURE_STALE', 'The request signature is outside the allowed clock window', {
      extra: { serverTime: now },
    });
  }
  const input = signingInput({
    method: request.method,
    path: request.path,
    consoleId,
    timestamp: parsed.timestamp,
    nonce: parsed.nonce,
    bodySha256: createHash('sha256').update(request.body).digest('hex'),
  });
  // The callback form: the ECDSA check runs on libuv's thread pool, the event loop only dispatches it
  // (about 5 µs of the loop against 45 µs for the synchronous call: docs/benchmarks.md, twenty-fourth session).
  const ok = await new Promise<boolean>((resolve, reject) => {
    verify('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }, parsed.signature, (error, result) =>
      error === null ? resolve(result) : reject(error),
    );
  });
  if (!ok)
    throw new BatonError('CONSOLE_SIGNATURE_INVALID', 'The request signature does not verify with the console key');
  if (!(await replay.claim(`${consoleId}:${parsed.nonce}`, parsed.timestamp))) {
    throw new BatonError('CONSOLE_SIGNATURE_REPLAYED', 'This request nonce was already used');
  }
}
