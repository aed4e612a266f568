#!/usr/bin/env bash
# Builds the web dashboard (dashboard/ → dashboard/dist), which aiprodd embeds when it is
# compiled (daemon/build.rs), so a node runs it with no Node.js. Installs the locked npm
# packages first when they are missing or older than package-lock.json.
#   --install-only   only install the npm packages (scripts/install-deps.sh uses this)
# Without npm it warns and exits 0 — aiprodd then embeds a placeholder page and the API still
# works — except under CI, where the dashboard and its browser test are required.
set -euo pipefail
cd "$(dirname "$0")/../dashboard"

if ! command -v npm >/dev/null 2>&1; then
  echo "build-dashboard: npm not found (Node.js 20+ needed); aiprodd will embed a placeholder page" >&2
  [ "${CI:-}" = "true" ] && exit 1
  exit 0
fi

# `npm ci` wipes node_modules, so run it only when the lock file changed since the last one.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "build-dashboard: installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi
[ "${1:-}" = "--install-only" ] && exit 0

npm run --silent build
echo "build-dashboard: built dashboard/dist ($(find dist -type f | wc -l) files)"
