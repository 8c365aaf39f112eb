#!/usr/bin/env bash
# Runs deploy/slurm/scion-workers.sbatch on a real one-node SLURM cluster on loopback: munged,
# slurmctld and slurmd from Debian's slurm-wlm, with a throwaway slurm.conf whose node has two
# GPUs as generic resources. The GPUs are fake: gres.conf needs character devices, so the "GPU
# device files" are links to /dev/null and /dev/zero; the gres/gpu plugin then sets
# CUDA_VISIBLE_DEVICES for the job as it would on a GPU node. Each worker offers the GPUs of its
# --fake-gpus test knob, filtered by that variable as real GPUs are.
# Checks: sbatch starts two workers under SLURM that register with a real coordinator, each with
# its own GPU; one of them runs a command job; scancel stops both workers, which drain and
# disconnect (the coordinator lists them as gone, not lost).
# Exits 77 (CTest: skipped) when the daemons are not built or when not run as root (slurmd must
# be root to launch jobs).
# Usage: slurm_cluster.sh REPO BUILD_DIR
set -euo pipefail
# shellcheck source=daemons.sh
source "$(dirname "$0")/daemons.sh"
if [ "$(id -u)" -ne 0 ]; then
  echo "skip: slurmd launches jobs only as root"
  exit 77
fi
export PATH="$PATH:/usr/sbin:/sbin"
for t in munged mungekey slurmctld slurmd sbatch squeue scancel sinfo; do
  command -v "$t" >/dev/null || { echo "FAILED: $t not found; scripts/bootstrap.sh installs slurm-wlm and munge" >&2; exit 1; }
done

