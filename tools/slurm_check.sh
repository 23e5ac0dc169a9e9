#!/usr/bin/env bash
# tools/slurm_train.sh and tools/slurm_test.sh on a real single-node Slurm
# started on this machine (as root: Debian's slurm-wlm and munge, installed
# if missing): two CPU tasks train the quickstart's toy Semantic FPN for a
# few iterations over gloo, then test the checkpoint. `make slurm-check`.
# The daemons' configuration, state and logs live in a temporary folder;
# they are stopped at the end, whatever happened.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
DIR=$(mktemp -d /tmp/litv2-slurm.XXXXXX)

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    echo "[slurm-check] installing slurm-wlm and munge (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge
fi

stop() {
    scontrol shutdown >/dev/null 2>&1 || true
    sleep 1
    [ -f "$DIR/slurmd.pid" ] && kill "$(cat "$DIR/slurmd.pid")" 2>/dev/null
    [ -f "$DIR/munged.pid" ] && kill "$(cat "$DIR/munged.pid")" 2>/dev/null
    true
}
trap stop EXIT

HOST=$(hostname)
mkdir -p "$DIR/state" "$DIR/spool" "$DIR/munge"
cat > "$DIR/slurm.conf" <<CONF
ClusterName=litv2check
SlurmctldHost=$HOST
SlurmctldPort=${SLURMCTLD_PORT:-16817}
SlurmdPort=${SLURMD_PORT:-16818}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
NodeName=$HOST CPUs=$(nproc) State=UNKNOWN
PartitionName=litv2 Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$DIR/slurm.conf
# munge's key: the package's, or a fresh one
KEY=/etc/munge/munge.key
[ -f "$KEY" ] || { mkdir -p /etc/munge; dd if=/dev/urandom of="$KEY" bs=1 count=1024 2>/dev/null; }
chown munge:munge "$KEY" 2>/dev/null || true
chmod 400 "$KEY"
munged --force --socket="$DIR/munge/munge.socket" \
    --pid-file="$DIR/munged.pid" --log-file="$DIR/munged.log" \
    --seed-file="$DIR/munge/seed"
echo "AuthInfo=socket=$DIR/munge/munge.socket" >> "$DIR/slurm.conf"
slurmctld
slurmd
for _ in $(seq 30); do
    sinfo -h -o %T 2>/dev/null | grep -q idle && break
    sleep 1
done
sinfo

cd "$ROOT"
"$PY" tools/make_toy_dataset.py --if-missing
CFG=configs/quickstart/semantic_fpn_litv2_toy.py
OPTS=(--cfg-options train_cfg.max_iters=4 train_cfg.val_interval=4
      default_hooks.checkpoint.interval=4 train_dataloader.batch_size=2)
export PATH="$(dirname "$PY"):$PATH" MASTER_PORT=${MASTER_PORT:-29533}
GPUS=2 GPUS_PER_NODE=0 CPUS_PER_TASK=1 \
    bash tools/slurm_train.sh litv2 litv2-train "$CFG" "$DIR/work" "${OPTS[@]}"
GPUS=2 GPUS_PER_NODE=0 CPUS_PER_TASK=1 \
    bash tools/slurm_test.sh litv2 litv2-test "$CFG" "$DIR/work/iter_4.pth" \
    --work-dir "$DIR/test"
grep -h "Distributed training\|GPU number" "$DIR"/work/*/*.log | head -2
grep -h "mIoU" "$DIR"/test/*/*.log | tail -1
echo "[slurm-check] ok: trained and tested through srun on a real Slurm" \
    "(logs in $DIR)"
