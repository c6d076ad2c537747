"""`ConceptAnchor` and `Schedule`: one concept, the place it is anchored to, and how its weights move.

Plain dataclasses that validate themselves (docs/method.md §2-§4, §10); `AnchorConfig`
(`config.py`) holds several of them and checks how they combine. No tensors here: the
place is described by axes or a vector, and `geometry.concept_place` turns it into a basis.
"""

from __future__ import annotations

import math
import warnings
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from .errors import AnchorConfigError

OPPOSITE = "opposite"  # `destination` value: the concept's own opposite pole, untrained
ORTHOGONAL_TOL = 1e-6  # |cos| below which two places count as orthogonal (float rounding of a unit vector)
# Columns the model reads: a concept's labels or span stored under one of these would be fed to the model.
MODEL_COLUMNS = ("input_ids", "attention_mask", "labels", "position_ids", "token_type_ids")

# Where a ConceptAnchor or Schedule being built sits inside an AnchorConfig (`concepts[1]`), so the
# checks it runs on itself name that path; built alone, it names its class (`ConceptAnchor.tau`).
_PATH: ContextVar[str | None] = ContextVar("anchor_config_path", default=None)

Shape = Literal["minjerk", "linear", "flat"]
RepelKind = Literal["square", "hinge"]


def check_number(path: str, value: Any, *, low: float | None = None, low_open: bool = False,
                  high: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AnchorConfigError(f"`{path}` must be a finite number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise AnchorConfigError(f"`{path}` must be {'>' if low_open else '>='} {low:g}, got {value!r}")
    if high is not None and value > high:
        raise AnchorConfigError(f"`{path}` must be <= {high:g}, got {value!r}")


def build(cls: type, value: Any, path: str) -> Any:
    """`value` as a `cls` (`Schedule` or `ConceptAnchor`): kept if it is one, built if it is a mapping.

    A mapping is built with `path` as the place its own checks name (`concepts[1].tau`).
    """
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise AnchorConfigError(f"`{path}` must be a {cls.__name__}, a mapping of its fields or None, "
                                f"got {type(value).__name__}")
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise AnchorConfigError(f"`{path}` has unknown fields {unknown}; allowed {allowed}")
    token = _PATH.set(path)
    try:
        return cls(**value)
    finally:
        _PATH.reset(token)


def _schedule(value: Any, path: str) -> Schedule | None:
    return None if value is None else build(Schedule, value, path)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_column(path: str, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise AnchorConfigError(f"`{path}` must be a non-empty string or None, got {value!r}")


def place_cosine(a: ConceptAnchor, b: ConceptAnchor) -> float | None:
    """Cosine between two one-direction places, with their poles; None when a vector's length cannot tell.

    Axes are one-hot, so two axes give 0 or ±1, an axis and a vector give the vector's entry
    on that axis over its norm. Pure Python: the config holds no tensors.
    """
    def entries(c: ConceptAnchor) -> dict[int, float]:
        if c.dims is not None:
            return {c.dims[0]: float(c.pole)}
        norm = math.sqrt(sum(x * x for x in c.vector or []))
        return {k: c.pole * x / norm for k, x in enumerate(c.vector or [])}

    ea, eb = entries(a), entries(b)
    if a.vector is not None and b.vector is not None and len(a.vector) != len(b.vector):
        return None
    if (a.vector is not None and b.dims is not None and b.dims[0] >= len(a.vector)) or \
            (b.vector is not None and a.dims is not None and a.dims[0] >= len(b.vector)):
        return None  # the axis lies beyond the vector: `check_hidden_size` reports the mismatch
    return sum(x * eb.get(k, 0.0) for k, x in ea.items())


@dataclass
class Schedule:
    """How a loss weight moves over training progress `t` in [0, 1] (docs/method.md §4).

    ramp (from `start`·peak up to peak) → hold → anneal down to `floor`·peak, never to zero
    by default: "protection withdrawn entirely lets the task loss reclaim the axis".

    Args:
        ramp_end (`float` or `None`): progress at which the ramp reaches the peak. `None`
            shares the learning-rate warmup (`warmup_steps`/`warmup_ratio` of the run).
        anneal_start (`float`): progress at which annealing begins (1.0 = never anneal).
        anneal_end (`float`): progress at which the floor is reached.
        floor (`float`): multiple of the peak held after annealing. 0 is allowed but warned.
        start (`float`): multiple of the peak at `t = 0`.
        shape (`Literal["minjerk", "linear", "flat"]`): interpolation; min-jerk is
            `6t⁵ − 15t⁴ + 10t³`; `flat` keeps the peak throughout and ignores the phases.
        peak (`float`): multiple applied at the hold; lets a repel schedule say "2.5× early".
    """

    ramp_end: float | None = field(default=None, metadata={"help": "Progress where the ramp ends; None = LR warmup."})
    anneal_start: float = field(default=1.0, metadata={"help": "Progress where annealing starts."})
    anneal_end: float = field(default=1.0, metadata={"help": "Progress where the floor is reached."})
    floor: float = field(default=0.1, metadata={"help": "Multiple of the peak kept after annealing."})
    start: float = field(default=0.0, metadata={"help": "Multiple of the peak at progress 0."})
    shape: Shape = field(default="minjerk", metadata={"help": "minjerk, linear or flat."})
    peak: float = field(default=1.0, metadata={"help": "Multiple applied during the hold."})

    def __post_init__(self) -> None:
        path = _PATH.get() or "Schedule"
        self.validate(path)
        self.warn(path)

    def validate(self, path: str = "schedule") -> None:
        """Raise `AnchorConfigError` naming the first field (under `path`) whose value is not allowed."""
        if self.shape not in ("minjerk", "linear", "flat"):
            raise AnchorConfigError(f"`{path}.shape` must be one of 'minjerk', 'linear', 'flat', got {self.shape!r}")
        if self.ramp_end is not None:
            check_number(f"{path}.ramp_end", self.ramp_end, low=0.0, high=1.0)
        for name in ("anneal_start", "anneal_end"):
            check_number(f"{path}.{name}", getattr(self, name), low=0.0, high=1.0)
        for name in ("floor", "start", "peak"):
            check_number(f"{path}.{name}", getattr(self, name), low=0.0)
        if self.anneal_end < self.anneal_start:
            raise AnchorConfigError(
                f"`{path}.anneal_end` ({self.anneal_end}) must be >= `{path}.anneal_start` ({self.anneal_start})")
        if self.ramp_end is not None and self.ramp_end > self.anneal_start:
            raise AnchorConfigError(
                f"`{path}.ramp_end` ({self.ramp_end}) must be <= `{path}.anneal_start` ({self.anneal_start})")

    def warn(self, path: str) -> None:
        """Warn about allowed values that are probably a mistake (once, when built)."""
        if self.floor == 0 and self.anneal_start < 1.0 and self.shape != "flat":
            warnings.warn(f"`{path}.floor` is 0: the weight anneals to zero, which lets the task loss "
                          "reclaim the axis (docs/method.md §4); a floor of 0.1 is the published default.",
                          stacklevel=4)


@dataclass
class ConceptAnchor:
    """One concept and the place it is anchored to.

    The place is either axes of the hidden space (`dims`: one axis, or several for a
    subspace) or an explicit `vector` (normalized on use). Weights are peak values; each
    follows its schedule, or is constant without one.

    Args:
        name (`str`): the concept's name, used in metric keys and interventions.
        dims (`list[int]` or `None`): axes of the hidden space. One axis anchors a direction;
            several anchor the subspace they span (attract = mass outside, repel = mass inside).
        vector (`list[float]` or `None`): an explicit direction instead of axes.
        attract (`float`): peak weight of the pull on labelled positions (anchor / subspace term).
        repel (`float`): peak weight of the push on every live position (anti-subspace
            `Σ_{i∈D} ĥ_i²`, or anti-anchor `max(0, ĥ·v̂)` when `repel_kind="hinge"`).
        repel_kind (`Literal["square", "hinge"]`): which repulsive term (docs/method.md §2).
        repel_relative (`bool`): if True, `repel` is a multiple of `attract` (docs/method.md §4
            writes the repel schedule relative to the anchor peak: ≈2.5× early, ≈0.3× late).
        tau (`float` or `None`): mellowmax temperature for pooling each labelled span;
            `None` pulls every labelled token equally (a plain label-weighted mean).
        label_column (`str` or `None`): dataset column with label probabilities; defaults to `name`.
        span_column (`str` or `None`): optional column marking the labelled span of an
            example (0/1 per token, or `[start, end)`); default: all of its live tokens.
        attract_schedule, repel_schedule (`Schedule` or `None`): `None` = constant weight.
        exclusive (`float`): peak weight of the exclusivity term (0 = off; follows
            `attract_schedule`): pushes the class means of the off-anchor part of labelled and
            unlabelled states together, so the concept stays readable on the anchor only
            (`geometry.exclusivity_loss`, docs/method.md §9).
        exclusive_momentum (`float`): momentum of the running class means the exclusivity
            term steers by, in [0, 1); closer to 1 averages over more labelled batches.
        route (`bool`): gradient routing (`anchor_hf.routing`): on training batches, labelled
            positions at the anchored layers pass gradients through the anchored place only,
            so what the concept's examples teach the model is learned where suppression reaches.
        pole (`Literal[1, -1]`): which end of the axis (or vector) the place is. `-1` anchors the
            concept at `-v̂`, the opposite pole of a one-axis place, so a destination can share
            the axis of the concept it receives (docs/method.md §10). Two concepts may use the same
            single axis only as opposite poles, and then both repel with the hinge
            `max(0, ĥ·v̂)`, which never pushes the other pole's examples: the squared
            anti-subspace term `(ĥ·v̂)²` is symmetric and would push them off their pole.
        destination (`str` or `None`): where `redirect` moves this concept by default: the name of
            another one-direction concept of the config whose place is orthogonal to this one's or
            is its opposite pole (a destination trained with its own labels), or `"opposite"`
            (the untrained opposite pole). Saved with the config, so a loaded checkpoint can be
            redirected without knowing the geometry.
    """

    name: str = field(metadata={"help": "Concept name."})
    dims: list[int] | None = field(default=None, metadata={"help": "Axes (one = direction, several = subspace)."})
    vector: list[float] | None = field(default=None, metadata={"help": "Explicit direction instead of axes."})
    attract: float = field(default=0.5, metadata={"help": "Peak pull weight on labelled positions."})
    repel: float = field(default=0.0, metadata={"help": "Peak push weight on every live position."})
    repel_kind: RepelKind = field(default="square", metadata={"help": "square (anti-subspace) or hinge (anti-anchor)."})
    repel_relative: bool = field(default=False, metadata={"help": "repel is a multiple of attract."})
    tau: float | None = field(default=0.1, metadata={"help": "Mellowmax temperature; None = mean pull."})
    label_column: str | None = field(default=None, metadata={"help": "Column of label probabilities (default: name)."})
    span_column: str | None = field(default=None, metadata={"help": "Column marking the labelled span."})
    attract_schedule: Schedule | None = field(default=None, metadata={"help": "Schedule of the pull weight."})
    repel_schedule: Schedule | None = field(default=None, metadata={"help": "Schedule of the push weight."})
    exclusive: float = field(default=0.0, metadata={"help": "Exclusivity weight (0 = off)."})
    exclusive_momentum: float = field(default=0.99, metadata={"help": "Momentum of its running class means."})
    route: bool = field(default=False, metadata={"help": "Route labelled gradients through the anchor."})
    pole: int = field(default=1, metadata={"help": "1, or -1 for the opposite pole of the axis/vector."})
    destination: str | None = field(default=None, metadata={
        "help": "Where redirect moves the concept: another concept's name, or 'opposite'."})

    def __post_init__(self) -> None:
        path = _PATH.get() or "ConceptAnchor"
        self.attract_schedule = _schedule(self.attract_schedule, f"{path}.attract_schedule")
        self.repel_schedule = _schedule(self.repel_schedule, f"{path}.repel_schedule")
        if isinstance(self.dims, tuple):
            self.dims = list(self.dims)
        if hasattr(self.vector, "tolist"):  # a tensor or array
            self.vector = self.vector.tolist()
        if isinstance(self.vector, (list, tuple)) and all(_is_number(x) for x in self.vector):
            self.vector = [float(x) for x in self.vector]
        self.validate(path)
        self.warn(path)

    @property
    def column(self) -> str:
        """The dataset column holding this concept's label probabilities."""
        return self.label_column or self.name

    @property
    def rank(self) -> int:
        """Number of directions spanned: 1 for an axis or vector, len(dims) for a subspace."""
        return len(self.dims) if self.dims is not None else 1

    def validate(self, path: str) -> None:
        """Raise `AnchorConfigError` naming the first field (under `path`) whose value is not allowed."""
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise AnchorConfigError(f"`{path}.name` must be a non-empty string without '/', got {self.name!r}")
        _check_column(f"{path}.label_column", self.label_column)
        _check_column(f"{path}.span_column", self.span_column)
        if self.column in MODEL_COLUMNS:
            raise AnchorConfigError(
                f"`{path}` reads its labels from column {self.column!r}, which the model reads "
                f"({', '.join(MODEL_COLUMNS)}); set `label_column` to a column of its own")
        if self.span_column in MODEL_COLUMNS:
            raise AnchorConfigError(f"`{path}.span_column` = {self.span_column!r} is a column the model reads "
                                    f"({', '.join(MODEL_COLUMNS)}); store the span in a column of its own")
        if (self.dims is None) == (self.vector is None):
            raise AnchorConfigError(
                f"`{path}` must give exactly one of `dims` (axes) or `vector` (a direction); "
                f"got dims={self.dims!r}, vector={'set' if self.vector is not None else None}")
        if self.dims is not None and not isinstance(self.dims, list):
            raise AnchorConfigError(f"`{path}.dims` must be a list of axes (non-negative ints), got {self.dims!r}"
                                    + (f"; for one axis write [{self.dims}]" if isinstance(self.dims, int) else ""))
        if self.vector is not None and (not isinstance(self.vector, list)
                                        or not all(_is_number(x) for x in self.vector)):
            raise AnchorConfigError(f"`{path}.vector` must be a list of numbers, got {self.vector!r}")
        if self.dims is not None:
            if not self.dims:
                raise AnchorConfigError(f"`{path}.dims` must list at least one axis, got []")
            for i, d in enumerate(self.dims):
                if isinstance(d, bool) or not isinstance(d, int) or d < 0:
                    raise AnchorConfigError(f"`{path}.dims[{i}]` must be a non-negative int, got {d!r}")
            if len(set(self.dims)) != len(self.dims):
                raise AnchorConfigError(f"`{path}.dims` repeats an axis: {self.dims}")
        if self.vector is not None:
            if not self.vector or not all(math.isfinite(x) for x in self.vector):
                raise AnchorConfigError(f"`{path}.vector` must be a non-empty list of finite numbers")
            if math.sqrt(sum(x * x for x in self.vector)) < 1e-12:
                raise AnchorConfigError(f"`{path}.vector` has zero norm; a direction needs a non-zero vector")
        check_number(f"{path}.attract", self.attract, low=0.0)
        check_number(f"{path}.repel", self.repel, low=0.0)
        for flag in ("route", "repel_relative"):  # a string such as "false" would be truthy
            if not isinstance(getattr(self, flag), bool):
                raise AnchorConfigError(f"`{path}.{flag}` must be true or false, got {getattr(self, flag)!r}")
        check_number(f"{path}.exclusive", self.exclusive, low=0.0)
        check_number(f"{path}.exclusive_momentum", self.exclusive_momentum, low=0.0)
        if self.exclusive_momentum >= 1.0:
            raise AnchorConfigError(f"`{path}.exclusive_momentum` must be < 1, got {self.exclusive_momentum!r}")
        if self.repel_kind not in ("square", "hinge"):
            raise AnchorConfigError(f"`{path}.repel_kind` must be 'square' or 'hinge', got {self.repel_kind!r}")
        if isinstance(self.pole, bool) or self.pole not in (1, -1):
            raise AnchorConfigError(f"`{path}.pole` must be 1 or -1 (the opposite pole), got {self.pole!r}")
        if self.pole == -1 and self.rank > 1:
            raise AnchorConfigError(f"`{path}.pole` = -1 needs one direction, but `dims` spans {self.rank} axes; "
                                    "a subspace has no opposite pole")
        if self.destination is not None:
            if not isinstance(self.destination, str) or not self.destination:
                raise AnchorConfigError(f"`{path}.destination` must be a concept name, 'opposite' or None, "
                                        f"got {self.destination!r}")
            if self.destination == self.name:
                raise AnchorConfigError(f"`{path}.destination` = {self.destination!r} is the concept itself; name "
                                        "another concept of the config, or 'opposite' for its own opposite pole")
            if self.rank > 1:
                raise AnchorConfigError(f"`{path}.destination` needs a one-direction concept, but `dims` spans "
                                        f"{self.rank} axes; redirect moves one direction onto another")
        if self.name == OPPOSITE:
            raise AnchorConfigError(f"`{path}.name` = {OPPOSITE!r} is reserved (`destination` = 'opposite' means the "
                                    "concept's own opposite pole); choose another name")
        if self.repel_kind == "hinge" and self.rank > 1:
            raise AnchorConfigError(f"`{path}.repel_kind` = 'hinge' (anti-anchor) needs one direction, "
                                    f"but `dims` spans {self.rank} axes; use 'square' (anti-subspace)")
        if self.tau is not None and (isinstance(self.tau, bool) or not isinstance(self.tau, (int, float))
                                     or not math.isfinite(self.tau) or self.tau <= 0):
            raise AnchorConfigError(f"`{path}.tau` must be > 0 or None (mean pull), got {self.tau!r}")
        for name in ("attract_schedule", "repel_schedule"):
            schedule = getattr(self, name)
            if schedule is not None and not isinstance(schedule, Schedule):
                raise AnchorConfigError(f"`{path}.{name}` must be a Schedule, a mapping of its fields or None, "
                                        f"got {type(schedule).__name__}")
            if schedule is not None:
                schedule.validate(f"{path}.{name}")

    def warn(self, path: str) -> None:
        """Warn about allowed values that are probably a mistake (once, when built)."""
        if self.repel_schedule is not None and self.repel == 0:
            warnings.warn(f"`{path}.repel_schedule` is set but `{path}.repel` is 0, so it has no effect",
                          stacklevel=4)
