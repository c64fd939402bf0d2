/*
 * ES256 verification for @baton/verifier, straight into OpenSSL with a verification context prepared
 * once per key.
 *
 * Why this exists: node:crypto.verify sets up OpenSSL's digest and signature contexts again on every
 * call (EVP_DigestVerifyInit: algorithm fetches, a context allocated and freed), about 6 µs of the
 * ~46 µs one ES256 check takes from JavaScript on the reference machine. Here the public key's
 * EVP_PKEY_CTX is initialised for verification once, when the key is first used, and each call is:
 * SHA-256 of the signing input, the raw r‖s signature encoded as DER, EVP_PKEY_verify. The
 * cryptography is OpenSSL's own (the copy inside Node, whose symbols Node exports to addons); nothing
 * here does elliptic-curve arithmetic.
 *
 * What it accepts, and nothing else:
 *  - key(spki): a DER SubjectPublicKeyInfo of a P-256 key (exported from a node:crypto KeyObject).
 *    Anything else, trailing bytes included, throws. The handle is type-tagged: verify() refuses an
 *    external that did not come from key().
 *  - verify(handle, signingInput, signature): signingInput a string, hashed as its UTF-8 bytes (the
 *    JWS signing input is ASCII, for which UTF-8 is the bytes themselves; nothing is narrowed or
 *    dropped), at most ES256_MAX_INPUT bytes (RangeError above); signature a Buffer/Uint8Array of exactly
 *    64 bytes (r‖s, RFC 7518 §3.4), any other length verifies false. Returns true only when OpenSSL
 *    answers 1.
 */
#include <stdlib.h>
#include <string.h>
#include <node_api.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/err.h>

#define ES256_MAX_INPUT (64 * 1024)
#define STACK_INPUT 4096

static const napi_type_tag KEY_TAG = {0x6261746f6e2d6573ULL, 0x3235362d6b657931ULL}; /* "baton-es256-key1" */

typedef struct {
  EVP_PKEY *pkey;
  EVP_PKEY_CTX *ctx; /* initialised for verification once */
} es256_key;

static void key_free(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  es256_key *k = data;
  EVP_PKEY_CTX_free(k->ctx);
  EVP_PKEY_free(k->pkey);
  free(k);
}

static napi_value throw_error(napi_env env, const char *code, const char *message) {
  napi_throw_error(env, code, message);
  return NULL;
}

/* The bytes of a Uint8Array (a Buffer is one): false for anything else. */
static bool uint8_bytes(napi_env env, napi_value value, void **data, size_t *length) {
  bool typed = false;
  napi_typedarray_type type;
  return napi_is_typedarray(env, value, &typed) == napi_ok && typed &&
         napi_get_typedarray_info(env, value, &type, length, data, NULL, NULL) == napi_ok && type == napi_uint8_array;
}

/* key(spki: Uint8Array): an opaque handle for verify(). */
static napi_value key_unmarked(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1)
    return throw_error(env, "ES256_NATIVE_ARGUMENT", "key(spki) takes one argument");
  size_t length;
  void *data;
  if (!uint8_bytes(env, argv[0], &data, &length))
    return throw_error(env, "ES256_NATIVE_ARGUMENT", "the key must be DER SPKI bytes");
  const unsigned char *p = data;
  EVP_PKEY *pkey = length > 0 && length < 1024 ? d2i_PUBKEY(NULL, &p, (long)length) : NULL;
  if (pkey == NULL || p != (const unsigned char *)data + length) {
    EVP_PKEY_free(pkey);
    return throw_error(env, "ES256_NATIVE_KEY", "not a DER SubjectPublicKeyInfo");
  }
  char group[64];
  size_t group_length = 0;
  if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC ||
      EVP_PKEY_get_utf8_string_param(pkey, "group", group, sizeof group, &group_length) != 1 ||
      strcmp(group, SN_X9_62_prime256v1) != 0) {
    EVP_PKEY_free(pkey);
    return throw_error(env, "ES256_NATIVE_KEY", "not a P-256 public key");
  }
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
  if (ctx == NULL || EVP_PKEY_public_check(ctx) != 1 || EVP_PKEY_verify_init(ctx) != 1) {
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return throw_error(env, "ES256_NATIVE_KEY", "the P-256 public key does not check");
  }
  es256_key *k = malloc(sizeof *k);
  if (k == NULL) {
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return throw_error(env, "ES256_NATIVE_MEMORY", "out of memory");
  }
  k->pkey = pkey;
  k->ctx = ctx;
  napi_value handle;
  if (napi_create_external(env, k, key_free, NULL, &handle) != napi_ok) {
    key_free(env, k, NULL);
    return throw_error(env, "ES256_NATIVE_MEMORY", "could not create the key handle");
  }
  if (napi_type_tag_object(env, handle, &KEY_TAG) != napi_ok)
    return throw_error(env, "ES256_NATIVE_MEMORY", "could not tag the key handle");
  return handle;
}

