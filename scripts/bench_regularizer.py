"""The anchor term alone, forward + backward: this tree's `AnchorRegularizer` against an earlier commit's.

    python scripts/bench_regularizer.py --before 39083da

Builds the states the tiny Llama's anchored blocks produce (batch 32 × 64 tokens, width
128, random) and the masks `AnchorDataCollator` makes for the benchmark's data, then
times one regularizer call plus its backward for each version, alternating, in process
CPU time on one thread, and prints a Markdown table of medians. The earlier version is
read with `git show COMMIT:anchor_hf/regularizer.py` and imported next to this tree's
`geometry`. Both versions' losses are printed too, to show they compute the same term.
docs/benchmarks.md reports its output.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch


def load_version(commit: str):
    """The `anchor_hf.regularizer` module as of `commit`, imported under another name."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = subprocess.run(["git", "show", f"{commit}:anchor_hf/regularizer.py"], cwd=root, check=True,
                            capture_output=True, text=True).stdout
    source = source.replace("from .config", "from anchor_hf.config").replace("from .geometry",
                                                                              "from anchor_hf.geometry")
    path = os.path.join(tempfile.mkdtemp(), f"regularizer_{commit}.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location(f"regularizer_{commit}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="commit holding the earlier regularizer")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per version and case (default 30)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)

    from anchor_hf import regularizer as current
    from anchor_hf.experiments.bench.setups import anchor_config, build_dataset, build_tokenizer
    from anchor_hf.collator import AnchorDataCollator, masks_from_batch

    before = load_version(args.before)
    width, cases = 128, [(1, 2, False), (4, 2, False), (1, 4, False), (4, 4, False), (1, 2, True), (4, 4, True)]
    print(f"| concepts | layers | separation | {args.before} ms | this tree ms | ratio | same loss |")
    print("|---:|---:|---|---:|---:|---:|---|")
    for concepts, layers, separation in cases:
        cfg = anchor_config(concepts, list(range(layers)), pooled=True, separation=separation)
        data = build_dataset(32, 64, 512, concepts)
        masks = masks_from_batch(AnchorDataCollator(build_tokenizer(512), cfg)([data[i] for i in range(32)]))
        g = torch.Generator().manual_seed(0)
        states = [torch.randn(32, 64, width, generator=g) for _ in range(layers)]
        versions = {}
        for name, module in (("before", before), ("after", current)):
            reg = module.AnchorRegularizer(cfg.concepts, width)
            weights = module.AnchorWeights([0.5] * concepts, [1.0] * concepts, 0.1 if separation else 0.0)
            versions[name] = (reg, weights)
        times: dict[str, list[float]] = {"before": [], "after": []}
        losses = {}
        for r in range(args.repeats + 2):  # the first two calls of each are warm-up
            for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
                reg, weights = versions[name]
                hs = [s.clone().requires_grad_() for s in states]
                start = time.process_time()
                loss, _ = reg(hs, masks, weights, generator=torch.Generator().manual_seed(1))
                loss.backward()
                if r >= 2:
                    times[name].append(time.process_time() - start)
                losses[name] = float(loss.detach())
        b, a = statistics.median(times["before"]) * 1e3, statistics.median(times["after"]) * 1e3
        same = abs(losses["before"] - losses["after"]) <= 1e-5 * max(1.0, abs(losses["before"]))
        print(f"| {concepts} | {layers} | {'on' if separation else 'off'} | {b:.2f} | {a:.2f} | {a / b:.2f} | "
              f"{'yes' if same else 'NO'} ({losses['after']:.6f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
