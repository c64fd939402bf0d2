#!/usr/bin/env bash
# The whole test suite: setup, type check, lint, format check, unit + integration tests (node:test),
# end-to-end tests in Debian's Chromium (Playwright). Exits non-zero if any step fails.
set -u
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh --browser || exit 1

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

step "type check (tsc -b)" npx tsc -b
step "lint (eslint)" npx eslint .
step "format (prettier --check)" npx prettier --check . --log-level warn
step "unit and integration tests (node --test)" npm run --silent test:unit
if [ -x /usr/bin/chromium ]; then
  step "end-to-end tests (Playwright, Chromium)" npx playwright test
else
  printf '\n== end-to-end tests ==\nSKIPPED: /usr/bin/chromium is not installed and could not be installed here (run as root, or apt-get install chromium).\n'
fi
exit $status
