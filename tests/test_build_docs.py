"""scripts/build_docs.py documents every core module exactly once and no experiment."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import pytest

pytest.importorskip("pdoc", reason="the API reference is the `docs` extra (in dev)")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "build_docs.py"
spec = importlib.util.spec_from_file_location("build_docs", SCRIPT)
build_docs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_docs)


def test_module_specs_cover_every_core_module_once_and_no_experiment():
    from pdoc.extract import walk_specs

    modules = build_docs.core_modules()
    assert "anchor_hf.config" in modules and "anchor_hf.interventions.hooks" in modules
    assert not [m for m in modules if m.startswith("anchor_hf.experiments")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pdoc warns when a spec reaches a module twice
        documented = walk_specs(build_docs.module_specs(modules))
    assert sorted(documented) == sorted(modules)


def test_naive_specs_reach_a_module_twice():
    """Negative control: naming a package and its submodules both is what module_specs avoids."""
    from pdoc.extract import walk_specs

    with pytest.warns(UserWarning, match="already been added"):
        walk_specs(["anchor_hf.commands", "anchor_hf.commands.train"])
