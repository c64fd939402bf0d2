#!/usr/bin/env bash
# Sets up and runs Baton on this machine: the assurance backend with its embedded SQLite store
# (and its admin console at /admin/), then the agent: the Electron desktop agent where its runtime is
# installed, otherwise the same agent core with its operator UI in development mode in the browser.
# The workspace is the sample teller app (examples/teller-app, on :8480) unless BATON_WORKSPACE_URL names another.
# Extra arguments go to the backend (e.g. --port 8470 --data-dir ./data --origin http://localhost:8471).
set -u
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh || exit 1

say() { printf '[baton] %s\n' "$*"; }

port=8470
prev=""
for arg in "$@"; do
  [ "$prev" = "--port" ] && port="$arg"
  case "$arg" in --port=*) port="${arg#--port=}" ;; esac
  prev="$arg"
done
backend_url="http://localhost:${port}"

electron_bin=""
if [ -f node_modules/electron/path.txt ] && [ -e "node_modules/electron/dist/$(cat node_modules/electron/path.txt)" ]; then
  electron_bin="node_modules/electron/dist/$(cat node_modules/electron/path.txt)"
fi

# A second `npm start` while Baton runs changes nothing: the running backend keeps its port, its data
# and its admins' sessions (the backend itself also refuses a data directory another one holds).
if node -e 'fetch(process.argv[1] + "/healthz", { signal: AbortSignal.timeout(2000) }).then(() => process.exit(0), () => process.exit(1));' "$backend_url"; then
  say "A Baton backend is already running on ${backend_url}; not starting a second one. Stop it first (Ctrl-C in its terminal), or pass another --port and --data-dir."
  exit 1
fi

mkdir -p data
# The admin console (served at /admin/ by the backend) is bundled from admin/ on every start.
npm run --silent build:admin || say "The admin console could not be built; the backend starts without it (its /admin/ page says so)."
# The operator UI (served by the agent shell, or by the development bridge) is bundled from renderer/.
npm run --silent build:renderer || say "The operator UI could not be built; see the message above."

say "starting the backend on ${backend_url} (data in ./data; stop everything with Ctrl-C)…"
node --import tsx backend/cli.ts --data-dir ./data --bootstrap-token-file ./data/bootstrap-admin-token "$@" &
backend_pid=$!
agent_pid=""
teller_pid=""
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null
  [ -n "$teller_pid" ] && kill "$teller_pid" 2>/dev/null
  kill "$backend_pid" 2>/dev/null
  wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# Wait until the backend answers (or has exited). Its own process must be the one alive: another
# backend already on the port answers too, while this one has refused to start (DATA_DIR_LOCKED).
# A first start migrates the store and generates its keys: on a busy machine that can take a minute or
# more, so the wait is bounded by the backend's own exit (it exits on any start-up failure), with a
# progress line every 15 s and an outer limit of 5 minutes (BATON_START_TIMEOUT_SECONDS).
if ! node -e '
  const url = process.argv[1] + "/healthz";
  const pid = Number(process.argv[2]);
  const limit = Number(process.argv[3]) * 1000;
  const started = Date.now();
  let told = started;
  (async () => {
    for (;;) {
      try { process.kill(pid, 0); } catch { process.exit(1); }
      try { if ((await fetch(url)).ok) { process.kill(pid, 0); process.exit(0); } } catch {}
      const now = Date.now();
      if (now - started > limit) { console.error(`[baton] the backend has not answered in ${limit / 1000} s; giving up`); process.exit(2); }
      if (now - told >= 15000) { told = now; console.error(`[baton] still waiting for the backend (${Math.round((now - started) / 1000)} s; a first start migrates the store and makes its keys)…`); }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();' "$backend_url" "$backend_pid" "${BATON_START_TIMEOUT_SECONDS:-300}"; then
  say "The backend did not start (see its log above); not starting the agent."
  kill "$backend_pid" 2>/dev/null
  wait "$backend_pid"
  exit 1
fi

# The default workspace: the sample teller app, a line-of-business server that trusts Baton through action
# tokens (@baton/verifier). Its key for Baton's revocation stream is kept in ./data; it prints the "apps"
# entry an admin publishes in the policy (admin console → Policy) before its calls can get tokens.
workspace_url="${BATON_WORKSPACE_URL:-}"
if [ -z "$workspace_url" ]; then
  say "starting the sample teller app (the default workspace) on http://127.0.0.1:8480…"
  BATON_URL="$backend_url" TELLER_PORT=8480 TELLER_KEY_FILE=./data/teller-revocation-key.json \
    node --import tsx examples/teller-app/cli.ts &
  teller_pid=$!
  workspace_url="http://127.0.0.1:8480/"
fi

if [ -n "$electron_bin" ]; then
  say "starting the desktop agent (Electron), workspace ${workspace_url}…"
  npm run --silent build:electron && BATON_AGENT_WORKSPACE_URL="$workspace_url" "$electron_bin" dist/app &
  agent_pid=$!
else
  say "The Electron runtime is not installed on this machine (it cannot be downloaded here), so the agent runs in development mode instead: the same agent core, with its operator UI in your browser at http://localhost:8471 (a Chromium-based browser and a security key, or DevTools' WebAuthn panel). Issue it a console token from the admin console at ${backend_url}/admin/. The workspace (${workspace_url}) opens in another tab at http://localhost:8472, with window.baton as the desktop agent's workspace preload gives it (development stand-in)."
  node --import tsx main/ui/dev-cli.ts --backend "$backend_url" --workspace "$workspace_url" &
  agent_pid=$!
fi
wait "$agent_pid"
