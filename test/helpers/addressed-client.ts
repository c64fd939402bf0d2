import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import type { Json } from './backend-harness.js';

/** What the backend answered: status, headers and the JSON body. */
export interface AddressedReply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Json;
}

/**
 * A client on another machine: its requests to the backend on loopback leave from `localAddress` (any
 * 127/8 address is local), so the backend sees each such client at its own address.
 */
export class AddressedClient {
  private readonly agent: Agent;

  constructor(
    readonly port: number,
    readonly localAddress: string,
    maxSockets = 16,
  ) {
    this.agent = new Agent({ keepAlive: true, localAddress, maxSockets });
  }

  /** POSTs `data` as `contentType` (and `headers`) to `path`. */
  send(path: string, contentType: string, data: string, headers: Record<string, string> = {}): Promise<AddressedReply> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: this.port,
          path,
          method: 'POST',
          agent: this.agent,
          headers: { 'content-type': contentType, 'content-length': Buffer.byteLength(data), ...headers },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json,
            }),
          );
        },
      );
      req.on('error', reject);
      req.end(data);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
