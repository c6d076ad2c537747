#!/usr/bin/env bash
# Launch N consecutive 2-process CPU training runs and count those that hang or abort at exit.
#
#   scripts/check_clean_shutdown.sh [N=20] [ENTRY=cli] [FLAGS=cli]
#
# ENTRY `cli`: the tiny synthetic recipe for 4 steps as `-m anchor_hf.cli train`.
# ENTRY `user`: scripts/user_trainer_script.py, a user's own AnchorTrainer script (no
# anchor_hf CLI, no teardown call), 4 steps.
# ENTRY a file: that script (a control), given the flags of FLAGS (`cli` or `user`).
# Each run goes through accelerate and the cpu_2proc config. A run counts as failed if it
# hangs (no exit within 300 s; a clean one takes ~10-45 s), exits non-zero, or its output
# shows an abort ("Aborted", "terminate called", "core dumped", "SIGABRT"). Logs of failed
# runs are kept and their path printed. PYTHON picks the interpreter (default: python).
# Results and commands go to docs/multiprocess.md.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
n="${1:-20}"
entry_name="${2:-cli}"
cli_flags=(--config recipes/tiny_llama_synthetic.yaml --max_steps 4 --save_strategy no --disable_tqdm true)
user_flags=(--max_steps 4)
case "$entry_name" in
    cli) entry=(-m anchor_hf.cli train); flags=("${cli_flags[@]}") ;;
    user) entry=(scripts/user_trainer_script.py); flags=("${user_flags[@]}") ;;
    *) entry=("$entry_name"); [ "${3:-cli}" = user ] && flags=("${user_flags[@]}") || flags=("${cli_flags[@]}") ;;
esac
work="$(mktemp -d)"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
aborts=0
start=$(date +%s)
for i in $(seq 1 "$n"); do
    log="$work/run$i.log"
    timeout -k 10 300 "${PYTHON:-python}" -m accelerate.commands.launch \
        --config_file recipes/accelerate_configs/cpu_2proc.yaml "${entry[@]}" "${flags[@]}" \
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
