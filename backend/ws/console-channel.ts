import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { BatonError } from '../../shared/errors.js';
import {
  AGENT_MESSAGE_TYPES,
  AgentMessageSchema,
  CLOSE_CODES,
  MAX_BATCHES_IN_FLIGHT,
  MAX_EVENTS_PER_BATCH,
  MAX_MESSAGE_BYTES,
  type AgentMessage,
  type BackendMessage,
  type HelloMessage,
} from '../../shared/protocol.js';
import { toFieldIssues } from '../../shared/policy.js';
import { GENESIS_HASH } from '../../shared/events.js';
import { GroupedReads } from '../store/grouped-reads.js';
import type { CommandRecord, CommandRepository, ConsoleRecord, StreamHead } from '../store/repositories.js';
import type { ConsoleRegistry } from '../services/console-registry.js';
import { IngestStream, type EventLog } from '../services/event-log.js';
import type { PolicyService } from '../services/policy-service.js';
import { policyHash } from '../services/policy-hash.js';
import type { RevocationHub } from '../services/revocation-hub.js';
import { sessionsChangedBy, type ConsoleContact, type SessionService } from '../services/session-service.js';
import { errorBody, storageFault } from '../http/http-kit.js';
import type { ClusterBus } from '../cluster/bus.js';
import type { FreshnessMonitor, FreshnessState } from '../cluster/freshness.js';
import { ConsoleConnectionArbiter } from '../cluster/console-arbiter.js';
import { wireConsoleCommands } from '../cluster/pushes.js';
import { closeSocket, commandMessage, flushHeld, sendData, type ConsoleConnections } from './console-connections.js';

/** A console's connection as the channel keeps it (in the node's `ConsoleConnections` table). */
export interface ConsoleConnection {
  /** This connection's id, cluster-wide (the arbiter's "newest socket wins"). */
  id: string;
  socket: WebSocket;
  console: ConsoleRecord;
  alive: boolean;
  hello: HelloMessage | undefined;
  helloTimer: NodeJS.Timeout | undefined;
  /** Event batches received and not yet committed. */
  inFlight: number;
  /** This connection's batches, in order: once one fails, none after it is stored (event-log.ts `IngestStream`). */
  batches: IngestStream;
  /** What the backend observed of this console's contact, for the session rules (offline resume). */
  contact: ConsoleContact;
  /**
   * Set while the answers to `hello` (welcome, policy, catch-up, commands) are being read from the
   * store: later messages wait for it, so nothing is answered before the welcome.
   */
  helloPending: Promise<void> | undefined;
  /** Pushes waiting for the answers to `hello` (console-connections.ts `ConsoleSocket.held`). */
  held: (string | Buffer)[] | undefined;
  /** The stale spell (its `since`) this connection was told of: one NODE_STALE notice per spell. */
  toldStaleSince: number | undefined;
}

/** Batches one console may have awaiting commit before its socket stops being read (the protocol's window). */
export { MAX_BATCHES_IN_FLIGHT };

/**
 * Console events a node holds received and not yet settled (stored or refused), across all its consoles,
 * before it stops reading consoles' sockets: a parsed event costs about 600 bytes of heap, so about 60 MB.
 * The window per console alone (4 batches of up to 500 events) let a few thousand consoles reconnecting
 * with backlogs after an outage hold gigabytes. At 60,000 events per second this is over a second of
 * group commits queued: the bound costs no throughput.
 */
export const MAX_PENDING_EVENTS = 100_000;

/**
 * Consoles held back by that bound that the node reads again at once (each batch stored lets it read
 * more): each may send a batch of up to 500 events, parsed as it is read, so a few at a time keep the
 * event loop free for sign-ins and revocations, as a group commit's few acknowledgements would.
 */
const READ_MORE_AT_ONCE = 4;
/** While consoles are held back, how soon the node looks again at whether it can read more (some may have nothing to send). */
const READ_MORE_MS = 10;

