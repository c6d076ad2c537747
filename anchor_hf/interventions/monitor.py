"""Watch a concept while a model generates: score every token as it is read, flag or stop sequences.

`detect` scores finished text; a monitor scores text as it is produced, at no extra cost:
it records the anchored sites' states of the last position in each forward pass that
`generate` runs anyway, and is called by `generate` as a stopping criterion after each
step. The score of a token is `detect`'s, `(1/L) Σ_l cos(h_l, place)` at that position,
so a finished sequence's monitor scores equal `detect(..., reduce=None).mean(0)` there.

    with ConceptMonitor(model, cfg, "red", threshold=0.5) as monitor:
        out = model.generate(**batch, stopping_criteria=StoppingCriteriaList([monitor]))
    monitor.flagged      # [B] bool: some token scored above the threshold
    monitor.scores       # [B, steps]: the score of each token read (NaN after the sequence ended)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..binding import bind
from ..capture import HiddenStateCapture
from ..config import AnchorConfig
from ..geometry import alignment, concept_place, coordinates
from .targets import AnchorInterventionError, check_model, check_number


class ConceptMonitor:
    """A stopping criterion for `generate` that scores `concept` on each token read.

    Step k scores the token the model read at that step: the prompt's last token at the
    first step, then each generated token one step after it was generated (its state
    exists only once it is read). Prompts must be left-padded, as `generate` expects.
    A sequence stops being scored once it has read one of the model's end tokens: the
    pads `generate` feeds it afterwards never score. The monitor is one-shot per `with`
    block: entering resets its scores; its hooks are removed on exit, also on error.

    Args:
        model: the anchored model (wrappers seen through by `binding.bind`).
        cfg: its `AnchorConfig`.
        concept: the concept to watch.
        threshold: a sequence is flagged once a token scores above this (in [-1, 1]).
        stop: also stop generating a sequence once it is flagged (default: only flag).
        end_token_ids: tokens that end a sequence; default the model's `generation_config.eos_token_id`.
    """

    def __init__(self, model: nn.Module, cfg: AnchorConfig, concept: str, threshold: float, stop: bool = False,
                 end_token_ids: list[int] | None = None) -> None:
        check_model(model)
        self.threshold = check_number("threshold", threshold, low=-1.0, high=1.0)
        binding = bind(cfg, model)
        binding.basis(concept)  # AnchorConfigError naming the known concepts
        self.basis, self.dims = concept_place(binding.config.concept(concept), binding.hidden_size)
        self.stop = bool(stop)
        self.end_token_ids = torch.tensor(_end_tokens(model) if end_token_ids is None else list(end_token_ids))
        self._capture = HiddenStateCapture(binding.modules, binding.names)
        self._scores: list[torch.Tensor] = []
        self._ended: torch.Tensor | None = None
        self.flagged: torch.Tensor | None = None

    def __enter__(self) -> ConceptMonitor:
        self._scores, self._ended, self.flagged = [], None, None
        self._capture.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._capture.remove()

    @property
    def scores(self) -> torch.Tensor:
        """`[B, steps]` float32: the score of the token read at each step; NaN once a sequence has ended."""
        return torch.stack(self._scores, 1) if self._scores else torch.empty(0, 0)

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
        """Score the token read by the last forward; returns `[B]` bool, True where generation should stop."""
        try:
            states = [h[:, -1] for h in self._capture.states]  # each [B, D], the position just read
        except RuntimeError as err:
            raise AnchorInterventionError(
                "the monitor saw no forward pass: use it inside `with ConceptMonitor(...) as monitor:` and pass it "
                "to generate(..., stopping_criteria=StoppingCriteriaList([monitor]))") from err
        self._capture.clear()
        score = torch.stack([alignment(coordinates(h, self.basis, self.dims)) for h in states]).mean(0)  # [B]
        if self._ended is None:
            self._ended = torch.zeros_like(score, dtype=torch.bool)
            self.flagged = torch.zeros_like(score, dtype=torch.bool)
        score = score.masked_fill(self._ended, float("nan"))
        self._scores.append(score.cpu())
        self.flagged |= score > self.threshold  # NaN compares False: ended sequences are never flagged
        read = input_ids[:, -2] if input_ids.shape[1] > 1 else input_ids[:, -1]  # the token that forward read
        self._ended |= torch.isin(read, self.end_token_ids.to(read.device))
        return self.flagged.clone() if self.stop else torch.zeros_like(self.flagged)


def _end_tokens(model: nn.Module) -> list[int]:
    """The model's end-of-sequence ids from its generation config (an int, a list, or none)."""
    config = getattr(model, "generation_config", None)
    eos = getattr(config, "eos_token_id", None)
    if eos is None:
        return []
    return [int(eos)] if isinstance(eos, int) else [int(e) for e in eos]
