#!/usr/bin/env bash
# Starts the same training command once per host (or per local GPU) with the
# multi-process flags of launch/common.py; fails if any process fails.
#
#   launch/pod.sh tpu NAME ZONE -- python -m launch.train --workdir=/mnt/nfs/run ...
#   launch/pod.sh hosts "gpu-a gpu-b" -- python -m launch.train --workdir=/mnt/nfs/run ...
#   launch/pod.sh local 4 -- python -m launch.train --workdir=/tmp/run ...
#
# tpu    every worker of a Cloud TPU VM pod slice, through `gcloud compute tpus
#        tpu-vm ssh --worker=all`; --distributed lets JAX read the slice layout.
# hosts  one process per host over ssh; the first host serves the coordinator
#        on $PORT (default 12355) and host i gets --process_id=i.
# local  N processes on this machine, process i sees only GPU i
#        (CUDA_VISIBLE_DEVICES); on a machine without GPUs, N CPU processes.
#
# Every host needs this repository (and its .venv, if any) at $REMOTE_DIR
# (default: this checkout's path), and --workdir must be a directory all hosts
# mount (NFS, Filestore, gcsfuse; not a gs:// URL): all processes write each
# checkpoint together.
set -euo pipefail

usage() {
  sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[[ $# -ge 3 ]] || usage
mode=$1
shift
case $mode in
  tpu) [[ $# -ge 4 && $3 == -- ]] || usage; name=$1; zone=$2; shift 3 ;;
  hosts | local) [[ $# -ge 3 && $2 == -- ]] || usage; target=$1; shift 2 ;;
  *) usage ;;
esac

repo=$(cd "$(dirname "$0")/.." && pwd)
remote_dir=${REMOTE_DIR:-$repo}
port=${PORT:-12355}
command=$(printf '%q ' "$@")
# POSIX sh: the remote login shell need not be bash.
prelude="cd $(printf '%q' "$remote_dir") &&"
prelude+=" { [ ! -f .venv/bin/activate ] || . .venv/bin/activate; } &&"

pids=()
stop_all() {
  # Ends this script's own children only, so one failure stops the run. KILL,
  # because JAX's preemption service takes SIGTERM as a notice and carries on.
  # Over ssh this closes the connection; JAX stops the remote processes once
  # their peers miss heartbeats.
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap 'stop_all; exit 130' INT TERM

case $mode in
  tpu)
    exec gcloud compute tpus tpu-vm ssh "$name" --zone="$zone" --worker=all \
      --command="$prelude $command --distributed"
    ;;
  hosts)
    read -r -a hosts <<<"$target"
    for i in "${!hosts[@]}"; do
      ssh -n "${hosts[$i]}" "$prelude $command --coordinator_address=${hosts[0]}:$port \
--num_processes=${#hosts[@]} --process_id=$i" &
      pids+=($!)
    done
    ;;
  local)
    for ((i = 0; i < target; i++)); do
      (cd "$repo" && CUDA_VISIBLE_DEVICES=$i exec "$@" --coordinator_address=127.0.0.1:"$port" \
        --num_processes="$target" --process_id="$i") &
      pids+=($!)
    done
    ;;
esac

status=0
for _ in "${pids[@]}"; do
  if ! wait -n; then  # the first failure stops the rest instead of leaving them waiting
    status=1
    stop_all
  fi
done
exit $status
