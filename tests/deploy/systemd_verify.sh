#!/usr/bin/env bash
# systemd-analyze verify on Scion's units, warnings counted as failures. The daemons need not be
# installed: each unit is copied with ExecStart pointed at a placeholder executable (verify checks
# that the binary exists, not what it does); the template is verified as instance @0.
# Usage: systemd_verify.sh REPO
set -euo pipefail
repo=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/bin"
for b in scion-coordinator scion-worker; do
  printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/$b"
  chmod +x "$tmp/bin/$b"
done
units=()
for unit in "$repo"/deploy/systemd/*.service; do
  name=$(basename "$unit")
  name=${name/@.service/@0.service}
  sed "s#/usr/bin/scion-#$tmp/bin/scion-#g" "$unit" >"$tmp/$name"
  units+=("$tmp/$name")
done
out=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no --generators=no "${units[@]}" 2>&1) || {
  echo "$out" >&2
  echo "FAILED: systemd-analyze verify exited non-zero" >&2
  exit 1
}
if [ -n "$out" ]; then
  echo "$out" >&2
  echo "FAILED: systemd-analyze verify printed warnings" >&2
  exit 1
fi
echo "ok: ${#units[@]} units verified"
