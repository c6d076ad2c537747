"""The layout holds: the core never imports an experiment, imports with its required dependencies only, and
those dependencies are exactly what it imports; the wheel's package list is every package folder.

The core is `anchor_hf/` minus `anchor_hf/experiments/` and `anchor_hf/cli.py` (the composition root, the
one core module allowed to register the experiments' commands). Imports are read from the source (AST), so a
lazy import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
# the import scanner lives with the layout numbers (scripts/architecture_stats.py), which also scan old trees
_SPEC = importlib.util.spec_from_file_location("architecture_stats", ROOT / "scripts" / "architecture_stats.py")
_STATS = sys.modules.setdefault("architecture_stats", importlib.util.module_from_spec(_SPEC))
_SPEC.loader.exec_module(_STATS)  # registered first: its dataclasses look their module up
PACKAGE = ROOT / "anchor_hf"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS = PYPROJECT["project"]["optional-dependencies"]

# Needed at run time without being imported by the core (accelerate, which Trainer needs, is imported by cpu_fsdp).
RUNTIME_ONLY: set[str] = set()
# Core modules that are an extra's own code (they may import it at the top): loaded only by that extra's users.
EXTRA_MODULES = {"anchor_hf/metrics/*/*.py": "evaluate"}


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_core(path: Path) -> bool:
    rel = _relative(path)
    return not rel.startswith("anchor_hf/experiments/") and rel != "anchor_hf/cli.py"


CORE = sorted(p for p in PACKAGE.rglob("*.py") if _is_core(p))
EXPERIMENTS = sorted((PACKAGE / "experiments").rglob("*.py"))


def imports(path: Path, module: str | None = None) -> list[tuple[str, bool]]:
    """Absolute names of every module `path` imports, each with whether it sits at the module's top level
    (relative imports resolve against `module`, default the module `path` is in the package)."""
    return _STATS.imports(path, module or _module_name(path))


def third_party(path: Path) -> dict[str, bool]:
    """Top-level third-party module -> imported at the module's top level (else only inside functions)."""
    result: dict[str, bool] = {}
    for name, at_top in imports(path):
        head = name.split(".")[0]
        if head and head != "anchor_hf" and head not in sys.stdlib_module_names and head != "__future__":
            result[head] = result.get(head, False) or at_top
    return result


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distribution(module: str) -> str:
    """The normalised distribution name that provides top-level `module` (yaml -> pyyaml)."""
    names = _distributions().get(module)
    if not names:
        raise AssertionError(f"no installed distribution provides module {module!r}; install the dev extra")
    return _normalise(names[0])


def _normalise(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


REQUIRED = {_normalise(r) for r in PYPROJECT["project"]["dependencies"]}
# optional distribution -> the extras that bring it
OPTIONAL: dict[str, list[str]] = {}
for _extra, _reqs in EXTRAS.items():
    for _req in _reqs:
        if _extra != "dev" and _normalise(_req) not in REQUIRED:
            OPTIONAL.setdefault(_normalise(_req), []).append(_extra)


@pytest.mark.parametrize("path", CORE, ids=_relative)
def test_core_module_never_imports_an_experiment(path):
    wrong = sorted({name for name, _ in imports(path) if name.startswith("anchor_hf.experiments")})
    assert not wrong, f"{_relative(path)} imports {wrong}: only anchor_hf/cli.py may know the experiments"


def test_import_scan_sees_lazy_and_relative_imports(tmp_path):
    """Negative control for the test above: a lazy relative import of an experiment is found."""
    path = tmp_path / "example.py"
    path.write_text("import torch\n\n\ndef f():\n"
                    "    from ..experiments.colour import spec\n    import matplotlib.pyplot\n")
    found = dict(imports(path, "anchor_hf.commands.example"))
    assert found == {"torch": True, "anchor_hf.experiments.colour": False,
                     "anchor_hf.experiments.colour.spec": False, "matplotlib.pyplot": False}


def installed_with_required() -> set[str]:
    """The required distributions and everything they require in turn (installed with the core anyway)."""
    from packaging.requirements import Requirement

    todo, seen = list(REQUIRED), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in importlib.metadata.requires(name) or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_normalise(req.name))
    return seen


