"""Colour language models: anchored vs control tiny GPT-2s on colour names or the mixing language.

`task` holds the items and reads a model's answers (`decode`), `measure` the concept's
geometry, `effects` what each intervention does per colour, `evaluate` one seed, `report`
and `figures` the results, `pipeline` trains and evaluates every seed (`anchor-hf colour`,
`anchor-hf demo`).
"""
