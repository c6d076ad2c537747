#!/usr/bin/env bash
# Launch N consecutive 2-process CPU training runs and count those that abort at exit.
#
#   scripts/check_clean_shutdown.sh [N=20] [TRAIN_SCRIPT]
#
# Each run is the tiny synthetic recipe for 4 steps through accelerate and the cpu_2proc
# config, launched as `-m anchor_hf.cli train` (or as TRAIN_SCRIPT, a file, for a control). A run counts as failed if it hangs (no exit within 300 s; a clean one takes
# ~10-30 s), exits non-zero, or its output shows an abort ("Aborted", "terminate called",
# "core dumped", "SIGABRT"). Logs of failed runs are kept and their path printed.
# Result and command go to docs/multiprocess.md.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
n="${1:-20}"
if [ -n "${2:-}" ]; then entry=("$2"); else entry=(-m anchor_hf.cli train); fi
work="$(mktemp -d)"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
aborts=0
start=$(date +%s)
for i in $(seq 1 "$n"); do
    log="$work/run$i.log"
    timeout -k 10 300 accelerate launch --config_file recipes/accelerate_configs/cpu_2proc.yaml "${entry[@]}" \
        --config recipes/tiny_llama_synthetic.yaml --max_steps 4 --save_strategy no --disable_tqdm true \
        --output_dir "$work/out$i" >"$log" 2>&1
    rc=$?
    rm -rf "$work/out$i"
    if [ "$rc" -ne 0 ] || grep -qE "Aborted|terminate called|core dumped|SIGABRT" "$log"; then
        aborts=$((aborts + 1))
        [ "$rc" -eq 124 ] && what="HUNG" || what="ABORTED"
        echo "run $i: $what (exit $rc), log kept: $log"
    else
        echo "run $i: clean"
        rm -f "$log"
    fi
done
echo "failed (aborted or hung): $aborts of $n runs ($(( $(date +%s) - start )) s; ${entry[*]})"
[ "$aborts" -eq 0 ]
