#!/usr/bin/env bash
# Installs what Baton needs on a fresh Debian machine with Node ^20.18.1 || >=22.12.0, and says plainly what it could not do.
# Usage: scripts/ensure-deps.sh [--browser] [--secret-service]
set -u
cd "$(dirname "$0")/.."

want_browser=0
want_secret_service=0
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=1 ;;
    --secret-service) want_secret_service=1 ;;
  esac
done

say() { printf '[baton setup] %s\n' "$*"; }

# package.json engines: ^20.18.1 || >=22.12.0 (Node 22.12+ only for the Electron runtime and packaging).
if ! node -e 'const [a, b, c] = process.versions.node.split(".").map(Number);
  process.exit((a === 20 && (b > 18 || (b === 18 && c >= 1))) || a > 22 || (a === 22 && b >= 12) ? 0 : 1)' 2>/dev/null; then
  say "Node.js 20.18.1 or later 20.x, or 22.12 or newer, is required (found: $(node --version 2>/dev/null || echo none))."
  exit 1
fi

apt_updated=0
apt_install() {
  if [ "$(id -u)" != "0" ]; then
    say "cannot install Debian package(s) $* (not running as root): install them with 'sudo apt-get install -y $*'."
    return 1
  fi
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
    apt_updated=1
  fi
  say "installing Debian package(s): $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/tmp/baton-apt.log 2>&1 || {
    say "apt-get install $* failed; see /tmp/baton-apt.log"
    return 1
  }
}

if [ "$want_browser" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  apt_install chromium || say "end-to-end browser tests will be skipped: /usr/bin/chromium is missing."
fi
# keytar (the OS credential store binding) builds against libsecret; its test needs a real Secret Service.
# Installed before npm ci so that keytar's build finds the headers.
if [ "$want_secret_service" = 1 ]; then
  missing=()
  [ -f /usr/include/libsecret-1/libsecret/secret.h ] || missing+=(libsecret-1-dev)
  command -v gnome-keyring-daemon >/dev/null || missing+=(gnome-keyring)
  command -v dbus-run-session >/dev/null || missing+=(dbus)
  if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}" || say "the credential-store test will be skipped: ${missing[*]} could not be installed."
  fi
fi

# npm packages: install when node_modules is missing or older than the lock file.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)…"
  # electron's runtime download is lazy (first run), so this works without access to its release host.
  if ! npm ci --no-audit --no-fund >/tmp/baton-npm-ci.log 2>&1; then
    say "npm ci failed; see /tmp/baton-npm-ci.log"
    tail -20 /tmp/baton-npm-ci.log
    exit 1
  fi
fi
# keytar is optional: where it could not be built earlier (no libsecret then), build it now.
if [ "$want_secret_service" = 1 ] && [ -d node_modules/keytar ] && [ ! -f node_modules/keytar/build/Release/keytar.node ] \
  && [ -f /usr/include/libsecret-1/libsecret/secret.h ]; then
  say "building keytar against libsecret…"
  npm rebuild keytar >/tmp/baton-keytar.log 2>&1 || say "keytar could not be built; see /tmp/baton-keytar.log"
fi
# The verifier's native ES256 addon (packages/verifier/native): built with node-gyp when missing or older than its
# source. Without it @baton/verifier verifies with node:crypto, which is slower; nothing else changes.
native_src=packages/verifier/native/es256.c
native_out=packages/verifier/native/build/Release/baton_es256.node
if [ ! -f "$native_out" ] || [ "$native_src" -nt "$native_out" ]; then
  if ! command -v make >/dev/null || ! command -v g++ >/dev/null || ! command -v python3 >/dev/null; then
    apt_install g++ make python3 || true
  fi
  say "building the verifier's native ES256 addon…"
  node --import tsx packages/verifier/native/build.ts >/tmp/baton-verifier-native.log 2>&1 ||
    say "the verifier's native ES256 addon could not be built (see /tmp/baton-verifier-native.log): @baton/verifier verifies with node:crypto instead, about 10 % slower."
fi
exit 0
