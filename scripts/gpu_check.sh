#!/usr/bin/env bash
# GPU check, ready to run on a bare GPU machine (torch, transformers, accelerate, safetensors,
# numpy; no network): bf16 training with anchoring, FSDP2 on one process, and the overhead
# benchmark on a randomly initialised SmolLM2-135M-shaped model at sequence 1024, batch 8,
# 4 concepts on every block. About 5 minutes on one H200; prints one JSON summary.
#
#   scripts/gpu_check.sh [--out DIR]     # on the GPU machine, from the carried checkout
#   scripts/gpu_check.sh --dry-run       # here, on CPU: tiny sizes, a few steps, checks the script
#
# anchor_hf runs from this checkout through PYTHONPATH (nothing is installed); PYTHON picks
# the interpreter (default: python). Details and results: docs/benchmarks.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python="${PYTHON:-python}"
"$python" -c "
import importlib.util, sys
missing = [m for m in ('torch', 'transformers', 'accelerate', 'safetensors', 'numpy') if importlib.util.find_spec(m) is None]
sys.exit('gpu_check needs ' + ', '.join(missing) + ' in this interpreter' if missing else 0)"
exec "$python" scripts/gpu_check.py "$@"
