"""`AnchorConfig`: which concepts to anchor, where, and how hard; saved as `anchor_config.json`.

Like a PEFT config, it knows nothing about training: a plain dataclass that validates
itself in `__post_init__` (each `ConceptAnchor` alone, from `concepts.py`, then how they
combine: shared axes, destinations), saves to and loads from `anchor_config.json`, and
describes directions in a model's hidden space (docs/method.md §2-§4, docs/method.md §10).
`bind` checks it against a concrete model's hidden size and depth before any work starts.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .concepts import (MODEL_COLUMNS, OPPOSITE, ORTHOGONAL_TOL, ConceptAnchor, RepelKind, Schedule, Shape, build,
                       check_number, place_cosine)
from .errors import AnchorCheckpointError, AnchorConfigError
from .io import write_json

__all__ = ["AnchorConfig", "ConceptAnchor", "Schedule", "Shape", "RepelKind", "CONFIG_NAME", "FORMAT_VERSION",
           "OPPOSITE", "place_cosine", "MODEL_COLUMNS"]

CONFIG_NAME = "anchor_config.json"
FORMAT_VERSION = 2  # 2 added `ConceptAnchor.pole` and `ConceptAnchor.destination`; version-1 files still load
# Largest |cos| between the places of two concepts that still counts as orthogonal. Beyond it one
# concept's pull drags states into the other's place and the other's push drags them out. Seeded
# random unit vectors have |cos| ≈ 1/√D (0.04 at D = 576), well inside it.
PLACE_OVERLAP_TOL = 0.1
# Smallest cosine between a direction and a subspace at which the direction lies inside it: a
# concept nested in another's subspace is a hierarchy (the colour autoencoder's red inside its hue plane).
PLACE_NESTED_COS = 0.999


@dataclass
class AnchorConfig:
    """Which concepts to anchor, at which layers, with which structural terms.

    Args:
        layers (`list[int | str]`): decoder-block indices (negative counts from the end) or
            module-name glob patterns (`"encoder.norm"`, `"model.layers.*"`) on the unwrapped model.
        concepts (`list[ConceptAnchor]`): the concepts; axes of different concepts may not overlap.
        separation (`float`): weight of the separation term (docs/method.md §2), 0 = off.
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
    resolved_layers: list[str] | None = field(default=None,
                                              metadata={"help": "Resolved module names (filled on bind)."})
    hidden_size: int | None = field(default=None, metadata={"help": "Hidden size bound to (filled on bind)."})

    def __post_init__(self) -> None:
        if isinstance(self.layers, (int, str)):
            self.layers = [self.layers]
        if not isinstance(self.layers, (list, tuple)):
            raise AnchorConfigError(f"`layers` must be a list of block indices or module-name patterns, "
                                    f"got {self.layers!r}")
        self.layers = list(self.layers)
        if not isinstance(self.concepts, (list, tuple)):
            raise AnchorConfigError(f"`concepts` must be a list of ConceptAnchor or mappings, got {self.concepts!r}")
        self.concepts = [build(ConceptAnchor, c, f"concepts[{i}]") if isinstance(c, dict) else c
                         for i, c in enumerate(self.concepts)]
        if self.separation_schedule is not None:
            self.separation_schedule = build(Schedule, self.separation_schedule, "separation_schedule")
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
                raise AnchorConfigError(
                    f"`concepts[{i}]` must be a ConceptAnchor or dict, got {type(concept).__name__}")
            concept.validate(f"concepts[{i}]")
        names = [c.name for c in self.concepts]
        if len(set(names)) != len(names):
            raise AnchorConfigError(f"concept names must be unique, got {names}")
        columns = [c.column for c in self.concepts]
        if len(set(columns)) != len(columns):
            raise AnchorConfigError(f"concept label columns must be unique, got {columns}")
        for i, concept in enumerate(self.concepts):
            if concept.span_column in columns:
                owner = self.concepts[columns.index(concept.span_column)].name
                raise AnchorConfigError(f"`concepts[{i}].span_column` = {concept.span_column!r} is also the label "
                                        f"column of concept {owner!r}; a span needs a column of its own")
        self._check_axes()
        self._check_destinations()
        self._check_places()
        check_number("separation", self.separation, low=0.0)
        check_number("separation_power", self.separation_power, low=0.0, low_open=True)
        if isinstance(self.separation_samples, bool) or not isinstance(self.separation_samples, int) \
                or self.separation_samples < 2:
            raise AnchorConfigError(f"`separation_samples` must be an int >= 2, got {self.separation_samples!r}")
        if self.separation_schedule is not None:
            self.separation_schedule.validate("separation_schedule")
        if self.hidden_size is not None and (isinstance(self.hidden_size, bool)
                                             or not isinstance(self.hidden_size, int) or self.hidden_size < 1):
            raise AnchorConfigError(f"`hidden_size` must be a positive int or None, got {self.hidden_size!r}")
        if self.resolved_layers is not None and (not isinstance(self.resolved_layers, list) or not all(
                isinstance(name, str) for name in self.resolved_layers)):
            raise AnchorConfigError(f"`resolved_layers` must be a list of module names or None, "
                                    f"got {self.resolved_layers!r}")
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
                self._check_opposite_poles(owner[d], i, f"share axis {d} as opposite poles")

    def _check_places(self) -> None:
        """Refuse two concepts whose places overlap, unless nested or at opposite poles.

        The overlap is the largest |cos| between a direction of one place and one of the
        other: `‖v_D‖/‖v‖` for axes `D` and a vector `v`, `|v̂·ŵ|` for two one-direction places
        (axes are checked by `_check_axes`; distinct axes are orthogonal). Allowed: orthogonal
        (`≤ PLACE_OVERLAP_TOL`); a vector inside a subspace of several axes (`≥ PLACE_NESTED_COS`,
        a hierarchy); two one-direction places at opposite poles, under the rule for a shared
        axis (hinge repels). Two directions that coincide, or partly overlap, are refused.
        """
        for j, b in enumerate(self.concepts):
            for i, a in enumerate(self.concepts[:j]):
                if a.vector is None and b.vector is None:
                    continue
                if a.vector is not None and b.vector is not None and len(a.vector) != len(b.vector):
                    raise AnchorConfigError(
                        f"`concepts[{j}].vector` has {len(b.vector)} entries but `concepts[{i}].vector` has "
                        f"{len(a.vector)}; both must have the hidden size")
                overlap = _place_overlap(a, b)
                if overlap is None or overlap <= PLACE_OVERLAP_TOL:
                    continue
                if max(a.rank, b.rank) > 1 and overlap >= PLACE_NESTED_COS:
                    continue
                cos = place_cosine(a, b) if max(a.rank, b.rank) == 1 else None
                if cos is not None and cos <= -1.0 + ORTHOGONAL_TOL:
                    self._check_opposite_poles(i, j)
                    continue
                raise AnchorConfigError(
                    f"the places of `concepts[{i}]` ({a.name!r}) and `concepts[{j}]` ({b.name!r}) overlap: "
                    f"|cos| = {overlap:.3g} > {PLACE_OVERLAP_TOL:g}; one concept's pull would drag states into the "
                    "other's place. Give them orthogonal places (other axes, or orthogonalized vectors), put a "
                    "direction wholly inside a subspace of several axes, or use the opposite pole (`pole` = -1)")

    def _check_opposite_poles(self, i: int, j: int, where: str = "sit at opposite poles of one direction") -> None:
        """A concept whose opposite pole holds pulled examples must repel with the hinge (as on a shared axis).

        The squared term would push the other pole's labelled examples off their place. A
        repel-only concept at the opposite pole (attract 0, e.g. the autoencoder's anti-anchor,
        which keeps colours off `-v̂`) pulls no examples there, so the other may keep its square.
        """
        a, b = self.concepts[i], self.concepts[j]
        for k, c, other in ((i, a, b), (j, b, a)):
            if c.repel > 0 and c.repel_kind != "hinge" and other.attract > 0:
                raise AnchorConfigError(
                    f"`concepts[{k}].repel_kind` must be 'hinge': {a.name!r} and {b.name!r} {where}, and the "
                    "squared anti-subspace term (ĥ·v̂)² would push the other pole's examples off their place; "
                    "the hinge max(0, ĥ·v̂) does not")

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
    def from_dict(cls, data: dict[str, Any], *, source: str = "dict") -> AnchorConfig:
        if not isinstance(data, dict):
            raise AnchorCheckpointError(f"{source}: expected a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("format_version", None)
        data.pop("anchor_hf_version", None)
        if version is None:
            raise AnchorCheckpointError(f"{source}: missing or invalid `format_version` (expected an int)")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise AnchorCheckpointError(f"{source}: `format_version` must be an int in 1..{FORMAT_VERSION}, "
                                        f"got {version!r}")
        if version > FORMAT_VERSION:
            raise AnchorCheckpointError(
                f"{source}: `format_version` {version} is newer than this anchor_hf understands "
                f"({FORMAT_VERSION}); upgrade anchor-hf to load it")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise AnchorCheckpointError(f"{source}: unknown fields {unknown}; allowed {sorted(known)}")
        try:
            return cls(**data)
        except (TypeError, AnchorConfigError) as err:  # a bad value, or an unknown key inside a concept
            raise AnchorCheckpointError(f"{source}: {err}") from err

    def save_pretrained(self, save_directory: str | os.PathLike) -> str:
        """Write `anchor_config.json` into `save_directory` atomically; returns its path."""
        path = os.path.join(save_directory, CONFIG_NAME)
        return write_json(path, self.to_dict())  # never leave a half-written config behind

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, **hub_kwargs: Any) -> AnchorConfig:
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
        except UnicodeDecodeError as err:
            raise AnchorCheckpointError(f"{file} is not UTF-8 text ({err}); {CONFIG_NAME} is UTF-8 JSON as "
                                        "`save_pretrained` writes it") from err
        except json.JSONDecodeError as err:
            raise AnchorCheckpointError(f"{file} is not valid JSON ({err})") from err
        return cls.from_dict(data, source=file)


def _place_overlap(a: ConceptAnchor, b: ConceptAnchor) -> float | None:
    """Largest |cos| between a direction of `a`'s place and one of `b`'s (at least one is a vector).

    None when an axis lies beyond the vector (`check_hidden_size` reports that mismatch).
    """
    if a.vector is None:
        a, b = b, a
    v = a.vector
    norm_v = math.sqrt(sum(x * x for x in v))
    if b.vector is None:  # axes: the part of v on them
        if any(d >= len(v) for d in b.dims):
            return None
        return math.sqrt(sum(v[d] ** 2 for d in b.dims)) / norm_v
    w = b.vector
    return abs(sum(x * y for x, y in zip(v, w))) / (norm_v * math.sqrt(sum(y * y for y in w)))
