/**
 * An upstream identity provider for Baton as a Shared Signals receiver (sources in), written here from SSF 1.0: a real
 * HTTP server with a real RS256 key, publishing its ssf-configuration and JWKS, with stream creation, status and
 * verification endpoints (each needing `Bearer ${ACCESS_TOKEN}`), signing SETs and pushing them to the RFC 8935
 * endpoint Baton gave it when it created the stream. (Its counterpart for Baton's own transmitter, the receiver that
 * checks what Baton sends, is test/helpers/ssf-receiver.ts.)
 *
 * What a test varies is a mode, changed between requests: `endpoints` (where its configuration says its management
 * endpoints are), `statusMode` (how the status endpoint answers) and `verifyMode` (the state and stream its
 * verification SET carries). What it was asked is kept: `requests` (every request), `statusRequests`, `verifyRequests`.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import type { Json } from './backend-harness.js';
import { describeRequest, withDeadline } from './deadline.js';

/** The audience Baton is registered with at the upstream (the `aud` of the SETs it signs). */
export const AUDIENCE = 'https://baton.bank.example/ssf';
/** The access token the upstream issued to Baton for its stream management endpoints. */
export const ACCESS_TOKEN = 'upstream-issued-token';
const SSF = 'https://schemas.openid.net/secevent/ssf/event-type/';
const KID = 'idp-1';

export class SsfUpstream {
  server!: Server;
  /** Its origin as registered (localhost); `other` is the same server under another origin (127.0.0.1). */
  url = '';
  other = '';
  key!: CryptoKey;
  jwk!: JWK;
  /** Where Baton asked it to push, and with what Authorization header (its stream creation request). */
  delivery: { endpoint_url: string; authorization_header: string } | undefined;
  /** Every request it got: method, host and path. */
  requests: string[] = [];
  statusRequests: Json[] = [];
  verifyRequests: Json[] = [];
  /**
   * Its management endpoints (stream creation, status, verification): `ok`, on its own origin; `foreign`, its
   * configuration names them on the other origin; `redirect`, they answer 307 to the other origin.
   */
  endpoints: 'ok' | 'foreign' | 'redirect' = 'ok';
  /** How the status endpoint answers: normally, 503, or by cutting the connection. */
  statusMode: 'ok' | '503' | 'reset' = 'ok';
  /** The verification SET: the state and stream asked for, another state, or another stream (`stream-2`). */
  verifyMode: 'echo' | 'wrong-state' | 'other-stream' = 'echo';
  /** The answers Baton gave to the verification SETs pushed. */
  verificationPushes: number[] = [];
  private pending: Promise<void>[] = [];

  get issuer(): string {
    return `${this.url}/`;
  }

  /** The body registering it as a source (POST /v1/admin/ssf/transmitters), found by its configuration URL. */
  registration(name = 'Workforce IdP'): Json {
    return {
      name,
      issuer: this.issuer,
      audience: AUDIENCE,
      configurationUrl: `${this.url}/.well-known/ssf-configuration`,
    };
  }

  async start(): Promise<void> {
    const pair = await generateKeyPair('RS256', { modulusLength: 2048 });
    this.key = pair.privateKey;
    this.jwk = { ...(await exportJWK(pair.publicKey)), kid: KID, alg: 'RS256', use: 'sig' };
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.requests.push(`${req.method} ${req.headers.host} ${req.url}`);
        const json = (status: number, body?: unknown, headers: Record<string, string> = {}) => {
          res.writeHead(status, body === undefined ? headers : { ...headers, 'content-type': 'application/json' });
          res.end(body === undefined ? undefined : JSON.stringify(body));
        };
        const body = () => JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Json;
        if (req.url === '/.well-known/ssf-configuration') {
          const at = this.endpoints === 'foreign' ? this.other : this.url;
          return json(200, {
            spec_version: '1_0',
            issuer: this.issuer,
            jwks_uri: `${this.url}/jwks.json`,
            delivery_methods_supported: ['urn:ietf:rfc:8935'],
            configuration_endpoint: `${at}/ssf/streams`,
            status_endpoint: `${at}/ssf/status`,
            verification_endpoint: `${at}/ssf/verify`,
          });
        }
        if (req.url === '/jwks.json') return json(200, { keys: [this.jwk] });
        if (this.endpoints === 'redirect' && req.url?.startsWith('/ssf/')) {
          return json(307, undefined, { location: `${this.other}/elsewhere${req.url}` });
        }
        if (req.headers.authorization !== `Bearer ${ACCESS_TOKEN}`) return json(401, { error: 'invalid_token' });
        if (req.url === '/ssf/streams' && req.method === 'POST') {
          this.delivery = body().delivery as SsfUpstream['delivery'];
          return json(201, { stream_id: 'stream-1', iss: this.issuer, aud: AUDIENCE, delivery: this.delivery });
        }
        if (req.url === '/ssf/status' && req.method === 'POST') {
          const asked = body();
          this.statusRequests.push(asked);
          if (this.statusMode === 'reset') return req.socket.destroy();
          if (this.statusMode === '503') return json(503, { error: 'temporarily_unavailable' });
          return json(200, { stream_id: asked.stream_id, status: asked.status, reason: asked.reason });
        }
        if (req.url === '/ssf/verify' && req.method === 'POST') {
          const asked = body();
          this.verifyRequests.push(asked);
          json(204);
          // SSF 1.0 §8.1.4: the verification event goes over the stream, carrying the state (here after the 204).
          const state = this.verifyMode === 'wrong-state' ? `not-${asked.state as string}` : (asked.state as string);
          const streamId = this.verifyMode === 'other-stream' ? 'stream-2' : (asked.stream_id as string);
          this.pending.push(this.pushVerification(streamId, state));
          return undefined;
        }
        json(404, {});
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const port = (this.server.address() as AddressInfo).port;
    this.url = `http://localhost:${port}`;
    this.other = `http://127.0.0.1:${port}`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Resolves once the verification SETs sent so far have been answered. */
  async settled(): Promise<void> {
    await Promise.all(this.pending.splice(0));
  }

  /** A SET as it signs it: one event of `type` (with `event` as its body) about `subject`. */
  async set(type: string, subject: Json, event: Json = {}): Promise<{ jwt: string; jti: string }> {
    const jti = randomUUID();
    const jwt = await new SignJWT({
      iss: this.issuer,
      jti,
      iat: Math.floor(Date.now() / 1000),
      aud: AUDIENCE,
      sub_id: subject,
      events: { [type]: event },
    })
      .setProtectedHeader({ alg: 'RS256', typ: 'secevent+jwt', kid: KID })
      .sign(this.key);
    return { jwt, jti };
  }

  /** Pushes a SET the way its stream delivers (the endpoint and Authorization header Baton gave it). */
  async push(jwt: string): Promise<{ status: number; body: Json }> {
    assert.ok(this.delivery, 'a stream was created');
    const { endpoint_url: endpoint, authorization_header: authorization } = this.delivery;
    const { status, text } = await withDeadline(describeRequest('POST', endpoint), async (signal) => {
      const response = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/secevent+jwt', authorization },
        body: jwt,
        signal,
      });
      return { status: response.status, text: await response.text() };
    });
    return { status, body: text === '' ? undefined : (JSON.parse(text) as Json) };
  }

  private async pushVerification(streamId: string, state: string): Promise<void> {
    const { jwt } = await this.set(`${SSF}verification`, { format: 'opaque', id: streamId }, { state });
    this.verificationPushes.push((await this.push(jwt)).status);
  }
}
