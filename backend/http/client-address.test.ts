import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { ClientAddresses, clientLimitKey, isAddressOrNetwork } from './client-address.js';

function request(peer: string, forwardedFor?: string): IncomingMessage {
  return {
    socket: { remoteAddress: peer },
    headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor },
  } as unknown as IncomingMessage;
}

describe('ClientAddresses', () => {
  it('uses the socket address and ignores X-Forwarded-For when no proxy is trusted', () => {
    const addresses = new ClientAddresses([]);
    assert.equal(addresses.of(request('198.51.100.7', '203.0.113.1')), '198.51.100.7');
    assert.equal(addresses.of(request('::ffff:198.51.100.7')), '198.51.100.7');
  });

  it('ignores X-Forwarded-For from a peer that is not a listed proxy', () => {
    const addresses = new ClientAddresses(['10.0.0.5']);
    assert.equal(addresses.of(request('198.51.100.7', '203.0.113.1')), '198.51.100.7');
  });

  it('believes a trusted proxy, from the right, past every trusted hop, and never the entries the client wrote', () => {
    const addresses = new ClientAddresses(['10.0.0.0/8', 'fd00::/8']);
    assert.equal(addresses.of(request('10.0.0.5', '198.51.100.7')), '198.51.100.7');
    // The client claims to be 203.0.113.1; the proxy appended the address it really saw.
    assert.equal(addresses.of(request('10.0.0.5', '203.0.113.1, 198.51.100.7')), '198.51.100.7');
    // A chain of our own proxies: the first untrusted address from the right is the client.
    assert.equal(addresses.of(request('10.0.0.5', '203.0.113.1, 198.51.100.7, 10.1.2.3')), '198.51.100.7');
    assert.equal(addresses.of(request('fd00::1', '2001:db8::7')), '2001:db8::7');
    // A malformed entry stops the walk at the last address believed.
    assert.equal(addresses.of(request('10.0.0.5', '198.51.100.7, not-an-address')), '10.0.0.5');
    // A trusted proxy that sends no header is the client.
    assert.equal(addresses.of(request('10.0.0.5')), '10.0.0.5');
  });
});

describe('clientLimitKey', () => {
  it('keeps IPv4 addresses and groups IPv6 addresses by /64', () => {
    assert.equal(clientLimitKey('198.51.100.7'), '198.51.100.7');
    assert.equal(clientLimitKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(clientLimitKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64');
    assert.equal(clientLimitKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(clientLimitKey('::1'), '0:0:0:0::/64');
  });
});

describe('isAddressOrNetwork', () => {
  it('accepts addresses and networks, and refuses anything else', () => {
    for (const good of ['10.0.0.5', '10.0.0.0/8', 'fd00::/8', '2001:db8::1', '0.0.0.0/0']) {
      assert.ok(isAddressOrNetwork(good), good);
    }
    for (const bad of ['10.0.0.0/33', 'fd00::/129', 'proxy.internal', '10.0.0.0/8/1', '10.0.0.0/x', '']) {
      assert.ok(!isAddressOrNetwork(bad), bad);
    }
  });
});
