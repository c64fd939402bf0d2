import { resignSet, setKid, type SetSigningKey } from '../set.js';
import type { TransmitterKeys } from './keys.js';

/**
 * What a delivery hands out for each queued SET: one signer per push round or poll answer.
 *
 * A SET is signed when it is queued, and a rotated key stays in the JWKS for the overlap (`ssf.keyOverlapHours`). A SET
 * that waited longer (its stream paused, its receiver down) names a `kid` the JWKS no longer has, and no receiver could
 * verify it. So a SET whose key is not `verifiable` (published now and for DELIVERY_MARGIN_MS more) is signed again
 * with the current key as it is handed out: the same payload bytes (claims, `jti`), a new header and signature
 * (`resignSet`). Every other SET goes out byte for byte as queued, for the cost of looking up its header's text
 * (`setKid`) and its kid in the ring.
 *
 * Before the first SET of a round is signed again, the ring is read from the store once more: the kid may be a key
 * another node made since this node read the ring (the SET then goes as queued), and the key that signs is the
 * cluster's active key as of that read, never one this node held while another node retired it.
 */
export class DeliverySigner {
  /** SETs of this round signed again. */
  resigned = 0;
  private reread: Promise<void> | undefined;

  constructor(
    private readonly keys: TransmitterKeys,
    /** Signs `jwt`'s payload again under `key` (the transmitter's `resignSet`, measured). */
    private readonly sign: (jwt: string, key: SetSigningKey) => string = resignSet,
  ) {}

  /** Whether `jwt` goes out as queued: its key is published and stays so for the margin. The check every SET gets. */
  asQueued(jwt: string): boolean {
    return this.keys.verifiable(setKid(jwt));
  }

  /**
   * What goes out for a queued SET `asQueued` refused: the same SET signed with the current key, or the SET as queued
   * if the ring read again shows its key published after all. Rejects when the ring cannot be read (nothing signed).
   */
  async resign(jwt: string): Promise<string> {
    this.reread ??= this.keys.fresh(0);
    await this.reread;
    if (this.asQueued(jwt)) return jwt;
    const signed = this.sign(jwt, this.keys.signingKey());
    this.resigned++;
    return signed;
  }
}
