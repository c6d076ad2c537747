"""The anchoring regularizer: sums the loss terms of every concept over the anchored layers.

torch only (no transformers). Given captured states `[B, T, D]` per layer and the masks an
`AnchorDataCollator` produces, it returns `Σ_k λ_k Ω_k` (docs/method.md §2) and detached
statistics for logging.

Reductions are written as sums over a micro-batch divided by denominators that the
caller may take over the whole optimizer step (all accumulation micro-batches, all
processes), exactly as `num_items_in_batch` does for the token loss. That makes the term
invariant to how a global batch is split; with per-micro-batch denominators the
attractive mean would change with the split, since labels are sparse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .config import ConceptAnchor
from .geometry import (EPS, alignment, concept_place, coordinates, exclusivity_loss, mellowmax_pool, misalignment,
                       off_axis, repulsion, separation_loss, unit)


@dataclass
class AnchorMasks:
    """What the regularizer needs from a batch (built by `AnchorDataCollator` or `SFTAnchorCollator`).

    Example-level labels pool over spans. A batch row usually holds one example, so span row
    `s` is batch row `s`; a packed row holds several, and then each example is a span row of
    its own and `span_rows[s]` names the batch row it lies in.

    Attributes:
        live: `[B, T]` bool, non-pad positions (repulsive terms average over these).
        span_weights: `[S, C]` float, example-level label weight per concept (0 = unlabelled).
        span_mask: `[S, C, T]` bool, the positions of its batch row each example-level label pools over.
        token_weights: `[B, C, T]` float, token-level label weights (0 = unlabelled).
        span_rows: `[S]` long, the batch row of each span row; None when S = B and row s is row s.
    """

    live: torch.Tensor
    span_weights: torch.Tensor
    span_mask: torch.Tensor
    token_weights: torch.Tensor
    span_rows: torch.Tensor | None = None

    def __post_init__(self) -> None:
        # A label that reaches no live token pulls nothing: drop it, so it neither dilutes the
        # step's denominator nor counts as a label (token labels on padding, or an example-level
        # label whose span lies entirely on padding).
        live = self.live.bool()
        reaches = (self.span_mask.bool() & self.span_live(live).unsqueeze(1)).any(-1)  # [S, C]
        self.span_weights = self.span_weights * reaches
        self.token_weights = self.token_weights * live.unsqueeze(1)

    def denominators(self) -> torch.Tensor:
        """`[C + 1]`: total label weight per concept, then the number of live positions."""
        labelled = self.span_weights.sum(0) + self.token_weights.sum((0, 2))
        return torch.cat([labelled.float(), self.live.sum().reshape(1).float()])

    def to_rows(self, per_span: torch.Tensor) -> torch.Tensor:
        """Sum span rows `[S, ...]` into the batch rows they lie in `[B, ...]`."""
        if self.span_rows is None:
            return per_span
        out = per_span.new_zeros((self.live.shape[0], *per_span.shape[1:]))
        return out.index_add(0, self.span_rows.to(per_span.device), per_span)

    def span_live(self, live: torch.Tensor) -> torch.Tensor:
        """`live [B, T]` as seen by each span row `[S, T]`."""
        return live if self.span_rows is None else live[self.span_rows.to(live.device)]

    def labelled(self, c: int) -> torch.Tensor:
        """`[B, T]` bool: the live positions concept `c` labels (token labels, and spans of labelled examples)."""
        live = self.live.bool()
        span = self.span_mask[:, c].bool() & self.span_live(live) & (self.span_weights[:, c] > 0).unsqueeze(-1)
        return ((self.token_weights[:, c] > 0) & live) | (self.to_rows(span.float()) > 0)


@dataclass
class AnchorWeights:
    """Current λ values (after schedules): per concept attract and repel, and separation."""

    attract: Sequence[float]
    repel: Sequence[float]
    separation: float = 0.0
    exclusive: Sequence[float] = ()  # per concept; empty = every exclusivity term off


class AnchorRegularizer:
    """Computes the anchoring loss for a fixed set of concepts in a `hidden_size`-dim space.

    The bases are fixed tensors, never parameters: the directions are chosen in advance,
    and a parameter that receives no gradient would break DDP's unused-parameter check.
    """

    def __init__(self, concepts: Sequence[ConceptAnchor], hidden_size: int, separation_power: float = 100.0,
                 separation_samples: int = 256) -> None:
        self.concepts = list(concepts)
        self.hidden_size = hidden_size
        places = [concept_place(c, hidden_size) for c in self.concepts]
        self.bases = [basis for basis, _ in places]  # each [D, k], a pole -1 place signed
        # axes are gathered (one-hot, exact in bf16); vectors and opposite poles are multiplied
        self.separation_power = separation_power
        self.separation_samples = separation_samples
        # Every concept's coordinates come from one norm and one gather (axes) or matmul (vectors) per
        # layer: per concept, each would be a full pass over [B, T, D] forward and backward.
        self._axis_concepts = [c for c, (_, dims) in enumerate(places) if dims is not None]
        self._vector_concepts = [c for c, (_, dims) in enumerate(places) if dims is None]
        self._axes = [d for c in self._axis_concepts for d in places[c][1]]
        self._axis_basis = torch.cat([self.bases[c] for c in self._axis_concepts], 1) \
            if self._axis_concepts else None  # [D, K_axes], one-hot: coordinates gathers these axes
        self._vector_basis = torch.cat([self.bases[c] for c in self._vector_concepts], 1) \
            if self._vector_concepts else None  # [D, K_vectors]
        columns, start = {}, 0
        for c in self._axis_concepts + self._vector_concepts:
            columns[c] = slice(start, start + self.bases[c].shape[1])
            start += self.bases[c].shape[1]
        self._columns = [columns[c] for c in range(len(self.concepts))]
        # running off-axis class means per (concept, layer), kept from the first training batch on
        self.running_means: dict[tuple[int, int], RunningMeans] = {}
        # `[C + 1, L]` detached: each concept's weighted term at each layer in the last call, then separation.
        # The trainer checks it for non-finite values on the device (no host sync per step).
        self.last_terms: torch.Tensor | None = None

    def __call__(self, states: Sequence[torch.Tensor], masks: AnchorMasks, weights: AnchorWeights,
                 denominators: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Anchoring loss (scalar, float32) and detached statistics.

        Args:
            states: one `[B, T, D]` tensor per anchored layer.
            masks: the batch's label and live masks.
            weights: current λ per term.
            denominators: `[C + 1]` totals over the optimizer step (see `AnchorMasks.denominators`);
                `None` uses this batch's own, i.e. plain means.
            generator: RNG for sampling separation states (the global RNG if None).

        Returns:
            (loss, stats): stats holds per-concept `attract`, `repel` (term values, mean over
            layers), `cos_labelled`, `cos_unlabelled` and `labels` (and `exclusive_gap` when that
            term is on), plus `separation`.
        """
        if denominators is None:
            denominators = masks.denominators()
        denominators = denominators.to(states[0].device, torch.float32)
        live = masks.live.to(states[0].device).bool()
        n_layers = len(states)
        loss = states[0].new_zeros((), dtype=torch.float32)
        stats: dict[str, torch.Tensor] = {}
        terms = []  # per concept: its weighted term at each layer [L], for `last_terms`
        # all layers at once: a term summed over [L, B, T] is the sum of the per-layer sums
        all_coords = torch.stack([self._coordinates(h) for h in states])  # [L, B, T, K]
        rows = None if masks.span_rows is None else masks.span_rows.to(live.device)
        for c, concept in enumerate(self.concepts):
            span_w = masks.span_weights[:, c].float()  # [S]
            span_m = masks.span_mask[:, c].bool() & masks.span_live(live)  # [S, T]
            token_w = masks.token_weights[:, c].float() * live  # [B, T]
            labelled_tokens = masks.labelled(c)  # [B, T]
            coords = all_coords[..., self._columns[c]]  # [L, B, T, k]
            x = misalignment(coords)  # [L, B, T]
            pooled = mellowmax_pool(x if rows is None else x[:, rows], span_m, concept.tau)  # [L, S]
            attract = ((span_w * pooled).sum(-1) + (token_w * x).sum((-2, -1))) / (denominators[c] + EPS)  # [L]
            repel = (repulsion(coords, concept.repel_kind) * live).sum((-2, -1)) / denominators[-1].clamp_min(1.0)
            with torch.no_grad():  # every layer has the same count, so the mean over [L, B, T] is the layer mean
                cos = alignment(coords)
                cos_lab = _masked_mean(cos, labelled_tokens.expand_as(cos))
                cos_unlab = _masked_mean(cos, (live & ~labelled_tokens).expand_as(cos))
            term = attract.new_zeros(n_layers)  # [L]
            if weights.attract[c] > 0:
                term = term + weights.attract[c] * attract
            if weights.repel[c] > 0:
                term = term + weights.repel[c] * repel
            prefix = concept.name
            stats[f"{prefix}/attract"] = (attract.sum() / n_layers).detach()
            stats[f"{prefix}/repel"] = (repel.sum() / n_layers).detach()
            stats[f"{prefix}/cos_labelled"] = cos_lab
            stats[f"{prefix}/cos_unlabelled"] = cos_unlab
            stats[f"{prefix}/labels"] = ((span_w > 0).sum() + (token_w > 0).sum()).float()
            exclusive = weights.exclusive[c] if c < len(weights.exclusive) else 0.0
            if exclusive > 0:
                label_w = token_w + masks.to_rows(span_w.unsqueeze(-1) * span_m)  # [B, T] label weight per position
                by_layer, gap = self._exclusivity(c, states, label_w, live & ~labelled_tokens)
                term = term + exclusive * by_layer
                stats[f"{prefix}/exclusive_gap"] = gap
            if weights.attract[c] > 0 or weights.repel[c] > 0 or exclusive > 0:
                loss = loss + term.sum() / n_layers
            terms.append(term.detach())
        separation = loss.new_zeros(n_layers)
        if weights.separation > 0:
            positions = live.reshape(-1).nonzero().squeeze(1)  # [N] live positions, found once for all layers
            per_layer = torch.stack([self._separation(h, positions, generator) for h in states])  # [L]
            separation = weights.separation * per_layer
            loss = loss + separation.sum() / n_layers
            stats["separation"] = (per_layer.sum() / n_layers).detach()
        self.last_terms = torch.stack([*terms, separation.detach()])
        return loss, stats

    def _exclusivity(self, c: int, states: Sequence[torch.Tensor], label_w: torch.Tensor,
                     unlabelled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exclusivity term per layer `[L]`, and the mean norm of the running gaps it used (NaN if none yet).

        The gap `μ₁ − μ₀` of each (concept, layer) comes from running means of the off-axis
        states as of before this batch (`geometry.exclusivity_loss`); they are updated only
        from batches with a gradient (training), so evaluation never moves them.
        """
        concept, basis = self.concepts[c], self.bases[c]
        by_layer, gaps, ready = [], [], []
        for layer, h in enumerate(states):
            off = off_axis(unit(h), basis)  # [B, T, D]
            running = self.running_means.get((c, layer))
            if running is None:  # first training batch of this layer: no means kept yet (a fixed zero gap)
                running = RunningMeans.empty(off.shape[-1], off.device)
            gap = (running.labelled - running.unlabelled).to(off.device)  # 0 until `ready`
            by_layer.append(exclusivity_loss(off, label_w, unlabelled, gap))
            gaps.append(gap.norm())
            ready.append(running.ready.to(off.device))
            if h.requires_grad:
                with torch.no_grad():
                    self.running_means[(c, layer)] = running.update(off.detach(), label_w, unlabelled,
                                                                    concept.exclusive_momentum)
        gaps_t, ready_t = torch.stack(gaps), torch.stack(ready).float()  # [L], [L]
        gap_norm = (gaps_t * ready_t).sum() / ready_t.sum()  # NaN (0/0) until some layer is ready
        return torch.stack(by_layer), gap_norm

    def _coordinates(self, h: torch.Tensor) -> torch.Tensor:
        """Coordinates of `h_hat` for every concept, `[B, T, D] -> [B, T, K]` (columns per `self._columns`)."""
        parts = []
        if self._axes:
            parts.append(coordinates(h, self._axis_basis, self._axes))
        if self._vector_basis is not None:
            parts.append(coordinates(h, self._vector_basis))
        return torch.cat(parts, -1) if len(parts) > 1 else parts[0]

    def _separation(self, h: torch.Tensor, positions: torch.Tensor,
                    generator: torch.Generator | None) -> torch.Tensor:
        # Sample positions first, then gather only those rows: `h[live]` would copy every live state.
        n = positions.shape[0]
        if n > self.separation_samples:
            idx = torch.randperm(n, generator=generator, device="cpu")[: self.separation_samples]
            positions = positions[idx.to(positions.device)]
        flat = h.reshape(-1, h.shape[-1])[positions]  # [S, D]
        return separation_loss(unit(flat), self.separation_power)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `x` where `mask`; NaN when the mask is empty (so logs never show a fake 0)."""
    count = mask.sum()
    return torch.where(count > 0, (x * mask).sum() / count.clamp_min(1), torch.full_like(count, float("nan"),
                                                                                          dtype=x.dtype))


@dataclass(frozen=True)
class RunningMeans:
    """Exponential moving averages of one (concept, layer)'s off-axis class means, kept on the device.

    `labelled`, `unlabelled` are `[D]`; `ready` (a bool tensor) turns true with the first batch
    holding both labelled and unlabelled positions, which sets both means; until then both stay
    0, so the gap `labelled − unlabelled` is 0 and the exclusivity term with it. Every decision
    is a tensor operation: the step never waits for the host to read a sum.
    """

    labelled: torch.Tensor
    unlabelled: torch.Tensor
    ready: torch.Tensor

    @staticmethod
    def empty(width: int, device: torch.device) -> RunningMeans:
        zeros = torch.zeros(width, device=device)
        return RunningMeans(zeros, zeros.clone(), torch.zeros((), dtype=torch.bool, device=device))

    def update(self, off: torch.Tensor, label_w: torch.Tensor, unlabelled: torch.Tensor,
               momentum: float) -> RunningMeans:
        """The means after one batch: `m·old + (1 − m)·batch` where the batch has that class, set on the first."""
        w1, w0 = label_w.float(), unlabelled.float()
        n1, n0 = w1.sum(), w0.sum()
        mu1 = (w1.unsqueeze(-1) * off).sum((0, 1)) / n1.clamp_min(EPS)
        mu0 = (w0.unsqueeze(-1) * off).sum((0, 1)) / n0.clamp_min(EPS)
        ready = self.ready.to(off.device)
        start = ~ready & (n1 > 0) & (n0 > 0)

        def blend(old: torch.Tensor, mu: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
            old = old.to(off.device)
            return torch.where(start, mu, torch.where(ready & has, momentum * old + (1 - momentum) * mu, old))

        return RunningMeans(blend(self.labelled, mu1, n1 > 0), blend(self.unlabelled, mu0, n0 > 0), ready | start)
