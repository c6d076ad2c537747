"""Numbers on the layout of two revisions, side by side, for docs/architecture.md.

    python scripts/architecture_stats.py                          # dc70b9e (before the split) vs HEAD
    python scripts/architecture_stats.py --after WORKTREE --wheel # the working tree, and build/run both wheels

Each revision is exported with `git archive` into a temporary folder (tracked files only, so a built
`docs/api/` or a `.venv` never counts) and measured there:

- Python lines in the core and in the experiments. The experiments are `anchor_hf/experiments/`; in a tree
  from before that folder existed they are the files the move took there (`OLD_EXPERIMENTS`). The core is
  the rest of `anchor_hf/`.
- core modules that import an experiment (AST, lazy imports count; `anchor_hf/cli.py`, the composition
  root, is allowed to), and core modules that fail to import with matplotlib blocked.
- files over 350 lines and functions over 60 lines (`def` to its last line), in `anchor_hf/` and in
  `tests/` + `scripts/`.
- pairs of places sharing a block of six or more lines (the same lines, or the same shape with other names),
  over the whole tree, as the `duplicates` command counts them (not measured where it is not on PATH).
- recipes the one driver accepts: each top-level `recipes/*.yaml` put through what `anchor-hf train` checks
  before it builds anything (its parser, `anchor_hf.train_args.parse_train_args`: every key known; the dataset
  builder's section; the anchor config, at the model's width where a direction is drawn at it), in a fresh
  process on that revision's code. Accelerate configs are not recipes. (tests/test_recipes.py trains each for
  2 steps.)
- with `--wheel`: whether the revision's wheel, installed alone, passes `scripts/check_wheel.py` (of the
  checkout running this script) — and if not, the step where it stops.

Prints a Markdown table (and `--json FILE` writes the numbers).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "dc70b9e"  # the last commit before the core and the experiments were split
LONG_FILE, LONG_FUNCTION = 350, 60
OLD_EXPERIMENTS = ("anchor_hf/bench/", "anchor_hf/colour_lm/", "anchor_hf/colour_repro/", "anchor_hf/goemotions/",
                   "anchor_hf/robustness/", "anchor_hf/data/", "anchor_hf/models/", "anchor_hf/commands/bench.py",
                   "anchor_hf/commands/colour.py", "anchor_hf/commands/demo.py", "anchor_hf/commands/goemotions.py",
                   "anchor_hf/commands/options.py", "anchor_hf/commands/repro_paper.py",
                   "anchor_hf/commands/robustness.py")
PARSE_RECIPES = """
import json, sys, tempfile
try:
    import anchor_hf.experiments  # registers the experiments' dataset builders, as the anchor-hf command does
except ImportError:  # a tree from before the experiments had their own package
    pass
from anchor_hf.commands import train as driver
from anchor_hf.train_args import parse_train_args
refused = {}
for path in sys.argv[1:]:
    try:  # what the driver checks before it builds anything (as far as this tree's driver has those steps)
        model_args, data_args, anchor_args, _ = parse_train_args(["--config", path, "--output_dir", tempfile.mkdtemp()])
        if hasattr(driver, "resolve_dataset"):
            driver.resolve_dataset(data_args)
        if hasattr(anchor_args, "needs_hidden_size") and anchor_args.needs_hidden_size():
            if model_args.model_name_or_path is not None:
                model_args.model_name_or_path = driver.resolve_model(model_args.model_name_or_path)
            anchor_args.to_anchor_config(hidden_size=driver.model_width(model_args))
        else:
            anchor_args.to_anchor_config()
    except Exception as err:
        refused[path] = f"{type(err).__name__}: {err}"
