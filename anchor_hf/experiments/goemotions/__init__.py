"""GoEmotions experiments: anchor an emotion in a causal LM trained from scratch (recipe A) or
fine-tuned from SmolLM2 (recipe B), and evaluate it against a control and a never-saw-it model.

`recipe` reads the flat YAML recipes, `tokenizer` trains the local BPE, `smollm2` converts the
packaged GGUF checkpoint, `train` trains one model, `classifier` is the held-out bag-of-words
concept classifier, `evaluate` measures one seed, `report` writes the report, and `runner`
ties them together for `anchor-hf goemotions`.
"""
