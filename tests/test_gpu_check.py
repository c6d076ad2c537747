"""scripts/gpu_check.sh --dry-run works with only the packages a bare GPU machine has.

The GPU check must run where only torch, transformers, accelerate, safetensors and numpy
(and what they depend on) are installed. The test builds such an interpreter: Python
without its site-packages (`-S`), given a folder that links exactly those distributions
and their requirements, and runs the dry run (tiny sizes, CPU, a few steps; ~1-2 min on
2 shared cores). Negative control: the packages of anchor_hf's extras (datasets, peft, trl, deepspeed)
are really absent from that interpreter.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BARE = ("torch", "transformers", "accelerate", "safetensors", "numpy")


def closure(names: tuple[str, ...]) -> set[str]:
    """The distributions `names` need, recursively (requirements without extras, markers evaluated)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = md.distribution(todo.pop()).metadata["Name"]
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        seen.add(key)
        for text in md.requires(name) or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                try:
                    md.distribution(req.name)
                except md.PackageNotFoundError:  # optional on this platform (e.g. CUDA wheels)
                    continue
                todo.append(req.name)
    return seen


def bare_site(folder) -> str:
    """A folder of links to the files of the bare distributions (code and metadata)."""
    os.makedirs(folder, exist_ok=True)
    for name in closure(BARE):
        dist = md.distribution(name)
        for top in {f.parts[0] for f in dist.files or [] if f.parts[0] != ".."}:
            source = os.path.join(str(dist.locate_file("")), top)
            target = os.path.join(folder, top)
            if os.path.exists(source) and not os.path.exists(target):
                os.symlink(source, target)
    return str(folder)


def test_gpu_check_dry_run_needs_only_torch_transformers_accelerate_safetensors_numpy(tmp_path):
    site = bare_site(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{site}", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    probe = subprocess.run([sys.executable, "-S", "-c", "import importlib.util as u; print([m for m in "
                            "('datasets', 'peft', 'trl', 'deepspeed', 'torch', 'transformers') if u.find_spec(m)])"],
                           env=env, capture_output=True, text=True)
    assert probe.stdout.strip() == "['torch', 'transformers']", probe.stderr  # control: the extras are gone
    done = subprocess.run([sys.executable, "-S", os.path.join(ROOT, "scripts", "gpu_check.py"), "--dry-run",
                           "--out", str(tmp_path / "out")], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0 and summary["ok"], json.dumps(summary)[-3000:]
    assert summary["fsdp2"]["sharded"] and summary["fsdp2"]["saved_full_weights"]
    assert summary["train"]["steps"] > 0 and summary["bench"]["repeats"] == 2
    assert json.loads((tmp_path / "out" / "gpu_check.json").read_text()) == summary