print(json.dumps(refused))
"""
IMPORT_CORE = """
import importlib, json, sys
sys.modules["matplotlib"] = None
failed = []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name)
print(json.dumps(failed))
"""


@dataclass
class Stats:
    """The numbers of one revision."""

    revision: str
    core_lines: int = 0
    experiment_lines: int = 0
    core_importing_experiments: list[str] = field(default_factory=list)
    core_needing_matplotlib: list[str] = field(default_factory=list)
    long_files: list[str] = field(default_factory=list)
    long_functions: list[str] = field(default_factory=list)
    long_files_tests_scripts: list[str] = field(default_factory=list)
    long_functions_tests_scripts: list[str] = field(default_factory=list)
    duplicates: str = "not measured"
    recipes_accepted: list[str] = field(default_factory=list)
    recipes_refused: dict[str, str] = field(default_factory=dict)
    wheel: str = "not checked"


def export(revision: str, dest: Path) -> Path:
    """The tracked files of `revision` (a commit, or WORKTREE for the checkout as it is) in `dest`."""
    dest.mkdir(parents=True)
    if revision == "WORKTREE":
        files = subprocess.check_output(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, text=True)
        for name in filter(None, files.split("\0")):
            if (ROOT / name).is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, dest / name)
        return dest
    archive = dest.with_suffix(".tar")
    subprocess.run(["git", "archive", "-o", str(archive), revision], cwd=ROOT, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data") if sys.version_info >= (3, 12) else tar.extractall(dest)
    archive.unlink()
    return dest


def is_experiment(rel: str, tree: Path) -> bool:
    if (tree / "anchor_hf" / "experiments").is_dir():
        return rel.startswith("anchor_hf/experiments/")
    return rel.startswith(OLD_EXPERIMENTS)


def module_name(rel: str) -> str:
    parts = rel[:-3].split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, module: str) -> list[tuple[str, bool]]:
    """Absolute names of every module the file imports, each with whether it sits at the module's top level.

    Relative imports resolve against `module`, the file's dotted name; imports inside functions count too.
    `from . import x` yields both the package and `package.x` (x may be a submodule). tests/test_layout.py
    uses this too.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, node.module] if node.module else base)
            found += [(name, id(node) in top)] + [(f"{name}.{a.name}", id(node) in top) for a in node.names]
    return found


def long_parts(path: Path, rel: str) -> tuple[bool, list[str]]:
    """Whether the file is over `LONG_FILE` lines, and its functions over `LONG_FUNCTION` lines."""
    text = path.read_text(encoding="utf-8")
    functions = [f"{rel}:{node.name} ({node.end_lineno - node.lineno + 1})" for node in ast.walk(ast.parse(text))
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and node.end_lineno - node.lineno + 1 > LONG_FUNCTION]
    return len(text.splitlines()) > LONG_FILE, functions


def measure_code(tree: Path, stats: Stats) -> None:
    experiment_names = set()
    core: list[tuple[str, Path]] = []
    for path in sorted(tree.rglob("*.py")):
        rel = path.relative_to(tree).as_posix()
        if not rel.startswith(("anchor_hf/", "tests/", "scripts/")):
            continue
        long_file, functions = long_parts(path, rel)
        in_package = rel.startswith("anchor_hf/")
        (stats.long_files if in_package else stats.long_files_tests_scripts).extend([rel] if long_file else [])
        (stats.long_functions if in_package else stats.long_functions_tests_scripts).extend(functions)
        if not in_package:
            continue
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if is_experiment(rel, tree):
            stats.experiment_lines += lines
            experiment_names.add(module_name(rel))
        else:
            stats.core_lines += lines
            core.append((rel, path))
    for rel, path in core:
        if rel != "anchor_hf/cli.py" and {n for n, _ in imports(path, module_name(rel))} & experiment_names:
            stats.core_importing_experiments.append(rel)
    names = [module_name(rel) for rel, _ in core if "/metrics/anchor_" not in rel]  # those are the evaluate extra
    out = subprocess.run([sys.executable, "-c", IMPORT_CORE, *names], cwd=tree, env=_env(tree),
                         capture_output=True, text=True, timeout=600)
    stats.core_needing_matplotlib = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else \
        [f"(the import check failed: {out.stderr.strip().splitlines()[-1:]})"]


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def measure_duplicates(tree: Path, stats: Stats) -> None:
    if shutil.which("duplicates") is None:
        stats.duplicates = "not measured (no `duplicates` on PATH)"
        return
    out = subprocess.run(["duplicates", "--repo", str(tree), "--most", "200", "--seconds", "300"],
                         capture_output=True, text=True, timeout=900).stdout
    first = out.strip().splitlines()[0] if out.strip() else ""
    match = re.match(r"(\d+) pairs? of places", first)
    if first.startswith("no duplicates"):
        stats.duplicates = "0"
    elif match:
        boiler = re.search(r"(\d+) of those marked boilerplate", first)
        stats.duplicates = f"{match.group(1)} ({boiler.group(1) if boiler else 0} boilerplate)"
    else:
        stats.duplicates = f"not measured ({first or 'no output'})"
    if "incomplete:" in out:
        stats.duplicates += " — incomplete"


