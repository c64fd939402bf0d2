import { BatonError } from '../../../shared/errors.js';
import type { AgentContext } from '../agent-context.js';
import type { AgentPhase } from '../agent-types.js';

/**
 * One ceremony at a time, with its phase shown to the UI and any refusal kept as the notice; and
 * before a ceremony, a bounded wait for a reconnecting console to catch up with the backend.
 */
export class CeremonyGate {
  constructor(private readonly ctx: AgentContext) {}

  /**
   * Runs `fn` as the one ceremony, in `phase`. `fn` may call `settle()` once its outcome is decided,
   * immediately before the change that shows it (it must push a status): the phase is then already
   * idle in that status, so the operator UI and the shell show the outcome on one push, not on a
   * second push a moment later (a switch measured 1.5–2.5× slower in Chromium under load when the
   * verified operator's workspace waited for it). Without `settle()`, idle is pushed at the end.
   */
  async run<T>(phase: AgentPhase, fn: (settle: () => void) => Promise<T>): Promise<T> {
    const { ctx } = this;
    if (ctx.phase.kind !== 'idle') {
      throw ctx.setNotice(new BatonError('CEREMONY_IN_PROGRESS', 'Another tap is being handled'));
    }
    ctx.phase = phase;
    ctx.notice = undefined;
    ctx.changed();
    let settled = false;
    const settle = () => {
      // Only this ceremony's own phase: never one that began after it settled.
      if (settled || ctx.phase !== phase) return;
      settled = true;
      ctx.phase = { kind: 'idle' };
    };
    try {
      return await fn(settle);
    } catch (error) {
      throw ctx.setNotice(error);
    } finally {
      if (!settled) {
        ctx.phase = { kind: 'idle' };
        ctx.changed();
      }
    }
  }

  /** Online or offline (or stopped), after waiting (bounded) for a reconnect to catch up; still syncing → refused. */
  async settled(): Promise<'online' | 'offline' | 'stopped'> {
    const connection = await this.ctx.sync.settled();
    if (connection === 'syncing' || connection === 'connecting') {
      throw this.ctx.setNotice(
        new BatonError('AGENT_SYNCING', 'The console is still catching up with the backend; tap again in a moment'),
      );
    }
    return connection;
  }

  /** Waits as `settled` does, and refuses unless the backend is there. */
  async whenOnline(): Promise<void> {
    if ((await this.settled()) !== 'online') {
      throw new BatonError('BACKEND_UNREACHABLE', 'This needs the backend, which cannot be reached right now');
    }
  }
}
