"""Plumbing behind `anchor-hf probe`: splits, syntax tokens, groups, checkpoints."""

from __future__ import annotations

import torch
from tiny import make_model

from anchor_hf import AnchorConfig, ConceptAnchor
from anchor_hf.probes.inputs import ProbeData
from anchor_hf.probes.effects import group_masks
from anchor_hf.probes.suite import UNLABELLED, ProbeContext, checkpoint_folders, stratified_split, syntax_token_ids


def config() -> AnchorConfig:
    return AnchorConfig(layers=[0, 1], concepts=[ConceptAnchor(name="red", dims=[0]),
                                                 ConceptAnchor(name="blue", dims=[1])])


def test_stratified_split_keeps_both_classes_on_both_sides():
    labels = torch.tensor([True, False, False, True, False, False, False, True])
    train, test = stratified_split(labels, 0.5, seed=0)
    assert sorted(train.tolist() + test.tolist()) == list(range(8))
    for part in (train, test):
        assert labels[part].any() and (~labels[part]).any()
    assert torch.equal(stratified_split(labels, 0.5, seed=0)[1], test)  # seeded


def test_syntax_token_ids_are_specials_and_tokens_without_letters_or_digits():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "hello": 1, ",": 2, "Ġ.": 3, "Ġthe": 4, "42": 5}  # GPT-2 style: Ġ marks a space
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>")
    assert syntax_token_ids(fast).tolist() == [0, 2, 3]


def test_group_masks_add_the_unlabelled_rest(tokenizer):
    data = ProbeData(texts=["w2", "w3", "w4", "w5"], source="x",
                     labels={"red": torch.tensor([1.0, 0, 0, 0]), "blue": torch.tensor([0, 1.0, 0, 0]),
                             "plain": torch.tensor([0, 0, 1.0, 0])})
    ctx = ProbeContext(make_model("llama"), tokenizer, config(), ["red", "blue"], data, progress=False)
    masks = group_masks(ctx, ["plain"])
    assert list(masks) == ["red", "blue", "plain", UNLABELLED]
    assert masks[UNLABELLED].tolist() == [False, False, False, True]
    assert list(group_masks(ctx, [])) == ["red", "blue", UNLABELLED]


def test_checkpoint_folders_sorted_by_step(tmp_path):
    for name in ("checkpoint-10", "checkpoint-2", "checkpoint-x", "other"):
        (tmp_path / name).mkdir()
    (tmp_path / "checkpoint-3").write_text("a file, not a folder")
    assert [p.rsplit("/", 1)[-1] for p in checkpoint_folders(str(tmp_path))] == ["checkpoint-2", "checkpoint-10"]