def test_core_imports_with_the_required_dependencies_only():
    """Every core module imports with every optional extra blocked (matplotlib, evaluate, concept-erasure, trl,
    gguf, ...); the modules that are an extra's own code (`EXTRA_MODULES`) are left out."""
    optional = set(OPTIONAL) - installed_with_required()
    blocked = sorted({m for m, dists in _distributions().items() if _normalise(dists[0]) in optional})
    assert "matplotlib" in blocked and "evaluate" in blocked
    modules = [_module_name(p) for p in CORE if not any(fnmatch(_relative(p), g) for g in EXTRA_MODULES)]
    script = (f"import sys, importlib, json\nfor m in {blocked!r}:\n    sys.modules[m] = None\n"
              f"failed = {{}}\nfor m in {modules!r}:\n    try:\n        importlib.import_module(m)\n"
              "    except Exception as e:\n        failed[m] = f'{type(e).__name__}: {e}'\nprint(json.dumps(failed))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    failed = json.loads(out.stdout.strip().splitlines()[-1])
    assert not failed, f"core modules that need an optional extra to import: {failed}"


def test_required_dependencies_are_what_the_core_imports():
    imported: dict[str, list[str]] = {}
    for path in CORE:
        extra_module = any(fnmatch(_relative(path), g) for g in EXTRA_MODULES)
        for module, at_top in third_party(path).items():
            dist = distribution(module)
            if dist in OPTIONAL:
                assert extra_module or not at_top, (
                    f"{_relative(path)} imports {module} (extras {OPTIONAL[dist]}) at the top; import it inside "
                    "the function that needs it, so the core imports without the extra")
                continue
            imported.setdefault(dist, []).append(_relative(path))
    assert set(imported) == REQUIRED - RUNTIME_ONLY, (
        f"pyproject dependencies {sorted(REQUIRED)} vs the core's imports {imported} "
        f"(plus {sorted(RUNTIME_ONLY)} needed at run time): add what is imported, drop what is not")


def test_every_experiment_import_is_declared():
    """Experiments need the required dependencies plus the `experiments` extra (`smollm2` for the GGUF model)."""
    allowed = REQUIRED | {_normalise(r) for extra in ("experiments", "smollm2") for r in EXTRAS[extra]}
    missing = {}
    for path in EXPERIMENTS:
        for module in third_party(path):
            if distribution(module) not in allowed:
                missing.setdefault(distribution(module), []).append(_relative(path))
    assert not missing, f"experiments import distributions no extra declares: {missing}"


def test_wheel_packages_are_every_package_folder():
    setuptools = PYPROJECT["tool"]["setuptools"]
    folders = {_module_name(p) for p in PACKAGE.rglob("__init__.py")}
    assert set(setuptools["packages"]) == folders | {"anchor_hf.recipes"}, (
        f"pyproject [tool.setuptools] packages must list every package folder: add "
        f"{sorted(folders - set(setuptools['packages']))}, drop {sorted(set(setuptools['packages']) - folders)}")
    assert setuptools["package-dir"] == {"anchor_hf.recipes": "recipes"}


def test_wheel_ships_every_file_of_recipes():
    globs = PYPROJECT["tool"]["setuptools"]["package-data"]["anchor_hf.recipes"]
    files = [p.relative_to(ROOT / "recipes").as_posix() for p in (ROOT / "recipes").rglob("*") if p.is_file()]
    assert files, "recipes/ is empty"
    unshipped = [f for f in files if not any(fnmatch(f, g) and f.count("/") == g.count("/") for g in globs)]
    assert not unshipped, f"recipes/ files the wheel would leave out (extend package-data): {unshipped}"


# words that point into an issue tracker instead of saying what the thing is; built from parts so this file
# does not match itself
TRACKER_WORDS = re.compile("|".join([r"\bissues?\s*#?\d+", r"\bthe " + r"issue('s)?\b",
                                     r"\b(pull request|PR)\s*#?\d+", r"(?<![\w&#/])#\d{1,4}\b"]), re.IGNORECASE)
TEXT_SUFFIXES = {".py", ".md", ".sh", ".yaml", ".yml", ".toml", ".txt", ".json", ".cfg"}


def test_no_tracker_words_in_code_docs_or_reports():
    """Code, docs and reports say what a thing is, never which tracker entry asked for it."""
    roots = [ROOT / name for name in ("anchor_hf", "tests", "scripts", "recipes", "docs")]
    files = [ROOT / "README.md", ROOT / "pyproject.toml"]
    files += [p for r in roots for p in r.rglob("*") if p.suffix in TEXT_SUFFIXES and p.is_file()
              and "__pycache__" not in p.parts and not p.relative_to(ROOT).as_posix().startswith("docs/api/")]
    hits = [f"{_relative(p)}:{n}: {m.group(0)!r}" for p in files if p != Path(__file__).resolve()
            for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
            for m in [TRACKER_WORDS.search(line)] if m]
    assert not hits, "tracker words (say what the thing is instead):\n" + "\n".join(hits)


def test_tracker_word_pattern_flags_references_and_spares_colours():
    """Negative control: the pattern finds tracker references and leaves hex colours and headings alone."""
    for text in ("see issue 9", "(Issue #12)", "the issue's targets", "fixed in #16", "PR 3"):
        assert TRACKER_WORDS.search(text), text
    for text in ("#808080", "`#ff0000`", "#1f77b4", "## Targets", "an issue of scale", "issues remain"):
        assert not TRACKER_WORDS.search(text), text


def test_cli_help_imports_neither_torch_nor_transformers():
    """`anchor-hf --help` registers every sub-command; heavy imports belong inside each command's `main`."""
    script = ("import sys\nfrom anchor_hf.cli import make_parser\nmake_parser().format_help()\n"
              "print(sorted(m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
