// Module resolution hooks for lib/use-baseline-outbox.ts (they run on Node's loader thread):
// main/core/event-outbox resolves to the baseline copy.
import type { InitializeHook, ResolveHook } from 'node:module';

let target = '';

export const initialize: InitializeHook<{ target: string }> = (data) => {
  target = data.target;
};

export const resolve: ResolveHook = async (specifier, context, nextResolve) => {
  const result = await nextResolve(specifier, context);
  if (/\/main\/core\/event-outbox\.[jt]s$/.test(result.url)) return { ...result, url: target, shortCircuit: true };
  return result;
};