export interface ConsoleChannelDeps {
  registry: ConsoleRegistry;
  events: EventLog;
  policies: PolicyService;
  revocations: RevocationHub;
  sessions: SessionService;
  commands: CommandRepository;
  logger: Logger;
  clock: () => number;
  heartbeatSeconds: number;
  /** A socket that has not said hello by then is closed: idle sockets cost memory and a file descriptor. */
  helloTimeoutSeconds: number;
  /** The node-wide bound on console events received and not yet settled (default MAX_PENDING_EVENTS). */
  maxPendingEvents?: number;
  /** Told of every accepted hello (the admin console records the outbox backlog it reports); a rejection is logged. */
  onHello?: (consoleId: string, hello: HelloMessage) => void | Promise<void>;
  /**
   * This node's connection table, built before the services and the channel and given to both: the
   * services push through it (their `ConsolePort`), the channel adds and removes the connections.
   */
  consoles: ConsoleConnections<ConsoleConnection>;
  /**
   * The cluster bus: a console connected to two nodes keeps only its newest socket, and end-session
   * commands reach the node holding the console (backend/cluster/pushes.ts).
   */
  bus: ClusterBus;
  /**
   * This node's freshness (backend/cluster/freshness.ts): its consoles are told, with a non-fatal
   * NODE_STALE, when its view of revocations turns stale, and a console whose hello is answered
   * while it is stale right after its welcome.
   */
  freshness: Pick<FreshnessMonitor, 'state' | 'onChange'>;
}

/** The non-fatal notice a console gets on a node whose view of revocations may be stale. */
export function staleNotice(state: FreshnessState): string {
  return JSON.stringify({
    type: 'error',
    code: 'NODE_STALE',
    message: `This backend node's view of revocations may be stale (${state.reason ?? 'unknown'}); reconnecting to another node is safe`,
    fatal: false,
  } satisfies BackendMessage);
}

/**
 * One WebSocket per console. The upgrade request is signed with the console key and checked
 * before the socket is accepted; the first message must be `hello`. Every message is validated
 * against its schema; a bad one gets an `error` message and a close code, never a crash. Every
 * store access is asynchronous and every one of its failures is handled: logged with a stable
 * code and, where a console waits for an answer, told to it with an `error` and a close code.
 */
