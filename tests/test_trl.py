"""The mixin drops into TRL: `class MyTrainer(AnchorTrainerMixin, SFTTrainer)` anchors the same way."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset

from anchor_hf import AnchorConfig, AnchorDataCollator, AnchorDataError, AnchorTrainerMixin, ConceptAnchor
from tiny import make_model
from trainer_utils import anchor_config, anchored_trainer, exact_rows, max_diff, params, sgd_args

trl = pytest.importorskip("trl", reason="TRL is in the dev extra; install it to run this test")


class AnchorSFTTrainer(AnchorTrainerMixin, trl.SFTTrainer):
    pass


def sft_args(out, **kw):
    base = sgd_args(out).to_dict()
    base = {k: v for k, v in base.items() if k in trl.SFTConfig.__dataclass_fields__ and k != "push_to_hub_token"}
    base.update(dict(output_dir=str(out), dataset_text_field="text", packing=False, max_length=None), **kw)
    return trl.SFTConfig(**base)


def test_sft_trainer_with_the_mixin_takes_the_same_step_as_anchor_trainer(tmp_path, tokenizer):
    rows = exact_rows()
    cfg = anchor_config()
    reference = make_model("llama")
    anchored_trainer(reference, tokenizer, sgd_args(tmp_path / "ref"), cfg, rows).train()

    model = make_model("llama")
    sft_cfg = anchor_config()
    trainer = AnchorSFTTrainer(model=model, args=sft_args(tmp_path / "sft"), anchor_config=sft_cfg,
                               train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                               data_collator=AnchorDataCollator(tokenizer, sft_cfg, draw="expected"))
    trainer.train()
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert "anchor/red/cos_labelled" in logged
    assert max_diff(params(reference), params(model)) < 1e-5
    untouched = make_model("llama")
    assert max_diff(params(untouched), params(model)) > 1e-4  # negative control: a step was taken


# ---------------------------------------------------------------------- TRL's own collation
CONCEPT = 56  # ids >= 56 are the concept vocabulary: the examples labelled `red` are written in it


def two_concept_config() -> AnchorConfig:
    """`red` labelled per example (pooled pull), `even` per token (ids that are even)."""
    return AnchorConfig(layers=[0, -1], concepts=[
        ConceptAnchor(name="red", dims=[3], attract=1.0, repel=0.5, tau=0.1),
        ConceptAnchor(name="even", dims=[5], attract=0.5, repel=0.0, tau=None)])


def labelled_rows(n: int = 12) -> list[dict]:
    """Pre-tokenized rows of ragged length; every third one is in the concept vocabulary and labelled `red`."""
    rows = []
    for i in range(n):
        length = 3 + i % 4
        base = CONCEPT if i % 3 == 0 else 2
        ids = [base + (5 * i + k) % (8 if base == CONCEPT else 50) for k in range(length)]
        rows.append({"input_ids": ids, "red": 1.0 if base == CONCEPT else 0.0,
                     "even": [float(x % 2 == 0) for x in ids]})
    return rows


def sft_trainer(tmp_path, tokenizer, rows, model=None, cfg=None, **sft_kw) -> AnchorSFTTrainer:
    cfg = cfg or two_concept_config()
    args = sft_args(tmp_path, per_device_train_batch_size=16, per_device_eval_batch_size=16, dataloader_drop_last=False,
                    **sft_kw)
    return AnchorSFTTrainer(model=model or make_model("llama"), args=args, anchor_config=cfg,
                            train_dataset=Dataset.from_list(rows), processing_class=tokenizer)


def first_batch(trainer) -> dict:
    return next(iter(trainer.get_train_dataloader()))


def check_labels_follow_their_tokens(batch: dict, n_examples: int) -> None:
    """Every labelled `red` span covers exactly one whole sequence written in the concept vocabulary; every
    unlabelled one a sequence outside it; `even` lands on the even ids and nowhere else."""
    from anchor_hf.collator import masks_from_batch

    masks = masks_from_batch(batch)
    ids, segments, live = batch["input_ids"], batch["anchor_segment_ids"], masks.live
    rows = masks.span_rows if masks.span_rows is not None else torch.arange(ids.shape[0])
    assert masks.span_weights.shape[0] == n_examples == int(segments.max()) + 1  # one span row per example
    for s in range(n_examples):
        span, row, labelled = masks.span_mask[s, 0], int(rows[s]), bool(masks.span_weights[s, 0] == 1.0)
        sequence = segments[row] == s
        assert not (span & ~sequence).any()  # the pull pools within its own sequence
        tokens = ids[row][sequence]
        assert labelled == bool((tokens >= CONCEPT).all()) and (labelled or (tokens < CONCEPT).all())
        assert torch.equal(span, sequence) or not labelled  # a labelled example's pull covers all its tokens
    even = masks.token_weights[:, 1]
    assert torch.equal(even > 0, live & (ids % 2 == 0))


def unpacked_step(tmp_path, tokenizer, rows, cfg) -> tuple[torch.nn.Module, list[dict]]:
    """The reference: the same examples, one per padded row, through AnchorTrainer and AnchorDataCollator."""
    model = make_model("llama")
    args = sgd_args(tmp_path / "unpacked", batch=len(rows), learning_rate=0.5)
    trainer = anchored_trainer(model, tokenizer, args, cfg, rows)
    trainer.train()
    return model, trainer.state.log_history


@pytest.mark.parametrize("mode", [dict(packing=True, max_length=16), dict(padding_free=True)],
                         ids=["packing", "padding_free"])
def test_sft_trainer_carries_labels_through_trl_collation_and_takes_the_unpacked_step(tmp_path, tokenizer, mode):
    """Packed (BFD, padding-free) and padding-free batches: each label lands on its example's tokens, and one SGD
    step equals the step on the same examples padded one per row (so task and anchor terms are equal)."""
    rows = labelled_rows()
    trainer = sft_trainer(tmp_path / "sft", tokenizer, rows, **mode)
    assert trainer.padding_free  # TRL's own padding-free collator, no custom collator passed
    batch = first_batch(trainer)
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
    check_labels_follow_their_tokens(batch, len(rows))
    trainer.train()
    reference, reference_log = unpacked_step(tmp_path, tokenizer, rows, two_concept_config())
    log = trainer.state.log_history[0]
    assert log["anchor/loss"] == pytest.approx(reference_log[0]["anchor/loss"], abs=1e-5) and log["anchor/loss"] > 0
    assert log["anchor/red/attract"] == pytest.approx(reference_log[0]["anchor/red/attract"], abs=1e-5)
    assert max_diff(params(reference), params(trainer.model)) < 1e-5
    untouched = make_model("llama")
    assert max_diff(params(untouched), params(trainer.model)) > 1e-4  # negative control: a step was taken
    metrics = trainer.evaluate(Dataset.from_list(rows))  # TRL prepares (packs) it the same way
    assert metrics["eval_anchor/red/labels"] == 4 and "eval_anchor/task_loss" in metrics


def test_wrapped_packing_carries_token_level_labels_with_their_tokens(tmp_path, tokenizer):
    """`wrapped` packing cuts the token stream into rows of `max_length` (padded rows, no boundaries): token-level
    labels still follow their tokens."""
    cfg = AnchorConfig(layers=[0, -1], concepts=[ConceptAnchor(name="even", dims=[5], attract=0.5, tau=None)])
    rows = [{"input_ids": r["input_ids"], "even": r["even"]} for r in labelled_rows()]
    trainer = sft_trainer(tmp_path, tokenizer, rows, cfg=cfg, packing=True, max_length=8, packing_strategy="wrapped")
    assert not trainer.padding_free
    batch = first_batch(trainer)
    live = batch["anchor_segment_ids"] >= 0
    assert batch["input_ids"].shape[0] > 1 and torch.equal(live, batch["attention_mask"].bool())
    assert torch.equal(batch["anchor_token_weights"][:, 0] > 0, live & (batch["input_ids"] % 2 == 0))
    assert int(live.sum()) == sum(len(r["input_ids"]) for r in rows)  # every token, once


@pytest.mark.parametrize("packing", [False, True], ids=["padded", "packed"])
def test_completion_only_loss_masks_the_prompt_and_anchors_the_whole_example(tmp_path, tokenizer, packing):
    """Prompt-completion text: TRL masks the prompt out of the task loss; the example-level label pools over the
    whole example (as AnchorDataCollator does), and the step equals the unpacked one on the same tokens."""
    text = [("w2 w3 w4", "w5 w6"), ("w57 w58", "w59 w60 w61"), ("w7 w8", "w9"), ("w56 w57 w58", "w62 w63")]
    rows = [{"prompt": p, "completion": " " + c, "red": float(p.startswith("w5"))} for p, c in text]
    cfg = AnchorConfig(layers=[0, -1], concepts=[ConceptAnchor(name="red", dims=[3], attract=1.0, repel=0.5,
                                                               tau=0.1)])
    mode = dict(packing=True, max_length=16) if packing else {}
    trainer = sft_trainer(tmp_path / "sft", tokenizer, rows, cfg=cfg, completion_only_loss=True, **mode)
    batch = first_batch(trainer)
    from anchor_hf.collator import masks_from_batch

    masks = masks_from_batch(batch)
    prepared = {tuple(r["input_ids"]): r for r in trainer.train_dataset.to_list()} if not packing else None
    for s in range(len(rows)):
        row = int(masks.span_rows[s]) if masks.span_rows is not None else s
        sequence = batch["anchor_segment_ids"][row] == s
        ids, labels = batch["input_ids"][row][sequence], batch["labels"][row][sequence]
        labelled = bool(masks.span_weights[s, 0])
        assert labelled == bool((ids >= CONCEPT).any())  # the label is its example's
        assert torch.equal(masks.span_mask[s, 0], sequence) or not labelled  # pooled over the whole example
        assert (labels[:2] == -100).all() and (labels[-1] != -100)  # prompt masked, completion trained
        if prepared is not None:
            assert tuple(ids.tolist()) in prepared
    trainer.train()
    examples = [{"input_ids": r["input_ids"], "labels": r["labels"], "red": r["red"]}
                for r in sft_trainer(tmp_path / "flat", tokenizer, rows, cfg=cfg,
                                     completion_only_loss=True).train_dataset.to_list()]
    reference, reference_log = unpacked_step(tmp_path, tokenizer, examples, cfg)
    assert trainer.state.log_history[0]["anchor/loss"] == pytest.approx(reference_log[0]["anchor/loss"], abs=1e-5)
    assert max_diff(params(reference), params(trainer.model)) < 1e-5


def test_wrapped_packing_with_example_level_labels_is_refused_before_training(tmp_path, tokenizer):
    with pytest.raises(AnchorDataError, match=r"`packing_strategy` = 'wrapped' cuts examples anywhere.*\['red'\].*"
                                              r"packing_strategy='bfd'"):
        sft_trainer(tmp_path, tokenizer, labelled_rows(), packing=True, max_length=8, packing_strategy="wrapped")


@pytest.mark.parametrize("mode", ["keep_start", "keep_end"])
def test_truncation_cuts_token_labels_and_spans_like_the_tokens(tmp_path, tokenizer, mode):
    cfg = AnchorConfig(layers=[0, -1], concepts=[ConceptAnchor(name="even", dims=[5], tau=None),
                                                 ConceptAnchor(name="red", dims=[3], span_column="red_span")])
    rows = [{**r, "red_span": [int(k % 2 == 1) for k in range(len(r["input_ids"]))]} for r in labelled_rows()]
    trainer = sft_trainer(tmp_path, tokenizer, rows, cfg=cfg, max_length=4, truncation_mode=mode)
    batch = first_batch(trainer)
    live = batch["attention_mask"].bool()
    assert batch["input_ids"].shape[1] == 4
    assert torch.equal(batch["anchor_token_weights"][:, 0] > 0, live & (batch["input_ids"] % 2 == 0))
    cut = [(r["input_ids"][:4] if mode == "keep_start" else r["input_ids"][-4:], r["red_span"]) for r in rows]
    spans = {tuple(ids): (span[:4] if mode == "keep_start" else span[len(span) - len(ids):]) for ids, span in cut}
    for row in range(batch["input_ids"].shape[0]):
        ids = tuple(batch["input_ids"][row][live[row]].tolist())
        assert batch["anchor_span_mask"][row, 1][live[row]].int().tolist() == spans[ids]


def test_token_labels_on_untokenized_text_are_refused_before_training(tmp_path, tokenizer):
    cfg = AnchorConfig(layers=[0], concepts=[ConceptAnchor(name="even", dims=[5])])
    with pytest.raises(AnchorDataError, match=r"token-level labels \['even'\].*no `input_ids`: tokenize it first"):
        sft_trainer(tmp_path, tokenizer, [{"text": "w2 w3", "even": [1.0, 0.0]}], cfg=cfg)
