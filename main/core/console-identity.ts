import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { BatonError } from '../../shared/errors.js';
import { IdSchema } from '../../shared/events.js';
import { PolicySchema, type Policy } from '../../shared/policy.js';
import { PolicyHashSchema } from '../../shared/protocol.js';
import { ROUTES } from '../../shared/routes.js';
import { writeAtomically } from './atomic-file.js';
import { parseResponse } from './signed-http.js';
import type { Clock } from './clock.js';
import { ConsoleKey } from './console-key.js';
import { hashPolicy } from './policy-hash.js';
import type { SecretStore } from './secret-store.js';

/** The account under which the console's PKCS#8 private key sits in the OS credential store. */
export const CONSOLE_KEY_ACCOUNT = 'console-key';
const STATE_FILE = 'console.json';

const PersistedStateSchema = z.strictObject({
  version: z.literal(1),
  consoleId: IdSchema,
  channel: z.string(),
  /** The site IT enrolled this console for (its "Ask IT" contact); absent before issue 12 or when none. */
  site: z.string().max(100).optional(),
  backendUrl: z.string(),
  enrolledAt: z.int().nonnegative(),
  revoked: z.strictObject({ at: z.int().nonnegative(), reason: z.string().max(500) }).optional(),
  /** The last policy the backend sent, with the hash it announced (checked against the document on load). */
  policy: z
    .strictObject({ version: z.int().positive(), policy: PolicySchema, hash: PolicyHashSchema.optional() })
    .optional(),
  revocationEpoch: z.int().nonnegative(),
});
export type PersistedState = z.infer<typeof PersistedStateSchema>;

/** Why the console cannot work until IT enrols it again; the UI shows "this console must be re-enrolled". */
export type ReenrolReason = 'key-missing' | 'revoked' | 'state-unreadable' | 'unknown-to-backend';

export type IdentityStatus =
  | { kind: 'enrolled'; consoleId: string; channel: string }
  | { kind: 'unenrolled' }
  | { kind: 're-enrolment-required'; reason: ReenrolReason; detail: string };

/**
 * Who this console is: its id and channel (in `console.json` in the data directory), its P-256 key
 * (in the OS credential store, never on disk in the clear), and what it last learned from the
 * backend (policy, revocation epoch), so it can start and work offline.
 */
export class ConsoleIdentity {
  private constructor(
    private readonly dataDir: string,
    private readonly secrets: SecretStore,
    private readonly clock: Clock,
    private state: PersistedState | undefined,
    private key: ConsoleKey | undefined,
    private problem: { reason: ReenrolReason; detail: string } | undefined,
  ) {}

  /** Reads the identity; never throws for a missing or broken one (the status says what is wrong). */
  static async load(dataDir: string, secrets: SecretStore, clock: Clock): Promise<ConsoleIdentity> {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    chmodSync(dataDir, 0o700); // also when IT created the directory with a wider mode
    const path = join(dataDir, STATE_FILE);
    if (!existsSync(path)) return new ConsoleIdentity(dataDir, secrets, clock, undefined, undefined, undefined);
    let state: PersistedState;
    try {
      state = PersistedStateSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
    } catch (error) {
      const kept = `${path}.unreadable-${clock.now()}`;
      renameSync(path, kept);
      return new ConsoleIdentity(dataDir, secrets, clock, undefined, undefined, {
        reason: 'state-unreadable',
        detail: `${path} could not be read (${error instanceof Error ? error.message.slice(0, 200) : 'invalid'}); kept as ${kept}`,
      });
    }
    if (state.policy !== undefined && state.policy.hash !== hashPolicy(state.policy.policy)) {
      // A cached policy that does not hash to what the backend announced (damaged, or edited in
      // place) is not used: the built-in defaults apply until the backend sends its policy again.
      state = { ...state, policy: undefined };
    }
    if (state.revoked !== undefined) {
      return new ConsoleIdentity(dataDir, secrets, clock, state, undefined, {
        reason: 'revoked',
        detail: `This console was revoked: ${state.revoked.reason}`,
      });
    }
    const secret = await secrets.get(CONSOLE_KEY_ACCOUNT);
    if (secret === null) {
      return new ConsoleIdentity(dataDir, secrets, clock, state, undefined, {
        reason: 'key-missing',
        detail: 'The console key is missing from the OS credential store',
      });
    }
    let key: ConsoleKey;
    try {
      key = ConsoleKey.fromPkcs8(Buffer.from(secret, 'base64url'));
    } catch (error) {
      return new ConsoleIdentity(dataDir, secrets, clock, state, undefined, {
        reason: 'key-missing',
        detail: `The console key in the OS credential store is unusable (${error instanceof Error ? error.message : 'invalid'})`,
      });
    }
    return new ConsoleIdentity(dataDir, secrets, clock, state, key, undefined);
  }

