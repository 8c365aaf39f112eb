#!/usr/bin/env bash
# Installs every build and test dependency of Scion from Debian 12 packages. Idempotent: does
# nothing when all are present; uses sudo when not root.
set -euo pipefail

packages=(build-essential cmake pkg-config libzmq3-dev cppzmq-dev libsqlite3-dev sqlite3 libboost-dev
          nlohmann-json3-dev prometheus-cpp-dev libgtest-dev libgmock-dev prometheus python3
          systemd shellcheck yamllint nodejs slurm-wlm munge)
# Node.js may come from Debian (npm is then a separate package) or from a vendor build that bundles
# npm; ask for Debian's npm only when no npm is on the PATH.
if ! command -v npm >/dev/null 2>&1; then
  packages+=(npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "bootstrap: installing ${missing[*]}" >&2
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian prometheus, munge and SLURM packages start system services; Scion's tests run their
# own instances on their own ports, sockets and keys.
for service in prometheus munge slurmctld slurmd; do
  $sudo systemctl disable --now "$service" >/dev/null 2>&1 || true
done
