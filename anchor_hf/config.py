"""`AnchorConfig`: which concepts to anchor, where, and how hard; saved as `anchor_config.json`.

Like a PEFT config, it knows nothing about training: a plain dataclass that validates
itself in `__post_init__` (each `ConceptAnchor` alone, from `concepts.py`, then how they
combine: shared axes, destinations), saves to and loads from `anchor_config.json`, and
describes directions in a model's hidden space (METHOD.md §2-§4, docs/method.md §10).
`bind` checks it against a concrete model's hidden size and depth before any work starts.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .concepts import OPPOSITE, ORTHOGONAL_TOL, ConceptAnchor, RepelKind, Schedule, Shape, check_number, place_cosine
from .errors import AnchorCheckpointError, AnchorConfigError

__all__ = ["AnchorConfig", "ConceptAnchor", "Schedule", "Shape", "RepelKind", "CONFIG_NAME", "FORMAT_VERSION",
           "OPPOSITE", "place_cosine"]

CONFIG_NAME = "anchor_config.json"
FORMAT_VERSION = 2  # 2 added `ConceptAnchor.pole` and `ConceptAnchor.destination`; version-1 files still load


@dataclass
class AnchorConfig:
    """Which concepts to anchor, at which layers, with which structural terms.

    Args:
        layers (`list[int | str]`): decoder-block indices (negative counts from the end) or
            module-name glob patterns (`"encoder.norm"`, `"model.layers.*"`) on the unwrapped model.
        concepts (`list[ConceptAnchor]`): the concepts; axes of different concepts may not overlap.
        separation (`float`): weight of the separation term (METHOD.md §2), 0 = off.
        separation_power (`float`): exponent p of `((1 + ĥ_i·ĥ_j)/2)^p`.
        separation_samples (`int`): live states sampled per layer for the separation term;
            it costs O(samples²), so it never runs over all tokens.
        separation_schedule (`Schedule` or `None`): schedule of the separation weight.
        resolved_layers (`list[str]` or `None`): module names the layers resolved to; filled
            in by the trainer and checked on load.
        hidden_size (`int` or `None`): hidden size of the model it was bound to; checked on load.
    """

    layers: list[int | str] = field(default_factory=lambda: [-1], metadata={"help": "Block indices or name patterns."})
    concepts: list[ConceptAnchor] = field(default_factory=list, metadata={"help": "Anchored concepts."})
    separation: float = field(default=0.0, metadata={"help": "Separation weight (0 = off)."})
    separation_power: float = field(default=100.0, metadata={"help": "Separation exponent p."})
    separation_samples: int = field(default=256, metadata={"help": "States sampled per layer for separation."})
    separation_schedule: Schedule | None = field(default=None, metadata={"help": "Schedule of the separation weight."})
    resolved_layers: list[str] | None = field(default=None, metadata={"help": "Resolved module names (filled on bind)."})
    hidden_size: int | None = field(default=None, metadata={"help": "Hidden size bound to (filled on bind)."})

    def __post_init__(self) -> None:
        if isinstance(self.layers, (int, str)):
            self.layers = [self.layers]
        self.layers = list(self.layers)
        self.concepts = [ConceptAnchor(**c) if isinstance(c, dict) else c for c in self.concepts]
        if isinstance(self.separation_schedule, dict):
            self.separation_schedule = Schedule(**self.separation_schedule)
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Check every field alone and how fields combine; raises `AnchorConfigError`."""
        if not self.layers:
            raise AnchorConfigError("`layers` must name at least one layer, got []")
        for i, layer in enumerate(self.layers):
            if isinstance(layer, bool) or not isinstance(layer, (int, str)) or layer == "":
                raise AnchorConfigError(
                    f"`layers[{i}]` must be a block index (int) or a module-name pattern (str), got {layer!r}")
        if len(set(map(str, self.layers))) != len(self.layers):
            raise AnchorConfigError(f"`layers` repeats an entry: {self.layers}")
        if not self.concepts:
            raise AnchorConfigError("`concepts` must hold at least one ConceptAnchor, got []")
        for i, concept in enumerate(self.concepts):
            if not isinstance(concept, ConceptAnchor):
                raise AnchorConfigError(f"`concepts[{i}]` must be a ConceptAnchor or dict, got {type(concept).__name__}")
            concept.validate(f"concepts[{i}]")
        names = [c.name for c in self.concepts]
        if len(set(names)) != len(names):
            raise AnchorConfigError(f"concept names must be unique, got {names}")
        columns = [c.column for c in self.concepts]
        if len(set(columns)) != len(columns):
            raise AnchorConfigError(f"concept label columns must be unique, got {columns}")
        self._check_axes()
        self._check_destinations()
        check_number("separation", self.separation, low=0.0)
        check_number("separation_power", self.separation_power, low=0.0, low_open=True)
        if isinstance(self.separation_samples, bool) or not isinstance(self.separation_samples, int) \
                or self.separation_samples < 2:
            raise AnchorConfigError(f"`separation_samples` must be an int >= 2, got {self.separation_samples!r}")
        if self.separation_schedule is not None:
            self.separation_schedule.validate("separation_schedule")
        if self.hidden_size is not None:
            self.check_hidden_size(self.hidden_size)

    def _check_axes(self) -> None:
        """Axes are not shared, except one axis by two one-direction concepts at opposite poles (hinge repels)."""
        owner: dict[int, int] = {}
        for i, concept in enumerate(self.concepts):
            for d in concept.dims or []:
                if d not in owner:
                    owner[d] = i
                    continue
                other = self.concepts[owner[d]]
                if concept.rank > 1 or other.rank > 1 or concept.pole == other.pole:
                    raise AnchorConfigError(
                        f"`concepts[{i}].dims` uses axis {d}, already anchored by concept {other.name!r}; "
                        "each concept needs axes of its own (two one-axis concepts may share one as opposite "
                        "poles, `pole` 1 and -1)")
                for j, c in ((owner[d], other), (i, concept)):
                    if c.repel > 0 and c.repel_kind != "hinge":
                        raise AnchorConfigError(
                            f"`concepts[{j}].repel_kind` must be 'hinge': {other.name!r} and {concept.name!r} share "
                            f"axis {d} as opposite poles, and the squared anti-subspace term (ĥ·v̂)² would push the "
                            "other pole's examples off their place; the hinge max(0, ĥ·v̂) does not")

    def _check_destinations(self) -> None:
        """Each destination names another one-direction concept, orthogonal to the concept or its opposite pole."""
        names = [c.name for c in self.concepts]
        for i, concept in enumerate(self.concepts):
            if concept.destination is None or concept.destination == OPPOSITE:
                continue
            if concept.destination not in names:
                raise AnchorConfigError(f"`concepts[{i}].destination` = {concept.destination!r} is not a concept of "
                                        f"this config {names}, nor 'opposite'")
            target = self.concept(concept.destination)
            if target.rank > 1:
                raise AnchorConfigError(f"`concepts[{i}].destination` = {target.name!r} spans {target.rank} axes; "
                                        "a destination must be one direction")
            cos = place_cosine(concept, target)
            if cos is not None and abs(cos) > ORTHOGONAL_TOL and cos > -1.0 + ORTHOGONAL_TOL:
                raise AnchorConfigError(
                    f"`concepts[{i}].destination` = {target.name!r}: its place is not orthogonal to "
                    f"{concept.name!r}'s (cos = {cos:.3g}) nor its opposite pole; redirect needs one of the two")

    def check_hidden_size(self, hidden_size: int) -> None:
        """Raise if an axis or vector does not fit a hidden space of `hidden_size` dims."""
        for i, concept in enumerate(self.concepts):
            for j, d in enumerate(concept.dims or []):
                if d >= hidden_size:
                    raise AnchorConfigError(
                        f"`concepts[{i}].dims[{j}]` = {d} is out of range for hidden size {hidden_size} "
                        f"(allowed 0..{hidden_size - 1})")
            if concept.vector is not None and len(concept.vector) != hidden_size:
                raise AnchorConfigError(
                    f"`concepts[{i}].vector` has {len(concept.vector)} entries but the hidden size is {hidden_size}")

    def destination_of(self, name: str) -> ConceptAnchor | None:
        """The concept that `name`'s `destination` names (None when unset or 'opposite')."""
        destination = self.concept(name).destination
        return None if destination in (None, OPPOSITE) else self.concept(destination)

    def concept(self, name: str) -> ConceptAnchor:
        """The concept called `name`; raises with the known names otherwise."""
        for c in self.concepts:
            if c.name == name:
                return c
        raise AnchorConfigError(f"unknown concept {name!r}; this config anchors {[c.name for c in self.concepts]}")

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        from . import __version__

        return {"format_version": FORMAT_VERSION, "anchor_hf_version": __version__, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "dict") -> "AnchorConfig":
        if not isinstance(data, dict):
            raise AnchorCheckpointError(f"{source}: expected a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("format_version", None)
        data.pop("anchor_hf_version", None)
        if not isinstance(version, int):
            raise AnchorCheckpointError(f"{source}: missing or invalid `format_version` (expected an int)")
        if version > FORMAT_VERSION:
            raise AnchorCheckpointError(
                f"{source}: `format_version` {version} is newer than this anchor_hf understands "
                f"({FORMAT_VERSION}); upgrade anchor-hf to load it")
        if version < 1:
            raise AnchorCheckpointError(f"{source}: `format_version` {version} is not a version anchor_hf wrote "
                                        f"(allowed 1..{FORMAT_VERSION})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise AnchorCheckpointError(f"{source}: unknown fields {unknown}; allowed {sorted(known)}")
        try:
            return cls(**data)
        except TypeError as err:  # e.g. an unknown key inside a concept
            raise AnchorCheckpointError(f"{source}: {err}") from err

    def save_pretrained(self, save_directory: str | os.PathLike) -> str:
        """Write `anchor_config.json` into `save_directory` atomically; returns its path."""
        os.makedirs(save_directory, exist_ok=True)
        path = os.path.join(save_directory, CONFIG_NAME)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=False)
            f.write("\n")
        os.replace(tmp, path)  # never leave a half-written config behind
        return path

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, **hub_kwargs: Any) -> "AnchorConfig":
        """Load from a folder (or file) holding `anchor_config.json`, or from a Hub repo id."""
        path = os.fspath(path_or_repo_id)
        if os.path.isdir(path):
            file = os.path.join(path, CONFIG_NAME)
            if not os.path.isfile(file):
                raise AnchorCheckpointError(f"{path} has no {CONFIG_NAME}; was it saved by AnchorTrainer.save_model?")
        elif os.path.isfile(path):
            file = path
        else:
            from huggingface_hub import hf_hub_download

            try:
                file = hf_hub_download(path, CONFIG_NAME, **hub_kwargs)
            except Exception as err:  # offline, missing repo, missing file: say which
                raise AnchorCheckpointError(
                    f"could not find {CONFIG_NAME} for {path!r}: not a local folder, and the Hub "
                    f"lookup failed ({type(err).__name__}: {err})") from err
        try:
            with open(file, encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as err:
            raise AnchorCheckpointError(f"{file} is not valid JSON ({err})") from err
        return cls.from_dict(data, source=file)
