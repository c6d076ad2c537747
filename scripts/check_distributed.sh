#!/usr/bin/env bash
# The tiny recipe on 1 process and on 2 CPU processes under DDP, FSDP2 and (with deepspeed)
# ZeRO-2/3, from the same saved weights; prints one JSON line with each backend's largest
# absolute weight difference to the 1-process run and whether it exited cleanly. A few
# minutes on 2 cores; exits non-zero unless every difference is <= 1e-5 and every run clean.
#
#   scripts/check_distributed.sh [--out DIR] [--steps 4]
#
# PYTHON picks the interpreter (default: python); anchor_hf comes from this checkout.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "${PYTHON:-python}" scripts/check_distributed.py "$@"
