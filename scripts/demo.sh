#!/usr/bin/env bash
# The README's first command: install into .venv, then train an anchored and a control tiny GPT-2 on
# the 949 XKCD colour names, probe and intervene, write results/demo/report.md + figures + summary.json,
# and print a short table. Options go to `anchor-hf demo`: --concept, --seeds, --corpus, --out, ...
#   scripts/demo.sh                          # red, 1 seed, results/demo
#   scripts/demo.sh --concept blue --seeds 3 --out results/demo_blue
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup_env.sh" experiments  # what the demo imports beyond the core
cd "$root"
anchor-hf demo "$@"