def measure_recipes(tree: Path, stats: Stats) -> None:
    recipes = sorted((tree / "recipes").glob("*.yaml"))
    out = subprocess.run([sys.executable, "-c", PARSE_RECIPES, *map(str, recipes)], cwd=tree, env=_env(tree),
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"the recipe check failed on {stats.revision}: {out.stderr.strip()[-2000:]}")
    refused = json.loads(out.stdout.strip().splitlines()[-1])
    for recipe in recipes:
        if str(recipe) in refused:
            stats.recipes_refused[recipe.name] = refused[str(recipe)].replace(str(tree) + "/", "")[:160]
        else:
            stats.recipes_accepted.append(recipe.name)


def measure_wheel(tree: Path, stats: Stats) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_wheel.py"), "--source", str(tree)],
                         capture_output=True, text=True, timeout=1800)
    if out.returncode == 0:
        stats.wheel = "works"
        return
    failed = [line for line in out.stderr.splitlines() if line.startswith("FAILED ")]
    stats.wheel = f"fails at: {failed[0][7:].split(':')[0]}" if failed else "fails"


def measure(revision: str, work: Path, wheel: bool) -> Stats:
    tree = export(revision, work / revision.replace("/", "_"))
    stats = Stats(revision=revision)
    measure_code(tree, stats)
    measure_duplicates(tree, stats)
    measure_recipes(tree, stats)
    if wheel:
        measure_wheel(tree, stats)
    return stats


def table(before: Stats, after: Stats) -> str:
    """The before/after table in Markdown."""
    def share(s: Stats) -> str:
        total = s.core_lines + s.experiment_lines
        return f"{s.core_lines} / {s.experiment_lines} ({100 * s.experiment_lines / max(total, 1):.0f} % experiments)"

    def recipes(s: Stats) -> str:
        return f"{len(s.recipes_accepted)} of {len(s.recipes_accepted) + len(s.recipes_refused)}"

    rows = [("Python lines in `anchor_hf/`: core / experiments", share),
            ("core modules that import an experiment", lambda s: str(len(s.core_importing_experiments))),
            ("core modules that need matplotlib to import", lambda s: str(len(s.core_needing_matplotlib))),
            (f"files over {LONG_FILE} lines: `anchor_hf/` (`tests/`, `scripts/`)",
             lambda s: f"{len(s.long_files)} ({len(s.long_files_tests_scripts)})"),
            (f"functions over {LONG_FUNCTION} lines: `anchor_hf/` (`tests/`, `scripts/`)",
             lambda s: f"{len(s.long_functions)} ({len(s.long_functions_tests_scripts)})"),
            ("pairs of places sharing 6+ lines, whole tree (`duplicates`)", lambda s: s.duplicates),
            ("recipes the one driver (`anchor-hf train`) accepts", recipes),
            ("wheel alone: `demo --help`, 1-seed `repro-paper`, `accelerate launch -m` (scripts/check_wheel.py)",
             lambda s: s.wheel)]
    lines = [f"| | before (`{before.revision}`) | after (`{after.revision}`) |", "|---|---|---|"]
    lines += [f"| {label} | {get(before)} | {get(after)} |" for label, get in rows]
    return "\n".join(lines)


def details(stats: Stats) -> str:
    """What the counts are made of, for one revision."""
    return "\n".join([
        f"{stats.revision}:",
        f"  core modules importing an experiment: {stats.core_importing_experiments}",
        f"  core modules needing matplotlib: {stats.core_needing_matplotlib}",
        f"  files over {LONG_FILE} lines: {stats.long_files} (tests/scripts: {stats.long_files_tests_scripts})",
        f"  functions over {LONG_FUNCTION} lines: {stats.long_functions}",
        f"  recipes refused: {json.dumps(stats.recipes_refused, indent=4)}"])


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=BEFORE, help=f"the revision before (default {BEFORE})")
    parser.add_argument("--after", default="HEAD", help="the revision after (default HEAD; WORKTREE = as checked out)")
    parser.add_argument("--wheel", action="store_true", help="also build and check each revision's wheel (minutes)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="anchor_hf_stats_"))
    try:
        before, after = (measure(revision, work, args.wheel) for revision in (args.before, args.after))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = "python scripts/architecture_stats.py" + (f" --before {args.before}" if args.before != BEFORE else "") \
        + (f" --after {args.after}" if args.after != "HEAD" else "") + (" --wheel" if args.wheel else "")
    print(f"{table(before, after)}\n\n(`{command}`)\n\n{details(before)}\n{details(after)}")
    if args.json is not None:
        args.json.write_text(json.dumps({"before": asdict(before), "after": asdict(after)}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
