/**
 * `node --import tsx --import ./bench/lib/use-baseline-outbox.ts bench/<benchmark>.ts`: runs the
 * benchmark with every import of `main/core/event-outbox` replaced by the baseline copy
 * (lib/baseline-outbox.ts). The revision is `BATON_OUTBOX_BASELINE` (default: the last commit whose
 * outbox wrote on the main thread). Prints one line saying so, on stderr.
 */
import { register } from 'node:module';
import { DEFAULT_OUTBOX_BASELINE, shortRev, writeBaselineOutbox } from './baseline-outbox.js';

const rev = process.env.BATON_OUTBOX_BASELINE ?? DEFAULT_OUTBOX_BASELINE;
const target = writeBaselineOutbox(rev);
register(new URL('./baseline-outbox-hooks.ts', import.meta.url), { data: { target } });
process.stderr.write(`main/core/event-outbox.ts replaced by its version at ${shortRev(rev)} (${target})\n`);
