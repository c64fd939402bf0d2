import { IPC_EVENTS, type IpcEvent } from '../../shared/ipc.js';

/** The part of a WebContents the pusher needs (Electron's type fits; tests use a stand-in). */
export interface PushTarget {
  isDestroyed(): boolean;
  send(channel: string, payload: unknown): void;
}

/** What became of one push. */
export type PushOutcome = 'sent' | 'queued' | 'refused';

/** Pushes held while the window is not ready; the newest status replaces any older one. */
export const MAX_QUEUED_PUSHES = 32;

/**
 * Main → renderer events (`IPC_EVENTS`), Electron-free. Every payload is checked against its schema
 * first: one that fails is never sent, and is counted and logged by event name and the failing
 * field only (never the payload: it may name operators). Until the window has loaded, pushes wait
 * in a bounded queue instead of vanishing: `agent:status` is a full snapshot, so only the newest
 * queued one is kept; the others keep their order, and past the bound the oldest is dropped (and
 * counted). A destroyed window makes the queue wait for the next one.
 */
export class EventPusher {
  private target: PushTarget | undefined;
  private ready = false;
  private queue: { event: IpcEvent; payload: unknown }[] = [];
  /** For the logs and tests: pushes refused by their schema, and queued pushes dropped at the bound. */
  readonly counts = { schemaFailures: 0, dropped: 0 };

  constructor(
    private readonly log: (message: string, detail: Record<string, unknown>) => void,
    private readonly maxQueued = MAX_QUEUED_PUSHES,
  ) {}

  /** A new window to push to; it receives nothing until `ready()`. */
  attach(target: PushTarget): void {
    this.target = target;
    this.ready = false;
  }

  /** The window finished loading: what waited is sent, oldest first. */
  markReady(): void {
    this.ready = true;
    this.flush();
  }

  /** The window is reloading or gone: pushes wait again. */
  notReady(): void {
    this.ready = false;
  }

  get queued(): number {
    return this.queue.length;
  }

  push(event: IpcEvent, payload: unknown): PushOutcome {
    const parsed = IPC_EVENTS[event].safeParse(payload);
    if (!parsed.success) {
      this.counts.schemaFailures++;
      const issue = parsed.error.issues[0];
      this.log('an IPC event failed its schema and was not sent', {
        event,
        path: issue?.path.join('.') ?? '',
        issue: issue?.code ?? 'invalid',
        failures: this.counts.schemaFailures,
      });
      return 'refused';
    }
    if (this.deliverable()) {
      this.target?.send(event, parsed.data);
      return 'sent';
    }
    if (event === 'agent:status') this.queue = this.queue.filter((q) => q.event !== 'agent:status');
    this.queue.push({ event, payload: parsed.data });
    while (this.queue.length > this.maxQueued) {
      const dropped = this.queue.shift();
      this.counts.dropped++;
      this.log('the operator window was not ready; the oldest waiting IPC event was dropped', {
        event: dropped?.event,
        dropped: this.counts.dropped,
      });
    }
    return 'queued';
  }

  private deliverable(): boolean {
    return this.ready && this.target !== undefined && !this.target.isDestroyed();
  }

  private flush(): void {
    while (this.deliverable() && this.queue.length > 0) {
      const next = this.queue.shift();
      if (next !== undefined) this.target?.send(next.event, next.payload);
    }
  }
}