  get status(): IdentityStatus {
    if (this.problem !== undefined) return { kind: 're-enrolment-required', ...this.problem };
    if (this.state === undefined || this.key === undefined) return { kind: 'unenrolled' };
    return { kind: 'enrolled', consoleId: this.state.consoleId, channel: this.state.channel };
  }

  /** The key and id for signing; throws the stable code the UI maps to its screen. */
  credentials(): { consoleId: string; key: ConsoleKey; state: PersistedState } {
    if (this.problem !== undefined) throw new BatonError('CONSOLE_REENROLMENT_REQUIRED', this.problem.detail);
    if (this.state === undefined || this.key === undefined) {
      throw new BatonError('CONSOLE_NOT_ENROLLED', 'This console is not enrolled yet');
    }
    return { consoleId: this.state.consoleId, key: this.key, state: this.state };
  }

  get policy(): { version: number; policy: Policy } | undefined {
    return this.state?.policy;
  }

  get revocationEpoch(): number {
    return this.state?.revocationEpoch ?? 0;
  }

  /**
   * Enrols with a one-time token from IT: a new key, proof of possession, and the console id the
   * backend assigns. Used for the first start and for re-enrolment (a new id; the old one stays revoked).
   */
  async enrol(input: { backendUrl: string; token: string; channel: string; name?: string }): Promise<IdentityStatus> {
    const key = ConsoleKey.generate();
    const { method, path, response: schema } = ROUTES.consoleEnrol;
    const body = JSON.stringify({
      token: input.token,
      publicKey: key.publicJwk(),
      channel: input.channel,
      ...(input.name === undefined ? {} : { name: input.name }),
    });
    let response: Response;
    try {
      response = await fetch(new URL(path, input.backendUrl), {
        method,
        headers: {
          'content-type': 'application/json',
          ...key.signRequest({ consoleId: undefined, method, path, body, now: this.clock.now() }),
        },
        body,
        // Never follow a redirect: it would carry the one-time enrolment token to another address.
        redirect: 'error',
        signal: AbortSignal.timeout(10_000),
      });
    } catch (cause) {
      throw new BatonError('BACKEND_UNREACHABLE', 'The backend cannot be reached to enrol this console', { cause });
    }
    const result = await parseResponse(response, schema, `${method} ${path}`);
    // Key first: a crash between the two writes leaves a key without a state file (enrol again),
    // never a state file whose key is lost.
    await this.secrets.set(CONSOLE_KEY_ACCOUNT, key.toPkcs8().toString('base64url'));
    this.state = {
      version: 1,
      consoleId: result.consoleId,
      channel: result.channel,
      ...(typeof result.site === 'string' ? { site: result.site } : {}),
      backendUrl: input.backendUrl,
      enrolledAt: this.clock.now(),
      policy: { ...result.policy, hash: hashPolicy(result.policy.policy) },
      revocationEpoch: 0,
    };
    this.key = key;
    this.problem = undefined;
    this.save();
    return this.status;
  }

  /** The backend refused this console for good: forget the key, remember why, and say so. */
  async markRevoked(reason: string): Promise<void> {
    if (this.state !== undefined) {
      this.state = { ...this.state, revoked: { at: this.clock.now(), reason: reason.slice(0, 500) } };
      this.save();
    }
    this.key = undefined;
    this.problem = { reason: 'revoked', detail: `This console was revoked: ${reason}` };
    await this.secrets.delete(CONSOLE_KEY_ACCOUNT).catch(() => false);
  }

  /** The backend does not know this console (its record was removed): enrolment is needed again. */
  markUnknown(detail: string): void {
    this.key = undefined;
    this.problem = { reason: 'unknown-to-backend', detail };
  }

  /** The site IT enrolled this console for, if any. */
  get site(): string | undefined {
    return this.state?.site;
  }

  rememberPolicy(version: number, policy: Policy): void {
    if (this.state === undefined) return;
    this.state = { ...this.state, policy: { version, policy, hash: hashPolicy(policy) } };
    this.save();
  }

  rememberRevocationEpoch(epoch: number): void {
    if (this.state === undefined || epoch <= this.state.revocationEpoch) return;
    this.state = { ...this.state, revocationEpoch: epoch };
    this.save();
  }

  /**
   * The backend's epoch, when it is below the one remembered (its database was restored from a backup),
   * once its catch-up is applied (backend-inbox.ts): the store is authoritative, so the next hello asks
   * for what follows its epoch. A lower epoch only asks for more in a catch-up, so a backend announcing
   * one gains nothing. Returns whether the remembered epoch was lowered.
   */
  takeBackendRevocationEpoch(epoch: number): boolean {
    if (this.state === undefined || epoch >= this.state.revocationEpoch) return false;
    this.state = { ...this.state, revocationEpoch: epoch };
    this.save();
    return true;
  }

  private save(): void {
    if (this.state === undefined) return;
    writeAtomically(join(this.dataDir, STATE_FILE), `${JSON.stringify(this.state, null, 2)}\n`);
  }
}
