"""Reproduce the Sparse Concept Anchoring paper's colour-autoencoder results through anchor_hf.

`builder` registers `dataset: colour_cube` (cube samples, the autoencoder and its collator),
so each variant's recipe (`recipes/colour_ae_*.yaml`) trains with `anchor-hf train`;
`recipe` reads a variant's evaluation settings, `evaluate` scores a trained model
(per-colour error under suppression and ablation, selectivity R², geometry), `figures`
draws the paper's three-panel figure, `runner` trains every seed through the one training
driver and writes the results, and `report` renders them beside the paper's numbers.
Entry point: `anchor-hf repro-paper --seeds N --out DIR`.
"""
