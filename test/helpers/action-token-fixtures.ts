import { generateKeyPair, exportJWK, type JWK } from 'jose';
import { DEFAULT_POLICY, type Policy } from '../../shared/policy.js';
import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT } from '../../shared/action-tokens.js';
import type { AdminClient, HttpResult, Json, TestConsole } from './backend-harness.js';

export const TELLER_AUDIENCE = 'urn:bank:teller';
/** Where the teller page is served in the tests' workspaces (`apps[].workspaceOrigins`). */
export const TELLER_WORKSPACE_ORIGIN = 'https://teller.bank.example';

/** An app key pair for the revocation stream login (the public half goes in the policy). */
export async function appKeyPair(): Promise<{ publicJwk: JWK; privateJwk: JWK }> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  return { publicJwk: await exportJWK(publicKey), privateJwk: await exportJWK(privateKey) };
}

/** The default policy with the teller app and an action the branch kiosk may never do. */
export function tellerPolicy(
  revocationKey: JWK,
  tokenTtlSeconds = 600,
  workspaceOrigins: [string, ...string[]] = [TELLER_WORKSPACE_ORIGIN],
): Policy {
  const { kty, crv, x, y } = revocationKey as { kty: 'EC'; crv: 'P-256'; x: string; y: string };
  return {
    ...DEFAULT_POLICY,
    actions: {
      ...DEFAULT_POLICY.actions,
      'account.close': { level: 'verified', maxAgeSeconds: 300, channels: ['contact-centre'] },
    },
    apps: [
      {
        audience: TELLER_AUDIENCE,
        name: 'Teller',
        actions: ['customer.view', 'payment.approve', 'account.close'],
        workspaceOrigins,
        tokenTtlSeconds,
        revocationKey: { kty, crv, x, y },
      },
    ],
  };
}

export async function publishPolicy(admin: AdminClient, policy: Policy): Promise<number> {
  const current = (await admin.ok('GET', '/v1/admin/policy')) as { version: number };
  const published = (await admin.ok('POST', '/v1/admin/policy', { baseVersion: current.version, policy })) as {
    version: number;
  };
  return published.version;
}

/** The console's RFC 8693 exchange of its session's assurance token for an action token. */
export function exchange(
  console: TestConsole,
  subjectToken: string,
  action: string,
  audience = TELLER_AUDIENCE,
): Promise<HttpResult<Json>> {
  return console.request('POST', '/v1/tokens/exchange', {
    grant_type: TOKEN_EXCHANGE_GRANT,
    subject_token: subjectToken,
    subject_token_type: ACCESS_TOKEN_TYPE,
    audience,
    scope: action,
  });
}
