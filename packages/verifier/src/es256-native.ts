import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** The compiled addon (`native/es256.c`): OpenSSL's ES256 verification with a context prepared once per key. */
interface Es256Binding {
  key(spki: Uint8Array): object;
  verify(key: object, signingInput: string, signature: Uint8Array): boolean;
}

/** Where `npm run build:verifier-native` (native/build.ts) puts the addon. */
export const NATIVE_ES256_PATH = fileURLToPath(new URL('../native/build/Release/baton_es256.node', import.meta.url));

/** The addon, once it has loaded and passed its self-check. */
let binding: Es256Binding | undefined;

/**
 * Which ES256 implementation this process verifies with, and why: `openssl-prepared` (the addon) when it is built,
 * loads and passes its self-check; `node:crypto` otherwise, with the reason (the same checks, about 0.89 of the speed).
 * `BATON_VERIFIER_NATIVE=0` chooses node:crypto.
 */
export const es256Backend: { readonly name: 'openssl-prepared' | 'node:crypto'; readonly reason: string } =
  Object.freeze(choose());

function choose(): { name: 'openssl-prepared' | 'node:crypto'; reason: string } {
  if (process.env.BATON_VERIFIER_NATIVE === '0') return { name: 'node:crypto', reason: 'BATON_VERIFIER_NATIVE=0' };
  let loaded: Es256Binding;
  try {
    loaded = createRequire(import.meta.url)(NATIVE_ES256_PATH) as Es256Binding;
  } catch {
    return { name: 'node:crypto', reason: 'the native addon is not built (npm run build:verifier-native)' };
  }
  const problem = selfCheck(loaded);
  if (problem !== undefined)
    return { name: 'node:crypto', reason: `the native addon failed its self-check: ${problem}` };
  binding = loaded;
  return { name: 'openssl-prepared', reason: 'built, loaded and self-checked' };
}

/** One signature made here must verify, and the same with one bit changed must not (this Node's OpenSSL, this build). */
function selfCheck(candidate: Es256Binding): string | undefined {
  try {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const input = 'eyJhbGciOiJFUzI1NiJ9.eyJzZWxmLWNoZWNrIjp0cnVlfQ';
    const signature = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
    const handle = candidate.key(publicKey.export({ type: 'spki', format: 'der' }));
    if (!candidate.verify(handle, input, signature)) return 'a valid signature did not verify';
    signature[10] = (signature[10] ?? 0) ^ 1;
    if (candidate.verify(handle, input, signature)) return 'a forged signature verified';
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** Prepared handles by key; `null`: the addon refused the key (not P-256), so node:crypto checks its tokens. */
const handles = new WeakMap<KeyObject, object | null>();

function handleOf(native: Es256Binding, key: KeyObject): object | null {
  let handle = handles.get(key);
  if (handle === undefined) {
    try {
      handle = key.type === 'public' ? native.key(key.export({ type: 'spki', format: 'der' })) : null;
    } catch {
      handle = null;
    }
    handles.set(key, handle);
  }
  return handle;
}

/**
 * ES256 over `signingInput` (its UTF-8 bytes: the JWS signing input is ASCII) with the addon, or `undefined` when the
 * addon is not in use or does not take this key, for the caller to verify with node:crypto.
 */
export function verifyEs256Native(key: KeyObject, signingInput: string, signature: Uint8Array): boolean | undefined {
  if (binding === undefined) return undefined;
  const handle = handleOf(binding, key);
  return handle === null ? undefined : binding.verify(handle, signingInput, signature);
}
