"""Colour experiments: concept labels from a colour's value, so ground truth is exact.

`maths` (RGB/HSV, similarity, the autoencoder's label affinities), `target` (any target
colour and its labels), `corpus` (colour-name lines and their tokenizers), `mixing` (the
colour-mixing language), `spec` (a corpus and its labels as one recipe-level object);
`lm` trains and evaluates colour language models, `ae` reproduces the paper's autoencoder.
"""
