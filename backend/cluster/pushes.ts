import type { Logger } from 'pino';
import type { CommandRecord, CommandRepository } from '../store/repositories.js';
import type { ClusterBus } from './bus.js';

/**
 * What every node does with the cluster bus's pointers, so that a push reaches the consoles and
 * followers connected to any node, and a node that missed notifications catches up from the store
 * (`onResync`), never from memory. One path per push, on both engines: the committing unit of work
 * publishes its pointer (`uow.publish`, sent with the COMMIT on PostgreSQL, after it in process on
 * SQLite); every node, the publisher included, acts on it here. Where the publishing node also acts
 * at once (for latency), the action is idempotent, so it is never done twice:
 *
 * - `revocation {epoch}` → `RevocationHub.onPointer(epoch, local)`: one watermark per node, each
 *   epoch pushed once to this node's consoles whoever asks first (the local `revoke`, the bus, a
 *   resync). The publishing node's own pointer waits for its `revoke` calls running, whose push
 *   needs no read of the store.
 * - `policy {version}` → `PolicyService.refresh()` on the other nodes (it only ever moves forward;
 *   its listeners push the new version to this node's consoles). The publishing node advanced already.
 * - `authenticators {}` → `AuthenticatorMetadata.refresh()` on the other nodes. A reload that fails
 *   (no pooled connection in time, a failover) leaves this node with the models it had, which may
 *   let a model just marked compromised sign in: it is logged (`AUTHENTICATOR_RELOAD_FAILED`) and the
 *   bus is recycled, so the node counts as not connected (stale after its bound: `strict` channels
 *   refuse with NODE_STALE) and resyncs, with backoff, until the models are read.
 * - `command {consoleId, id}` → the node holding that console sends its pending command (console
 *   channel, `wireConsoleCommands`); the publishing node sent it directly if the console is its own
 *   (`ConsoleConnections.deliver`). Published inside the unit that stores the command
 *   (`SessionService.storeEndCommand`), so it leaves with the COMMIT and never after a rollback.
 * - `admin-stream {cursor}` and `console-connected` are handled by the event log and the console
 *   connection arbiter themselves.
 */

export interface ServicePushTargets {
  bus: ClusterBus;
  revocations: { onPointer(epoch: number, local: boolean): Promise<void>; resync(): Promise<void> };
  policies: { readonly version: { version: number }; refresh(): Promise<void> };
  authenticators: { refresh(): Promise<void> };
  /** Where a failed reload is logged: `AUTHENTICATOR_RELOAD_FAILED`, `POLICY_RELOAD_FAILED` (a newer policy). */
  logger?: Logger;
}

/** Subscribes the services' pushes to the bus; call before the bus starts. Returns the unsubscribe function. */
export function wireServicePushes({
  bus,
  revocations,
  policies,
  authenticators,
  logger,
}: ServicePushTargets): () => void {
  /** The last reload of the authenticator models failed: the periodic resync reads them again too. */
  let authenticatorsBehind = false;
  const reloadAuthenticators = async () => {
    try {
      await authenticators.refresh();
      authenticatorsBehind = false;
    } catch (error) {
      authenticatorsBehind = true;
      logger?.error(
        { err: error, code: 'AUTHENTICATOR_RELOAD_FAILED', node: bus.nodeId },
        'authenticator models could not be reloaded from the store: resyncing, this node is not connected until they are',
      );
      throw error;
    }
  };
  const off = [
    bus.subscribe('revocation', ({ epoch }, delivery) => revocations.onPointer(epoch, delivery.local)),
    bus.subscribe('policy', ({ version }, delivery) => {
      if (delivery.local || version <= policies.version.version) return;
      // As for the authenticator models: a node that could not read a newer policy is not connected (so stale
      // after its bound) until a resync reads it, rather than serving the old one until the periodic resync.
      return policies.refresh().catch((error: unknown) => {
        logger?.error(
          { err: error, code: 'POLICY_RELOAD_FAILED', node: bus.nodeId, version },
          'a newer policy could not be read from the store: resyncing, this node is not connected until it is',
        );
        return bus.recycle(`policy ${version} not read: ${error instanceof Error ? error.message : String(error)}`);
      });
    }),
    bus.subscribe('authenticators', (_pointer, delivery) => {
      if (delivery.local) return;
      // The resync that follows reads them again; it fails (and is retried) for as long as they cannot be read.
      return reloadAuthenticators().catch((error: unknown) =>
        bus.recycle(`authenticator models not reloaded: ${error instanceof Error ? error.message : String(error)}`),
      );
    }),
    // Missed notifications: read what the store holds now (each refresh moves forward only). The
    // periodic safety net stays cheap: the revocation epoch and the policy version are compared with
    // the store's in one read each; the authenticator models (a long list, changed rarely, their
    // pointer published inside the committing unit) are read again only after a reconnect, or when
    // their last reload failed. A refresh that fails fails the resync: the bus retries it.
    bus.onResync(async (info) => {
      await Promise.all([
        revocations.resync(),
        policies.refresh(),
        info.reason === 'periodic' && !authenticatorsBehind ? undefined : reloadAuthenticators(),
      ]);
    }),
  ];
  return () => off.forEach((unsubscribe) => unsubscribe());
}

/** Consoles whose pending commands one statement of the resync reads. */
const RESEND_BATCH = 1_000;

export interface CommandPushTargets {
  bus: ClusterBus;
  commands: Pick<CommandRepository, 'pending' | 'pendingFor'>;
  /** This node's console connections. */
  consoles: {
    connectedConsoleIds(): Iterable<string>;
    isConnected(consoleId: string): boolean;
    /** Sends a stored command to its console if it is connected here. */
    sendCommand(command: CommandRecord): boolean;
  };
  logger: Logger;
}

/**
 * End-session commands across nodes: the node holding the console reads its pending commands from
 * the store and sends the one announced. After a resync (a reconnect of the bus, or the periodic
 * safety net), the pending commands of the consoles connected here are sent again, read in one
 * query per thousand of them, never one per console (a console acknowledges each by id, so a repeat
 * is harmless). Only theirs: a command for a console connected nowhere (one revoked or retired, or
 * simply away) is read by the node it says hello to next, never by every node at every resync.
 */
export function wireConsoleCommands({ bus, commands, consoles, logger }: CommandPushTargets): () => void {
  const sendPending = async (consoleId: string, only?: string) => {
    for (const command of await commands.pending(consoleId)) {
      if (only === undefined || command.id === only) consoles.sendCommand(command);
    }
  };
  const off = [
    bus.subscribe('command', ({ consoleId, id }, delivery) => {
      // The publishing node sent it itself when the console was its own.
      if (delivery.local || !consoles.isConnected(consoleId)) return;
      return sendPending(consoleId, id);
    }),
    bus.onResync(async (info) => {
      if (info.reason === 'connected') return; // at start nobody is connected; a hello reads its commands
      const connected = [...consoles.connectedConsoleIds()];
      for (let i = 0; i < connected.length; i += RESEND_BATCH) {
        let pending: Map<string, CommandRecord[]>;
        try {
          pending = await commands.pendingFor(connected.slice(i, i + RESEND_BATCH));
        } catch (error) {
          // The resync fails, so the bus tries it again (not connected meanwhile).
          logger.warn({ err: error, code: 'COMMAND_RESYNC_FAILED' }, 'resending pending commands failed');
          throw error;
        }
        for (const [consoleId, list] of pending) {
          if (!consoles.isConnected(consoleId)) continue;
          for (const command of list) consoles.sendCommand(command);
        }
      }
    }),
  ];
  return () => off.forEach((unsubscribe) => unsubscribe());
}
