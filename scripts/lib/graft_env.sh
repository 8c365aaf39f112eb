# shellcheck shell=bash
# Settings the grafting scripts share (graft_lm.sh, graft_speed.sh, graft_search.sh), so they agree
# on one data folder, one cluster port and one set of binaries (sourced from the repository root,
# after root=$(pwd)):
#   SCION_BUILD_DIR (build), SCION_GRAFT_DATA (data/graft-lm), SCION_GRAFT_PORT (17555),
#   SCION_GRAFT_GPUS (0; 1: every job asks for a GPU), SCION_BIN_DIR (prebuilt binaries).
# shellcheck disable=SC2034  # the variables are the sourcing script's
build=${SCION_BUILD_DIR:-build}
data=${SCION_GRAFT_DATA:-$root/data/graft-lm}
base_port=${SCION_GRAFT_PORT:-17555}
gpus=${SCION_GRAFT_GPUS:-0}
source scripts/lib/cluster.sh
cluster_bin "$root/$build"
