import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UNAUTHENTICATED_REFUSAL_EVENTS as LIMITS, UnauthenticatedRefusalTrail } from './refusal-trail.js';

describe('UnauthenticatedRefusalTrail', () => {
  it('records `perClient` refusals of a client per window; its next recorded one counts those left out', () => {
    let now = 1_000_000;
    const trail = new UnauthenticatedRefusalTrail(() => now);
    for (let i = 0; i < LIMITS.perClient; i++) {
      assert.deepEqual(trail.admit('198.51.100.7'), { unrecordedRefusals: 0, unrecordedAcrossClients: 0 });
    }
    for (let i = 0; i < 7; i++) assert.equal(trail.admit('198.51.100.7'), undefined);
    assert.deepEqual(trail.admit('198.51.100.8'), { unrecordedRefusals: 0, unrecordedAcrossClients: 0 }, 'per client');
    now += LIMITS.windowMs - 1;
    assert.equal(trail.admit('198.51.100.7'), undefined);
    now += 1;
    assert.deepEqual(trail.admit('198.51.100.7'), { unrecordedRefusals: 8, unrecordedAcrossClients: 0 });
    assert.deepEqual(trail.admit('198.51.100.7'), { unrecordedRefusals: 0, unrecordedAcrossClients: 0 });
  });

  it('counts the addresses of one IPv6 /64 as one client', () => {
    const trail = new UnauthenticatedRefusalTrail(() => 1_000_000);
    for (let i = 0; i < LIMITS.perClient; i++) assert.ok(trail.admit(`2001:db8:1:2::${i + 1}`));
    assert.equal(trail.admit('2001:db8:1:2:ffff::1'), undefined);
    assert.ok(trail.admit('2001:db8:1:3::1'), 'another /64');
  });

  it('holds back events past the cap for all clients together, and says so in the next one let through', () => {
    let now = 1_000_000;
    const trail = new UnauthenticatedRefusalTrail(() => now);
    const clients = LIMITS.maxPerWindow / LIMITS.perClient;
    for (let c = 0; c < clients; c++) {
      for (let i = 0; i < LIMITS.perClient; i++) assert.ok(trail.admit(`203.0.113.${c}`));
    }
    // A new client within its own cap, but past the cap for all: not recorded, counted for it and for all.
    assert.equal(trail.admit('192.0.2.1'), undefined);
    assert.equal(trail.admit('192.0.2.1'), undefined);
    assert.equal(trail.admit('192.0.2.2'), undefined);
    // A client past its own cap is not counted by the cap for all clients.
    assert.equal(trail.admit('203.0.113.0'), undefined);
    now += LIMITS.windowMs;
    assert.deepEqual(trail.admit('192.0.2.1'), { unrecordedRefusals: 2, unrecordedAcrossClients: 3 });
    assert.deepEqual(trail.admit('192.0.2.2'), { unrecordedRefusals: 1, unrecordedAcrossClients: 0 });
    assert.deepEqual(trail.admit('203.0.113.0'), { unrecordedRefusals: 1, unrecordedAcrossClients: 0 });
  });

  it('remembers at most `maxClients` clients, forgetting the least recently seen first (and its count)', () => {
    let now = 1_000_000;
    const trail = new UnauthenticatedRefusalTrail(() => now);
    const address = (n: number) => `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
    // Client 0 has one refusal left out (past its own cap); so has the last client (past the cap for all).
    for (let i = 0; i <= LIMITS.perClient; i++) trail.admit(address(0));
    for (let n = 1; n <= LIMITS.maxClients; n++) trail.admit(address(n));
    now += LIMITS.windowMs;
    assert.equal(trail.admit(address(LIMITS.maxClients))?.unrecordedRefusals, 1, 'remembered');
    assert.equal(trail.admit(address(0))?.unrecordedRefusals, 0, 'forgotten: one more client than remembered');
  });
});
