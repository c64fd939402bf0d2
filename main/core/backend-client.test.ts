import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RECONNECT_BASE_MS, RECONNECT_CAP_MS, reconnectDelay } from './backend-client.js';

test('reconnect delays grow exponentially, stay within half to all of their ceiling, and are capped', () => {
  for (let attempt = 0; attempt < 30; attempt++) {
    const ceiling = Math.min(RECONNECT_CAP_MS, RECONNECT_BASE_MS * 2 ** attempt);
    assert.equal(
      reconnectDelay(attempt, () => 0),
      Math.round(ceiling / 2),
    );
    assert.equal(
      reconnectDelay(attempt, () => 0.999999),
      Math.round(ceiling / 2 + (0.999999 * ceiling) / 2),
    );
  }
  assert.equal(
    reconnectDelay(100, () => 1),
    RECONNECT_CAP_MS,
  );
});

test('jitter spreads a thousand consoles reconnecting at once over the window', () => {
  const delays = Array.from({ length: 1000 }, () => reconnectDelay(6, Math.random));
  const ceiling = RECONNECT_BASE_MS * 2 ** 6;
  assert.ok(delays.every((d) => d >= ceiling / 2 && d <= ceiling));
  const buckets = new Set(delays.map((d) => Math.floor((d - ceiling / 2) / (ceiling / 20))));
  assert.ok(buckets.size >= 9, `delays fall in ${buckets.size} of 10 buckets`);
});
