# Sourced by the deploy checks that run Scion's daemons: sets repo, build and the binary paths from
# the script's arguments (REPO BUILD_DIR) and exits 77 (CTest: skipped) when a daemon is not built.
# shellcheck shell=bash disable=SC2034  # the variables are for the sourcing script
repo=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
coordinator=$build/coordinator/scion-coordinator
worker=$build/worker/scion-worker
cli=$build/cli/scion
job=$build/jobs/scion-job
for b in "$coordinator" "$worker" "$cli" "$job"; do
  if [ ! -x "$b" ]; then
    echo "skip: $b is not built"
    exit 77
  fi
done
