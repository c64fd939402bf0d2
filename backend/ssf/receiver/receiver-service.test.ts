import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { before, describe, it } from 'node:test';
import { BatonError } from '../../../shared/errors.js';
import { RegisterTransmitterSchema, SsfReceiver } from './receiver-service.js';
import type { TransmitterRecord } from './repository.js';
import { stall } from '../../test-kit.js';

/** The upstream's requests Baton makes to it (configuration, stream creation); `handle` may answer them. */
async function upstream(
  handle: (req: IncomingMessage, res: ServerResponse, base: string) => void,
): Promise<{ base: string; server: Server }> {
  let base = '';
  const server = createServer((req, res) => req.resume().on('end', () => handle(req, res, base)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { base, server };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** A receiver whose requests to an upstream may take 200 ms; its store and event log are in memory. */
function receiver(): SsfReceiver {
  const transmitters = new Map<string, TransmitterRecord>();
  const ssfInbound = {
    insertTransmitter: (t: TransmitterRecord) => Promise.resolve(void transmitters.set(t.id, t)),
    getTransmitter: (id: string) => Promise.resolve(transmitters.get(id)),
    setStream: (id: string, streamId: string) =>
      Promise.resolve(void Object.assign(transmitters.get(id)!, { streamId })),
    rejections: () => Promise.resolve([]),
    heldCount: () => Promise.resolve(0),
  };
  const store = { ssfInbound };
  return new SsfReceiver({
    store,
    events: { atomically: (work: (uow: unknown) => Promise<void>) => work({ store, record: () => Promise.resolve() }) },
    clock: () => Date.now(),
    upstreamTimeoutMs: 200,
  } as unknown as ConstructorParameters<typeof SsfReceiver>[0]);
}

const configuration = (base: string) => ({
  issuer: 'https://idp.example/',
  jwks_uri: `${base}/jwks.json`,
  configuration_endpoint: `${base}/ssf/streams`,
});

const registration = (base: string) =>
  RegisterTransmitterSchema.parse({
    issuer: 'https://idp.example/',
    audience: 'https://baton.example/ssf',
    configurationUrl: `${base}/.well-known/ssf-configuration`,
  });

describe('requests to an upstream transmitter', () => {
  // The first fetch of a process loads its HTTP client (tens of ms): not inside the 200 ms the cases measure.
  before(async () => {
    const { base, server } = await upstream((_req, res) => res.end());
    try {
      await (await fetch(base)).text();
    } finally {
      server.close();
    }
  });

  it('a configuration answered while the process stalled past the timeout is read, not refused', async () => {
    const { base, server } = await upstream((_req, res, base) => {
      json(res, 200, configuration(base));
      stall(600); // the answer is in Baton's socket; its 200 ms deadline passes while nothing runs
    });
    try {
      const { transmitter } = await receiver().register(registration(base), 'admin');
      assert.equal(transmitter.jwksUri, `${base}/jwks.json`);
    } finally {
      server.close();
    }
  });

  it('a stream created while the process stalled past the timeout is kept, not reported unreachable', async () => {
    const { base, server } = await upstream((req, res, base) => {
      if (req.method === 'GET') return json(res, 200, configuration(base));
      json(res, 201, { stream_id: 'stream-1' });
      stall(600);
    });
    try {
      const ssf = receiver();
      const { transmitter } = await ssf.register(registration(base), 'admin');
      const { stream } = await ssf.createStream(
        transmitter.id,
        { accessToken: 'token' },
        'https://baton.example',
        'admin',
      );
      assert.equal(stream.stream_id, 'stream-1');
    } finally {
      server.close();
    }
  });

  it('an upstream that never answers is still refused after about the timeout, as a timeout', async () => {
    const { base, server } = await upstream(() => undefined);
    try {
      const started = performance.now();
      const error = await receiver()
        .register(registration(base), 'admin')
        .then(
          () => assert.fail('registered'),
          (e: unknown) => e,
        );
      const elapsed = performance.now() - started;
      assert.ok(error instanceof BatonError);
      assert.equal(error.code, 'SSF_UPSTREAM_INVALID');
      assert.match(error.message, /^The upstream's configuration \(.*\) could not be read$/);
      assert.equal((error.cause as Error).name, 'TimeoutError');
      assert.ok(elapsed >= 190 && elapsed < 1_000, `refused after ${Math.round(elapsed)} ms`);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
