/**
 * Helpers for the store tests (not imported by the backend): a console row as an enrolment would
 * write it, seen last at `lastSeenAt`.
 */
import type { ConsoleRecord } from './repositories.js';

export function consoleRow(id: string, lastSeenAt: number): ConsoleRecord {
  return {
    id,
    name: null,
    channel: 'branch-kiosk',
    site: null,
    publicJwk: '{}',
    jkt: `jkt-${id}`,
    enrolledAt: lastSeenAt,
    lastSeenAt,
    policyVersion: 0,
    revocationEpoch: 0,
    revokedAt: null,
    revokedReason: null,
  };
}
