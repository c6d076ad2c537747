#!/usr/bin/env bash
# The README's second command (and CI's, through .ci/run): install into .venv (CPU torch, nothing from a
# model hub), then check the tree the way a release needs it:
#   1. ruff (pyproject.toml [tool.ruff]) over the whole tree;
#   2. the test suite;
#   3. the API reference builds from the docstrings with warnings as errors (scripts/build_docs.py);
#   4. the wheel alone, installed into a throwaway environment, runs `anchor-hf demo --help`, a one-seed
#      `anchor-hf repro-paper` and an `accelerate launch -m anchor_hf.cli train` from an empty folder
#      (scripts/check_wheel.py).
# Arguments go to pytest and run the suite only, e.g. `scripts/test.sh tests/test_geometry.py -x`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# smollm2: recipe B's model (tests/test_goemotions_smollm2.py); deepspeed: ZeRO-2/3 on two CPU processes
# (tests/test_deepspeed.py), checked like DDP and FSDP2
source "$root/scripts/setup_env.sh" dev,smollm2,deepspeed
cd "$root"
if [ "$#" -gt 0 ]; then
    exec python -m pytest -q -p no:cacheprovider "$@"
fi
echo "== ruff check" >&2
ruff check .
echo "== tests" >&2
python -m pytest -q -p no:cacheprovider
echo "== API reference" >&2
python scripts/build_docs.py --out "$(mktemp -d)"
echo "== wheel" >&2
python scripts/check_wheel.py
