import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { lagAwareTimer } from '../lag-aware-timer.js';
import type { OcsfRecord } from './ocsf.js';
import type { SiemTransport } from './transport.js';

/**
 * Syslog (RFC 5424) over TLS (RFC 5425) with octet-counting framing (RFC 6587 §3.4.1): each record is
 * `<length> <message>`, the message `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - BOM{OCSF JSON}`.
 * Plain TCP is only for a relay on the same host (the config refuses it for any other address).
 */

/** RFC 5424 severities used: 2 critical (an integrity finding), 4 warning (a refusal), 6 informational. */
function syslogSeverity(record: OcsfRecord): number {
  const severityId = Number(record['severity_id'] ?? 1);
  if (severityId >= 4) return 2;
  if (severityId >= 3) return 4;
  return 6;
}

/** PRINTUSASCII without spaces, at most `max` characters; `-` (NILVALUE) when nothing is left. */
function header(value: string, max: number): string {
  const cleaned = value.replace(/[^\x21-\x7e]/g, '_').slice(0, max);
  return cleaned === '' ? '-' : cleaned;
}

export interface SyslogFormat {
  facility: number;
  appName: string;
  host?: string;
  procId?: string;
}

/** One record as an RFC 5424 message (no framing). MSGID is Baton's event type. */
export function formatSyslog(record: OcsfRecord, format: SyslogFormat): string {
  const pri = format.facility * 8 + syslogSeverity(record);
  const timestamp = new Date(record.time).toISOString();
  const baton = (record['unmapped'] as { baton?: { type?: string } } | undefined)?.baton;
  const msgId = header(baton?.type ?? `class-${record.class_uid}`, 32);
  return `<${pri}>1 ${timestamp} ${header(format.host ?? hostname(), 255)} ${header(format.appName, 48)} ${header(
    format.procId ?? String(process.pid),
    128,
  )} ${msgId} - \ufeff${JSON.stringify(record)}`;
}

/** Octet-counting framing: the message's length in bytes, a space, the message. */
export function frame(message: string): Buffer {
  const body = Buffer.from(message, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length} `, 'ascii'), body]);
}

export interface SyslogTarget {
  host: string;
  port: number;
  /** TLS settings, or `false` for plain TCP (a local relay only). */
  tls:
    | false
    | {
        caFile?: string | undefined;
        certFile?: string | undefined;
        keyFile?: string | undefined;
        servername?: string | undefined;
      };
  facility: number;
  appName: string;
  /** A batch counts as delivered once the connection stayed up this long after it was written. */
  settleMs: number;
  connectTimeoutMs: number;
}

export class SyslogTransport implements SiemTransport {
  private socket: Socket | TLSSocket | undefined;
  /** Set when the current socket failed or closed: the batch in flight is sent again on a new one. */
  private broken: Error | undefined;
  private readonly tlsOptions: { ca?: Buffer; cert?: Buffer; key?: Buffer; servername?: string } | undefined;

  constructor(private readonly target: SyslogTarget) {
    const tls = target.tls;
    this.tlsOptions =
      tls === false
        ? undefined
        : {
            ...(tls.caFile === undefined ? {} : { ca: readFileSync(tls.caFile) }),
            ...(tls.certFile === undefined ? {} : { cert: readFileSync(tls.certFile) }),
            ...(tls.keyFile === undefined ? {} : { key: readFileSync(tls.keyFile) }),
            ...(tls.servername === undefined ? {} : { servername: tls.servername }),
          };
  }

  describe(): string {
    return `syslog${this.target.tls === false ? '+tcp' : '+tls'}://${this.target.host}:${this.target.port}`;
  }

  async send(records: readonly OcsfRecord[]): Promise<void> {
    const socket = await this.connected();
    const data = Buffer.concat(
      records.map((record) =>
        frame(formatSyslog(record, { facility: this.target.facility, appName: this.target.appName })),
      ),
    );
    await new Promise<void>((resolve, reject) => {
      socket.write(data, (error) => (error ? reject(error) : resolve()));
    });
    // TCP has no acknowledgement: a receiver that went away shows as a reset or a close soon after.
    await new Promise((resolve) => setTimeout(resolve, this.target.settleMs));
    if (this.broken !== undefined) throw this.broken;
  }

  close(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (socket === undefined || socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      socket.once('close', () => resolve());
      socket.end();
      setTimeout(() => socket.destroy(), 1000).unref();
    });
  }

  private async connected(): Promise<Socket | TLSSocket> {
    if (this.socket !== undefined && this.broken === undefined && !this.socket.destroyed) return this.socket;
    this.socket?.destroy();
    this.socket = undefined;
    this.broken = undefined;
    const { host, port } = this.target;
    const socket = await new Promise<Socket | TLSSocket>((resolve, reject) => {
      const fail = (error: Error) => {
        timer.clear();
        candidate.destroy();
        reject(error);
      };
      // Counts only the time this process ran: after a stop or a stall, a connection (or TLS handshake) the
      // kernel completed meanwhile is read before the wait is judged, not refused on the first tick after it.
      const timer = lagAwareTimer(this.target.connectTimeoutMs, () =>
        fail(new Error(`no connection to ${this.describe()} within ${this.target.connectTimeoutMs} ms`)),
      );
      const ready = () => {
        timer.clear();
        candidate.off('error', fail);
        resolve(candidate);
      };
      const candidate =
        this.tlsOptions === undefined
          ? connectTcp({ host, port }, ready)
          : connectTls({ host, port, minVersion: 'TLSv1.2', ...this.tlsOptions }, ready);
      candidate.once('error', fail);
    });
    socket.setKeepAlive(true, 30_000);
    const markBroken = (error?: Error) => {
      this.broken ??= error ?? new Error(`${this.describe()} closed the connection`);
    };
    socket.on('error', markBroken);
    socket.on('close', () => markBroken());
    // A syslog receiver sends nothing back; whatever it does send is read and dropped.
    socket.on('data', () => undefined);
    this.socket = socket;
    return socket;
  }
}