tmp=$(mktemp -d)
pids=()
jobid=""
# Every process of this cluster (daemons, slurmstepd, srun, workers) inherits SLURM_CONF naming
# this check's slurm.conf: the last resort below kills exactly those, by pid.
# shellcheck disable=SC2317  # called through the EXIT trap
own_pids() {
  local env
  for env in /proc/[0-9]*/environ; do
    if { tr '\0' '\n' <"$env"; } 2>/dev/null | grep -qxF "SLURM_CONF=$tmp/slurm.conf"; then
      env=${env#/proc/}
      echo "${env%/environ}"
    fi
  done
}
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
  set +e
  # Cancel the job while slurmd still runs, so SLURM itself ends its steps (KillWait=5 s).
  if [ -n "$jobid" ]; then
    scancel "$jobid" 2>/dev/null
    for _ in $(seq 50); do
      [ -z "$(squeue -h -j "$jobid" -o %T 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  # Reverse order: slurmd before slurmctld before the coordinator before munged.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  local left
  left=$(own_pids)
  if [ -n "$left" ]; then
    echo "cleanup: killing leftover processes $(echo "$left" | tr '\n' ' ')" >&2
    # shellcheck disable=SC2086  # one pid per word
    kill -KILL $left 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAILED: $*" >&2
  for f in "$tmp"/*.log "$tmp"/*.out; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }
  done
  exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# A port P with P and P+1 free: the batch script gives worker i the metrics port base + i.
free_port_pair() {
  python3 - <<'PY'
import socket
for _ in range(100):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1)); print(p); break
    except OSError:
        pass
    finally:
        a.close(); b.close()
PY
}
# Until COMMAND... succeeds, at most SECONDS of wall time; WHAT names the failure.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  while [ "$SECONDS" -lt "$deadline" ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  fail "$what (waited ${seconds} s)"
}

# Munge: a fresh key and a private socket, so nothing touches a system munged.
mungekey -c -k "$tmp/munge.key"
munged -F --force --socket="$tmp/munge.sock" --key-file="$tmp/munge.key" --pid-file="$tmp/munged.pid" \
  --seed-file="$tmp/munge.seed" --log-file="$tmp/munged.log" >"$tmp/munged.out" 2>&1 &
pids+=($!)
wait_for 10 "munged did not start" munge -n -S "$tmp/munge.sock"

mkdir -p "$tmp/dev" "$tmp/state" "$tmp/spool"
ln -s /dev/null "$tmp/dev/gpu0"
ln -s /dev/zero "$tmp/dev/gpu1"
cat >"$tmp/gres.conf" <<CONF
AutoDetect=off
NodeName=localhost Name=gpu File=$tmp/dev/gpu[0-1]
CONF
# slurmctld runs only on the host its SlurmctldHost names; the node is called localhost.
cat >"$tmp/slurm.conf" <<CONF
ClusterName=scion-check
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/munge.sock
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
ReturnToService=2
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) Gres=gpu:2 State=UNKNOWN
PartitionName=check Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$tmp/slurm.conf

wport=$(free_port); cport=$(free_port); mport=$(free_port)
"$coordinator" --data-dir "$tmp/coord" --worker-addr "tcp://127.0.0.1:$wport" \
  --client-addr "tcp://127.0.0.1:$cport" --metrics-addr "127.0.0.1:$mport" >"$tmp/coordinator.log" 2>&1 &
pids+=($!)
slurmctld -D -i >"$tmp/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -N localhost >"$tmp/slurmd.out" 2>&1 &
pids+=($!)
node_idle() { [ "$(sinfo -h -n localhost -o %t)" = idle ]; }
wait_for 20 "the SLURM node did not come up idle" node_idle

# The real batch script, submitted for real. The allocation asks for 1 CPU: the check machines
# have fewer than the script's default 16.
addr="tcp://127.0.0.1:$cport"
metrics_base=$(free_port_pair)
[ -n "$metrics_base" ] || fail "no two adjacent free ports for worker metrics"
jobid=$(cd "$tmp" && SCION_WORKER_BIN="$worker" SCION_SCRATCH="$tmp/scratch" SCION_METRICS_PORT_BASE="$metrics_base" \
  SCION_WORKER_ARGS="--fake-gpus 2:16:9.0 --drain-timeout 1 --job-binary $job" \
  sbatch --parsable --gres=gpu:2 --cpus-per-task=1 --output="$tmp/batch-%j.out" \
  "$repo/deploy/slurm/scion-workers.sbatch" "tcp://127.0.0.1:$wport") || fail "sbatch refused the job"
jobid=${jobid%%;*}
job_running() { [ "$(squeue -h -j "$jobid" -o %T)" = RUNNING ]; }
wait_for 20 "job $jobid did not start" job_running

# Both workers registered, each offering the one GPU SLURM gave it (fake GPU i has index i).
host=$(hostname)
registered() {
  "$cli" --addr "$addr" workers -o json >"$tmp/workers.out" 2>/dev/null || return 1
  python3 - "$tmp/workers.out" "slurm-$jobid-$host" <<'PY'
import json, sys
workers = json.load(open(sys.argv[1]))
prefix = sys.argv[2]
mine = {w["id"]: w for w in workers if w.get("id", "").startswith(prefix)}
want = {f"{prefix}-gpu{i}": i for i in range(2)}
for wid, index in want.items():
    w = mine.get(wid)
    if w is None:
        sys.exit(1)
    gpus = [g.get("index") for g in w.get("gpus", [])]
    if gpus != [index]:
        sys.exit(1)
sys.exit(0 if len(mine) == 2 else 1)
PY
}
wait_for 30 "workers did not register, each with its own GPU (last list in workers.out)" registered
echo "ok: job $jobid started two workers under SLURM, registered with GPUs 0 and 1"

# A job placed by Scion on a worker placed by SLURM.
echo '{"kind": "command", "name": "slurm-check", "params": {"argv": ["sh", "-c", "echo slurm-ok"]}}' >"$tmp/job.json"
timeout 30 "$cli" --addr "$addr" submit "$tmp/job.json" --wait >"$tmp/submit.out" 2>&1 \
  || fail "a command job did not succeed on the SLURM workers: $(cat "$tmp/submit.out")"
echo "ok: a command job ran on a SLURM-started worker"

# scancel: SLURM signals the batch script and the step; every worker must exit.
scancel "$jobid"
workers_gone() { ! pgrep -f -- "--data $tmp/scratch/" >/dev/null; }
wait_for 20 "workers of job $jobid still run after scancel" workers_gone
job_gone() { [ -z "$(squeue -h -j "$jobid" -o %T 2>/dev/null)" ]; }
wait_for 20 "job $jobid still listed after scancel" job_gone
# Each worker drained on SLURM's SIGTERM and said goodbye: the coordinator marks a worker "gone"
# only on its DISCONNECT ("lost" would mean it vanished without one).
said_goodbye() {
  "$cli" --addr "$addr" workers -o json >"$tmp/workers.out" 2>/dev/null || return 1
  python3 -c '
import json, sys
states = [w["state"] for w in json.load(open(sys.argv[1])) if w["id"].startswith(sys.argv[2])]
sys.exit(0 if states == ["gone", "gone"] else 1)' "$tmp/workers.out" "slurm-$jobid-"
}
wait_for 10 "the coordinator does not list both workers of job $jobid as gone (last list in workers.out)" said_goodbye
echo "ok: scancel stopped both workers; each drained and disconnected"
