import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SettingsService } from '@simplewebauthn/server';
import { BatonError } from '../../shared/errors.js';

/** Attestation formats whose statements carry a certificate chain to check against vendor roots. */
const CERTIFICATE_FORMATS = ['packed', 'fido-u2f', 'tpm', 'android-key'] as const;

/**
 * Loads a PEM bundle of vendor attestation roots and hands them to SimpleWebAuthn, which then
 * refuses attestation certificates that do not chain to one of them. Returns how many were loaded.
 * SimpleWebAuthn's settings are process-wide: one backend per process.
 */
export function loadAttestationRoots(file: string): number {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new BatonError('NOT_FOUND', `Cannot read the attestation roots file ${file}`, { cause });
  }
  const pems = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (pems.length === 0) throw new BatonError('SCHEMA_INVALID', `${file} holds no PEM certificate`);
  for (const [i, pem] of pems.entries()) {
    try {
      const cert = new X509Certificate(pem);
      if (!cert.ca) throw new Error('not a CA certificate');
    } catch (cause) {
      throw new BatonError('SCHEMA_INVALID', `Certificate ${i + 1} in ${file} is not a valid CA certificate`, {
        cause,
      });
    }
  }
  for (const identifier of CERTIFICATE_FORMATS) SettingsService.setRootCertificates({ identifier, certificates: pems });
  return pems.length;
}
