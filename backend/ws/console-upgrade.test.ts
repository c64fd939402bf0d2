/**
 * What a console sees when its WebSocket upgrade cannot be checked because the store is busy or away
 * (10,000 consoles connecting at once on PostgreSQL: no pooled connection within the pool's connect
 * timeout). node-postgres raises such errors without a SQLSTATE code ("timeout exceeded when trying to
 * connect", "Connection terminated …", "Query read timeout"); the upgrade used to answer them
 * 500 INTERNAL, and now answers what an HTTP route answers: 503 with the stable code
 * DATABASE_UNREACHABLE (STORAGE_UNAVAILABLE for SQLite's busy/full/I/O errors) and a Retry-After.
 *
 * The first block injects each store fault into the upgrade's console read (embedded SQLite); the
 * second exhausts the real node-postgres pool of a node on its own throwaway PostgreSQL server
 * (skipped where PostgreSQL is missing, a failure with BATON_REQUIRE_POSTGRES=1).
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import WebSocket from 'ws';
import { CONSOLE_HEADERS, signingInput } from '../../shared/console-auth.js';
import type { P256PublicJwk } from '../../shared/http-api.js';
import { CONSOLE_WS_PATH } from '../../shared/protocol.js';
import { parseBackendConfig } from '../config.js';
import { jwkThumbprint } from '../crypto/console-signature.js';
import { startBackend, type Backend } from '../server.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from '../store/postgres-throwaway.js';
import type { ConsoleRecord } from '../store/repositories.js';
import { UPGRADE_RETRY_AFTER_SECONDS } from './console-channel.js';

/** An enrolled console as the agent holds it: its id and P-256 key (it signs its upgrade). */
class Console {
  readonly id = `con_${randomBytes(8).toString('hex')}`;
  private readonly privateKey: KeyObject;
  readonly publicJwk: P256PublicJwk;

  constructor() {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.privateKey = privateKey;
    this.publicJwk = publicKey.export({ format: 'jwk' }) as P256PublicJwk;
  }

  /** The headers of a signed request (main/core/console-key.ts does the same). */
  signedHeaders(method: string, path: string): Record<string, string> {
    const now = Date.now();
    const nonce = randomBytes(18).toString('base64url');
    const toSign = signingInput({
      method,
      path,
      consoleId: this.id,
      timestamp: now,
      nonce,
      bodySha256: createHash('sha256').update('').digest('hex'),
    });
    return {
      [CONSOLE_HEADERS.console]: this.id,
      [CONSOLE_HEADERS.timestamp]: String(now),
      [CONSOLE_HEADERS.nonce]: nonce,
      [CONSOLE_HEADERS.signature]: sign('sha256', Buffer.from(toSign), {
        key: this.privateKey,
        dsaEncoding: 'ieee-p1363',
      }).toString('base64url'),
    };
  }
}

