"""Build the API reference from the docstrings with pdoc (the `docs` extra); a warning fails the build.

    python scripts/build_docs.py                  # writes docs/api/ (ignored by git); open docs/api/index.html
    python scripts/build_docs.py --out DIR

It documents the core: every module of `anchor_hf` except `anchor_hf.experiments`, which are programs built on
the public API rather than part of it. Docstrings are read as Google style (`Args:`, `Returns:`) with Markdown.
Every warning raised by pdoc or by an anchor_hf module while the pages are built (a module that fails to import,
a spec that matches twice, a docstring pdoc cannot read) fails the build; warnings from other libraries'
imports are printed and left alone.
"""

from __future__ import annotations

import argparse
import pkgutil
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXCLUDED = "anchor_hf.experiments"


def core_modules() -> list[str]:
    """`anchor_hf` and every module below it except the experiments, parents before children."""
    import anchor_hf

    names = [m.name for m in pkgutil.walk_packages(anchor_hf.__path__, "anchor_hf.")]
    return ["anchor_hf", *sorted(n for n in names if n != EXCLUDED and not n.startswith(f"{EXCLUDED}."))]


def module_specs(modules: Sequence[str]) -> list[str]:
    """The fewest pdoc specs that cover `modules` once each: pdoc walks a package's submodules itself unless
    its `__all__` leaves them out, and a module reached twice is a warning."""
    from pdoc.extract import walk_specs

    specs: list[str] = []
    covered: set[str] = set()
    for name in modules:
        if name not in covered:
            specs.append(name)
            covered.update(walk_specs([name, f"!{EXCLUDED}"]) if name == "anchor_hf" else walk_specs([name]))
    return [*specs, f"!{EXCLUDED}"]


def is_ours(warning: warnings.WarningMessage) -> bool:
    """Raised by pdoc, or by one of our modules (while pdoc imports it)."""
    path = Path(warning.filename).resolve()
    import pdoc

    return path.is_relative_to(Path(pdoc.__file__).resolve().parent) or path.is_relative_to(ROOT / "anchor_hf")


def build(out: Path) -> list[str]:
    """Write the reference into `out`; returns our warnings (empty when the build is clean)."""
    import pdoc
    import pdoc.render

    pdoc.render.configure(docformat="google", show_source=True, search=True,
                          footer_text="anchor_hf API reference (python scripts/build_docs.py)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*module_specs(core_modules()), output_directory=out)
    ours = [w for w in caught if is_ours(w)]
    for w in caught:
        if w not in ours:
            print(f"(not ours) {w.category.__name__}: {w.message}", file=sys.stderr)
    return [f"{w.category.__name__} at {w.filename}:{w.lineno}: {w.message}" for w in ours]


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "api", help="output folder (default docs/api)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    problems = build(args.out)
    if problems:
        print("\n".join(["the API reference built with warnings (fix the docstrings or imports):", *problems]),
              file=sys.stderr)
        return 1
    print(f"wrote the API reference to {args.out}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