export class ConsoleChannel {
  private readonly wss: WebSocketServer;
  private readonly connections: ConsoleConnections<ConsoleConnection>;
  /** Each console's last sign of life on its socket (backend clock): the "previous contact" of its next connection. */
  private readonly lastContact = new Map<string, number>();
  private heartbeat: NodeJS.Timeout | undefined;
  /** A heartbeat is under way (a slow one is never overlapped by the next). */
  private beating = false;
  private closing = false;
  private readonly arbiter: ConsoleConnectionArbiter;
  private readonly unwireCommands: () => void;
  private readonly unwatchFreshness: () => void;
  /** A hello's reads, grouped while one runs: a burst of reconnects (a failover) costs a few statements. */
  private readonly heads: GroupedReads<StreamHead>;
  private readonly pendingCommands: GroupedReads<CommandRecord[]>;
  /** Console events received and not yet settled, all consoles together (the node-wide bound's measure). */
  private pendingEvents = 0;
  private readonly maxPendingEvents: number;
  /**
   * Consoles not read because of the node-wide bound, oldest first: while any is here, the node holds
   * back every console that sends a batch, and lets them read again a few at a time as batches settle.
   */
  private readonly heldBack = new Set<ConsoleConnection>();
  private readMoreTimer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: ConsoleChannelDeps) {
    this.connections = deps.consoles;
    this.maxPendingEvents = deps.maxPendingEvents ?? MAX_PENDING_EVENTS;
    this.heads = new GroupedReads(
      (id) => deps.events.head(id),
      (ids) => deps.events.heads(ids),
    );
    this.pendingCommands = new GroupedReads(
      (id) => deps.commands.pending(id),
      (ids) => deps.commands.pendingFor(ids),
    );
    // Newest socket wins, cluster-wide: a newer connection of a console on another node closes ours.
    this.arbiter = new ConsoleConnectionArbiter(deps.bus, deps.logger, (consoleId, connectionId) =>
      this.supersede(consoleId, connectionId),
    );
    this.unwireCommands = wireConsoleCommands({
      bus: deps.bus,
      commands: deps.commands,
      consoles: deps.consoles,
      logger: deps.logger,
    });
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_MESSAGE_BYTES,
      perMessageDeflate: false,
      clientTracking: false,
      // A pong is handled as the bytes are read (ws's default, stated because the heartbeat relies on it: its
      // verdict waits one turn of the loop, and a pong emitted later than the read would miss it).
      allowSynchronousEvents: true,
    });
    deps.policies.onPublish((version) => {
      const data = JSON.stringify({
        type: 'policy',
        version: version.version,
        policy: version.policy,
        hash: policyHash(version),
      } satisfies BackendMessage);
      const encoded = Buffer.from(data);
      for (const connection of this.connections.values()) this.push(connection, encoded);
    });
    // Told when it turns stale: every console that said hello (one whose hello is being answered, after the answers).
    this.unwatchFreshness = deps.freshness.onChange((state) => {
      if (!state.stale) return;
      const notice = Buffer.from(staleNotice(state));
      for (const connection of this.connections.values()) {
        if (connection.hello === undefined || connection.toldStaleSince === state.since) continue;
        connection.toldStaleSince = state.since;
        this.push(connection, notice);
      }
    });
  }

  start(): void {
    this.heartbeat = setInterval(() => void this.beat(), this.deps.heartbeatSeconds * 1000);
    this.heartbeat.unref();
  }

  /** Authenticates the upgrade, then hands the socket to `ws`. Refusals are plain HTTP errors. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.closing) {
      refuse(socket, new BatonError('SHUTTING_DOWN', 'The backend is shutting down'), this.deps.clock());
      return;
    }
    // The socket may fail while the console is checked against the store: that must not go unheard.
    const onError = (error: Error) =>
      this.deps.logger.debug({ err: error }, 'console socket failed before its upgrade was answered');
    socket.on('error', onError);
    this.deps.registry
      .authenticate({ method: 'GET', path: req.url ?? '', headers: req.headers, body: new Uint8Array() })
      .then(
        (console) => {
          if (socket.destroyed) return;
          if (this.closing) {
            refuse(socket, new BatonError('SHUTTING_DOWN', 'The backend is shutting down'), this.deps.clock());
            return;
          }
          // From here `ws` listens for the socket's errors; a refused socket keeps ours until it is gone.
          socket.off('error', onError);
          this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, console));
        },
        (error: unknown) => {
          const baton = asBatonError(error);
          if (baton.code === 'INTERNAL' || baton.status === 503) {
            this.deps.logger.error(
              { err: error, code: 'CONSOLE_UPGRADE_FAILED', refused: baton.code },
              'console connection refused: the backend could not check it',
            );
          }
          if (!socket.destroyed) refuse(socket, baton, this.deps.clock());
        },
      )
      .catch((error: unknown) => {
        this.deps.logger.error({ err: error, code: 'CONSOLE_UPGRADE_FAILED' }, 'accepting a console connection failed');
        socket.destroy();
      });
  }

  private accept(socket: WebSocket, console: ConsoleRecord): void {
    const connection: ConsoleConnection = {
      id: randomUUID(),
      socket,
      console,
      alive: true,
      hello: undefined,
      helloTimer: undefined,
      inFlight: 0,
      batches: new IngestStream(),
      helloPending: undefined,
      held: undefined,
      toldStaleSince: undefined,
      contact: {
        connectedAt: this.deps.clock(),
        previousContactAt: latest(this.lastContact.get(console.id), console.lastSeenAt),
      },
    };
    // Judged after one more turn of the loop's I/O: a hello that arrived while this process was frozen is read first.
    connection.helloTimer = setTimeout(
      () =>
        setImmediate(() => {
          // Still open: a socket closed in between (its timer cleared too late) is no protocol violation.
          if (connection.hello === undefined && connection.socket.readyState === WebSocket.OPEN) {
            this.violate(
              connection,
              'HELLO_REQUIRED',
              CLOSE_CODES.HELLO_REQUIRED,
              `No "hello" within ${this.deps.helloTimeoutSeconds} s`,
            );
          }
        }),
      this.deps.helloTimeoutSeconds * 1000,
    );
    connection.helloTimer.unref();
    const previous = this.connections.add(console.id, connection);
    if (previous !== undefined)
      closeSocket(previous.socket, CLOSE_CODES.SUPERSEDED, 'superseded by a newer connection');
    socket.on('pong', () => {
      connection.alive = true;
      this.lastContact.set(console.id, this.deps.clock());
      this.deps.registry.touch(console.id);
      // The node the console reconnects to reads its last contact from the store (offline resume).
      this.deps.registry.flushSoon();
    });
    socket.on('message', (data, isBinary) => this.onMessage(connection, data, isBinary));
    socket.on('error', (error) => this.deps.logger.debug({ err: error, console: console.id }, 'console socket error'));
    socket.on('close', () => {
      clearTimeout(connection.helloTimer);
      this.heldBack.delete(connection);
      this.connections.remove(console.id, connection);
      this.arbiter.disconnected(console.id, connection.id);
      this.deps.registry.touch(console.id);
    });
  }

  private onMessage(connection: ConsoleConnection, data: RawData, isBinary: boolean): void {
    // A socket this node is closing (a refused message or batch, a failed hello, superseded, shutting
    // down) is read until the console's close frame: what it sent meanwhile is not acted on. A batch
    // sent after a refused one would otherwise be stored past it (a gap the next welcome acknowledges).
    if (connection.socket.readyState !== WebSocket.OPEN) return;
    connection.alive = true;
    this.lastContact.set(connection.console.id, this.deps.clock());
    this.deps.registry.touch(connection.console.id);
    const message = (!isBinary && revocationAck(data)) || this.parseMessage(connection, data, isBinary);
    if (message === undefined) return;
    if (connection.hello === undefined && message.type !== 'hello') {
      this.violate(connection, 'HELLO_REQUIRED', CLOSE_CODES.HELLO_REQUIRED, 'The first message must be "hello"');
      return;
    }
    const pending = connection.helloPending;
    if (pending === undefined) {
      this.dispatch(connection, message);
      return;
    }
    // Answered after the welcome, in the order received (the hello settles without rejecting).
    if (message.type === 'events') this.received(connection, message.events.length);
    void pending.then(() => {
      if (message.type === 'events') this.settled(connection, message.events.length);
      if (connection.socket.readyState === WebSocket.OPEN) this.dispatch(connection, message);
    });
  }

  /** A message parsed and validated against its schema; undefined when refused (the socket is then closed). */
  private parseMessage(connection: ConsoleConnection, data: RawData, isBinary: boolean): AgentMessage | undefined {
    let parsed: unknown;
    try {
      if (isBinary) throw new Error('binary frame');
      parsed = JSON.parse(rawText(data));
    } catch {
      this.violate(connection, 'BAD_JSON', CLOSE_CODES.BAD_JSON, 'Expected a JSON text message');
      return undefined;
    }
    const type = typeof parsed === 'object' && parsed !== null ? (parsed as { type?: unknown }).type : undefined;
    if (typeof type !== 'string' || !(AGENT_MESSAGE_TYPES as readonly string[]).includes(type)) {
      this.violate(
        connection,
        'MESSAGE_TYPE_UNKNOWN',
        CLOSE_CODES.MESSAGE_TYPE_UNKNOWN,
        `Unknown message type ${JSON.stringify(type)}`,
      );
      return undefined;
    }
    const result = AgentMessageSchema.safeParse(parsed);
    if (!result.success) {
      const issue = toFieldIssues(result.error)[0];
      const code = type === 'events' ? 'EVENT_SCHEMA_INVALID' : 'SCHEMA_INVALID';
      this.violate(
        connection,
        code,
        CLOSE_CODES.SCHEMA_INVALID,
        `Invalid "${type}" message: ${issue?.path ?? ''} ${issue?.message ?? ''}`,
      );
      return undefined;
    }
    return result.data;
  }

  /**
   * A batch received (one waiting for the hello's answers counts already). Backpressure: a console with
   * too many batches awaiting commit is not read from until they are settled, so one busy console cannot
   * queue unbounded work ahead of the others; and while the node holds its bound of all consoles' events,
   * consoles are read a batch at a time, in turn (`holdBack`), so their number cannot exhaust the heap.
   */
  private received(connection: ConsoleConnection, events: number): void {
    connection.inFlight++;
    this.pendingEvents += events;
    if (this.heldBack.size > 0 || this.pendingEvents >= this.maxPendingEvents) this.holdBack(connection);
    else if (connection.inFlight >= MAX_BATCHES_IN_FLIGHT) connection.socket.pause();
  }

  /** A batch settled (stored, refused, or dropped with its closing socket). */
  private settled(connection: ConsoleConnection, events: number): void {
    connection.inFlight--;
    this.pendingEvents -= events;
    if (connection.inFlight < MAX_BATCHES_IN_FLIGHT && connection.socket.isPaused && !this.heldBack.has(connection)) {
      connection.socket.resume();
    }
    if (this.heldBack.size > 0) this.readMore();
  }

  /**
   * Holds a console back: its socket is not read until `readMore` lets it send again. When the node
   * reaches its bound, every console is held back (a socket already being read may complete a message:
   * the bound is passed by about one batch); from then on, until none is held back, each console that
   * sends a batch is held back after it, so the consoles send a batch each in turn.
   */
  private holdBack(connection: ConsoleConnection): void {
    if (this.heldBack.size === 0) {
      this.deps.logger.warn(
        { pendingEvents: this.pendingEvents, code: 'CONSOLE_EVENTS_HELD_BACK' },
        'this node holds its bound of console events awaiting commit: consoles are read a batch at a time',
      );
      // Not a console yet to say hello (its hello would wait past its deadline): it is held back once it has.
      for (const other of this.connections.values()) {
        if (other !== connection && other.hello !== undefined) this.holdBackOne(other);
      }
    }
    this.holdBackOne(connection);
  }

  private holdBackOne(connection: ConsoleConnection): void {
    if (this.heldBack.has(connection) || connection.socket.readyState !== WebSocket.OPEN) return;
    connection.socket.pause();
    this.heldBack.add(connection);
  }

  /**
   * At or below half its bound, the node reads again the consoles held back longest: a few at a time, no
   * more than could each send a whole batch without passing the bound. A console with nothing to send
   * leaves the turn; one that sends is held back again, behind the others. Looked at again shortly while
   * any is held back (those let go may have had nothing to send: no batch settles then to call this).
   */
  private readMore(): void {
    if (this.pendingEvents > this.maxPendingEvents / 2) return;
    let room = Math.min(
      READ_MORE_AT_ONCE,
      Math.floor((this.maxPendingEvents - this.pendingEvents) / MAX_EVENTS_PER_BATCH),
    );
    for (const connection of this.heldBack) {
      if (room <= 0) break;
      this.heldBack.delete(connection);
      if (connection.socket.readyState !== WebSocket.OPEN) {
        connection.socket.resume(); // closing: its close frame is read (closeSocket)
        continue;
      }
      // A console whose own window is full is read again when one of its batches settles.
      if (connection.inFlight < MAX_BATCHES_IN_FLIGHT) connection.socket.resume();
      room--;
    }
    if (this.heldBack.size > 0 && this.readMoreTimer === undefined) {
      this.readMoreTimer = setTimeout(() => {
        this.readMoreTimer = undefined;
        if (this.heldBack.size > 0) this.readMore();
      }, READ_MORE_MS);
      this.readMoreTimer.unref();
    }
  }

  /** Handles one valid message; never throws, and every asynchronous failure is handled here. */
  private dispatch(connection: ConsoleConnection, message: AgentMessage): void {
    try {
      this.dispatchMessage(connection, message);
    } catch (error) {
      this.deps.logger.error(
        { err: error, console: connection.console.id, code: 'CONSOLE_MESSAGE_FAILED' },
        'console message failed',
      );
      this.violate(connection, 'INTERNAL', CLOSE_CODES.INTERNAL, 'Internal error');
    }
  }

  /**
   * The answers to `hello`, read from the store: the welcome (the console's stored head, the current
   * policy and revocation epoch), the policy if it runs another, the revocations it missed, and the
   * commands it has not acknowledged. Never rejects: a failure is logged and closes the socket.
   */
  private async answerHello(connection: ConsoleConnection, message: HelloMessage): Promise<void> {
    const consoleId = connection.console.id;
    try {
      const [stored, epoch] = await Promise.all([this.heads.read(consoleId), this.deps.revocations.currentEpoch()]);
      const head = stored ?? { lastSeq: 0, lastHash: GENESIS_HASH };
      const current = this.deps.policies.version;
      // The version alone is not trusted: a cached policy edited in place keeps its number.
      const hash = policyHash(current);
      this.send(connection, {
        type: 'welcome',
        consoleId,
        channel: connection.console.channel,
        ackedSeq: head.lastSeq,
        lastHash: head.lastHash,
        serverTime: this.deps.clock(),
        heartbeatSeconds: this.deps.heartbeatSeconds,
        policyVersion: current.version,
        policyHash: hash,
        revocationEpoch: epoch,
      });
      // A console arriving at a stale node (before a load balancer's /readyz check takes it out) is told too.
      const freshness = this.deps.freshness.state();
      if (freshness.stale && connection.toldStaleSince !== freshness.since) {
        connection.toldStaleSince = freshness.since;
        this.sendData(connection, staleNotice(freshness));
      }
      if (current.version !== message.policyVersion || message.policyHash !== hash) {
        this.send(connection, { type: 'policy', version: current.version, policy: current.policy, hash });
      } else if (connection.console.policyVersion !== current.version) {
        // It already runs the current policy (a new console got it at enrolment): no push, no ack, so
        // record it here — unless its record (read at the upgrade) says so already: a reconnect writes nothing.
        await this.deps.registry.recordPolicyVersion(consoleId, current.version);
      }
      // The epoch was read after this hello was accepted: a revocation committed later is pushed to it.
      for (const catchUp of await this.deps.revocations.catchUp(consoleId, message.revocationEpoch, epoch)) {
        this.send(connection, catchUp);
      }
      for (const command of (await this.pendingCommands.read(consoleId)) ?? []) {
        this.sendData(connection, commandMessage(command));
      }
      flushHeld(connection);
    } catch (error) {
      connection.held = undefined; // the socket is closed below: it reconnects and is caught up again
      this.deps.logger.error(
        { err: error, console: consoleId, code: 'CONSOLE_HELLO_FAILED' },
        'answering a console hello failed',
      );
      this.violate(
        connection,
        isStorageFault(error) ? 'STORAGE_UNAVAILABLE' : 'INTERNAL',
        CLOSE_CODES.INTERNAL,
        'The backend could not answer the hello; reconnect',
      );
    }
  }

  /** A store write a console does not wait for (an acknowledgement): a failure is logged, the socket stays. */
  private background(connection: ConsoleConnection, what: string, work: Promise<unknown>): void {
    work.catch((error: unknown) =>
      this.deps.logger.error(
        { err: error, console: connection.console.id, code: 'CONSOLE_ACK_WRITE_FAILED', what },
        'recording a console acknowledgement failed',
      ),
    );
  }

  private dispatchMessage(connection: ConsoleConnection, message: AgentMessage): void {
    const consoleId = connection.console.id;
    switch (message.type) {
      case 'hello': {
        connection.hello = message;
        connection.held = []; // pushes wait for the answers to the hello (answerHello)
        connection.toldStaleSince = undefined; // every hello is answered whole, a stale node's notice included
        clearTimeout(connection.helloTimer);
        connection.helloTimer = undefined;
        if (this.deps.onHello !== undefined) {
          try {
            const told = this.deps.onHello(consoleId, message);
            if (told !== undefined) this.background(connection, 'hello-report', told);
          } catch (error) {
            this.deps.logger.error(
              { err: error, console: consoleId, code: 'CONSOLE_HELLO_LISTENER_FAILED' },
              'a hello listener failed',
            );
          }
        }
        const answered = this.answerHello(connection, message).finally(() => {
          if (connection.helloPending === answered) connection.helloPending = undefined;
        });
        connection.helloPending = answered;
        // While consoles are held back, one arriving waits its turn too: answered, but its batches not read yet.
        if (this.heldBack.size > 0) this.holdBackOne(connection);
        // Told to every node: an older socket of this console elsewhere is closed (never rejects).
        void this.arbiter.connected(consoleId, connection.id);
        return;
      }
      case 'events': {
        const count = message.events.length;
        this.received(connection, count);
        const settled = () => this.settled(connection, count);
        // Only the events actually stored change sessions, in seq order, inside the ingest
        // transaction: the session change, the backend event naming it and the batch commit together.
        const contact = connection.contact;
        // The sessions this batch may change (the ingest unit locks the same ones): an event about no
        // such session changes nothing, and is not handed to the session rules one by one.
        const changes = sessionsChangedBy(message.events);
        const changed = changes.length === 0 ? undefined : new Set(changes);
        this.deps.events
          .ingest(
            consoleId,
            message.events,
            (uow, event, { late }) =>
              event.subject.session !== undefined && changed?.has(event.subject.session) === true
                ? this.deps.sessions.consoleEventEffect(uow, consoleId, event, late, contact)
                : undefined,
            connection.batches,
          )
          .then(
            (result) => {
              settled();
              this.send(connection, { type: 'events-ack', upToSeq: result.upToSeq, findings: result.findings });
            },
            (error: unknown) => {
              settled();
              // Nothing from the batch was stored, nor from any later batch of this connection (refused
              // with it): the console keeps them and sends them again, from the welcome's ackedSeq.
              this.violate(
                connection,
                isStorageFault(error) ? 'STORAGE_UNAVAILABLE' : 'INTERNAL',
                CLOSE_CODES.INTERNAL,
                'The events could not be stored (nothing from this batch was); send them again',
              );
            },
          )
          // Answering the console must never become an unhandled rejection that stops the backend.
          .catch((error: unknown) =>
            this.deps.logger.error(
              { err: error, console: consoleId, code: 'CONSOLE_EVENTS_ANSWER_FAILED' },
              'answering an events batch failed',
            ),
          );
        return;
      }
      case 'ack': {
        switch (message.of) {
          case 'revocation':
            // An epoch above any this node has sent is not recorded (the hub logs it): a protocol violation, so the
            // socket is closed, as for any other invalid message (an answer per bogus ack, the socket kept open,
            // would let one console fill the log and the socket's send buffer).
            if (!this.deps.revocations.acknowledge(consoleId, message.epoch)) {
              this.violate(
                connection,
                'REVOCATION_ACK_EPOCH_UNKNOWN',
                CLOSE_CODES.SCHEMA_INVALID,
                `Revocation epoch ${message.epoch} is above any this backend node has sent; not recorded`,
              );
            }
            return;
          case 'policy':
            this.background(connection, 'policy', this.deps.registry.recordPolicyVersion(consoleId, message.version));
            return;
          case 'command':
            this.background(
              connection,
              'command',
              this.deps.commands.acknowledge(consoleId, message.commandId, this.deps.clock()),
            );
            return;
        }
      }
    }
  }

  /** The arbiter's verdict: a newer connection of this console exists on another node. */
  private supersede(consoleId: string, connectionId: string): void {
    const connection = this.connections.get(consoleId);
    if (connection?.id !== connectionId) return;
    closeSocket(connection.socket, CLOSE_CODES.SUPERSEDED, 'superseded by a newer connection');
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  isConnected(consoleId: string): boolean {
    return this.connections.isConnected(consoleId);
  }

  /** Closes every console socket with 1001 (going away) and stops accepting new ones. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    clearTimeout(this.readMoreTimer);
    this.arbiter.stop();
    this.unwireCommands();
    this.unwatchFreshness();
    const closed = [...this.connections.values()].map(
      (c) =>
        new Promise<void>((resolve) => {
          c.socket.once('close', () => resolve());
          closeSocket(c.socket, CLOSE_CODES.GOING_AWAY, 'backend shutting down');
          setTimeout(() => {
            c.socket.terminate();
            resolve();
          }, 1000).unref();
        }),
    );
    await Promise.all(closed);
    this.wss.close();
  }

  /**
   * Pings every console, PINGS_PER_TURN sockets per turn of the event loop: a heartbeat over
   * thousands of consoles never holds the loop for more than a millisecond or two, so a revocation or
   * a sign-in arriving meanwhile is served between two slices instead of after all of them. A
   * console that closed or was replaced between two slices is skipped.
   *
   * The first slice waits for a turn of the loop too. A timer runs before the loop reads its sockets:
   * after the process was frozen (SIGSTOP, a long stop of the world; after a paused VM, what reached
   * the guest before it ran again), the pongs that arrived meanwhile are still unread when this timer
   * fires, and judged then every console would be cut off at once (and all would reconnect together).
   */
  private async beat(): Promise<void> {
    if (this.beating) return;
    this.beating = true;
    try {
      let inTurn = PINGS_PER_TURN;
      for (const connection of [...this.connections.values()]) {
        if (++inTurn > PINGS_PER_TURN) {
          inTurn = 1;
          await new Promise((resolve) => setImmediate(resolve));
        }
        if (this.closing) return;
        if (this.connections.get(connection.console.id) !== connection) continue;
        this.ping(connection);
      }
    } finally {
      this.beating = false;
    }
  }

  /** One console's heartbeat: a console that did not answer the last ping is cut off, the others pinged. */
  private ping(connection: ConsoleConnection): void {
    // A console held back by the node-wide bound is not read: its pongs wait unread, its silence is not its own.
    if (!connection.alive && !this.heldBack.has(connection)) {
      this.deps.logger.info({ console: connection.console.id }, 'console missed a heartbeat; terminating');
      connection.socket.terminate();
      return;
    }
    connection.alive = false;
    connection.socket.ping();
  }

  /** A push: it waits while the console's hello is answered (and follows the answers), none before its hello. */
  private push(connection: ConsoleConnection, data: string | Buffer): void {
    if (connection.held !== undefined) connection.held.push(data);
    else if (connection.hello) this.sendData(connection, data);
  }

  private send(connection: ConsoleConnection, message: BackendMessage): void {
    this.sendData(connection, JSON.stringify(message));
  }

  private sendData(connection: ConsoleConnection, data: string | Buffer): boolean {
    return sendData(connection.socket, data);
  }

  private violate(connection: ConsoleConnection, code: BatonError['code'], closeCode: number, message: string): void {
    this.deps.logger.warn({ console: connection.console.id, code }, 'console protocol violation');
    this.send(connection, { type: 'error', code, message, fatal: true });
    this.heldBack.delete(connection);
    closeSocket(connection.socket, closeCode, code); // read again, so its close frame is
  }
}

