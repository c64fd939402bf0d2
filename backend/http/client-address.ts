import { BlockList, isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';

/** `203.0.113.7`, `10.0.0.0/8`, `2001:db8::1` or `2001:db8::/32`: an address or a network. */
export function isAddressOrNetwork(value: string): boolean {
  const [address = '', bits, ...rest] = value.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (bits === undefined) return true;
  if (!/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}

/** `::ffff:203.0.113.7` (an IPv4 client on a dual-stack socket) is `203.0.113.7`. */
function normalise(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return (mapped?.[1] ?? address).toLowerCase();
}

/**
 * Who sent a request, for per-client limits and the audit trail. The TCP peer's address is the
 * client, unless that peer is one of the configured `trustProxy` addresses or networks: then
 * `X-Forwarded-For` is read from the right (the entry the trusted proxy appended) past every
 * trusted proxy, and the first untrusted address is the client. Entries added by anyone before the
 * first untrusted hop are the client's own claims and are never believed. A malformed entry stops
 * the walk at the last hop that was believed. With no `trustProxy` (the default), `X-Forwarded-For`
 * is ignored altogether.
 */
export class ClientAddresses {
  private readonly trusted = new BlockList();
  private readonly anyTrusted: boolean;

  constructor(trustProxy: readonly string[]) {
    for (const entry of trustProxy) {
      const [address = '', bits] = entry.split('/');
      const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) this.trusted.addAddress(normalise(address), type);
      else this.trusted.addSubnet(normalise(address), Number(bits), type);
    }
    this.anyTrusted = trustProxy.length > 0;
  }

  of(req: IncomingMessage): string {
    let client = normalise(req.socket.remoteAddress ?? 'unknown');
    if (!this.anyTrusted || !this.isTrusted(client)) return client;
    const header = req.headers['x-forwarded-for'];
    const hops = (Array.isArray(header) ? header.join(',') : (header ?? ''))
      .split(',')
      .map((hop) => hop.trim())
      .filter((hop) => hop !== '');
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = normalise(hops[i] ?? '');
      if (isIP(hop) === 0) break;
      client = hop;
      if (!this.isTrusted(hop)) break;
    }
    return client;
  }

  private isTrusted(address: string): boolean {
    const family = isIP(address);
    if (family === 0) return false;
    return this.trusted.check(address, family === 6 ? 'ipv6' : 'ipv4');
  }
}

/**
 * The key a client's limits are kept under: an IPv4 address, or the /64 network of an IPv6 one
 * (one subscriber, one LAN, usually holds a whole /64, so its addresses count as one client).
 */
export function clientLimitKey(address: string): string {
  if (isIP(address) !== 6) return address;
  const [head = '', tail] = address.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups =
    tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}
