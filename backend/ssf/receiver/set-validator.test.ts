import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import type { Store } from '../../store/repositories.js';
import type { TransmitterRecord } from './repository.js';
import { CAEP, SetRefusal, TransmitterKeys, validateSet } from './set-validator.js';
import { stall } from '../../test-kit.js';

/** A transmitter's `jwks_uri`; `handle` may answer its requests. */
async function jwksServer(handle: (res: ServerResponse) => void): Promise<{ uri: string; server: Server }> {
  const server = createServer((req, res) => req.resume().on('end', () => handle(res)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { uri: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`, server };
}

const transmitter = (jwksUri: string): TransmitterRecord => ({
  id: 'tx-1',
  name: 'IdP',
  issuer: 'https://idp.example/',
  audience: 'https://baton.example/ssf',
  configurationUrl: null,
  jwksUri,
  pinnedJwks: null,
  pushTokenHash: '',
  maxAgeSeconds: 300,
  streamId: null,
  createdAt: 0,
  createdBy: 'admin',
  disabledAt: null,
  accepted: 0,
  lastSetAt: null,
  lastJti: null,
  lastAction: null,
  status: 'enabled',
  statusReason: null,
  statusChangedAt: null,
  statusChangedBy: null,
  upstreamStatus: null,
  verifyState: null,
  verifyRequestedAt: null,
  verifyReceivedAt: null,
  verifyJti: null,
  verifyError: null,
});

async function signer(): Promise<{ jwk: JWK; set: (jti: string) => Promise<Buffer> }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const set = async (jti: string) =>
    Buffer.from(
      await new SignJWT({ events: { [`${CAEP}session-revoked`]: { subject: { format: 'opaque', id: 'u1' } } } })
        .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'secevent+jwt' })
        .setIssuer('https://idp.example/')
        .setAudience('https://baton.example/ssf')
        .setJti(jti)
        .setIssuedAt()
        .sign(privateKey),
    );
  return { jwk, set };
}

const store = { ephemeral: { claimOnce: () => Promise.resolve(true) } } as unknown as Store;
const CONTENT_TYPE = 'application/secevent+jwt';

/** What a SET of the transmitter whose JWKS is at `uri` is refused with, its keys fetched within 200 ms. */
async function refusalOf(uri: string, jws: Buffer): Promise<SetRefusal> {
  const keys = new TransmitterKeys({ jwksTimeoutMs: 200 });
  const error = await validateSet(transmitter(uri), jws, CONTENT_TYPE, { keys, store, now: Date.now() }).then(
    () => assert.fail('validated'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof SetRefusal, String(error));
  return error;
}

describe("fetching a transmitter's JWKS", () => {
  it('a JWKS answered while the process stalled past the deadline is read, and the SET validates', async () => {
    const { jwk, set } = await signer();
    let requests = 0;
    const { uri, server } = await jwksServer((res) => {
      requests++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
      stall(600); // the JWKS is in Baton's socket; its 200 ms deadline passes while nothing runs
    });
    try {
      const keys = new TransmitterKeys({ jwksTimeoutMs: 200 });
      const t = transmitter(uri);
      const valid = await validateSet(t, await set('jti-1'), CONTENT_TYPE, { keys, store, now: Date.now() });
      assert.equal(valid.jti, 'jti-1');
      // jose's cache is unchanged: the next SET is verified without fetching the JWKS again.
      await validateSet(t, await set('jti-2'), CONTENT_TYPE, { keys, store, now: Date.now() });
      assert.equal(requests, 1);
    } finally {
      server.close();
    }
  });

  it('a JWKS URI that never answers is refused after about the deadline, as before', async () => {
    const { set } = await signer();
    const { uri, server } = await jwksServer(() => undefined);
    try {
      const jws = await set('jti-1');
      const started = performance.now();
      const error = await refusalOf(uri, jws);
      const elapsed = performance.now() - started;
      assert.equal(error.code, 'SSF_KEYS_UNAVAILABLE');
      assert.equal(error.err, 'invalid_key');
      assert.equal(error.message, "The transmitter's keys could not be fetched: request timed out");
      assert.ok(elapsed >= 190 && elapsed < 3_000, `refused after ${Math.round(elapsed)} ms (not jose's 5 s)`);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('a JWKS URI answering an error status is a 503 to retry, not a signature refused for good', async () => {
    const { set } = await signer();
    const { uri, server } = await jwksServer((res) => res.writeHead(503).end('maintenance'));
    try {
      const error = await refusalOf(uri, await set('jti-1'));
      // RFC 8935: a 400 tells the transmitter not to send the SET again; the keys being unavailable is transient.
      assert.equal(error.code, 'SSF_KEYS_UNAVAILABLE');
      assert.equal(error.err, 'invalid_key');
      assert.equal(error.message, "The transmitter's keys could not be fetched: its jwks_uri answered 503");
    } finally {
      server.close();
    }
  });
});

describe("SSF's own events name the source's stream", () => {
  const STREAM_UPDATED = 'https://schemas.openid.net/secevent/ssf/event-type/stream-updated';

  /**
   * A stream-updated SET of the transmitter whose subject is given as `sub_id` or, as before SSF 1.0, in the event
   * (`streamId` null: the event's subject is `null`).
   */
  async function streamUpdated(where: 'sub_id' | 'event', streamId: string | null) {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    const subject = streamId === null ? null : { format: 'opaque', id: streamId };
    const jws = Buffer.from(
      await new SignJWT({
        ...(where === 'sub_id' ? { sub_id: subject } : {}),
        events: { [STREAM_UPDATED]: { status: 'paused', ...(where === 'event' ? { subject } : {}) } },
      })
        .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'secevent+jwt' })
        .setIssuer('https://idp.example/')
        .setAudience('https://baton.example/ssf')
        .setJti(`jti-${where}-${String(streamId)}`)
        .setIssuedAt()
        .sign(privateKey),
    );
    return { jwk, jws };
  }

  it('accepts the stream named as sub_id or as the event subject; refuses another stream, or a null subject, either way', async () => {
    for (const where of ['sub_id', 'event'] as const) {
      for (const named of ['str_mine', 'str_other', ...(where === 'event' ? [null] : [])]) {
        const { jwk, jws } = await streamUpdated(where, named);
        const keys = new TransmitterKeys({ jwksTimeoutMs: 200 });
        const t = { ...transmitter('https://idp.example/jwks.json'), pinnedJwks: JSON.stringify({ keys: [jwk] }) };
        const outcome = await validateSet({ ...t, streamId: 'str_mine' }, jws, CONTENT_TYPE, {
          keys,
          store,
          now: Date.now(),
        }).then(
          (valid) => valid.type,
          (e: unknown) => (e instanceof SetRefusal ? e.code : String(e)),
        );
        assert.equal(
          outcome,
          named === 'str_mine' ? STREAM_UPDATED : 'SSF_SET_STREAM_MISMATCH',
          `${where} naming ${String(named)}`,
        );
      }
    }
  });
});
