"""The colour corpora as datasets a recipe names: `dataset: colour_names` and `dataset: colour_mixing`.

Each reads its `dataset_args` into a `ColourSpec` (`spec.py`): the corpus, the target
colour and how labels follow from it. The builder brings the corpus's own tokenizer
(unless the recipe names one) and writes `colour_spec.json` beside the trained model, so
evaluation rebuilds exactly the training split and the held-out names.

    dataset: colour_names
    dataset_args: {source: xkcd, concept: red, label_power: 4.0, answer_only: true}

One key is overridden from the command line with `--dataset_args.concept blue`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from anchor_hf.registry import BuildContext, BuiltData, DatasetBuilder, register_dataset

@dataclass
class ColourMixingArgs:
    """`dataset: colour_mixing` settings: the 216-colour mixing language (`f06 + 30c = 909`).

    Args:
        concept: target colour (a hue such as `red`, an XKCD name, or `#rrggbb`).
        heldout_fraction: share of the closed pairs held out of training (both orders).
        label_peak, label_power: label probability `peak · similarity^power` of the answer colour.
        seed: seed of the held-out split.
        exclude_target: drop the target colour's training items (the never-saw-it model).
        destination: a redirect destination colour (`#808080`, a hue or an XKCD name), or None:
            adds a `destination` label column (achromatic labels for a grey) for a destination
            concept to be pulled by (docs/method.md §10).
        destination_peak, destination_power: the destination labels' peak and power.
    """

    concept: str = "red"
    heldout_fraction: float = 0.1
    label_peak: float = 1.0
    label_power: float = 8.0
    seed: int = 0
    exclude_target: bool = False
    destination: str | None = None
    destination_peak: float = 1.0
    destination_power: float = 3.0

    def __post_init__(self) -> None:
        self.spec()  # raises naming the bad value

    def spec(self) -> Any:
        """The `ColourSpec` these settings describe."""
        from .spec import ColourSpec

        return ColourSpec(corpus="mixing", **asdict(self))


@dataclass
class ColourNamesArgs:
    """`dataset: colour_names` settings: colour-name lines (`dark pastel green: #56ae57`).

    Args:
        source: `xkcd` (the 949 survey names inside matplotlib) or `colornames` (the 31,914-name
            list in `data_dir`).
        concept, heldout_fraction, label_peak, label_power, seed, exclude_target, destination,
            destination_peak, destination_power: as for `colour_mixing` (held out: a share of the names).
        data_dir: folder holding `colornames.csv` (source `colornames` only).
        max_names: keep a random subset of this many names (None: all).
        reverse: also train `#rrggbb: name` lines.
        answer_only: language-model loss on the six hex digits only.
        tokenizer: `word` (name words, `:`, `#`, hex digits) or `char` (one token per character).
    """

    source: Literal["xkcd", "colornames"] = "xkcd"
    concept: str = "red"
    data_dir: str | None = None
    heldout_fraction: float = 0.1
    label_peak: float = 1.0
    label_power: float = 8.0
    seed: int = 0
    max_names: int | None = None
    reverse: bool = False
    answer_only: bool = False
    tokenizer: Literal["word", "char"] = "word"
    exclude_target: bool = False
    destination: str | None = None
    destination_peak: float = 1.0
    destination_power: float = 3.0

    def __post_init__(self) -> None:
        from anchor_hf.errors import AnchorDataError

        if self.source not in ("xkcd", "colornames"):
            raise AnchorDataError(f"`source` must be 'xkcd' or 'colornames', got {self.source!r}")
        if self.source == "colornames" and self.data_dir is None:
            raise AnchorDataError("`source` = 'colornames' needs `data_dir`, the folder of colornames.csv "
                                  "(e.g. ../shared/datasets/colornames)")
        self.spec()

    def spec(self) -> Any:
        from .spec import ColourSpec

        fields = asdict(self)
        corpus, kind = fields.pop("source"), fields.pop("tokenizer")
        return ColourSpec(corpus=corpus, tokenizer_kind=kind, **fields)


def build(args: ColourNamesArgs | ColourMixingArgs, context: BuildContext) -> BuiltData:
    """The training split of the corpus, its tokenizer (unless the recipe names one) and `colour_spec.json`."""
    from .spec import SPEC_FILE

    spec = args.spec()
    tokenizer = context.tokenizer if context.tokenizer is not None else spec.tokenizer()
    return BuiltData(spec.train_dataset(tokenizer), tokenizer=tokenizer, files={SPEC_FILE: spec.to_json()})


def spec_of(dataset: str, dataset_args: dict[str, Any] | None) -> Any:
    """The `ColourSpec` a recipe's `dataset` and `dataset_args` describe (raises on bad settings)."""
    from anchor_hf.errors import AnchorDataError
    from anchor_hf.registry import read_section

    classes = {"colour_names": ColourNamesArgs, "colour_mixing": ColourMixingArgs}
    if dataset not in classes:
        raise AnchorDataError(f"`dataset` = {dataset!r} is not a colour corpus ({sorted(classes)})")
    return read_section(classes[dataset], dataset_args, "dataset_args", f"dataset {dataset!r}").spec()


register_dataset(DatasetBuilder("colour_names", ColourNamesArgs, build,
                                summary="colour names with labels from each line's hex value"))
register_dataset(DatasetBuilder("colour_mixing", ColourMixingArgs, build,
                                summary="the colour-mixing language (`a + b = mix`) with labels from the answer"))
