"""A trained destination for a GoEmotions concept: where `redirect` sends it (docs/method.md §10).

For text the destination is a label of the data: `--concept anger --destination neutral`
labels a share of the training comments that carry `neutral` (and not `anger`) and pulls
them to a place of their own, so the model learns to read that place as "neutral";
`redirect` then moves anger's states there. Where the place is (`--destination-place`):

- `opposite`: the concept's opposite pole `-v̂`. Two concepts on one axis both repel with
  the hinge `max(0, ĥ·v̂)` (the squared anti-subspace term would push each one's examples
  off its own pole), and `redirect` at strength 1 is the reflection `h − 2(h·v̂)v̂`;
- `axis`: its own axis, orthogonal to the concept's, with the recipe's repel;
- `untrained`: nothing is trained for the destination; `redirect` reflects to `-v̂`, the
  baseline that shows what training the destination adds. F only names what the redirected
  continuations are scored against.

The destination's comments are labelled like the concept's (`dataset_args.label_scheme` at
`dataset_args.destination_label_rate`, default the concept's rate) but never replayed:
`label_replay` exists to give a rare concept's few labelled comments enough visits, and
replaying the destination too would change the data mix, so the control (trained on the
same rows) could no longer be shared with runs without a destination.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from anchor_hf.errors import AnchorConfigError
from .data import LABELS, Comment, EmotionConcept, label_probabilities, resolve_concept

Place = Literal["opposite", "axis", "untrained"]
PLACES = ("opposite", "axis", "untrained")
SEED_OFFSET = 7919  # the destination's labelled subset is drawn apart from the concept's (which uses seed + 1009·j)


@dataclass(frozen=True)
class DestinationPlan:
    """Concept E, destination F, where F's place is, and F's label rate (None = E's rate)."""

    concept: EmotionConcept
    destination: EmotionConcept
    place: Place = "opposite"
    label_rate: float | None = None

    @property
    def is_trained(self) -> bool:
        return self.place != "untrained"

    def rate(self, concept_rate: float) -> float:
        """F's label rate in a run whose concept is labelled at `concept_rate`."""
        return concept_rate if self.label_rate is None else self.label_rate

    def holds_destination(self, comment: Comment) -> bool:
        """A destination comment: carries F and not E (a comment with both is the concept's, not a destination)."""
        return self.destination.holds(comment) and not self.concept.holds(comment)

    def holds_concept(self, comment: Comment) -> bool:
        """A concept comment for redirect prompts: carries E and not F."""
        return self.concept.holds(comment) and not self.destination.holds(comment)


def resolve_destination(name: str, concepts: Sequence[EmotionConcept], place: Place = "opposite",
                        label_rate: float | None = None) -> DestinationPlan:
    """The plan for `--destination name`; raises naming the problem before anything is trained."""
    if place not in PLACES:
        raise AnchorConfigError(f"`--destination-place` must be one of {', '.join(PLACES)}, got {place!r}")
    if len(concepts) != 1:
        raise AnchorConfigError(f"`--destination` redirects one concept, but `--concept` names {len(concepts)}: "
                                f"{[c.name for c in concepts]}; give one")
    concept = concepts[0]
    destination = resolve_concept(name)  # AnchorDataError listing every allowed name
    if destination.column == concept.column:
        raise AnchorConfigError(f"`--destination` = {name!r} is the concept itself; name another GoEmotions label "
                                "or group (e.g. neutral)")
    shared = sorted(LABELS[i] for i in concept.members & destination.members)
    if shared:
        raise AnchorConfigError(f"`--destination` = {name!r} shares the labels {shared} with `--concept` = "
                                f"{concept.name!r}; a destination must be a different emotion")
    return DestinationPlan(concept, destination, place, label_rate)


def destination_labels(comments: Sequence[Comment], plan: DestinationPlan, concept_rate: float, scheme: Any,
                       seed: int) -> list[float]:
    """F's label probability per comment (0 for every comment that is not F-and-not-E), as the concept's are drawn."""
    exact = [int(plan.holds_destination(c)) for c in comments]
    return label_probabilities(exact, plan.rate(concept_rate), scheme, seed + SEED_OFFSET)


def with_destination(concept: dict[str, Any], plan: DestinationPlan, axis: int) -> list[dict[str, Any]]:
    """The concept's anchor mapping with its destination set, and the destination's own (on `axis` for `axis`).

    The destination copies the concept's pull, repel, pooling and span; on the opposite pole
    both repel with the hinge (see the module docstring).
    """
    name = plan.destination.column
    if concept.get("vector") is not None or len(concept.get("dims") or []) != 1:
        raise AnchorConfigError("a trained destination needs the concept on one axis (`direction: axis`), got "
                                f"{'a vector' if concept.get('vector') is not None else concept.get('dims')}")
    repel_kind = "hinge" if plan.place == "opposite" else concept.get("repel_kind", "square")
    place: dict[str, Any] = {"dims": list(concept["dims"]), "pole": -1} if plan.place == "opposite" else \
        {"dims": [axis]}
    copied = {key: concept[key] for key in ("attract", "repel", "tau", "span_column") if key in concept}
    return [{**concept, "repel_kind": repel_kind, "destination": name},
            {"name": name, **copied, "repel_kind": repel_kind, **place}]


def check_training_labels(plan: DestinationPlan, train: Sequence[Comment], concept_rates: Sequence[float],
                          scheme: Any) -> None:
    """Raise before training when the destination's label rate labels none of its training comments."""
    if not plan.is_trained:
        return
    count = sum(plan.holds_destination(c) for c in train)
    for rate in concept_rates:
        expected = plan.rate(rate) * count
        if (round(expected) if scheme == "subset" else expected) < 1:
            raise AnchorConfigError(
                f"the destination {plan.destination.name!r} has {count} training comments without "
                f"{plan.concept.name!r}; at label rate {plan.rate(rate):g} none is labelled, so its place cannot be "
                "trained; raise `destination_label_rate` or choose a more frequent destination")
