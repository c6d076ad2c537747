"""Client half of tests/test_hub.py, run in a subprocess with HF_ENDPOINT pointing at tests/hub_server.py.

    python tests/hub_client.py WORKDIR

1. trains the tiny synthetic recipe with `--push_to_hub` (Trainer's push) to `user/trainer-push`;
2. writes a measured `report.json` beside the weights and pushes the folder with
   `push_anchored` to `user/helper-push`, the trainer itself to `user/from-trainer`, and a
   LoRA adapter of the model to `user/adapter-push`;
3. loads config, tokenizer and model back from `user/helper-push` and compares outputs with
   and without `suppress` against the local model.
Everything measured goes to WORKDIR/result.json; the test asserts on it.
"""

from __future__ import annotations

import json
import os
import sys

import torch


def alignment_report(model, tokenizer, cfg, rows) -> dict:
    """Mean cos(h, v̂) at the anchored layers over concept and other examples (a probe result)."""
    from anchor_hf.capture import HiddenStateCapture
    from anchor_hf.layers import resolve_saved_layers

    sites = resolve_saved_layers(model, cfg.resolved_layers)
    axis = cfg.concept("marked").dims[0]
    sums = {"concept": [], "other": []}
    model.eval()
    with torch.no_grad():
        for row in rows:
            with HiddenStateCapture([m for _, m in sites]) as capture:
                model(input_ids=torch.tensor([row["input_ids"]]))
            cos = torch.stack([(h[0, :, axis] / h[0].norm(dim=-1)).mean() for h in capture.states]).mean()
            sums["concept" if row["is_concept"] else "other"].append(float(cos))
    return {"alignment": {"marked": {k: sum(v) / len(v) for k, v in sums.items() if v}}}


def logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


def main(workdir: str) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from anchor_hf import AnchorConfig
    from anchor_hf.commands.train import run
    from anchor_hf.experiments.synthetic import synthetic_concept_dataset
    from anchor_hf.hub import push_anchored
    from anchor_hf.interventions import suppress

    recipe = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipes",
                          "tiny_llama_synthetic.yaml")
    out = os.path.join(workdir, "run")
    trainer = run(["--config", recipe, "--output_dir", out, "--max_steps", "30", "--save_strategy", "no",
         "--disable_tqdm", "true", "--push_to_hub", "true", "--hub_model_id", "user/trainer-push",
         "--hub_strategy", "end", "--report_to", "none"])

    local = AutoModelForCausalLM.from_pretrained(out)
    cfg_local = AnchorConfig.from_pretrained(out)
    rows = list(synthetic_concept_dataset(32, seed=5))
    report = alignment_report(local, AutoTokenizer.from_pretrained(out), cfg_local, rows)
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f)
    push_anchored(out, "user/helper-push", tags=["synthetic"])
    push_anchored(trainer, "user/from-trainer")

    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(out), LoraConfig(r=2, target_modules=["q_proj"]))
    push_anchored(lora, "user/adapter-push", anchor_config=cfg_local, tokenizer=AutoTokenizer.from_pretrained(out))

    hub_cfg = AnchorConfig.from_pretrained("user/helper-push")
    hub_model = AutoModelForCausalLM.from_pretrained("user/helper-push")
    hub_tokenizer = AutoTokenizer.from_pretrained("user/helper-push")
    trainer_cfg = AnchorConfig.from_pretrained("user/trainer-push")
    AutoModelForCausalLM.from_pretrained("user/trainer-push")

    ids = torch.tensor([row["input_ids"][:16] for row in rows if row["is_concept"]][:4])
    plain_local, plain_hub = logits(local, ids), logits(hub_model, ids)
    with suppress(local, cfg_local, "marked"):
        suppressed_local = logits(local, ids)
    with suppress(hub_model, hub_cfg, "marked"):
        suppressed_hub = logits(hub_model, ids)
    from anchor_hf.errors import AnchorCheckpointError

    try:
        AnchorConfig.from_pretrained("user/never-pushed")
        missing = ""
    except AnchorCheckpointError as err:
        missing = str(err)
    result = {
        "missing_repo_error": missing,
        "config_equal": hub_cfg == cfg_local, "trainer_config_equal": trainer_cfg == cfg_local,
        "tokenizer_ids_equal": hub_tokenizer("t5 t6 t63")["input_ids"] == [5, 6, 63],
        "plain_max_diff": (plain_local - plain_hub).abs().max().item(),
        "suppressed_max_diff": (suppressed_local - suppressed_hub).abs().max().item(),
        "suppression_effect": (suppressed_hub - plain_hub).abs().max().item(),
        "report": report,
    }
    with open(os.path.join(workdir, "result.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1])
