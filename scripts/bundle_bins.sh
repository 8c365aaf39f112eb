#!/usr/bin/env bash
# Copies a build tree's control-plane binaries (coordinator, worker, job runner, CLI) into a folder
# laid out as SCION_BIN_DIR expects (scripts/lib/cluster.sh), stripped, with the shared libraries
# they load that a bare machine may lack (ZeroMQ and its transports, prometheus-cpp, SQLite, ...)
# in <out>/lib. For a machine that cannot build the control plane but has a glibc at least as new
# as the building one's: run there with LD_LIBRARY_PATH=<out>/lib SCION_BIN_DIR=<out>. The CUDA
# toolkit's cuBLAS is the target's own (the daemons load it with dlopen; an extra binary that links
# it, such as scion-kernel-check, needs the toolkit's library folder on LD_LIBRARY_PATH there):
# copying it would add half a gigabyte.
#
#   scripts/bundle_bins.sh <build dir> <out dir> [extra binary...]   (extras go to <out>/extra/)
set -euo pipefail
build=${1:?usage: bundle_bins.sh <build dir> <out dir> [extra binary...]}
out=${2:?usage: bundle_bins.sh <build dir> <out dir> [extra binary...]}
shift 2
bins=(coordinator/scion-coordinator worker/scion-worker jobs/scion-job cli/scion)
mkdir -p "$out/lib"
copied=()
for b in "${bins[@]}"; do
  [ -x "$build/$b" ] || { echo "$build/$b: missing (build the targets first)" >&2; exit 1; }
  mkdir -p "$out/$(dirname "$b")"
  cp "$build/$b" "$out/$b"
  copied+=("$out/$b")
done
for e in "$@"; do
  mkdir -p "$out/extra"
  cp "$e" "$out/extra/"
  copied+=("$out/extra/$(basename "$e")")
done
strip --strip-unneeded "${copied[@]}"

# Libraries every Linux with a GPU driver has (glibc, the C++ runtime, the driver's own): taking
# them along would shadow the target's and can break it. Everything else travels.
system='^(linux-vdso\.so|ld-linux-x86-64\.so|libc\.so|libm\.so|libdl\.so|librt\.so|libpthread\.so|libresolv\.so|libutil\.so|libstdc\+\+\.so|libgcc_s\.so|libcuda\.so|libnvidia-|libcublas(Lt)?\.so)'
for f in "${copied[@]}"; do
  ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r name path; do
  if [[ $name =~ $system ]]; then continue; fi
  cp -L "$path" "$out/lib/$name"
done
strip --strip-unneeded "$out"/lib/*.so* 2>/dev/null || true
# Every library must now come from <out>/lib or be one of the system ones: a dependency found only in
# this machine's folders would be missing on the target.
lib=$(cd "$out/lib" && pwd)
stray=$(for f in "${copied[@]}"; do LD_LIBRARY_PATH=$lib ldd "$f"; done | awk '$2 == "=>" {print $1, $3}' | sort -u |
  while read -r name path; do
    [[ $name =~ $system || $path == "$lib/"* ]] || echo "$name ($path)"
  done)
[ -z "$stray" ] || { echo "libraries not bundled: $stray" >&2; exit 1; }
du -sh "$out"
ls "$out/lib"
