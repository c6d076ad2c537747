"""anchor_hf.registry: dataset builders and packaged models by name; the core knows no experiment."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from anchor_hf.errors import AnchorConfigError
from anchor_hf.registry import (BuiltData, DatasetBuilder, dataset_builder, read_section, register_dataset,
                                register_model, registered_models, resolve_model)

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Settings:
    size: int = 3

    def __post_init__(self) -> None:
        if self.size < 1:
            raise AnchorConfigError(f"`size` must be >= 1, got {self.size}")


def _build(args: Settings, context) -> BuiltData:
    return BuiltData(list(range(args.size)))


def test_a_registered_builder_is_found_by_name_and_reads_its_section():
    builder = DatasetBuilder("test_counting", Settings, _build, summary="counts")
    register_dataset(builder)
    register_dataset(builder)  # the same builder again (a module imported twice) is fine
    assert dataset_builder("test_counting") is builder and dataset_builder("test_missing") is None
    assert builder.read_args({"size": 5}).size == 5 and builder.read_args(None).size == 3
    with pytest.raises(AnchorConfigError, match=r"`dataset_args` for dataset 'test_counting': `size` must be >= 1"):
        builder.read_args({"size": 0})
    with pytest.raises(AnchorConfigError, match=r"unknown keys \['sise'\] for dataset 'test_counting'; allowed: "
                                                r"\['size'\]"):
        builder.read_args({"sise": 5})
    with pytest.raises(AnchorConfigError, match="has no evaluation settings"):
        builder.read_evaluation({"x": 1})
    other = DatasetBuilder("test_counting", Settings, lambda a, c: BuiltData([]))
    with pytest.raises(AnchorConfigError, match="'test_counting' is already registered"):
        register_dataset(other)


def test_a_section_must_be_a_mapping():
    with pytest.raises(AnchorConfigError, match="`evaluation` must be a mapping of names to values, got list"):
        read_section(Settings, [1], "evaluation", "dataset 'x'")


def test_a_packaged_model_resolves_to_its_folder_once_registered(tmp_path):
    made = []

    def unpack(cache: str) -> str:
        made.append(cache)
        return os.path.join(cache, "tiny")

    register_model("packaged:test-tiny", unpack, summary="a test model")
    assert resolve_model("packaged:test-tiny", str(tmp_path)) == str(tmp_path / "tiny") and made == [str(tmp_path)]
    assert "packaged:test-tiny" in registered_models()
    assert resolve_model("org/model") == "org/model"  # a Hub id or folder passes through
    with pytest.raises(AnchorConfigError, match="'packaged:nope' is no registered packaged model"):
        resolve_model("packaged:nope")
    with pytest.raises(AnchorConfigError, match="must contain ':'"):
        register_model("plain-name", unpack)


def test_training_a_registered_recipe_without_the_experiments_says_what_to_import(tmp_path):
    code = ("from anchor_hf.commands.train import run\n"
            f"run(['--config', {str(ROOT / 'recipes' / 'tiny_llama_synthetic.yaml')!r}, '--output_dir', "
            f"{str(tmp_path / 'o')!r}])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
                               "HF_DATASETS_OFFLINE": "1"})
    assert done.returncode != 0
    assert "`dataset_args` is set, but `dataset` = 'synthetic' is a file" in done.stderr
    assert "import anchor_hf.experiments" in done.stderr
