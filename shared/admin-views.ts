/**
 * What the admin API answers about operators and consoles: declared once, so the backend's views
 * and the admin console's pages read the same shape. Types only: the admin bundle imports nothing
 * at run time from here.
 */
export interface OperatorView {
  id: string;
  displayName: string;
  roles: string[];
  createdAt: number;
  failedAttempts: number;
  revokedAt: number | null;
  revokedReason: string | null;
}

export interface ConsoleView {
  id: string;
  name: string | null;
  channel: string;
  site: string | null;
  enrolledAt: number;
  lastSeenAt: number | null;
  online: boolean;
  policyVersion: number;
  revocationEpoch: number;
  revokedAt: number | null;
  revokedReason: string | null;
  /** The agent's outbox backlog as it reported it in its last hello (null: never reported). */
  outbox: { pending: number; max: number; reportedAt: number } | null;
}