/**
 * Errors the store raises when it cannot do its work, whatever the engine: the one mapping the HTTP
 * routes use (`storageFault`: SQLite full, read-only, I/O, busy; PostgreSQL SQLSTATE classes 08, 40,
 * 53, 57, 58, a connection that failed or dropped, and node-postgres' own code-less errors — no pooled
 * connection to be had in time, a connection terminated, a query read timeout), and the store's own
 * "unreachable" refusal.
 */
function isStorageFault(error: unknown): boolean {
  if (error instanceof BatonError) return error.code === 'DATABASE_UNREACHABLE' || error.code === 'STORAGE_UNAVAILABLE';
  return storageFault(error) !== undefined;
}

/**
 * What a refused upgrade tells the console: its own error, or the store unavailable (503, retry
 * later: under load, no pooled connection in time), or an internal error. Before, node-postgres'
 * code-less errors (a pool wait past its connect timeout) were answered 500 INTERNAL.
 */
function asBatonError(error: unknown): BatonError {
  if (error instanceof BatonError) return error;
  return storageFault(error) ?? new BatonError('INTERNAL', 'Internal error', { cause: error });
}

function latest(a: number | undefined, b: number | null): number | null {
  if (a === undefined) return b;
  return b === null ? a : Math.max(a, b);
}

