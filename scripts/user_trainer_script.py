"""A user's own training script: `AnchorTrainer` under `accelerate launch`, no anchor_hf CLI.

    accelerate launch --config_file recipes/accelerate_configs/cpu_2proc.yaml \
        scripts/user_trainer_script.py --output_dir out/user --max_steps 4

It builds everything by hand (a tiny Llama, synthetic token walks, the collator, the
trainer), trains, saves, and simply returns: nothing here tears the process group down.
`AnchorTrainer` registered that at exit itself (`anchor_hf.teardown`), which is what lets
this process end cleanly under gloo; `scripts/check_clean_shutdown.sh 20 user` counts it.
Flags: any `TrainingArguments` field.
"""

import sys

from transformers import HfArgumentParser, LlamaConfig, LlamaForCausalLM, TrainingArguments

from anchor_hf import AnchorConfig, AnchorDataCollator, AnchorTrainer
from anchor_hf.experiments.synthetic import synthetic_concept_dataset, synthetic_tokenizer


def main(argv: list[str]) -> None:
    defaults = {"use_cpu": True, "per_device_train_batch_size": 4, "max_steps": 4, "learning_rate": 3e-3,
                "save_strategy": "no", "report_to": "none", "disable_tqdm": True, "ddp_find_unused_parameters": False}
    parser = HfArgumentParser(TrainingArguments)
    parser.set_defaults(**defaults)
    (args,) = parser.parse_args_into_dataclasses(argv)
    tokenizer = synthetic_tokenizer(64)
    cfg = AnchorConfig(layers=[0, 1], concepts=[{"name": "marked", "dims": [0], "attract": 0.5, "repel": 1.0,
                                                  "tau": 0.1}])
    model = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2, vocab_size=len(tokenizer),
                                         pad_token_id=tokenizer.pad_token_id, max_position_embeddings=64))
    trainer = AnchorTrainer(model=model, args=args, anchor_config=cfg,
                            train_dataset=synthetic_concept_dataset(256, concept_rate=0.25, label_rate=0.5),
                            data_collator=AnchorDataCollator(tokenizer, cfg, seed=args.seed))
    trainer.train()
    trainer.save_model()


if __name__ == "__main__":
    main(sys.argv[1:])
