import type { HttpResult, Json } from './backend-harness.js';
import { describeRequest, withDeadline } from './deadline.js';
import { checkAnswer } from './route-contract.js';
import { SoftAuthenticator } from './soft-authenticator.js';

/**
 * An admin's browser on the admin console's origin, in plain Node: it runs the admin passkey
 * ceremonies with a software authenticator, keeps the session cookie the backend sets, and sends
 * the Origin header a browser sends on a state-changing request.
 */
export class AdminBrowser {
  cookie: string | undefined;
  lastSetCookie: string | undefined;

  constructor(
    readonly url: string,
    readonly origin: string,
    readonly authenticator = new SoftAuthenticator(origin),
  ) {}

  async request(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<HttpResult<Json>> {
    const url = `${this.url}${path}`;
    const { response, text } = await withDeadline(describeRequest(method, url), async (signal) => {
      const answer = await fetch(url, {
        method,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(method === 'GET' ? {} : { origin: this.origin }),
          ...(this.cookie === undefined ? {} : { cookie: this.cookie }),
          ...headers,
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal,
      });
      return { response: answer, text: await answer.text() };
    });
    const setCookie = response.headers.get('set-cookie');
    this.lastSetCookie = setCookie ?? undefined;
    if (setCookie !== null) {
      const [pair = ''] = setCookie.split(';');
      this.cookie = /=$/.test(pair) ? undefined : pair;
    }
    const parsed = text === '' ? {} : (JSON.parse(text) as Json);
    checkAnswer(method, path, response.status, parsed);
    return { status: response.status, body: parsed };
  }

  async ok(method: string, path: string, body?: unknown): Promise<Json> {
    const result = await this.request(method, path, body);
    if (result.status >= 300) throw new Error(`${method} ${path} → ${result.status} ${JSON.stringify(result.body)}`);
    return result.body;
  }

  /** Registers an admin passkey with a one-time enrolment code; signs in on success. */
  async register(code: string): Promise<HttpResult<Json>> {
    const { options } = await this.ok('POST', '/v1/admin/auth/register/options', { code });
    const response = this.authenticator.register(options);
    return this.request('POST', '/v1/admin/auth/register/verify', { code, response });
  }

  async signIn(): Promise<HttpResult<Json>> {
    const { options } = await this.ok('POST', '/v1/admin/auth/sign-in/options', {});
    return this.request('POST', '/v1/admin/auth/sign-in/verify', { response: this.authenticator.assert(options) });
  }

  async stepUp(): Promise<HttpResult<Json>> {
    const { options } = await this.ok('POST', '/v1/admin/auth/step-up/options', {});
    return this.request('POST', '/v1/admin/auth/step-up/verify', { response: this.authenticator.assert(options) });
  }
}
