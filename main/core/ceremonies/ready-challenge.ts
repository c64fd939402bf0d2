import type { PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import type { Clock } from '../clock.js';

/**
 * A held challenge is used only while less than this share of its lifetime has gone: the rest is
 * left for the operator's tap and the verification, so a held challenge never runs out mid-ceremony.
 */
export const READY_CHALLENGE_USABLE_SHARE = 0.5;

interface Held {
  options: PublicKeyCredentialRequestOptionsJSON;
  /** When the request for it was sent (monotonic ms): its age is counted from before the backend issued it. */
  askedAt: number;
  /** The policy version it was issued under: the user-verification requirement it carries. */
  policyVersion: number;
}

export interface ReadyChallengeDeps {
  /** Signed `/v1/sign-in/options` for this console. */
  fetch(): Promise<PublicKeyCredentialRequestOptionsJSON>;
  clock: Clock;
  /** Why a fetch ahead failed (the tap then asks for its own challenge, and shows that refusal if any). */
  failed(error: unknown): void;
}

/**
 * The next tap's sign-in challenge, asked for ahead (after the console catches up, and after each
 * tap-in), so the tap itself skips a backend round trip. Nothing about the challenge changes: the
 * backend issued it to this console, it is single-use and it expires as any other; the held one is
 * used once, only while young (READY_CHALLENGE_USABLE_SHARE of its timeout), only under the policy
 * version it was issued under, and dropped when the connection closes or the runtime shuts down.
 * Otherwise the tap asks for a fresh one, as it did before.
 */
export class ReadyChallenge {
  private held: Held | undefined;
  private pending: Promise<Held | undefined> | undefined;
  /** Bumped by `discard`: a fetch that was under way when the connection closed is not kept. */
  private generation = 0;

  constructor(private readonly deps: ReadyChallengeDeps) {}

  /** Asks for the next challenge unless one is held or on its way. */
  refill(policyVersion: number): void {
    if (this.pending !== undefined || (this.held !== undefined && this.usable(this.held, policyVersion))) return;
    this.held = undefined;
    void this.ask(policyVersion);
  }

  /**
   * The options for a tap now: the held challenge when it is still usable (or the one on its way),
   * else a fresh one from the backend. The options' `timeout` is what is left of the challenge's life.
   */
  async take(policyVersion: number): Promise<PublicKeyCredentialRequestOptionsJSON> {
    let held = this.held;
    this.held = undefined;
    if (held === undefined && this.pending !== undefined) {
      held = await this.pending;
      // Kept only if no other caller took it meanwhile: each challenge answers one tap.
      if (held !== undefined && this.held === held) this.held = undefined;
      else held = undefined;
    }
    if (held !== undefined && this.usable(held, policyVersion)) {
      const left = (held.options.timeout ?? 0) - (this.deps.clock.monotonic() - held.askedAt);
      return { ...held.options, timeout: Math.floor(left) };
    }
    return this.deps.fetch();
  }

  /** The connection closed or the console stopped: nothing held is used after. */
  discard(): void {
    this.generation += 1;
    this.held = undefined;
    this.pending = undefined;
  }

  private usable(held: Held, policyVersion: number): boolean {
    if (held.policyVersion !== policyVersion || held.options.timeout === undefined) return false;
    const age = this.deps.clock.monotonic() - held.askedAt;
    return age >= 0 && age < held.options.timeout * READY_CHALLENGE_USABLE_SHARE;
  }

  private ask(policyVersion: number): Promise<Held | undefined> {
    const generation = this.generation;
    const askedAt = this.deps.clock.monotonic();
    const pending = this.deps.fetch().then(
      (options): Held | undefined => {
        if (generation !== this.generation) return undefined;
        const held = { options, askedAt, policyVersion };
        if (this.pending === pending) {
          this.pending = undefined;
          this.held = held;
        }
        return held;
      },
      (error: unknown) => {
        if (generation === this.generation) {
          this.deps.failed(error);
          if (this.pending === pending) this.pending = undefined;
        }
        return undefined;
      },
    );
    this.pending = pending;
    return pending;
  }
}
