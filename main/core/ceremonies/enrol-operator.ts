import type { PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/server';
import type { CeremonyPort } from '../agent-types.js';
import type { BackendClient } from '../backend-client.js';
import { askCredential } from './authenticator.js';

/**
 * First-time operator enrolment with the code an admin issued: the backend's options, a new passkey
 * from the operator's authenticator, and the backend's verification. Needs the backend.
 */
export async function enrolOperator(
  client: Pick<BackendClient, 'call'>,
  port: CeremonyPort,
  code: string,
): Promise<{ operatorId: string; displayName: string }> {
  const { options, operator } = await client.call('operatorEnrolOptions', {}, { code });
  const response = await askCredential(
    port,
    operator.displayName,
    options as unknown as PublicKeyCredentialCreationOptionsJSON,
  );
  const result = await client.call('operatorEnrolVerify', {}, { code, response });
  return { operatorId: result.operatorId, displayName: result.displayName };
}
