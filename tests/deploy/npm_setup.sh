#!/usr/bin/env bash
# Installs the deploy checks' npm packages (Grafana's schema, Kubernetes and Compose schemas, Ajv,
# TypeScript) into a folder under the build tree, pinned by package-lock.json. Re-installs only when
# the lock file changes, so repeated CTest runs stay offline and fast.
# Usage: npm_setup.sh NPM_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$1
mkdir -p "$dir"
stamp="$dir/.lock.sha256"
want=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$dir/node_modules" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "npm_setup: npm not found (scripts/bootstrap.sh installs it)" >&2
  exit 1
fi
cp "$here/package.json" "$here/package-lock.json" "$dir/"
(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
echo "$want" >"$stamp"
