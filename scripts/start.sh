#!/usr/bin/env bash
# Sets up and runs Baton on this machine: the assurance backend with its embedded SQLite store,
# and the desktop agent where its Electron runtime is available.
# Extra arguments go to the backend (e.g. --port 8470 --data-dir ./data --origin http://localhost:8471).
set -u
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh || exit 1

say() { printf '[baton] %s\n' "$*"; }

electron_bin=""
if [ -f node_modules/electron/path.txt ] && [ -e "node_modules/electron/dist/$(cat node_modules/electron/path.txt)" ]; then
  electron_bin="node_modules/electron/dist/$(cat node_modules/electron/path.txt)"
fi
if [ ! -f main/index.ts ]; then
  say "The desktop agent's window (the Electron shell) is not in this build yet, so the backend starts alone. The agent core runs without a screen: 'npm run agent:headless' enrols a console and keeps it connected (docs/agent.md)."
elif [ -z "$electron_bin" ]; then
  say "The Electron runtime is not installed on this machine (it cannot be downloaded here), so the desktop agent (main/index.ts) cannot open its window and only the backend starts; 'npm run agent:headless' runs the agent core without a screen, and README.md ('The desktop agent') says how to run and package the agent where the runtime is."
fi

mkdir -p data
# The admin console (served at /admin/ by the backend) is bundled from admin/ on every start.
npm run --silent build:admin || say "The admin console could not be built; the backend starts without it (its /admin/ page says so)."
# The operator UI (served by the agent shell, or by `npm run agent:dev` in development) is bundled from renderer/.
npm run --silent build:renderer || say "The operator UI could not be built; see the message above."
say "starting the backend (data in ./data; stop with Ctrl-C)…"
exec node --import tsx backend/cli.ts --data-dir ./data --bootstrap-token-file ./data/bootstrap-admin-token "$@"
