"""Build the wheel, install only the wheel into a throwaway environment, and run what must work from it.

    python scripts/check_wheel.py                  # this checkout (scripts/test.sh runs this)
    python scripts/check_wheel.py --source DIR     # another tree, e.g. an old commit (scripts/architecture_stats.py)
    python scripts/check_wheel.py --full-repro     # repro-paper with the recipes' own step budget (a few minutes)

From an empty folder, with no `PYTHONPATH` and no checkout in sight, the installed wheel must answer
`anchor-hf --help` and `anchor-hf demo --help`, run a one-seed `anchor-hf repro-paper` (cut to `--max-steps`
unless `--full-repro`), and train the recipe it ships as package data (`anchor_hf/recipes/`) through the
launch line `accelerate launch -m anchor_hf.cli train --config FILE`.

Why a path file instead of a fresh `pip install`: the throwaway environment reuses the packages installed
beside the interpreter running this script (torch, transformers, ...), so nothing is downloaded and no CUDA
wheel is pulled. A plain path line does not run the other environment's own path files, so an editable
install of anchor_hf there stays invisible; the script checks that `anchor_hf` imports from the wheel.
Only `setuptools` (the build backend, used without build isolation) must be installed here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

# what a source distribution of the project holds: enough to build the wheel
SOURCE_PARTS = ("pyproject.toml", "README.md", "LICENSE", "anchor_hf", "recipes")
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
# anchor-hf's own requirements (and the experiments extra, which repro-paper needs) must be met in the venv
REQUIREMENTS_SCRIPT = """
import importlib.metadata as md, sys
from packaging.requirements import Requirement
missing = []
for text in md.requires("anchor-hf") or []:
    req = Requirement(text)
    if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in ("", "experiments")):
        continue
    try:
        version = md.version(req.name)
    except md.PackageNotFoundError:
        missing.append(f"{req} (not installed)")
        continue
    if version not in req.specifier:
        missing.append(f"{req} (installed {version})")
print("; ".join(missing) or "all met")
sys.exit(1 if missing else 0)
"""
WHERE_SCRIPT = "import anchor_hf; print(anchor_hf.__file__)"


class CheckFailed(RuntimeError):
    """A step failed; the message names the step and ends with its output."""


def run_step(name: str, cmd: Sequence[str], cwd: Path, env: dict[str, str] | None = None,
             timeout: float = 900) -> str:
    """Run one step; returns its output, raises `CheckFailed` with the output's tail when it fails."""
    start = time.monotonic()
    try:
        done = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise CheckFailed(f"{name}: no answer after {timeout:.0f} s") from err
    output = done.stdout + done.stderr
    if done.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-25:])
        raise CheckFailed(f"{name}: exit {done.returncode}\n  $ {' '.join(cmd)}\n{tail}")
    print(f"ok    {name} ({time.monotonic() - start:.0f} s)", flush=True)
    return output


def copy_source(source: Path, dest: Path) -> Path:
    """Copy the parts of `source` a source distribution holds into `dest` (so the build writes nothing there)."""
    dest.mkdir(parents=True)
    for part in SOURCE_PARTS:
        path = source / part
        if path.is_dir():
            shutil.copytree(path, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif path.is_file():
            shutil.copy2(path, dest / part)
    return dest


def build_wheel(source: Path, work: Path) -> Path:
    """Build the project's wheel offline with the installed setuptools; returns its path."""
    dist = work / "dist"
    run_step("build the wheel", [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                                 "--no-index", "-q", "-w", str(dist), str(copy_source(source, work / "src"))],
             cwd=work)
    wheels = sorted(dist.glob("anchor_hf-*.whl"))
    if len(wheels) != 1:
        raise CheckFailed(f"build the wheel: expected one anchor_hf wheel in {dist}, found {wheels}")
    return wheels[0]


def make_venv(work: Path) -> Path:
    """A new environment that sees this interpreter's packages after its own; returns its python."""
    venv = work / "venv"
    run_step("create a throwaway environment", [sys.executable, "-m", "venv", str(venv)], cwd=work)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.check_output([str(python), "-c", purelib], text=True).strip())
    host = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site / "host_packages.pth").write_text("".join(f"{path}\n" for path in host))
    return python


def check(source: Path, work: Path, max_steps: int | None) -> None:
    """Every step, in order; raises `CheckFailed` at the first that fails."""
    wheel = build_wheel(source, work)
    python = make_venv(work)
    bin_dir = python.parent
    run_step("install only the wheel", [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                                        str(wheel)], cwd=work)
    empty = work / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(OFFLINE, PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}")
    run_step("the wheel's requirements are installed", [str(python), "-c", REQUIREMENTS_SCRIPT], empty, env)
    where = Path(run_step("anchor_hf comes from the wheel", [str(python), "-c", WHERE_SCRIPT],
                          empty, env).splitlines()[-1]).resolve()
    if not where.is_relative_to(python.parent.parent.resolve()):
        raise CheckFailed(f"anchor_hf comes from the wheel: it imports from {where}, outside {python.parent.parent}")
    cli = str(bin_dir / "anchor-hf")
    run_step("anchor-hf --help", [cli, "--help"], empty, env)
    run_step("anchor-hf demo --help", [cli, "demo", "--help"], empty, env)
    cut = [] if max_steps is None else ["--max-steps", str(max_steps)]
    run_step("anchor-hf repro-paper --seeds 1", [cli, "repro-paper", "--seeds", "1", "--out", "repro", *cut],
             empty, env)
    if not (empty / "repro" / "report.md").is_file():
        raise CheckFailed("anchor-hf repro-paper --seeds 1: wrote no repro/report.md")
    recipe = where.parent / "recipes" / "tiny_llama_synthetic.yaml"  # package data
    run_step("accelerate launch -m anchor_hf.cli train", [
        str(python), "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--cpu", "-m", "anchor_hf.cli", "train",
        "--config", str(recipe), "--max_steps", "2", "--output_dir", "trained", "--report_to", "none"], empty, env)
    if not (empty / "trained" / "anchor_config.json").is_file():
        raise CheckFailed("accelerate launch -m anchor_hf.cli train: wrote no trained/anchor_config.json")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the project tree to build (default: this checkout)")
    parser.add_argument("--max-steps", type=int, default=20,
                        help="cut repro-paper's recipes to this many steps (default 20: the check is of the wheel)")
    parser.add_argument("--full-repro", action="store_true", help="run repro-paper with the recipes' own budget")
    parser.add_argument("--keep", type=Path, default=None, help="work in this new folder and keep it (to look inside)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.max_steps < 1:
        raise SystemExit(f"--max-steps must be >= 1, got {args.max_steps}")
    if not (args.source / "pyproject.toml").is_file():
        raise SystemExit(f"--source {args.source} holds no pyproject.toml")
    if args.keep is not None and args.keep.exists():
        raise SystemExit(f"--keep {args.keep} exists; name a new folder")
    work = args.keep or Path(tempfile.mkdtemp(prefix="anchor_hf_wheel_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        check(args.source.resolve(), work.resolve(), None if args.full_repro else args.max_steps)
    except CheckFailed as err:
        print(f"FAILED {err}", file=sys.stderr)
        return 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print("the wheel works")
    return 0


if __name__ == "__main__":
    sys.exit(main())
