import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { OcsfRecord } from './ocsf.js';
import { SinkRefusal, type SiemTransport } from './transport.js';

/**
 * An HTTP collector: each batch is one `POST` of a JSON array of OCSF records
 * (`content-type: application/json`), with `Authorization: Bearer <token>` when a token file is
 * configured. A 2xx answer acknowledges the whole batch; anything else (or no answer in time) is
 * retried with the same batch, honouring `Retry-After` on 429 and 503.
 */
export interface HttpCollectorTarget {
  url: string;
  /** A file holding the bearer token (read once at start; never logged). */
  tokenFile?: string | undefined;
  /** PEM bundle to trust for an https collector with a private CA. */
  caFile?: string | undefined;
  timeoutMs: number;
}

/** The longest `Retry-After` honoured: a collector cannot park the export for longer. */
const MAX_RETRY_AFTER_MS = 5 * 60_000;

function retryAfterMs(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, MAX_RETRY_AFTER_MS);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.min(Math.max(0, date - Date.now()), MAX_RETRY_AFTER_MS);
}

export class HttpCollectorTransport implements SiemTransport {
  private readonly url: URL;
  private readonly token: string | undefined;
  private readonly ca: Buffer | undefined;

  constructor(private readonly target: HttpCollectorTarget) {
    this.url = new URL(target.url);
    this.token = target.tokenFile === undefined ? undefined : readFileSync(target.tokenFile, 'utf8').trim();
    this.ca = target.caFile === undefined ? undefined : readFileSync(target.caFile);
  }

  describe(): string {
    // Origin and path only: a query string may carry a collector's key.
    return `${this.url.origin}${this.url.pathname}`;
  }

  send(records: readonly OcsfRecord[]): Promise<void> {
    const body = Buffer.from(JSON.stringify(records), 'utf8');
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'content-length': String(body.length),
      'user-agent': 'baton-siem-export',
    };
    if (this.token !== undefined) headers['authorization'] = `Bearer ${this.token}`;
    const send = this.url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<void>((resolve, reject) => {
      const req = send(
        this.url,
        {
          method: 'POST',
          headers,
          timeout: this.target.timeoutMs,
          ...(this.ca === undefined ? {} : { ca: this.ca }),
        },
        (res) => {
          res.resume();
          res.on('error', reject);
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve();
            else {
              const header = res.headers['retry-after'];
              reject(
                new SinkRefusal(
                  `${this.describe()} answered ${status}`,
                  status === 429 || status === 503 ? retryAfterMs(header) : undefined,
                ),
              );
            }
          });
        },
      );
      req.on('timeout', () =>
        req.destroy(new Error(`${this.describe()} did not answer within ${this.target.timeoutMs} ms`)),
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