/* DER of ECDSA-Sig-Value { r INTEGER, s INTEGER } from 32-byte big-endian r and s: at most 72 bytes. */
static size_t der_integer(unsigned char *out, const unsigned char *x) {
  size_t skip = 0;
  while (skip < 31 && x[skip] == 0) skip++;
  size_t n = 32 - skip;
  int pad = (x[skip] & 0x80) != 0;
  out[0] = 0x02;
  out[1] = (unsigned char)(n + pad);
  if (pad) out[2] = 0;
  memcpy(out + 2 + pad, x + skip, n);
  return 2 + pad + n;
}

static napi_value boolean(napi_env env, bool value) {
  napi_value result;
  napi_get_boolean(env, value, &result);
  return result;
}

/* verify(handle, signingInput: string, signature: Uint8Array): boolean. */
static napi_value verify_unmarked(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3)
    return throw_error(env, "ES256_NATIVE_ARGUMENT", "verify(key, signingInput, signature) takes three arguments");
  napi_valuetype kind;
  bool tagged = false;
  if (napi_typeof(env, argv[0], &kind) != napi_ok || kind != napi_external ||
      napi_check_object_type_tag(env, argv[0], &KEY_TAG, &tagged) != napi_ok || !tagged)
    return throw_error(env, "ES256_NATIVE_ARGUMENT", "the key is not a handle from key()");
  es256_key *k;
  if (napi_get_value_external(env, argv[0], (void **)&k) != napi_ok)
    return throw_error(env, "ES256_NATIVE_ARGUMENT", "the key is not a handle from key()");

  size_t length;
  if (napi_get_value_string_utf8(env, argv[1], NULL, 0, &length) != napi_ok)
    return throw_error(env, "ES256_NATIVE_ARGUMENT", "the signing input must be a string");
  if (length > ES256_MAX_INPUT) {
    napi_throw_range_error(env, "ES256_NATIVE_INPUT_TOO_LONG", "the signing input is too long");
    return NULL;
  }
  size_t signature_length;
  void *signature;
  if (!uint8_bytes(env, argv[2], &signature, &signature_length))
    return throw_error(env, "ES256_NATIVE_ARGUMENT", "the signature must be bytes");
  if (signature_length != 64) return boolean(env, false);

  char stack_input[STACK_INPUT];
  char *input = length < sizeof stack_input ? stack_input : malloc(length + 1);
  if (input == NULL) return throw_error(env, "ES256_NATIVE_MEMORY", "out of memory");
  size_t copied = 0;
  napi_status status = napi_get_value_string_utf8(env, argv[1], input, length + 1, &copied);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  if (status == napi_ok && copied == length) {
    unsigned int digest_length = 0;
    if (EVP_Digest(input, length, digest, &digest_length, EVP_sha256(), NULL) != 1) status = napi_generic_failure;
  } else {
    status = napi_generic_failure;
  }
  if (input != stack_input) free(input);
  if (status != napi_ok) return throw_error(env, "ES256_NATIVE_DIGEST", "could not hash the signing input");

  unsigned char der[2 + 2 * 35];
  size_t r = der_integer(der + 2, signature);
  size_t s = der_integer(der + 2 + r, (const unsigned char *)signature + 32);
  der[0] = 0x30;
  der[1] = (unsigned char)(r + s);
  return boolean(env, EVP_PKEY_verify(k->ctx, der, 2 + r + s, digest, sizeof digest) == 1);
}

/*
 * OpenSSL's error queue is per thread and shared with everything else in the process: a refused key or a signature
 * with r or s out of range leaves an error on it, which the next reader (Node's TLS, calling SSL_get_error, or any
 * node:crypto call) would take for its own. node:crypto pops what it pushed before returning; so do these wrappers.
 */
static napi_value key(napi_env env, napi_callback_info info) {
  ERR_set_mark();
  napi_value result = key_unmarked(env, info);
  ERR_pop_to_mark();
  return result;
}

static napi_value verify(napi_env env, napi_callback_info info) {
  ERR_set_mark();
  napi_value result = verify_unmarked(env, info);
  ERR_pop_to_mark();
  return result;
}

NAPI_MODULE_INIT() {
  napi_value key_fn, verify_fn;
  napi_create_function(env, "key", NAPI_AUTO_LENGTH, key, NULL, &key_fn);
  napi_create_function(env, "verify", NAPI_AUTO_LENGTH, verify, NULL, &verify_fn);
  napi_set_named_property(env, exports, "key", key_fn);
  napi_set_named_property(env, exports, "verify", verify_fn);
  return exports;
}
