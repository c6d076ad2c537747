"""Hub sharing, offline: push with Trainer and with `push_anchored`, load back by repo id, intervene.

The client runs in a subprocess (tests/hub_client.py) because `HF_ENDPOINT` is read when
`huggingface_hub` is imported; the server (tests/hub_server.py) runs here, on loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from anchor_hf import AnchorConfig, AnchorConfigError, ConceptAnchor
from anchor_hf.errors import AnchorCheckpointError
from anchor_hf.hub import flatten_numbers, model_card, push_anchored, read_card, shareable_files, write_model_card
from hub_server import HubServer

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """Run the client once against a fresh server; yields (server, result)."""
    work = tmp_path_factory.mktemp("hub")
    with HubServer(lifetime_s=300) as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0",
               "HF_HOME": str(work / "hf_home"), "HF_TOKEN": "hf_local_test_token", "HF_HUB_DISABLE_TELEMETRY": "1",
               "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost", "OMP_NUM_THREADS": "1"}
        done = subprocess.run([sys.executable, os.path.join(HERE, "hub_client.py"), str(work)], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-4000:]
        assert not hub.unknown, hub.unknown
        yield hub, json.loads((work / "result.json").read_text())


def test_trainer_push_uploads_weights_tokenizer_anchor_config_and_card(pushed):
    hub, result = pushed
    files = hub.files("user/trainer-push")
    for name in ("model.safetensors", "config.json", "tokenizer.json", "anchor_config.json", "README.md"):
        assert name in files, sorted(files)
    assert not any(p.startswith(("checkpoint-", "_")) or "anchor_state" in p for p in files)
    meta, body = read_card_text(files["README.md"])
    assert "anchor-hf" in meta["tags"] and meta["anchor_label_rates"]["marked"]["items"] > 0
    assert "| marked | axis 0 |" in body and "`model.layers.0`, `model.layers.1`" in body and "2512.12469" in body
    assert "Training hyperparameters" in body  # Trainer's own summary is kept below ours
    assert result["trainer_config_equal"]


def test_push_anchored_card_lists_probe_results_and_label_rates(pushed):
    hub, result = pushed
    files = hub.files("user/helper-push")
    assert {"model.safetensors", "tokenizer.json", "anchor_config.json", "README.md", "report.json"} <= set(files)
    assert "training_args.bin" not in files and not any("anchor_state" in p for p in files)
    meta, body = read_card_text(files["README.md"])
    concept = result["report"]["alignment"]["marked"]["concept"]
    assert f"| alignment.marked.concept | {concept:.4g} |" in body
    assert "synthetic" in meta["tags"] and "not recorded" not in body  # label rates kept from the folder's card
    assert body.count("## Anchored concepts") == 1  # rewriting the card replaced it, not nested it


def test_push_anchored_from_a_trainer_saves_then_shares_with_label_rates_of_its_data(pushed):
    hub, _ = pushed
    files = hub.files("user/from-trainer")
    assert {"model.safetensors", "tokenizer.json", "anchor_config.json", "README.md"} <= set(files)
    meta, body = read_card_text(files["README.md"])
    assert meta["anchor_label_rates"]["marked"]["examples"] == 256 and "# from-trainer" in body


def test_push_anchored_shares_an_adapter_without_full_weights(pushed):
    hub, _ = pushed
    files = set(hub.files("user/adapter-push"))
    assert {"adapter_model.safetensors", "adapter_config.json", "anchor_config.json", "README.md",
            "tokenizer.json"} <= files
    assert "model.safetensors" not in files


def test_model_loaded_from_the_hub_suppresses_exactly_as_before_upload(pushed):
    """Same config, same weights: outputs equal with and without `suppress`, and suppression acts."""
    _, result = pushed
    assert result["config_equal"] and result["tokenizer_ids_equal"]
    assert result["plain_max_diff"] == 0.0 and result["suppressed_max_diff"] == 0.0
    assert result["suppression_effect"] > 1e-4  # negative control: suppression changes the outputs


def test_anchor_config_from_a_missing_repo_is_a_clear_error(pushed):
    _, result = pushed
    assert "could not find anchor_config.json for 'user/never-pushed'" in result["missing_repo_error"]


def read_card_text(raw: bytes) -> tuple[dict, str]:
    import yaml

    _, front, body = raw.decode().split("---", 2)
    return yaml.safe_load(front), body


# ---------------------------------------------------------------------- offline units
def config(**concept) -> AnchorConfig:
    return AnchorConfig(layers=[0], concepts=[ConceptAnchor(name="red", **concept)])


@pytest.mark.parametrize("concept, place", [
    ({"dims": [3]}, "| red | axis 3 |"),
    ({"dims": [0, 1]}, "| red | axes 0, 1 (subspace) |"),
    ({"vector": [1.0, 0.0, 0.0, 1.0]}, "| red | vector (4 dims, normalized on use) |"),
    ({"dims": [3], "pole": -1, "destination": "opposite"}, "| red | −axis 3 (opposite pole); redirects to opposite |"),
])
def test_model_card_names_the_place_of_each_concept(concept, place):
    card = model_card(config(**concept))
    assert place in card and "not recorded" in card and "## Citation" in card
    assert "| red | axis 9 |" not in card


def test_model_card_lists_every_number_of_a_nested_report_and_skips_the_rest():
    rows = flatten_numbers({"auroc": 0.91, "red": {"margin": 0.4, "note": "ok", "ok": True}, "nan": float("nan")})
    assert rows == [("auroc", 0.91), ("red.margin", 0.4)]


def test_writing_the_card_twice_keeps_other_sections_once(tmp_path):
    (tmp_path / "README.md").write_text("---\nlicense: mit\ntags: [x]\n---\n# run\n\nhyperparameters here\n")
    write_model_card(tmp_path, config(dims=[3]), label_rates={"red": {"rate": 0.01, "items": 3, "examples": 300}})
    first = (tmp_path / "README.md").read_text()
    write_model_card(tmp_path, config(dims=[3]))
    second = (tmp_path / "README.md").read_text()
    assert first == second
    meta, body = read_card(str(tmp_path / "README.md"))
    assert meta["license"] == "mit" and "x" in meta["tags"] and body.count("hyperparameters here") == 1
    assert "| 0.01 | 3 of 300 |" in body


def test_shareable_files_leave_out_training_state(tmp_path):
    for name in ("model.safetensors", "optimizer.pt", "rng_state_1.pth", "anchor_state.json", "README.md",
                 "checkpoint-4/model.safetensors", "_anchor_staging/checkpoint-8/x", "sub/keep.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert shareable_files(str(tmp_path)) == ["README.md", "model.safetensors", "sub/keep.json"]


def test_push_anchored_refuses_what_it_cannot_share_before_contacting_the_hub(tmp_path):
    with pytest.raises(AnchorCheckpointError, match=r"is not a folder"):
        push_anchored(str(tmp_path / "nope"), "user/x")
    with pytest.raises(AnchorCheckpointError, match=r"has no anchor_config.json"):
        push_anchored(str(tmp_path), "user/x")
    config(dims=[3]).save_pretrained(tmp_path)
    with pytest.raises(AnchorCheckpointError, match=r"holds no weights"):
        push_anchored(str(tmp_path), "user/x")
    class Saveable(torch.nn.Linear):
        def save_pretrained(self, folder: str) -> None:
            raise AssertionError("must not be reached")

    with pytest.raises(AnchorConfigError, match=r"needs `anchor_config`"):
        push_anchored(Saveable(2, 2), "user/x")
    with pytest.raises(AnchorConfigError, match=r"must be a folder, an AnchorTrainer or a model"):
        push_anchored(42, "user/x")
