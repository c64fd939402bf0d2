/**
 * A receiver registered with a test backend's Shared Signals transmitter (POST /v1/admin/ssf/receivers): its bearer
 * token and audience, its calls to the transmitter's receiver-facing API (/ssf/streams, /ssf/status, /ssf/verify, …),
 * and conformance receivers (test/helpers/ssf-receiver.ts) listening for what the transmitter pushes to it.
 * Kept apart from ssf-receiver.ts, which Playwright loads too, so that it does not load the backend harness.
 */
import { httpJson, type HttpResult, type Json, type TestBackend } from './backend-harness.js';
import { ConformanceReceiver } from './ssf-receiver.js';

export class RegisteredReceiver {
  private readonly listening: ConformanceReceiver[] = [];

  private constructor(
    private readonly t: TestBackend,
    readonly token: string,
    readonly audience: string,
  ) {}

  /** Registers a receiver named `name` with `scopes` (by the backend's admin). */
  static async register(t: TestBackend, name: string, scopes = ['ssf.manage']): Promise<RegisteredReceiver> {
    const issued = (await t.admin.ok('POST', '/v1/admin/ssf/receivers', { name, scopes })) as Json;
    return new RegisteredReceiver(t, issued.token as string, issued.receiver.audience as string);
  }

  /** A call to the transmitter with this receiver's bearer token. */
  call(method: string, path: string, body?: unknown): Promise<HttpResult<Json>> {
    return httpJson(`${this.t.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.token}` },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  }

  /** A conformance receiver listening (its `url` a push endpoint), checking SETs for this audience against the JWKS. */
  async listen(): Promise<ConformanceReceiver> {
    const receiver = new ConformanceReceiver({
      issuer: this.t.backend.adminOrigin,
      audience: this.audience,
      jwksUri: `${this.t.url}/ssf/jwks.json`,
    });
    this.listening.push(receiver);
    return receiver.listen();
  }

  /** Closes the conformance receivers it started. */
  async close(): Promise<void> {
    for (const r of this.listening.splice(0)) await r.close();
  }
}
