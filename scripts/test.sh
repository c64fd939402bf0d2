#!/usr/bin/env bash
# The whole test suite: setup, type check, lint, format check, unit + integration tests (node:test),
# end-to-end tests in Debian's Chromium (Playwright). Exits non-zero if any step fails.
set -u
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh --browser --secret-service || exit 1

# PostgreSQL (the cluster engine): its tests start a throwaway server per test file (initdb into a
# temporary directory as the postgres user, a free loopback port) and remove it afterwards. Installed
# here when missing and we are root; otherwise those tests are skipped with the reason printed, unless
# BATON_REQUIRE_POSTGRES=1 (.ci/run), which makes them fail instead.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ -z "${BATON_POSTGRES_BIN:-}" ]; then
  if [ "$(id -u)" = "0" ]; then
    printf '[baton setup] installing Debian package(s): postgresql\n'
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/tmp/baton-apt-postgresql.log 2>&1; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/tmp/baton-apt-postgresql.log 2>&1 ||
        printf '[baton setup] apt-get install postgresql failed (see /tmp/baton-apt-postgresql.log): the PostgreSQL tests will be skipped.\n'
    fi
  else
    printf "[baton setup] cannot install PostgreSQL (not running as root): the PostgreSQL tests will be skipped; install it with 'sudo apt-get install -y postgresql'.\n"
  fi
fi

# One temporary directory for the whole run: TMPDIR (os.tmpdir(), mktemp, Playwright and Chromium honour
# it), removed on exit, so what a test leaves behind goes with it instead of piling up in /tmp. Before
# removing it the runner prints one line naming what the tests left there (each a leak to fix at its
# source). A short path: Unix socket paths must stay under 107 bytes. Mode 0755: the throwaway
# PostgreSQL servers initdb into a directory under it as the postgres user, who must reach it.
suite_tmp=$(mktemp -d /tmp/baton-suite-XXXXXX) || exit 1
chmod 0755 "$suite_tmp"
remove_suite_tmp() {
  # Not counted: the compile caches of tsx, Playwright and jiti (a config loader of ESLint and electron-builder)
  # and the keyring directory this script makes.
  local left
  left=$(find "$suite_tmp" -mindepth 1 -maxdepth 1 ! -name 'tsx-*' ! -name 'playwright-transform-cache-*' \
    ! -name 'jiti' ! -name 'keyring-*' -printf '%f\n' | sed 's/-[A-Za-z0-9]\{6\}$/-/' | sort | uniq -c |
    awk '{ printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1 }')
  printf '\n[baton test] left in TMPDIR by the tests: %s; removing %s\n' "${left:-nothing}" "$suite_tmp"
  rm -rf "$suite_tmp"
}
trap remove_suite_tmp EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export TMPDIR="$suite_tmp"

status=0
step() {
  local name=$1
  shift
  printf '\n== %s ==\n' "$name"
  if ! "$@"; then
    printf '!! %s failed\n' "$name"
    status=1
  fi
}

step "admin console bundle (esbuild)" npm run --silent build:admin
step "operator UI bundle (esbuild)" npm run --silent build:renderer
step "type check (tsc -b)" npx tsc -b
step "lint (eslint)" npx eslint .
step "format (prettier --check)" npx prettier --check . --log-level warn
# How much of the agent only Electron can run (issue 11): printed, and the step fails above 15%.
step "Electron-bound share of the agent (at most 15%)" node --import tsx scripts/electron-share.ts
step "unit and integration tests (node --test)" npm run --silent test:unit
# The same integration suite on the cluster engine: each test backend gets its own database on a
# throwaway PostgreSQL server (test/helpers/test-database.ts), plus two real backend workers on one port.
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "${BATON_POSTGRES_BIN:-}" ] || [ "${BATON_REQUIRE_POSTGRES:-}" = "1" ]; then
  step "integration tests on PostgreSQL (node --test, BATON_TEST_DATABASE=postgres)" env BATON_TEST_DATABASE=postgres BATON_CLUSTER_WORKERS_IT=1 \
    node --import tsx --test --test-concurrency=2 --test-timeout=300000 $(find test/integration -name '*.test.ts' | sort) backend/cluster-workers.integration.test.ts
else
  printf '\n== integration tests on PostgreSQL ==\nSKIPPED: PostgreSQL is not installed (run as root so npm test can install it, or apt-get install postgresql).\n'
fi
if command -v dbus-run-session >/dev/null && command -v gnome-keyring-daemon >/dev/null && [ -f node_modules/keytar/build/Release/keytar.node ]; then
  # A throwaway keyring directory (under TMPDIR, removed with it): each run starts with a fresh, unlocked login keyring.
  step "OS credential store (keytar against a real Secret Service)" env XDG_DATA_HOME="$(mktemp -d "$TMPDIR/keyring-XXXXXX")" dbus-run-session -- sh -c \
    'printf baton | gnome-keyring-daemon --unlock --components=secrets >/dev/null; BATON_SECRET_SERVICE=1 node --import tsx --test $(find main test -name "*.keytar.test.ts" | sort)'
else
  printf '\n== OS credential store ==\nSKIPPED: needs dbus-run-session, gnome-keyring and a built keytar (run as root so npm test can install libsecret-1-dev, gnome-keyring and dbus).\n'
fi
if [ -x /usr/bin/chromium ]; then
  step "end-to-end tests (Playwright, Chromium)" npx playwright test
else
  printf '\n== end-to-end tests ==\nSKIPPED: /usr/bin/chromium is not installed and could not be installed here (run as root, or apt-get install chromium).\n'
fi
# The desktop agent in Electron: skipped with the reason printed where the runtime is not installed
# (it cannot be downloaded here); .github/workflows/electron.yml runs it on a hosted runner.
step "Electron end-to-end tests (Playwright _electron)" npx playwright test --config playwright.electron.config.ts
exit $status
