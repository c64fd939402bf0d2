import type { AdminClient, Json, TestConsole } from './backend-harness.js';
import { SoftAuthenticator, type CeremonyOverrides } from './soft-authenticator.js';
import { TEST_ORIGIN } from './backend-harness.js';

/** Creates an operator, issues a code and registers a software passkey for them on `console`. */
export async function enrolOperator(
  admin: AdminClient,
  console: TestConsole,
  options: { displayName?: string; authenticator?: SoftAuthenticator; overrides?: CeremonyOverrides } = {},
): Promise<{ operatorId: string; credentialId: string; authenticator: SoftAuthenticator }> {
  const { operator } = (await admin.ok('POST', '/v1/admin/operators', {
    displayName: options.displayName ?? 'Ada Teller',
    roles: ['teller'],
  })) as Json;
  const { code } = (await admin.ok('POST', `/v1/admin/operators/${operator.id as string}/enrolment-codes`, {})) as Json;
  const authenticator = options.authenticator ?? new SoftAuthenticator(TEST_ORIGIN);
  const { options: creation } = (await console.ok('POST', '/v1/operators/enrol/options', { code })) as Json;
  const response = authenticator.register(creation, options.overrides);
  const result = (await console.ok('POST', '/v1/operators/enrol/verify', { code, response })) as Json;
  return { operatorId: operator.id as string, credentialId: result.credential.id as string, authenticator };
}

/** Runs a usernameless sign-in with the authenticator; returns the raw HTTP result. */
export async function signIn(
  console: TestConsole,
  authenticator: SoftAuthenticator,
  overrides: CeremonyOverrides = {},
) {
  const { options } = (await console.ok('POST', '/v1/sign-in/options', {})) as Json;
  const response = authenticator.assert(options, overrides);
  return console.request('POST', '/v1/sign-in/verify', { response });
}

/**
 * The forgotten-key path by an IT code: the admin issues a one-time code for `operatorId` on `console`, and the
 * console redeems it. Resolves to the redeem answer (the capped break-glass session and its assurance token).
 */
export async function redeemBreakGlassCode(
  admin: AdminClient,
  console: TestConsole,
  operatorId: string,
): Promise<Json> {
  const { code } = (await admin.ok('POST', '/v1/admin/break-glass/codes', {
    operatorId,
    consoleId: console.id,
    reason: 'key left at home',
  })) as Json;
  return (await console.ok('POST', '/v1/break-glass/redeem', { operatorId, code })) as Json;
}
