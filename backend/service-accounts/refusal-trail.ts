import { clientLimitKey } from '../http/client-address.js';
import { EventCap } from '../http/event-cap.js';

/**
 * How many events the refusals of callers that never authenticated (no service identified: an
 * unknown client id, an assertion that does not verify, a body that fails its schema) may write, at
 * each of the service endpoints (the token endpoint, key rotation), on each node.
 */
export const UNAUTHENTICATED_REFUSAL_EVENTS = {
  /** Events per client (an IPv4 address or an IPv6 /64) per window. */
  perClient: 10,
  /** The window: fixed, from a client's first refusal after its previous window ended. */
  windowMs: 60_000,
  /** Events per window for all clients together; the rest are counted. */
  maxPerWindow: 200,
  /** Clients remembered at once (least recently seen forgotten first, with its unrecorded count). */
  maxClients: 10_000,
} as const;

/** What the event of a refusal let through says about those held back. */
export interface RefusalTrailCounts {
  /** This client's refusals not recorded since its previous recorded one. */
  unrecordedRefusals: number;
  /** Refusals (of any client) the cap for all clients held back since the previous event let through. */
  unrecordedAcrossClients: number;
}

/**
 * Keeps anyone who can reach a service endpoint from writing one event per request into the audit
 * trail. A refusal is answered exactly the same whether or not its event is written (no 429: a
 * service is never slowed down by this); only the event of an unauthenticated refusal past the caps
 * is left out, and counted, and the client's next recorded refusal says how many of its own were.
 * Refusals of an authenticated service do not come here: they are always recorded.
 *
 * State is in this node's memory, on purpose, and a restart forgets it: it bounds the trail's
 * volume, it is not trust state (nothing here decides whether a request is refused). In a cluster
 * each node keeps its own counts, so the bounds above are per node.
 */
export class UnauthenticatedRefusalTrail {
  private readonly clients = new Map<string, { windowStart: number; recorded: number; unrecorded: number }>();
  private readonly all: EventCap;

  constructor(private readonly clock: () => number) {
    const { maxPerWindow: max, windowMs } = UNAUTHENTICATED_REFUSAL_EVENTS;
    this.all = new EventCap({ max, windowMs, clock });
  }

  /** Whether this client's refusal gets its event: the counts to put in it, or `undefined` (counted). */
  admit(client: string): RefusalTrailCounts | undefined {
    const { perClient, windowMs, maxClients } = UNAUTHENTICATED_REFUSAL_EVENTS;
    const key = clientLimitKey(client);
    const now = this.clock();
    const seen = this.clients.get(key);
    const entry =
      seen !== undefined && now - seen.windowStart < windowMs
        ? seen
        : { windowStart: now, recorded: 0, unrecorded: seen?.unrecorded ?? 0 };
    this.clients.delete(key); // re-inserted: the map stays in least-recently-seen order
    this.clients.set(key, entry);
    for (const oldest of this.clients.keys()) {
      if (this.clients.size <= maxClients) break;
      this.clients.delete(oldest);
    }
    const acrossClients = entry.recorded < perClient ? this.all.take() : undefined;
    if (acrossClients === undefined) {
      entry.unrecorded++;
      return undefined;
    }
    entry.recorded++;
    const unrecordedRefusals = entry.unrecorded;
    entry.unrecorded = 0;
    return { unrecordedRefusals, unrecordedAcrossClients: acrossClients };
  }
}
