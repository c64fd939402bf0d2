import type { OcsfRecord } from './ocsf.js';

/** Where the exporter sends records: syslog over TLS or an HTTP collector. */
export interface SiemTransport {
  /**
   * Delivers the records, in order. Resolves once the sink has them as far as the transport can tell
   * (the HTTP collector's 2xx; for syslog, the connection still up a moment after the write); rejects
   * otherwise, and the exporter sends the same batch again later (at least once).
   */
  send(records: readonly OcsfRecord[]): Promise<void>;
  close(): Promise<void>;
  /** The target without secrets, for the admin console and logs. */
  describe(): string;
}

/** A sink answered that it cannot take this now: try again after `retryAfterMs` if it said so. */
export class SinkRefusal extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'SinkRefusal';
  }
}
