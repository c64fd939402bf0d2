/**
 * The claims a resume takes on held SETs (migration 28): at least once, exactly once in effect.
 *
 * A resume claims a held SET (its row marked with a random claim id and a lease, not deleted), applies it, and
 * deletes the row in the unit of work that records it (`ssf-set-received` with `heldSince`). Each revocation it
 * applies checks, first in the revocation's own unit, that the claim still holds the row (and moves its lease on),
 * and marks the row with the revocation (`kind:epoch:at`) once it is stored, in that unit. So a node that dies between
 * the claim and the record leaves the row claimed, with what it revoked; once the lease has run out, the next resume
 * on any node claims it again, revokes what is still to revoke (what was revoked is found revoked, and not revoked
 * twice) and records it once, with every revocation made for it, its own and its predecessor's.
 */
import type { RevokeHooks } from '../../services/revocation-hub.js';

/**
 * How long a claim holds a held SET without news from its resume (each revocation applied for it moves the lease
 * on): a node that died leaves its claim to the next resume after this. A resume slower than this between two
 * revocations may see its SET taken over; the one that took it over records it.
 */
export const HELD_CLAIM_LEASE_MS = 60_000;

/** A held SET claimed by a resume: the claim's id, and the revocations already applied for it ('kind:epoch:at …'). */
export interface HeldClaim {
  claim: string;
  applied: string | null;
}

/** A revocation for a held SET was refused in its own unit: the claim no longer holds the SET (nothing committed). */
export class HeldClaimLost extends Error {
  constructor(
    readonly transmitterId: string,
    readonly jti: string,
  ) {
    super(`The held SET "${jti}" of transmitter "${transmitterId}" is no longer claimed by this resume`);
    this.name = 'HeldClaimLost';
  }
}

/**
 * The revocations a held SET's row says were applied for it: their epochs (in order), kinds, and the time of the
 * first (`since`): a resume taking the SET over acts only on the sessions and passkeys that existed then, not on
 * those the operator started after it (the SET was about the ones before).
 */
export function appliedMarks(applied: string | null): { epochs: number[]; kinds: Set<string>; since?: number } {
  const epochs: number[] = [];
  const kinds = new Set<string>();
  let since: number | undefined;
  for (const mark of (applied ?? '').split(' ')) {
    const [kind, epochText, atText] = mark.split(':');
    const epoch = Number(epochText);
    if (kind === undefined || kind === '' || epochText === undefined || !Number.isSafeInteger(epoch)) continue;
    kinds.add(kind);
    epochs.push(epoch);
    const at = Number(atText);
    if (atText !== undefined && Number.isSafeInteger(at)) since = since === undefined ? at : Math.min(since, at);
  }
  return { epochs, kinds, ...(since === undefined ? {} : { since }) };
}

/**
 * What a revocation applied for a claimed held SET writes in its own unit: first, the claim checked and its lease
 * moved on (the row locked; `HeldClaimLost` refuses the revocation when the claim lost the row); once stored, the
 * revocation marked on the row.
 */
export function claimHooks(transmitterId: string, jti: string, claim: string, clock: () => number): RevokeHooks {
  return {
    before: async (uow) => {
      const until = clock() + HELD_CLAIM_LEASE_MS;
      if (!(await uow.store.ssfInbound.fenceHeld(transmitterId, jti, claim, until)))
        throw new HeldClaimLost(transmitterId, jti);
    },
    stored: (uow, revocation) =>
      uow.store.ssfInbound.markHeldApplied(
        transmitterId,
        jti,
        `${revocation.kind}:${revocation.epoch}:${revocation.at}`,
      ),
  };
}
