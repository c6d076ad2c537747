"""Files that ship with anchor_hf: the recipes.

In a checkout the recipes are the repository's `recipes/` folder; in an installed wheel
they are package data under `anchor_hf/recipes/` (pyproject maps the one onto the other),
so `anchor-hf demo` and `anchor-hf repro-paper` find them from any working directory.
"""

from __future__ import annotations

from pathlib import Path

from .errors import AnchorConfigError

_PACKAGE = Path(__file__).resolve().parent


def recipes_dir() -> Path:
    """The folder holding the shipped YAML recipes (wheel: package data; checkout: `recipes/`)."""
    for folder in (_PACKAGE / "recipes", _PACKAGE.parent / "recipes"):
        if (folder / "README.md").is_file() or any(folder.glob("*.yaml")):
            return folder
    raise AnchorConfigError(f"found no recipes beside {_PACKAGE}: expected package data {_PACKAGE / 'recipes'} "
                            "(an installed wheel) or a checkout's recipes/ folder; reinstall anchor-hf")


def recipe_path(name: str) -> Path:
    """The shipped recipe `name` (with or without `.yaml`); raises listing the shipped ones."""
    folder = recipes_dir()
    path = folder / (name if name.endswith(".yaml") else f"{name}.yaml")
    if not path.is_file():
        shipped = sorted(p.stem for p in folder.glob("*.yaml"))
        raise AnchorConfigError(f"no shipped recipe {name!r}; shipped recipes: {shipped}")
    return path
