import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_POLICY, maxOfflineSeconds, type ChannelPolicy } from '../../shared/policy.js';
import { FakeClock } from '../../test/helpers/fake-clock.js';
import { OfflineCap } from './offline-cap.js';

const CHANNEL = DEFAULT_POLICY.channels['branch-kiosk'] as ChannelPolicy;
const CAP_MS = maxOfflineSeconds(CHANNEL) * 1000;

function cap(channel: ChannelPolicy | null = CHANNEL) {
  const clock = new FakeClock();
  let reached = 0;
  const offline = new OfflineCap(
    clock,
    () => channel ?? undefined,
    () => reached++,
  );
  return { clock, offline, reached: () => reached };
}

describe('OfflineCap', () => {
  test('is reached after the channel’s maxOfflineSeconds of continuous time offline, and says so once', async () => {
    const { clock, offline, reached } = cap();
    offline.lost();
    await clock.advance(CAP_MS - 1);
    assert.equal(offline.reached, false);
    assert.equal(reached(), 0);
    await clock.advance(1);
    assert.equal(offline.reached, true);
    assert.equal(reached(), 1);
    await clock.advance(CAP_MS);
    assert.equal(reached(), 1);
  });

  test('a second loss while still offline does not restart the count', async () => {
    const { clock, offline } = cap();
    offline.lost();
    await clock.advance(CAP_MS / 2);
    offline.lost();
    await clock.advance(CAP_MS / 2);
    assert.equal(offline.reached, true);
  });

  test('only being caught up again starts it over', async () => {
    const { clock, offline, reached } = cap();
    offline.lost();
    await clock.advance(CAP_MS - 1);
    offline.restored();
    offline.lost();
    await clock.advance(CAP_MS - 1);
    assert.equal(offline.reached, false);
    assert.equal(reached(), 0);
  });

  test('setting the wall clock back or forward changes nothing', async () => {
    const { clock, offline } = cap();
    offline.lost();
    clock.shiftWall(-10 * CAP_MS);
    await clock.advance(CAP_MS);
    assert.equal(offline.reached, true);
  });

  test('a console with no policy for its channel has no cap to reach, and a cancelled cap never fires', async () => {
    const none = cap(null);
    none.offline.lost();
    await none.clock.advance(10 * CAP_MS);
    assert.equal(none.offline.reached, false);
    const cancelled = cap();
    cancelled.offline.lost();
    cancelled.offline.cancel();
    await cancelled.clock.advance(CAP_MS);
    assert.equal(cancelled.reached(), 0);
  });
});
