import { createCipheriv, createDecipheriv, createHash, randomBytes, randomUUID } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { BatonError } from '../../shared/errors.js';

/**
 * The key-encryption key (KEK): 32 random bytes in a file outside the database (mode 0600), the same
 * file on every node of a cluster. The signing key rings live in the database sealed under it
 * (AES-256-GCM): someone with only the database can neither read a private key nor put in a key of
 * their own, because both need the KEK. ADR 0006.
 */
export const KEY_ENCRYPTION_KEY_FILE = 'key-encryption-key';
/** Names the KEK file when it is not `<data dir>/key-encryption-key` (e.g. a mounted secret). */
export const KEY_ENCRYPTION_KEY_ENV = 'BATON_KEY_ENCRYPTION_KEY_FILE';
const KEK_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Where this node's KEK is: $BATON_KEY_ENCRYPTION_KEY_FILE, else `<dataDir>/key-encryption-key`. */
export function keyEncryptionKeyPath(dataDir: string, env: NodeJS.ProcessEnv = process.env): string {
  const configured = env[KEY_ENCRYPTION_KEY_ENV]?.trim();
  if (configured === undefined || configured === '') return join(dataDir, KEY_ENCRYPTION_KEY_FILE);
  return isAbsolute(configured) ? configured : resolve(configured);
}

const SealedSchema = z.strictObject({
  v: z.literal(1),
  alg: z.literal('A256GCM'),
  /** Which KEK sealed it (a digest of the key, not the key): tells a wrong KEK from a changed record. */
  kek: z.string().regex(/^[0-9a-f]{16}$/),
  iv: z.string().min(1),
  ct: z.string().min(1),
  tag: z.string().min(1),
});

export class KeyEncryptionKey {
  /** A digest that names this KEK (16 hex digits; reveals nothing usable about the key). */
  readonly id: string;

  private constructor(
    private readonly key: Buffer,
    /** The file it was read from, for error messages. */
    readonly file: string,
  ) {
    this.id = createHash('sha256').update('baton key-encryption-key id\0').update(key).digest('hex').slice(0, 16);
  }

  /** Reads the KEK file; undefined when there is none. A file that is not a KEK stops the start. */
  static read(file: string): KeyEncryptionKey | undefined {
    if (!existsSync(file)) return undefined;
    chmodSync(file, 0o600);
    // Base64url, with or without padding (`head -c 32 /dev/urandom | basenc --base64url` makes one).
    const text = readFileSync(file, 'utf8').trim().replace(/=+$/, '');
    const key = Buffer.from(text, 'base64url');
    if (!/^[A-Za-z0-9_-]+$/.test(text) || key.length !== KEK_BYTES) {
      throw new BatonError(
        'KEY_ENCRYPTION_KEY_MISMATCH',
        `The key-encryption key file ${file} is not a key-encryption key (${KEK_BYTES} bytes, base64url): copy it again from a node of this cluster`,
      );
    }
    return new KeyEncryptionKey(key, file);
  }

  /**
   * Creates the KEK file (0600) with a fresh key, or reads the one another process of this host
   * created first (the file appears complete, by a hard link from a temporary file).
   */
  static create(file: string): KeyEncryptionKey {
    const target = `${file}.${randomUUID()}.tmp`;
    const fd = openSync(target, 'wx', 0o600);
    try {
      writeSync(fd, `${randomBytes(KEK_BYTES).toString('base64url')}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(target, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      unlinkSync(target);
    }
    return KeyEncryptionKey.read(file) as KeyEncryptionKey;
  }

  /** Seals `plaintext` bound to `context` (the record's name: a sealed ring cannot be moved to another). */
  seal(plaintext: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(aad(context, this.id)));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return JSON.stringify({
      v: 1,
      alg: 'A256GCM',
      kek: this.id,
      iv: iv.toString('base64url'),
      ct: ct.toString('base64url'),
      tag: cipher.getAuthTag().toString('base64url'),
    });
  }

  /**
   * Opens what `seal` sealed under `context`. A record sealed under another KEK is
   * KEY_ENCRYPTION_KEY_MISMATCH (copy the cluster's KEK file); one that does not authenticate under
   * this KEK (a byte changed, a record of someone else's making) is KEY_RING_TAMPERED.
   */
  open(sealed: string, context: string): string {
    let parsed: z.infer<typeof SealedSchema>;
    try {
      parsed = SealedSchema.parse(JSON.parse(sealed));
    } catch {
      throw new BatonError(
        'KEY_RING_TAMPERED',
        `The sealed ${context} in the database is not a sealed record: it was changed outside Baton`,
      );
    }
    if (parsed.kek !== this.id) {
      throw new BatonError(
        'KEY_ENCRYPTION_KEY_MISMATCH',
        `The ${context} in the database is sealed under another key-encryption key than ${this.file} (${parsed.kek}, this file is ${this.id}): copy the key-encryption-key file of a node of this cluster to ${this.file} (mode 0600)`,
      );
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(parsed.iv, 'base64url'), {
        authTagLength: TAG_BYTES,
      });
      decipher.setAAD(Buffer.from(aad(context, parsed.kek)));
      decipher.setAuthTag(Buffer.from(parsed.tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(parsed.ct, 'base64url')), decipher.final()]).toString('utf8');
    } catch {
      throw new BatonError(
        'KEY_RING_TAMPERED',
        `The sealed ${context} in the database does not authenticate under the key-encryption key ${this.file}: it was changed outside Baton (restore it from a backup)`,
      );
    }
  }
}

function aad(context: string, kekId: string): string {
  return `baton sealed record v1\0${context}\0${kekId}`;
}