/** A backend on a fresh data directory (embedded SQLite, or `databaseUrl`) with `console` enrolled. */
async function startWith(
  console: Console,
  databaseUrl?: string,
): Promise<{ backend: Backend; url: string; stop: () => Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'baton-upgrade-'));
  const config = parseBackendConfig(
    {
      port: 0,
      origins: ['http://localhost:8471'],
      logLevel: 'silent',
      durability: 'normal',
      dataDir,
      ...(databaseUrl === undefined ? {} : { databaseUrl }),
    },
    'test',
  );
  const backend = await startBackend(config, { logger: pino({ level: 'silent' }) });
  const jkt = await jwkThumbprint(console.publicJwk);
  await backend.store.transaction(async (tx) => {
    await tx.consoles.insert({
      id: console.id,
      name: null,
      channel: 'branch-kiosk',
      site: null,
      publicJwk: JSON.stringify(console.publicJwk),
      jkt,
      enrolledAt: Date.now(),
      lastSeenAt: null,
      policyVersion: 0,
      revocationEpoch: 0,
      revokedAt: null,
      revokedReason: null,
    });
  });
  return {
    backend,
    url: `http://127.0.0.1:${backend.port}`,
    stop: async () => {
      await backend.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

interface Refusal {
  status: number | undefined;
  retryAfter: string | undefined;
  code: unknown;
}

/** The console's signed upgrade, as the agent sends it; what comes back if it is refused. */
function upgrade(url: string, console: Console): Promise<Refusal | 'accepted'> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}${CONSOLE_WS_PATH}`, {
    headers: console.signedHeaders('GET', CONSOLE_WS_PATH),
    perMessageDeflate: false,
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.close();
      resolve('accepted');
    });
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      res.on('end', () => {
        const header = res.headers['retry-after'];
        resolve({
          status: res.statusCode,
          retryAfter: Array.isArray(header) ? header[0] : header,
          code: (JSON.parse(text) as { error?: { code?: unknown } }).error?.code,
        });
      });
    });
    ws.once('error', reject);
  });
}

describe('a console upgrade the store cannot check right now (embedded SQLite, the store fault injected)', () => {
  const console = new Console();
  let t: Awaited<ReturnType<typeof startWith>>;
  let get: (id: string) => Promise<ConsoleRecord | undefined>;

  before(async () => {
    t = await startWith(console);
    get = t.backend.store.consoles.get.bind(t.backend.store.consoles);
  });
  after(async () => {
    t.backend.store.consoles.get = get;
    await t.stop();
  });

  /** The console read of the next upgrade fails with `error` (then the store answers again). */
  function failNextRead(error: Error): void {
    t.backend.store.consoles.get = (id: string) => {
      t.backend.store.consoles.get = get;
      return id === console.id ? Promise.reject(error) : get(id);
    };
  }

  for (const message of [
    'timeout exceeded when trying to connect',
    'Connection terminated due to connection timeout',
    'Query read timeout',
  ]) {
    it(`node-postgres "${message}" → 503 DATABASE_UNREACHABLE with Retry-After, then the retry is accepted`, async () => {
      failNextRead(new Error(message));
      assert.deepEqual(await upgrade(t.url, console), {
        status: 503,
        retryAfter: String(UPGRADE_RETRY_AFTER_SECONDS),
        code: 'DATABASE_UNREACHABLE',
      });
      assert.equal(await upgrade(t.url, console), 'accepted');
    });
  }

  it('a statement timeout (SQLSTATE 57014) → 503 DATABASE_UNREACHABLE', async () => {
    failNextRead(Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' }));
    assert.deepEqual(await upgrade(t.url, console), {
      status: 503,
      retryAfter: String(UPGRADE_RETRY_AFTER_SECONDS),
      code: 'DATABASE_UNREACHABLE',
    });
  });

  it('SQLite busy → 503 STORAGE_UNAVAILABLE', async () => {
    failNextRead(Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' }));
    assert.deepEqual(await upgrade(t.url, console), {
      status: 503,
      retryAfter: String(UPGRADE_RETRY_AFTER_SECONDS),
      code: 'STORAGE_UNAVAILABLE',
    });
  });

  it('a fault that is not the store stays 500 INTERNAL, without Retry-After', async () => {
    failNextRead(new TypeError('x is not a function'));
    assert.deepEqual(await upgrade(t.url, console), { status: 500, retryAfter: undefined, code: 'INTERNAL' });
    assert.equal(await upgrade(t.url, console), 'accepted');
  });
});

describe('a console upgrade while every pooled PostgreSQL connection is taken', { skip: postgresSkip() }, () => {
  const console = new Console();
  let server: PostgresServer;
  let t: Awaited<ReturnType<typeof startWith>>;

  before(async () => {
    server = await startPostgres();
    t = await startWith(console, await createDatabase(server.url, 'upgrade_refusal'));
  });
  after(async () => {
    await t?.stop();
    await server?.stop();
  });

  it("the pool's connect timeout passes → 503 DATABASE_UNREACHABLE, then accepted", { timeout: 60_000 }, async () => {
    // The node's pool (10 connections) taken by transactions that wait: the upgrade's console read
    // waits for a connection until the pool's connect timeout (3 s), as under a flood of upgrades.
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const started: Promise<void>[] = [];
    const holders = Array.from(
      { length: 10 },
      () =>
        new Promise<void>((begun) => {
          started.push(
            t.backend.store.transaction(async (tx) => {
              await tx.consoles.get(console.id);
              begun();
              await held;
            }),
          );
        }),
    );
    await Promise.all(holders);
    try {
      assert.deepEqual(await upgrade(t.url, console), {
        status: 503,
        retryAfter: String(UPGRADE_RETRY_AFTER_SECONDS),
        code: 'DATABASE_UNREACHABLE',
      });
    } finally {
      release();
      await Promise.all(started);
    }
    assert.equal(await upgrade(t.url, console), 'accepted');
  });
});