/** Consoles pinged per turn of the event loop by the heartbeat (each ping is one socket write). */
export const PINGS_PER_TURN = 100;

/**
 * The agent's revocation acknowledgement, byte for byte as it sends it (JSON.stringify of
 * `{type, of, epoch}`), read without JSON.parse and the schema union: ten thousand of them arrive
 * at once after a fan-out. Exactly what AckMessageSchema accepts (a positive safe integer epoch);
 * anything else, spacing or key order included, takes the general path.
 */
const REVOCATION_ACK = /^\{"type":"ack","of":"revocation","epoch":([1-9][0-9]{0,14})\}$/;
const ACK_PREFIX = Buffer.from('{"type":"ack","of":"revocation","epoch":');

function revocationAck(data: RawData): AgentMessage | undefined {
  if (
    !Buffer.isBuffer(data) ||
    data.length <= ACK_PREFIX.length ||
    data.length > ACK_PREFIX.length + 16 ||
    data.compare(ACK_PREFIX, 0, ACK_PREFIX.length, 0, ACK_PREFIX.length) !== 0
  ) {
    return undefined;
  }
  const match = REVOCATION_ACK.exec(data.toString('latin1'));
  // At most 15 digits: always a safe integer.
  return match === null ? undefined : { type: 'ack', of: 'revocation', epoch: Number(match[1]) };
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  // A Buffer (ws's default) is decoded where it is: `Buffer.from(buffer)` would copy the whole message first.
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  return Buffer.from(data).toString('utf8');
}

/** A 503 refusal asks the console to come back after this long (the agent also backs off with jitter). */
export const UPGRADE_RETRY_AFTER_SECONDS = 5;

function refuse(socket: Duplex, error: BatonError, now: number): void {
  const body = JSON.stringify(errorBody(error, now));
  socket.end(
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? 'Error'}\r\n` +
      'Content-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      (error.status === 503 ? `Retry-After: ${UPGRADE_RETRY_AFTER_SECONDS}\r\n` : '') +
      'Connection: close\r\n\r\n' +
      body,
  );
}
